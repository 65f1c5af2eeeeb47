"""Recipes: the files in recipes/ are the shipped models' training configurations, checked against the
records those models ship with; a recipe trains, resumes, evaluates and exports with one command."""
import json

import pytest
import torch

from conftest import TINY_CLASSIFIER_RECIPE, write_recipe
from styleclip_utils.metrics import quality
from styleclip_utils.paths import RECIPES_DIR
from styleclip_utils.train import recipes
from styleclip_utils.train.__main__ import main as train_main
from styleclip_utils.train.loop import read_log
from styleclip_utils.weights import zoo

ALL = sorted(p.stem for p in RECIPES_DIR.glob("*.toml"))
SHIPPED = dict(classifier="classifier", identity="identity", clip="clip_3_neutral", generator="generator_5_clip_fm",
               encoder="e4e", measure_judge="measure_judge", generator_both="generator_both")


@pytest.mark.parametrize("name", ALL)
def test_every_recipe_file_loads(name):
    R = recipes.load_recipe(name)
    assert R.name == name and R.run_name == name
    cfg = recipes.model_config(R, 53)
    kind = {"classifier": "ConvNetConfig", "identity": "ConvNetConfig", "identity_judge": "ConvNetConfig",
            "realism_judge": "ConvNetConfig", "measure_judge": "ConvNetConfig", "clip": "SmallCLIPConfig", "stylegan2": "GANConfig",
            "e4e": "E4EConfig", "mapper": "MapperConfig", "conditioned_mapper": "MapperConfig"}[R.model]
    assert type(cfg).__name__ == kind
    assert getattr(cfg, "size", getattr(cfg, "in_size", R.data["size"])) == R.data["size"]


@pytest.mark.parametrize("export_name, recipe", sorted(SHIPPED.items()))
def test_the_shipped_models_were_trained_by_their_recipes(export_name, recipe):
    """The record of each shipped file (written when it was trained) says what its recipe says."""
    record = zoo.read_record(export_name)
    R = recipes.load_recipe(recipe)
    assert (R.steps, R.seed, R.precision) == (record["steps"], record["seed"], record["precision"])
    assert {k: R.data[k] for k in ("n_images", "size")} == {k: record["data"][k] for k in ("n_images", "size")}
    cfg = recipes.model_config(R, len(record.get("attributes", ())))
    expected = record["config"]
    if export_name.startswith("generator"):
        from dataclasses import asdict
        got = dict(asdict(cfg), channels={str(k): v for k, v in cfg.channels.items()})
    elif export_name == "clip":
        from dataclasses import asdict
        got = dict(asdict(cfg), vision_layers=list(cfg.vision_layers))
        for key in ("label_captions", "label_on", "blur", "neutral", "lr"):
            assert R.train[key] == record[key], key
    elif export_name == "encoder":  # JSON has lists where the config has tuples
        from dataclasses import asdict
        got = dict(asdict(cfg), stage_units=list(cfg.stage_units), widths=list(cfg.widths))
    else:
        from dataclasses import asdict
        got = asdict(cfg)
    assert got == expected


def _chain(stage):
    """A recipe and the recipes its `init` goes back to, newest first."""
    chain = [recipes.load_recipe(stage)]
    while chain[-1].init.startswith("runs/train/"):
        chain.append(recipes.load_recipe(chain[-1].init.split("/")[2]))
    return chain


@pytest.mark.parametrize("export_name", ["generator", "clip"])
def test_each_stage_of_a_chain_is_a_recipe_and_the_lineage_matches(export_name):
    """generator_5 <- 4 <- 3 <- 2 <- 1 and clip_3 <- 2 <- 1: the steps of every stage are the ones the shipped
    file's record holds in its lineage (`init`, the file each stage started from, as it was then)."""
    chain = _chain(SHIPPED[export_name])
    assert len(chain) == {"generator": 5, "clip": 3}[export_name] and not chain[-1].init
    lineage, record = [], zoo.read_record(export_name)
    while record:
        lineage.append(record["steps"])
        record = record.get("init")
    assert lineage == [R.steps for R in chain]


@pytest.mark.parametrize("override, message", [
    ({"stepz": 3}, "unknown keys \\['stepz'\\]"),
    ({"steps": 0}, "steps must be a positive integer"),
    ({"config.widht": 8}, "unknown \\[config\\] keys \\['widht'\\]"),
    ({"train.label_on": "all"}, "unknown \\[train\\] keys \\['label_on'\\] for a classifier"),
    ({"data.size": 48}, "data.size must be 32, 64 or 128"),
    ({"precision": "fp16"}, "precision must be one of"),
    ({"device": "tpu"}, "device must be one of"),
    ({"config.width": "wide"}, "bad \\[config\\]"),
])
def test_bad_recipe_values_are_named(override, message):
    with pytest.raises(recipes.RecipeError, match=message):
        recipes.load_recipe("classifier", **override)


def test_unknown_recipe_and_bad_toml(tmp_path):
    with pytest.raises(recipes.RecipeError, match="no recipe 'classifer': give a name among"):
        recipes.load_recipe("classifer")
    with pytest.raises(recipes.RecipeError, match="not valid TOML"):
        recipes.load_recipe(write_recipe(tmp_path / "bad.toml", "model = \n"))


def test_overrides_name_their_own_run_folder():
    quick = recipes.load_recipe("classifier", steps=60, **{"data.n_images": 1000})
    assert quick.run_name.startswith("classifier@") and quick.data["n_images"] == 1000 and quick.steps == 60
    assert recipes.load_recipe("classifier", steps=60, **{"data.n_images": 1000}).run_name == quick.run_name
    assert recipes.load_recipe("classifier", **{"data.n_images": 1000}).run_name != quick.run_name  # lr schedule
    # a GAN's lr is constant: more steps go on with the same run
    assert recipes.load_recipe("generator_continue", steps=9000).run_name == "generator_continue"


def test_train_cli_trains_resumes_evaluates_and_exports(tmp_path):
    recipe = write_recipe(tmp_path / "tiny.toml", TINY_CLASSIFIER_RECIPE)
    out, weights = tmp_path / "runs", tmp_path / "weights"
    train_main([str(recipe), "--out", str(out), "--no-progress"])
    run = out / "tiny"
    assert {"checkpoint.pt", "log.jsonl", "config.json", "recipe.json", "metrics.json"} <= {p.name for p in run.iterdir()}
    assert json.loads((run / "recipe.json").read_text())["steps"] == 3
    metrics = json.loads((run / "metrics.json").read_text())
    assert not weights.exists()  # export is explicit
    log = (run / "log.jsonl").read_text()
    with pytest.raises(SystemExit):  # a finished run is not silently trained again
        train_main([str(recipe), "--out", str(out), "--no-progress"])
    train_main([str(recipe), "--out", str(out), "--no-progress", "--resume", "--export", str(weights)])
    assert (run / "log.jsonl").read_text() == log  # resumed at its last step: nothing trained again
    record = zoo.read_record("classifier", weights)
    assert record["recipe"] == "tiny" and record["steps"] == 3 and record["data"]["size"] == 32
    judge = zoo.load_classifier(root=weights)
    ckpt = torch.load(run / "checkpoint.pt", weights_only=True)
    assert all(torch.equal(v, ckpt["modules"]["model"][k]) for k, v in judge.state_dict().items())
    _, _, test = recipes.load_data(recipes.load_recipe(recipe))  # the exported file scores what the run measured
    assert record["metrics"] == metrics
    assert quality.classifier_accuracy(judge, test["images"], test["attrs"])[1] == metrics["mean_accuracy"]
    train_main([str(recipe), "--out", str(out), "--no-progress", "--set", "steps=5"])  # another schedule: new run
    assert sorted(p.name for p in out.iterdir()) == sorted(["tiny", recipes.load_recipe(recipe, steps=5).run_name])


def test_train_cli_rejects_before_any_work(tmp_path):
    recipe = write_recipe(tmp_path / "tiny.toml", TINY_CLASSIFIER_RECIPE)
    for bad in (["--set", "stepz=3"], ["--set", "steps"], ["--set", "data.size=48"]):
        with pytest.raises(SystemExit):
            train_main([str(recipe), "--out", str(tmp_path / "runs"), "--no-progress"] + bad)
    assert not (tmp_path / "runs").exists()


def test_a_chain_continues_from_the_previous_stage_and_records_it(tmp_path, tiny_weights, monkeypatch):
    """Stage 2 of a GAN chain starts from stage 1's exported generator (fresh D), stage 3 from stage 2's full
    checkpoint with the vision-aided D and feature matching on the small CLIP of `weights`; each exported
    record holds the lineage of the stages before it."""
    monkeypatch.setattr(recipes, "ROOT", tmp_path)  # init paths are relative to the project root
    gan = f"""
model = "stylegan2"
precision = "fp32"
eval_images = 8
weights = "{tiny_weights}"
[data]
n_images = 200
size = 32
[config]
style_dim = 32
n_mlp = 2
channels = {{ 4 = 16, 8 = 16, 16 = 16, 32 = 8 }}
batch = 4
"""
    write_recipe(tmp_path / "g1.toml", "steps = 2\n" + gan)
    write_recipe(tmp_path / "g2.toml", 'steps = 2\ninit = "runs/g1/generator.safetensors"\n' + gan
                 + "d_warmup = 1\n")
    write_recipe(tmp_path / "g3.toml", 'steps = 2\ninit = "runs/g2/checkpoint.pt"\n' + gan
                 + "clip_d = 0.5\nclip_fm = 1.0\n")
    for stage in ("g1", "g2", "g3"):
        train_main([str(tmp_path / f"{stage}.toml"), "--out", str(tmp_path / "runs"), "--no-progress"])
    rec = zoo.read_record("generator", tmp_path / "runs" / "g3")
    assert rec["recipe"] == "g3" and rec["init"]["file"] == "runs/g2/checkpoint.pt"
    assert rec["init"]["steps"] == 2 and rec["init"]["init"]["file"] == "runs/g1/generator.safetensors"
    assert {"g_clip", "fm"} <= set(read_log(tmp_path / "runs" / "g3")[-1])
    assert zoo.load_generator(root=tmp_path / "runs" / "g3").size == 32
    with pytest.raises(SystemExit):  # a stage whose input is missing says which recipe makes it
        write_recipe(tmp_path / "g4.toml", 'steps = 2\ninit = "runs/nowhere/checkpoint.pt"\n' + gan)
        train_main([str(tmp_path / "g4.toml"), "--out", str(tmp_path / "runs"), "--no-progress"])


def test_overrides_from_the_command_line_are_read_as_toml():
    assert recipes.parse_override("train.lr=1e-3") == ("train.lr", 1e-3)
    assert recipes.parse_override("steps = 500") == ("steps", 500)
    assert recipes.parse_override("train.label_on=prompts") == ("train.label_on", "prompts")
    assert recipes.parse_override('init="runs/train/x/checkpoint.pt"') == ("init", "runs/train/x/checkpoint.pt")
    assert recipes.parse_override("config.vision_layers=[1, 2, 1, 1]") == ("config.vision_layers", [1, 2, 1, 1])
    with pytest.raises(recipes.RecipeError, match="an override is KEY=VALUE"):
        recipes.parse_override("steps")


def test_e4e_recipe_trains_exports_and_fine_tunes(tmp_path, tiny_weights, monkeypatch):
    """The e4e recipe on the tiny models: trained and exported with its inversion table in the record; a second
    stage fine-tunes from the exported encoder (another folder of images, as a user's) and records its lineage."""
    monkeypatch.setattr(recipes, "ROOT", tmp_path)
    e4e = f"""
model = "e4e"
precision = "fp32"
eval_images = 8
weights = "{tiny_weights}"
[data]
n_images = 200
size = 32
[config]
stage_units = [1, 1, 1, 1]
widths = [16, 24, 32, 48]
block_width = 16
[train]
batch = 4
progressive_start = 1
progressive_step = 1
"""
    write_recipe(tmp_path / "e1.toml", "steps = 3\n" + e4e)
    write_recipe(tmp_path / "e2.toml", 'steps = 2\ninit = "runs/e1/encoder.safetensors"\n' + e4e.replace("seed = 0", "")
                 .replace("[data]", "[data]\nseed = 1"))
    for stage in ("e1", "e2"):
        train_main([str(tmp_path / f"{stage}.toml"), "--out", str(tmp_path / "runs"), "--no-progress"])
    rec = zoo.read_record("encoder", tmp_path / "runs" / "e2")
    assert rec["init"]["file"] == "runs/e1/encoder.safetensors" and rec["init"]["steps"] == 3
    assert {"mse", "identity_kept", "attributes_kept", "seconds_per_image"} <= set(rec["metrics"])
    assert rec["float16_keys"] and "latent_avg" not in rec["float16_keys"]
    E = zoo.load_encoder(root=tmp_path / "runs" / "e2")
    assert E(torch.rand(2, 3, 32, 32) * 2 - 1).shape == (2, 8, 32)
