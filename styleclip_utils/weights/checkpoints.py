"""Loading checkpoints in the layouts the real pipeline ships, with one clear error when a file is wrong.

Layouts accepted for a generator:
- a StyleGAN2 `.pt` (rosinality): {"g_ema": ..., "latent_avg"?: [512], "g"?, "d"?, ...}
- a checkpoint holding a generator under `decoder.*` keys: e4e (`e4e_ffhq_encode.pt`) and StyleCLIP mappers:
  {"state_dict": {"encoder.*" | "mapper.*", "decoder.*"}, "latent_avg"?: [18, 512], "opts": ...}
- a bare rosinality generator state dict
- a `.safetensors` file (flat keys): a bare generator, or `g_ema.*` keys + `latent_avg`, as the project's
  SynthFaces weights are stored.
The generator's size, widths and mapping depth are read from the keys, never from `opts`.
"""
import pickle
import re
import warnings
import zipfile
from pathlib import Path

import torch



class CheckpointError(ValueError):
    """A file is not a checkpoint of the expected kind, or its keys/shapes do not match the model."""


def load_checkpoint(path, map_location="cpu"):
    """torch.load with weights_only=True (or safetensors), turning every failure into a CheckpointError."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file
        try:
            return load_file(str(path), device=str(map_location))
        except SafetensorError as e:
            raise CheckpointError(f"{path} is not a valid safetensors file ({e})") from e
    try:
        with warnings.catch_warnings():  # a raw pickle of another protocol: refused below anyway
            warnings.filterwarnings("ignore", message="Detected pickle protocol")
            return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        # weights_only refuses to import anything: a full-model pickle, or a malicious one. Torch names the
        # global for some pickles; for others (a raw pickle, newer protocols) it fails on an opcode first, so
        # the pickle's opcodes are read (never run) to find what it would import.
        found = re.findall(r"GLOBAL ([\w.]+)", str(e)) or _pickle_imports(path)
        if found:
            raise CheckpointError(
                f"{path} is not a weights file: it asks Python to import {found[0]} (an object or code, not only "
                f"tensors), so it is not loaded (weights_only=True: unpickling objects can run code). If it is "
                f"your own model, re-save it as a state dict: torch.save(model.state_dict(), ...).") from e
        raise CheckpointError(f"{path} is not a readable weights file ({_first_line(e)}): a cut download or "
                              f"copy, or not a PyTorch file. Fetch or copy it again.") from e
    except PermissionError:
        raise  # says what it is already
    # a cut zip archive fails in the zip reader (RuntimeError, or OSError [Errno 22] when the central
    # directory's offsets point past the end); garbage that starts with pickle opcodes fails inside the
    # unpickler (memo/stack lookups)
    except (RuntimeError, OSError, EOFError, zipfile.BadZipFile, ValueError, KeyError, IndexError) as e:
        raise CheckpointError(f"{path} is not a readable weights file ({_first_line(e)}): a cut download or "
                              f"copy, or not a PyTorch file. Fetch or copy it again.") from e


# What a weights file may import: tensor rebuilding and plain containers. Anything else is an object.
SAFE_MODULES = ("torch", "collections", "numpy.core.multiarray", "numpy._core.multiarray", "numpy", "_codecs")


def _pickle_imports(path):
    """The globals a pickle would import (from its opcodes, without unpickling), safe modules left out. Reads
    a raw pickle or the `data.pkl` of a torch zip archive; a cut stream yields what was read before the cut."""
    import pickletools

    try:
        with zipfile.ZipFile(path) as z:
            data = z.read(next(n for n in z.namelist() if n.endswith("data.pkl")))
    except (zipfile.BadZipFile, StopIteration, OSError, KeyError):
        data = Path(path).read_bytes()
    found, strings = [], []
    try:
        for op, arg, _ in pickletools.genops(data):
            if op.name == "GLOBAL":
                found.append(arg.replace(" ", "."))
            elif op.name == "STACK_GLOBAL" and len(strings) >= 2:
                found.append(f"{strings[-2]}.{strings[-1]}")
            elif isinstance(arg, str):
                strings.append(arg)
    except Exception:  # noqa: BLE001 - a cut or garbage stream: keep what was found
        pass
    return [g for g in found if not g.startswith(SAFE_MODULES)]


def _first_line(e):
    return str(e).splitlines()[0][:200] if str(e) else type(e).__name__


def _strip(sd, prefix):
    return {k[len(prefix):]: v for k, v in sd.items() if k.startswith(prefix)}


def generator_state(ckpt):
    """Find the generator weights and the average latent in any accepted layout -> (state_dict, latent_avg)."""
    if not isinstance(ckpt, dict):
        raise CheckpointError(f"expected a dict checkpoint, got {type(ckpt).__name__}")
    latent_avg = ckpt.get("latent_avg")
    if isinstance(ckpt.get("g_ema"), dict):
        return ckpt["g_ema"], latent_avg
    if "g_ema.style.1.weight" in ckpt:  # the same, flattened (safetensors holds no nested dicts)
        return _strip(ckpt, "g_ema."), latent_avg
    if isinstance(ckpt.get("state_dict"), dict) and any(k.startswith("decoder.") for k in ckpt["state_dict"]):
        return _strip(ckpt["state_dict"], "decoder."), latent_avg
    if "style.1.weight" in ckpt:
        return ckpt, None
    raise CheckpointError(
        "no StyleGAN2 generator found: expected a 'g_ema' entry or 'g_ema.*' keys (rosinality .pt, our "
        "safetensors), 'decoder.*' keys under "
        f"'state_dict' (e4e / StyleCLIP mapper), or a bare generator state dict; top-level keys are "
        f"{sorted(map(str, ckpt))[:12]}")


def infer_generator_config(sd):
    """Generator kwargs from a rosinality state dict's keys and shapes."""
    try:
        n_mlp = len([k for k in sd if re.fullmatch(r"style\.\d+\.weight", k)])
        style_dim = sd["style.1.weight"].shape[1]
        n_rgb = len({k.split(".")[1] for k in sd if k.startswith("to_rgbs.")})
        size = 2 ** (n_rgb + 2)
        channels = {4: sd["conv1.conv.weight"].shape[1]}
        for k in range(n_rgb):
            channels[2 ** (k + 3)] = sd[f"convs.{2 * k}.conv.weight"].shape[1]
    except (KeyError, IndexError) as e:
        raise CheckpointError(f"not a rosinality StyleGAN2 generator state dict: missing {e}") from e
    return dict(size=size, style_dim=style_dim, n_mlp=n_mlp, channels=channels)


def check_state_dict(model, sd, what="checkpoint"):
    """Strict key/shape comparison, raised as one readable error (instead of torch's traceback)."""
    expected = model.state_dict()
    missing = [k for k in expected if k not in sd]
    unexpected = [k for k in sd if k not in expected]
    wrong = [f"{k}: file {tuple(sd[k].shape)} vs model {tuple(v.shape)}"
             for k, v in expected.items() if k in sd and tuple(sd[k].shape) != tuple(v.shape)]
    if missing or unexpected or wrong:
        def show(items):
            return ", ".join(items[:10]) + (f" ... (+{len(items) - 10} more)" if len(items) > 10 else "")
        lines = [f"{what} does not match {type(model).__name__}:"]
        lines += [f"  missing keys ({len(missing)}): {show(missing)}"] if missing else []
        lines += [f"  unexpected keys ({len(unexpected)}): {show(unexpected)}"] if unexpected else []
        lines += [f"  shape mismatches ({len(wrong)}): {show(wrong)}"] if wrong else []
        raise CheckpointError("\n".join(lines))
