"""Notebooks run end to end under papermill with small parameters (nbval checks the committed ones)."""
import json

import pytest
from papermill.exceptions import PapermillExecutionError

from styleclip_utils.runs import run_notebook
from test_datasets import make_celeba


def test_01_synthfaces(tmp_path):
    params = dict(n_images=40, size=32, seed=3, data_dir=str(tmp_path / "sf"), figures_dir=str(tmp_path / "fig"),
                  out_dir=str(tmp_path / "run"), align_size=64)
    out = run_notebook("01_data_prep", params, out_dir=tmp_path / "run", progress=False)
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["dataset"] == "synthfaces" and summary["n_images"] == 40 and summary["size"] == 32
    assert sum(summary["split"].values()) == 40
    assert {p.name for p in (tmp_path / "fig").iterdir()} == {"01_samples.png", "01_attribute_frequencies.png",
                                                              "01_landmarks.png", "01_alignment.png"}
    assert "eye error in the 64 px crop" in out.read_text()
    assert json.loads((tmp_path / "run" / "run.json").read_text())["parameters"]["n_images"] == 40


def test_01_celeba_hq_folder(tmp_path):
    make_celeba(tmp_path / "CelebAMask-HQ", n=24, size=128)
    params = dict(dataset="celeba_hq", data_dir=str(tmp_path / "CelebAMask-HQ"), size=32,
                  figures_dir=str(tmp_path / "fig"), out_dir=str(tmp_path / "run"), align_size=64)
    out = run_notebook("01_data_prep", params, out_dir=tmp_path / "run", progress=False)
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["dataset"] == "celeba_hq" and summary["n_images"] == 24
    assert (tmp_path / "CelebAMask-HQ_32px" / "CelebA-HQ-img" / "0.png").exists()  # resized copy
    assert "CelebA-HQ folder: 24 images of (128, 128) px" in out.read_text()


@pytest.mark.parametrize("params, message", [
    (dict(dataset="ffhq"), "dataset must be 'synthfaces' or 'celeba_hq'"),
    (dict(dataset="celeba_hq"), "needs data_dir"),
    (dict(size=100), "size must be one of"),
    (dict(n_images=5), "n_images must be an integer >= 20"),
    (dict(photo="/nonexistent.jpg"), "does not exist"),
])
def test_01_rejects_bad_parameters(tmp_path, params, message):
    with pytest.raises(PapermillExecutionError, match=message):
        run_notebook("01_data_prep", dict(params, out_dir=str(tmp_path)), out_dir=tmp_path, progress=False)
    assert not (tmp_path / "01_data_prep.ipynb").exists()  # a failed run leaves no finished-looking notebook
