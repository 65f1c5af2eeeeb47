"""StyleCLIP method 3: global directions in StyleSpace (Patashnik et al. 2021, §6).

No optimisation per edit. A one-off precompute measures, for every StyleSpace channel c, which way moving it
turns CLIP's image embedding: the channel's **relevance** `fs3[c]`, a unit vector in CLIP space (the
official code calls the matrix fs3). A text pair (neutral -> target) then gives a direction in CLIP space Δt,
and the edit in StyleSpace is

    Δs_c = fs3[c] · Δt   (how far channel c moves the image towards the text)
    Δs_c = 0 where |Δs_c| < β   (β, the disentanglement threshold, keeps only the channels that matter)
    Δs   = Δs / max|Δs| · σ_c    (in units of each channel's spread)
    s'   = s + α · Δs            (α, the strength; negative moves away from the target)

Two ways to get fs3:

- `exact_relevance`: the definition. For N images, set channel c to mean ± 5σ (the others at the image's own
  value), embed both images with CLIP, normalise, take the difference, normalise; average over the images and
  normalise. The channel is restored before the next one (the official script forgets to: REFERENCE.md).
  2·N renders per channel: 186,000 renders of the SynthFaces generator for 928 channels × 100 images; 4 h on a
  GPU for FFHQ's 6,048 channels.
- `fast_relevance`: the same quantity, linearised. f(s with s_c = m+5σ) − f(s with s_c = m−5σ) ≈ 10σ·J e_c, where
  J = ∂f/∂s is the Jacobian of the normalised CLIP embedding with respect to StyleSpace at the image. So
  normalise(J e_c), averaged over images and normalised, approximates fs3[c]; J costs D backward passes per
  image (D = CLIP's embedding width: 128 for SynthFaces, 512 for ViT-B/32) instead of 2 × (channels) renders,
  and all channels come out of each pass. `relevance_agreement` measures it against the exact one.

Names follow the official code where it has them (fs3, β "beta", α "alpha", neutral/target).
"""
import hashlib
import json
import time
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from .. import dist
from ..device import autocast
from ..files import atomic_write, read_json, write_json
from ..losses.clip_loss import to_clip_input

SIGMAS = 5.0   # official: each channel is set to mean ± 5σ


def imagenet_templates():
    """The 79 prompt templates StyleCLIP averages a text over (CLIP's ImageNet ones; "{}" is the text)."""
    with resources.files("styleclip_utils.data").joinpath("clip_templates.json").open() as f:
        return json.load(f)["templates"]


# ----------------------------------------------------------------------------------------------------------
# StyleSpace bookkeeping: the styles of all layers as one flat vector [B, C_total], in forward order
def layer_slices(G):
    """(StyleLayer, slice into the flat style vector) for every modulated layer, in forward order."""
    out, start = [], 0
    for layer in G.style_layers:
        out.append((layer, slice(start, start + layer.channels)))
        start += layer.channels
    return out


def to_flat(G, s):
    return G.s_to_flat(s, include_torgb=True)


def from_flat(G, flat):
    return [flat[:, sl] for _, sl in layer_slices(G)]


def channel_index(G, include_torgb=False, max_resolution=None, layers=None):
    """Flat indices of the channels global directions use: non-toRGB by default (official), only layers up to
    `max_resolution` px (official FFHQ precompute: 128), only the layers named in `layers` (e.g. ["convs.2"])."""
    names = {l.name for l in G.style_layers}
    if layers is not None:
        unknown = sorted(set(layers) - names)
        if unknown:
            raise ValueError(f"unknown style layers {unknown}; this generator has {[l.name for l in G.style_layers]}")
    idx = [torch.arange(sl.start, sl.stop) for layer, sl in layer_slices(G)
           if (include_torgb or not layer.is_torgb) and (max_resolution is None or layer.resolution <= max_resolution)
           and (layers is None or layer.name in layers)]
    if not idx:
        raise ValueError("no style channel is left with these restrictions (include_torgb, max_resolution, layers)")
    return torch.cat(idx)


@torch.no_grad()
def sample_styles(G, n, seed=0, truncation_psi=1.0, batch=1024):
    """Flat styles [n, C_total] of n faces from seeded z (no truncation by default, as the official statistics)."""
    ws = G.sample_ws(n, truncation_psi, seed, batch)
    return torch.cat([to_flat(G, G.w_to_s(ws[lo:lo + batch])) for lo in range(0, n, batch)])


@torch.no_grad()
def style_stats(G, n=10000, seed=0):
    """Per-channel mean and standard deviation of StyleSpace over n sampled faces -> (mean, std), [C_total] each."""
    s = sample_styles(G, n, seed).double()
    return s.mean(0).float(), s.std(0).float()


# ----------------------------------------------------------------------------------------------------------
# CLIP's side
def image_embedding(clip_model, img):
    """Normalised CLIP image features [B, D] of [-1, 1] images (resized and normalised as CLIPLoss does)."""
    x = to_clip_input(img, clip_model.visual.input_resolution)
    return F.normalize(clip_model.encode_image(x).float(), dim=1)


@torch.no_grad()
def text_embedding(clip_model, text, templates=None):
    """StyleCLIP's text embedding: `text` in every template, each normalised, averaged, normalised -> [D].
    templates None: the 79 ImageNet templates; [] or ["{}"]: the text alone."""
    import clip
    templates = imagenet_templates() if templates is None else (list(templates) or ["{}"])
    texts = [t.format(text) for t in templates]
    dev = next(clip_model.parameters()).device
    tokens = clip.tokenize(texts, context_length=clip_model.context_length, truncate=True).to(dev)
    return F.normalize(F.normalize(clip_model.encode_text(tokens).float(), dim=1).mean(0), dim=0)


def text_direction(clip_model, target, neutral="face", templates=None):
    """Δt: the normalised difference of the target's and the neutral text's embeddings -> [D]."""
    dt = text_embedding(clip_model, target, templates) - text_embedding(clip_model, neutral, templates)
    if float(dt.norm()) < 1e-6:
        raise ValueError(f"target {target!r} and neutral {neutral!r} embed to the same point: no direction")
    return F.normalize(dt, dim=0)


# ----------------------------------------------------------------------------------------------------------
# Relevance (fs3)
def model_hash(*models):
    """A short hash of the models' parameters and buffers: a cached relevance belongs to one generator and CLIP."""
    h = hashlib.sha256()
    for m in models:
        for k, v in m.state_dict().items():
            h.update(k.encode())
            h.update(v.detach().float().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def _load_cache(path, key):
    if path is None or not path.exists():
        return None
    try:
        cache = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # a torn or foreign file: say so and start over rather than crash or mix results
        print(f"note: relevance cache {path} is unreadable ({type(e).__name__}); starting over")
        return None
    if cache.get("key") != key:
        print(f"note: relevance cache {path} belongs to other models or settings; starting over")
        return None
    return cache


@torch.no_grad()
def exact_relevance(G, clip_model, styles, mean, std, channels, sigmas=SIGMAS, batch=512, cache=None,
                    save_every=30.0, progress=True):
    """The official relevance, fs3 [len(channels), D] (module docstring), for the flat styles [N, C_total] of
    N images. Renders 2·N images per channel, `batch` at a time (channels × images × ±). `cache` (a path):
    partial results are saved there every `save_every` seconds and a rerun with the same models and settings
    resumes from them; the cache is keyed by the models' hashes, the styles and the channels.

    Under torchrun (styleclip_utils.dist) each rank computes one contiguous chunk of the channels, resumable
    from its own `<cache>.rank<r>of<W>`; the chunks are then gathered, every rank returns the whole fs3, and
    rank 0 writes `cache` exactly as a single process would have (complete), so any later run finds it."""
    n, dev = len(styles), styles.device
    channels = channels.to(dev)
    key = dict(models=model_hash(G, clip_model), styles=hashlib.sha256(styles.float().cpu().numpy().tobytes()).hexdigest()[:16],
               channels=hashlib.sha256(channels.cpu().numpy().tobytes()).hexdigest()[:16], sigmas=float(sigmas))
    path = Path(cache) if cache else None
    world = dist.world_size()
    if world == 1:
        return _exact_chunk(G, clip_model, styles, mean, std, channels, sigmas, batch, path, key, save_every, progress)
    merged = _load_cache(path, key)
    if merged is not None and int(merged["done"]) == len(channels):   # a finished run (any world size)
        return merged["fs"].to(dev)
    lo, hi = dist.chunk(len(channels))
    part_path = path.with_name(f"{path.name}.rank{dist.rank()}of{world}") if path else None
    part = _exact_chunk(G, clip_model, styles, mean, std, channels[lo:hi], sigmas, batch, part_path,
                        dict(key, chunk=[lo, hi]), save_every, progress and dist.is_main())
    fs = torch.cat([p for p in dist.gather_objects(part.cpu()) if p.numel()]).to(dev)
    if path is not None and dist.is_main():
        snapshot = dict(key=key, done=len(channels), fs=fs.cpu())
        atomic_write(path, lambda fh: torch.save(snapshot, fh))
    dist.barrier()
    if part_path is not None and part_path.exists():   # merged: the chunk's own cache is no longer needed
        part_path.unlink()
    return fs


def _exact_chunk(G, clip_model, styles, mean, std, channels, sigmas, batch, path, key, save_every, progress):
    n, dev = len(styles), styles.device
    state = _load_cache(path, key)
    fs = state["fs"].to(dev) if state else None   # [K, D] once the first batch has told D
    done = int(state["done"]) if state else 0
    per = max(1, batch // (2 * n))  # channels per render batch
    last = time.time()
    bar = tqdm(total=len(channels), initial=done, desc="relevance (exact)", unit="ch", disable=not progress)
    for lo in range(done, len(channels), per):
        ch = channels[lo:lo + per]
        k = len(ch)
        s = styles.repeat(2 * k, 1)                                        # [(k·2·N), C]: channel-major, then ±
        rows = torch.arange(len(s), device=dev)
        col = ch.repeat_interleave(2 * n)
        sign = torch.tensor([-1.0, 1.0], device=dev).repeat_interleave(n).repeat(k)
        s[rows, col] = mean.to(dev)[col] + sign * sigmas * std.to(dev)[col]
        f = image_embedding(clip_model, G.synthesis_from_s(from_flat(G, s))).view(k, 2, n, -1)
        d = F.normalize(f[:, 1] - f[:, 0], dim=2)                           # [k, N, D]
        part = F.normalize(d.mean(1), dim=1)
        if fs is None:
            fs = torch.zeros(len(channels), part.shape[1], device=dev)
        fs[lo:lo + k] = part
        bar.update(k)
        if path is not None and (time.time() - last > save_every or lo + k >= len(channels)):
            last = time.time()
            snapshot = dict(key=key, done=lo + k, fs=fs.cpu())
            atomic_write(path, lambda fh: torch.save(snapshot, fh))
    bar.close()
    if fs is None:   # an empty chunk (more ranks than channels)
        fs = torch.zeros(0, clip_model.text_projection.shape[1], device=dev)
    return fs


def _jacobian(G, clip_model, s, cotangents, precision):
    """u_k^T J for each row u_k of `cotangents` [K, D], J = d image_embedding / d s at the styles s [b, C_total]:
    K backward passes batched together (vmap over the cotangents) -> [K, b, C_total]."""
    with torch.enable_grad(), autocast(s.device, precision):  # grad also when called under no_grad
        s = s.detach().clone().requires_grad_(True)
        f = image_embedding(clip_model, G.synthesis_from_s(from_flat(G, s)))    # [b, D]
        v = cotangents.unsqueeze(1).expand(len(cotangents), *f.shape)
        (jac,) = torch.autograd.grad(f, s, v, is_grads_batched=True)
    return jac.float()


def fast_relevance(G, clip_model, styles, channels, batch=8, precision="bf16", rank=48, basis_images=4, progress=True):
    """The linearised relevance fs3 [len(channels), D] (module docstring): each image's Jacobian J of the
    normalised CLIP embedding with respect to the flat styles, each column J e_c normalised, averaged over the N
    images, normalised.

    rank (low-rank estimate): the columns of J live mostly in a few directions of CLIP space. The full Jacobian
    (D backward passes) of the first `basis_images` images gives them (the top `rank` left singular vectors U of
    their columns); every image then needs only `rank` backward passes, U^T J, and the columns are normalised
    and averaged in that subspace and mapped back by U. rank None: the full Jacobian for every image.
    precision "bf16": the passes under bfloat16 autocast (faster on CPUs with AMX and on GPUs; sums stay fp32)."""
    n, dev = len(styles), styles.device
    channels = channels.to(dev)
    d = clip_model.text_projection.shape[1]
    eye = torch.eye(d, device=dev)
    basis = None
    if rank is not None and rank < d:
        full = torch.cat([_jacobian(G, clip_model, styles[lo:lo + batch], eye, precision)[:, :, channels]
                          for lo in range(0, min(basis_images, n), batch)], 1)        # [D, b0, K]
        u, _, _ = torch.linalg.svd(F.normalize(full, dim=0).flatten(1), full_matrices=False)
        basis = u[:, :rank]                                                             # [D, rank]
    acc = 0
    bar = tqdm(total=n, desc="relevance (Jacobian)", unit="img", disable=not progress)
    for lo in range(0, n, batch):
        jac = _jacobian(G, clip_model, styles[lo:lo + batch], eye if basis is None else basis.t(), precision)
        acc = acc + F.normalize(jac[:, :, channels], dim=0).sum(1)                      # [D or rank, K]
        bar.update(len(jac[0]))
    bar.close()
    fs3 = acc.t() if basis is None else acc.t() @ basis.t()                             # [K, D]
    return F.normalize(fs3, dim=1)


# ----------------------------------------------------------------------------------------------------------
# Text -> edit
class BetaTooHighError(ValueError):
    """β pruned every channel: no edit is left."""


@dataclass
class Direction:
    """A StyleSpace edit: ds [C_total] (zero outside the surviving channels), already scaled by σ and by
    1/max|fs3·Δt|; apply `s + alpha * ds`."""
    ds: torch.Tensor
    n_channels: int      # channels that survive β
    beta: float
    max_relevance: float  # max |fs3·Δt|: β at or above it removes every channel

    def per_layer(self, G):
        """{layer name: surviving channels} for the layers the edit touches."""
        return {layer.name: int((self.ds[sl] != 0).sum()) for layer, sl in layer_slices(G) if (self.ds[sl] != 0).any()}


def direction(fs3, channels, dt, std, beta=0.15, layers_mask=None):
    """Δs for the text direction dt [D] (module docstring). fs3 [K, D] for the flat `channels` [K];
    std [C_total]; layers_mask: an optional bool [C_total] restricting the edit (e.g. to some layers)."""
    if not 0 <= beta < 1:
        raise ValueError(f"beta must be in [0, 1) (official default 0.15, slider 0.08-0.3), got {beta!r}")
    rel = fs3.to(dt) @ dt                                                   # [K]
    if layers_mask is not None:
        rel = rel * layers_mask.to(rel.device)[channels.to(rel.device)]
    top = float(rel.abs().max())
    keep = rel.abs() >= beta
    n = int(keep.sum())
    if n == 0:
        raise BetaTooHighError(
            f"beta={beta:g} removes every channel: the most relevant channel for this text scores {top:.3f}. "
            f"Lower beta below {top:.3f} (the text may also be one this CLIP barely tells from the neutral text).")
    ds = torch.zeros(len(std), device=rel.device)
    ds[channels.to(rel.device)[keep]] = rel[keep] / top
    return Direction(ds * std.to(rel.device), n, float(beta), top)


def manipulate(G, ws_or_s, d, alpha):
    """Edit start faces (ws [B, n_latent, dim], or flat styles [B, C_total]) by alpha along the Direction
    (or a list of alphas, one image per alpha and face, alpha-major) -> images."""
    s = ws_or_s if ws_or_s.dim() == 2 else to_flat(G, G.w_to_s(ws_or_s))
    alphas = torch.as_tensor([alpha] if isinstance(alpha, (int, float)) else list(alpha), dtype=s.dtype, device=s.device)
    s2 = (s.unsqueeze(0) + alphas.view(-1, 1, 1) * d.ds.to(s).view(1, 1, -1)).flatten(0, 1)
    return G.synthesis_from_s(from_flat(G, s2))


def relevance_agreement(fs_a, fs_b, channels, clip_model, std, prompts, neutral="face", beta=0.15, templates=None,
                        target_format="{}"):
    """How well relevance fs_b stands in for fs_a, per prompt: the cosine of the two edits Δs (fs3·Δt scaled by σ,
    before β and after β) and the overlap (intersection over union) of the channels that survive β -> list of
    dicts."""
    rows = []
    sd = std[channels]
    for p in prompts:
        dt = text_direction(clip_model, target_format.format(p), neutral, templates)
        a, b = fs_a.to(dt) @ dt, fs_b.to(dt) @ dt
        ka, kb = a.abs() >= beta, b.abs() >= beta
        pa, pb = torch.where(ka, a, 0) * sd.to(dt), torch.where(kb, b, 0) * sd.to(dt)
        rows.append(dict(prompt=p, cos=float(F.cosine_similarity(a * sd.to(dt), b * sd.to(dt), dim=0)),
                         cos_pruned=float(F.cosine_similarity(pa, pb, dim=0)) if ka.any() and kb.any() else float("nan"),
                         iou=float((ka & kb).sum() / (ka | kb).sum().clamp(min=1)), n_a=int(ka.sum()), n_b=int(kb.sum())))
    return rows


@dataclass
class Relevance:
    """fs3 with what it needs to become an edit: the channels it covers (flat indices) and StyleSpace's mean
    and σ; `about` says how it was made (method, images, seconds, the models' hash)."""
    fs3: torch.Tensor        # [K, D]
    channels: torch.Tensor   # [K] flat channel indices
    mean: torch.Tensor       # [C_total]
    std: torch.Tensor        # [C_total]
    about: dict

    def direction(self, dt, beta=0.15, layers_mask=None):
        return direction(self.fs3, self.channels, dt, self.std, beta, layers_mask)

    def to(self, device):
        return Relevance(self.fs3.to(device), self.channels.to(device), self.mean.to(device), self.std.to(device),
                         self.about)

    def save(self, path):
        """`<path>` (safetensors: fs3, channels, mean, std) and `<path>.json` beside it, each written atomically."""
        from safetensors.torch import save

        path = Path(path)
        tensors = dict(fs3=self.fs3.float().cpu().contiguous(), channels=self.channels.cpu().contiguous(),
                       mean=self.mean.float().cpu().contiguous(), std=self.std.float().cpu().contiguous())
        atomic_write(path, lambda f: f.write(save(tensors)))
        write_json(path.with_suffix(".json"), self.about)

    @classmethod
    def load(cls, path, G=None, clip_model=None):
        """Read a saved relevance; with G and clip_model given, refuse one made for other models."""
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"no relevance file at {path}: compute one (notebook 05, relevance='fast' or "
                                    f"'exact') or give the path of a saved one")
        try:
            t = load_file(str(path))
        except (SafetensorError, OSError) as e:
            raise ValueError(f"{path} is not a readable relevance file ({e}): delete it and compute it again") from e
        missing = {"fs3", "channels", "mean", "std"} - set(t)
        if missing:
            raise ValueError(f"{path} lacks {sorted(missing)}: not a relevance file (global_directions.Relevance.save)")
        about = read_json(path.with_suffix(".json"), "compute the relevance again") if path.with_suffix(".json").exists() else {}
        rel = cls(t["fs3"], t["channels"].long(), t["mean"], t["std"], about)
        if G is not None and (len(rel.mean) != sum(l.channels for l in G.style_layers)
                              or int(rel.channels.max()) >= len(rel.mean)):
            raise ValueError(f"{path} was computed for a generator with {len(rel.mean)} style channels; this one has "
                             f"{sum(l.channels for l in G.style_layers)}: compute the relevance for this generator")
        if clip_model is not None and rel.fs3.shape[1] != clip_model.text_projection.shape[1]:
            raise ValueError(f"{path} lives in a {rel.fs3.shape[1]}-d CLIP space; this CLIP embeds into "
                             f"{clip_model.text_projection.shape[1]}-d: compute the relevance with this CLIP")
        if G is not None and clip_model is not None and about.get("models") not in (None, model_hash(G, clip_model)):
            raise ValueError(f"{path} was computed for other weights of this generator or CLIP (hash {about['models']}, "
                             f"these: {model_hash(G, clip_model)}): compute the relevance again for these models")
        return rel


def compute_relevance(G, clip_model, method="fast", n_images=16, seed=1, stats_images=10000, max_resolution=None,
                      n_channels=0, cache=None, batch=None, precision="bf16", progress=True):
    """Relevance of G's channels to clip_model's space by `method` ("fast": the Jacobian; "exact": the official
    definition, resumable through `cache`), averaged over n_images faces of `seed` -> Relevance. n_channels > 0
    keeps only the first n channels (a quick look, or a test); max_resolution: the official FFHQ run stops at 128."""
    if method not in ("fast", "exact"):
        raise ValueError(f"method must be 'fast' (Jacobian) or 'exact' (the official definition), got {method!r}")
    mean, std = style_stats(G, stats_images)
    channels = channel_index(G, max_resolution=max_resolution)
    if n_channels:
        channels = channels[:n_channels]
    styles = sample_styles(G, n_images, seed)
    t = time.perf_counter()
    if method == "fast":
        fs3 = fast_relevance(G, clip_model, styles, channels, batch=batch or 8, precision=precision, progress=progress)
    else:
        fs3 = exact_relevance(G, clip_model, styles, mean, std, channels, batch=batch or 512, cache=cache,
                              progress=progress)
    about = dict(method=method, n_images=n_images, seed=seed, stats_images=stats_images, channels=len(channels),
                 precision=precision if method == "fast" else "fp32",
                 max_resolution=max_resolution, seconds=round(time.perf_counter() - t, 2),
                 device=str(styles.device), models=model_hash(G, clip_model))
    return Relevance(fs3.cpu(), channels.cpu(), mean.cpu(), std.cpu(), about)
