"""The real pipeline with files of the official layouts (random values, tests/official_files.py): users' own
files load by path with a note, and an FFHQ-preset edit runs end to end and gets the open scorecard."""
import math
import warnings

import pytest
import torch

from styleclip_utils.edit.evaluate import run_edits
from styleclip_utils.edit.presets import load_models
from styleclip_utils.edit.scorecard import OpenMeasures, summarize
from styleclip_utils.weights.checkpoints import CheckpointError
from styleclip_utils.weights.official import VIT_B32, load_arcface, load_vit_b32


def test_resaved_clip_loads_by_path_with_a_note(official_files, capsys):
    model = load_vit_b32(official_files["clip"])
    out = capsys.readouterr().out
    assert "note: " in out and "is not the published ViT-B-32.pt" in out and "another size" not in out
    sd = torch.load(official_files["clip"], weights_only=True)
    assert model.visual.conv1.weight.dtype == torch.float32  # float16 in the file, float32 to compute
    assert torch.equal(model.visual.conv1.weight, sd["visual.conv1.weight"].float())
    assert model.visual.input_resolution == 224 and model.context_length == 77


def test_clip_torchscript_archive_and_bad_files(tmp_path, capsys):
    """OpenAI's files are TorchScript archives: a traced (small) CLIP loads from its archive; a cut archive and a
    state dict of another model are clear errors."""
    import clip

    small = dict(VIT_B32, vision_layers=1, vision_width=64, transformer_width=64, transformer_heads=1,
                 transformer_layers=1, embed_dim=32)
    torch.manual_seed(0)
    m = clip.model.CLIP(**small).eval()
    with warnings.catch_warnings():  # tracing warns about Python values; irrelevant here
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(m, (torch.randn(1, 3, 224, 224), clip.tokenize(["a face"])), check_trace=False)
    torch.jit.save(traced, tmp_path / "ViT-small.pt")
    loaded = load_vit_b32(tmp_path / "ViT-small.pt")
    assert "another size than ViT-B/32" in capsys.readouterr().out
    assert torch.equal(loaded.visual.proj, m.visual.proj)
    data = (tmp_path / "ViT-small.pt").read_bytes()
    (tmp_path / "cut.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="not a readable weights file|damaged TorchScript archive"):
        load_vit_b32(tmp_path / "cut.pt")
    torch.save({"conv.weight": torch.zeros(3)}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="not an OpenAI CLIP ViT state dict"):
        load_vit_b32(tmp_path / "other.pt")


def test_resaved_arcface_loads_by_path_with_a_note(official_files, capsys):
    net = load_arcface(official_files["arcface"])
    assert "is not the published model_ir_se50.pth" in capsys.readouterr().out
    x = torch.rand(1, 3, 112, 112) * 2 - 1
    assert net(x).shape == (1, 512)  # a batch of one works (BatchNorm1d in eval mode)


def test_ffhq_preset_edits_and_scores(official_files):
    m = load_models("ffhq", "cpu", generator=str(official_files["generator"]), clip=str(official_files["clip"]),
                    arcface=str(official_files["arcface"]))
    assert m.G.size == 256 and isinstance(m.judges, OpenMeasures) and m.judges.lpips_fn is None
    assert "FFHQ StyleGAN2 256 px" in m.about and "LPIPS (n/a)" in m.about
    res, card, img0 = run_edits(m.G, m.clip_model, m.id_loss, m.judges, ["a smiling face"], 2, space="w+", views=0,
                                steps=2, batch=1, progress=False, precision="fp32", official_preprocess=True)
    assert res.img.shape == img0.shape == (2, 3, 256, 256) and res.history["clip"].shape == (2, 2)
    s = summarize(card)
    assert s["good"] is None and s["distance"] is None  # no judges; LPIPS n/a
    assert -1 <= s["clip_score"] <= 1 and 0 < s["id_similarity"] <= 1 + 1e-5 and s["seconds"] > 0
    assert not math.isnan(s["clip_gain"])


def test_fine_tune_an_official_layout_e4e_file_on_users_images(official_files, tmp_path):
    """Fine-tuning from an e4e file of the official layout (by path), on a user's images, with the IR-SE50
    identity loss: the encoder starts from the file and moves."""
    from conftest import dummy_identity_net
    from styleclip_utils.losses.identity import IDLoss
    from styleclip_utils.losses.perceptual import FeatureDistance
    from styleclip_utils.train.e4e import train_e4e
    from styleclip_utils.weights.official import load_e4e

    E0, G = load_e4e(official_files["e4e"], with_generator=True)
    images = (torch.rand(4, 3, 256, 256, generator=torch.Generator().manual_seed(0)) * 255).to(torch.uint8)
    E, run = train_e4e(images, G, IDLoss("arcface", load_arcface(official_files["arcface"])),
                       FeatureDistance(dummy_identity_net()), tmp_path, 2, E0.cfg, batch=2, init=E0.state_dict(),
                       progress=False)
    assert run.step == 2 and run.config["fine_tuned"]
    moved = [k for k, v in E.state_dict().items() if not torch.equal(v, E0.state_dict()[k])]
    assert moved and torch.equal(E.latent_avg, E0.latent_avg)
