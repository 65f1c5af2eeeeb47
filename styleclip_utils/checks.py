"""Notebook parameters, checked before any work: one function per notebook, called by its second cell with
the values of its `parameters` cell. Each raises a ValueError (FileNotFoundError for a missing file) that
names the parameter and says what to give; it returns what the notebook uses next."""
from pathlib import Path

from .data.prompts import check_prompts
from .device import PRECISIONS, resolve_device


def positive_int(name, value, upper=None):
    if not (isinstance(value, int) and not isinstance(value, bool) and value >= 1 and (upper is None or value <= upper)):
        raise ValueError(f"{name} must be an integer >= 1{f' and <= {upper}' if upper else ''}, got {value!r}")
    return value


def one_of(name, value, choices):
    if value not in choices:
        raise ValueError(f"{name} must be one of {list(choices)}, got {value!r}")
    return value


def check_00(recipe, steps, n_images, overrides, resume, export, device, weights_dir, out_dir):
    """Notebook 00 -> the Recipe to run (steps / n_images 0 keep the recipe's own values)."""
    from .train.recipes import load_recipe

    if not (isinstance(steps, int) and steps >= 0):
        raise ValueError(f"steps must be an integer >= 0 (0: the recipe's own), got {steps!r}")
    if not (isinstance(n_images, int) and (n_images == 0 or n_images >= 20)):
        raise ValueError(f"n_images must be 0 (the recipe's own) or an integer >= 20, got {n_images!r}")
    if not isinstance(overrides, dict):
        raise ValueError(f"overrides must be a dict of recipe values, e.g. {{'train.lr': 1e-3}}, got {overrides!r}")
    for name, flag in (("resume", resume), ("export", export)):
        if not isinstance(flag, bool):
            raise ValueError(f"{name} must be True or False, got {flag!r}")
    changes = dict(overrides)
    if steps:
        changes["steps"] = steps
    if n_images:
        changes["data.n_images"] = n_images
    if device != "auto":
        changes["device"] = device
    if weights_dir:
        changes["weights"] = weights_dir
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
    if not isinstance(seed, int):
        raise ValueError(f"seed must be an integer, got {seed!r}")


def check_03(preset, prompts, free_prompts, spaces, space, steps, lr, l2_lambda, id_lambda, clip_views, n_images,
             truncation, seed, device, precision, weights_dir, figures_dir, out_dir):
    """Notebook 03 -> the torch.device to run on. Prompts are free text (an empty one, or a string where a list
    is expected, is an error)."""
    from .edit.optimize import ROW_PRESETS, SPACES

    if preset != "synthfaces":
        raise ValueError(f"preset must be 'synthfaces', got {preset!r} (the real files' preset is not in this "
                         "notebook yet: see docs/real-pipeline.md)")
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
    positive_int("n_images", n_images, 1000)
    if not (isinstance(clip_views, int) and clip_views >= 0):
        raise ValueError(f"clip_views must be an integer >= 0 (0: no augmentation), got {clip_views!r}")
    if not (lr > 0 and l2_lambda >= 0 and id_lambda >= 0 and 0 <= truncation <= 1):
        raise ValueError("need lr > 0, l2_lambda >= 0, id_lambda >= 0 and truncation in [0, 1]")
    one_of("precision", precision, PRECISIONS)
    return resolve_device(device)
