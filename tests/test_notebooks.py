"""Notebooks run end to end under papermill with small parameters (nbval checks the committed ones)."""
import json

import pytest
from papermill.exceptions import PapermillExecutionError

import torch

from styleclip_utils.paths import NOTEBOOKS_DIR
from styleclip_utils.runs import run_notebook
from styleclip_utils.data.attributes import PROMPT_ATTRIBUTES
from styleclip_utils.train.loop import read_log
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


@pytest.fixture(scope="module")
def tiny_weights(tmp_path_factory):
    """Notebook 00 with tiny budgets: the point is the wiring (train -> evaluate -> save -> load)."""
    tmp = tmp_path_factory.mktemp("nb00")
    params = dict(n_images=200, size=32, net_width=8, batch_nets=16, steps_classifier=3, steps_identity=3,
                  clip_width=8, clip_layers=1, clip_resolution=32, label_captions=8, batch_clip=16, steps_clip=3, steps_gan=2,
                  batch_gan=4, gan_channels=16, eval_images=8, weights_dir=str(tmp / "w"),
                  out_dir=str(tmp / "run"))
    run_notebook("00_train_synthfaces_models", params, out_dir=tmp / "run", progress=False)
    return tmp


def test_00_trains_and_ships_loadable_models(tiny_weights):
    from styleclip_utils import models
    w = tiny_weights / "w"
    records = {n: models.read_record(n, w) for n in models.NAMES}
    assert records["generator"]["steps"] == 2 and "relative_error" in records["generator"]["metrics"]
    assert set(records["clip"]["metrics"]["zero_shot"]) <= set(PROMPT_ATTRIBUTES)
    G = models.load_generator(root=w)
    assert G.size == 32 and G.has_w_avg
    judge = models.load_classifier(root=w)
    assert judge.attribute_names == records["classifier"]["attributes"]
    clip_model = models.load_clip(root=w)
    assert clip_model.visual.input_resolution == 32 and type(clip_model.visual).__name__ == "ModifiedResNet"
    assert records["clip"]["label_captions"] == 8
    assert models.load_identity_net(root=w)(G(torch.randn(2, G.style_dim))).shape == (2, 128)
    for name in ("samples.png", "truncation.png", "style_mixing.png", "top_generated.png", "summary.json"):
        assert (tiny_weights / "run" / name).exists()


def test_00_retrains_some_models_and_continues_shipped_ones(tiny_weights, tmp_path):
    """retrain=["clip", "stylegan2"] keeps the other two (records of how they were trained, metrics
    re-measured); gan_init and clip_init continue from exported files, and the records name those files.
    The GAN goes on with the vision-aided D and the feature matching on the CLIP this very run exported
    (gan_clip_d, gan_clip_fm)."""
    import shutil

    from styleclip_utils import models
    shutil.copytree(tiny_weights / "w", tmp_path / "w")
    before = {n: models.read_record(n, tmp_path / "w") for n in models.NAMES}
    params = dict(n_images=200, size=32, retrain=["clip", "stylegan2"], gan_d_warmup=1, gan_clip_d=0.5,
                  gan_clip_fm=2.0, gan_init=str(tiny_weights / "w" / "generator.safetensors"), steps_gan=3, batch_gan=4,
                  gan_channels=16, clip_init=str(tiny_weights / "w" / "clip.safetensors"), clip_width=8,
                  clip_resolution=32, label_captions=8, batch_clip=16, steps_clip=2, lr_clip=1e-4, eval_images=8,
                  weights_dir=str(tmp_path / "w"), out_dir=str(tmp_path / "run"))
    run_notebook("00_train_synthfaces_models", params, out_dir=tmp_path / "run", progress=False)
    after = {n: models.read_record(n, tmp_path / "w") for n in models.NAMES}
    for name in ("classifier", "identity"):
        assert {k: v for k, v in after[name].items() if k != "metrics"} == \
               {k: v for k, v in before[name].items() if k != "metrics"}
    assert after["classifier"]["metrics"] == before["classifier"]["metrics"]   # same weights, same data
    gen = after["generator"]
    assert gen["steps"] == 3 and gen["config"]["d_warmup"] == 1 and gen["config"]["clip_d"] == 0.5
    assert gen["config"]["clip_fm"] == 2.0
    assert {"g_clip", "fm"} <= set(read_log(tmp_path / "run" / "stylegan2")[-1])
    assert gen["init"]["steps"] == before["generator"]["steps"] and len(gen["init"]["sha256"]) == 64
    assert models.load_generator(root=tmp_path / "w").size == 32
    clip_rec = after["clip"]
    assert clip_rec["steps"] == 2 and clip_rec["init"]["steps"] == before["clip"]["steps"]
    assert clip_rec["float16_keys"] and models.load_clip(root=tmp_path / "w").visual.input_resolution == 32


def test_00_rejects_bad_parameters(tmp_path):
    params = dict(clip_resolution=48, weights_dir=str(tmp_path / "w"), out_dir=str(tmp_path))
    with pytest.raises(PapermillExecutionError, match="clip_resolution must be a multiple of 32"):
        run_notebook("00_train_synthfaces_models", params, out_dir=tmp_path, progress=False)
    assert not (tmp_path / "w").exists()
    bad = dict(params, clip_resolution=96, retrain=["gan"])
    with pytest.raises(PapermillExecutionError, match="retrain must be a list of models among"):
        run_notebook("00_train_synthfaces_models", bad, out_dir=tmp_path, progress=False)
    assert not (tmp_path / "w").exists()


@pytest.mark.parametrize("bad, message", [
    (dict(gan_init="nowhere.safetensors"), "gan_init: no generator file at"),
    (dict(clip_init="nowhere.safetensors"), "clip_init: no small CLIP file at"),
    (dict(lr_clip=0), "lr_clip must be a float in"),
    (dict(lr_gan="fast"), "lr_gan must be a float in"),
    (dict(label_on="eyes"), "label_on must be 'all' or 'prompts'"),
    (dict(clip_blur=2), "clip_blur must be a probability"),
    (dict(clip_neutral=-1.0), "clip_neutral must be a weight >= 0"),
    (dict(gan_clip_d=-0.5), "gan_clip_d must be a weight >= 0"),
    (dict(gan_clip_fm="strong"), "gan_clip_fm must be a weight >= 0"),
    (dict(steps_gan=0), "steps_gan must be a positive integer"),
])
def test_00_parameter_checks(bad, message):
    """The checks notebook 00's second cell runs (train_all.check_parameters), one bad value at a time."""
    from styleclip_utils import train_all
    from styleclip_utils.runs import notebook_parameters
    P = notebook_parameters(train_all.NOTEBOOK)
    train_all.check_parameters(dict(P))   # the committed values pass
    with pytest.raises((ValueError, FileNotFoundError), match=message):
        train_all.check_parameters(dict(P, **bad))


def test_03_compares_spaces(tiny_weights, tmp_path):
    params = dict(prompts=["red hair", "smiling"], spaces=["z", "w+", "coarse", "fine"], steps=3, n_images=2,
                  clip_views=2, weights_dir=str(tiny_weights / "w"), out_dir=str(tmp_path))
    out = run_notebook("03_latent_optimization", params, out_dir=tmp_path, progress=False)
    # strict JSON: no NaN (LPIPS is null where its backbone is missing), readable by any tool
    metrics = json.loads((tmp_path / "metrics.json").read_text(),
                         parse_constant=lambda c: pytest.fail(f"metrics.json holds {c}"))
    assert metrics["parameters"]["clip_views"] == 2
    assert [(r["prompt"], r["space"]) for r in metrics["table"]] == [
        (p, s) for s in ["z", "w+", "coarse", "fine"] for p in ["red hair", "smiling"]]
    assert all(0 <= r["success"] <= 1 and 0 <= r["preservation"] <= 1 for r in metrics["table"])
    assert (tmp_path / "edits.png").exists() and (tmp_path / "clip_loss.png").exists()
    text = out.read_text()
    assert "| prompt | space | success |" in text and "Highest success rate" in text


def test_03_rejects_bad_parameters(tmp_path):
    with pytest.raises(PapermillExecutionError, match="unknown: \\['blue skin'\\]"):
        run_notebook("03_latent_optimization", dict(prompts=["blue skin"], out_dir=str(tmp_path)), out_dir=tmp_path,
                     progress=False)
    with pytest.raises(PapermillExecutionError, match="clip_views must be an integer >= 0"):
        run_notebook("03_latent_optimization", dict(clip_views=-1, out_dir=str(tmp_path)), out_dir=tmp_path,
                     progress=False)


@pytest.mark.parametrize("path", sorted(NOTEBOOKS_DIR.glob("[0-9][0-9]_*.ipynb")), ids=lambda p: p.stem)
def test_parameters_cell_is_first_and_papermill_reads_every_line(path):
    """One literal per line with a comment; a comment papermill cannot parse drops that parameter silently."""
    import nbformat
    from papermill import inspect_notebook

    nb = nbformat.read(path, as_version=4)
    first = next(c for c in nb.cells if c.cell_type == "code")
    assert "parameters" in first.metadata.get("tags", [])
    names = [line.split("=")[0].strip() for line in first.source.splitlines() if line.strip()]
    assert all("#" in line for line in first.source.splitlines() if line.strip()), "every parameter has a comment"
    assert list(inspect_notebook(str(path))) == names


def test_a_kept_injected_cell_does_not_override_the_parameters_cell(tmp_path):
    """A committed notebook may keep papermill's injected cell (how its outputs were made); a run without
    parameters uses the parameters cell, a run with parameters replaces the injected cell."""
    import nbformat
    from nbformat.v4 import new_code_cell, new_notebook

    cells = [new_code_cell("x = 1  # the value", metadata={"tags": ["parameters"]}),
             new_code_cell("x = 2", metadata={"tags": ["injected-parameters"]}),
             new_code_cell("print(f'x is {x}')")]
    path = tmp_path / "nb.ipynb"
    nbformat.write(new_notebook(cells=cells, metadata={"kernelspec": {"name": "python3", "language": "python",
                                                                      "display_name": "Python 3"}}), path)
    for params, expected in (({}, "x is 1"), ({"x": 3}, "x is 3")):
        out = run_notebook(path, params, out_dir=tmp_path / "run", progress=False)
        assert expected in out.read_text()
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["nb.ipynb", "run.json"]


def test_notebook_parameters_are_read_and_rewritten_in_place(tmp_path):
    """set_parameters changes only the named values (comments kept, papermill still reads every line)."""
    import shutil

    import nbformat
    from papermill import inspect_notebook

    from styleclip_utils.runs import notebook_parameters, set_parameters

    path = tmp_path / "00.ipynb"
    shutil.copy(NOTEBOOKS_DIR / "00_train_synthfaces_models.ipynb", path)
    before = notebook_parameters(path)
    assert before["size"] == 64 and before["weights_dir"] == ""
    set_parameters(path, steps_gan=123, device="cuda")
    after = notebook_parameters(path)
    assert after == dict(before, steps_gan=123, device="cuda")
    source = nbformat.read(path, as_version=4).cells[1].source
    assert "steps_gan = 123" in source and "# StyleGAN2 steps" in source
    assert list(inspect_notebook(str(path))) == list(after)
    with pytest.raises(ValueError, match="no parameters \\['stepz'\\]"):
        set_parameters(path, stepz=1)
