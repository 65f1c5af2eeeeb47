"""StyleGAN2 against rosinality's reference outputs and the official checkpoints' key/shape manifests."""
import json
from pathlib import Path

import pytest
import torch

from styleclip_utils.models.stylegan2 import Discriminator, Generator, interpolate

DATA = Path(__file__).parent / "data"


@pytest.fixture(scope="module")
def golden():
    return torch.load(DATA / "stylegan2_rosinality_64.pt", weights_only=True)


@pytest.fixture(scope="module")
def G(golden):
    c = golden["config"]
    G = Generator(c["size"], c["style_dim"], c["n_mlp"], channels=c["channels"], lr_mlp=c["lr_mlp"],
                  blur_kernel=c["blur_kernel"])
    G.load_state_dict(golden["state_dict"])  # strict: every rosinality key, nothing else
    return G.eval()


def assert_close(ours, ref):
    err = (ours - ref).abs().max().item()
    assert err <= 1e-4 * ref.abs().max().item(), f"max|Δ| = {err:.3g}, max|ref| = {ref.abs().max():.3g}"


def _outputs(G, inputs, out):
    """Each golden output recomputed through the public interface, keyed like the golden file."""
    z, z2, ws = inputs["z"], inputs["z2"], inputs["wplus"]
    w = G.mapping(z)
    G.set_w_avg(out["truncation_latent"])
    s = G.w_to_s(ws)
    return {
        "w_of_z": lambda: w,
        "latents_z": lambda: G.broadcast(w),
        "img_z": lambda: G.synthesis(G.broadcast(w), noise_mode="const"),
        "img_z_trunc07": lambda: G.synthesis(G.broadcast(G.mapping(z, truncation_psi=0.7))),
        "img_wplus": lambda: G.synthesis(ws),
        "styles_wplus": lambda: dict(zip([l.name for l in G.style_layers], s)),
        "synthesis_from_s": lambda: G.synthesis_from_s(s),
        "img_wplus_zero_noise": lambda: G.synthesis(ws, noise_mode="none"),
        "img_mix": lambda: G.synthesis(G.mix(w, G.mapping(z2), out["inject_index"])),
    }


CASES = ["w_of_z", "latents_z", "img_z", "img_z_trunc07", "img_wplus", "styles_wplus", "synthesis_from_s",
         "img_wplus_zero_noise", "img_mix"]


@pytest.mark.parametrize("name", CASES)
def test_reproduces_rosinality(G, golden, name):
    out = golden["outputs"]
    with torch.no_grad():
        ours = _outputs(G, golden["inputs"], out)[name]()
    ref = out["img_wplus"] if name == "synthesis_from_s" else out[name]
    if name == "styles_wplus":
        assert list(ours) == out["style_order"] == list(ref)
        for k in ref:
            assert_close(ours[k], ref[k])
    else:
        assert ours.shape == ref.shape
        assert_close(ours, ref)


def test_gradient_wrt_wplus(G, golden):
    ws = golden["inputs"]["wplus"].clone().requires_grad_(True)
    img = G.synthesis(ws)
    (img * torch.linspace(-1, 1, img.numel()).reshape(img.shape)).sum().backward()
    assert_close(ws.grad, golden["outputs"]["grad_wplus"])


def test_noise_modes_differ_and_random_is_seeded(G, golden):
    ws = golden["inputs"]["wplus"]
    with torch.no_grad():
        const, none = G.synthesis(ws, "const"), G.synthesis(ws, "none")
        r1 = G.synthesis(ws, "random", generator=torch.Generator().manual_seed(1))
        r1b = G.synthesis(ws, "random", generator=torch.Generator().manual_seed(1))
        r2 = G.synthesis(ws, "random", generator=torch.Generator().manual_seed(2))
    assert torch.equal(r1, r1b)
    assert not torch.allclose(r1, r2) and not torch.allclose(const, none)
    with pytest.raises(ValueError, match="noise_mode"):
        G.synthesis(ws, "fixed")


def test_truncation_needs_average_and_mean_latent_is_deterministic(golden):
    c = golden["config"]
    G = Generator(c["size"], c["style_dim"], c["n_mlp"], channels=c["channels"])
    G.load_state_dict(golden["state_dict"])
    with pytest.raises(RuntimeError, match="mean_latent"):
        G.mapping(golden["inputs"]["z"], truncation_psi=0.5)
    a = G.mean_latent(2000, seed=0)
    b = G.mean_latent(2000, seed=0)
    assert torch.equal(a, b)
    w = G.mapping(golden["inputs"]["z"])
    assert torch.allclose(G.truncate(w, 0.0), a.expand_as(w))
    # psi shrinks the distance to the average by exactly psi
    assert torch.allclose((G.truncate(w, 0.5) - a).norm(dim=1), 0.5 * (w - a).norm(dim=1), rtol=1e-5)


def test_style_mixing_rows(G, golden):
    w1, w2 = G.mapping(golden["inputs"]["z"]), G.mapping(golden["inputs"]["z2"])
    ws = G.mix(w1, w2, 3)
    assert torch.equal(ws[:, :3], G.broadcast(w1)[:, :3]) and torch.equal(ws[:, 3:], G.broadcast(w2)[:, 3:])
    with pytest.raises(ValueError, match="crossover"):
        G.mix(w1, w2, G.n_latent + 1)


def test_interpolation_endpoints():
    a, b = torch.randn(2, 8, generator=torch.Generator().manual_seed(0))
    for spherical in (False, True):
        path = interpolate(a, b, 5, spherical=spherical)
        assert path.shape == (5, 8)
        assert torch.allclose(path[0], a, atol=1e-5) and torch.allclose(path[-1], b, atol=1e-5)
    mid = interpolate(a, b, 3, spherical=True)[1]
    assert mid.norm() > interpolate(a, b, 3)[1].norm()  # slerp keeps Gaussian-like norms


def _manifest(name):
    return json.loads((DATA / name).read_text())


@pytest.mark.parametrize("name, size, n_layers, total, no_rgb", [
    ("stylegan2_ffhq_config_f_1024_manifest.json", 1024, 26, 9088, 6048),
    ("stylegan2_config_f_256_manifest.json", 256, 20, 8704, 5760),
])
def test_official_layout_loads_strictly(name, size, n_layers, total, no_rgb):
    m = _manifest(name)
    g = torch.Generator().manual_seed(0)
    sd = {k: torch.randn(*shape, generator=g) for k, shape in m["state_dict_shapes"].items()}
    G = Generator(size)
    G.load_state_dict(sd, strict=True)
    assert G.n_latent == m["n_latent"] == 2 * int(torch.log2(torch.tensor(size))) - 2
    assert [[l.name, l.channels] for l in G.style_layers] == m["style_layers"]
    assert len(G.style_layers) == n_layers
    assert sum(l.channels for l in G.style_layers) == total == m["style_channels_total"]
    assert sum(l.channels for l in G.style_layers if not l.is_torgb) == no_rgb == m["style_channels_without_torgb"]


def test_stylespace_shapes_and_roundtrip(G, golden):
    ws = golden["inputs"]["wplus"]
    s = G.w_to_s(ws)
    assert [v.shape[1] for v in s] == [l.channels for l in G.style_layers]
    assert G.s_to_flat(s).shape[1] == sum(l.channels for l in G.style_layers)
    # editing one StyleSpace channel changes the image; editing nothing does not
    with torch.no_grad():
        base = G.synthesis_from_s(s)
        s2 = [v.clone() for v in s]
        s2[2][:, 0] += 5.0
        assert not torch.allclose(G.synthesis_from_s(s2), base)
    with pytest.raises(ValueError, match="ws must be"):
        G.w_to_s(ws[:, :3])


@pytest.mark.parametrize("batch", [3, 4])
def test_discriminator_forward_and_grad(batch):
    torch.manual_seed(0)
    D = Discriminator(32, channels={4: 16, 8: 16, 16: 8, 32: 8})
    img = torch.randn(batch, 3, 32, 32, requires_grad=True)
    out = D(img)
    assert out.shape == (batch, 1)
    out.sum().backward()
    assert img.grad.abs().sum() > 0
    assert "convs.1.conv2.0.kernel" in D.state_dict()  # rosinality names: Blur is layer 0 of a down ConvLayer


def test_bad_generator_size():
    with pytest.raises(ValueError, match="power of two"):
        Generator(100)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no GPU")
def test_gpu_matches_cpu(G, golden):
    ws = golden["inputs"]["wplus"]
    with torch.no_grad():
        ref = G.synthesis(ws)
        Gc = Generator(64, 64, 3, channels=golden["config"]["channels"]).cuda()
        Gc.load_state_dict(golden["state_dict"])
        torch.backends.cudnn.allow_tf32 = False
        torch.backends.cuda.matmul.allow_tf32 = False
        assert_close(Gc.synthesis(ws.cuda()).cpu(), ref)
