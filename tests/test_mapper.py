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
        torch.nn.init.normal_(f.weight, std=50.0)  # EqualLinear: scaled by lr_mul / sqrt(text_dim) at run time
    a, b = cond(ws, t), cond(ws, torch.flip(t, [0]))
    assert not torch.allclose(a, b) and torch.allclose(a[1], b[1], atol=1e-6)   # each code follows its own text
    assert torch.equal(cond.edit(ws, t, 0.0), ws)
    with pytest.raises(ValueError, match="one per code"):
        cond(ws, t[:2])


def test_a_narrow_mapper_keeps_the_layout_and_its_width_is_read_from_the_keys(tmp_path):
    from styleclip_utils.models.mapper import infer_mapper_config

    cfg = MapperConfig(dim=32, hidden=8, levels=("medium", "fine"))
    sd = LevelsMapper(cfg).state_dict()
    assert [tuple(sd[f"medium_mapping.mapping.{i}.weight"].shape) for i in (1, 2, 3, 4)] == [(8, 32), (8, 8), (8, 8), (32, 8)]
    assert infer_mapper_config(sd) == cfg
    torch.save({"state_dict": {f"mapper.{k}": v for k, v in sd.items()}}, tmp_path / "narrow.pt")
    assert load_mapper(tmp_path / "narrow.pt").cfg == cfg
    assert infer_mapper_config(LevelsMapper(MapperConfig(dim=32)).state_dict()).hidden == 0  # official: dim wide


def test_the_conditioned_mapper_trains_on_many_texts_and_resumes_exactly(tmp_path):
    from styleclip_utils.losses.clip_loss import CLIPLoss
    from styleclip_utils.models.mapper import ConditionedMapper, consistency
    from styleclip_utils.train.loop import read_log
    from styleclip_utils.train.mapper import latents_from_generator, train_mapper

    G, clip_loss, id_loss = tiny_setup()
    loss = CLIPLoss(clip_loss.model, ["red hair", "smiling", "a clown"])
    latents = latents_from_generator(G, 16, seed=0)
    kw = dict(cfg=MapperConfig(dim=G.style_dim, hidden=8), batch=4, log_every=1, ckpt_every=4, progress=False,
              conditioned=True)
    M, _ = train_mapper(latents, G, loss, id_loss, tmp_path / "full", 12, **kw)
    assert isinstance(M, ConditionedMapper) and M.text_dim == loss.text.shape[1]
    assert any(f.weight.abs().sum() > 0 for f in M.course_mapping.film)  # the conditioning learned something
    train_mapper(latents, G, loss, id_loss, tmp_path / "cut", 12, stop_at=6, **kw)
    M2, _ = train_mapper(latents, G, loss, id_loss, tmp_path / "cut", 12, **kw)
    assert all(torch.equal(a, b) for a, b in zip(M.state_dict().values(), M2.state_dict().values()))
    assert [r["loss"] for r in read_log(tmp_path / "cut")] == [r["loss"] for r in read_log(tmp_path / "full")]
    # an unseen text is one more embedding: the mapper takes it like any other
    from styleclip_utils.edit.mapper import apply_mapper
    from styleclip_utils.losses.clip_loss import text_features

    t = text_features(loss.model, ["ginger hair"])[0]
    ws = latents[:3]
    assert apply_mapper(M, ws, 1.0, t).shape == ws.shape and not torch.equal(apply_mapper(M, ws, 1.0, t), ws)
    assert -1 <= consistency(M, ws, t) <= 1
    with pytest.raises(ValueError, match="text embedding"):
        apply_mapper(M, ws)


def test_consistency_is_one_for_a_global_direction_and_lower_for_input_specific_edits():
    from styleclip_utils.models.mapper import consistency

    M = LevelsMapper(MapperConfig(dim=16))
    ws = torch.randn(6, 10, 16)
    with torch.no_grad():  # last layers: zero weights, one bias -> the same direction for every code
        for name in ("course_mapping", "medium_mapping", "fine_mapping"):
            last = getattr(M, name).mapping[4]
            last.weight.zero_()
            last.bias.fill_(1.0)
    assert consistency(M, ws) == pytest.approx(1.0, abs=1e-5)
    assert consistency(LevelsMapper(MapperConfig(dim=16)), ws) < 0.99
    with pytest.raises(ValueError, match="two inputs"):
        consistency(M, ws[:1])


def test_phrasings_hold_out_what_the_conditioned_mapper_is_evaluated_on():
    from styleclip_utils.data.attributes import PROMPT_ATTRIBUTES
    from styleclip_utils.data.prompts import normalize, target_column
    from styleclip_utils.train.mapper import phrasings

    train, held = phrasings()
    assert set(PROMPT_ATTRIBUTES) <= set(train) and "ginger hair" in held
    assert not {normalize(t) for t in train} & {normalize(h) for h in held}
    assert all(target_column(h) is not None for h in held)  # each is judged by an attribute


def test_the_mapper_recipe_trains_exports_and_the_zoo_loads_it(tiny_weights, tmp_path):
    import shutil

    from styleclip_utils.train import recipes
    from styleclip_utils.train.__main__ import main as train_main
    from styleclip_utils.weights import zoo

    weights = tmp_path / "w"
    shutil.copytree(tiny_weights, weights)
    sets = ["--set", "steps=3", "--set", "data.n_images=20", "--set", "eval_images=4", "--set", "config.hidden=8",
            "--set", "precision=\"fp32\"", "--set", f"weights=\"{weights}\""]
    train_main(["mapper", "--set", "train.prompt=\"bob-cut\"", "--out", str(tmp_path / "runs"), "--no-progress",
                "--export", str(weights)] + sets)
    record = zoo.read_record("mappers/bob_cut", weights)
    assert record["prompt"] == "bob-cut" and record["steps"] == 3 and record["curve"]["step"][-1] == 3
    assert {"clip_loss_before", "clip_loss_after", "consistency"} <= set(record["metrics"])
    assert "bob-cut" in zoo.mapper_prompts(weights)
    M = zoo.load_mapper("bob-cut", root=weights)
    assert M.cfg.hidden == 8 and all(v.dtype == torch.float32 for v in M.state_dict().values())
    with pytest.raises(zoo.MissingModelError, match="train.prompt='afro'"):
        zoo.load_mapper("afro", root=weights)
    with pytest.raises(recipes.RecipeError, match="needs train.prompt"):
        recipes.load_recipe("mapper", **{"train.prompt": ""})
