"""The shared training loop and the StyleGAN2 trainer: tiny configs, CPU, seconds."""
import json

import pytest
import torch

from styleclip_utils.weights.checkpoints import load_checkpoint
from styleclip_utils.weights.official import load_stylegan2
from styleclip_utils.train.stylegan2 import (CLIPHead, GANConfig, export_generator, mean_feature_distance,
                                              train_stylegan2)
from styleclip_utils.train.loop import batch_indices, read_log

TINY = dict(size=16, style_dim=16, n_mlp=2, channels={4: 16, 8: 16, 16: 8}, batch=4, d_reg_every=2,
            g_reg_every=2, ema_kimg=0.01)


def toy_images(n=16, size=16, seed=0):
    """Blobs of a few colours: easy to tell from a random generator's output."""
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    imgs = []
    for _ in range(n):
        cy, cx = torch.randint(4, size - 4, (2,), generator=g)
        colour = torch.rand(3, 1, 1, generator=g)
        mask = ((yy - cy) ** 2 + (xx - cx) ** 2 < 12).float()
        imgs.append(colour * mask)
    return (torch.stack(imgs) * 255).to(torch.uint8)


def test_batch_indices_are_epoch_permutations():
    seen = torch.cat([batch_indices(10, 5, s, seed=3) for s in range(2)])
    assert sorted(seen.tolist()) == list(range(10))
    assert torch.equal(batch_indices(10, 5, 7, seed=3), batch_indices(10, 5, 7, seed=3))
    assert not torch.equal(batch_indices(10, 5, 2, seed=3), batch_indices(10, 5, 0, seed=3))
    with pytest.raises(ValueError, match="larger than the dataset"):
        batch_indices(3, 5, 0, seed=0)


@pytest.mark.parametrize("pl_weight, precision", [(0.0, "fp32"), (2.0, "fp32"), (0.0, "bf16")])
def test_gan_resume_is_exact(tmp_path, pl_weight, precision):
    cfg = GANConfig(**TINY, pl_weight=pl_weight, precision=precision)
    images = toy_images()
    G_full, _ = train_stylegan2(images, tmp_path / "full", 5, cfg, seed=1, ckpt_every=100, progress=False)
    # an interrupted run: 2 steps (checkpoint), then a new process-like start that resumes to 5
    train_stylegan2(images, tmp_path / "cut", 5, cfg, seed=1, ckpt_every=100, progress=False, stop_at=2)
    assert read_log(tmp_path / "cut")[-1]["step"] == 2
    G_res, trainer = train_stylegan2(images, tmp_path / "cut", 5, cfg, seed=1, ckpt_every=100, progress=False)
    assert trainer.step == 5
    for (k, a), b in zip(G_full.state_dict().items(), G_res.state_dict().values()):
        assert torch.equal(a, b), k
    last = {k: v for k, v in read_log(tmp_path / "full")[-1].items() if k != "seconds"}
    assert last["step"] == 5 and last == {k: v for k, v in read_log(tmp_path / "cut")[-1].items() if k != "seconds"}


def test_gan_learns_the_data_statistics_and_export_loads(tmp_path):
    """40 steps move the generator's pixel mean/std most of the way to the (mostly black) toy data's."""
    cfg = GANConfig(**TINY, flip=False)
    real = toy_images().float() / 127.5 - 1
    z = torch.randn(64, cfg.style_dim, generator=torch.Generator().manual_seed(5))

    def gap(G):
        with torch.no_grad():
            x = G(z)
        return (x.mean() - real.mean()).abs() + (x.std() - real.std()).abs()

    torch.manual_seed(1)
    before = gap(cfg.generator())  # the trainer's initial weights for seed 1
    G, trainer = train_stylegan2(toy_images(), tmp_path / "run", 40, cfg, seed=1, progress=False)
    assert gap(G) < 0.5 * before
    assert json.loads((tmp_path / "run" / "config.json").read_text())["kind"] == "stylegan2"
    path = export_generator(G, tmp_path / "g.pt", n_mean=256)
    G2 = load_stylegan2(path)
    assert G2.has_w_avg and G2.size == 16
    assert torch.allclose(G2(z), G(z))


def test_resume_refuses_fewer_steps_than_the_checkpoint_holds(tmp_path):
    cfg = GANConfig(**TINY)
    train_stylegan2(toy_images(), tmp_path, 3, cfg, progress=False)
    with pytest.raises(ValueError, match="is at step 3, beyond the 2 steps asked for"):
        train_stylegan2(toy_images(), tmp_path, 2, cfg, progress=False)


def test_resume_refuses_another_config(tmp_path):
    images = toy_images()
    train_stylegan2(images, tmp_path / "run", 1, GANConfig(**TINY), progress=False)
    with pytest.raises(ValueError, match="another config"):
        train_stylegan2(images, tmp_path / "run", 2, GANConfig(**{**TINY, "batch": 8}), progress=False)


def test_bad_images_rejected(tmp_path):
    with pytest.raises(ValueError, match="uint8"):
        train_stylegan2(torch.zeros(8, 3, 16, 16), tmp_path, 1, GANConfig(**TINY), progress=False)


def test_corrupt_checkpoint_gives_a_clear_error(tmp_path):
    from styleclip_utils.weights.checkpoints import CheckpointError
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "checkpoint.pt").write_bytes(b"half a checkpoint")
    with pytest.raises(CheckpointError, match="not a readable weights file"):
        train_stylegan2(toy_images(), tmp_path / "run", 1, GANConfig(**TINY), progress=False)


def test_gan_time_box_checkpoints_where_it_stopped_and_resumes_exactly(tmp_path):
    """stop_by (a wall-clock time) ends a run between checkpoints; the steps done are kept, and the resumed
    run matches an uninterrupted one bit for bit."""
    import time

    cfg = GANConfig(**TINY)
    images = toy_images()
    _, cut = train_stylegan2(images, tmp_path / "cut", 10 ** 6, cfg, seed=2, ckpt_every=10 ** 6, progress=False,
                             stop_by=time.time() + 1.0)
    stopped = cut.step
    assert 0 < stopped < 10 ** 6
    assert load_checkpoint(tmp_path / "cut" / "checkpoint.pt")["step"] == stopped  # saved off the ckpt_every grid
    G_res, res = train_stylegan2(images, tmp_path / "cut", stopped + 2, cfg, seed=2, progress=False)
    assert res.step == stopped + 2
    G_full, _ = train_stylegan2(images, tmp_path / "full", stopped + 2, cfg, seed=2, progress=False)
    for (k, a), b in zip(G_full.state_dict().items(), G_res.state_dict().values()):
        assert torch.equal(a, b), k


def test_gan_continues_from_an_exported_generator(tmp_path):
    """init= starts G and G_ema from an exported g_ema; during d_warmup only D trains, then G moves."""
    cfg = GANConfig(**TINY)
    images = toy_images()
    G0, _ = train_stylegan2(images, tmp_path / "first", 3, cfg, seed=1, progress=False)
    path = export_generator(G0, tmp_path / "g.pt", n_mean=100)
    warm = GANConfig(**TINY, d_warmup=2)
    G_warm, run = train_stylegan2(images, tmp_path / "warm", 2, warm, seed=5, progress=False, init=path)
    for (k, a), b in zip(G0.state_dict().items(), G_warm.state_dict().values()):
        assert torch.equal(a, b), k     # D alone: the generator is exactly the one given
    assert all("g" not in r for r in read_log(tmp_path / "warm")) and run.config["init"] == "g.pt"
    G_on, run = train_stylegan2(images, tmp_path / "warm", 3, warm, seed=5, progress=False, init=path)
    key = "style.1.weight"
    g0, g_ema, g = G0.state_dict()[key], G_on.state_dict()[key], run.modules["G"].state_dict()[key]
    assert not torch.equal(g0, g_ema)
    # no EMA ramp-up for a given generator: after one G step its average moves only part of the way
    # (half-life 10 images at batch 4: 24%), where a new GAN's ramped-up EMA would copy G
    assert 0.1 < float((g_ema - g0).norm() / (g - g0).norm()) < 0.4
    other = GANConfig(**dict(TINY, channels={4: 8, 8: 8, 16: 8}))
    with pytest.raises(Exception, match="GAN init .* does not match Generator"):
        train_stylegan2(images, tmp_path / "other", 1, other, progress=False, init=path)


def test_gan_continues_from_a_run_checkpoint_with_its_discriminator(tmp_path):
    """init= another run's checkpoint.pt: G and G_ema start as its G_ema and D as its D (no weak fresh D)."""
    images = toy_images()
    _, first = train_stylegan2(images, tmp_path / "first", 3, GANConfig(**TINY), seed=1, progress=False)
    G, run = train_stylegan2(images, tmp_path / "next", 0, GANConfig(**TINY, lr=1e-3), seed=2, progress=False,
                             init=tmp_path / "first" / "checkpoint.pt")
    for name, mine, theirs in (("G", run.modules["G"], first.modules["G_ema"]), ("G_ema", G, first.modules["G_ema"]),
                               ("D", run.modules["D"], first.modules["D"])):
        for (k, a), b in zip(theirs.state_dict().items(), mine.state_dict().values()):
            assert torch.equal(a, b), (name, k)
    assert run.config["init"] == "checkpoint.pt"


class ColourTower(torch.nn.Module):
    """A frozen stand-in with CLIP's image interface (`visual.input_resolution`, `visual.output_dim`,
    `encode_image`): a fixed random conv, pooled. A random small CLIP maps every image to nearly the same
    embedding, so nothing could be learnt on it in a few steps; this one keeps colour and layout apart."""

    def __init__(self):
        super().__init__()
        from types import SimpleNamespace
        torch.manual_seed(0)
        self.conv = torch.nn.Conv2d(3, 16, 4, stride=4)
        self.visual = SimpleNamespace(input_resolution=16, output_dim=16)

    def encode_image(self, x):
        return self.conv(x).relu().mean((2, 3))


def test_vision_aided_d_learns_on_clip_features_and_resumes_exactly(tmp_path):
    """clip_d > 0: a head on a frozen CLIP's embedding is a second D. While G is frozen (d_warmup) it learns
    to tell the toy data from the generator's faces; the run resumes bit for bit; the CLIP is not trained."""
    images, clip_model = toy_images(), ColourTower()
    clip_before = {k: v.clone() for k, v in clip_model.state_dict().items()}
    cfg = GANConfig(**TINY, clip_d=0.5, d_warmup=30)
    train_stylegan2(images, tmp_path / "warm", 30, cfg, seed=1, progress=False, clip_model=clip_model)
    log = read_log(tmp_path / "warm")
    assert log[-1]["d_clip"] < 0.5 * log[0]["d_clip"] and log[0]["d_clip"] > 1.0   # from chance (log 4) down
    assert all(torch.equal(v, clip_model.state_dict()[k]) for k, v in clip_before.items())
    assert json.loads((tmp_path / "warm" / "config.json").read_text())["clip_d"] == 0.5

    cfg = GANConfig(**TINY, clip_d=0.5)
    G_full, _ = train_stylegan2(images, tmp_path / "full", 4, cfg, seed=1, progress=False, clip_model=clip_model)
    assert "g_clip" in read_log(tmp_path / "full")[-1]
    train_stylegan2(images, tmp_path / "cut", 4, cfg, seed=1, progress=False, clip_model=clip_model, stop_at=2)
    G_res, _ = train_stylegan2(images, tmp_path / "cut", 4, cfg, seed=1, progress=False, clip_model=clip_model)
    for (k, a), b in zip(G_full.state_dict().items(), G_res.state_dict().values()):
        assert torch.equal(a, b), k
    # a later run with another recipe (here: lr) starts from this one's checkpoint, its CLIP head included
    _, full = train_stylegan2(images, tmp_path / "full", 4, cfg, seed=1, progress=False, clip_model=clip_model)
    _, slow = train_stylegan2(images, tmp_path / "slow", 0, GANConfig(**{**TINY, "lr": 1e-3}, clip_d=0.5), seed=3,
                              progress=False, clip_model=clip_model, init=tmp_path / "full" / "checkpoint.pt")
    for (k, a), b in zip(full.modules["D_clip"].state_dict().items(), slow.modules["D_clip"].state_dict().values()):
        assert torch.equal(a, b), k
    with pytest.raises(ValueError, match="needs clip_model="):
        train_stylegan2(images, tmp_path / "none", 1, cfg, progress=False)
    # off (the default), the option is not in the run's config: checkpoints from before it still resume
    train_stylegan2(images, tmp_path / "off", 1, GANConfig(**TINY), progress=False)
    assert "clip_d" not in json.loads((tmp_path / "off" / "config.json").read_text())


def test_mean_feature_distance_is_the_unbiased_pairwise_estimate():
    g = torch.Generator().manual_seed(0)
    feats, mu = torch.randn(6, 5, generator=g), torch.randn(5, generator=g)
    d = feats - mu
    pairs = [d[i] @ d[j] for i in range(6) for j in range(6) if i != j]
    assert torch.allclose(mean_feature_distance(feats, mu), torch.stack(pairs).mean(), atol=1e-6)
    # over many batches it averages to the true |E f - mu|^2 (here 8 * 0.25 = 2); the naive squared distance
    # of the batch mean adds the batch's own spread (d / n = 2): that term would reward alike faces
    offset = torch.full((8,), 0.5)
    batches = torch.randn(4000, 4, 8, generator=g) + offset
    est = torch.stack([mean_feature_distance(b, torch.zeros(8)) for b in batches]).mean()
    naive = batches.mean(1).pow(2).sum(1).mean()
    assert abs(est - 2.0) < 0.1 and abs(naive - 4.0) < 0.2


def test_clip_feature_matching_pulls_the_generated_mean_to_the_data_and_resumes_exactly(tmp_path):
    """clip_fm > 0: G is pulled so that its faces' mean CLIP feature is the data's. On the toy data the
    generated mean ends up closer to the data's than with the same run without the term."""
    images, tower = toy_images(), ColourTower()

    @torch.no_grad()
    def mean_feature(img):  # in the space the term works in (unit features, scaled), over random framings
        return CLIPHead.features(tower, img.repeat(8, 1, 1, 1), torch.Generator().manual_seed(0)).mean(0)

    real = mean_feature(images.float() / 127.5 - 1)

    def distance(G):
        z = torch.randn(64, G.style_dim, generator=torch.Generator().manual_seed(9))
        with torch.no_grad():
            return float((mean_feature(G.synthesis(G.broadcast(G.mapping(z)))) - real).pow(2).sum())

    G_off, _ = train_stylegan2(images, tmp_path / "off", 40, GANConfig(**TINY), seed=2, progress=False)
    cfg = GANConfig(**TINY, clip_fm=50.0)
    G_fm, _ = train_stylegan2(images, tmp_path / "fm", 40, cfg, seed=2, progress=False, clip_model=tower)
    assert distance(G_fm) < 0.5 * distance(G_off), (distance(G_fm), distance(G_off))
    log = read_log(tmp_path / "fm")
    assert "fm" in log[-1] and "d_clip" not in log[-1]  # the head stays off
    assert json.loads((tmp_path / "fm" / "config.json").read_text())["clip_fm"] == 50.0
    assert "clip_fm" not in json.loads((tmp_path / "off" / "config.json").read_text())
    # the data's running mean is part of the run: a stopped run resumes bit for bit
    train_stylegan2(images, tmp_path / "cut", 40, cfg, seed=2, progress=False, clip_model=tower, stop_at=17)
    G_res, _ = train_stylegan2(images, tmp_path / "cut", 40, cfg, seed=2, progress=False, clip_model=tower)
    for (k, a), b in zip(G_fm.state_dict().items(), G_res.state_dict().values()):
        assert torch.equal(a, b), k
    # a later run started from this checkpoint keeps the data's mean estimate (the same data)
    _, later = train_stylegan2(images, tmp_path / "later", 0, cfg, seed=5, progress=False, clip_model=tower,
                               init=tmp_path / "fm" / "checkpoint.pt")
    saved = load_checkpoint(tmp_path / "fm" / "checkpoint.pt")["modules"]["stats"]
    assert saved["clip_real_batches"] == 40
    assert torch.equal(later.modules["stats"].clip_real_mean, saved["clip_real_mean"])
