"""Neural style transfer (Gatys, Ecker & Bethge 2016): optimise an image whose deep features match a content
image's and whose feature Gram matrices match a style image's. Notebook 06 paints any result with it.

The feature network: VGG19 (torchvision's ImageNet weights, the paper's network) when its file is on the machine,
in the project's cache (registry name "vgg19") or torch hub's; otherwise the project's identity net, a loss-side
network (never a judge). `feature_net` says which it took.

    net = feature_net(identity_net=zoo.load_identity_net())
    img = style_transfer(face, style_image("mosaic"), net)      # [-1, 1] in, [-1, 1] out; seconds on CPU
"""
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, UnidentifiedImageError
from torch import nn
from tqdm.auto import tqdm

from ..weights import registry

# VGG19 `features` indices (after the ReLU): Gatys et al.'s style layers relu1_1 .. relu5_1, content relu4_2
VGG_STYLE, VGG_CONTENT = (1, 6, 11, 20, 29), 22
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
STYLES = ("mosaic", "waves", "toon")


class FeatureNet(nn.Module):
    """A conv stack read at some layers: forward(img in [-1, 1]) -> (style features, content feature)."""

    def __init__(self, layers, style_at, content_at, name, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5)):
        super().__init__()
        self.layers, self.style_at, self.content_at, self.name = layers, tuple(style_at), content_at, name
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1))
        self.requires_grad_(False).eval()

    def forward(self, img):
        x = ((img + 1) / 2 - self.mean) / self.std
        style, content = [], None
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i in self.style_at:
                style.append(x)
            if i == self.content_at:
                content = x
            if i >= max(*self.style_at, self.content_at):
                break
        return style, content


def find_vgg19():
    """The path of torchvision's VGG19 file if this machine has it (the project's cache, then torch hub's), else None."""
    entry = registry.get_entry("vgg19")
    hub = Path(torch.hub.get_dir()) / "checkpoints" / entry.filename
    return next((p for p in (registry.local_path("vgg19"), hub) if p.is_file()), None)


def vgg19_features(path, device="cpu"):
    """VGG19's conv stack from torchvision's state dict at `path` (or a user's file of that layout)."""
    import torchvision
    sd = torch.load(path, map_location="cpu", weights_only=True)
    vgg = torchvision.models.vgg19(weights=None)
    missing = [k for k in vgg.state_dict() if k.startswith("features.") and k not in sd]
    if missing:
        raise ValueError(f"{path} is not a torchvision VGG19 state dict (missing {missing[:3]}...): give "
                         f"{registry.get_entry('vgg19').filename} from {registry.get_entry('vgg19').url}")
    vgg.load_state_dict(sd)
    return FeatureNet(vgg.features[:VGG_CONTENT + 8].to(device), VGG_STYLE, VGG_CONTENT, "vgg19",
                      IMAGENET_MEAN, IMAGENET_STD).to(device)


def convnet_features(net):
    """A project ConvNet (e.g. the identity net) as a FeatureNet: style at the end of each of its 4 stages
    (before the pool), content at the third."""
    layers = nn.ModuleList()
    for block in net.features:
        layers.append(block[:-1])   # conv-bn-relu x2
        layers.append(block[-1])    # the pool
    return FeatureNet(layers, (0, 2, 4, 6), 4, f"{type(net).__name__} (the project's, loss side)").to(
        next(net.parameters()).device)


def feature_net(identity_net=None, device="cpu", vgg_path=None):
    """VGG19 when `vgg_path` or a found file gives it, else `identity_net`'s features (a loss-side network)."""
    path = Path(vgg_path) if vgg_path else find_vgg19()
    if path is not None:
        if not path.is_file():
            raise FileNotFoundError(f"{path} does not exist: give the path of {registry.get_entry('vgg19').filename}")
        return vgg19_features(path, device)
    if identity_net is None:
        raise FileNotFoundError("no VGG19 file on this machine and no identity_net given: pass "
                                "identity_net=zoo.load_identity_net(), or put " + registry.get_entry("vgg19").filename +
                                f" into {registry.cache_dir()}")
    return convnet_features(identity_net)


def gram(f):
    """[B, C, H, W] -> [B, C, C] feature correlations, normalised by the map's size."""
    B, C, H, W = f.shape
    f = f.reshape(B, C, H * W)
    return f @ f.transpose(1, 2) / (H * W)


@dataclass
class StyleResult:
    image: torch.Tensor       # [B, 3, size, size] in [-1, 1]
    content_loss: float
    style_loss: float         # both relative to their value at the start (1.0 = no progress)
    steps: int


def style_transfer(content, style, net, steps=80, size=128, style_weight=4.0, tv_weight=2.0, lr=0.03,
                   progress=True):
    """Paint `content` (images [B, 3, H, W] in [-1, 1]) in the style of `style` ([1, 3, h, w] or a PIL image) with
    Adam on the pixels, from the content image, at `size` px -> StyleResult. Each loss is divided by its value at
    the start, so `style_weight` is a plain ratio (0: the content image back)."""
    if not (isinstance(steps, int) and steps >= 1):
        raise ValueError(f"steps must be a positive integer, got {steps!r}")
    if not (16 <= int(size) <= 1024):
        raise ValueError(f"size must be in [16, 1024] px, got {size!r}")
    if style_weight < 0 or tv_weight < 0:
        raise ValueError("style_weight and tv_weight must be >= 0")
    dev = net.mean.device
    if isinstance(style, Image.Image):
        style = to_tensor(style)
    resize = lambda x: F.interpolate(x.float().to(dev), size=(size, size), mode="bilinear", align_corners=False,
                                     antialias=True)
    c0, s0 = resize(content), resize(style)
    with torch.no_grad():
        target_grams = [gram(f) for f in net(s0)[0]]
        _, target_content = net(c0)
    x = c0.clone().requires_grad_(True)
    opt = torch.optim.Adam([x], lr=lr)
    scale = None
    for _ in tqdm(range(steps), disable=not progress, desc="style transfer"):
        feats, cont = net(x)
        lc = F.mse_loss(cont, target_content.expand_as(cont))
        ls = sum(F.mse_loss(gram(f), g.expand(len(f), -1, -1)) for f, g in zip(feats, target_grams))
        tv = (x[..., 1:, :] - x[..., :-1, :]).abs().mean() + (x[..., 1:] - x[..., :-1]).abs().mean()
        if scale is None:   # the content loss starts at 0: its scale is the content features' own size
            scale = (target_content.pow(2).mean().detach() + 1e-8, ls.detach() + 1e-8, tv.detach() + 1e-8)
        loss = lc / scale[0] + style_weight * ls / scale[1] + tv_weight * tv / scale[2] * 0.01
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        with torch.no_grad():
            x.clamp_(-1, 1)
    with torch.no_grad():
        feats, cont = net(x)
        lc = float(F.mse_loss(cont, target_content.expand_as(cont)) / scale[0])
        ls = float(sum(F.mse_loss(gram(f), g.expand(len(f), -1, -1)) for f, g in zip(feats, target_grams)) / scale[1])
    return StyleResult(x.detach(), lc, ls, steps)


def to_tensor(img):
    """PIL image -> [1, 3, H, W] in [-1, 1]."""
    a = torch.from_numpy(np.asarray(img.convert("RGB"), np.float32) / 127.5 - 1)
    return a.permute(2, 0, 1)[None]


def style_image(name_or_path, size=128, seed=0):
    """A style image: one of STYLES (drawn here, so notebooks work offline) or the path of the user's own image."""
    if name_or_path in STYLES:
        return _procedural(name_or_path, size, seed)
    path = Path(name_or_path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"style image {str(name_or_path)!r} is neither a file nor one of {STYLES}")
    try:
        with Image.open(path) as img:
            return img.convert("RGB")
    except (UnidentifiedImageError, OSError) as e:
        raise ValueError(f"{path} is not an image PIL can read ({e}): give a PNG or JPEG") from None


def _procedural(name, size, seed):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    if name == "waves":   # bold colour bands that swirl, with dark strokes between them
        phase = 9 * (xx + 0.35 * np.sin(7 * yy + rng.uniform(0, 6))) + 4 * yy
        t = (np.sin(phase) + 1) / 2
        palette = np.array([(22, 48, 112), (40, 120, 190), (240, 200, 70), (230, 110, 40)], float)
        k = np.clip((t * len(palette)).astype(int), 0, len(palette) - 1)
        img = palette[k]
        img[np.abs(np.sin(phase)) < 0.12] = (15, 15, 30)
    elif name == "mosaic":   # Voronoi tiles in a warm palette with dark grout
        pts = rng.random((60, 2))
        d = ((xx[..., None] - pts[:, 0]) ** 2 + (yy[..., None] - pts[:, 1]) ** 2)
        order = np.sort(d, -1)
        cell = d.argmin(-1)
        palette = rng.choice(np.array([(196, 60, 40), (232, 170, 60), (40, 110, 140), (230, 220, 190), (90, 150, 80),
                                       (150, 60, 120)], float), len(pts))
        img = palette[cell]
        img[np.sqrt(order[..., 1]) - np.sqrt(order[..., 0]) < 0.012] = (30, 25, 25)
    else:   # toon: a face in the second domain's look (flat cels, ink lines)
        from ..data.render import sample_face
        return sample_face(seed, size=size, domain="toon")[0]
    return Image.fromarray(img.astype(np.uint8))
