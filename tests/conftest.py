"""Tiny seeded components (as diffusers' `get_dummy_components`): every model of the pipeline at a size that
runs on CPU in milliseconds, deterministic from a seed, and a SynthFaces weights folder made of them that
the zoo, the recipes and the notebooks load like the shipped one.

    G = dummy_generator()                   # StyleGAN2 at 32 px
    clip_model = dummy_clip()               # clip.model.CLIP, ResNet tower at 32 px
    judge, id_net = dummy_classifier(), dummy_identity_net()
    tiny_weights                            # fixture: a folder with the four models and their records
"""
from pathlib import Path

import pytest
import torch

from styleclip_utils.data.attributes import ALL_ATTRIBUTES, FACE_SHAPE, IDENTITY_TRAITS
from styleclip_utils.data.render import MEASURES
from styleclip_utils.models.nets import (AttributeClassifier, ConvNetConfig, IdentityJudge, IdentityNet, MeasureJudge,
                                        RealismJudge, SmallCLIPConfig, small_clip)
from styleclip_utils.models.e4e import E4E, E4EConfig
from styleclip_utils.train.stylegan2 import GANConfig
from styleclip_utils.weights import zoo

DATA = Path(__file__).parent / "data"
TINY_GAN = GANConfig(size=32, style_dim=32, n_mlp=2, channels={4: 16, 8: 16, 16: 16, 32: 8}, batch=4)
TINY_CLIP = SmallCLIPConfig(embed_dim=32, image_resolution=32, vision_layers=(1, 1, 1, 1), vision_width=8,
                            context_length=32, transformer_width=32, transformer_heads=2, transformer_layers=1)
TINY_NET = dict(in_size=32, width=4)


def dummy_generator(seed=0):
    torch.manual_seed(seed)
    G = TINY_GAN.generator()
    G.set_w_avg(G.mean_latent(256, seed=seed))
    return G.eval().requires_grad_(False)


def dummy_clip(seed=0):
    torch.manual_seed(seed)
    return small_clip(TINY_CLIP).eval().requires_grad_(False)


def dummy_classifier(seed=0):
    torch.manual_seed(seed)
    return AttributeClassifier(ConvNetConfig(out_dim=len(ALL_ATTRIBUTES), **TINY_NET), list(ALL_ATTRIBUTES)).eval()


def dummy_identity_net(seed=0):
    torch.manual_seed(seed)
    return IdentityNet(ConvNetConfig(out_dim=16, **TINY_NET)).eval()


def save_dummy_weights(root, seed=0):
    """The four SynthFaces models, random and tiny, saved as the zoo stores them (records included)."""
    from dataclasses import asdict

    G, clip_model = dummy_generator(seed), dummy_clip(seed)
    judge, id_net = dummy_classifier(seed), dummy_identity_net(seed)
    common = dict(seed=seed, steps=0, note="random weights of tests/conftest.py")
    sd = {f"g_ema.{k}": v for k, v in G.state_dict().items()}
    sd["latent_avg"] = G.w_avg
    zoo.save_model("generator", sd, dict(common, config=dict(asdict(TINY_GAN), channels={
        str(k): v for k, v in TINY_GAN.channels.items()}), metrics={}), root=root)
    zoo.save_model("clip", clip_model.state_dict(), dict(common, config=asdict(TINY_CLIP), metrics={}), root=root,
                   half=("token_embedding.weight",))
    zoo.save_model("classifier", judge.state_dict(), dict(common, config=asdict(judge.cfg),
                                                           attributes=judge.attribute_names, metrics={}), root=root)
    zoo.save_model("identity", id_net.state_dict(), dict(common, config=asdict(id_net.cfg),
                                                          metrics=dict(threshold=0.5)), root=root)
    id_judge, realism = dummy_identity_judge(seed), dummy_realism_judge(seed)
    zoo.save_model("identity_judge", id_judge.state_dict(), dict(
        common, config=asdict(id_judge.cfg), traits=id_judge.traits, n_shape=id_judge.n_shape,
        metrics=dict(traits_used=["sex", "age", "shape"], shape_tolerance=0.5)), root=root)
    zoo.save_model("realism", realism.state_dict(), dict(common, config=asdict(realism.cfg),
                                                          metrics=dict(threshold=0.0)), root=root)
    encoder = dummy_encoder(G, seed)
    zoo.save_model("encoder", encoder.state_dict(), dict(common, config=asdict(encoder.cfg), recipe="e4e", wall_time_s=0,
                                                          device_name="cpu", metrics={}), root=root)
    save_dummy_mappers(root, G, clip_model, seed=seed)
    measure = dummy_measure_judge(seed)
    zoo.save_model("measure_judge", measure.state_dict(), dict(common, config=asdict(measure.cfg),
                                                                measures=measure.measures, metrics={}), root=root)
    G2 = dummy_generator(seed + 1)   # the two-domain generator's stand-in
    sd = {f"g_ema.{k}": v for k, v in G2.state_dict().items()}
    sd["latent_avg"] = G2.w_avg
    zoo.save_model("generator_both", sd, dict(common, config=dict(asdict(TINY_GAN), channels={
        str(k): v for k, v in TINY_GAN.channels.items()}), metrics={}), root=root)
    return Path(root)


def dummy_measure_judge(seed=0):
    torch.manual_seed(seed)
    return MeasureJudge(ConvNetConfig(out_dim=len(MEASURES) + 1, **TINY_NET), MEASURES).eval()


DUMMY_MAPPER_PROMPTS = ("red hair", "smiling")


def save_dummy_mappers(root, G, clip_model, prompts=DUMMY_MAPPER_PROMPTS, seed=0):
    """Tiny random mappers for `prompts` and a conditioned one, stored as scripts/train_mappers.sh exports them."""
    from dataclasses import asdict

    from styleclip_utils.models.mapper import ConditionedMapper, LevelsMapper, MapperConfig, mapper_slug

    torch.manual_seed(seed)
    cfg = MapperConfig(dim=G.style_dim, hidden=8)
    curve = dict(step=[10, 20], loss_clip=[0.9, 0.8], loss_l2_latent=[0.0, 0.01], loss_id=[0.0, 0.1], loss=[0.9, 0.81])
    common = dict(seed=seed, steps=20, wall_time_s=1, curve=curve, config=asdict(cfg), alpha=1.0, metrics={},
                  note="random weights of tests/conftest.py")
    for p in prompts:
        zoo.save_model(f"mappers/{mapper_slug(p)}", LevelsMapper(cfg).state_dict(), dict(common, prompt=p), root=root)
    C = ConditionedMapper(cfg, clip_model.text_projection.shape[1])
    zoo.save_model("mappers/conditioned", C.state_dict(), dict(common, texts=list(prompts), held_out_texts=["ginger hair"],
                                                               text_dim=C.text_dim), root=root)


TINY_E4E = dict(stage_units=(1, 1, 1, 1), widths=(16, 24, 32, 48), block_width=16)


def dummy_encoder(G, seed=0):
    """A tiny random e4e encoder for the tiny generator G (32 px, its rows and style size)."""
    torch.manual_seed(seed)
    return E4E(E4EConfig(in_size=G.size, n_styles=G.n_latent, style_dim=G.style_dim, **TINY_E4E),
               latent_avg=G.w_avg).eval()


def dummy_identity_judge(seed=0):
    torch.manual_seed(seed)
    out_dim = sum(map(len, IDENTITY_TRAITS.values())) + len(FACE_SHAPE)
    return IdentityJudge(ConvNetConfig(out_dim=out_dim, **TINY_NET), IDENTITY_TRAITS, len(FACE_SHAPE)).eval()


def dummy_realism_judge(seed=0):
    torch.manual_seed(seed)
    return RealismJudge(ConvNetConfig(out_dim=1, **TINY_NET), threshold=0.0).eval()


@pytest.fixture(scope="session")
def tiny_weights(tmp_path_factory):
    """A SynthFaces weights folder of tiny random models (read-only by convention: copy it to change it)."""
    return save_dummy_weights(tmp_path_factory.mktemp("tiny_weights"))


@pytest.fixture(scope="session")
def official_files(tmp_path_factory):
    """Random weights in the official layouts (tests/official_files.py), written once per session (~10 s)."""
    from official_files import write_official_files

    return write_official_files(tmp_path_factory.mktemp("official"))


def write_recipe(path, text):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


# A classifier recipe small enough to train in a second: the wiring, not the quality, is what tests check.
TINY_CLASSIFIER_RECIPE = """
model = "classifier"
steps = 3
precision = "fp32"
[data]
n_images = 200
size = 32
[config]
width = 4
[train]
batch = 16
"""
