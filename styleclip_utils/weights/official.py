"""Loaders of the real pipeline's files in their exact formats: a registry name (cached or downloaded) or
the path of a user's own file. Each asserts the structure it reads (`checkpoints.check_state_dict`) and
returns a frozen model in eval mode.

    G = load_stylegan2("stylegan2-ffhq-config-f")   # rosinality .pt, e4e / mapper files, safetensors
    clip_model = load_vit_b32()                    # OpenAI's ViT-B/32 TorchScript archive, or a state dict
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
from .registry import ChecksumError, MissingWeightsError, _shown, local_path, resolve


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
        # [style_dim] (rosinality) or [n_latent, style_dim] (e4e, mappers); anything else is another model's
        shape = tuple(getattr(latent_avg, "shape", ()))
        if shape not in ((G.style_dim,), (G.n_latent, G.style_dim)):
            raise CheckpointError(f"{path}: latent_avg has shape {shape}, but this {G.size} px generator needs "
                                  f"[{G.style_dim}] or [{G.n_latent}, {G.style_dim}]: the file mixes two models")
        G.set_w_avg(latent_avg)
    return G.eval().requires_grad_(False).to(device)


VIT_B32 = dict(embed_dim=512, image_resolution=224, vision_layers=12, vision_width=768, vision_patch_size=32,
               context_length=77, vocab_size=49408, transformer_width=512, transformer_heads=8,
               transformer_layers=12)


def clip_config(sd):
    """clip.model.CLIP kwargs from a ViT CLIP state dict's keys and shapes (clip.model.build_model's rules)."""
    try:
        width = sd["visual.conv1.weight"].shape[0]
        patch = sd["visual.conv1.weight"].shape[-1]
        grid = round((sd["visual.positional_embedding"].shape[0] - 1) ** 0.5)
        layers = lambda prefix: len({k[len(prefix):].split(".")[1] for k in sd if k.startswith(prefix + ".")})  # noqa: E731
        return dict(embed_dim=sd["text_projection"].shape[1], image_resolution=patch * grid,
                    vision_layers=layers("visual.transformer.resblocks"), vision_width=width,
                    vision_patch_size=patch, context_length=sd["positional_embedding"].shape[0],
                    vocab_size=sd["token_embedding.weight"].shape[0],
                    transformer_width=sd["ln_final.weight"].shape[0],
                    transformer_heads=sd["ln_final.weight"].shape[0] // 64,
                    transformer_layers=layers("transformer.resblocks"))
    except (KeyError, IndexError, AttributeError) as e:
        raise CheckpointError(f"not an OpenAI CLIP ViT state dict (missing {e}); ResNet CLIPs are not "
                              f"supported, StyleCLIP uses ViT-B/32") from e


def _is_torchscript(path):
    """A TorchScript archive is a zip holding the model's code (`<name>/code/...`) and `constants.pkl`."""
    import zipfile
    try:
        with zipfile.ZipFile(path) as z:
            return any(n.endswith("constants.pkl") or "/code/" in n for n in z.namelist())
    except (zipfile.BadZipFile, OSError):
        return False


def load_vit_b32(name_or_path="clip-vit-b-32", device="cpu", **fetch_kwargs):
    """CLIP ViT-B/32 -> frozen clip.model.CLIP in float32, eval mode.

    `name_or_path`: the registry name (OpenAI's TorchScript archive, cached or downloaded) or a path to the
    archive or to a state dict (`torch.save(model.state_dict())`: a re-saved or fine-tuned CLIP). The
    architecture is read from the shapes, so another ViT CLIP (B/16, L/14) loads too, with a note."""
    import clip
    import torch

    path = resolve(name_or_path, published="clip-vit-b-32", **fetch_kwargs)
    if _is_torchscript(path):  # OpenAI's files: TorchScript archives, read without unpickling Python objects
        try:
            with warnings.catch_warnings():  # torch.jit.load is deprecated, but it is how these files are read
                warnings.simplefilter("ignore", FutureWarning)
                sd = torch.jit.load(str(path), map_location="cpu").state_dict()
        except RuntimeError as e:
            raise CheckpointError(f"{path} is a damaged TorchScript archive ({str(e).splitlines()[0]}): a cut "
                                  f"download or copy. Fetch it again.") from e
    else:  # a state dict saved with torch.save (re-saved, fine-tuned)
        sd = load_checkpoint(path)
        if isinstance(sd, dict) and isinstance(sd.get("state_dict"), dict):
            sd = sd["state_dict"]
    if not isinstance(sd, dict):
        raise CheckpointError(f"{path}: expected a CLIP state dict or TorchScript archive, got {type(sd).__name__}")
    sd = {k: v for k, v in sd.items() if k not in ("input_resolution", "context_length", "vocab_size")}
    cfg = clip_config(sd)
    if cfg != VIT_B32:
        print(f"note: {path} is a CLIP of another size than ViT-B/32 ({cfg}); StyleCLIP's numbers are for ViT-B/32")
    model = clip.model.CLIP(**cfg)
    check_state_dict(model, sd, what=f"CLIP file {path}")
    model.load_state_dict({k: v.float() for k, v in sd.items()})  # archives hold float16: compute in float32
    return model.eval().requires_grad_(False).to(device)


def load_arcface(name_or_path="arcface-ir-se50", device="cpu", **fetch_kwargs):
    """A registry name or a path to model_ir_se50.pth (a bare state dict) -> frozen Backbone in eval mode."""
    path = resolve(name_or_path, published="arcface-ir-se50", **fetch_kwargs)
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
    path = resolve(name_or_path, published="facenet-vggface2", **fetch_kwargs)
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


def load_lpips(name_or_path="lpips-alexnet", device="cpu", **fetch_kwargs):
    """LPIPS(net='alex') with its AlexNet backbone (registry name or path); None, with a one-line hint,
    when that file is missing, cut or wrong: a metric never stops a notebook. lpips itself would download
    the backbone at run time, so the model is built with a random backbone and the weights are copied in."""
    import lpips
    import torchvision

    alex = torchvision.models.alexnet()
    try:
        path = resolve(name_or_path, **fetch_kwargs)
        sd = load_checkpoint(path)
        if not isinstance(sd, dict):
            raise CheckpointError(f"{path} is not an AlexNet state dict")
        check_state_dict(alex, sd, what=f"AlexNet file {path}")
    except (MissingWeightsError, ChecksumError, CheckpointError) as e:
        reason = {MissingWeightsError: "its AlexNet backbone is not there", ChecksumError: "its AlexNet backbone "
                  "file is cut or not the published one"}.get(type(e), "its AlexNet backbone file is unreadable")
        print(f"LPIPS: n/a, {reason}. To measure it, put alexnet-owt-7be5be79.pth "
              f"(https://download.pytorch.org/models/alexnet-owt-7be5be79.pth) at "
              f"{_shown(local_path('lpips-alexnet', fetch_kwargs.get('root')))}")
        return None
    alex.load_state_dict(sd)
    with warnings.catch_warnings():  # lpips still passes torchvision's deprecated `pretrained=` argument
        warnings.filterwarnings("ignore", category=UserWarning, module="torchvision")
        model = lpips.LPIPS(net="alex", pnet_rand=True, verbose=False)
    for k in range(1, 6):  # lpips' slices keep torchvision's feature indices as module names
        for name, module in getattr(model.net, f"slice{k}").named_children():
            module.load_state_dict(alex.features[int(name)].state_dict())
    return model.eval().requires_grad_(False).to(device)


# -----------------------------------------------------------------------------
# e4e (encoder4editing)

def infer_e4e_config(sd):
    """E4EConfig from an encoder state dict's keys and shapes (`encoder.` prefix stripped)."""
    from ..models.e4e import E4EConfig
    try:
        n_styles = len({k.split(".")[1] for k in sd if k.startswith("styles.")})
        n_convs = [len([k for k in sd if k.startswith(f"styles.{i}.convs.") and k.endswith(".weight")])
                   for i in range(n_styles)]
        widths_of_units = [sd[f"body.{i}.res_layer.1.weight"].shape[0]
                           for i in range(len({k.split(".")[1] for k in sd if k.startswith("body.")}))]
        units, widths = [], []
        for w in widths_of_units:  # a stage is a run of units of one width
            if widths and widths[-1] == w:
                units[-1] += 1
            else:
                units.append(1)
                widths.append(w)
        coarse = next((i for i, n in enumerate(n_convs) if n > n_convs[0]), n_styles)
        middle = next((i for i, n in enumerate(n_convs) if n > n_convs[0] + 1), n_styles)
        return E4EConfig(in_size=16 * 2 ** n_convs[0], n_styles=n_styles, style_dim=sd["styles.0.linear.weight"].shape[0],
                         stage_units=tuple(units), widths=tuple(widths),
                         block_width=sd["styles.0.convs.0.weight"].shape[0], coarse_ind=coarse, middle_ind=middle)
    except (KeyError, IndexError, ValueError) as e:
        raise CheckpointError(f"not an e4e encoder state dict ({e})") from e


def load_e4e(name_or_path="e4e-ffhq-encode", device="cpu", with_generator=False, note=True, **fetch_kwargs):
    """An e4e encoder -> frozen E4E (encoder + latent_avg) in eval mode; with_generator=True: (E4E, G) when the
    file holds the generator it was trained for (the official file's decoder), else (E4E, None).

    Layouts: the official `e4e_ffhq_encode.pt` ({"state_dict": {"encoder.*", "decoder.*"}, "latent_avg":
    [18, 512], "opts"}); a SynthFaces export (flat `encoder.*` + `latent_avg`, safetensors); a training run's
    `checkpoint.pt` (modules.encoder). The configuration is read from the keys. note=False: no note that a
    path is not the published FFHQ file (the SynthFaces encoder is not meant to be)."""
    import torch

    from ..models.e4e import E4E

    path = resolve(name_or_path, published="e4e-ffhq-encode" if note else None, **fetch_kwargs)
    ckpt = load_checkpoint(path)
    if isinstance(ckpt, dict) and isinstance(ckpt.get("modules"), dict) and "encoder" in ckpt["modules"]:
        ckpt = ckpt["modules"]["encoder"]  # a training checkpoint
    if not isinstance(ckpt, dict):
        raise CheckpointError(f"{path}: expected an e4e checkpoint (a dict), got {type(ckpt).__name__}")
    flat = ckpt["state_dict"] if isinstance(ckpt.get("state_dict"), dict) else ckpt
    enc = {k[len("encoder."):]: v for k, v in flat.items() if k.startswith("encoder.")}
    if not enc:
        raise CheckpointError(f"{path} holds no encoder (no 'encoder.*' keys): is it a generator or a mapper file? "
                              f"top-level keys: {sorted(map(str, ckpt))[:12]}")
    latent_avg = ckpt.get("latent_avg", flat.get("latent_avg"))
    cfg = infer_e4e_config(enc)
    model = E4E(cfg)
    check_state_dict(model.encoder, enc, what=f"e4e encoder in {path}")
    model.encoder.load_state_dict({k: v.float() for k, v in enc.items()})
    if latent_avg is None:
        raise CheckpointError(f"{path} has no latent_avg: e4e's codes are offsets from it, so the file cannot be used")
    if tuple(latent_avg.shape) not in ((cfg.style_dim,), (cfg.n_styles, cfg.style_dim)):
        raise CheckpointError(f"{path}: latent_avg has shape {tuple(latent_avg.shape)}, the encoder writes "
                              f"[{cfg.n_styles}, {cfg.style_dim}]")
    model.latent_avg.copy_(torch.as_tensor(latent_avg).float().expand(cfg.n_styles, cfg.style_dim))
    model = model.eval().requires_grad_(False).to(device)
    if not with_generator:
        return model
    G = None
    if any(k.startswith("decoder.") for k in flat):
        G = load_stylegan2(path, device=device)
        if G.n_latent != cfg.n_styles:
            raise CheckpointError(f"{path}: the encoder writes {cfg.n_styles} rows, its decoder reads {G.n_latent}")
    return model, G


def load_mapper(path, device="cpu", with_generator=False):
    """A StyleCLIP latent mapper (models.mapper.LevelsMapper) from an official checkpoint ({"state_dict":
    {"mapper.*", "decoder.*"}, "opts"}), a bare mapper state dict, or a SynthFaces export (safetensors). The
    levels present are read from the keys (a mapper trained with no_fine_mapper has no `fine_mapping.*`), and
    every key and shape is checked. with_generator=True also returns the file's decoder (None if it has none)."""
    from ..models.mapper import LevelsMapper, infer_mapper_config

    path = resolve(path)
    ckpt = load_checkpoint(path)
    if not isinstance(ckpt, dict):
        raise CheckpointError(f"{path}: expected a mapper checkpoint (a dict), got {type(ckpt).__name__}")
    flat = ckpt["state_dict"] if isinstance(ckpt.get("state_dict"), dict) else ckpt
    sd = {k[len("mapper."):]: v for k, v in flat.items() if k.startswith("mapper.")} or \
        {k: v for k, v in flat.items() if k.split(".")[0] in ("course_mapping", "medium_mapping", "fine_mapping")}
    if not sd:
        raise CheckpointError(f"{path} holds no latent mapper (no 'mapper.*' keys): is it an e4e or a generator file? "
                              f"keys: {sorted(map(str, flat))[:12]}")
    try:
        cfg = infer_mapper_config(sd)
    except ValueError as e:
        raise CheckpointError(f"{path}: {e}") from e
    model = LevelsMapper(cfg)
    check_state_dict(model, sd, what=f"latent mapper in {path}")
    model.load_state_dict({k: v.float() for k, v in sd.items()})
    model = model.eval().requires_grad_(False).to(device)
    if not with_generator:
        return model
    return model, (load_stylegan2(path, device=device) if any(k.startswith("decoder.") for k in flat) else None)
