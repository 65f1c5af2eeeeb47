"""e4e: the official key layout, loading each file layout, the trainer (losses go down, exact resume, the
progressive schedule, the latent pool), and the inversion measures."""
import json
from pathlib import Path

import pytest
import torch

from conftest import dummy_generator, dummy_identity_net
from styleclip_utils.losses.identity import IDLoss
from styleclip_utils.losses.perceptual import FeatureDistance
from styleclip_utils.metrics.inversion import average_face, project
from styleclip_utils.models.e4e import E4E, E4EConfig, Encoder4Editing, LatentPool
from styleclip_utils.train.e4e import progressive_stage, train_e4e
from styleclip_utils.train.loop import read_log
from styleclip_utils.weights.checkpoints import CheckpointError
from styleclip_utils.weights.official import infer_e4e_config, load_e4e

MANIFEST = Path(__file__).parent / "data" / "e4e_encoder_ffhq_1024_manifest.json"


def tiny_cfg(G):
    return E4EConfig(in_size=32, n_styles=G.n_latent, style_dim=G.style_dim, stage_units=(1, 1, 1, 1),
                     widths=(16, 24, 32, 48), block_width=16)


@pytest.fixture(scope="module")
def G():
    return dummy_generator()


def test_official_layout_key_for_key():
    """Encoder4Editing(50, 'ir_se') at 1024 px: every key and shape of e4e_ffhq_encode.pt's encoder, in order."""
    shapes = json.loads(MANIFEST.read_text())["state_dict_shapes"]
    with torch.device("meta"):  # 267 M parameters: shapes only
        enc = Encoder4Editing(E4EConfig())
    assert [(k, list(v.shape)) for k, v in enc.state_dict().items()] == list(shapes.items())
    with torch.device("meta"):
        assert infer_e4e_config(enc.state_dict()) == E4EConfig()


def _official_file(path, E, G, opts_size=1024):
    """An e4e file in the official layout: encoder.* and decoder.* under state_dict, latent_avg [rows, dim]."""
    sd = {f"encoder.{k}": v for k, v in E.encoder.state_dict().items()}
    sd.update({f"decoder.{k}": v for k, v in G.state_dict().items()})
    torch.save({"state_dict": sd, "latent_avg": E.latent_avg.clone(), "opts": {"stylegan_size": opts_size}}, path)


def test_load_each_layout(tmp_path, G):
    torch.manual_seed(0)
    E = E4E(tiny_cfg(G), latent_avg=torch.randn(G.style_dim)).eval()
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    _official_file(tmp_path / "e4e.pt", E, G)
    E2, G2 = load_e4e(tmp_path / "e4e.pt", with_generator=True)
    assert E2.cfg == E.cfg and G2.n_latent == G.n_latent
    assert torch.allclose(E2(x), E(x), atol=1e-6)
    torch.save({"modules": {"encoder": E.state_dict()}, "step": 3}, tmp_path / "checkpoint.pt")  # a training run
    assert torch.allclose(load_e4e(tmp_path / "checkpoint.pt")(x), E(x), atol=1e-6)
    torch.save({"g_ema": G.state_dict()}, tmp_path / "g.pt")
    with pytest.raises(CheckpointError, match="holds no encoder"):
        load_e4e(tmp_path / "g.pt")
    torch.save({"state_dict": {f"encoder.{k}": v for k, v in E.encoder.state_dict().items()}, "latent_avg": torch.zeros(3)},
               tmp_path / "bad.pt")
    with pytest.raises(CheckpointError, match="latent_avg has shape \\(3,\\)"):
        load_e4e(tmp_path / "bad.pt")


def test_progressive_schedule_and_rows():
    assert [progressive_stage(s, 10, 5, 3) for s in (0, 4, 5, 7, 8, 100)] == [0, 0, 1, 1, 2, 9]
    G = dummy_generator()
    E = E4E(tiny_cfg(G))
    x = torch.rand(2, 3, 32, 32)
    E.encoder.progressive_stage = 2
    w = E.encoder(x)
    assert torch.equal(w[:, 3:], w[:, :1].expand_as(w[:, 3:])) and not torch.equal(w[:, 1], w[:, 0])


def test_latent_pool_keeps_codes_and_swaps_half():
    torch.manual_seed(0)
    pool = LatentPool(4, 2)
    first = pool.query(torch.arange(8.).view(4, 2))
    assert torch.equal(first, torch.arange(8.).view(4, 2)) and int(pool.count) == 4  # filling: handed on
    fresh = torch.arange(100., 500.).view(200, 2)
    out = pool.query(fresh)
    swapped = (out != fresh).any(1).float().mean()
    assert 0.4 < swapped < 0.6  # about half are swapped for an older code


def _train(G, images, out, steps, stop_at=None):
    idn = dummy_identity_net()
    return train_e4e(images, G, IDLoss("synthfaces", idn), FeatureDistance(idn), out, steps, tiny_cfg(G), batch=4,
                     lr=1e-3, progressive_start=10, progressive_step=5, d_reg_every=4, progress=False, log_every=1,
                     stop_at=stop_at, ckpt_every=1000)


def test_tiny_encoder_trains_lowers_its_loss_and_resumes_exactly(tmp_path, G):
    with torch.no_grad():  # the generator's own faces: an encoder can learn them
        imgs = G.synthesis(G.broadcast(G.mapping(torch.randn(32, G.style_dim, generator=torch.Generator().manual_seed(1)))))
    images = ((imgs.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    E, _ = _train(G, images, tmp_path / "a", 40)
    log = read_log(tmp_path / "a")
    first, last = (sum(r["loss_l2"] for r in rows) / 5 for rows in (log[:5], log[-5:]))
    assert last < 0.8 * first
    assert {"d_real_loss", "d_fake_loss", "discriminator_loss", "discriminator_r1_loss", "encoder_discriminator_loss",
            "total_delta_loss", "loss_id", "id_improve", "loss_l2", "loss_lpips", "loss"} <= set().union(*log)
    _train(G, images, tmp_path / "b", 40, stop_at=17)   # interrupted, then resumed
    E_resumed, _ = _train(G, images, tmp_path / "b", 40)
    for (k, a), b in zip(E.state_dict().items(), E_resumed.state_dict().values()):
        assert torch.equal(a, b), k


def test_projection_beats_the_average_face(G):
    with torch.no_grad():
        x = G.synthesis(G.broadcast(G.mapping(torch.randn(2, G.style_dim, generator=torch.Generator().manual_seed(3)))))
    idn = dummy_identity_net()
    ws = project(G, FeatureDistance(idn), steps=30)(x)
    err = lambda w: float(((G.synthesis(w, noise_mode="const") - x) ** 2).mean())  # noqa: E731
    with torch.no_grad():
        assert err(ws) < 0.5 * err(average_face(G)(x))
