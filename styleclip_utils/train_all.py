"""Notebook 00's four training calls as functions of its parameters.

The notebook calls these, and so does a launcher that runs each model in a process of its own (on a GPU
the small models are launch-bound, so four processes train at once in about the time of the slowest).
Same parameters -> same configs -> same run folders: the notebook then finds finished checkpoints,
resumes nothing, and only evaluates and exports.

    python -m styleclip_utils.train_all stylegan2 -p batch_gan 64 --seconds 400   # time-boxed: steps unknown
    python -m styleclip_utils.train_all clip -p steps_clip 6000 -p batch_clip 256

Parameters not given take notebook 00's committed values (its `parameters` cell is the one source).
"""
import argparse
import hashlib
import json
import time
from dataclasses import asdict
from pathlib import Path

import torch

from . import datasets, synthfaces
from .checkpoints import load_checkpoint
from .models import load_clip
from .nets import ConvNetConfig, SmallCLIPConfig
from .paths import DATA_DIR, ROOT, RUNS_DIR
from .runs import notebook_parameters, parse_value
from .train_nets import train_classifier, train_clip, train_identity
from .train_stylegan2 import GANConfig, train_stylegan2

NOTEBOOK = "00_train_synthfaces_models"
MODELS = ("classifier", "identity", "clip", "stylegan2")
POSITIVE_INTS = ("n_images", "net_width", "batch_nets", "steps_classifier", "steps_identity", "clip_width",
                 "clip_layers", "clip_resolution", "batch_clip", "steps_clip", "steps_gan", "batch_gan",
                 "gan_channels", "eval_images")
NON_NEGATIVE_INTS = ("label_captions", "gan_d_warmup")


def check_parameters(P):
    """Notebook 00's parameters (a dict) -> the same dict, or a ValueError that says what to give."""
    for name in POSITIVE_INTS:
        if not (isinstance(P[name], int) and P[name] >= 1):
            raise ValueError(f"{name} must be a positive integer, got {P[name]!r}")
    if not (isinstance(P["retrain"], (list, tuple)) and set(P["retrain"]) <= set(MODELS)):
        raise ValueError(f"retrain must be a list of models among {list(MODELS)}, got {P['retrain']!r}")
    if P["device"] not in ("auto", "cpu", "cuda"):
        raise ValueError(f"device must be 'auto', 'cpu' or 'cuda', got {P['device']!r}")
    if P["device"] == "cuda" and not torch.cuda.is_available():
        raise ValueError("device='cuda' but no GPU is visible; use 'auto' or 'cpu'")
    if P["precision"] not in ("bf16", "fp32"):
        raise ValueError(f"precision must be 'bf16' or 'fp32', got {P['precision']!r}")
    vit = P["clip_vision"] == "vit"
    if P["clip_vision"] not in ("resnet", "vit"):
        raise ValueError(f"clip_vision must be 'resnet' or 'vit', got {P['clip_vision']!r}")
    if P["clip_width"] % (64 if vit else 2):
        raise ValueError(f"clip_width must be a multiple of 64 for 'vit' and even for 'resnet' (CLIP's attention "
                         f"heads are 64 wide), got {P['clip_width']}")
    if P["clip_resolution"] % (8 if vit else 32):
        raise ValueError(f"clip_resolution must be a multiple of 32 for 'resnet' (its attention pool works on a "
                         f"1/32 grid) and of 8 for 'vit' (its patch size), got {P['clip_resolution']}")
    if P["label_on"] not in ("all", "prompts"):
        raise ValueError(f"label_on must be 'all' or 'prompts', got {P['label_on']!r}")
    if not (isinstance(P["clip_blur"], (int, float)) and 0 <= P["clip_blur"] <= 1):
        raise ValueError(f"clip_blur must be a probability in [0, 1], got {P['clip_blur']!r}")
    for name in ("clip_neutral", "gan_clip_d", "gan_clip_fm"):
        if not (isinstance(P[name], (int, float)) and P[name] >= 0):
            raise ValueError(f"{name} must be a weight >= 0, got {P[name]!r}")
    for name in ("lr_clip", "lr_gan"):
        if not (isinstance(P[name], float) and 0 < P[name] < 1):
            raise ValueError(f"{name} must be a float in (0, 1), got {P[name]!r}")
    for name in NON_NEGATIVE_INTS:
        if not (isinstance(P[name], int) and P[name] >= 0):
            raise ValueError(f"{name} must be an integer >= 0, got {P[name]!r}")
    for key, what, name in (("gan_init", "generator", "generator"), ("clip_init", "small CLIP", "clip")):
        if P[key] and not init_of(P, key).is_file():
            raise FileNotFoundError(f"{key}: no {what} file at {init_of(P, key)}; give the path of an exported "
                                    f"{what} (e.g. data/weights/synthfaces/{name}.safetensors) or '' to start afresh")
    if P["size"] not in (32, 64, 128):
        raise ValueError(f"size must be 32, 64 or 128, got {P['size']!r}")
    return P


def device_of(P):
    if P["device"] == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(P["device"])


def out_dir_of(P):
    return Path(P["out_dir"]) if P["out_dir"] else RUNS_DIR / NOTEBOOK


def load_data(P, progress=False):
    """Render (or reuse) the SynthFaces set the models train on -> (root, train tensors, test tensors)."""
    n, size = P["n_images"], P["size"]
    root = synthfaces.ensure_synthfaces(DATA_DIR / f"synthfaces_{size}px_n{n}_seed0", n=n, size=size, seed=0,
                                        progress=progress)
    return root, datasets.load_tensors(root, "train", size), datasets.load_tensors(root, "test", size)


def classifier(P, train, **kw):
    cfg = ConvNetConfig(P["size"], P["net_width"], len(train["attribute_names"]))
    return train_classifier(train["images"], train["attrs"], train["attribute_names"], out_dir_of(P) / "classifier",
                            P["steps_classifier"], cfg, batch=P["batch_nets"], seed=P["seed"], device=device_of(P),
                            precision=P["precision"], **kw)


def identity(P, train, **kw):
    cfg = ConvNetConfig(P["size"], P["net_width"], 128)
    return train_identity(train["images"], train["identities"], out_dir_of(P) / "identity", P["steps_identity"], cfg,
                          batch=P["batch_nets"], seed=P["seed"], device=device_of(P), precision=P["precision"], **kw)


def clip_config(P):
    layers = (P["clip_layers"],) * 4 if P["clip_vision"] == "resnet" else P["clip_layers"]
    return SmallCLIPConfig(image_resolution=P["clip_resolution"], vision_width=P["clip_width"], vision_layers=layers)


def clip(P, train, **kw):
    """-> (CLIP, trainer). With clip_init, the run folder keeps `init.json` (see `write_lineage`)."""
    run_dir = out_dir_of(P) / "clip"
    write_lineage(P, "clip_init", run_dir)
    return train_clip(train["images"], train["captions"], run_dir, P["steps_clip"], clip_config(P),
                      batch=P["batch_clip"], seed=P["seed"], device=device_of(P), precision=P["precision"],
                      attrs=train["attrs"], attribute_names=train["attribute_names"],
                      label_captions=P["label_captions"], label_columns=label_columns_of(P, train["attribute_names"]),
                      blur=P["clip_blur"], neutral=P["clip_neutral"], lr=P["lr_clip"], init=init_of(P, "clip_init"),
                      **kw)


def label_columns_of(P, attribute_names):
    """label_on="prompts": label captions name only the attributes behind the project's prompts."""
    if P["label_on"] == "all":
        return None
    return [c for c in synthfaces.PROMPT_ATTRIBUTES.values() if c in attribute_names]


def gan_config(P):
    w = P["gan_channels"]
    widths = {4: w, 8: w, 16: w, 32: w // 2, 64: w // 4, 128: w // 8}  # narrower where the maps are large
    return GANConfig(size=P["size"], batch=P["batch_gan"], channels={r: c for r, c in widths.items() if r <= P["size"]},
                     precision=P["precision"], d_warmup=P["gan_d_warmup"], lr=P["lr_gan"], clip_d=P["gan_clip_d"],
                     clip_fm=P["gan_clip_fm"])


def init_of(P, key):
    """The model file to continue from (`gan_init`, `clip_init`: a path relative to the project root), or
    None to start from random weights."""
    return (ROOT / P[key]) if P[key] else None


def write_lineage(P, key, run_dir):
    """When a run starts from the file named by P[key], write `init.json` into its folder: that file's
    sha256 and its record's steps, wall time, commit, metrics and own `init`, read now (a later export may
    overwrite the file). For another run's `checkpoint.pt`: its step, training time, config and that run's
    own `init.json`."""
    init = init_of(P, key)
    if init is None or (run_dir / "checkpoint.pt").exists():
        return
    if init.suffix == ".pt":  # another run's full checkpoint: its step, time, config and own lineage
        ckpt = load_checkpoint(init)
        parent = init.parent / "init.json"
        lineage = dict(steps=ckpt["step"], wall_time_s=round(ckpt["elapsed"]), config=ckpt["config"],
                       init=json.loads(parent.read_text()) if parent.is_file() else None)
    else:  # an exported model: its JSON record
        record = init.with_suffix(".json")
        lineage = json.loads(record.read_text()) if record.is_file() else {}
    lineage = dict(file=P[key], sha256=hashlib.sha256(init.read_bytes()).hexdigest(),
                   **{k: lineage.get(k) for k in ("steps", "wall_time_s", "commit", "metrics", "init")},
                   **{k: lineage[k] for k in ("config",) if k in lineage})
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "init.json").write_text(json.dumps(lineage, indent=1) + "\n")


def stylegan2(P, train, **kw):
    """-> (G_ema, trainer). With gan_init, the run folder keeps `init.json` (see `write_lineage`). With
    gan_clip_d > 0 (the vision-aided D) or gan_clip_fm > 0 (feature matching) the GAN reads the small CLIP in
    `weights_dir` (the shipped one by default)."""
    run_dir = out_dir_of(P) / "stylegan2"
    write_lineage(P, "gan_init", run_dir)
    uses_clip = P["gan_clip_d"] > 0 or P["gan_clip_fm"] > 0
    clip_model = load_clip(device_of(P), P["weights_dir"] or None) if uses_clip else None
    return train_stylegan2(train["images"], run_dir, P["steps_gan"], gan_config(P), seed=P["seed"],
                           device=device_of(P), init=init_of(P, "gan_init"), clip_model=clip_model, **kw)


TRAINERS = dict(classifier=classifier, identity=identity, clip=clip, stylegan2=stylegan2)  # in MODELS' order


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model", choices=MODELS)
    ap.add_argument("-p", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
                    help="a notebook 00 parameter (Python literal); the others keep the notebook's values")
    ap.add_argument("--seconds", type=float, help="stop after this long with a checkpoint (resume later)")
    ap.add_argument("--no-progress", action="store_true")
    args = ap.parse_args(argv)
    P = notebook_parameters(NOTEBOOK)
    unknown = sorted({k for k, _ in args.p} - set(P))
    if unknown:
        ap.error(f"unknown parameters {unknown}; notebook 00 has {sorted(P)}")
    P.update({k: parse_value(v) for k, v in args.p})
    try:
        check_parameters(P)
    except (ValueError, FileNotFoundError) as e:
        ap.error(str(e))
    _, train, _ = load_data(P, progress=not args.no_progress)
    stop_by = time.time() + args.seconds if args.seconds else None
    _, run = TRAINERS[args.model](P, train, progress=not args.no_progress, stop_by=stop_by)
    print(f"{args.model}: step {run.step} in {run.elapsed:.0f} s of training -> {run.out_dir}", flush=True)


if __name__ == "__main__":
    main()
