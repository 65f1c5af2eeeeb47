"""How well images are inverted into a generator's W+: reconstruction error, perceptual distance, and whether
the judges of the scorecard still see the same person and the same attributes in G(invert(x)).

Inverters (each: images [B, 3, S, S] in [-1, 1] -> ws [B, n_latent, dim]):
- `average_face`: w_avg on every row (the floor: what knowing nothing gives);
- an encoder (models.e4e.E4E): one forward pass;
- `project`: W+ optimisation of L2 + perceptual from w_avg (StyleGAN2's projector without its noise
  optimisation), which bounds what any encoder of this generator can reach;
- `project(..., init=encoder)`: the encoder's codes, then a few projection steps (the go-beyond option;
  ReStyle instead iterates an encoder trained for it).
The perceptual loss of `project` is a loss-side model (LPIPS, or FeatureDistance on the identity net); the
judges only measure.
"""
import time

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from ..losses.perceptual import feature_distance
from ..schedules import lr_at
from .judges import same_person


def average_face(G):
    def invert(x):
        return G.w_avg.expand(len(x), G.n_latent, G.style_dim).clone()
    return invert


def project(G, perceptual, steps=500, lr=0.1, perceptual_lambda=1.0, l2_lambda=1.0, init=None, progress=False):
    """W+ optimisation (Adam, the projector's schedule) of λ_L2·MSE + λ_P·perceptual between G(ws) and the
    target -> an inverter. `init`: an inverter whose codes to start from (default: the average face)."""
    def invert(x):
        with torch.no_grad():
            ws0 = (init or average_face(G))(x)
        ws = ws0.detach().clone().requires_grad_(True)
        opt = torch.optim.Adam([ws], lr=lr)
        for step in tqdm(range(steps), disable=not progress, desc="project"):
            for group in opt.param_groups:
                group["lr"] = lr_at(step / steps, lr)
            y = G.synthesis(ws, noise_mode="const")
            loss = l2_lambda * F.mse_loss(y, x, reduction="none").mean((1, 2, 3)) + perceptual_lambda * perceptual(y, x)
            opt.zero_grad(set_to_none=True)
            loss.sum().backward()  # images are independent: each keeps its own gradient
            opt.step()
        return ws.detach()
    return invert


def inversion_quality(invert, G, images, classifier, identity_judge, traits_used, shape_tolerance, batch=64,
                      device="cpu"):
    """Invert uint8 `images` [N, 3, S, S] and score G(invert(x)) against x -> dict of means:
    mse, perceptual (on the attribute judge's features), identity_kept (the identity judge's same-person rule),
    attributes_kept (share of the judge's attributes read the same), seconds per image; and `per_image`."""
    rows = {k: [] for k in ("mse", "perceptual", "identity_kept", "attributes_kept")}
    seconds = 0.0
    for lo in range(0, len(images), batch):
        x = images[lo:lo + batch].to(device).float() / 127.5 - 1
        t = time.perf_counter()
        ws = invert(x)
        if x.device.type == "cuda":
            torch.cuda.synchronize()
        seconds += time.perf_counter() - t
        with torch.no_grad():
            y = G.synthesis(ws, noise_mode="const").clamp(-1, 1)
            rows["mse"].append(F.mse_loss(y, x, reduction="none").mean((1, 2, 3)).cpu())
            rows["perceptual"].append(feature_distance(classifier, x, y).cpu())
            rows["identity_kept"].append(same_person(identity_judge.predict(x), identity_judge.predict(y), traits_used,
                                                     shape_tolerance).float().cpu())
            rows["attributes_kept"].append((classifier.predict(x) == classifier.predict(y)).float().mean(1).cpu())
    per_image = {k: torch.cat(v) for k, v in rows.items()}
    out = {k: round(float(v.mean()), 4) for k, v in per_image.items()}
    return dict(out, seconds_per_image=round(seconds / len(images), 5), n=len(images), per_image=per_image)
