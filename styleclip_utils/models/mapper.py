"""StyleCLIP's latent mapper (method 2), in the official layout: a LevelsMapper of three small MLPs, one per
group of W+ rows, that maps a code to its edit. After training (one mapper per prompt), an edit is one
forward pass:

    ws_edit = ws + alpha * 0.1 * M(ws)      (official inference: alpha = 1)

- coarse rows 0:4 (4-8 px), medium rows 4:8 (16-32 px), fine rows 8: (64 px up; 8:18 at 1024, 8:10 for the
  64 px SynthFaces generator). The coarse module is named `course_mapping` (sic) in the official code and
  its checkpoints; the name is kept so that they load strictly.
- Each level: PixelNorm, then 4 EqualLinear(dim, dim, lr_mul 0.01, fused leaky ReLU), keys `mapping.1..4`.
  `hidden` narrows the inner layers (dim -> hidden -> ... -> dim): the SynthFaces mappers use 64, so that one
  per prompt fits in the repository (an edit direction needs far less than 4 x 512^2 weights); 0 keeps the
  official dim -> dim.
- The PixelNorm quirk: the official mapper feeds the rows [B, rows, dim] to a PixelNorm that normalises over
  dim 1, i.e. *across the level's rows* for each feature, not over each row's features (REFERENCE.md).
  Trained mappers depend on it, so it is the default; `pixelnorm_across_rows=False` normalises each row.
- A disabled level outputs zeros (its rows are left alone), as `no_coarse_mapper` etc. do.
"""
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .stylegan2 import EqualLinear

LEVELS = {"coarse": (0, 4), "medium": (4, 8), "fine": (8, None)}   # W+ rows of each level
MODULE_NAMES = {"coarse": "course_mapping", "medium": "medium_mapping", "fine": "fine_mapping"}
EDIT_SCALE = 0.1   # official inference: w + 0.1 * M(w)


def mapper_slug(prompt):
    """A prompt -> its mapper's file stem ("red hair" -> "red_hair", "bob-cut" -> "bob_cut")."""
    return "_".join("".join(c if c.isalnum() else " " for c in prompt.lower()).split()) or "prompt"


@dataclass(frozen=True)
class MapperConfig:
    dim: int = 512                                    # style_dim of the generator
    levels: tuple = ("coarse", "medium", "fine")      # the levels that edit; the others output zeros
    n_layers: int = 4                                 # EqualLinear layers per level
    hidden: int = 0                                   # width of the inner layers (0: dim, the official layout)
    lr_mul: float = 0.01
    pixelnorm_across_rows: bool = True                # the official quirk (module docstring)

    def __post_init__(self):
        bad = [lv for lv in self.levels if lv not in LEVELS]
        if bad or not self.levels:
            raise ValueError(f"levels must be a non-empty subset of {list(LEVELS)}, got {self.levels!r}")

    def widths(self):
        """(in, out) of each EqualLinear layer of a level."""
        h = self.hidden or self.dim
        sizes = [self.dim] + [h] * (self.n_layers - 1) + [self.dim]
        return list(zip(sizes[:-1], sizes[1:]))


class LevelMapping(nn.Module):
    """PixelNorm + n EqualLinear with fused leaky ReLU (the official `Mapper`); `mapping.0` is the norm."""

    def __init__(self, cfg):
        super().__init__()
        self.across_rows = cfg.pixelnorm_across_rows
        self.mapping = nn.Sequential(nn.Identity(), *[EqualLinear(i, o, lr_mul=cfg.lr_mul, activation="fused_lrelu")
                                                      for i, o in cfg.widths()])

    def forward(self, x):
        """x [B, rows, dim] -> [B, rows, dim]."""
        axis = 1 if self.across_rows else -1
        x = x * torch.rsqrt(torch.mean(x ** 2, dim=axis, keepdim=True) + 1e-8)
        # each row through the MLP (StyleCLIP's fused_leaky_relu adds a 3-D input's bias on its last dim)
        return self.mapping(x.reshape(-1, x.shape[-1])).view(x.shape)


class LevelsMapper(nn.Module):
    """ws [B, n_latent, dim] -> the edit direction M(ws), same shape (zeros on the rows of disabled levels)."""

    def __init__(self, cfg=MapperConfig()):
        super().__init__()
        self.cfg = cfg
        for level in cfg.levels:
            self.add_module(MODULE_NAMES[level], LevelMapping(cfg))

    def forward(self, ws):
        if ws.dim() != 3 or ws.shape[2] != self.cfg.dim:
            raise ValueError(f"the mapper takes W+ codes [B, rows, {self.cfg.dim}], got {tuple(ws.shape)}")
        out = []
        for level, (start, stop) in LEVELS.items():
            x = ws[:, start:stop]
            out.append(getattr(self, MODULE_NAMES[level])(x) if level in self.cfg.levels else torch.zeros_like(x))
        return torch.cat(out, 1)

    def edit(self, ws, alpha=1.0):
        """ws + alpha · 0.1 · M(ws): alpha is the user's strength (1: the official edit; 0: none; < 0: away)."""
        return ws + alpha * EDIT_SCALE * self(ws)


def infer_mapper_config(sd):
    """MapperConfig from a mapper state dict (keys `course_mapping.mapping.1.weight`, ...; no `mapper.` prefix)."""
    levels = tuple(lv for lv, name in MODULE_NAMES.items() if f"{name}.mapping.1.weight" in sd)
    if not levels:
        raise ValueError("no level of a LevelsMapper in these keys (course_mapping / medium_mapping / fine_mapping)")
    name = MODULE_NAMES[levels[0]]
    n_layers = sum(1 for k in sd if k.startswith(f"{name}.mapping.") and k.endswith(".weight"))
    out, dim = sd[f"{name}.mapping.1.weight"].shape
    return MapperConfig(dim=int(dim), levels=levels, n_layers=n_layers, hidden=0 if out == dim else int(out))


class ConditionedLevelMapping(LevelMapping):
    """A level whose layers are modulated by a text embedding t (FiLM): after each EqualLinear layer,
    h -> h · (1 + γ(t)) + β(t), γ and β EqualLinear maps of t. They start at zero, so an untrained conditioning
    leaves the level as the plain mapper."""

    def __init__(self, cfg, text_dim):
        super().__init__(cfg)
        # equalised like the layers they modulate (lr_mul): a plain Linear at the mapper's lr 0.5 diverges at once
        self.film = nn.ModuleList(EqualLinear(text_dim, 2 * o, lr_mul=cfg.lr_mul) for _, o in cfg.widths())
        for f in self.film:
            nn.init.zeros_(f.weight)

    def forward(self, x, t):
        """x [B, rows, dim], t [B, text_dim] -> [B, rows, dim]."""
        axis = 1 if self.across_rows else -1
        x = x * torch.rsqrt(torch.mean(x ** 2, dim=axis, keepdim=True) + 1e-8)
        b, rows, dim = x.shape
        h, tt = x.reshape(-1, dim), t.repeat_interleave(rows, 0)
        for layer, film in zip(list(self.mapping)[1:], self.film):
            gamma, beta = film(tt).chunk(2, dim=1)
            h = layer(h) * (1 + gamma) + beta
        return h.view(b, rows, dim)  # the last layer maps back to dim


class ConditionedMapper(nn.Module):
    """One mapper for any prompt (beyond StyleCLIP): the LevelsMapper's three levels, each modulated by the
    prompt's normalised CLIP text embedding. M(ws, t) -> the edit direction; edit: ws + alpha · 0.1 · M(ws, t)."""

    def __init__(self, cfg=MapperConfig(), text_dim=512):
        super().__init__()
        self.cfg, self.text_dim = cfg, text_dim
        for level in cfg.levels:
            self.add_module(MODULE_NAMES[level], ConditionedLevelMapping(cfg, text_dim))

    def forward(self, ws, t):
        if ws.dim() != 3 or ws.shape[2] != self.cfg.dim:
            raise ValueError(f"the mapper takes W+ codes [B, rows, {self.cfg.dim}], got {tuple(ws.shape)}")
        if t.shape != (len(ws), self.text_dim):
            raise ValueError(f"the text embeddings must be [{len(ws)}, {self.text_dim}] (one per code), got {tuple(t.shape)}")
        out = []
        for level, (start, stop) in LEVELS.items():
            x = ws[:, start:stop]
            out.append(getattr(self, MODULE_NAMES[level])(x, t) if level in self.cfg.levels else torch.zeros_like(x))
        return torch.cat(out, 1)

    def edit(self, ws, t, alpha=1.0):
        return ws + alpha * EDIT_SCALE * self(ws, t)


@torch.no_grad()
def consistency(mapper, ws, t=None, batch=256):
    """The paper's measure of how input-specific a mapper is (§5, Fig. 6): the mean cosine similarity of the
    flattened manipulation directions Δw = M(ws) over all pairs of distinct inputs ws [N, rows, dim] (1: one
    global direction for every face). t: a ConditionedMapper's prompt embedding [D]."""
    if len(ws) < 2:
        raise ValueError("consistency needs at least two inputs")
    if isinstance(mapper, ConditionedMapper):
        if t is None:
            raise ValueError("a ConditionedMapper's consistency needs the prompt's text embedding t")
        d = torch.cat([mapper(ws[i:i + batch], t.expand(len(ws[i:i + batch]), -1)) for i in range(0, len(ws), batch)])
    else:
        d = torch.cat([mapper(ws[i:i + batch]) for i in range(0, len(ws), batch)])
    d = F.normalize(d.flatten(1).float(), dim=1)
    cos = d @ d.t()
    off = ~torch.eye(len(d), dtype=torch.bool, device=d.device)
    return float(cos[off].mean())
