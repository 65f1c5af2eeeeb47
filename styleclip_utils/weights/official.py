"""Loaders of the real pipeline's files in their exact formats: a registry name (cached or downloaded) or
the path of a user's own file. Each asserts the structure it reads (`checkpoints.check_state_dict`) and
returns a frozen model in eval mode.

    G = load_stylegan2("stylegan2-ffhq-config-f")   # rosinality .pt, e4e / mapper files, safetensors
    clip_model = load_vit_b32()                    # OpenAI's ViT-B/32 TorchScript archive
    id_net = load_arcface()                        # model_ir_se50.pth (TreB1eN layout)
    id_net = load_facenet()                        # facenet-pytorch's VGGFace2 InceptionResnetV1
    lpips_fn = load_lpips()                        # LPIPS(alex) with torchvision's AlexNet backbone
"""
import warnings

from torch import nn

from ..models.arcface import Backbone
from ..models.stylegan2 import Generator
from .checkpoints import (CheckpointError, check_state_dict, generator_state, infer_generator_config,
                          load_checkpoint)
from .registry import MissingWeightsError, fetch, resolve


def load_stylegan2(name_or_path, device="cpu", **fetch_kwargs):
    """A registry name or a path -> Generator in eval mode with its average w set (when the file has one).

    Example: G = load_stylegan2("stylegan2-ffhq-config-f"); G = load_stylegan2("e4e_ffhq_encode.pt").
    """
    path = resolve(name_or_path, **fetch_kwargs)
    sd, latent_avg = generator_state(load_checkpoint(path))
    cfg = infer_generator_config(sd)
    G = Generator(**cfg)
    check_state_dict(G, sd, what=str(path))
    G.load_state_dict(sd)
    if latent_avg is not None:
        G.set_w_avg(latent_avg)
    return G.eval().requires_grad_(False).to(device)


def load_vit_b32(device="cpu", **fetch_kwargs):
    """The real CLIP ViT-B/32 from the registry's cache (clip.load reads the TorchScript archive's weights)."""
    import clip

    model, _ = clip.load(str(fetch("clip-vit-b-32", **fetch_kwargs)), device=device, jit=False)
    return model.float().eval().requires_grad_(False)


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


def load_lpips(device="cpu", **fetch_kwargs):
    """LPIPS(net='alex') with its AlexNet backbone from the registry's cache; None (with the reason printed)
    when that file is not available. lpips itself would download the backbone at run time, so the model is
    built with a random backbone and the registry's weights are copied in."""
    import lpips
    import torchvision

    try:
        path = fetch("lpips-alexnet", **fetch_kwargs)
    except MissingWeightsError as e:
        print(f"LPIPS unavailable, reported as n/a: {e}")
        return None
    alex = torchvision.models.alexnet()
    alex.load_state_dict(load_checkpoint(path))
    with warnings.catch_warnings():  # lpips still passes torchvision's deprecated `pretrained=` argument
        warnings.filterwarnings("ignore", category=UserWarning, module="torchvision")
        model = lpips.LPIPS(net="alex", pnet_rand=True, verbose=False)
    for k in range(1, 6):  # lpips' slices keep torchvision's feature indices as module names
        for name, module in getattr(model.net, f"slice{k}").named_children():
            module.load_state_dict(alex.features[int(name)].state_dict())
    return model.eval().requires_grad_(False).to(device)
