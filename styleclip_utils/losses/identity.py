"""Identity backbones and the identity loss of StyleCLIP / e4e.

Three embedding nets, one interface (image in [-1, 1] -> L2-normalised embedding):
- ArcFace IR-SE50 (`model_ir_se50.pth`, TreB1eN's layout), the net behind StyleCLIP's and e4e's IDLoss.
  `models.arcface.Backbone` is key-for-key compatible with that file.
- facenet-pytorch's InceptionResnetV1 with the VGGFace2 weights (`20180402-114759-vggface2.pt`).
- the SynthFaces `IdentityNet` (models/nets.py), which stands in for both on the SynthFaces world.

    id_loss = IDLoss("arcface")                 # loads model_ir_se50.pth through the registry
    ref = id_loss.reference(img_orig)           # embed the source once, without grad
    loss = id_loss(img_edit, ref).mean()        # per-image 1 - cos; StyleCLIP uses the mean
"""
import torch
import torch.nn.functional as F
from torch import nn

from .clip_loss import refuse_judge
from ..weights.official import FACENET_SIZE, load_arcface, load_facenet
from ..weights.zoo import load_identity_net

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
    return load_identity_net(device=device)  # the shipped SynthFaces identity net


class IDLoss(nn.Module):
    """1 − cos(embed(img), embed(ref)) per image, shape [B]; the caller reduces (StyleCLIP takes the mean).

    `model` is the embedding net for `backbone` (loaded from the registry / SynthFaces weights when None).
    It is frozen (eval mode, requires_grad False) in place and kept in eval mode even if the loss module is
    put in train mode: BatchNorm1d in train mode fails on a batch of one, and running stats must not move."""

    def __init__(self, backbone="arcface", model=None, device="cpu"):
        super().__init__()
        if backbone not in BACKBONES:
            raise ValueError(f"unknown identity backbone {backbone!r}; choose from {', '.join(BACKBONES)}")
        if model is not None:
            refuse_judge(model, "IDLoss")
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

