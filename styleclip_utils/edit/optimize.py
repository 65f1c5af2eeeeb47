"""StyleCLIP method 1: edit a face by optimising its latent code so that CLIP finds the image closer to a
text prompt, while an L2 term (and optionally an identity term) keeps it the same person:

    loss = D_CLIP(G(code), prompt) + λ_L2 · ‖code − code_start‖² + λ_ID · L_ID(G(code), G(code_start))

`code` lives in one of five spaces: "z" (one 512-vector through the mapping), "w" (one vector for every
layer), "w+" (one per layer, the official choice), "rows" (only some w+ rows move: presets coarse / medium
/ fine) and "s" (StyleSpace, the non-toRGB style channels). The L2 term is the SUM of squared differences
of the optimised variable, as in the official code. Adam with the official schedule (warm-up over the first
5%, cosine ramp-down over the last 25%). Images × prompts are edited as one batch.
"""
from dataclasses import dataclass, field

import torch
from tqdm.auto import tqdm

from ..device import autocast, check_precision
from ..schedules import lr_at  # noqa: F401 (re-exported: StyleCLIP's schedule)

SPACES = ("z", "w", "w+", "rows", "s")

# A diverging edit can stay finite: with a huge lr the code runs off to 1e9 and the image saturates (black,
# white) while every loss is a number. Generated faces stay within about ±2.5 (SynthFaces and FFHQ alike),
# and an edit's code moves by less than its own norm. Diverged: a code 100× its norm away, or a saturated
# image (past 8, and past 4× the start's own peak) from a code that moved more than its norm (an untrained
# generator's images peak anywhere after tiny moves: those are not divergences).
MAX_PIXEL = 8.0
MAX_CODE_MOVE = 100.0   # ‖code − code₀‖ / (‖code₀‖ + 1), per item
SATURATED_MOVE = 1.0    # the move past which a saturated image counts as divergence
CHECK_EVERY = 10        # steps between the (host-syncing) divergence checks; the flag itself stays on device


class EditDivergedError(FloatingPointError):
    """An edit's loss went non-finite, or its image or code exploded."""
ROW_PRESETS = {"coarse": (0, 4), "medium": (4, 8), "fine": (8, None)}  # w+ rows, as the mapper's levels


@dataclass
class EditConfig:
    space: str = "w+"
    rows: str | tuple = "coarse"  # for space="rows": a preset name or explicit row indices
    steps: int = 300             # official script: 300 (its notebook: 40)
    lr: float = 0.1
    l2_lambda: float = 0.008
    id_lambda: float = 0.005
    noise_mode: str = "const"
    truncation_psi: float = 1.0  # space "z": w = truncate(mapping(z)), as the start codes were made
    precision: str = "fp32"      # "bf16": generator and CLIP forward passes in bfloat16 (losses stay fp32)

    def __post_init__(self):
        if self.space not in SPACES:
            raise ValueError(f"space must be one of {SPACES}, got {self.space!r}")
        if isinstance(self.rows, str) and self.rows not in ROW_PRESETS:
            raise ValueError(f"rows must be one of {list(ROW_PRESETS)} or a tuple of w+ rows, got {self.rows!r}")
        if self.steps < 1 or self.lr <= 0 or self.l2_lambda < 0 or self.id_lambda < 0:
            raise ValueError("steps must be >= 1, lr > 0, and the lambdas >= 0")
        check_precision(self.precision)


def row_indices(rows, n_latent):
    if isinstance(rows, str):
        start, stop = ROW_PRESETS[rows]
        return list(range(n_latent))[start:stop]
    bad = [r for r in rows if not 0 <= r < n_latent]
    if bad:
        raise ValueError(f"w+ rows {bad} out of range [0, {n_latent})")
    return list(rows)


class LatentCode:
    """The optimised variable of one space, and how to turn it into the generator's StyleSpace."""

    def __init__(self, G, space, ws_start, z_start=None, rows="coarse", truncation_psi=1.0):
        self.G, self.space, self.psi = G, space, truncation_psi
        self.ws_start = ws_start.detach()
        if space == "z":
            if z_start is None:
                raise ValueError("space='z' needs z_start: a W+ code has no z to start from")
            self.var = z_start.detach().clone()
        elif space == "w":
            self.var = ws_start[:, 0].detach().clone()  # the common w (start codes of z/w are broadcast)
        elif space == "w+":
            self.var = ws_start.detach().clone()
        elif space == "rows":
            self.rows = row_indices(rows, G.n_latent)
            self.var = ws_start[:, self.rows].detach().clone()
        else:  # "s": only the non-toRGB channels move
            with torch.no_grad():
                self.s_start = G.w_to_s(ws_start)
            self.free = [i for i, layer in enumerate(G.style_layers) if not layer.is_torgb]
            self.var = torch.cat([self.s_start[i] for i in self.free], 1).clone()
        self.start = self.var.clone()
        self.var.requires_grad_(True)

    def ws(self):
        if self.space == "z":
            return self.G.broadcast(self.G.mapping(self.var, self.psi))
        if self.space == "w":
            return self.G.broadcast(self.var)
        if self.space == "w+":
            return self.var
        if self.space == "rows":
            ws = self.ws_start.clone()
            ws[:, self.rows] = self.var
            return ws
        raise ValueError("StyleSpace codes have no W+ form")

    def styles(self):
        if self.space != "s":
            return self.G.w_to_s(self.ws())
        s = list(self.s_start)
        sizes = [self.s_start[i].shape[1] for i in self.free]
        for i, part in zip(self.free, torch.split(self.var, sizes, dim=1)):
            s[i] = part
        return s

    def l2(self):
        """Sum of squared differences from the start, per item."""
        return (self.var - self.start).pow(2).flatten(1).sum(1)


@dataclass
class EditResult:
    img: torch.Tensor            # [N, 3, H, W] edited images
    styles: list                 # StyleSpace of the edit (list of [N, C_l])
    ws: torch.Tensor | None      # W+ of the edit (None for space="s")
    history: dict = field(default_factory=dict)  # per step: "clip" [steps, N], "l2", "id", "total"
    seconds: float = 0.0


def edit(G, clip_loss, prompt_index, ws_start, cfg=EditConfig(), z_start=None, id_loss=None, img_start=None,
         callback=None, progress=True):
    """Optimise N codes (N = images × prompts, already repeated by the caller) towards their prompts.

    prompt_index [N]: which of clip_loss.prompts each code is edited towards. id_loss(img, ref) -> [N] with
    id_loss.reference(img_start) -> ref
    (optional; needs img_start or computes it). callback(step, img) is called after each step, e.g. to
    measure when an edit succeeds (measurement only: it must not feed back into the optimisation).
    """
    import time

    t0 = time.perf_counter()
    code = LatentCode(G, cfg.space, ws_start, z_start, cfg.rows, cfg.truncation_psi)
    prompt_index = torch.as_tensor(prompt_index, device=ws_start.device)
    if id_loss is not None and cfg.id_lambda > 0 and img_start is None:
        with torch.no_grad():
            img_start = G.synthesis_from_s(code.styles(), noise_mode=cfg.noise_mode)
    opt = torch.optim.Adam([code.var], lr=cfg.lr)
    hist = {k: [] for k in ("clip", "l2", "id", "total")}
    ref = None
    if id_loss is not None and cfg.id_lambda > 0:  # the start faces' identity, embedded once per edit
        with autocast(ws_start.device, cfg.precision):
            ref = id_loss.reference(img_start)
    start_norm = code.start.flatten(1).norm(dim=1)
    finite = torch.ones((), dtype=torch.bool, device=ws_start.device)
    for step in tqdm(range(cfg.steps), disable=not progress, desc=f"edit in {cfg.space}"):
        for group in opt.param_groups:
            group["lr"] = lr_at(step / cfg.steps, cfg.lr)
        with autocast(ws_start.device, cfg.precision):
            img = G.synthesis_from_s(code.styles(), noise_mode=cfg.noise_mode).float()
            d_clip = clip_loss(img, prompt_index).float()
        l2 = code.l2()
        total = d_clip + cfg.l2_lambda * l2
        d_id = torch.zeros_like(d_clip)
        if id_loss is not None and cfg.id_lambda > 0:
            with autocast(ws_start.device, cfg.precision):
                d_id = id_loss(img, ref).float()
            total = total + cfg.id_lambda * d_id
        peak = img.detach().abs().amax()
        if step == 0:  # the start image (lr is 0 at step 0): its peak sets the pixel bound, still on device
            pixel_limit = torch.clamp(4 * peak, min=MAX_PIXEL)
        finite = finite & torch.isfinite(total).all()  # sticky, on device: NaN never recovers
        if (step + 1) % CHECK_EVERY == 0:  # one host sync every CHECK_EVERY steps, not one per step
            _check(finite, code, start_norm, img, d_clip, cfg, step + 1, pixel_limit)
        opt.zero_grad(set_to_none=True)
        total.sum().backward()  # items are independent: summing keeps each item's gradient its own
        opt.step()
        for k, v in (("clip", d_clip), ("l2", l2), ("id", d_id), ("total", total)):
            hist[k].append(v.detach())
        if callback is not None:
            callback(step, img.detach())
    with torch.no_grad():
        styles = [s.detach() for s in code.styles()]
        img = G.synthesis_from_s(styles, noise_mode=cfg.noise_mode)
        ws = None if cfg.space == "s" else code.ws().detach()
        _check(finite, code, start_norm, img, hist["clip"][-1], cfg, cfg.steps, pixel_limit)
    return EditResult(img, styles, ws, {k: torch.stack(v).cpu() for k, v in hist.items()}, time.perf_counter() - t0)


def _check(finite, code, start_norm, img, d_clip, cfg, step, pixel_limit):
    """Stop a diverged edit (the constants above) with what happened and what to do (EditDivergedError)."""
    move = float(((code.var.detach() - code.start).flatten(1).norm(dim=1) / (start_norm + 1)).max())
    peak = float(img.detach().abs().amax())
    if bool(finite) and move <= MAX_CODE_MOVE and (peak <= float(pixel_limit) or move <= SATURATED_MOVE):
        return
    raise EditDivergedError(
        f"the {cfg.space} edit diverged by step {step}: image values reach ±{peak:.3g} "
        f"(a face stays within about ±2.5, this one started within ±{float(pixel_limit) / 4:.3g}), the code moved {move:.3g}× its own norm, CLIP loss "
        f"{[round(v, 3) for v in d_clip.detach().float().tolist()]}. Its image would be saturated noise scored as "
        f"an edit: lower lr (now {cfg.lr:g}; the official value is 0.1) or raise l2_lambda (now {cfg.l2_lambda}).")
