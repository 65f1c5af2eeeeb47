"""The StyleGAN playground (notebook 06): truncation, interpolation, style mixing, what each row of w+ controls,
and faces of each domain of a two-domain generator. Every function takes a generator `G` (models/stylegan2.py)
and returns images in [-1, 1]; the notebook lays them out with viz.

Layer groups follow the StyleGAN paper (Karras et al. 2019, fig. 3): rows that style 4-8 px maps are *coarse*
(pose, face shape, hair style), 16-32 px *medium* (features, eyes open or shut), 64 px and up *fine* (colour
scheme, micro-structure).
"""
import io
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..files import atomic_write
from ..models.stylegan2 import interpolate
from ..viz import to_uint8

SPACES = ("z", "w")
MODES = ("lerp", "slerp")
GROUPS = {"coarse": (4, 8), "medium": (16, 32), "fine": (64, 1 << 14)}


def row_resolutions(G):
    """The largest feature-map resolution each row of w+ styles ([n_latent] ints)."""
    res = [0] * G.n_latent
    for layer in G.style_layers:
        res[layer.w_row] = max(res[layer.w_row], layer.resolution)
    return res


def layer_groups(G):
    """{"coarse" | "medium" | "fine": [rows of w+]} (a group a small generator lacks is left out)."""
    res = row_resolutions(G)
    groups = {name: [r for r, x in enumerate(res) if lo <= x <= hi] for name, (lo, hi) in GROUPS.items()}
    return {k: v for k, v in groups.items() if v}


def _z(G, seeds):
    """One z per seed (each from its own generator on CPU: the same face on every device and batch)."""
    dev = G.input.input.device
    return torch.stack([torch.randn(G.style_dim, generator=torch.Generator().manual_seed(int(s))) for s in seeds]).to(dev)


def ws_of_seeds(G, seeds, truncation_psi=1.0):
    """W+ codes [len(seeds), n_latent, dim] of the faces of `seeds`."""
    with torch.no_grad():
        return G.broadcast(G.mapping(_z(G, seeds), truncation_psi))


@torch.no_grad()
def truncation_grid(G, seeds, psis=(0.0, 0.25, 0.5, 0.75, 1.0), noise_mode="const"):
    """Each face of `seeds` at each truncation psi (w_avg + psi (w - w_avg): psi 0 is the average face, 1 the face
    itself) -> images [len(seeds) * len(psis)], face by face."""
    if not all(0.0 <= float(p) <= 1.0 for p in psis):
        raise ValueError(f"truncation psi must be in [0, 1] (0: the average face, 1: no truncation), got {list(psis)}")
    w = G.mapping(_z(G, seeds))
    ws = torch.stack([G.truncate(w, float(p)) for p in psis], 1).flatten(0, 1)
    return G.synthesis(G.broadcast(ws), noise_mode=noise_mode)


@torch.no_grad()
def interpolation(G, seed_a, seed_b, steps=8, space="w", mode="lerp", truncation_psi=1.0, noise_mode="const"):
    """`steps` faces from seed_a's to seed_b's (both included) -> images [steps]. space "z" interpolates the
    Gaussian inputs (slerp keeps them on the shell where z lives), "w" the mapped codes (lerp is StyleGAN's
    perceptual-path-length choice)."""
    if space not in SPACES:
        raise ValueError(f"space must be one of {SPACES}, got {space!r}")
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if not (isinstance(steps, int) and steps >= 2):
        raise ValueError(f"steps must be an integer >= 2, got {steps!r}")
    z = _z(G, [seed_a, seed_b])
    if space == "z":
        w = G.mapping(interpolate(z[0], z[1], steps, spherical=mode == "slerp"), truncation_psi)
    else:
        w0 = G.mapping(z, truncation_psi)
        w = interpolate(w0[0], w0[1], steps, spherical=mode == "slerp")
    return G.synthesis(G.broadcast(w), noise_mode=noise_mode)


def save_gif(frames, path, ms_per_frame=90, scale=2, bounce=True):
    """Frames (images in [-1, 1]) -> an animated GIF at `path`, written atomically; `bounce` plays it forth and
    back so the loop has no jump. Returns the Path."""
    pics = [Image.fromarray(a).resize((a.shape[1] * scale, a.shape[0] * scale), Image.Resampling.NEAREST)
            for a in to_uint8(torch.as_tensor(frames))]
    if bounce:
        pics = pics + pics[-2:0:-1]
    buf = io.BytesIO()
    pics[0].save(buf, format="GIF", save_all=True, append_images=pics[1:], duration=ms_per_frame, loop=0)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda f: f.write(buf.getvalue()))
    return path


@torch.no_grad()
def mix_rows(G, ws_a, ws_b, rows, noise_mode="const"):
    """Faces of ws_a with the rows `rows` of w+ taken from ws_b (paired, or one ws_b for all) -> images."""
    rows = sorted(set(int(r) for r in rows))
    if not rows or rows[0] < 0 or rows[-1] >= G.n_latent:
        raise ValueError(f"rows must be a non-empty set of w+ rows in [0, {G.n_latent}), got {rows}")
    mixed = ws_a.clone()
    mixed[:, rows] = ws_b.expand_as(ws_a)[:, rows]
    return G.synthesis(mixed, noise_mode=noise_mode)


@torch.no_grad()
def mixing_matrix(G, ws_rows, ws_cols, rows, noise_mode="const"):
    """StyleGAN's style-mixing figure: cell (i, j) is row face i with the w+ rows `rows` from column face j.
    -> images [(len(ws_rows) + 1) * (len(ws_cols) + 1)] in reading order, with the sources on the top row and
    left column and a blank (-1, black) corner."""
    R, C = len(ws_rows), len(ws_cols)
    if not R or not C:
        raise ValueError(f"a mixing matrix needs row and column faces, got {R} and {C}")
    top = G.synthesis(ws_cols, noise_mode=noise_mode)
    left = G.synthesis(ws_rows, noise_mode=noise_mode)
    cells = mix_rows(G, ws_rows.repeat_interleave(C, 0), ws_cols.repeat(R, 1, 1), rows, noise_mode)
    out = [torch.full_like(top[0], -1.0), *top]
    for i in range(R):
        out += [left[i], *cells[i * C:(i + 1) * C]]
    return torch.stack(out)


@torch.no_grad()
def crossover_strip(G, ws_a, ws_b, noise_mode="const"):
    """Face a with every row from `k` on taken from face b, for k = n_latent .. 0 (a alone ... b alone): the rows
    where the face turns from one into the other. -> images [n_latent + 1]."""
    ws = torch.cat([G.mix(ws_a, ws_b, k) for k in range(G.n_latent, -1, -1)])
    return G.synthesis(ws, noise_mode=noise_mode)


@torch.no_grad()
def domain_seeds(G, judge, domain, n, start=0, pool=256, batch=128):
    """The `n` seeds among start .. start + pool whose faces the measure judge reads as most surely `domain`
    ("natural" or "toon") -> (seeds, their probabilities of being that domain): how a two-domain generator's faces
    are told apart (the domains are regions of its W, not an input)."""
    if domain not in ("natural", "toon"):
        raise ValueError(f"domain must be 'natural' or 'toon', got {domain!r}")
    if not 1 <= n <= pool:
        raise ValueError(f"n must be in [1, pool={pool}], got {n}")
    seeds = list(range(start, start + pool))
    p = torch.cat([judge.predict(G.synthesis(ws_of_seeds(G, seeds[i:i + batch])))[1].float().cpu()
                   for i in range(0, pool, batch)])
    p = p if domain == "toon" else 1 - p
    best = p.argsort(descending=True, stable=True)[:n]
    return [seeds[i] for i in best.tolist()], p[best]


def domain_share(G, judge, n=512, seed=0):
    """Share of n generated faces the measure judge reads as toon (p >= 0.5)."""
    with torch.no_grad():
        _, p = judge.predict(G.synthesis(ws_of_seeds(G, range(seed, seed + n))))
    return float((p >= 0.5).float().mean())


def gif_frames(path):
    """The frames of a GIF as uint8 arrays (to check one)."""
    img = Image.open(path)
    out = []
    for k in range(getattr(img, "n_frames", 1)):
        img.seek(k)
        out.append(np.asarray(img.convert("RGB")))
    return out
