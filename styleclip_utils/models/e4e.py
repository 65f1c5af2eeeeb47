"""e4e (encoder4editing, Tov et al. 2021): an image -> its W+ code in a StyleGAN2 generator.

`Encoder4Editing` is key-for-key the official `Encoder4Editing(50, 'ir_se')` (the `encoder.*` keys of
`e4e_ffhq_encode.pt`) with the default `E4EConfig`; a smaller config (fewer and narrower IR-SE units, thin
style blocks, as many rows as the generator has) is the SynthFaces encoder. Architecture:

- an IR-SE body (the ArcFace units, `models/arcface.py`), four stages each halving the resolution; the
  ends of stages 2, 3, 4 are the feature maps c1 (in/4), c2 (in/8), c3 (in/16);
- a feature pyramid: p2 = up(c3) + latlayer1(c2), p1 = up(p2) + latlayer2(c1);
- one GradualStyleBlock per W+ row (strided 3×3 convs + LeakyReLU down to 1×1, then an EqualLinear):
  rows [0, coarse_ind) read c3, [coarse_ind, middle_ind) read p2, the rest read p1;
- w = w0 (row 0's block) on every row, plus a delta per row i ≥ 1 from its own block. Training unlocks the
  deltas one row at a time (`progressive_stage`: rows 1..stage get deltas); inference uses all.

`E4E` wraps an encoder with the `latent_avg` it is trained around: ws = encoder(img) + latent_avg.
"""
import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .arcface import BottleneckIR
from .stylegan2 import EqualLinear


@dataclass
class E4EConfig:
    in_size: int = 256                  # input images are resized to this (official: 256)
    n_styles: int = 18                  # W+ rows: the generator's n_latent (18 at 1024 px, 10 at 64 px)
    style_dim: int = 512
    stage_units: tuple = (3, 4, 14, 3)  # IR-SE50
    widths: tuple = (64, 128, 256, 512)
    block_width: int = 512              # the style blocks' conv width (official: 512 = style_dim)
    coarse_ind: int = 3
    middle_ind: int = 7

    def __post_init__(self):
        self.stage_units, self.widths = tuple(self.stage_units), tuple(self.widths)
        if self.in_size % 16 or self.in_size < 32:
            raise ValueError(f"in_size must be a multiple of 16 and >= 32, got {self.in_size}")
        if not 1 <= self.coarse_ind <= self.middle_ind <= self.n_styles:
            raise ValueError("need 1 <= coarse_ind <= middle_ind <= n_styles")
        if len(self.stage_units) != 4 or len(self.widths) != 4 or min(self.stage_units) < 1:
            raise ValueError("stage_units and widths need 4 entries each (at least one unit per stage)")
        if len(set(self.widths)) != 4 or min(self.widths) < 16:
            # files hold no strides: a loader finds the stages as runs of one width; SE divides widths by 16
            raise ValueError(f"widths must be 4 different values >= 16, got {self.widths}")


class GradualStyleBlock(nn.Module):
    """A feature map of side `spatial` -> one style vector: log2(spatial) strided convs, then a linear."""

    def __init__(self, in_c, out_c, spatial, width=None):
        super().__init__()
        width = width or out_c
        layers, c = [], in_c
        for _ in range(int(math.log2(spatial))):
            layers += [nn.Conv2d(c, width, 3, stride=2, padding=1), nn.LeakyReLU()]
            c = width
        self.convs = nn.Sequential(*layers)  # keys convs.0, convs.2, ... as in the official file
        self.width = width
        self.linear = EqualLinear(width, out_c, lr_mul=1)

    def forward(self, x):
        return self.linear(self.convs(x).view(-1, self.width))


def _upsample_add(x, y):
    return F.interpolate(x, size=y.shape[2:], mode="bilinear", align_corners=True) + y


class Encoder4Editing(nn.Module):
    def __init__(self, cfg=E4EConfig()):
        super().__init__()
        self.cfg = cfg
        stem = cfg.widths[0]
        self.input_layer = nn.Sequential(nn.Conv2d(3, stem, 3, 1, 1, bias=False), nn.BatchNorm2d(stem), nn.PReLU(stem))
        units, cin = [], stem
        for n, cout in zip(cfg.stage_units, cfg.widths):
            for i in range(n):
                units.append(BottleneckIR(cin, cout, stride=2 if i == 0 else 1))
                cin = cout
        self.body = nn.Sequential(*units)
        ends = [sum(cfg.stage_units[:k + 1]) - 1 for k in range(4)]
        self.taps = (ends[1], ends[2], ends[3])  # c1, c2, c3: 6, 20, 23 for IR-SE50
        feat, side = cfg.widths[3], cfg.in_size // 16
        self.styles = nn.ModuleList(
            GradualStyleBlock(feat, cfg.style_dim, side * (1 if i < cfg.coarse_ind else 2 if i < cfg.middle_ind else 4),
                              cfg.block_width)
            for i in range(cfg.n_styles))
        self.latlayer1 = nn.Conv2d(cfg.widths[2], feat, 1)
        self.latlayer2 = nn.Conv2d(cfg.widths[1], feat, 1)
        self.progressive_stage = cfg.n_styles  # inference: every row's delta

    def forward(self, x):
        """[B, 3, in_size, in_size] in [-1, 1] -> w+ offsets [B, n_styles, style_dim] (before latent_avg)."""
        x = self.input_layer(x)
        for i, unit in enumerate(self.body):
            x = unit(x)
            if i == self.taps[0]:
                c1 = x
            elif i == self.taps[1]:
                c2 = x
        c3 = x
        w0 = self.styles[0](c3)
        rows = [w0]
        features = c3
        for i in range(1, self.cfg.n_styles):
            if i == self.cfg.coarse_ind:
                p2 = features = _upsample_add(c3, self.latlayer1(c2))
            elif i == self.cfg.middle_ind:
                features = _upsample_add(p2, self.latlayer2(c1))
            # rows past the progressive stage get no delta (and their blocks no gradient)
            rows.append(w0 + self.styles[i](features) if i <= self.progressive_stage else w0)
        return torch.stack(rows, dim=1)

    def deltas(self, w):
        """Per-row offsets from row 0: what e4e's delta regularisation penalises."""
        return w[:, 1:] - w[:, :1]


class E4E(nn.Module):
    """An encoder with the average latent it is trained around: img -> ws = encoder(resize(img)) + latent_avg."""

    def __init__(self, cfg=E4EConfig(), latent_avg=None):
        super().__init__()
        self.encoder = Encoder4Editing(cfg)
        self.cfg = cfg
        avg = torch.zeros(cfg.n_styles, cfg.style_dim) if latent_avg is None else latent_avg
        self.register_buffer("latent_avg", avg.expand(cfg.n_styles, cfg.style_dim).clone())

    def forward(self, img):
        if img.shape[-1] != self.cfg.in_size:
            # adaptive average pooling down (e4e's own face_pool), bilinear up
            img = (F.adaptive_avg_pool2d(img, self.cfg.in_size) if img.shape[-1] > self.cfg.in_size else
                   F.interpolate(img, size=self.cfg.in_size, mode="bilinear", align_corners=False))
        return self.encoder(img) + self.latent_avg

    def config_dict(self):
        return asdict(self.cfg)


class LatentCodesDiscriminator(nn.Module):
    """e4e's latent discriminator: is a w from the mapping network (real) or from the encoder (fake)?
    (n_layers - 1) × [Linear + LeakyReLU(0.2)], then Linear -> 1 logit."""

    def __init__(self, style_dim=512, n_layers=4):
        super().__init__()
        layers = []
        for _ in range(n_layers - 1):
            layers += [nn.Linear(style_dim, style_dim), nn.LeakyReLU(0.2)]
        self.mlp = nn.Sequential(*layers, nn.Linear(style_dim, 1))

    def forward(self, w):
        return self.mlp(w)


class LatentPool(nn.Module):
    """e4e's pool of past codes (pix2pix's ImagePool for latents): the discriminator sees a mix of fresh codes
    and older ones, so the encoder cannot chase a discriminator that only knows its latest output. Half of the
    time a fresh code is swapped with a random stored one. The pool is a buffer, so it is checkpointed and a
    resumed run draws exactly what the uninterrupted one would."""

    def __init__(self, size, dim):
        super().__init__()
        self.size = size
        self.register_buffer("codes", torch.zeros(size, dim))
        self.register_buffer("count", torch.zeros((), dtype=torch.long))

    @torch.no_grad()
    def query(self, w):
        if self.size == 0:
            return w
        out = []
        for code in w.detach():
            n = int(self.count)
            if n < self.size:  # filling up: store it and hand it on
                self.codes[n] = code
                self.count += 1
                out.append(code)
            elif torch.rand(()) < 0.5:  # swap with a stored one
                k = int(torch.randint(self.size, ()))
                out.append(self.codes[k].clone())
                self.codes[k] = code
            else:
                out.append(code)
        return torch.stack(out)
