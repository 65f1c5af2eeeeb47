"""Edits with trained latent mappers (StyleCLIP's method 2), scored like every other method.

A per-prompt LevelsMapper or the ConditionedMapper turns W+ codes into their edit in one forward pass:
    ws_edit = ws + alpha · 0.1 · M(ws)        (conditioned: M(ws, t), t the prompt's CLIP text embedding)
`mapper_edits` applies it to the same start faces `run_edits` optimises (evaluate.start_faces), so the
methods' scorecards compare like with like. The paper's consistency measure is models.mapper.consistency.
"""
import time

import torch

from ..data.prompts import check_prompts
from ..losses.clip_loss import text_features
from ..models.mapper import ConditionedMapper
from .scorecard import score_edits


@torch.no_grad()
def apply_mapper(mapper, ws, alpha=1.0, t=None, batch=256):
    """ws [N, rows, dim] -> edited ws. mapper: a LevelsMapper, or a ConditionedMapper with t [N, D] (or one
    embedding [D] for all). alpha: the strength (1: the official edit)."""
    conditioned = isinstance(mapper, ConditionedMapper)
    if conditioned and t is None:
        raise ValueError("a ConditionedMapper needs the prompt's text embedding t (losses.clip_loss.text_features)")
    if conditioned and t.dim() == 1:
        t = t.expand(len(ws), -1)
    out = []
    for i in range(0, len(ws), batch):
        w = ws[i:i + batch]
        out.append(mapper.edit(w, t[i:i + batch], alpha) if conditioned else mapper.edit(w, alpha))
    return torch.cat(out) if out else ws.clone()


@torch.no_grad()
def mapper_edits(G, mappers, judges, prompts, starts, alpha=1.0, clip_model=None):
    """Edit the start faces with the mappers and score them -> (edited images, scorecard, images before).

    mappers: {prompt: LevelsMapper} (one per prompt) or a ConditionedMapper (then clip_model gives each
    prompt's text embedding). starts: evaluate.start_faces(G, judge, prompts, n, ...) -> (z, ws, prompt index).
    The card's `seconds` is the time per edit: the mapping and the render of the edited code (as the other
    methods' times include their render)."""
    prompts = check_prompts(prompts)
    _, ws0, index = starts
    conditioned = isinstance(mappers, ConditionedMapper)
    if not conditioned:
        missing = [p for p in prompts if p not in mappers]
        if missing:
            raise ValueError(f"no mapper for {missing}; trained mappers: {sorted(mappers)}")
    t = text_features(clip_model, prompts)[index] if conditioned else None  # as the mapper trained (CLIPLoss.text)
    t0 = time.perf_counter()
    if conditioned:
        ws1 = apply_mapper(mappers, ws0, alpha, t)
    else:
        ws1 = ws0.clone()
        for k, p in enumerate(prompts):
            sel = index == k
            ws1[sel] = apply_mapper(mappers[p], ws0[sel], alpha)
    img1 = torch.cat([G.synthesis(ws1[i:i + 64], noise_mode="const") for i in range(0, len(ws1), 64)])
    seconds = (time.perf_counter() - t0) / max(len(index), 1)
    img0 = torch.cat([G.synthesis(ws0[i:i + 64], noise_mode="const") for i in range(0, len(ws0), 64)])
    card = score_edits(judges, img0, img1, [prompts[i] for i in index.tolist()], seconds=seconds)
    return img1, card, img0
