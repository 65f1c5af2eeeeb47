"""Identity backbones and the identity loss of StyleCLIP / e4e.

Three embedding nets, one interface (image in [-1, 1] -> L2-normalised embedding):
- ArcFace IR-SE50 (`model_ir_se50.pth`, TreB1eN's layout), the net behind StyleCLIP's and e4e's IDLoss.
  `Backbone` below is written to be key-for-key compatible with that file.
- facenet-pytorch's InceptionResnetV1 with the VGGFace2 weights (`20180402-114759-vggface2.pt`).
- the SynthFaces `IdentityNet` (nets.py), which stands in for both on the SynthFaces world.

    id_loss = IDLoss("arcface")                 # loads model_ir_se50.pth through the registry
    ref = id_loss.reference(img_orig)           # embed the source once, without grad
    loss = id_loss(img_edit, ref).mean()        # per-image 1 - cos; StyleCLIP uses the mean
"""
import torch
import torch.nn.functional as F
from torch import nn

from .checkpoints import CheckpointError, check_state_dict, load_checkpoint
from .registry import resolve

# -----------------------------------------------------------------------------
# ArcFace IR-SE50 (TreB1eN/InsightFace_Pytorch, as vendored by pSp/e4e/StyleCLIP as model_irse.Backbone)

# units per stage; the first unit of each stage halves the resolution (112 -> 56 -> 28 -> 14 -> 7)
STAGE_UNITS = {50: (3, 4, 14, 3), 100: (3, 13, 30, 3), 152: (3, 8, 36, 3)}
STAGE_WIDTHS = (64, 128, 256, 512)


class SEModule(nn.Module):
    """Squeeze-and-excitation: rescale channels by a gate computed from their global average.
    1×1 convs without bias (not Linear) because that is how the weights are stored (fc1/fc2 [C', C, 1, 1])."""

    def __init__(self, channels, reduction=16):
        super().__init__()
        self.fc1 = nn.Conv2d(channels, channels // reduction, 1, bias=False)
        self.fc2 = nn.Conv2d(channels // reduction, channels, 1, bias=False)

    def forward(self, x):
        gate = torch.sigmoid(self.fc2(F.relu(self.fc1(F.adaptive_avg_pool2d(x, 1)))))
        return x * gate


class BottleneckIR(nn.Module):
    """Improved residual unit (BN-conv-PReLU-conv-BN, + SE for 'ir_se'); the stride sits on the second conv."""

    def __init__(self, cin, cout, stride, se=True):
        super().__init__()
        if cin == cout:
            # same width: the shortcut only subsamples. MaxPool2d with kernel 1 is a strided pick, and
            # has no weights, which is why the file has no shortcut_layer keys for these units.
            self.shortcut_layer = nn.MaxPool2d(1, stride)
        else:
            self.shortcut_layer = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
        layers = [nn.BatchNorm2d(cin), nn.Conv2d(cin, cout, 3, 1, 1, bias=False), nn.PReLU(cout),
                  nn.Conv2d(cout, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout)]
        if se:
            layers.append(SEModule(cout, 16))
        self.res_layer = nn.Sequential(*layers)

    def forward(self, x):
        return self.res_layer(x) + self.shortcut_layer(x)


class Backbone(nn.Module):
    """ArcFace IR(-SE) backbone: 112×112 image in [-1, 1] -> L2-normalised 512-d embedding.

    The official forward ends with l2_norm, so this one does too (same interface as IdentityNet).
    `drop_ratio` only matters in training; IDLoss always runs the net in eval mode."""

    def __init__(self, num_layers=50, mode="ir_se", drop_ratio=0.4, affine=True, input_size=112):
        super().__init__()
        if num_layers not in STAGE_UNITS:
            raise ValueError(f"num_layers must be one of {sorted(STAGE_UNITS)}, got {num_layers}")
        if mode not in ("ir", "ir_se"):
            raise ValueError(f"mode must be 'ir' or 'ir_se', got {mode!r}")
        if input_size not in (112, 224):
            raise ValueError(f"input_size must be 112 or 224, got {input_size}")
        self.input_size = input_size
        self.input_layer = nn.Sequential(nn.Conv2d(3, 64, 3, 1, 1, bias=False), nn.BatchNorm2d(64), nn.PReLU(64))
        # output_layer is defined before body, as in the original, so state_dict() lists keys in the file's order
        side = input_size // 16
        self.output_layer = nn.Sequential(nn.BatchNorm2d(512), nn.Dropout(drop_ratio), nn.Flatten(),
                                          nn.Linear(512 * side * side, 512), nn.BatchNorm1d(512, affine=affine))
        units, cin = [], 64
        for n, cout in zip(STAGE_UNITS[num_layers], STAGE_WIDTHS):
            for i in range(n):
                units.append(BottleneckIR(cin, cout, stride=2 if i == 0 else 1, se=mode == "ir_se"))
                cin = cout
        self.body = nn.Sequential(*units)  # flat: keys are body.0 ... body.23 for 50 layers

    def forward(self, x):
        return F.normalize(self.output_layer(self.body(self.input_layer(x))), dim=1)


def load_arcface(name_or_path="arcface-ir-se50", device="cpu", **fetch_kwargs):
    """A registry name or a path to model_ir_se50.pth (a bare state dict) -> frozen Backbone in eval mode."""
    path = resolve(name_or_path, **fetch_kwargs)
    sd = load_checkpoint(path)
    if not isinstance(sd, dict):
        raise CheckpointError(f"{path}: expected a state dict (dict of tensors), got {type(sd).__name__}")
    # drop_ratio=0.6 is what the official IDLoss builds with; in eval mode it makes no difference.
    net = Backbone(num_layers=50, mode="ir_se", drop_ratio=0.6, affine=True)
    check_state_dict(net, sd, what=f"ArcFace IR-SE50 file {path}")
    net.load_state_dict(sd)
    return net.eval().requires_grad_(False).to(device)


# -----------------------------------------------------------------------------
# facenet-pytorch InceptionResnetV1 (VGGFace2)

FACENET_SIZE = 160


def load_facenet(name_or_path="facenet-vggface2", device="cpu", **fetch_kwargs):
    """A registry name or a path to 20180402-114759-vggface2.pt -> frozen InceptionResnetV1 (embeddings).

    We never pass pretrained='vggface2': facenet then downloads the file itself at construction time.
    Its own loader (`load_weights`) instead builds the model with `logits = Linear(512, 8631)` attached and
    strict-loads the file, so the release file holds the backbone *and* the VGGFace2 classifier
    (logits.weight [8631, 512], logits.bias [8631]). We mirror that: attach the same Linear when the file
    has logits keys, then compare strictly. The classifier is unused with classify=False (forward returns
    the normalised embedding); a file without logits keys (the "-features.pt" variant) loads too."""
    path = resolve(name_or_path, **fetch_kwargs)
    from facenet_pytorch import InceptionResnetV1  # imported here: it pulls in torchvision (seconds)

    sd = load_checkpoint(path)
    if not isinstance(sd, dict):
        raise CheckpointError(f"{path}: expected a state dict (dict of tensors), got {type(sd).__name__}")
    net = InceptionResnetV1(pretrained=None, classify=False)
    if "logits.weight" in sd:
        # in_features fixed at 512 (the embedding size), so a wrong-shaped classifier is still reported
        net.logits = nn.Linear(512, sd["logits.weight"].shape[0])
    check_state_dict(net, sd, what=f"facenet InceptionResnetV1 file {path}")
    net.load_state_dict(sd)
    return net.eval().requires_grad_(False).to(device)


# -----------------------------------------------------------------------------
# preprocessing: generator image in [-1, 1], [B, 3, H, W] -> what each backbone was trained on

ARCFACE_CROP = (slice(35, 223), slice(32, 220))  # rows, columns of the 256² image: the face, without hair/bg


def arcface_preprocess(img):
    """StyleCLIP/e4e IDLoss.extract_feats: to 256² by adaptive average pooling (a 4×4 box filter for the
    1024 px generator), crop rows 35:223 and columns 32:220 (188²), adaptive-average-pool to 112².
    Exactly the official ops, also for sizes the official code never sees (< 256: pixel replication)."""
    if img.shape[-2:] != (256, 256):
        img = F.adaptive_avg_pool2d(img, (256, 256))
    rows, cols = ARCFACE_CROP
    return F.adaptive_avg_pool2d(img[:, :, rows, cols], (112, 112))


def facenet_preprocess(img):
    """To 160² (antialiased bilinear), then facenet's fixed_image_standardization (x·255 − 127.5)/128 of the
    [0, 1] image; from [-1, 1] the 0..255 image is (img + 1)·127.5."""
    if img.shape[-2:] != (FACENET_SIZE, FACENET_SIZE):
        img = F.interpolate(img, size=(FACENET_SIZE, FACENET_SIZE), mode="bilinear", align_corners=False,
                            antialias=True)
    return ((img + 1) * 127.5 - 127.5) / 128.0


# -----------------------------------------------------------------------------
# the identity loss

BACKBONES = ("arcface", "facenet", "synthfaces")
_PREPROCESS = {"arcface": arcface_preprocess, "facenet": facenet_preprocess,
               "synthfaces": lambda img: img}  # IdentityNet resizes [-1, 1] images of any size itself


def _default_model(backbone, device):
    if backbone == "arcface":
        return load_arcface(device=device)
    if backbone == "facenet":
        return load_facenet(device=device)
    from .models import load_identity_net  # the shipped SynthFaces identity net
    return load_identity_net(device=device)


class IDLoss(nn.Module):
    """1 − cos(embed(img), embed(ref)) per image, shape [B]; the caller reduces (StyleCLIP takes the mean).

    `model` is the embedding net for `backbone` (loaded from the registry / SynthFaces weights when None).
    It is frozen (eval mode, requires_grad False) in place and kept in eval mode even if the loss module is
    put in train mode: BatchNorm1d in train mode fails on a batch of one, and running stats must not move."""

    def __init__(self, backbone="arcface", model=None, device="cpu"):
        super().__init__()
        if backbone not in BACKBONES:
            raise ValueError(f"unknown identity backbone {backbone!r}; choose from {', '.join(BACKBONES)}")
        self.backbone = backbone
        self.preprocess = _PREPROCESS[backbone]
        self.model = (model if model is not None else _default_model(backbone, device)).eval().requires_grad_(False)

    def train(self, mode=True):
        super().train(mode)
        self.model.eval()
        return self

    def embed(self, img):
        # normalising again is a no-op for these nets, but makes the dot product below a cosine for any model
        return F.normalize(self.model(self.preprocess(img)), dim=1)

    @torch.no_grad()
    def reference(self, img_ref):
        """Embedding of the reference images, without grad: compute it once and pass it to forward."""
        return self.embed(img_ref)

    def forward(self, img, ref):
        """`ref`: reference images [B or 1, 3, H, W] (embedded here without grad) or embeddings from
        `reference` [B or 1, D]. A single reference broadcasts over the batch."""
        if ref.dim() == 4:
            ref = self.reference(ref)
        return 1 - (self.embed(img) * ref).sum(dim=1)
