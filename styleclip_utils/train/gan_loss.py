"""The StyleGAN2 losses, apart from the training loop (as stylegan2-ada's `training/loss.py`): logistic D
loss, non-saturating G loss, R1 and path-length penalties, and the two optional CLIP terms (the
vision-aided D head and mean-feature matching; see `train/stylegan2.py`). Each takes tensors or modules
and returns a scalar; the loop decides when to call them and how to weight and step."""
import math

import torch
import torch.nn.functional as F
from torch import nn

from .. import dist
from ..losses.clip_loss import random_views, to_clip_input
from ..models.stylegan2 import EqualLinear


def d_logistic_loss(real_logits, fake_logits):
    """softplus(-D(real)) + softplus(D(fake)), the batch means."""
    return F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()


def g_nonsaturating_loss(fake_logits):
    """softplus(-D(G(z))): the non-saturating generator loss."""
    return F.softplus(-fake_logits).mean()


def r1_penalty(D, real):
    """|grad_x D(x)|^2 on real images (unscaled: the loop multiplies by gamma/2 and the lazy interval)."""
    real.requires_grad_(True)
    (grad,) = torch.autograd.grad(D(real).sum(), real, create_graph=True)
    return grad.pow(2).flatten(1).sum(1).mean()


def path_length_penalty(G, ws, pl_mean, noise=None):
    """Keep |J_w^T y| constant for random image-space directions y; updates the running mean `pl_mean`
    in place (a buffer saved in the checkpoint; under torchrun, from every rank's lengths)."""
    img = G.synthesis(ws, noise_mode="random", noise=noise)
    y = dist.randn(len(img), *img.shape[1:], device=img.device, dtype=img.dtype) / math.sqrt(img.shape[2] * img.shape[3])
    (grad,) = torch.autograd.grad((img * y).sum(), ws, create_graph=True)
    lengths = grad.pow(2).sum(2).mean(1).sqrt()
    pl_mean.lerp_(dist.mean(lengths.mean().detach()), 0.01)
    return (lengths - pl_mean).pow(2).mean()


class CLIPHead(nn.Module):
    """The vision-aided D: frozen CLIP image tower -> unit embedding -> trainable MLP -> one logit. The CLIP
    is kept outside the module (and out of its state dict): it is an input of the run, not a trained part."""

    def __init__(self, embed_dim, hidden=256):
        super().__init__()
        self.net = nn.Sequential(EqualLinear(embed_dim, hidden, activation="fused_lrelu"), EqualLinear(hidden, 1))

    @staticmethod
    def features(clip_model, img, generator):
        views = random_views(img, 1, generator)  # the same kind of random framing for reals and fakes
        x = to_clip_input(views, clip_model.visual.input_resolution)
        feats = clip_model.encode_image(x).float()
        # CLIP's space is about directions; scaled so that each coordinate is ~1, as the head's layers expect
        return F.normalize(feats, dim=-1) * feats.shape[-1] ** 0.5

    def forward(self, feats):  # one logit per face, from its `features` (computed once a step, shared)
        return self.net(feats)


def mean_feature_distance(feats, mu):
    """Unbiased estimate of |E[feats] - mu|^2 from a batch: the mean of (f_i - mu).(f_j - mu) over pairs
    i != j. Its gradient moves each face by the other faces' mean offset, so making faces alike earns nothing."""
    d = feats - mu
    n = len(d)
    return (d.sum(0).pow(2).sum() - d.pow(2).sum()) / (n * (n - 1))
