"""The SynthFaces model zoo: the small generator, CLIP, identity net and attribute classifier that the
project trains on SynthFaces (notebook 00) and ships in `data/weights/synthfaces/`.

Each model is two files: `<name>.safetensors` (weights) and `<name>.json` (the record: config, steps,
seed, wall time, device, commit, metrics). One call loads each:

    G = load_generator()            # rosinality-layout Generator with its average w
    clip_model = load_clip()        # clip.model.CLIP (the class of ViT-B/32 and RN50)
    id_net = load_identity_net()    # image in [-1, 1] -> L2-normalised embedding
    judge = load_classifier()       # attribute logits; the judge of edits, never an editing loss
"""
import os
import subprocess
from pathlib import Path

import torch
from safetensors.torch import save

from . import checkpoints
from .official import load_e4e, load_stylegan2
from ..files import BadJSONError, atomic_write, read_json, write_json
from ..models.mapper import ConditionedMapper, LevelsMapper, MapperConfig, mapper_slug
from ..models.nets import (AttributeClassifier, ConvNetConfig, IdentityJudge, IdentityNet, MeasureJudge, RealismJudge,
                           SmallCLIPConfig, small_clip)
from ..paths import ROOT, WEIGHTS_DIR

SYNTHFACES_DIR = WEIGHTS_DIR / "synthfaces"
NAMES = ("generator", "clip", "identity", "classifier", "identity_judge", "realism", "encoder", "measure_judge",
         "generator_both")
# what the load_* functions read from each record: checked up front, so a damaged record is named
RECORD_KEYS = dict(clip=("config",), identity=("config",), classifier=("config", "attributes"),
                   identity_judge=("config", "traits", "n_shape", "metrics"),  # metrics: the scorecard's rule
                   realism=("config", "metrics.threshold"), encoder=("config",), measure_judge=("config", "measures"))


class MissingModelError(FileNotFoundError):
    """A SynthFaces model file is not there."""


class BadRecordError(BadJSONError):
    """A SynthFaces record (`<name>.json`) that is truncated, corrupt or lacks what its loader reads."""


def git_commit():
    """The checkout's commit; STYLECLIP_COMMIT names it where there is no .git (a copied tree on a GPU box)."""
    if os.environ.get("STYLECLIP_COMMIT"):
        return os.environ["STYLECLIP_COMMIT"]
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                              timeout=10).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def save_model(name, state_dict, record, root=None, half=()):
    """Write `<name>.safetensors` and `<name>.json` atomically. Keys in `half` are stored as float16 (the
    small CLIP's 49408-row token table would otherwise dominate the repo's weight budget)."""
    root = Path(root or SYNTHFACES_DIR)
    (root / name).parent.mkdir(parents=True, exist_ok=True)  # "mappers/red_hair": a subfolder
    tensors = {k: (v.half() if k in half else v).detach().cpu().contiguous() for k, v in state_dict.items()}
    record = dict(record, name=name, commit=record.get("commit") or git_commit(), float16_keys=sorted(half))
    # bytes through a Python file: save_file(path) reports a full disk as an opaque SafetensorError
    atomic_write(root / f"{name}.safetensors", lambda f: f.write(save(tensors)))
    write_json(root / f"{name}.json", record)
    return root / f"{name}.safetensors"


def read_record(name, root=None):
    path = Path(root or SYNTHFACES_DIR) / f"{name}.json"
    if not path.exists():
        raise MissingModelError(f"no SynthFaces {name} record at {path}. The shipped weights live in "
                                f"data/weights/synthfaces/; notebooks/00_train_synthfaces_models.ipynb makes them.")
    # a shipped record is restored from git; a record of one's own run, by exporting the model again
    rel = path.resolve().relative_to(ROOT) if path.resolve().is_relative_to(ROOT) else path
    return read_json(path, required=RECORD_KEYS.get(name, ()), error=BadRecordError,
                     fix=f"Restore it from git (git checkout {rel}) if it is a shipped model, or re-export the "
                         f"model (python -m styleclip_utils.train <recipe> --export, or notebook 00).")


def _load(name, root):
    record = read_record(name, root)
    sd = checkpoints.load_checkpoint(Path(root or SYNTHFACES_DIR) / f"{name}.safetensors")
    return record, {k: v.float() for k, v in sd.items()}  # float16-stored keys back to float32


def _finish(model, sd, name, device):
    checkpoints.check_state_dict(model, sd, what=f"SynthFaces {name}")
    model.load_state_dict(sd)
    return model.eval().requires_grad_(False).to(device)


def load_generator(device="cpu", root=None, name="generator"):
    """A shipped generator: "generator" (SynthFaces) or "generator_both" (natural + toon, notebook 06)."""
    path = Path(root or SYNTHFACES_DIR) / f"{name}.safetensors"
    read_record(name, root)  # a clear error when missing
    G = load_stylegan2(path, device=device)
    G.memory_format = torch.channels_last  # ~20% faster edits on CPU (oneDNN) and GPU (cuDNN)
    return G


def load_clip(device="cpu", root=None):
    record, sd = _load("clip", root)
    cfg = SmallCLIPConfig(**record["config"])
    return _finish(small_clip(cfg), sd, "clip", device)


def load_identity_net(device="cpu", root=None):
    record, sd = _load("identity", root)
    return _finish(IdentityNet(ConvNetConfig(**record["config"])), sd, "identity", device)


def load_classifier(device="cpu", root=None):
    record, sd = _load("classifier", root)
    model = AttributeClassifier(ConvNetConfig(**record["config"]), record["attributes"])
    return _finish(model, sd, "classifier", device)


def load_identity_judge(device="cpu", root=None):
    """The judge of "same person" (identity traits); its record holds the calibrated rule (`metrics`)."""
    record, sd = _load("identity_judge", root)
    model = IdentityJudge(ConvNetConfig(**record["config"]), record["traits"], record["n_shape"])
    return _finish(model, sd, "identity_judge", device)


def load_realism_judge(device="cpu", root=None):
    """The realism judge, with the threshold calibrated when it was trained (its record's metrics)."""
    record, sd = _load("realism", root)
    model = RealismJudge(ConvNetConfig(**record["config"]), threshold=record["metrics"]["threshold"])
    return _finish(model, sd, "realism", device)


def load_measure_judge(device="cpu", root=None):
    """The judge of the renderer's face measures and of the domain (notebook 06's attribute directions)."""
    record, sd = _load("measure_judge", root)
    return _finish(MeasureJudge(ConvNetConfig(**record["config"]), record["measures"]), sd, "measure_judge", device)


def load_encoder(device="cpu", root=None):
    """The SynthFaces e4e encoder (models.e4e.E4E: image -> W+ of the shipped generator)."""
    read_record("encoder", root)  # a clear error when missing or damaged
    return load_e4e(Path(root or SYNTHFACES_DIR) / "encoder.safetensors", device=device, note=False)


def mapper_prompts(root=None):
    """The prompts of the per-prompt mappers in `root`/mappers/ (their records' `prompt`)."""
    folder = Path(root or SYNTHFACES_DIR) / "mappers"
    return sorted(read_record(f"mappers/{p.stem}", root)["prompt"] for p in folder.glob("*.json") if p.stem != "conditioned")


def load_mapper(prompt, device="cpu", root=None):
    """The SynthFaces latent mapper trained for `prompt` (models.mapper.LevelsMapper; its record's alpha is
    the strength it was evaluated at)."""
    name = f"mappers/{mapper_slug(prompt)}"
    try:
        record, sd = _load(name, root)
    except MissingModelError:
        raise MissingModelError(f"no SynthFaces mapper for {prompt!r}; shipped: {mapper_prompts(root)}. Train one: "
                                f"python -m styleclip_utils.train mapper --set train.prompt='{prompt}' --export") from None
    cfg = MapperConfig(**dict(record["config"], levels=tuple(record["config"]["levels"])))
    return _finish(LevelsMapper(cfg), sd, name, device)


def load_conditioned_mapper(device="cpu", root=None):
    """The SynthFaces text-conditioned mapper (models.mapper.ConditionedMapper): one network for any prompt."""
    record, sd = _load("mappers/conditioned", root)
    cfg = MapperConfig(**dict(record["config"], levels=tuple(record["config"]["levels"])))
    return _finish(ConditionedMapper(cfg, record["text_dim"]), sd, "mappers/conditioned", device)


def encoder_state(path):
    """The E4E state dict in any e4e file (`load_e4e`'s layouts): what a fine-tuning run starts from."""
    return load_e4e(path, note=False).state_dict()
