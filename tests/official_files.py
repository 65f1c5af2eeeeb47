"""Deterministic random weights in the official layouts, written the way a user has them on disk: the FFHQ
StyleGAN2 (config-f at 256 px, the manifest's keys and shapes, with latent_avg), CLIP ViT-B/32 (a state dict
in float16, as OpenAI's archive stores it) and ArcFace IR-SE50 (a bare state dict, the manifest's layout).
Only the values are made up; every loader sees exactly what the real files hold."""
import json
import math
from pathlib import Path

import torch

DATA = Path(__file__).parent / "data"


def manifest(name):
    return json.loads((DATA / name).read_text())["state_dict_shapes"]


def stylegan2_config_f_256(seed=0):
    """{"g_ema", "latent_avg"} of a 256 px config-f generator, initialised as StyleGAN2 trains from."""
    from styleclip_utils.models.stylegan2 import Generator

    torch.manual_seed(seed)
    G = Generator(size=256, style_dim=512, n_mlp=8)
    sd = G.state_dict()
    assert {k: list(v.shape) for k, v in sd.items()} == manifest("stylegan2_config_f_256_manifest.json")
    return {"g_ema": sd, "latent_avg": G.mean_latent(1024, seed=seed)}


def arcface_ir_se50(seed=0):
    """A state dict with exactly the manifest's keys and shapes, with values a trained net could have: fan-in
    scaled weights and BN stats away from their defaults, so every buffer matters and nothing blows up."""
    g = torch.Generator().manual_seed(seed)
    sd = {}
    for k, shape in manifest("arcface_irse50_manifest.json").items():
        if k.endswith("num_batches_tracked"):
            sd[k] = torch.tensor(100)
        elif k.endswith("running_var"):
            sd[k] = torch.rand(shape, generator=g) + 0.5
        elif k.endswith(("running_mean", "bias")):
            sd[k] = 0.1 * torch.randn(shape, generator=g)
        elif len(shape) == 1:  # BatchNorm / PReLU weight
            sd[k] = 1 + 0.1 * torch.randn(shape, generator=g)
        else:
            sd[k] = torch.randn(shape, generator=g) / math.sqrt(math.prod(shape[1:]))
    return sd


def clip_vit_b32(seed=0):
    """clip.model.CLIP with ViT-B/32's published hyper-parameters, its state dict in float16."""
    import clip

    from styleclip_utils.weights.official import VIT_B32

    torch.manual_seed(seed)
    return {k: v.half() for k, v in clip.model.CLIP(**VIT_B32).state_dict().items()}


def write_official_files(folder, seed=0):
    """The files in `folder` -> {"generator", "e4e", "mapper", "clip", "arcface"}: paths."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = dict(generator=folder / "stylegan2-config-f-256.pt", clip=folder / "ViT-B-32-resaved.pt",
                 arcface=folder / "model_ir_se50-resaved.pth")
    generator = stylegan2_config_f_256(seed)
    torch.save(generator, paths["generator"])
    paths["e4e"] = write_e4e_file(folder / "e4e-small-256.pt", generator, seed)
    paths["mapper"] = write_mapper_file(folder / "mapper-afro.pt", generator, seed)
    torch.save(clip_vit_b32(seed), paths["clip"])
    torch.save(arcface_ir_se50(seed), paths["arcface"])
    return paths


def write_mapper_file(path, generator_ckpt, seed=0):
    """A StyleCLIP mapper checkpoint in the official layout ({"state_dict": mapper.* and decoder.*, "opts"}) for
    the 256 px generator: the official LevelsMapper (4 x 512-wide layers per level)."""
    from styleclip_utils.models.mapper import LevelsMapper, MapperConfig

    torch.manual_seed(seed)
    sd = {f"mapper.{k}": v for k, v in LevelsMapper(MapperConfig(dim=512)).state_dict().items()}
    sd.update({f"decoder.{k}": v for k, v in generator_ckpt["g_ema"].items()})
    torch.save({"state_dict": sd, "opts": {"description": "afro", "stylegan_size": 256}}, path)
    return path


def write_e4e_file(path, generator_ckpt, seed=0):
    """An e4e file in the official layout (`state_dict` with `encoder.*` and `decoder.*`, `latent_avg`
    [n_latent, 512], `opts`) for the 256 px generator: the official encoder's structure at a small width (the
    full IR-SE50 encoder is 267 M parameters; its key layout is checked against the manifest in test_e4e)."""
    from styleclip_utils.models.e4e import E4E, E4EConfig

    torch.manual_seed(seed)
    g = generator_ckpt["g_ema"]
    n_latent = 2 * int(math.log2(256)) - 2
    E = E4E(E4EConfig(in_size=256, n_styles=n_latent, style_dim=512, stage_units=(1, 1, 1, 1), widths=(16, 24, 32, 48),
                      block_width=16), latent_avg=generator_ckpt["latent_avg"])
    sd = {f"encoder.{k}": v for k, v in E.encoder.state_dict().items()}
    sd.update({f"decoder.{k}": v for k, v in g.items()})
    torch.save({"state_dict": sd, "latent_avg": E.latent_avg.clone(), "opts": {"stylegan_size": 1024}}, path)
    return path
