"""StyleGAN2 generator and discriminator in plain PyTorch, key-for-key compatible with rosinality's
`stylegan2-pytorch` (the layout StyleCLIP and e4e checkpoints use).

No custom CUDA ops: the fused bias+leaky-ReLU and upfirdn2d kernels of the official code are written
with ordinary torch ops, so the same code runs on CPU and GPU with nothing to compile.

Synthesis has one path: w+ -> StyleSpace (one style vector per modulated layer) -> image. `synthesis`
is `synthesis_from_s(w_to_s(ws))`, so StyleSpace editing (global directions) and W+ editing share
every line of the rendering code.
"""
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

NOISE_MODES = ("const", "random", "none")


def default_channels(channel_multiplier=2):
    """rosinality's channels per resolution (config-f at channel_multiplier=2)."""
    cm = channel_multiplier
    return {4: 512, 8: 512, 16: 512, 32: 512, 64: 256 * cm, 128: 128 * cm, 256: 64 * cm,
            512: 32 * cm, 1024: 16 * cm}


# ----------------------------------------------------------------------------------------------------
# Ops (plain-torch replacements of the official CUDA kernels)

def fused_leaky_relu(x, bias, negative_slope=0.2, scale=2 ** 0.5):
    """sqrt(2) * leaky_relu(x + bias): bias on dim 1 (channels), the gain keeps activations' variance."""
    shape = [1, -1] + [1] * (x.ndim - 2)
    return F.leaky_relu(x + bias.view(shape), negative_slope) * scale


def make_kernel(k):
    k = torch.tensor(k, dtype=torch.float32)
    if k.ndim == 1:
        k = k[None, :] * k[:, None]
    return k / k.sum()


def upfirdn2d(x, kernel, up=1, down=1, pad=(0, 0)):
    """Upsample by zero insertion, pad, filter with `kernel` (a true convolution), downsample.

    Same semantics as the official upfirdn2d with equal factors/pads on both axes. Each channel is
    filtered on its own (depthwise conv), which is what the blur of StyleGAN2 needs.
    """
    B, C, H, W = x.shape
    if up > 1:  # zero insertion: sample, then up-1 zeros, on each axis
        x = x.reshape(B, C, H, 1, W, 1)
        x = F.pad(x, [0, up - 1, 0, 0, 0, up - 1])
        x = x.reshape(B, C, H * up, W * up)
    p0, p1 = pad
    assert p0 >= 0 and p1 >= 0, "negative padding is not used by StyleGAN2"
    x = F.pad(x, [p0, p1, p0, p1])
    kh, kw = kernel.shape
    w = torch.flip(kernel, [0, 1]).to(x.dtype).view(1, 1, kh, kw).expand(C, 1, kh, kw)
    x = F.conv2d(x, w, groups=C)
    return x[:, :, ::down, ::down] if down > 1 else x


class Blur(nn.Module):
    def __init__(self, kernel, pad, upsample_factor=1):
        super().__init__()
        self.register_buffer("kernel", make_kernel(kernel) * upsample_factor ** 2)  # in the state dict
        self.pad = pad

    def forward(self, x):
        return upfirdn2d(x, self.kernel, pad=self.pad)


class Upsample(nn.Module):
    """2x FIR upsampling of the RGB skip connection."""

    def __init__(self, kernel, factor=2):
        super().__init__()
        self.factor = factor
        self.register_buffer("kernel", make_kernel(kernel) * factor ** 2)
        p = self.kernel.shape[0] - factor
        self.pad = ((p + 1) // 2 + factor - 1, p // 2)

    def forward(self, x):
        return upfirdn2d(x, self.kernel, up=self.factor, pad=self.pad)


class PixelNorm(nn.Module):
    def forward(self, x):
        return x * torch.rsqrt(torch.mean(x ** 2, dim=1, keepdim=True) + 1e-8)


class EqualLinear(nn.Module):
    """Linear layer with equalised learning rate: weights stored at N(0, 1/lr_mul²), scaled at run time."""

    def __init__(self, in_dim, out_dim, bias=True, bias_init=0.0, lr_mul=1.0, activation=None):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_dim, in_dim).div_(lr_mul))
        self.bias = nn.Parameter(torch.full((out_dim,), float(bias_init))) if bias else None
        self.scale = lr_mul / math.sqrt(in_dim)
        self.lr_mul = lr_mul
        self.activation = activation  # None or "fused_lrelu"

    def forward(self, x):
        bias = self.bias * self.lr_mul if self.bias is not None else None
        if self.activation:
            return fused_leaky_relu(F.linear(x, self.weight * self.scale), bias)
        return F.linear(x, self.weight * self.scale, bias)


class EqualConv2d(nn.Module):
    def __init__(self, in_channel, out_channel, kernel_size, stride=1, padding=0, bias=True):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_channel, in_channel, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.zeros(out_channel)) if bias else None
        self.scale = 1 / math.sqrt(in_channel * kernel_size ** 2)
        self.stride, self.padding = stride, padding

    def forward(self, x):
        return F.conv2d(x, self.weight * self.scale, self.bias, self.stride, self.padding)


class FusedLeakyReLU(nn.Module):
    def __init__(self, channel):
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(channel))

    def forward(self, x):
        return fused_leaky_relu(x, self.bias)


# ----------------------------------------------------------------------------------------------------
# Generator layers. Each modulated layer takes its *style vector* s (the output of its `modulation`),
# not w: that is what makes StyleSpace a first-class input.

class ModulatedConv2d(nn.Module):
    def __init__(self, in_channel, out_channel, kernel_size, style_dim, demodulate=True, upsample=False,
                 blur_kernel=(1, 3, 3, 1)):
        super().__init__()
        self.in_channel, self.out_channel, self.kernel_size = in_channel, out_channel, kernel_size
        self.demodulate, self.upsample = demodulate, upsample
        if upsample:  # transposed conv (stride 2) then blur, pads as in the official code
            factor = 2
            p = (len(blur_kernel) - factor) - (kernel_size - 1)
            self.blur = Blur(blur_kernel, pad=((p + 1) // 2 + factor - 1, p // 2 + 1), upsample_factor=factor)
        self.scale = 1 / math.sqrt(in_channel * kernel_size ** 2)
        self.padding = kernel_size // 2
        self.weight = nn.Parameter(torch.randn(1, out_channel, in_channel, kernel_size, kernel_size))
        self.modulation = EqualLinear(style_dim, in_channel, bias_init=1)

    def forward(self, x, s):
        # Modulate activations instead of weights (the non-fused form of the official code): one ordinary
        # convolution for the whole batch, which is faster than a grouped conv with per-sample weights,
        # and is mathematically the same.
        weight = self.weight[0] * self.scale  # [out, in, k, k]
        x = x * s[:, :, None, None].to(x.dtype)
        if self.upsample:
            x = F.conv_transpose2d(x, weight.transpose(0, 1), stride=2)
        else:
            x = F.conv2d(x, weight, padding=self.padding)
        if self.demodulate:
            # rsqrt(sum_{in,kh,kw} (W*s)^2 + eps), computed without materialising per-sample weights.
            demod = torch.rsqrt((s ** 2) @ weight.pow(2).sum([2, 3]).t() + 1e-8)  # [B, out]
            x = x * demod[:, :, None, None].to(x.dtype)
        if self.upsample:
            x = self.blur(x)  # linear and per-channel: commutes with the demodulation scale
        return x


class NoiseInjection(nn.Module):
    def __init__(self):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(1))

    def forward(self, x, noise):
        return x if noise is None else x + self.weight * noise


class StyledConv(nn.Module):
    def __init__(self, in_channel, out_channel, kernel_size, style_dim, upsample=False, blur_kernel=(1, 3, 3, 1)):
        super().__init__()
        self.conv = ModulatedConv2d(in_channel, out_channel, kernel_size, style_dim, upsample=upsample,
                                    blur_kernel=blur_kernel)
        self.noise = NoiseInjection()
        self.activate = FusedLeakyReLU(out_channel)

    def forward(self, x, s, noise=None):
        return self.activate(self.noise(self.conv(x, s), noise))


class ToRGB(nn.Module):
    def __init__(self, in_channel, style_dim, upsample=True, blur_kernel=(1, 3, 3, 1)):
        super().__init__()
        if upsample:
            self.upsample = Upsample(blur_kernel)
        self.conv = ModulatedConv2d(in_channel, 3, 1, style_dim, demodulate=False)
        self.bias = nn.Parameter(torch.zeros(1, 3, 1, 1))

    def forward(self, x, s, skip=None):
        out = self.conv(x, s) + self.bias
        return out if skip is None else out + self.upsample(skip)


class ConstantInput(nn.Module):
    def __init__(self, channel, size=4):
        super().__init__()
        self.input = nn.Parameter(torch.randn(1, channel, size, size))

    def forward(self, batch):
        return self.input.repeat(batch, 1, 1, 1)


@dataclass(frozen=True)
class StyleLayer:
    """One modulated layer of the synthesis network, as StyleSpace sees it."""
    name: str       # rosinality module name: "conv1", "to_rgb1", "convs.3", "to_rgbs.1", ...
    channels: int   # length of its style vector
    is_torgb: bool  # toRGB styles are excluded from most StyleSpace edits
    w_row: int      # which row of w+ feeds it
    resolution: int


class Generator(nn.Module):
    """rosinality-compatible StyleGAN2 generator.

    G.mapping(z) -> w [B, style_dim]; G.synthesis(ws) -> img [B, 3, size, size] for ws [B, n_latent, dim];
    G.w_to_s(ws) -> StyleSpace (list of [B, C_l] in forward order); G.synthesis_from_s(s) -> img.
    """

    def __init__(self, size, style_dim=512, n_mlp=8, channel_multiplier=2, channels=None, lr_mlp=0.01,
                 blur_kernel=(1, 3, 3, 1)):
        super().__init__()
        log_size = int(math.log2(size))
        if 2 ** log_size != size or size < 4:
            raise ValueError(f"Generator size must be a power of two >= 4, got {size}")
        self.size, self.style_dim, self.n_mlp = size, style_dim, n_mlp
        self.channel_multiplier = channel_multiplier
        self.channels = {int(k): int(v) for k, v in (channels or default_channels(channel_multiplier)).items()}
        missing = [2 ** i for i in range(2, log_size + 1) if 2 ** i not in self.channels]
        if missing:
            raise ValueError(f"channels has no entry for resolutions {missing}")
        self.log_size = log_size
        self.num_layers = (log_size - 2) * 2 + 1  # noise inputs
        self.n_latent = log_size * 2 - 2          # rows of w+

        self.style = nn.Sequential(PixelNorm(), *[
            EqualLinear(style_dim, style_dim, lr_mul=lr_mlp, activation="fused_lrelu") for _ in range(n_mlp)])

        ch = self.channels
        self.input = ConstantInput(ch[4])
        self.conv1 = StyledConv(ch[4], ch[4], 3, style_dim, blur_kernel=blur_kernel)
        self.to_rgb1 = ToRGB(ch[4], style_dim, upsample=False)
        self.convs, self.to_rgbs = nn.ModuleList(), nn.ModuleList()
        self.noises = nn.Module()
        for i in range(self.num_layers):
            res = 2 ** ((i + 5) // 2)
            self.noises.register_buffer(f"noise_{i}", torch.randn(1, 1, res, res))
        in_ch = ch[4]
        for i in range(3, log_size + 1):
            out_ch = ch[2 ** i]
            self.convs.append(StyledConv(in_ch, out_ch, 3, style_dim, upsample=True, blur_kernel=blur_kernel))
            self.convs.append(StyledConv(out_ch, out_ch, 3, style_dim, blur_kernel=blur_kernel))
            self.to_rgbs.append(ToRGB(out_ch, style_dim, blur_kernel=blur_kernel))
            in_ch = out_ch
        # Average w for truncation. Not persistent: rosinality's g_ema has no such key; the loaders fill it
        # from the checkpoint's `latent_avg` or call `mean_latent`.
        self.register_buffer("w_avg", torch.zeros(style_dim), persistent=False)
        self.has_w_avg = False
        self.memory_format = torch.contiguous_format  # a speed knob, not state: trainers use channels_last
        self.style_layers = self._describe_style_layers()

    # -- description --------------------------------------------------------------------------------
    def _describe_style_layers(self):
        # A style vector scales the *input* channels of its conv, so its length is the conv's in_channel
        # (the first conv of a resolution still has the previous, wider resolution's width).
        names = ["conv1", "to_rgb1"] + [n for k in range(len(self.to_rgbs))
                                         for n in (f"convs.{2 * k}", f"convs.{2 * k + 1}", f"to_rgbs.{k}")]
        rows = [0, 1] + [r for k in range(len(self.to_rgbs)) for r in (1 + 2 * k, 2 + 2 * k, 3 + 2 * k)]
        return [StyleLayer(name, m.conv.in_channel, name.startswith("to_rgb"), row,
                           4 if k < 2 else 2 ** ((k - 2) // 3 + 3))
                for k, (name, row, m) in enumerate(zip(names, rows, self._modules_in_order()))]

    def _modules_in_order(self):
        mods = [self.conv1, self.to_rgb1]
        for k in range(len(self.to_rgbs)):
            mods += [self.convs[2 * k], self.convs[2 * k + 1], self.to_rgbs[k]]
        return mods

    def _modulated_layers(self):
        """(StyleLayer, module) pairs in forward order; the module's `.conv.modulation` makes its style."""
        return list(zip(self.style_layers, self._modules_in_order()))

    # -- latent spaces --------------------------------------------------------------------------------
    def mapping(self, z, truncation_psi=1.0):
        """z [B, style_dim] -> w [B, style_dim], optionally truncated towards the average w."""
        w = self.style(z)
        return self.truncate(w, truncation_psi) if truncation_psi != 1 else w

    @torch.no_grad()
    def mean_latent(self, n=4096, seed=0, batch=1024):
        """Mean of mapping(z) over n samples (stored as G.w_avg, used by truncation)."""
        g = torch.Generator().manual_seed(seed)
        dev = self.input.input.device
        total = torch.zeros(self.style_dim, device=dev, dtype=torch.float64)
        for start in range(0, n, batch):
            z = torch.randn(min(batch, n - start), self.style_dim, generator=g).to(dev)
            total += self.style(z).double().sum(0)
        self.set_w_avg(total / n)
        return self.w_avg.clone()

    @torch.no_grad()
    def sample_ws(self, n, truncation_psi=1.0, seed=0, batch=1024):
        """W+ codes [n, n_latent, style_dim] of n faces from seeded z (drawn `batch` at a time, so the same seed
        and batch give the same faces), mapped, truncated, one row per layer."""
        g = torch.Generator().manual_seed(seed)
        dev = self.input.input.device
        out = []
        for start in range(0, n, batch):
            z = torch.randn(min(batch, n - start), self.style_dim, generator=g).to(dev)
            out.append(self.broadcast(self.mapping(z, truncation_psi)))
        return torch.cat(out)

    def set_w_avg(self, w_avg):
        w_avg = torch.as_tensor(w_avg)
        if w_avg.ndim == 2:  # e4e stores latent_avg as [n_latent, dim] with identical rows
            w_avg = w_avg[0]
        self.w_avg.copy_(w_avg.to(self.w_avg))
        self.has_w_avg = True

    def truncate(self, w, psi):
        """w_avg + psi (w - w_avg); works for w [B, dim] and ws [B, n_latent, dim]."""
        if not self.has_w_avg:
            raise RuntimeError("truncation needs the average w: load a checkpoint with `latent_avg` or "
                               "call G.mean_latent() first")
        return self.w_avg + psi * (w - self.w_avg)

    def broadcast(self, w):
        """w [B, dim] -> ws [B, n_latent, dim] (every row the same)."""
        return w.unsqueeze(1).repeat(1, self.n_latent, 1)

    def mix(self, w1, w2, crossover):
        """Style mixing: rows [0, crossover) from w1, the rest from w2 (rosinality's inject_index)."""
        if not 0 <= crossover <= self.n_latent:
            raise ValueError(f"crossover must be in [0, {self.n_latent}], got {crossover}")
        ws1 = w1 if w1.ndim == 3 else self.broadcast(w1)
        ws2 = w2 if w2.ndim == 3 else self.broadcast(w2)
        return torch.cat([ws1[:, :crossover], ws2[:, crossover:]], 1)

    def w_to_s(self, ws):
        """W+ -> StyleSpace: one style vector [B, C_l] per modulated layer, in forward order."""
        if ws.ndim != 3 or ws.shape[1] != self.n_latent:
            raise ValueError(f"ws must be [B, {self.n_latent}, {self.style_dim}], got {tuple(ws.shape)}")
        return [m.conv.modulation(ws[:, layer.w_row]) for layer, m in self._modulated_layers()]

    # -- synthesis ------------------------------------------------------------------------------------
    def make_noise(self, batch, noise_mode="const", generator=None):
        if noise_mode not in NOISE_MODES:
            raise ValueError(f"noise_mode must be one of {NOISE_MODES}, got {noise_mode!r}")
        bufs = [getattr(self.noises, f"noise_{i}") for i in range(self.num_layers)]
        if noise_mode == "const":
            return bufs
        if noise_mode == "none":
            return [None] * self.num_layers
        return [torch.randn(batch, 1, *b.shape[2:], generator=generator, device=b.device if generator is None
                            else generator.device).to(b) for b in bufs]

    def synthesis(self, ws, noise_mode="const", noise=None, generator=None):
        """ws [B, n_latent, style_dim] -> img [B, 3, size, size]. noise_mode: "const" = stored buffers,
        "random" = fresh noise (from `generator` if given), "none" = zeros. `noise` overrides both."""
        return self.synthesis_from_s(self.w_to_s(ws), noise_mode, noise, generator)

    def synthesis_from_s(self, s, noise_mode="const", noise=None, generator=None):
        """StyleSpace (list of [B, C_l] in forward order) -> img."""
        if len(s) != len(self.style_layers):
            raise ValueError(f"expected {len(self.style_layers)} style vectors, got {len(s)}")
        batch = s[0].shape[0]
        noise = noise if noise is not None else self.make_noise(batch, noise_mode, generator)
        # memory_format: trainers set channels_last, which oneDNN/cuDNN run faster (convs keep the format)
        x = self.conv1(self.input(batch).contiguous(memory_format=self.memory_format), s[0], noise[0])
        img = self.to_rgb1(x, s[1])
        for k in range(len(self.to_rgbs)):
            x = self.convs[2 * k](x, s[2 + 3 * k], noise[1 + 2 * k])
            x = self.convs[2 * k + 1](x, s[3 + 3 * k], noise[2 + 2 * k])
            img = self.to_rgbs[k](x, s[4 + 3 * k], img)
        return img

    def forward(self, z, truncation_psi=1.0, noise_mode="const"):
        """z -> img (convenience for sampling)."""
        return self.synthesis(self.broadcast(self.mapping(z, truncation_psi)), noise_mode)

    def s_to_flat(self, s, include_torgb=True):
        return torch.cat([v for v, l in zip(s, self.style_layers) if include_torgb or not l.is_torgb], 1)


def interpolate(a, b, steps, spherical=False):
    """`steps` points from a to b (inclusive): linear (for w) or spherical (for Gaussian z)."""
    t = torch.linspace(0, 1, steps, device=a.device, dtype=a.dtype).view(-1, *[1] * a.ndim)
    if not spherical:
        return a + t * (b - a)
    an, bn = a / a.norm(dim=-1, keepdim=True), b / b.norm(dim=-1, keepdim=True)
    omega = torch.acos((an * bn).sum(-1, keepdim=True).clamp(-1 + 1e-7, 1 - 1e-7))
    so = torch.sin(omega)
    return (torch.sin((1 - t) * omega) / so) * a + (torch.sin(t * omega) / so) * b


# ----------------------------------------------------------------------------------------------------
# Discriminator

class ConvLayer(nn.Sequential):
    def __init__(self, in_channel, out_channel, kernel_size, downsample=False, blur_kernel=(1, 3, 3, 1),
                 bias=True, activate=True):
        layers = []
        if downsample:
            p = (len(blur_kernel) - 2) + (kernel_size - 1)
            layers.append(Blur(blur_kernel, pad=((p + 1) // 2, p // 2)))
            stride, padding = 2, 0
        else:
            stride, padding = 1, kernel_size // 2
        layers.append(EqualConv2d(in_channel, out_channel, kernel_size, stride=stride, padding=padding,
                                  bias=bias and not activate))
        if activate:
            layers.append(FusedLeakyReLU(out_channel))
        super().__init__(*layers)


class ResBlock(nn.Module):
    def __init__(self, in_channel, out_channel, blur_kernel=(1, 3, 3, 1)):
        super().__init__()
        self.conv1 = ConvLayer(in_channel, in_channel, 3)
        self.conv2 = ConvLayer(in_channel, out_channel, 3, downsample=True, blur_kernel=blur_kernel)
        self.skip = ConvLayer(in_channel, out_channel, 1, downsample=True, activate=False, bias=False,
                              blur_kernel=blur_kernel)

    def forward(self, x):
        return (self.conv2(self.conv1(x)) + self.skip(x)) / math.sqrt(2)


class Discriminator(nn.Module):
    """rosinality-compatible residual discriminator (`d` in training checkpoints)."""

    def __init__(self, size, channel_multiplier=2, channels=None, blur_kernel=(1, 3, 3, 1)):
        super().__init__()
        ch = {int(k): int(v) for k, v in (channels or default_channels(channel_multiplier)).items()}
        log_size = int(math.log2(size))
        convs = [ConvLayer(3, ch[size], 1)]
        in_ch = ch[size]
        for i in range(log_size, 2, -1):
            convs.append(ResBlock(in_ch, ch[2 ** (i - 1)], blur_kernel))
            in_ch = ch[2 ** (i - 1)]
        self.convs = nn.Sequential(*convs)
        self.stddev_group, self.stddev_feat = 4, 1
        self.final_conv = ConvLayer(in_ch + 1, ch[4], 3)
        self.final_linear = nn.Sequential(EqualLinear(ch[4] * 16, ch[4], activation="fused_lrelu"),
                                          EqualLinear(ch[4], 1))

    def forward(self, img):
        out = self.convs(img)
        B, C, H, W = out.shape
        # Minibatch stddev over groups of up to 4 samples. The official code needs B divisible by the
        # group; we take the largest group <= 4 that divides B instead of crashing.
        group = next(g for g in range(min(B, self.stddev_group), 0, -1) if B % g == 0)
        std = out.reshape(group, -1, self.stddev_feat, C // self.stddev_feat, H, W)
        std = torch.sqrt(std.var(0, unbiased=False) + 1e-8).mean([2, 3, 4], keepdim=True).squeeze(2)
        out = torch.cat([out, std.repeat(group, 1, H, W)], 1)
        return self.final_linear(self.final_conv(out).reshape(B, -1))
