"""The latent mapper in the official layout: keys and shapes against the official checkpoint's manifest, strict
loading (and its errors), the PixelNorm quirk, levels switched off, and the edit's strength."""
import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from styleclip_utils.models.mapper import LevelsMapper, MapperConfig
from styleclip_utils.models.stylegan2 import PixelNorm
from styleclip_utils.weights.checkpoints import CheckpointError
from styleclip_utils.weights.official import load_mapper

MANIFEST = json.loads((Path(__file__).parent / "data" / "styleclip_levels_mapper_manifest.json").read_text())


def official_state(cfg=MapperConfig(), seed=0):
    torch.manual_seed(seed)
    return {f"mapper.{k}": v for k, v in LevelsMapper(cfg).state_dict().items()}


def test_keys_and_shapes_are_the_official_checkpoint_s():
    sd = official_state()
    assert {k: list(v.shape) for k, v in sd.items()} == MANIFEST["state_dict_shapes"]
    assert list(sd) == list(MANIFEST["state_dict_shapes"])  # the same order, `course_mapping` (sic) included


def test_official_file_loads_strictly_with_its_decoder(official_files, tmp_path):
    from styleclip_utils.weights.checkpoints import load_checkpoint

    g = load_checkpoint(official_files["generator"])["g_ema"]
    path = tmp_path / "mohawk.pt"
    sd = official_state()
    torch.save({"state_dict": {**sd, **{f"decoder.{k}": v for k, v in g.items()}}, "opts": {"no_fine_mapper": False}},
               path)
    M, G = load_mapper(path, with_generator=True)
    assert all(torch.equal(M.state_dict()[k[len("mapper."):]], v) for k, v in sd.items())
    assert G is not None and G.size == 256
    ws = torch.randn(2, G.n_latent, 512)
    assert M(ws).shape == ws.shape


def test_a_mapper_trained_without_a_level_loads_and_leaves_its_rows(tmp_path):
    cfg = MapperConfig(levels=("coarse", "medium"))
    path = tmp_path / "no_fine.pt"
    torch.save({"state_dict": official_state(cfg)}, path)
    M = load_mapper(path)
    assert M.cfg.levels == ("coarse", "medium")
    ws = torch.randn(3, 18, 512)
    assert torch.equal(M.edit(ws)[:, 8:], ws[:, 8:]) and not torch.allclose(M.edit(ws)[:, :8], ws[:, :8])


@pytest.mark.parametrize("damage, message", [
    (lambda sd: sd.pop("mapper.medium_mapping.mapping.3.weight"), "missing"),
    (lambda sd: sd.__setitem__("mapper.fine_mapping.mapping.2.bias", torch.zeros(7)), "shape"),
])
def test_a_damaged_mapper_file_says_what_is_wrong(tmp_path, damage, message):
    sd = official_state()
    damage(sd)
    path = tmp_path / "bad.pt"
    torch.save({"state_dict": sd}, path)
    with pytest.raises(CheckpointError, match=message):
        load_mapper(path)


def test_a_file_without_a_mapper_is_named(tmp_path):
    path = tmp_path / "e4e.pt"
    torch.save({"state_dict": {"encoder.input_layer.0.weight": torch.zeros(1)}}, path)
    with pytest.raises(CheckpointError, match="holds no latent mapper"):
        load_mapper(path)


def test_pixelnorm_quirk_normalises_across_rows():
    torch.manual_seed(0)
    quirk, per_row = LevelsMapper(MapperConfig(dim=16)), LevelsMapper(MapperConfig(dim=16, pixelnorm_across_rows=False))
    per_row.load_state_dict(quirk.state_dict())
    ws = torch.randn(2, 10, 16) * torch.linspace(0.5, 3, 10).view(1, 10, 1)
    coarse = quirk.course_mapping
    # the official Mapper: PixelNorm (over dim 1) on the [B, rows, dim] slice, then the linear layers
    # StyleCLIP's Mapper written out: PixelNorm over dim 1 of [B, rows, dim], then EqualLinear layers whose
    # fused leaky ReLU adds the bias on the last dim of a 3-D input (its op/fused_act.py)
    want = PixelNorm()(ws[:, :4])
    for lin in list(coarse.mapping)[1:]:
        want = F.leaky_relu(F.linear(want, lin.weight * lin.scale) + lin.bias * lin.lr_mul, 0.2) * 2 ** 0.5
    assert torch.allclose(quirk(ws)[:, :4], want, atol=1e-6)
    assert not torch.allclose(per_row(ws)[:, :4], want, atol=1e-3)


def test_edit_strength():
    torch.manual_seed(0)
    M = LevelsMapper(MapperConfig(dim=16))
    ws = torch.randn(2, 10, 16)
    assert torch.equal(M.edit(ws, 0.0), ws)
    assert torch.allclose(M.edit(ws, 1.0), ws + 0.1 * M(ws))
    assert torch.allclose(M.edit(ws, -2.0) - ws, -2 * (M.edit(ws, 1.0) - ws), atol=1e-6)
    with pytest.raises(ValueError, match="W\\+ codes"):
        M(torch.randn(2, 16))
    with pytest.raises(ValueError, match="levels must be"):
        MapperConfig(levels=("hair",))


def tiny_setup():
    from conftest import dummy_clip, dummy_generator, dummy_identity_net
    from styleclip_utils.losses.clip_loss import CLIPLoss
    from styleclip_utils.losses.identity import IDLoss

    G, C = dummy_generator(), dummy_clip()
    id_loss = IDLoss("synthfaces", dummy_identity_net())
    return G, CLIPLoss(C, ["red hair"]), id_loss


def test_a_tiny_mapper_lowers_its_loss_and_resumes_exactly(tmp_path):
    from styleclip_utils.train.loop import read_log
    from styleclip_utils.train.mapper import latents_from_generator, save_latents, train_mapper

    G, clip_loss, id_loss = tiny_setup()
    latents = latents_from_generator(G, 32, seed=0)
    assert latents.shape == (32, G.n_latent, G.style_dim)
    save_latents(latents, tmp_path / "train_faces.pt")
    assert torch.equal(torch.load(tmp_path / "train_faces.pt", weights_only=True), latents)  # the official layout
    kw = dict(cfg=MapperConfig(dim=G.style_dim), batch=4, lr=0.5, log_every=1, ckpt_every=5, progress=False)
    M, _ = train_mapper(latents, G, clip_loss, id_loss, tmp_path / "full", 30, **kw)
    log = read_log(tmp_path / "full")
    first, last = sum(r["loss"] for r in log[:5]) / 5, sum(r["loss"] for r in log[-5:]) / 5
    assert last < first - 1e-3, (first, last)
    assert {"loss_clip", "loss_l2_latent", "loss_id", "loss"} <= set(log[-1])
    # stopped at step 10 and resumed: the same mapper and log as the uninterrupted run
    train_mapper(latents, G, clip_loss, id_loss, tmp_path / "cut2", 30, stop_at=10, **kw)
    M2, _ = train_mapper(latents, G, clip_loss, id_loss, tmp_path / "cut2", 30, **kw)
    assert all(torch.equal(a, b) for a, b in zip(M.state_dict().values(), M2.state_dict().values()))
    def no_time(rows):
        return [{k: v for k, v in r.items() if k != "seconds"} for r in rows]
    assert no_time(read_log(tmp_path / "cut2")) == no_time(log)
    with pytest.raises(ValueError, match="one prompt"):
        from styleclip_utils.losses.clip_loss import CLIPLoss
        train_mapper(latents, G, CLIPLoss(clip_loss.model, ["a", "b"]), id_loss, tmp_path / "x", 1, **kw)
    with pytest.raises(ValueError, match="latents must be"):
        train_mapper(latents[:, :3], G, clip_loss, id_loss, tmp_path / "y", 1, **kw)


def test_conditioned_mapper_starts_as_the_plain_one_and_takes_any_text():
    from styleclip_utils.models.mapper import ConditionedMapper

    torch.manual_seed(0)
    cfg = MapperConfig(dim=16)
    plain, cond = LevelsMapper(cfg), ConditionedMapper(cfg, text_dim=8)
    plain.load_state_dict({k: v for k, v in cond.state_dict().items() if ".film." not in k})
    ws, t = torch.randn(3, 10, 16), torch.nn.functional.normalize(torch.randn(3, 8), dim=1)
    assert torch.allclose(cond(ws, t), plain(ws), atol=1e-6)      # FiLM starts at identity
    for f in cond.course_mapping.film:
        torch.nn.init.normal_(f.weight, std=0.5)
    a, b = cond(ws, t), cond(ws, torch.flip(t, [0]))
    assert not torch.allclose(a, b) and torch.allclose(a[1], b[1], atol=1e-6)   # each code follows its own text
    assert torch.equal(cond.edit(ws, t, 0.0), ws)
    with pytest.raises(ValueError, match="one per code"):
        cond(ws, t[:2])
