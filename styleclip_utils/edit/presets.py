"""The models an editing notebook runs with, by preset, and the faces it starts from.

- "synthfaces": the shipped SynthFaces generator, small CLIP and identity net (the losses), and the judges
  that score edits (`scorecard.Judges`): every edit is measured.
- "ffhq": the real pipeline. FFHQ StyleGAN2 config-f, CLIP ViT-B/32 and ArcFace IR-SE50 (the identity
  loss), each from the registry's cache (downloaded when missing and possible) or from a path the user
  gives. FFHQ has no judges, so edits get the open measures (`scorecard.OpenMeasures`): CLIP score, ID
  similarity, LPIPS and time, as the paper reports them.

    models = load_models("ffhq", device, generator="~/weights/stylegan2-ffhq-config-f.pt")
"""
from dataclasses import dataclass

import torch

from ..losses.identity import IDLoss
from ..weights import zoo
from ..weights.checkpoints import load_checkpoint
from ..weights.official import load_arcface, load_lpips, load_stylegan2, load_vit_b32
from .scorecard import Judges, OpenMeasures, load_judges

# What generator each preset expects. 256 and 512 px config-f files run under "ffhq" too (the tests use a
# 256 px one); SynthFaces generators are small (64 px shipped, 32 px in the tests).
GENERATOR_SIZES = {"synthfaces": (32, 64, 128), "ffhq": (256, 512, 1024)}


@dataclass
class EditModels:
    preset: str
    G: torch.nn.Module
    clip_model: torch.nn.Module
    id_loss: IDLoss
    judges: Judges | OpenMeasures
    about: str           # one line: which models ran


def check_generator(G, preset):
    """A generator of the wrong kind for the preset is an error, not a run with meaningless scores."""
    ok = G.size in GENERATOR_SIZES[preset] and (preset == "synthfaces") == (G.style_dim < 512)
    if not ok:
        other = "ffhq" if preset == "synthfaces" else "synthfaces"
        raise ValueError(
            f"this generator is {G.size} px with {G.style_dim}-d styles: not one for preset={preset!r}, which expects "
            + ("a SynthFaces generator (64 px, small styles)" if preset == "synthfaces" else
               "an FFHQ StyleGAN2 config-f (1024 px, 512-d styles; 256/512 px config-f files also run)")
            + f". Use preset={other!r}, or give the right file.")


def load_models(preset, device="cpu", weights_dir="", generator="", clip="", arcface="", lpips="lpips-alexnet"):
    """The generator, the losses' models and the scorer of `preset` (module docstring) -> EditModels.
    Empty paths mean the preset's defaults: data/weights/synthfaces, or the registry's cache."""
    if preset == "synthfaces":
        root = weights_dir or None
        G, clip_model = zoo.load_generator(device, root), zoo.load_clip(device, root)
        check_generator(G, preset)
        id_loss = IDLoss("synthfaces", zoo.load_identity_net(device, root))
        judges = load_judges(device, root, clip_model=clip_model, lpips_fn=load_lpips(device=device, download_missing=False))
        return EditModels(preset, G, clip_model, id_loss, judges, f"SynthFaces {G.size} px generator, small CLIP, "
                          f"identity net; scored by the SynthFaces judges")
    if preset != "ffhq":
        raise ValueError(f"preset must be 'synthfaces' or 'ffhq', got {preset!r}")
    G = load_stylegan2(generator or "stylegan2-ffhq-config-f", device=device)
    check_generator(G, preset)
    if not G.has_w_avg:  # a training checkpoint: rosinality's generate.py also averages 4096 mapped z
        print("note: the generator file has no latent_avg; truncation uses the mean of 4096 mapped z (seed 0)")
        G.set_w_avg(G.mean_latent(4096, seed=0))
    clip_model = load_vit_b32(clip or "clip-vit-b-32", device=device)
    id_loss = IDLoss("arcface", load_arcface(arcface or "arcface-ir-se50", device=device))
    lpips_fn = load_lpips(lpips, device=device, download_missing=False)
    return EditModels(preset, G, clip_model, id_loss, OpenMeasures(clip_model, id_loss, lpips_fn),
                      f"FFHQ StyleGAN2 {G.size} px, CLIP ViT-B/32, ArcFace IR-SE50 (identity loss); no judges: "
                      f"CLIP score, ID similarity, LPIPS{'' if lpips_fn else ' (n/a)'} and time")


def load_latents(path, G, n):
    """The first n codes of a latents file in the official layout (`test_faces.pt`: a tensor [N, n_latent,
    dim], W+ codes of e4e inversions) -> ws [n, n_latent, dim] on G's device."""
    ws = load_checkpoint(path)
    if isinstance(ws, dict) and len(ws) == 1:  # {"latents": tensor} and the like
        ws = next(iter(ws.values()))
    if not torch.is_tensor(ws) or ws.dim() != 3 or ws.shape[1:] != (G.n_latent, G.style_dim):
        shape = tuple(ws.shape) if torch.is_tensor(ws) else type(ws).__name__
        raise ValueError(f"{path}: expected W+ codes [N, {G.n_latent}, {G.style_dim}] for this {G.size} px generator, "
                         f"got {shape}" + (" (codes of a generator of another size?)" if torch.is_tensor(ws) else ""))
    if len(ws) < n:
        raise ValueError(f"{path} holds {len(ws)} codes; n_images={n} needs at least that many (lower n_images)")
    if not torch.isfinite(ws).all():
        raise ValueError(f"{path} holds NaN or infinite codes")
    return ws[:n].float().to(G.w_avg.device)
