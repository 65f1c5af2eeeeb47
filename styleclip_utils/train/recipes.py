"""Training recipes: one small TOML file per shipped model, and per stage of a model's chain, in `recipes/`.

A recipe names the trainer (`model`), the SynthFaces data it trains on, the model's config dataclass
(`[config]`), the trainer's other arguments (`[train]`) and where it starts from (`init`). Three steps,
each a function (and `python -m styleclip_utils.train`, which calls them):

    R = load_recipe("classifier", steps=60, **{"data.n_images": 1000})   # values may be overridden
    model, run = train(R)              # into runs/train/<run name>/ (checkpoint, log.jsonl, recipe.json)
    metrics = evaluate(R, model)       # the model's quality bar, on the test split (held-out people)
    export(R, model, run, metrics)     # the explicit step that writes into data/weights/synthfaces/

A run folder is named after the recipe; overriding a value adds a short hash of the overrides, so a quick
run never resumes a full one (a GAN's `steps` excepted: its lr is constant, so more steps go on the same run). Every run writes the
recipe it ran (`recipe.json`) beside its checkpoint, and `init.json` (the lineage of the file it started
from) when it has an `init`.
"""
import copy
import hashlib
import json
import math
import sys
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path

import torch

from .. import dist
from ..data import layout, synthfaces
from ..data.attributes import FACE_SHAPE, IDENTITY_TRAITS, PROMPT_ATTRIBUTES
from ..data.render import MEASURES
from ..device import PRECISIONS, resolve_device
from ..files import read_json, write_json
from ..losses.clip_loss import CLIPLoss
from ..losses.identity import IDLoss
from ..losses.perceptual import FeatureDistance
from ..metrics import inversion, judges, quality
from ..models.e4e import E4EConfig
from ..models.mapper import EDIT_SCALE, MapperConfig, consistency, mapper_slug
from ..models.nets import ConvNetConfig, SmallCLIPConfig
from ..paths import DATA_DIR, RECIPES_DIR, ROOT, RUNS_DIR
from ..weights import zoo
from ..weights.checkpoints import load_checkpoint
from .e4e import train_e4e
from .loop import read_log
from .mapper import latents_from_generator, phrasings, train_mapper
from .nets import (train_classifier, train_clip, train_identity, train_identity_judge, train_measure_judge,
                   train_realism_judge)
from .stylegan2 import GANConfig, train_stylegan2

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

MODELS = ("classifier", "identity", "identity_judge", "realism_judge", "measure_judge", "clip", "stylegan2", "e4e", "mapper",
          "conditioned_mapper")
MAPPERS = ("mapper", "conditioned_mapper")   # train on the generator's W+ codes, not on renders
EXPORT_NAME = dict(classifier="classifier", identity="identity", identity_judge="identity_judge", realism_judge="realism",
                   measure_judge="measure_judge",
                   clip="clip", stylegan2="generator", e4e="encoder", conditioned_mapper="mappers/conditioned")
CLIP_HALF_KEYS = ("token_embedding.weight",)  # stored in float16, as OpenAI ships CLIP (76% of its weights)
# stored wholly in float16 (the shipped weights' 45 MB budget); measured after the rounding, as they ship
HALF_MODELS = ("identity_judge", "realism_judge", "measure_judge", "e4e", "mapper", "conditioned_mapper")
# what each trainer takes in [train] (its keyword arguments besides data, config, seed, device, precision)
TRAIN_KEYS = dict(classifier=("batch", "lr"), identity=("batch", "lr"), identity_judge=("batch", "lr", "shape_weight"),
                  realism_judge=("batch", "lr"), measure_judge=("batch", "lr"),
                  clip=("batch", "lr", "label_captions", "label_on", "blur", "neutral"), stylegan2=(),
                  e4e=("batch", "lr", "l2_lambda", "lpips_lambda", "id_lambda", "w_discriminator_lambda", "delta_lambda",
                       "d_lr", "r1_gamma", "d_reg_every", "pool_size", "progressive_start", "progressive_step"),
                  mapper=("prompt", "batch", "lr", "clip_lambda", "l2_lambda", "id_lambda", "views", "alpha"),
                  conditioned_mapper=("batch", "lr", "clip_lambda", "l2_lambda", "id_lambda", "views", "alpha"))
CONFIG_KEYS = dict(classifier=("width",), identity=("width", "out_dim"), identity_judge=("width",),
                   realism_judge=("width",), measure_judge=("width",),
                   clip=tuple(f.name for f in fields(SmallCLIPConfig)),
                   stylegan2=tuple(f.name for f in fields(GANConfig) if f.name not in ("size", "precision")),
                   e4e=tuple(f.name for f in fields(E4EConfig) if f.name not in ("in_size", "n_styles", "style_dim")),
                   mapper=tuple(f.name for f in fields(MapperConfig) if f.name != "dim"))
CONFIG_KEYS["conditioned_mapper"] = CONFIG_KEYS["mapper"]


class RecipeError(ValueError):
    """A recipe file (or an override) that cannot be run as written."""


class RunExistsError(FileExistsError):
    """A run folder already holds a checkpoint and resume was not asked for."""


@dataclass
class Recipe:
    name: str                  # the file's stem: the run folder's name
    model: str                 # trainer: classifier | identity | clip | stylegan2
    steps: int                 # total optimiser steps (a resumed run counts the steps it already did)
    seed: int = 0              # seed of the trainer (weights, batches, noise)
    device: str = "auto"       # "auto" (cuda when visible), "cpu" or "cuda"
    precision: str = "bf16"    # "bf16" autocast or "fp32"
    init: str = ""             # file to continue from, relative to the project root ("": random init)
    weights: str = ""          # shipped models the recipe reads (judge, small CLIP); "": data/weights/synthfaces
    eval_images: int = 2000    # stylegan2: generated faces the judge counts for the frequency check
    note: str = ""             # what this recipe (stage) is for
    data: dict = field(default_factory=lambda: dict(n_images=10000, size=64, seed=0))
    config: dict = field(default_factory=dict)
    train: dict = field(default_factory=dict)
    overrides: dict = field(default_factory=dict)   # what was changed from the file, "section.key" -> value
    path: str = ""

    @property
    def run_name(self):
        # The GAN's and e4e's lr are constant, so more steps continue the same run; the nets' lr schedule is a
        # function of the total steps, so another total is another run.
        changed = {k: v for k, v in self.overrides.items() if not (k == "steps" and self.model in ("stylegan2", "e4e"))}
        if not changed:
            return self.name
        digest = hashlib.sha256(json.dumps(changed, sort_keys=True).encode()).hexdigest()[:8]
        return f"{self.name}@{digest}"

    @property
    def weights_dir(self):
        return ROOT / self.weights if self.weights else zoo.SYNTHFACES_DIR

    def to_dict(self):
        return asdict(self)


def recipe_path(name_or_path):
    """recipes/<name>.toml, or the path of a TOML file."""
    p = Path(name_or_path)
    if p.suffix == ".toml" and p.is_file():
        return p
    path = RECIPES_DIR / f"{name_or_path}.toml"
    if not path.is_file():
        available = sorted(q.stem for q in RECIPES_DIR.glob("*.toml"))
        raise RecipeError(f"no recipe {name_or_path!r}: give a name among {available} or the path of a .toml file")
    return path


def parse_override(item):
    """"key=value" (a command line's --set) -> (key, value), the value read as TOML (so `lr=1e-3` is a float,
    `label_on=prompts` or `label_on="prompts"` a string, `vision_layers=[1, 1, 1, 1]` a list)."""
    key, eq, value = item.partition("=")
    if not eq or not key.strip():
        raise RecipeError(f"an override is KEY=VALUE (e.g. steps=500, train.lr=1e-3), got {item!r}")
    try:
        return key.strip(), tomllib.loads(f"v = {value.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        return key.strip(), value.strip()  # a bare word: a string


def _set(raw, key, value):
    section, _, name = key.rpartition(".")
    (raw.setdefault(section, {}) if section else raw)[name] = value


def load_recipe(name_or_path, **overrides):
    """Read a recipe file -> Recipe, with `overrides` ({"steps": 60, "data.n_images": 1000, "train.lr": 1e-3})
    applied and everything checked: an unknown key or a bad value raises a RecipeError naming it."""
    path = recipe_path(name_or_path)
    try:
        raw = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as e:
        raise RecipeError(f"{path}: not valid TOML ({e})") from None
    for key, value in overrides.items():
        _set(raw, key, value)
    top = {f.name for f in fields(Recipe)} - {"name", "overrides", "path"}
    unknown = sorted(set(raw) - top)
    if unknown:
        raise RecipeError(f"{path.name}: unknown keys {unknown}; a recipe has {sorted(top)}")
    for key in ("model", "steps"):
        if key not in raw:
            raise RecipeError(f"{path.name}: `{key}` is missing")
    R = Recipe(name=path.stem, path=str(path), overrides=dict(overrides),
               **{k: copy.deepcopy(v) for k, v in raw.items()})
    R.data = dict(dict(n_images=10000, size=64, seed=0), **R.data)
    check_recipe(R)
    return R


def check_recipe(R):
    """Every value of a Recipe, before any work: a RecipeError that says what to give."""
    where = Path(R.path).name or R.name

    def bad(msg):
        raise RecipeError(f"{where}: {msg}")

    if R.model not in MODELS:
        bad(f"model must be one of {MODELS}, got {R.model!r}")
    if not (isinstance(R.steps, int) and not isinstance(R.steps, bool) and R.steps >= 1):
        bad(f"steps must be a positive integer, got {R.steps!r}")
    if R.precision not in PRECISIONS:
        bad(f"precision must be one of {PRECISIONS}, got {R.precision!r}")
    try:
        resolve_device(R.device)
    except ValueError as e:
        bad(str(e))
    unknown = sorted(set(R.data) - {"n_images", "size", "seed", "domain"})
    if unknown:
        bad(f"unknown [data] keys {unknown}; [data] has n_images, size, seed, domain")
    if R.data.get("domain", "natural") not in synthfaces.DOMAIN_CHOICES:
        bad(f"data.domain must be one of {synthfaces.DOMAIN_CHOICES}, got {R.data['domain']!r}")
    if not (isinstance(R.data["n_images"], int) and 20 <= R.data["n_images"] <= 1_000_000):
        bad(f"data.n_images must be an integer in [20, 1000000], got {R.data['n_images']!r}")
    if R.data["size"] not in (32, 64, 128):
        bad(f"data.size must be 32, 64 or 128, got {R.data['size']!r}")
    for section, allowed in (("config", CONFIG_KEYS[R.model]), ("train", TRAIN_KEYS[R.model])):
        unknown = sorted(set(getattr(R, section)) - set(allowed))
        if unknown:
            bad(f"unknown [{section}] keys {unknown} for a {R.model}; allowed: {sorted(allowed)}")
    if R.model == "mapper" and not R.train.get("prompt"):
        bad("a per-prompt mapper needs train.prompt, e.g. --set train.prompt='red hair'")
    if R.model == "clip" and R.train.get("label_on", "all") not in ("all", "prompts"):
        bad(f"train.label_on must be 'all' or 'prompts', got {R.train['label_on']!r}")
    if not (isinstance(R.eval_images, int) and R.eval_images >= 1):
        bad(f"eval_images must be a positive integer, got {R.eval_images!r}")
    defaults = {f.name: f.default if f.default_factory is MISSING else f.default_factory()
                for f in fields({"classifier": ConvNetConfig, "identity": ConvNetConfig,
                                 "identity_judge": ConvNetConfig, "realism_judge": ConvNetConfig,
                                 "measure_judge": ConvNetConfig, "clip": SmallCLIPConfig,
                                 "stylegan2": GANConfig, "e4e": E4EConfig, "mapper": MapperConfig,
                                 "conditioned_mapper": MapperConfig}[R.model])}
    for section, values, kinds in (("config", R.config, defaults), ("train", R.train, TRAIN_TYPES)):
        for key, value in values.items():
            if not _same_kind(value, kinds[key], key):
                bad(f"bad [{section}] value {key} = {value!r}: give a {type(kinds[key]).__name__} like {kinds[key]!r}")
    try:
        model_config(R, n_attributes=1)
    except (TypeError, ValueError) as e:
        bad(f"bad [config]: {e}")
    return R


TRAIN_TYPES = dict(batch=64, lr=1e-3, label_captions=0, label_on="all", blur=0.0, neutral=0.0, shape_weight=1.0,
                   prompt="red hair", clip_lambda=1.0, views=4, alpha=1.0, l2_lambda=1.0, lpips_lambda=0.8, id_lambda=0.1, w_discriminator_lambda=0.1, delta_lambda=2e-4,
                   d_lr=2e-5, r1_gamma=10.0, d_reg_every=16, pool_size=50, progressive_start=0, progressive_step=0)


def _same_kind(value, example, key):
    """TOML's types against a config field's default: bools for bools, numbers for floats, ints for ints;
    `vision_layers` is an int (ViT depth) or a list (ResNet blocks per stage)."""
    if key == "levels":
        return isinstance(value, list) and all(isinstance(v, str) for v in value)
    if key in ("stage_units", "widths"):  # TOML lists for the e4e body's tuples
        return isinstance(value, list) and all(isinstance(v, int) and not isinstance(v, bool) for v in value)
    if key == "vision_layers":
        return (isinstance(value, int) and not isinstance(value, bool)) or (
            isinstance(value, list) and all(isinstance(v, int) for v in value))
    if isinstance(example, bool) or isinstance(value, bool):
        return isinstance(value, bool) and isinstance(example, bool)
    if isinstance(example, float):
        return isinstance(value, (int, float))
    return isinstance(value, type(example))


TRAINERS = dict(classifier=train_classifier, identity=train_identity, identity_judge=train_identity_judge,
                measure_judge=train_measure_judge, realism_judge=train_realism_judge, clip=train_clip, e4e=train_e4e,
                mapper=train_mapper, conditioned_mapper=train_mapper)


def global_batch(R):
    """Images (or codes) per step of the recipe: the global batch that torchrun's processes split."""
    if R.model == "stylegan2":
        return model_config(R, 0).batch
    import inspect
    return int(R.train.get("batch", inspect.signature(TRAINERS[R.model]).parameters["batch"].default))


def model_config(R, n_attributes):
    """The config dataclass the recipe's [config] describes (sizes that follow from the data filled in)."""
    c, size = dict(R.config), R.data["size"]
    if R.model == "classifier":
        return ConvNetConfig(in_size=size, out_dim=n_attributes, **c)
    if R.model == "identity":
        return ConvNetConfig(**dict(dict(in_size=size, out_dim=128), **c))
    if R.model == "identity_judge":
        return ConvNetConfig(in_size=size, out_dim=sum(map(len, IDENTITY_TRAITS.values())) + len(FACE_SHAPE), **c)
    if R.model == "realism_judge":
        return ConvNetConfig(in_size=size, out_dim=1, **c)
    if R.model == "measure_judge":
        return ConvNetConfig(in_size=size, out_dim=len(MEASURES) + 1, **c)
    if R.model == "clip":
        if isinstance(c.get("vision_layers"), list):  # TOML has no tuples: a list means the ResNet tower
            c["vision_layers"] = tuple(c["vision_layers"])
        return SmallCLIPConfig(**c)
    if R.model in MAPPERS:  # the width of the generator's W+
        g = zoo.read_record("generator", R.weights_dir)["config"]
        return MapperConfig(dim=g["style_dim"], **dict(c, levels=tuple(c.get("levels", MapperConfig.levels))))
    if R.model == "e4e":  # rows and width from the generator it inverts
        g = zoo.read_record("generator", R.weights_dir)["config"]
        return E4EConfig(in_size=size, n_styles=2 * int(math.log2(g["size"])) - 2, style_dim=g["style_dim"], **c)
    if "channels" in c:  # TOML keys are strings
        c["channels"] = {int(k): v for k, v in c["channels"].items()}
    return GANConfig(size=size, precision=R.precision, **c)


def _path(rel):
    return ROOT / rel if rel else None


def run_dir_of(R, out_dir=None):
    return Path(out_dir or RUNS_DIR / "train") / R.run_name


def data_root(n, size, seed, domain="natural"):
    """Where a SynthFaces set is rendered (a natural set's name has no domain: the folders made before domains)."""
    return DATA_DIR / (f"synthfaces_{size}px_n{n}_seed{seed}" + ("" if domain == "natural" else f"_{domain}"))


def export_name(R):
    """The file stem a recipe's model ships under: a GAN trained on another domain's data is another generator
    (generator_both: notebook 06's two-domain generator)."""
    if R.model == "mapper":
        return f"mappers/{mapper_slug(R.train['prompt'])}"
    domain = R.data.get("domain", "natural")
    if R.model == "stylegan2" and domain != "natural":
        return f"generator_{domain}"
    return EXPORT_NAME[R.model]


def load_data(R, progress=False):
    """Render (or reuse) the SynthFaces set the recipe trains on -> (root, train tensors, test tensors).
    A mapper trains on the generator's W+ codes: data.n_images codes from data.seed (train["latents"]); its
    held-out faces are evaluate.start_faces' (another seed stream), so test is None."""
    n, size, seed = R.data["n_images"], R.data["size"], R.data["seed"]
    if R.model in MAPPERS:
        G = zoo.load_generator("cpu", R.weights_dir)
        return None, dict(latents=latents_from_generator(G, n, 0.7, seed), attribute_names=()), None
    domain = R.data.get("domain", "natural")
    root = synthfaces.ensure_synthfaces(data_root(n, size, seed, domain), n=n, size=size, seed=seed, progress=progress,
                                        domain=domain)
    return root, layout.load_tensors(root, "train", size), layout.load_tensors(root, "test", size)


def write_lineage(R, run_dir):
    """When a run starts from `R.init`, write `init.json` into its folder: that file's sha256 and its
    record's steps, wall time, commit, metrics and own `init`, read now (a later export may overwrite the
    file). For another run's `checkpoint.pt`: its step, training time, config and that run's `init.json`."""
    init = _path(R.init)
    if init is None or (run_dir / "init.json").exists():
        return
    fix = (f"It describes {R.init}, this recipe's init file: restore it from git (git checkout <that file>) if it "
           f"is shipped, or run again the recipe that made it.")
    if init.suffix == ".pt":  # another run's full checkpoint: its step, time, config and own lineage
        ckpt = load_checkpoint(init)
        parent = init.parent / "init.json"
        lineage = dict(steps=ckpt["step"], wall_time_s=round(ckpt["elapsed"]), config=ckpt["config"],
                       init=read_json(parent, fix) if parent.is_file() else None)
    else:  # an exported model: its JSON record
        record = init.with_suffix(".json")
        lineage = read_json(record, fix) if record.is_file() else {}
    lineage = dict(file=R.init, sha256=hashlib.sha256(init.read_bytes()).hexdigest(),
                   **{k: lineage.get(k) for k in ("steps", "wall_time_s", "commit", "metrics", "init")},
                   **{k: lineage[k] for k in ("config",) if k in lineage})
    write_json(run_dir / "init.json", lineage)


def train(R, out_dir=None, resume=False, progress=True, stop_by=None, data=None):
    """Train (or, with resume=True, continue) the recipe in run_dir_of(R, out_dir) -> (model, trainer).

    Refuses to touch a run folder that already holds a checkpoint unless `resume`; `stop_by` (a
    `time.time()` value) ends the call early with a checkpoint. `data`: load_data(R)'s result, if loaded."""
    run_dir = run_dir_of(R, out_dir)
    ckpt = run_dir / "checkpoint.pt"
    if ckpt.exists() and not resume:
        raise RunExistsError(f"{run_dir} already holds a checkpoint: resume it (resume=True, --resume), or "
                             f"give another out_dir")
    if R.init and not _path(R.init).is_file():
        raise FileNotFoundError(f"{R.name}: init file {R.init} does not exist. It is another recipe's output: "
                                f"run that recipe first (its run folder), or give the path of an exported "
                                f"model (e.g. data/weights/synthfaces/{EXPORT_NAME[R.model]}.safetensors)")
    dev = resolve_device(R.device)
    clip_model = None
    if R.model == "stylegan2" and (R.config.get("clip_d", 0) > 0 or R.config.get("clip_fm", 0) > 0):
        clip_model = zoo.load_clip(dev, R.weights_dir)   # read before any file is written
    _, tr, _ = data or load_data(R, progress=progress)
    run_dir.mkdir(parents=True, exist_ok=True)
    if dist.is_main():  # under torchrun, rank 0 writes the run's files
        write_json(run_dir / "recipe.json", R.to_dict())
        write_lineage(R, run_dir)
    common = dict(seed=R.seed, device=dev, progress=progress, stop_by=stop_by)
    init = _path(R.init)
    names = tr["attribute_names"]
    cfg = model_config(R, len(names))
    if R.model == "classifier":
        return train_classifier(tr["images"], tr["attrs"], names, run_dir, R.steps, cfg, precision=R.precision,
                                **R.train, **common)
    if R.model == "identity":
        return train_identity(tr["images"], tr["identities"], run_dir, R.steps, cfg, precision=R.precision,
                              **R.train, **common)
    if R.model == "identity_judge":
        if "trait_classes" not in tr:
            raise RecipeError(f"{R.name}: the identity judge trains on SynthFaces renders (their identity traits)")
        return train_identity_judge(tr["images"], tr["trait_classes"], tr["face_shape"], run_dir, R.steps, cfg,
                                    precision=R.precision, **R.train, **common)
    if R.model == "measure_judge":
        if "measures" not in tr:
            raise RecipeError(f"{R.name}: the measure judge trains on SynthFaces renders (their face measures)")
        return train_measure_judge(tr["images"], tr["measures"], tr["domains"], run_dir, R.steps, cfg,
                                   precision=R.precision, **R.train, **common)
    if R.model == "realism_judge":  # real renders and the shipped generator's unedited faces pass
        G = zoo.load_generator(dev, R.weights_dir)
        fake = judges.generated_uint8(G, R.eval_images, seed=R.seed, device=dev)
        return train_realism_judge(tr["images"], fake, run_dir, R.steps, cfg, precision=R.precision, **R.train,
                                   **common)
    if R.model == "clip":
        kw = dict(R.train)
        label_on = kw.pop("label_on", "all")
        columns = None if label_on == "all" else [c for c in PROMPT_ATTRIBUTES.values() if c in names]
        return train_clip(tr["images"], tr["captions"], run_dir, R.steps, cfg, precision=R.precision,
                          attrs=tr["attrs"], attribute_names=names, label_columns=columns, init=init, **kw, **common)
    if R.model in MAPPERS:  # the losses' models only: the small CLIP and the identity net (never the judges)
        kw = dict(R.train)
        kw.pop("alpha", None)
        texts = [kw.pop("prompt")] if R.model == "mapper" else phrasings()[0]
        G, clip = zoo.load_generator(dev, R.weights_dir), zoo.load_clip(dev, R.weights_dir)
        loss = CLIPLoss(clip, texts, views=kw.pop("views", 4), seed=R.seed)
        return train_mapper(tr["latents"], G, loss, IDLoss("synthfaces", zoo.load_identity_net(dev, R.weights_dir)),
                            run_dir, R.steps, cfg, conditioned=R.model == "conditioned_mapper",
                            precision=R.precision, **kw, **common)
    if R.model == "e4e":  # the losses' models only: the identity net (ID loss, perceptual features)
        G, id_net = zoo.load_generator(dev, R.weights_dir), zoo.load_identity_net(dev, R.weights_dir)
        start = zoo.encoder_state(init) if init else None
        return train_e4e(tr["images"], G, IDLoss("synthfaces", id_net), FeatureDistance(id_net), run_dir, R.steps, cfg,
                         init=start, precision=R.precision, **R.train, **common)
    return train_stylegan2(tr["images"], run_dir, R.steps, cfg, init=init, clip_model=clip_model,
                           **common)


def half_keys(R, sd):
    """The keys a model ships in float16: every float of HALF_MODELS and of a second generator (generator_both)
    (latent_avg excepted: the codes' origin, kept exact), the token table of the CLIP (export handles it), none
    otherwise."""
    second_generator = R.model == "stylegan2" and export_name(R) != "generator"   # notebook 06's: the weights budget
    if R.model not in HALF_MODELS and not second_generator:
        return ()
    return tuple(k for k, v in sd.items() if v.is_floating_point() and k != "latent_avg")


def evaluate(R, model, data=None, judge=None):
    """The model's quality figures on the test split (held-out people) -> metrics dict, as in its record.

    classifier: mean accuracy over attributes in >= 5% of images; identity: verification accuracy with the
    threshold calibrated on train people; clip: zero-shot balanced accuracy per prompt, measured with the
    token embedding rounded to float16 as it ships (the model is rounded in place; so are the judges, which ship
    wholly in float16); identity_judge: trait accuracy and the calibrated same-person rule; realism_judge: the
    calibrated threshold and pass/reject rates on labelled sets; stylegan2: attribute
    frequencies of `eval_images` generated faces, as the judge (`judge`, else the shipped classifier) sees
    them, against the data's."""
    dev = resolve_device(R.device)
    _, tr, te = data or load_data(R)
    half = half_keys(R, model.state_dict())
    if half:  # measured as the file will hold it
        model.load_state_dict({k: v.half().float() if k in half else v for k, v in model.state_dict().items()})
    if R.model == "classifier":
        per_attr, mean_acc = quality.classifier_accuracy(model, te["images"], te["attrs"], device=dev)
        return dict(mean_accuracy=mean_acc, per_attribute=per_attr)
    if R.model == "identity":
        acc, threshold = quality.identity_verification(model, tr["images"], tr["identities"], te["images"],
                                                       te["identities"], device=dev)
        return dict(verification_accuracy=acc, threshold=threshold)
    if R.model == "identity_judge":
        return judges.identity_judge_quality(model, tr, te, device=dev)
    if R.model == "measure_judge":
        return judges.measure_judge_quality(model, te, device=dev)
    if R.model == "realism_judge":  # calibrated on one seed of generated faces, measured on another
        G = zoo.load_generator(dev, R.weights_dir)
        model.threshold = judges.calibrate_realism(model, G, n=R.eval_images, device=dev)
        return judges.realism_judge_quality(model, te["images"], G, device=dev)
    if R.model == "clip":
        model.load_state_dict({k: v.half().float() if k in CLIP_HALF_KEYS else v
                               for k, v in model.state_dict().items()})
        return dict(zero_shot=quality.clip_zero_shot(model, te["images"], te["attrs"], te["attribute_names"],
                                                     device=dev))
    if R.model in MAPPERS:  # loss-side figures on held-out codes (the judged scorecard is notebook 04's)
        return mapper_quality(R, model, dev)
    if R.model == "e4e":  # inversion of held-out people's renders, measured by the scorecard's judges
        G, rule = zoo.load_generator(dev, R.weights_dir), zoo.read_record("identity_judge", R.weights_dir)["metrics"]
        n = min(R.eval_images, len(te["images"]))
        q = inversion.inversion_quality(model.to(dev), G, te["images"][:n], zoo.load_classifier(dev, R.weights_dir),
                                        zoo.load_identity_judge(dev, R.weights_dir), rule["traits_used"],
                                        rule["shape_tolerance"], device=dev)
        q.pop("per_image")
        return q
    judge = judge or zoo.load_classifier(dev, R.weights_dir)
    gen, data_freq, rel = quality.frequency_check(model, judge, te["attrs"], n=R.eval_images, seed=R.seed, device=dev)
    return dict(generated_frequency=gen, data_frequency=data_freq, relative_error=rel)


@torch.no_grad()
def mapper_quality(R, M, dev, seed=777):
    """A mapper on `eval_images` held-out W+ codes (seed 777, never trained on), with its losses' own models
    (the judges are the edit layer's; train never imports them): CLIP loss before and after the edit at the
    recipe's alpha, the latent L2 of the edit, and the paper's consistency; per text for a conditioned mapper."""

    G, clip = zoo.load_generator(dev, R.weights_dir), zoo.load_clip(dev, R.weights_dir)
    ws = latents_from_generator(G, R.eval_images, 0.7, seed)
    alpha, out = R.train.get("alpha", 1.0), {}
    texts = [R.train["prompt"]] if R.model == "mapper" else sum(phrasings(), [])
    loss = CLIPLoss(clip, texts)
    img0 = G.synthesis(ws, noise_mode="const")
    before = loss(img0)
    for k, text in enumerate(texts):
        t = loss.text[k] if R.model == "conditioned_mapper" else None
        d = M(ws, t.expand(len(ws), -1)) if t is not None else M(ws)
        after = loss(G.synthesis(ws + alpha * EDIT_SCALE * d, noise_mode="const"))[:, k]
        out[text] = dict(clip_loss_before=round(float(before[:, k].mean()), 4), clip_loss_after=round(float(after.mean()), 4),
                         l2_latent=round(float((alpha * EDIT_SCALE * d).pow(2).mean()), 5),
                         consistency=round(consistency(M, ws, t), 4))
    return dict(alpha=alpha, n_codes=len(ws), **(dict(texts=out) if R.model == "conditioned_mapper" else out[texts[0]]))


def export(R, model, trainer, metrics, weights_dir=None, root=None):
    """Write the model and its record (recipe, config, steps, seed, wall time, device, commit, lineage,
    metrics) into `weights_dir` (default: data/weights/synthfaces) -> path of the .safetensors file.
    `root`: the data root the model trained on (its folder name goes into the record)."""
    dev = resolve_device(R.device)
    name = export_name(R)
    record = dict(recipe=R.name, seed=R.seed, device=str(dev), precision=R.precision,
                  torch_threads=torch.get_num_threads(),
                  device_name=torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu",
                  data=dict(root=Path(root).name if root else None, n_images=R.data["n_images"], size=R.data["size"],
                            domain=R.data.get("domain", "natural")),
                  steps=trainer.step, wall_time_s=round(trainer.elapsed))
    init_json = trainer.out_dir / "init.json"
    if init_json.is_file():
        record["init"] = read_json(init_json, f"Delete it and run the recipe again with --resume (resume=True): "
                                              f"train writes it anew from {R.init}.")
    sd = model.state_dict()
    half = half_keys(R, sd)
    if R.model in MAPPERS:  # with its loss curve (50 points): the notebook plots a shipped mapper's training
        log = [r for r in read_log(trainer.out_dir) if "loss_clip" in r]
        log = log[::max(1, len(log) // 50)]
        record["curve"] = {k: [round(r[k], 4) if k != "step" else r[k] for r in log]
                           for k in ("step", "loss_clip", "loss_l2_latent", "loss_id", "loss")}
        record.update(config=asdict(model.cfg), alpha=R.train.get("alpha", 1.0),
                      **(dict(prompt=R.train["prompt"]) if R.model == "mapper" else
                         dict(texts=phrasings()[0], held_out_texts=phrasings()[1], text_dim=model.text_dim)))
    elif R.model in ("classifier", "identity", "identity_judge", "realism_judge", "measure_judge", "e4e"):
        record["config"] = asdict(model.cfg)
        if R.model == "measure_judge":
            record["measures"] = model.measures
        if R.model == "identity_judge":
            record.update(traits=model.traits, face_shape=list(FACE_SHAPE), n_shape=model.n_shape)
        if R.model == "classifier":
            record["attributes"] = model.attribute_names
    elif R.model == "clip":
        record["config"] = asdict(model_config(R, 1))
        record.update({k: v for k, v in R.train.items() if k != "batch"})
        half = CLIP_HALF_KEYS
    else:
        cfg = model_config(R, 1)
        record["config"] = dict(asdict(cfg), channels={str(k): v for k, v in cfg.channels.items()})
        sd = {f"g_ema.{k}": v for k, v in sd.items()}
        sd["latent_avg"] = model.mean_latent(10_000, seed=R.seed)
        half = half_keys(R, sd)
    return zoo.save_model(name, sd, dict(record, metrics=metrics), root=weights_dir, half=half)


# the quality bar of each shipped model (docs/models/*.md): what `headline` compares against
BARS = dict(classifier=0.95, identity=0.95, identity_judge=0.95, realism_judge=0.95, clip=0.90, stylegan2=0.5,
            e4e=(0.80, 0.95))  # e4e: identity kept, attributes kept


def headline(R, metrics):
    """The numbers a person reads first, against the model's bar: one line."""
    if R.model == "classifier":
        acc = metrics["mean_accuracy"]
        return (f"mean test accuracy {100 * acc:.1f}% over attributes in >= 5% of images "
                f"(bar {100 * BARS['classifier']:.0f}%: {'met' if acc >= BARS['classifier'] else 'not met'})")
    if R.model == "identity":
        acc = metrics["verification_accuracy"]
        return (f"verification {100 * acc:.1f}% on held-out people, threshold cos >= {metrics['threshold']:.3f} "
                f"(bar {100 * BARS['identity']:.0f}%: {'met' if acc >= BARS['identity'] else 'not met'})")
    if R.model == "identity_judge":
        acc = metrics["trait_accuracy"]
        return (f"trait accuracy {', '.join(f'{k} {100 * v:.1f}%' for k, v in acc.items())}; same person: "
                f"{100 * metrics['same_pairs_kept']:.1f}% of same-person pairs, {100 * metrics['different_pairs_rejected']:.1f}% "
                f"of different-person pairs rejected (held-out people)")
    if R.model == "realism_judge":
        return (f"passes {100 * metrics['real_test_pass']:.1f}% of real test renders and "
                f"{100 * metrics['generated_pass']:.1f}% of unedited generated faces; rejects "
                + ", ".join(f"{100 * metrics[f'{k}_rejected']:.1f}% of {k}" for k in ("blob", "noise", "scramble")))
    if R.model == "measure_judge":
        r2 = metrics["r2"]
        worst = min(r2, key=r2.get)
        return (f"measures R² mean {sum(r2.values()) / len(r2):.2f} (worst {worst} {r2[worst]:.2f}) on held-out people; "
                f"domain accuracy {100 * metrics['domain_accuracy']:.1f}%")
    if R.model == "clip":
        zs = metrics["zero_shot"]
        worst, over = min(zs, key=zs.get), sum(v >= BARS["clip"] for v in zs.values())
        return (f"zero-shot {over} of {len(zs)} prompts >= {100 * BARS['clip']:.0f}%, mean "
                f"{100 * sum(zs.values()) / len(zs):.1f}%, worst {worst} {100 * zs[worst]:.1f}%")
    if R.model == "e4e":
        (bar_id, bar_attr), idk, ak = BARS["e4e"], metrics["identity_kept"], metrics["attributes_kept"]
        return (f"inverted held-out renders: same person {100 * idk:.1f}% (bar {100 * bar_id:.0f}%: "
                f"{'met' if idk >= bar_id else 'not met'}), attributes kept {100 * ak:.1f}% (bar {100 * bar_attr:.0f}%: "
                f"{'met' if ak >= bar_attr else 'not met'}), MSE {metrics['mse']:.4f}, "
                f"{1000 * metrics['seconds_per_image']:.1f} ms/image")
    if R.model == "mapper":
        return (f"{R.train['prompt']!r}: CLIP loss {metrics['clip_loss_before']:.3f} -> {metrics['clip_loss_after']:.3f} "
                f"on {metrics['n_codes']} held-out codes at alpha {metrics['alpha']}, consistency {metrics['consistency']:.3f}")
    if R.model == "conditioned_mapper":
        t = metrics["texts"]
        gain = {k: v["clip_loss_before"] - v["clip_loss_after"] for k, v in t.items()}
        return (f"{len(t)} texts: mean CLIP loss drop {sum(gain.values()) / len(gain):.3f} on {metrics['n_codes']} "
                f"held-out codes, least {min(gain, key=gain.get)!r} ({min(gain.values()):.3f})")
    rel = metrics["relative_error"]
    worst, within = max(rel, key=rel.get), sum(v <= BARS["stylegan2"] for v in rel.values())
    return (f"{within} of {len(rel)} prompt attributes within ±{100 * BARS['stylegan2']:.0f}% of the data's "
            f"frequency, mean error {sum(rel.values()) / len(rel):.2f}, worst {worst} ({rel[worst]:.2f})")
