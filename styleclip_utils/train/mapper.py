"""Training StyleCLIP's latent mapper for one prompt (Patashnik et al. 2021, §5; mapper/training/coach.py):

    w_hat = w + 0.1 · M(w)
    loss  = λ_CLIP · D_CLIP(G(w_hat), prompt) + λ_L2 · MSE(w_hat, w) + λ_ID · (1 − cos(id(G(w_hat)), id(G(w))))

with the official weights (1.0, 0.8, 0.1) as defaults, on W+ latents in the official `train_faces.pt` layout
[N, n_latent, dim] (`latents_from_generator`, `latents_from_encoder`). Only the mapper trains; G, CLIP and the
identity net are frozen loss-side models (never the scorecard's judges).

Deviation: the official optimiser is Ranger (RAdam + Lookahead) at lr 0.5; here Adam at the same lr (with the
EqualLinear's lr_mul 0.01 the effective step is 0.005), the optimiser the rest of the project uses.
"""
from dataclasses import asdict

from ..data.attributes import PROMPT_ATTRIBUTES
from ..data.prompts import normalize, phrase_index

import torch
import torch.nn.functional as F

from ..device import autocast, check_precision
from ..files import atomic_write
from ..models.mapper import EDIT_SCALE, ConditionedMapper, LevelsMapper, MapperConfig
from .. import dist
from .loop import Trainer, batch_indices


def latents_from_generator(G, n, truncation_psi=0.7, seed=0):
    """n W+ codes of generated faces (mapped z, truncated, one row per layer) -> [n, n_latent, dim]: what the
    official training uses when it is given no latents file."""
    return G.sample_ws(n, truncation_psi, seed)


@torch.no_grad()
def latents_from_encoder(encoder, images, batch=64):
    """W+ codes of uint8 images [N, 3, S, S] inverted by an e4e encoder -> [N, n_latent, dim]: the official
    `train_faces.pt` / `test_faces.pt` (e4e inversions of CelebA-HQ's train and test splits)."""
    dev = next(encoder.parameters()).device
    return torch.cat([encoder(images[i:i + batch].to(dev).float() / 127.5 - 1).float()
                      for i in range(0, len(images), batch)])


# Phrasings the conditioned mapper never trains on: the examples, then each prompt's last phrasing.
HELD_OUT_PHRASINGS = ("ginger hair", "a person wearing glasses")


def phrasings(prompts=tuple(PROMPT_ATTRIBUTES)):
    """The conditioned mapper's texts -> (train, held_out): each prompt and the other ways of saying its
    attribute that the prompt parser knows ("red hair": "copper-red hair", "redhead", ...). Held out (never
    trained on): HELD_OUT_PHRASINGS and, per prompt, its alphabetically last other phrasing."""
    by_column = {}
    for phrase, column in phrase_index().items():
        by_column.setdefault(column, []).append(phrase)
    held = {normalize(h) for h in HELD_OUT_PHRASINGS}
    train, held_out = [], list(HELD_OUT_PHRASINGS)
    for p in prompts:
        others = sorted(q for q in by_column.get(PROMPT_ATTRIBUTES.get(p), []) if q != normalize(p) and q not in held)
        if others:
            held_out.append(others.pop())
        train += [p] + others
    return train, held_out


def save_latents(ws, path):
    """Write latents in the official layout (a bare tensor [N, n_latent, dim], torch.save), atomically."""
    if ws.dim() != 3:
        raise ValueError(f"latents must be [N, n_latent, dim], got {tuple(ws.shape)}")
    atomic_write(path, lambda f: torch.save(ws.detach().cpu().contiguous(), f))


def train_mapper(latents, G, clip_loss, id_loss, out_dir, steps, cfg=None, batch=8, lr=0.5, clip_lambda=1.0,
                 l2_lambda=0.8, id_lambda=0.1, seed=0, device="cpu", precision="fp32", conditioned=False,
                 ckpt_every=500, log_every=10, progress=True, stop_at=None, stop_by=None):
    """Train a LevelsMapper for the prompt of `clip_loss` (losses.clip_loss.CLIPLoss with one prompt) on W+
    `latents` [N, n_latent, dim] -> (mapper in eval mode, trainer). Exact resume from out_dir's checkpoint.

    conditioned=True trains one ConditionedMapper for all of clip_loss's prompts (phrasings): each code of a
    batch draws a prompt (seeded by the step, so resume stays exact) and the mapper sees its text embedding."""
    check_precision(precision)
    if not conditioned and len(clip_loss.prompts) != 1:
        raise ValueError(f"a per-prompt mapper trains on one prompt; this CLIP loss has {len(clip_loss.prompts)} "
                         "(conditioned=True trains one mapper for many)")
    cfg = cfg or MapperConfig(dim=G.style_dim)
    if latents.dim() != 3 or latents.shape[1:] != (G.n_latent, G.style_dim) or cfg.dim != G.style_dim:
        raise ValueError(f"latents must be [N, {G.n_latent}, {G.style_dim}] for this generator (and the mapper "
                         f"{G.style_dim}-d), got {tuple(latents.shape)} and a {cfg.dim}-d mapper")
    torch.manual_seed(seed)
    G = G.eval().requires_grad_(False)
    text = clip_loss.text.to(device)
    M = (ConditionedMapper(cfg, text.shape[1]) if conditioned else LevelsMapper(cfg)).to(device)
    opt = torch.optim.Adam(M.parameters(), lr=lr)
    about = dict(kind="conditioned_mapper", prompts=clip_loss.prompts) if conditioned else \
        dict(kind="mapper", prompt=clip_loss.prompts[0])
    config = dict(**about, n_latents=len(latents), batch=batch, lr=lr,
                  clip_lambda=clip_lambda, l2_lambda=l2_lambda, id_lambda=id_lambda, views=clip_loss.views,
                  official_preprocess=clip_loss.official, precision=precision, **asdict(cfg))
    trainer = Trainer(out_dir, dict(mapper=M), dict(mapper=opt), config, seed=seed, device=device,
                      ckpt_every=ckpt_every, log_every=log_every, progress=progress)
    zeros = torch.zeros(dist.check_batch(batch), dtype=torch.long, device=device)

    def step_fn(step):
        M.train()
        w = latents[dist.shard(batch_indices(len(latents), batch, step, seed))].to(device)  # this rank's slice
        if conditioned:
            g = torch.Generator().manual_seed(seed * 1_000_003 + step)
            k = dist.shard(torch.randint(len(text), (batch,), generator=g)).to(device)
        else:
            k = zeros[:len(w)]
        with torch.no_grad(), autocast(device, precision):
            x = G.synthesis(w, noise_mode="const").float()
        with autocast(device, precision):
            w_hat = w + EDIT_SCALE * (M(w, text[k]) if conditioned else M(w))
            x_hat = G.synthesis(w_hat, noise_mode="const").float()
        loss_clip = clip_loss(x_hat, k).mean()
        loss_l2 = F.mse_loss(w_hat.float(), w)
        loss_id = id_loss(x_hat, x).mean() if id_lambda else x_hat.new_zeros(())
        loss = clip_lambda * loss_clip + l2_lambda * loss_l2 + id_lambda * loss_id
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        # the official metric names (coach.calc_loss)
        return dict(loss_clip=loss_clip.item(), loss_l2_latent=loss_l2.item(), loss_id=loss_id.item(), loss=loss.item())

    trainer.run(step_fn, steps, stop_at, stop_by)
    return M.eval(), trainer
