"""The bad-input catalogue (docs/bad-inputs.md), part 1: weights files, presets, edits and notebook parameters.
Each case must end in a specific error that says what to do (or a documented note), with no partial output.
Part 2 (records, checkpoints on a full disk, renders, photos) is tests/test_bad_inputs_data.py."""
import os
import pickle
import re

import pytest
import torch

from conftest import dummy_clip, dummy_generator
from styleclip_utils import checks
from styleclip_utils.edit.optimize import EditConfig, EditDivergedError, edit
from styleclip_utils.edit.presets import check_generator, load_latents
from styleclip_utils.losses.clip_loss import CLIPLoss
from styleclip_utils.weights import registry
from styleclip_utils.weights.checkpoints import CheckpointError, load_checkpoint
from styleclip_utils.weights.official import load_lpips, load_stylegan2


@pytest.fixture(scope="module")
def G():
    return dummy_generator()


# --- weights files ---------------------------------------------------------------------------------------

def test_truncated_pt_at_every_cut_point(tmp_path):
    """Some cut points used to escape as a bare OSError [Errno 22] (the zip directory points past the end)."""
    torch.save({f"w{i}": torch.randn(64, 64) for i in range(6)}, tmp_path / "full.pt")
    data = (tmp_path / "full.pt").read_bytes()
    for cut in range(0, len(data), len(data) // 60):
        (tmp_path / "cut.pt").write_bytes(data[:cut])
        with pytest.raises(CheckpointError, match="not a readable weights file.*cut download"):
            load_checkpoint(tmp_path / "cut.pt")


class Payload:
    def __reduce__(self):  # unpickling this would run a shell command
        return (os.system, (f"touch {Payload.marker}",))


@pytest.mark.parametrize("kind", ["torch.save", "raw pickle"])
def test_malicious_pickle_is_not_a_weights_file(tmp_path, kind):
    Payload.marker = tmp_path / "ran"
    path = tmp_path / "evil.pt"
    if kind == "torch.save":
        torch.save({"g_ema": Payload()}, path)
    else:
        path.write_bytes(pickle.dumps({"g_ema": Payload()}))
    with pytest.raises(CheckpointError, match="is not a weights file: it asks Python to import (posix|os).system") as e:
        load_stylegan2(path)
    assert "truncated" not in str(e.value) and "cut" not in str(e.value)
    assert not Payload.marker.exists()  # and nothing ran


def test_latent_avg_of_the_wrong_shape(tmp_path, G):
    sd = G.state_dict()
    for bad in (torch.zeros(7), torch.zeros(3, G.style_dim), torch.zeros(G.n_latent, G.style_dim + 1)):
        torch.save({"g_ema": sd, "latent_avg": bad}, tmp_path / "g.pt")
        with pytest.raises(CheckpointError, match=re.escape(f"latent_avg has shape {tuple(bad.shape)}") + ".*mixes two models"):
            load_stylegan2(tmp_path / "g.pt")
    torch.save({"g_ema": sd, "latent_avg": torch.zeros(G.n_latent, G.style_dim)}, tmp_path / "g.pt")
    assert load_stylegan2(tmp_path / "g.pt").has_w_avg  # e4e's [n_latent, dim] is fine


def test_lpips_without_or_with_a_cut_backbone_is_na(tmp_path, monkeypatch, capsys):
    """A missing, cut or garbage AlexNet file makes LPIPS n/a with one line, never a crash."""
    monkeypatch.setenv(registry.CACHE_ENV, str(tmp_path))
    assert load_lpips(download_missing=False) is None
    (tmp_path / "alexnet-owt-7be5be79.pth").write_bytes(b"PK\x03\x04" + b"\0" * 1000)  # a cut download
    assert load_lpips(download_missing=False) is None
    (tmp_path / "mine.pth").write_bytes(b"garbage")  # a user's path to something else
    assert load_lpips(tmp_path / "mine.pth") is None
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 3 and all(line.startswith("LPIPS: n/a") and "alexnet-owt-7be5be79.pth" in line for line in lines)
    assert "not there" in lines[0] and "cut or not the published one" in lines[1] and "unreadable" in lines[2]


# --- presets and start codes -----------------------------------------------------------------------------

def test_generator_of_the_wrong_resolution_for_a_preset(G):
    check_generator(G, "synthfaces")  # the tests' 32 px SynthFaces generator
    with pytest.raises(ValueError, match="32 px with 32-d styles: not one for preset='ffhq'.*Use preset='synthfaces'"):
        check_generator(G, "ffhq")
    from styleclip_utils.models.stylegan2 import Generator
    with torch.device("meta"):
        big = Generator(size=256, style_dim=512, n_mlp=8)
    check_generator(big, "ffhq")
    with pytest.raises(ValueError, match="256 px with 512-d styles: not one for preset='synthfaces'"):
        check_generator(big, "synthfaces")


def test_latents_file_checked(tmp_path, G):
    torch.save(torch.randn(3, G.n_latent, G.style_dim), tmp_path / "ok.pt")
    assert load_latents(tmp_path / "ok.pt", G, 2).shape == (2, G.n_latent, G.style_dim)
    with pytest.raises(ValueError, match="holds 3 codes; n_images=5"):
        load_latents(tmp_path / "ok.pt", G, 5)
    torch.save(torch.randn(3, 18, 512), tmp_path / "ffhq.pt")  # a 1024 px generator's codes
    with pytest.raises(ValueError, match=r"expected W\+ codes \[N, 8, 32\].*got \(3, 18, 512\).*another size"):
        load_latents(tmp_path / "ffhq.pt", G, 1)
    torch.save({"a": 1, "b": 2}, tmp_path / "dict.pt")
    with pytest.raises(ValueError, match="got dict"):
        load_latents(tmp_path / "dict.pt", G, 1)


# --- edits -----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("space", ["w+", "s"])
def test_edit_that_diverges_while_finite_is_stopped(G, space):
    """lr 1e9 used to return a saturated image (finite losses) that the scorecard then read as an edit."""
    torch.manual_seed(0)
    z = torch.randn(2, G.style_dim)
    ws = G.broadcast(G.mapping(z, 0.7))
    loss = CLIPLoss(dummy_clip(), ["red hair"])
    with pytest.raises(EditDivergedError, match=f"the {re.escape(space)} edit diverged by step .*lower lr \\(now 1e\\+?09"):
        edit(G, loss, [0, 0], ws, EditConfig(space=space, steps=12, lr=1e9), progress=False)
    res = edit(G, loss, [0, 0], ws, EditConfig(space=space, steps=12, lr=0.1), progress=False)  # the official lr is fine
    assert res.img.abs().max() < 8


# --- notebook parameters ---------------------------------------------------------------------------------

@pytest.mark.parametrize("where", ["file", "unwritable"])
def test_out_dir_checked_before_any_work(tmp_path, where):
    bad = str(tmp_path / "a_file") if where == "file" else "/proc/styleclip-out"  # /proc: not even root writes
    (tmp_path / "a_file").write_text("x")
    message = "is a file, not a folder" if where == "file" else "is not writable"
    from test_notebooks import GOOD_01, GOOD_03
    with pytest.raises(ValueError, match=message):
        checks.check_03(**dict(GOOD_03, out_dir=bad))
    with pytest.raises(ValueError, match=message):
        checks.check_01(**dict(GOOD_01, out_dir=bad))
    with pytest.raises(ValueError, match=message):
        checks.check_03(**dict(GOOD_03, out_dir=str(tmp_path), figures_dir=bad))
    assert checks.writable_dir("out_dir", str(tmp_path / "new" / "run"), "") == tmp_path / "new" / "run"
    assert list((tmp_path / "new" / "run").iterdir()) == []  # the write test leaves nothing
