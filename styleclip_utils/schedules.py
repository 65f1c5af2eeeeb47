"""The learning-rate schedule of latent optimisation (StyleGAN2's projector, kept by StyleCLIP): used by the
editor (edit/optimize.py) and the W+ projection baseline (metrics/inversion.py)."""
import math


def lr_at(t, lr, rampdown=0.25, rampup=0.05):
    """lr at t = step / steps in [0, 1]: linear warm-up over the first 5%, cosine ramp-down over the last 25%."""
    ramp = 0.5 - 0.5 * math.cos(math.pi * min(1.0, (1 - t) / rampdown))
    return lr * ramp * min(1.0, t / rampup)
