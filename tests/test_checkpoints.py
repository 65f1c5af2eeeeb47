"""Loaders accept the real checkpoint layouts and reject wrong files with one clear CheckpointError."""
import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from styleclip_utils.weights.checkpoints import CheckpointError, load_checkpoint
from styleclip_utils.weights.official import load_stylegan2

DATA = Path(__file__).parent / "data"


@pytest.fixture(scope="module")
def golden():
    return torch.load(DATA / "stylegan2_rosinality_64.pt", weights_only=True)


@pytest.fixture(scope="module")
def sd256():
    """Random weights with exactly the keys and shapes of an official 256 px config-f g_ema."""
    shapes = json.loads((DATA / "stylegan2_config_f_256_manifest.json").read_text())["state_dict_shapes"]
    g = torch.Generator().manual_seed(0)
    return {k: torch.randn(*s, generator=g) * 0.1 for k, s in shapes.items()}


def test_rosinality_pt_with_latent_avg(tmp_path, sd256):
    latent_avg = torch.randn(512)
    torch.save({"g_ema": sd256, "latent_avg": latent_avg, "d": {"x": torch.zeros(1)}}, tmp_path / "g.pt")
    G = load_stylegan2(tmp_path / "g.pt")
    assert G.size == 256 and G.n_latent == 14 and G.style_dim == 512 and G.n_mlp == 8
    assert torch.equal(G.w_avg, latent_avg) and not G.training
    assert torch.equal(G.state_dict()["convs.3.conv.weight"], sd256["convs.3.conv.weight"])


def test_e4e_layout_decoder_keys(tmp_path, sd256):
    """e4e / mapper checkpoints keep the generator under decoder.* and latent_avg as [n_latent, 512]."""
    sd = {f"decoder.{k}": v for k, v in sd256.items()}
    sd["encoder.input_layer.0.weight"] = torch.zeros(64, 3, 3, 3)
    avg = torch.randn(512).expand(14, 512).clone()
    torch.save({"state_dict": sd, "latent_avg": avg, "opts": {"stylegan_size": 1024}}, tmp_path / "e4e.pt")
    G = load_stylegan2(tmp_path / "e4e.pt")  # size from the keys (256), not from opts (1024)
    assert G.size == 256 and torch.equal(G.w_avg, avg[0])


def test_golden_small_config_inferred(tmp_path, golden):
    torch.save({"g_ema": golden["state_dict"]}, tmp_path / "small.pt")
    G = load_stylegan2(tmp_path / "small.pt")
    assert G.channels == {int(k): v for k, v in golden["config"]["channels"].items()}
    assert G.n_mlp == 3 and G.style_dim == 64
    with torch.no_grad():
        img = G.synthesis(golden["inputs"]["wplus"])
    ref = golden["outputs"]["img_wplus"]
    assert (img - ref).abs().max() <= 1e-4 * ref.abs().max()


def test_safetensors_layout(tmp_path, golden):
    flat = {f"g_ema.{k}": v.contiguous() for k, v in golden["state_dict"].items()}
    flat["latent_avg"] = torch.ones(64)
    save_file(flat, str(tmp_path / "g.safetensors"))
    G = load_stylegan2(tmp_path / "g.safetensors")
    assert G.has_w_avg and torch.equal(G.w_avg, torch.ones(64))


def test_missing_key_and_wrong_shape_listed(tmp_path, sd256):
    bad = dict(sd256)
    del bad["convs.3.noise.weight"]
    bad["to_rgbs.1.bias"] = torch.zeros(1, 4, 1, 1)
    bad["extra.thing"] = torch.zeros(1)
    torch.save({"g_ema": bad}, tmp_path / "bad.pt")
    with pytest.raises(CheckpointError) as e:
        load_stylegan2(tmp_path / "bad.pt")
    msg = str(e.value)
    assert "missing keys (1): convs.3.noise.weight" in msg
    assert "unexpected keys (1): extra.thing" in msg
    assert "to_rgbs.1.bias: file (1, 4, 1, 1) vs model (1, 3, 1, 1)" in msg


class NotWeights:  # a pickled object: weights_only must refuse it
    def __init__(self):
        self.x = 1


def test_pickle_that_is_not_weights(tmp_path):
    torch.save({"g_ema": NotWeights()}, tmp_path / "obj.pt")
    with pytest.raises(CheckpointError, match="NotWeights.*weights_only=True.*state dict"):
        load_checkpoint(tmp_path / "obj.pt")


@pytest.mark.parametrize("content", [b"", b"not a checkpoint at all", b"PK\x03\x04garbage", b"half a checkpoint"])
def test_corrupt_file(tmp_path, content):
    (tmp_path / "c.pt").write_bytes(content)
    with pytest.raises(CheckpointError, match="not a readable weights file"):
        load_checkpoint(tmp_path / "c.pt")


def test_truncated_checkpoint(tmp_path, golden):
    torch.save({"g_ema": golden["state_dict"]}, tmp_path / "full.pt")
    data = (tmp_path / "full.pt").read_bytes()
    (tmp_path / "cut.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError):
        load_stylegan2(tmp_path / "cut.pt")


def test_corrupt_safetensors(tmp_path):
    (tmp_path / "x.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json}")
    with pytest.raises(CheckpointError, match="safetensors"):
        load_checkpoint(tmp_path / "x.safetensors")


def test_checkpoint_without_generator(tmp_path):
    torch.save({"state_dict": {"encoder.w": torch.zeros(1)}, "opts": {}}, tmp_path / "enc.pt")
    with pytest.raises(CheckpointError, match="no StyleGAN2 generator found.*'opts', 'state_dict'"):
        load_stylegan2(tmp_path / "enc.pt")


def test_missing_file_and_unknown_name(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a registered file name"):
        load_stylegan2(tmp_path / "nope.pt")
