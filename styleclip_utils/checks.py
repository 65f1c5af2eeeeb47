"""Notebook parameters, checked before any work: one function per notebook, called by its second cell with
the values of its `parameters` cell. Each raises a ValueError (FileNotFoundError for a missing file) that
names the parameter and says what to give; it returns what the notebook uses next."""
import tempfile
from numbers import Real
from pathlib import Path

from .data.prompts import check_prompts
from .device import PRECISIONS, resolve_device
from .paths import RUNS_DIR

PRESETS = ("synthfaces", "ffhq")


def positive_int(name, value, upper=None):
    if not (isinstance(value, int) and not isinstance(value, bool) and value >= 1 and (upper is None or value <= upper)):
        raise ValueError(f"{name} must be an integer >= 1{f' and <= {upper}' if upper else ''}, got {value!r}")
    return value


def integer(name, value):
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    return value


def number(name, value, low, high, low_open=False):
    """A real number in [low, high] ((low, high] with low_open); bools and strings are not numbers."""
    ok = isinstance(value, Real) and not isinstance(value, bool) and (value > low if low_open else value >= low) \
        and value <= high
    if not ok:
        raise ValueError(f"{name} must be a number in {'(' if low_open else '['}{low}, {high}], got {value!r}")
    return float(value)


def flag(name, value):
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be True or False, got {value!r}")
    return value


def existing_file(name, value, what):
    """'' (not given) or the path of an existing file."""
    if not isinstance(value, str):
        raise ValueError(f"{name} must be a path (a string; '' for the default), got {value!r}")
    if value and not Path(value).expanduser().is_file():
        raise FileNotFoundError(f"{name}={value!r} is not a file: give the path of {what}, or '' for the default")
    return value


def outputs_and_device(precision, out_dir, default_out, figures_dir, device):
    """The editing notebooks' last checks: precision, the output folders -> the torch.device to run on."""
    one_of("precision", precision, PRECISIONS)
    writable_dir("out_dir", out_dir, default_out)
    if figures_dir:
        writable_dir("figures_dir", figures_dir, "")
    return resolve_device(device)


def writable_dir(name, value, default):
    """The output folder (`default` when value is ''): created if needed and proved writable by writing and
    removing a temp file, before any work is done, so that a long run cannot fail at its last cell."""
    if not isinstance(value, str):
        raise ValueError(f"{name} must be a folder path (a string; '' for {default}), got {value!r}")
    path = Path(value).expanduser() if value else Path(default)
    if path.exists() and not path.is_dir():
        raise ValueError(f"{name}={str(path)!r} is a file, not a folder: give a folder (it is created if missing)")
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".write-test-"):
            pass
    except OSError as e:
        raise ValueError(f"{name}={str(path)!r} is not writable ({e.strerror}): give a folder you can write to") from e
    return path


def one_of(name, value, choices):
    if value not in choices:
        raise ValueError(f"{name} must be one of {list(choices)}, got {value!r}")
    return value


def check_00(recipe, steps, n_images, overrides, resume, export, device, weights_dir, out_dir, precision=""):
    """Notebook 00 -> the Recipe to run (steps / n_images 0 and precision "" keep the recipe's own values)."""
    from .train.recipes import load_recipe

    if not (isinstance(steps, int) and steps >= 0):
        raise ValueError(f"steps must be an integer >= 0 (0: the recipe's own), got {steps!r}")
    if not (isinstance(n_images, int) and (n_images == 0 or n_images >= 20)):
        raise ValueError(f"n_images must be 0 (the recipe's own) or an integer >= 20, got {n_images!r}")
    if not isinstance(overrides, dict):
        raise ValueError(f"overrides must be a dict of recipe values, e.g. {{'train.lr': 1e-3}}, got {overrides!r}")
    flag("resume", resume)
    flag("export", export)
    if out_dir:
        writable_dir("out_dir", out_dir, RUNS_DIR / "train")
    changes = dict(overrides)
    if steps:
        changes["steps"] = steps
    if n_images:
        changes["data.n_images"] = n_images
    if device != "auto":
        changes["device"] = device
    if weights_dir:
        changes["weights"] = weights_dir
    if precision:
        one_of("precision", precision, PRECISIONS + ("",))
        changes["precision"] = precision
    return load_recipe(recipe, **changes)


def check_01(dataset, data_dir, n_images, size, seed, photo, align_size, figures_dir, out_dir):
    one_of("dataset", dataset, ("synthfaces", "celeba_hq"))
    if dataset == "celeba_hq" and not data_dir:
        raise ValueError("dataset='celeba_hq' needs data_dir: the CelebAMask-HQ folder holding CelebA-HQ-img/ "
                         "and CelebAMask-HQ-attribute-anno.txt")
    if not (isinstance(n_images, int) and 20 <= n_images <= 1_000_000):
        raise ValueError(f"n_images must be an integer >= 20 (the split needs several identities) and <= 1000000, "
                         f"got {n_images!r}")
    if size not in (32, 64, 128, 256):
        raise ValueError(f"size must be one of 32, 64, 128, 256 px, got {size!r}")
    if not (isinstance(align_size, int) and 64 <= align_size <= 1024):
        raise ValueError(f"align_size must be an integer in [64, 1024], got {align_size!r}")
    if photo and not Path(photo).is_file():
        raise ValueError(f"photo {photo!r} does not exist; give a path to an image file, or '' for the demo scene")
    integer("seed", seed)
    writable_dir("out_dir", out_dir, RUNS_DIR / "01_data_prep")
    if figures_dir:
        writable_dir("figures_dir", figures_dir, "")


def check_03(preset, prompts, free_prompts, spaces, space, steps, lr, l2_lambda, id_lambda, clip_views, n_images,
             truncation, seed, official_preprocess, batch, generator, clip, arcface, latents, device, precision,
             weights_dir, figures_dir, out_dir):
    """Notebook 03 -> the torch.device to run on. Prompts are free text (an empty one, or a string where a list
    is expected, is an error). Paths must exist; out_dir (and figures_dir) must be writable folders."""
    from .edit.optimize import ROW_PRESETS, SPACES

    one_of("preset", preset, PRESETS)
    check_prompts(prompts)
    if free_prompts:
        check_prompts(free_prompts)
    known = list(SPACES) + list(ROW_PRESETS)
    if isinstance(spaces, str) or not spaces or any(s not in known for s in spaces):
        raise ValueError(f"spaces must be a non-empty list from {known}; got {spaces!r}")
    if space not in spaces:
        raise ValueError(f"space (the recipe's, for the figures and free_prompts) must be one of spaces {spaces}, "
                         f"got {space!r}")
    positive_int("steps", steps, 100_000)
    positive_int("n_images", n_images, 256)  # per prompt; all of them are one batch
    if not (isinstance(clip_views, int) and not isinstance(clip_views, bool) and 0 <= clip_views <= 64):
        raise ValueError(f"clip_views must be an integer in [0, 64] (0: no augmentation), got {clip_views!r}")
    number("lr", lr, 0, 10, low_open=True)  # official 0.1; far above 1 an edit explodes
    number("l2_lambda", l2_lambda, 0, 1e3)
    number("id_lambda", id_lambda, 0, 1e3)
    number("truncation", truncation, 0, 1)
    integer("seed", seed)
    flag("official_preprocess", official_preprocess)
    if not (isinstance(batch, int) and not isinstance(batch, bool) and 0 <= batch <= 4096):
        raise ValueError(f"batch must be an integer in [0, 4096] (0: every edit at once), got {batch!r}")
    if latents and "z" in spaces:
        raise ValueError("a latents file holds W+ codes, which have no z: drop 'z' from spaces, or leave latents ''")
    for name, value, what in (("generator", generator, "a StyleGAN2 checkpoint (.pt / .safetensors)"),
                              ("clip", clip, "a CLIP ViT file (OpenAI archive or state dict)"),
                              ("arcface", arcface, "model_ir_se50.pth"),
                              ("latents", latents, "a latents file [N, n_latent, 512] (e.g. test_faces.pt)")):
        existing_file(name, value, what)
        if value and preset == "synthfaces" and name != "latents":
            raise ValueError(f"{name} is a file of the real pipeline: use it with preset='ffhq' (SynthFaces models "
                             f"come from weights_dir)")
    if weights_dir and preset == "ffhq":
        raise ValueError("weights_dir holds SynthFaces models: with preset='ffhq' give generator/clip/arcface paths "
                         "(or '' for the cache)")
    return outputs_and_device(precision, out_dir, RUNS_DIR / "03_latent_optimization", figures_dir, device)


def check_02(preset, train_steps, n_test, project_steps, refine_steps, prompts, n_edit, space, steps, photo,
             photo_prompt, encoder, generator, clip, arcface, seed, device, precision, weights_dir, figures_dir, out_dir):
    """Notebook 02 -> the torch.device to run on."""
    from .edit.optimize import ROW_PRESETS, SPACES

    one_of("preset", preset, PRESETS)
    if not (isinstance(train_steps, int) and not isinstance(train_steps, bool) and 0 <= train_steps <= 1_000_000):
        raise ValueError(f"train_steps must be 0 (load the trained encoder) or a number of steps, got {train_steps!r}")
    if train_steps and preset == "ffhq":
        raise ValueError("training in this notebook is for SynthFaces; fine-tune an FFHQ encoder with "
                         "python -m styleclip_utils.train (docs/e4e.md)")
    positive_int("n_test", n_test, 2000)
    for name, value in (("project_steps", project_steps), ("refine_steps", refine_steps)):
        if not (isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 100_000):
            raise ValueError(f"{name} must be an integer in [0, 100000] (0: skip), got {value!r}")
    check_prompts(prompts)
    check_prompts([photo_prompt])
    positive_int("n_edit", n_edit, 256)
    positive_int("steps", steps, 100_000)
    one_of("space", space, [s for s in SPACES if s not in ("z", "rows")] + list(ROW_PRESETS))  # W+ codes: no z
    integer("seed", seed)
    existing_file("photo", photo, "an image with a face")
    for name, value, what in (("encoder", encoder, "an e4e file (e4e_ffhq_encode.pt)"),
                              ("generator", generator, "a StyleGAN2 file"), ("clip", clip, "a CLIP ViT file"),
                              ("arcface", arcface, "model_ir_se50.pth")):
        existing_file(name, value, what)
        if value and preset == "synthfaces":
            raise ValueError(f"{name} is a file of the real pipeline: use it with preset='ffhq'")
    return outputs_and_device(precision, out_dir, RUNS_DIR / "02_e4e_encoder", figures_dir, device)


def check_05(preset, prompts, free_prompts, neutral, target_format, templates, relevance, n_relevance, n_channels,
             max_resolution, alphas, betas, n_images, truncation, seed, space, compare_steps, generator, clip, arcface,
             latents, encoder, device, precision, weights_dir, figures_dir, out_dir):
    """Notebook 05 -> the torch.device to run on."""
    from .edit.optimize import ROW_PRESETS, SPACES

    one_of("preset", preset, PRESETS)
    check_prompts(prompts)
    if free_prompts:
        check_prompts(free_prompts)
    check_prompts([neutral])
    if not isinstance(target_format, str) or target_format.count("{}") != 1:
        raise ValueError(f"target_format must be a text with one {{}} where the prompt goes (e.g. 'face with {{}}'), "
                         f"got {target_format!r}")
    one_of("templates", templates, ("imagenet", "none"))
    one_of("relevance", relevance, ("fast", "exact", "shipped"))
    if relevance == "shipped" and preset != "synthfaces":
        raise ValueError("relevance='shipped' is the SynthFaces exact relevance; with preset='ffhq' use 'fast' or 'exact'")
    positive_int("n_relevance", n_relevance, 10_000)
    if not (isinstance(n_channels, int) and not isinstance(n_channels, bool) and n_channels >= 0):
        raise ValueError(f"n_channels must be 0 (every channel) or a number of channels, got {n_channels!r}")
    if not (isinstance(max_resolution, int) and not isinstance(max_resolution, bool) and max_resolution >= 0):
        raise ValueError(f"max_resolution must be 0 (every layer) or a resolution in px (official FFHQ: 128), "
                         f"got {max_resolution!r}")
    for name, values, low, high in (("alphas", alphas, -100, 100), ("betas", betas, 0, 0.999)):
        if isinstance(values, (str, bytes)) or not isinstance(values, (list, tuple)) or not values:
            raise ValueError(f"{name} must be a non-empty list of numbers, got {values!r}")
        for v in values:
            number(name, v, low, high)
    positive_int("n_images", n_images, 256)
    number("truncation", truncation, 0, 1)
    integer("seed", seed)
    one_of("space", space, [s for s in SPACES if s != "rows"] + list(ROW_PRESETS))
    if not (isinstance(compare_steps, int) and not isinstance(compare_steps, bool) and 0 <= compare_steps <= 100_000):
        raise ValueError(f"compare_steps must be an integer in [0, 100000] (0: no optimisation column), got {compare_steps!r}")
    for name, value, what in (("generator", generator, "a StyleGAN2 checkpoint"), ("clip", clip, "a CLIP ViT file"),
                              ("arcface", arcface, "model_ir_se50.pth"),
                              ("latents", latents, "a latents file [N, n_latent, 512]"),
                              ("encoder", encoder, "an e4e file")):
        existing_file(name, value, what)
        if value and preset == "synthfaces" and name in ("generator", "clip", "arcface"):
            raise ValueError(f"{name} is a file of the real pipeline: use it with preset='ffhq'")
    if latents and space == "z":
        raise ValueError("a latents file holds W+ codes, which have no z: choose another space, or leave latents ''")
    return outputs_and_device(precision, out_dir, RUNS_DIR / "05_global_directions", figures_dir, device)


def check_04(preset, prompts, unseen, n_eval, alphas, alpha, conditioned, n_images, truncation, seed, space,
             compare_steps, gd_alpha, gd_beta, train_prompt, train_steps, mapper, generator, clip, arcface, device,
             precision, weights_dir, figures_dir, out_dir):
    """Notebook 04 -> the torch.device to run on."""
    from .edit.optimize import ROW_PRESETS, SPACES

    one_of("preset", preset, PRESETS)
    check_prompts(prompts)
    if unseen:
        check_prompts(unseen)
    positive_int("n_eval", n_eval, 1024)
    if isinstance(alphas, (str, bytes)) or not isinstance(alphas, (list, tuple)) or not alphas:
        raise ValueError(f"alphas must be a non-empty list of strengths, e.g. [0.5, 1.0, 1.5], got {alphas!r}")
    for a in alphas:
        number("alphas", a, -10, 10)
    number("alpha", alpha, -10, 10)
    flag("conditioned", conditioned)
    positive_int("n_images", n_images, 256)
    number("truncation", truncation, 0, 1)
    integer("seed", seed)
    one_of("space", space, [s for s in SPACES if s != "rows"] + list(ROW_PRESETS))
    if not (isinstance(compare_steps, int) and not isinstance(compare_steps, bool) and 0 <= compare_steps <= 100_000):
        raise ValueError(f"compare_steps must be an integer in [0, 100000] (0: no optimisation row), got {compare_steps!r}")
    number("gd_alpha", gd_alpha, -100, 100)
    number("gd_beta", gd_beta, 0, 0.999)
    if train_prompt:
        check_prompts([train_prompt])
    if not (isinstance(train_steps, int) and not isinstance(train_steps, bool) and 0 <= train_steps <= 1_000_000):
        raise ValueError(f"train_steps must be an integer >= 0 (0: load the shipped mappers), got {train_steps!r}")
    if train_steps and not train_prompt:
        raise ValueError("train_steps > 0 trains a mapper for train_prompt: give one, e.g. train_prompt='red hair'")
    for name, value, what in (("mapper", mapper, "an official mapper checkpoint (e.g. mapper/pretrained/afro.pt)"),
                              ("generator", generator, "a StyleGAN2 checkpoint"), ("clip", clip, "a CLIP ViT file"),
                              ("arcface", arcface, "model_ir_se50.pth")):
        existing_file(name, value, what)
        if value and preset == "synthfaces":
            raise ValueError(f"{name} is a file of the real pipeline: use it with preset='ffhq'")
    if preset == "ffhq" and not mapper:
        raise ValueError("preset='ffhq' edits with an official mapper file: give mapper='path/to/afro.pt' (StyleCLIP's "
                         "pretrained mappers; none can be downloaded here)")
    return outputs_and_device(precision, out_dir, RUNS_DIR / "04_latent_mapper", figures_dir, device)


def check_06(preset, seeds, psis, interp_seeds, interp_steps, n_domain, mix_group, n_fit, n_measure, amount, slider_seed,
             condition_on, photo, style, style_steps, style_size, truncation, generator, boundaries, encoder, device,
             precision, weights_dir, figures_dir, out_dir):
    """Notebook 06 -> the torch.device to run on."""
    from .edit.directions import FEATURES
    from .edit.playground import GROUPS
    from .edit.style_transfer import STYLES

    one_of("preset", preset, PRESETS)
    for name, values, low in (("seeds", seeds, 3), ("interp_seeds", interp_seeds, 2)):
        if isinstance(values, (str, bytes)) or not isinstance(values, (list, tuple)) or len(values) < low:
            raise ValueError(f"{name} must be a list of at least {low} integer seeds, got {values!r}")
        for s in values:
            integer(name, s)
    if len(interp_seeds) != 2:
        raise ValueError(f"interp_seeds must be two seeds (the two ends), got {interp_seeds!r}")
    if isinstance(psis, (str, bytes)) or not isinstance(psis, (list, tuple)) or not psis:
        raise ValueError(f"psis must be a non-empty list of truncation values in [0, 1], got {psis!r}")
    for p in psis:
        number("psis", p, 0, 1)
    positive_int("interp_steps", interp_steps, 120)
    if interp_steps < 2:
        raise ValueError("interp_steps must be at least 2 (the two ends)")
    positive_int("n_domain", n_domain, 16)
    one_of("mix_group", mix_group, list(GROUPS))
    positive_int("n_fit", n_fit, 100_000)
    if n_fit < 50:
        raise ValueError(f"n_fit must be at least 50 faces to fit directions on, got {n_fit}")
    positive_int("n_measure", n_measure, 10_000)
    number("amount", amount, 0, 10, low_open=True)
    integer("slider_seed", slider_seed)
    if isinstance(condition_on, (str, bytes)) or not isinstance(condition_on, (list, tuple)):
        raise ValueError(f"condition_on must be a list of sliders, e.g. ['gender', 'age'], got {condition_on!r}")
    drawn = [k for k, v in FEATURES.items() if v is not None]
    for c in condition_on:
        if preset == "synthfaces" and c not in drawn:
            raise ValueError(f"condition_on: {c!r} is not a SynthFaces slider; they are {', '.join(drawn)}")
    existing_file("photo", photo, "a photo with a face")
    if not isinstance(style, str) or not style:
        raise ValueError(f"style must be one of {STYLES} or the path of an image, got {style!r}")
    if style not in STYLES:
        existing_file("style", style, f"a style image (or one of {STYLES})")
    positive_int("style_steps", style_steps, 5000)
    positive_int("style_size", style_size, 1024)
    if style_size < 16:
        raise ValueError(f"style_size must be at least 16 px, got {style_size}")
    number("truncation", truncation, 0, 1)
    for name, value, what in (("generator", generator, "a StyleGAN2 file"), ("encoder", encoder, "an e4e file")):
        existing_file(name, value, what)
        if value and preset == "synthfaces":
            raise ValueError(f"{name} is a file of the real pipeline: use it with preset='ffhq'")
    if isinstance(boundaries, (str, bytes)) or not isinstance(boundaries, (list, tuple)):
        raise ValueError(f"boundaries must be a list of InterFaceGAN .npy files, got {boundaries!r}")
    for b in boundaries:
        existing_file("boundaries", b, "an InterFaceGAN boundary (.npy)")
    if boundaries and preset == "synthfaces":
        raise ValueError("boundaries are the real pipeline's sliders: SynthFaces fits its own (use preset='ffhq')")
    return outputs_and_device(precision, out_dir, RUNS_DIR / "06_playground", figures_dir, device)
