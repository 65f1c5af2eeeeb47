"""The small SynthFaces networks that stand in for the real pipeline's ArcFace and attribute judges, and
the config of the small CLIP (the very `clip.model.CLIP` class ViT-B/32 uses, at a small size).

Every net takes images in [-1, 1] (the generator's range), any square size (resized to its input size).
"""
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class ConvNetConfig:
    in_size: int = 64
    width: int = 32          # channels of the first stage; doubled at each of the 4 stages
    out_dim: int = 40        # classifier: number of attributes; identity net: embedding size


def _block(cin, cout):
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
                         nn.Conv2d(cout, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
                         nn.MaxPool2d(2))


class ConvNet(nn.Module):
    """A plain VGG-style CNN: 4 stages of two 3×3 convs and a 2× pool, then global pooling and a linear
    head. Small and fast on CPU, and ample for 64 px rendered faces."""

    def __init__(self, cfg: ConvNetConfig):
        super().__init__()
        self.cfg = cfg
        w = cfg.width
        self.features = nn.Sequential(_block(3, w), _block(w, 2 * w), _block(2 * w, 4 * w), _block(4 * w, 8 * w))
        self.head = nn.Linear(8 * w, cfg.out_dim)

    def embed(self, img):
        """The pooled features the head reads: [B, 8 * width]."""
        if img.shape[-1] != self.cfg.in_size:
            img = F.interpolate(img, size=(self.cfg.in_size, self.cfg.in_size), mode="bilinear",
                                align_corners=False, antialias=True)
        return self.features(img).mean((2, 3))

    def forward(self, img):
        return self.head(self.embed(img))


class Judge:
    """Marks a model that scores edits. No editing method may optimise against a judge (the losses refuse one):
    an edit that was optimised to please its scorer proves nothing."""


class AttributeClassifier(ConvNet, Judge):
    """Multi-label attribute judge: logits per attribute. The judge of edits — never an editing loss."""

    def __init__(self, cfg: ConvNetConfig, attribute_names):
        super().__init__(cfg)
        if len(attribute_names) != cfg.out_dim:
            raise ValueError(f"{len(attribute_names)} attribute names for out_dim {cfg.out_dim}")
        self.attribute_names = list(attribute_names)

    @torch.no_grad()
    def predict(self, img, threshold=0.5):
        """-> bool tensor [B, n_attributes]."""
        return torch.sigmoid(self(img)) > threshold

    def index(self, name):
        if name not in self.attribute_names:
            raise KeyError(f"unknown attribute {name!r}; known: {', '.join(self.attribute_names)}")
        return self.attribute_names.index(name)


class IdentityNet(ConvNet):
    """Identity embedding with the real backbones' interface: image in, L2-normalised embedding out."""

    def forward(self, img):
        return F.normalize(super().forward(img), dim=1)


class ArcMarginHead(nn.Module):
    """ArcFace training head: cos(θ + m) for the true class, scaled by s (Deng et al., 2019)."""

    def __init__(self, dim, n_classes, s=30.0, m=0.4):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(n_classes, dim) * 0.01)
        self.s, self.m = s, m

    def forward(self, emb, labels):
        cos = F.linear(emb, F.normalize(self.weight, dim=1)).clamp(-1 + 1e-7, 1 - 1e-7)
        target = torch.cos(torch.acos(cos.gather(1, labels[:, None])) + self.m)
        return self.s * cos.scatter(1, labels[:, None], target)


@dataclass
class SmallCLIPConfig:
    """Arguments of `clip.model.CLIP` (the class of ViT-B/32 and RN50) for a small CLIP on 64 px faces. A tuple
    `vision_layers` (blocks per stage) gives the ResNet image tower, an int the ViT's depth."""
    embed_dim: int = 128
    image_resolution: int = 64
    vision_layers: int | tuple = 4
    vision_width: int = 192
    vision_patch_size: int = 8
    context_length: int = 32   # captions are short; ViT-B/32 uses 77
    vocab_size: int = 49408    # clip.tokenize's BPE vocabulary
    transformer_width: int = 128
    transformer_heads: int = 4
    transformer_layers: int = 3


def small_clip(cfg: SmallCLIPConfig):
    from clip.model import CLIP
    return CLIP(**asdict(cfg))


def encode_text_by_length(model, tokens, chunks=4):
    """`model.encode_text(tokens)`, computed on the texts sorted by length in `chunks` groups, each cut
    after its longest text. The same features: attention is causal and the end-of-text token is the one
    read out, so nothing it depends on lies in the padding. It costs the real lengths instead of
    `context_length` (SynthFaces captions average 14 of 32 tokens: the text tower is ~2x faster)."""
    ends = tokens.argmax(-1)   # the end-of-text token has the highest id
    order = ends.argsort()
    feats = torch.cat([model.encode_text(tokens[i, :int(ends[i].max()) + 1]) for i in order.chunk(chunks)])
    return feats[order.argsort()]



class IdentityJudge(ConvNet, Judge):
    """Predicts a face's identity traits (data/attributes.py: sex, age, skin, natural hair, eye colour, face
    shape). "Same person" after an edit = every trait the prompt does not target reads the same. Trained on
    renders, separately from the identity net that editing methods use as their identity loss."""

    def __init__(self, cfg: ConvNetConfig, traits, n_shape):
        sizes = [len(classes) for classes in traits.values()]
        if cfg.out_dim != sum(sizes) + n_shape:
            raise ValueError(f"out_dim must be {sum(sizes) + n_shape} (the trait classes and {n_shape} shape values)")
        super().__init__(cfg)
        self.traits, self.sizes, self.n_shape = dict(traits), sizes, n_shape

    def split(self, out):
        """Raw output [B, out_dim] -> ([B, classes] logits per trait, [B, n_shape] face shape)."""
        *logits, shape = out.split(self.sizes + [self.n_shape], dim=1)
        return logits, shape

    @torch.no_grad()
    def predict(self, img):
        """-> (trait classes [B, n_traits] long, face shape [B, n_shape])."""
        logits, shape = self.split(self(img).float())
        return torch.stack([x.argmax(1) for x in logits], 1), shape


class RealismJudge(ConvNet, Judge):
    """Is an image still a face of the data's kind? One logit: real renders and unedited generated faces
    against broken ones (blobs over the face, noise). `threshold` is calibrated so that 95% of unedited
    generated faces (a seed training never saw) pass."""

    def __init__(self, cfg: ConvNetConfig, threshold=0.5):
        super().__init__(cfg)
        self.threshold = threshold

    @torch.no_grad()
    def score(self, img):
        """-> [B] probability that the image is a face of the data's kind."""
        return torch.sigmoid(self(img).float()[:, 0])

    @torch.no_grad()
    def predict(self, img):
        """-> bool [B]: realistic."""
        return self.score(img) >= self.threshold


class MeasureJudge(ConvNet, Judge):
    """Reads the renderer's continuous face measures (data/render.py MEASURES: pose, eye, brow, nose and mouth
    geometry) and the domain (natural or toon) off an image: the judge that labels generated faces for notebook
    06's attribute directions and measures how far each slider moves each feature. Never an editing loss."""

    def __init__(self, cfg: ConvNetConfig, measures):
        """`measures`: name -> (low, high, unit), the range each output's [0, 1] scale spans."""
        if cfg.out_dim != len(measures) + 1:
            raise ValueError(f"out_dim must be {len(measures) + 1} (the measures and one domain logit)")
        super().__init__(cfg)
        self.measures = {k: tuple(v) for k, v in measures.items()}

    def split(self, out):
        """Raw output [B, out_dim] -> (measures scaled to [0, 1] [B, M], toon logit [B])."""
        return out[:, :-1], out[:, -1]

    @torch.no_grad()
    def predict(self, img):
        """-> (measures in their own units [B, M], in `measures`' order; probability of the toon domain [B])."""
        scaled, logit = self.split(self(img).float())
        lo, hi = (torch.tensor([v[k] for v in self.measures.values()], device=scaled.device) for k in (0, 1))
        return lo + scaled * (hi - lo), torch.sigmoid(logit)
