"""Bad inputs and faults around the data and the files a user relies on: damaged JSON records, a full disk during
a write, an interrupted dataset render, a GIF whose face is in a later frame, a face cut by the photo's border.
Each gives a specific error (or a documented warning) and leaves no partial output."""
import errno
import os
import shutil
import subprocess
import sys
import warnings
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

from styleclip_utils.data import align, layout, synthfaces
from styleclip_utils.data.align import FaceCutWarning, NoFaceError, align_face, ffhq_quad
from styleclip_utils.data.render import photo_scene
from styleclip_utils.files import BadJSONError, read_json, write_json
from styleclip_utils.train import loop, recipes
from styleclip_utils.weights import zoo


@pytest.fixture
def weights(tiny_weights, tmp_path):
    """A copy of the tiny SynthFaces weights folder, free to damage."""
    return shutil.copytree(tiny_weights, tmp_path / "weights")


def cut_in_half(path):
    text = path.read_text()
    path.write_text(text[:len(text) // 2])  # what a killed write or a bad copy leaves


@pytest.fixture(scope="module")
def small_scene():
    """A SynthFaces face in a 400x320 photo (MTCNN takes ~0.02 s a frame) and its 5 landmarks. MTCNN is built
    here, once (~3 s: it imports torchvision), so the tests time only what they test."""
    align._mtcnn()
    return photo_scene(1, 256, canvas=(400, 320), scale=0.9, center=(200, 160))


# ----------------------------------------------------------------------------------------------------
# 1. Corrupt or incomplete JSON

def test_truncated_model_record_names_the_file_and_the_fix(weights):
    cut_in_half(weights / "clip.json")
    with pytest.raises(zoo.BadRecordError, match=r"clip\.json is not valid JSON .*truncated or corrupt.*"
                                                 r"Restore it from git .*re-export the model"):
        zoo.load_clip(root=weights)
    assert issubclass(zoo.BadRecordError, ValueError)


def test_truncated_shipped_record_says_which_git_checkout(tmp_path, monkeypatch):
    """A record under the checkout: the message gives the exact command that restores it."""
    shipped = tmp_path / "data" / "weights" / "synthfaces"
    shipped.mkdir(parents=True)
    (shipped / "classifier.json").write_text('{"config": {"width": ')
    monkeypatch.setattr(zoo, "ROOT", tmp_path)
    monkeypatch.setattr(zoo, "SYNTHFACES_DIR", shipped)
    with pytest.raises(zoo.BadRecordError, match="git checkout data/weights/synthfaces/classifier.json"):
        zoo.read_record("classifier")


@pytest.mark.parametrize("name, key, load", [("classifier", "config", zoo.load_classifier),
                                             ("classifier", "attributes", zoo.load_classifier),
                                             ("identity_judge", "n_shape", zoo.load_identity_judge),
                                             ("realism", "metrics.threshold", zoo.load_realism_judge)])
def test_record_without_a_key_its_loader_reads(weights, name, key, load):
    record = read_json(weights / f"{name}.json", fix="")
    *parents, last = key.split(".")
    node = record
    for part in parents:
        node = node[part]
    del node[last]
    write_json(weights / f"{name}.json", record)
    with pytest.raises(zoo.BadRecordError, match=rf"{name}\.json has no '{key}' entry.*re-export"):
        load(root=weights)


def test_run_log_cut_mid_line_is_read_and_a_damaged_line_is_named(tmp_path):
    (tmp_path / "log.jsonl").write_text('{"step": 10, "loss": 1.0}\n{"step": 20, "loss": 0.9}\n{"step": 3')
    assert [r["step"] for r in loop.read_log(tmp_path)] == [10, 20]  # the cut last line is redone on resume
    (tmp_path / "log.jsonl").write_text('{"step": 10, "loss": 1.0}\n{"step": 2\n{"step": 30, "loss": 0.8}\n')
    with pytest.raises(BadJSONError, match=r"log\.jsonl line 2 is not valid JSON.*Delete the line"):
        loop.read_log(tmp_path)


def test_damaged_dataset_config(tmp_path):
    root = synthfaces.generate(tmp_path / "set", n=4, size=16, workers=1, progress=False)
    cut_in_half(root / "config.json")
    with pytest.raises(BadJSONError, match=r"set/config\.json is not valid JSON.*Render the set again"):
        synthfaces.identity_traits_of(root)
    with pytest.raises(layout.DatasetLayoutError, match=r"config\.json is not valid JSON.*delete it"):
        layout.validate_layout(root)
    write_json(root / "config.json", {"renderer_version": 1})
    with pytest.raises(BadJSONError, match=r"config\.json has no 'seed' entry"):
        synthfaces.identity_traits_of(root)


def test_damaged_record_of_a_recipes_init_file(tmp_path):
    init = tmp_path / "clip.safetensors"
    init.write_bytes(b"weights")
    (tmp_path / "clip.json").write_text("{")
    (tmp_path / "run").mkdir()
    with pytest.raises(BadJSONError, match=r"clip\.json is not valid JSON.*this recipe's init file"):
        recipes.write_lineage(SimpleNamespace(init=str(init)), tmp_path / "run")
    assert not (tmp_path / "run" / "init.json").exists()


# ----------------------------------------------------------------------------------------------------
# 2. A full disk (or another write error) during a checkpoint or an export

def disk_fails(code, like_torch=False):
    """A torch.save that writes part of the file, then fails as the disk would. like_torch: as torch.save really
    does on a full disk, a RuntimeError ("unexpected pos") raised while closing the zip, the OSError its context."""
    def save(obj, f, *args, **kwargs):
        fh = open(f, "ab") if isinstance(f, (str, os.PathLike)) else f
        fh.write(b"PK\x03\x04 half a checkpoint")
        fh.flush()
        try:
            raise OSError(code, os.strerror(code))
        finally:
            if like_torch:
                raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 704 vs 598")
    return save


@pytest.mark.parametrize("like_torch", [False, True])
def test_full_disk_during_a_checkpoint_keeps_the_previous_one(tmp_path, monkeypatch, like_torch):
    path = tmp_path / "run" / "checkpoint.pt"
    loop.atomic_save({"step": 500}, path)
    monkeypatch.setattr(torch, "save", disk_fails(errno.ENOSPC, like_torch))
    with pytest.raises(OSError, match=r"disk is full: writing .*checkpoint\.pt failed.*left intact. Free some space, "
                                      r"or write to another folder \(another out_dir\)") as e:
        loop.atomic_save({"step": 1000}, path)
    assert e.value.errno == errno.ENOSPC
    assert os.listdir(path.parent) == ["checkpoint.pt"]  # no temp file left
    assert torch.load(path, weights_only=True) == {"step": 500}


def test_other_write_error_during_a_checkpoint(tmp_path, monkeypatch):
    monkeypatch.setattr(torch, "save", disk_fails(errno.EIO))
    with pytest.raises(OSError, match=r"writing .*checkpoint\.pt failed \(Input/output error\).*writable"):
        loop.atomic_save({"step": 1}, tmp_path / "checkpoint.pt")
    assert os.listdir(tmp_path) == []


def test_full_disk_during_an_export_keeps_the_previous_model(weights, monkeypatch):
    before = {p.name: p.read_bytes() for p in weights.iterdir() if p.is_file()}

    def full(tensors):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    monkeypatch.setattr(zoo, "save", full)
    with pytest.raises(OSError, match=r"disk is full: writing .*classifier\.safetensors failed"):
        zoo.save_model("classifier", {"w": torch.zeros(2)}, {}, root=weights)
    assert {p.name: p.read_bytes() for p in weights.iterdir() if p.is_file()} == before


# ----------------------------------------------------------------------------------------------------
# 3. An interrupted dataset render

@pytest.mark.parametrize("fault", [KeyboardInterrupt, RuntimeError])
def test_interrupted_render_leaves_no_temp_folder_and_the_previous_set(tmp_path, monkeypatch, fault):
    out = synthfaces.generate(tmp_path / "set", n=4, size=16, workers=1, progress=False)
    before = (out / "config.json").read_text()
    render, done = synthfaces._render_item, []

    def render_then_fail(job):
        if len(done) == 3:
            raise fault("stopped mid-render")
        done.append(job[0])
        return render(job)
    monkeypatch.setattr(synthfaces, "_render_item", render_then_fail)
    with pytest.raises(fault):
        synthfaces.generate(out, n=8, size=16, seed=1, workers=1, progress=False)
    assert len(done) == 3
    assert sorted(os.listdir(tmp_path)) == ["set"]
    assert (out / "config.json").read_text() == before


def test_stale_temp_folder_of_a_killed_render_is_removed(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()  # its pid is no longer running
    for pid in (dead.pid, os.getppid()):  # the parent (pytest's shell) is alive: another render at work
        (tmp_path / f".set.tmp-{pid}" / synthfaces.IMG_DIR).mkdir(parents=True)
    (tmp_path / f".set.old-{dead.pid}").mkdir()
    synthfaces.generate(tmp_path / "set", n=2, size=16, workers=1, progress=False)
    assert sorted(os.listdir(tmp_path)) == sorted([f".set.tmp-{os.getppid()}", "set"])


# ----------------------------------------------------------------------------------------------------
# 4. A GIF whose face is in a later frame

def test_gif_with_the_face_in_the_second_frame(small_scene, tmp_path):
    photo, truth = small_scene
    Image.new("RGB", photo.size, (128, 128, 128)).save(tmp_path / "anim.gif", save_all=True,
                                                       append_images=[photo])
    with pytest.warns(UserWarning, match=r"anim\.gif has 2 frames and no face before frame 1: aligning frame 1"):
        out, info = align_face(tmp_path / "anim.gif", size=64, return_info=True)
    assert info["frame"] == 1 and any("aligning frame 1" in w for w in info["warnings"])
    assert np.abs(info["landmarks"] - truth).max() < 6  # the face, not something found in the grey frame
    with Image.open(tmp_path / "anim.gif") as gif:  # frame 1 as its own image: the same crop
        gif.seek(1)
        frame1 = gif.convert("RGB")
    np.testing.assert_array_equal(np.asarray(out), np.asarray(align_face(frame1, size=64)))


def test_gif_without_a_face_in_any_frame(small_scene, tmp_path):
    grey = Image.new("RGB", small_scene[0].size, (128, 128, 128))
    grey.save(tmp_path / "blank.gif", save_all=True, append_images=[Image.new("RGB", grey.size, (90, 90, 90))])
    with pytest.raises(NoFaceError, match=r"no face found in any of its 2 frames of .*blank\.gif.*frame="):
        align_face(tmp_path / "blank.gif", size=64)


# ----------------------------------------------------------------------------------------------------
# 5. A face cut by the photo's border

def test_face_cut_by_the_border_warns(small_scene):
    photo, truth = small_scene
    x0 = int(truth[0, 0]) - 20  # the photo starts 20 px left of the left eye
    cut, moved = photo.crop((x0, 0, photo.width, photo.height)), truth - [x0, 0]
    beyond = -0.5 - ffhq_quad(moved)[:, 0].min()
    with pytest.warns(FaceCutWarning, match=rf"cut by the photo's border: the FFHQ crop reaches up to {beyond:.0f} px "
                                            r"\(\d+% of its side\) beyond the photo's left edge.*reflection padding.*"
                                            r"more margin around the face"):
        _, info = align_face(cut, size=64, landmarks=moved, return_info=True)
    assert any("cut by the photo's border" in w for w in info["warnings"])


def test_well_framed_face_does_not_warn(small_scene):
    photo, truth = small_scene
    with warnings.catch_warnings():
        warnings.simplefilter("error", FaceCutWarning)
        _, info = align_face(photo, size=64, landmarks=truth, return_info=True)
    assert info["warnings"] == []
