"""StyleCLIP latent optimisation on a tiny generator and a tiny random CLIP (CPU, seconds)."""
import pytest
import torch

from styleclip_utils.losses.clip_loss import CLIPLoss, official_clip_input, random_views, to_clip_input
from styleclip_utils.models.nets import SmallCLIPConfig, small_clip
from styleclip_utils.edit.optimize import EditConfig, edit, lr_at, row_indices
from styleclip_utils.models.stylegan2 import Generator

PROMPTS = ["red hair", "a smiling face"]


@pytest.fixture(scope="module")
def G():
    torch.manual_seed(0)
    G = Generator(32, style_dim=32, n_mlp=2, channels={4: 32, 8: 32, 16: 16, 32: 16})
    return G.eval().requires_grad_(False)


@pytest.fixture(scope="module")
def loss():
    torch.manual_seed(1)
    cfg = SmallCLIPConfig(embed_dim=32, image_resolution=32, vision_layers=1, vision_width=64, vision_patch_size=8,
                          context_length=16, transformer_width=32, transformer_heads=2, transformer_layers=1)
    return CLIPLoss(small_clip(cfg), PROMPTS)


@pytest.fixture(scope="module")
def start(G):
    z = torch.randn(4, 32, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        ws = G.broadcast(G.mapping(z))
    return z, ws, torch.tensor([0, 1, 0, 1])


@pytest.mark.parametrize("space", ["z", "w", "w+", "rows", "s"])
def test_each_space_lowers_the_clip_loss(G, loss, start, space):
    z, ws, prompts = start
    res = edit(G, loss, prompts, ws, EditConfig(space=space, steps=20, lr=0.1, l2_lambda=0.0), z_start=z,
               progress=False)
    with torch.no_grad():
        before = loss(G.synthesis(ws), prompts)
        after = loss(res.img, prompts)
    assert (after < before).all(), (before, after)
    assert res.history["clip"].shape == (20, 4)


def test_l2_keeps_the_code_close(G, loss, start):
    z, ws, prompts = start
    free = edit(G, loss, prompts, ws, EditConfig(steps=15, l2_lambda=0.0), progress=False)
    tied = edit(G, loss, prompts, ws, EditConfig(steps=15, l2_lambda=100.0), progress=False)
    assert (tied.ws - ws).norm() < 0.2 * (free.ws - ws).norm()


def test_rows_and_stylespace_move_only_their_part(G, loss, start):
    z, ws, prompts = start
    res = edit(G, loss, prompts, ws, EditConfig(space="rows", rows=(1, 2), steps=5), progress=False)
    moved = (res.ws - ws).abs().amax((0, 2)) > 0
    assert moved.tolist() == [i in (1, 2) for i in range(G.n_latent)]
    res = edit(G, loss, prompts, ws, EditConfig(space="s", steps=5), progress=False)
    s0 = G.w_to_s(ws)
    for layer, a, b in zip(G.style_layers, res.styles, s0):
        assert torch.equal(a, b) == layer.is_torgb  # toRGB styles are left as they were
    assert res.ws is None


def test_nan_guard(G, start):
    z, ws, prompts = start
    nan_loss = lambda img, idx: img.mean((1, 2, 3)) * float("nan")  # noqa: E731
    with pytest.raises(FloatingPointError, match="diverged by step 3"):
        edit(G, nan_loss, prompts, ws, EditConfig(steps=3), progress=False)


def test_config_and_inputs_are_checked(G, loss, start):
    z, ws, prompts = start
    with pytest.raises(ValueError, match="space must be one of"):
        EditConfig(space="x")
    with pytest.raises(ValueError, match="needs z_start"):
        edit(G, loss, prompts, ws, EditConfig(space="z", steps=1), progress=False)
    with pytest.raises(ValueError, match="out of range"):
        row_indices((0, 99), G.n_latent)
    assert row_indices("fine", 18) == list(range(8, 18)) and row_indices("coarse", 18) == [0, 1, 2, 3]


class PixelID:
    """An identity loss on raw pixels that counts how often the reference is embedded."""

    def __init__(self):
        self.references, self.calls = 0, 0

    def reference(self, img):
        self.references += 1
        return img.flatten(1)

    def __call__(self, img, ref):
        self.calls += 1
        return (img.flatten(1) - ref).pow(2).mean(1)


def test_identity_term_is_used_and_the_reference_embedded_once(G, loss, start):
    z, ws, prompts = start
    id_loss = PixelID()
    res = edit(G, loss, prompts, ws, EditConfig(steps=4, id_lambda=1.0), id_loss=id_loss, progress=False)
    assert id_loss.calls == 4 and id_loss.references == 1  # once per edit, not once per step
    assert res.history["id"][1:].abs().sum() > 0


def test_official_schedule():
    assert lr_at(0.0, 0.1) == 0.0 and lr_at(1.0, 0.1) == pytest.approx(0.0, abs=1e-12)
    assert lr_at(0.5, 0.1) == pytest.approx(0.1)
    assert lr_at(0.025, 0.1) == pytest.approx(0.05)  # half-way through the 5% warm-up
    assert lr_at(0.875, 0.1) == pytest.approx(0.05)  # half-way down the last 25%


def test_clip_loss_per_prompt_and_preprocessing(loss):
    img = torch.rand(3, 3, 32, 32, generator=torch.Generator().manual_seed(0)) * 2 - 1
    with torch.no_grad():
        full = loss(img)
        picked = loss(img, torch.tensor([1, 0, 1]))
    assert full.shape == (3, 2) and torch.allclose(picked, full[[0, 1, 2], [1, 0, 1]])
    assert ((0 <= full) & (full <= 2)).all()
    x = official_clip_input(img, 32)  # nearest x7 then 7x7 average = identity at the same size
    assert torch.allclose(x, img, atol=1e-6)
    assert not torch.allclose(to_clip_input(img, 32), img)  # ours normalises with CLIP's mean/std
    with pytest.raises(ValueError, match="divisible"):
        official_clip_input(img, 30)


def test_random_views_crop_mirror_and_are_seeded():
    img = torch.arange(2 * 3 * 16 * 16, dtype=torch.float32).view(2, 3, 16, 16) / 1536 - 1
    a = random_views(img, 3, torch.Generator().manual_seed(0))
    b = random_views(img, 3, torch.Generator().manual_seed(0))
    assert a.shape == (6, 3, 16, 16) and torch.equal(a, b)
    assert not torch.allclose(a[:2], img) and not torch.allclose(a[:2], a[2:4])  # views differ
    x = img.clone().requires_grad_(True)
    random_views(x, 2, torch.Generator().manual_seed(1)).sum().backward()
    assert x.grad.abs().sum() > 0  # the edit's gradient flows through the crops


def test_clip_loss_views_average_random_crops(loss):
    img = torch.rand(3, 3, 32, 32, generator=torch.Generator().manual_seed(0)) * 2 - 1
    with torch.no_grad():
        plain = loss(img, torch.tensor([1, 0, 1]))
        aug = CLIPLoss(loss.model, PROMPTS, views=4, seed=3)
        one, again = aug(img, torch.tensor([1, 0, 1])), CLIPLoss(loss.model, PROMPTS, views=4, seed=3)(img, [1, 0, 1])
        full = CLIPLoss(loss.model, PROMPTS, views=4, seed=3)(img)
    assert one.shape == (3,) and full.shape == (3, 2)
    assert torch.equal(one, again)  # same seed, same views
    assert torch.allclose(full[[0, 1, 2], [1, 0, 1]], one)
    assert not torch.allclose(one, plain)  # the crops were scored, not the image
    with pytest.raises(ValueError, match="views"):
        CLIPLoss(loss.model, PROMPTS, views=-1)


class FixedJudge(torch.nn.Module):
    """A stand-in classifier: attribute k is 'seen' when channel k % 3 of the image is bright."""

    def __init__(self, names):
        super().__init__()
        self.attribute_names = names

    def index(self, name):
        return self.attribute_names.index(name)

    def predict(self, img):
        return torch.stack([img[:, k % 3].mean((1, 2)) > 0 for k in range(len(self.attribute_names))], 1)


def test_success_tracker():
    from styleclip_utils.edit.scorecard import SuccessTracker, expected_changes

    names = ["Red_Hair", "Black_Hair", "Smiling", "Eyeglasses"]
    assert expected_changes("Red_Hair", names) == [0, 1]  # hair colours exclude each other
    assert expected_changes("Eyeglasses", names) == [3]
    judge = FixedJudge(names)
    before = -torch.ones(2, 3, 8, 8)
    after = before.clone()
    after[:, 0] = 1.0          # channel 0 bright: Red_Hair and Eyeglasses (index 3 -> channel 0) appear
    track = SuccessTracker(judge, ["Red_Hair", "Smiling"], every=1)
    track(0, before)
    track(1, after)
    assert track.first.tolist() == [2, -1]


def test_lpips_backbone_from_the_registry(tmp_path, monkeypatch):
    import torchvision

    from styleclip_utils.weights import registry
    from styleclip_utils.weights.official import load_lpips
    monkeypatch.setenv(registry.CACHE_ENV, str(tmp_path))
    assert load_lpips(download_missing=False) is None  # offline: n/a, no hidden download
    torch.manual_seed(0)
    alex = torchvision.models.alexnet()
    torch.save(alex.state_dict(), tmp_path / "alexnet-owt-7be5be79.pth")
    assert load_lpips() is None  # in the cache, a file must be the published one (size floor, hash prefix)
    (tmp_path / "alexnet-owt-7be5be79.pth").rename(tmp_path / "my_alexnet.pth")
    model = load_lpips(tmp_path / "my_alexnet.pth")  # the user's own file: checked by structure
    assert torch.equal(getattr(model.net.slice2, "3").weight, alex.features[3].weight)  # names = feature indices
    x = torch.rand(2, 3, 64, 64) * 2 - 1
    assert model(x, x).abs().max() < 1e-6 and model(x, x.flip(0)).min() > 0
