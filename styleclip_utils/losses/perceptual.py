"""Perceptual distances: how different two images look to a network, per image.

- LPIPS(alex) with its real backbone (`weights.official.load_lpips`) on the real pipeline;
- `FeatureDistance` on SynthFaces: the same recipe without LPIPS's learned weights, on the stages of a
  loss-side ConvNet (the identity net): channel-normalised features, mean squared difference, averaged
  over stages. As a loss it refuses a judge; the scorecard measures with the attribute judge's features
  (`feature_distance`, no grad), which no method ever optimises.
"""
import torch.nn.functional as F
from torch import nn

from .clip_loss import refuse_judge


def feature_distance(net, a, b):
    """LPIPS-like distance of images a, b [B, 3, H, W] in [-1, 1] on `net.features` (a ConvNet) -> [B]."""
    size = net.cfg.in_size
    if a.shape[-1] != size:
        a, b = (F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=True) for x in (a, b))
    total = 0
    for stage in net.features:
        a, b = stage(a), stage(b)
        total = total + (F.normalize(a, dim=1) - F.normalize(b, dim=1)).pow(2).sum(1).mean((1, 2))
    return total / len(net.features)


class FeatureDistance(nn.Module):
    """`feature_distance` as a loss (differentiable in the images; the net is frozen, in eval mode)."""

    def __init__(self, net):
        super().__init__()
        refuse_judge(net, "FeatureDistance")
        self.net = net.eval().requires_grad_(False)

    def train(self, mode=True):
        super().train(mode)
        self.net.eval()  # BatchNorm statistics must not move
        return self

    def forward(self, a, b):
        return feature_distance(self.net, a, b)
