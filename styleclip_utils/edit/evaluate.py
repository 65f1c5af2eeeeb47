"""Run a set of edits and score them with the scorecard: what notebook 03 does per space, and what the
recipe search (`search`) does per configuration. Start faces are seeded generated faces on which the
attribute judge does not see the prompt's attribute (any face for a prompt it cannot read).

Train/held-out discipline: the search runs on SEARCH_PROMPTS and faces from SEARCH_SEED; results are
reported on faces from seed 0 (never searched) and on HELD_OUT_PROMPTS (never searched either).
"""
import itertools
import time

import torch

from ..data.attributes import PROMPT_ATTRIBUTES
from ..data.prompts import check_prompts, target_column
from ..losses.clip_loss import CLIPLoss
from .optimize import ROW_PRESETS, EditConfig, EditResult, edit
from .scorecard import score_edits, start_codes, summarize

SEARCH_PROMPTS = ["dark skin", "freckles", "red lipstick", "heavy makeup", "thick moustache", "red hair",
                  "big lashes", "curly hair"]
HELD_OUT_PROMPTS = [p for p in PROMPT_ATTRIBUTES if p not in SEARCH_PROMPTS]
SEARCH_SEED = 1000   # faces the search sees; the reports use seed 0 onwards


@torch.no_grad()
def start_faces(G, judge, prompts, n, truncation=0.7, seed=0, ws=None):
    """n start faces per prompt -> (z [P*n, D] or None, ws, prompt index [P*n]); prompt k draws from seed + k,
    among faces the attribute judge sees without the prompt's attribute (any faces when judge is None).
    `ws` [n, n_latent, D] (codes from a latents file): the same n faces for every prompt, and no z."""
    index = torch.arange(len(prompts)).repeat_interleave(n).to(G.w_avg.device)
    if ws is not None:
        return None, ws[:n].repeat(len(prompts), 1, 1), index
    zs, wss = [], []
    for k, p in enumerate(prompts):
        column = target_column(p) if judge is not None else None
        if column is None:  # no attribute to avoid: any n seeded faces
            z = torch.randn(n, G.style_dim, generator=torch.Generator().manual_seed(seed + k)).to(G.w_avg.device)
            ws = G.broadcast(G.mapping(z, truncation))
        else:
            z, ws = start_codes(G, judge, column, n, truncation, seed=seed + k)
        zs.append(z)
        wss.append(ws)
    return torch.cat(zs), torch.cat(wss), index


@torch.no_grad()
def inverted_starts(encoder, G, images, judge, prompts, n, batch=256):
    """Start faces from inverted images (uint8 [N, 3, S, S]): for each prompt, the first n images whose
    reconstruction G(E(x)) the attribute judge sees without the prompt's attribute (any n for a prompt it
    cannot read) -> (None, ws [P*n, rows, dim], prompt index), as start_faces returns (no z for W+ codes)."""
    dev = G.w_avg.device
    ws = torch.cat([encoder(images[i:i + batch].to(dev).float() / 127.5 - 1) for i in range(0, len(images), batch)])
    seen = torch.cat([judge.predict(G.synthesis(ws[i:i + batch], noise_mode="const")).cpu()
                      for i in range(0, len(ws), batch)])
    picks = []
    for p in prompts:
        column = target_column(p)
        ok = torch.ones(len(ws), dtype=torch.bool) if column is None else ~seen[:, judge.index(column)]
        idx = ok.nonzero()[:, 0][:n]
        if len(idx) < n:
            raise ValueError(f"only {len(idx)} of {len(ws)} inverted images lack {column}; need {n} (give more images)")
        picks.append(idx)
    index = torch.arange(len(prompts)).repeat_interleave(n).to(dev)
    return None, ws[torch.cat(picks).to(dev)], index


def space_config(space, **kw):
    """A space name of the notebooks (z, w, w+, s, coarse, medium, fine) -> EditConfig."""
    rows = space in ROW_PRESETS
    return EditConfig(space="rows" if rows else space, rows=space if rows else "coarse", **kw)


def run_edits(G, clip_model, id_loss, judges, prompts, n, space="w+", views=4, truncation=0.7, seed=0,
              callback=None, progress=True, starts=None, official_preprocess=False, batch=0, **cfg):
    """Edit n faces per prompt in `space` and score them -> (EditResult, scorecard dict, img_start).
    cfg: EditConfig fields (steps, lr, l2_lambda, id_lambda, precision). `starts`: start_faces(...) to reuse.
    batch: edits optimised together (0: all at once); a 1024 px generator needs a few at a time."""
    prompts = check_prompts(prompts)
    z0, ws0, index = starts or start_faces(G, getattr(judges, "attributes", None), prompts, n, truncation, seed)
    loss = CLIPLoss(clip_model, prompts, official_preprocess=official_preprocess, views=views, seed=seed)
    config = space_config(space, truncation_psi=truncation, **cfg)
    parts, imgs0 = [], []
    for lo in range(0, len(index), batch or len(index)):
        sl = slice(lo, lo + (batch or len(index)))
        with torch.no_grad():
            imgs0.append(G.synthesis(ws0[sl]))
        parts.append(edit(G, loss, index[sl], ws0[sl], config, z_start=None if z0 is None else z0[sl], id_loss=id_loss,
                          img_start=imgs0[-1], callback=callback, progress=progress))
    res, img0 = concat_results(parts), torch.cat(imgs0)
    card = score_edits(judges, img0, res.img, [prompts[i] for i in index.tolist()], seconds=res.seconds / len(index))
    return res, card, img0


def concat_results(parts):
    """EditResults of consecutive batches -> one (images, styles, ws and history joined along the edits)."""
    if len(parts) == 1:
        return parts[0]
    return EditResult(torch.cat([p.img for p in parts]), [torch.cat(s) for s in zip(*(p.styles for p in parts))],
                      None if parts[0].ws is None else torch.cat([p.ws for p in parts]),
                      {k: torch.cat([p.history[k] for p in parts], 1) for k in parts[0].history},
                      sum(p.seconds for p in parts))


def search(G, clip_model, id_loss, judges, grid, prompts=SEARCH_PROMPTS, n=2, seed=SEARCH_SEED, base=None,
           progress=False, log=print):
    """Score every configuration of `grid` ({field: [values]}; fields of EditConfig plus space and views) on the
    search prompts and faces -> rows sorted by good-edit rate (best first), each with its parameters."""
    base = dict(dict(space="w+", views=4, steps=40, lr=0.1, l2_lambda=0.008, id_lambda=0.005, precision="bf16"),
                **(base or {}))
    starts = start_faces(G, judges.attributes, prompts, n, 0.7, seed)
    keys = list(grid)
    rows = []
    for values in itertools.product(*(grid[k] for k in keys)):
        params = dict(base, **dict(zip(keys, values)))
        t = time.time()
        _, card, _ = run_edits(G, clip_model, id_loss, judges, prompts, n, seed=seed, starts=starts,
                               progress=progress, **params)
        rows.append(dict(params, **summarize(card), wall_s=round(time.time() - t, 1)))
        log(f"{params} -> good {rows[-1]['good']:.3f} success {rows[-1]['success']:.3f} "
            f"identity {rows[-1]['identity_kept']:.3f} realistic {rows[-1]['realistic']:.3f}")
    return sorted(rows, key=lambda r: -r["good"])


def recipe_of(row):
    """The edit parameters of a search row."""
    return {k: row[k] for k in ("space", "views", "steps", "lr", "l2_lambda", "id_lambda", "precision")}
