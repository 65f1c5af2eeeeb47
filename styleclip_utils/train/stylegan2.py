"""Train a StyleGAN2 (the rosinality-compatible Generator/Discriminator of `stylegan2.py`) on a folder of
faces: non-saturating loss, lazy R1, EMA generator, style-mixing regularisation; path-length
regularisation and horizontal-flip augmentation optional. The result (`g_ema` + `latent_avg`) loads
through the same loader as a real checkpoint.

Optional vision-aided discriminator (`clip_d` > 0; Kumari et al., "Ensembling Off-the-shelf Models for GAN
Training", CVPR 2022): a small trainable head on a frozen CLIP image tower's embedding is a second D. In
CLIP's space "has a mohawk" is one direction, so the head tells at once that real faces have mohawks more
often than fakes, and its gradient sends G back to the modes it dropped; the pixel D has to discover that
from pixels. Both reals and fakes go through the same random crop/mirror before CLIP, so G cannot win by
fooling one exact framing of a small CLIP (the paper uses DiffAugment for the same reason).

Optional feature matching on the same frozen CLIP (`clip_fm` > 0; Salimans et al., "Improved Techniques for
Training GANs", 2016, with a fixed feature network instead of D's): G is pulled so that the mean CLIP embedding
of its faces is the data's. A face attribute is close to one direction in CLIP's space, so the mean embedding
says how often each attribute occurs, and the pull is the same every step: it does not swing with an
adversary the way the head's does. The data's mean is a running average over all real batches seen (a
buffer of the run); the batch estimate of the squared distance is the unbiased one (pairs i != j), because
|mean - mu|^2 of a batch also counts the batch's own spread and would reward G for making its faces alike.

The hyper-parameters follow rosinality's train.py, with R1's gamma scaled for small images.
"""
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from ..weights.checkpoints import check_state_dict, generator_state, load_checkpoint
from ..models.stylegan2 import Discriminator, Generator
from ..device import autocast, check_precision
from .gan_loss import (CLIPHead, d_logistic_loss, g_nonsaturating_loss, mean_feature_distance, path_length_penalty,
                       r1_penalty)
from .. import dist
from .loop import Trainer, atomic_save, batch_at


@dataclass
class GANConfig:
    size: int = 64
    style_dim: int = 256
    n_mlp: int = 4
    channels: dict = field(default_factory=lambda: {4: 256, 8: 256, 16: 256, 32: 128, 64: 64})
    batch: int = 32
    lr: float = 0.0025
    r1_gamma: float = 0.1       # NVIDIA's heuristic 2e-4·res²/batch ≈ 0.03 at 64 px; a bit more is safer
    d_reg_every: int = 16       # lazy regularisation: R1 every 16 D steps, scaled by 16
    pl_weight: float = 0.0      # path-length regularisation (2.0 in the paper); off by default at 64 px
    g_reg_every: int = 4
    mixing_prob: float = 0.9
    ema_kimg: float = 10.0      # EMA half-life in thousands of images
    ema_rampup: float = 0.05    # early on, half-life <= 5% of the images seen (StyleGAN2-ADA); 0 = off
    flip: bool = True           # x-flip augmentation of the real images
    d_warmup: int = 0           # first steps train D alone (G frozen): a fresh D for a generator given as `init`
    precision: str = "fp32"     # "bf16": G and D forward passes in bfloat16 (R1 and path length stay fp32)
    clip_d: float = 0.0         # weight of the vision-aided D on a frozen CLIP (module docstring); 0 = off
    clip_fm: float = 0.0        # weight of matching the data's mean CLIP embedding (module docstring); 0 = off

    def __post_init__(self):
        check_precision(self.precision)

    def generator(self):
        return Generator(self.size, self.style_dim, self.n_mlp, channels=self.channels)


def _recorded(cfg):
    # An option added later, at its off value, is left out: checkpoints written before it resume as before.
    return {k: v for k, v in asdict(cfg).items() if not (k in ("clip_d", "clip_fm") and v == 0)}


def _adam(params, lr, reg_every):
    # Lazy regularisation runs every `reg_every` steps: scale lr and betas so the effective optimiser is
    # the same as with the regulariser every step (StyleGAN2 paper, appendix B).
    ratio = reg_every / (reg_every + 1) if reg_every else 1.0
    return torch.optim.Adam(params, lr=lr * ratio, betas=(0.0, 0.99 ** ratio))


def _fake_ws(G, batch, mixing_prob, device):
    """W+ codes of this rank's slice of a global batch of `batch` fakes (styleclip_utils.dist's rule: drawn
    globally, sliced)."""
    z = dist.shard(torch.randn(batch, G.style_dim, device=device))
    ws = G.broadcast(G.mapping(z))
    if mixing_prob > 0 and torch.rand(()) < mixing_prob:  # style mixing regularisation
        crossover = int(torch.randint(1, G.n_latent, ()))
        ws = G.mix(ws, G.mapping(dist.shard(torch.randn(batch, G.style_dim, device=device))), crossover)
    return ws


def _noise(G, batch):
    """Fresh per-layer noise for this rank's slice of a global batch (what noise_mode="random" draws alone)."""
    return [dist.shard(n) for n in G.make_noise(batch, "random")]


def _real_batch(images, cfg, step, seed, device):
    _, x = batch_at(images, cfg.batch, step, seed, device)
    if cfg.flip:
        flip = dist.rand(len(x)) < 0.5
        x[flip] = x[flip].flip(3)
    return x


def train_stylegan2(images, out_dir, steps, cfg=None, seed=0, device="cpu", ckpt_every=500, log_every=10,
                    progress=True, stop_at=None, stop_by=None, init=None, clip_model=None):
    """images: uint8 tensor [N, 3, size, size]. Returns (G_ema, trainer). Resumes from out_dir if it holds
    a checkpoint of the same config.

    `init`: a generator file (rosinality layout: a real `g_ema` checkpoint or an exported SynthFaces
    generator) to continue from. G and G_ema start as its g_ema; D and the optimisers start fresh, so set
    `cfg.d_warmup` to let D catch up before G moves. This is how training goes on across machines that keep
    only the shipped generator (a full checkpoint with D and Adam's moments stays in runs/). `init` can also
    be such a full checkpoint (another run's `checkpoint.pt`): G and G_ema start as its G_ema and D as its
    D, already a match for that generator, so a run with another recipe starts without a weak fresh D.

    `clip_model`: the frozen `clip.model.CLIP` whose image tower the vision-aided D and the feature matching
    read (cfg.clip_d > 0 or cfg.clip_fm > 0)."""
    cfg = cfg or GANConfig()
    device = torch.device(device)
    if tuple(images.shape[1:]) != (3, cfg.size, cfg.size) or images.dtype != torch.uint8:
        raise ValueError(f"images must be uint8 [N, 3, {cfg.size}, {cfg.size}], got {images.dtype} "
                         f"{tuple(images.shape)}")
    torch.manual_seed(seed)  # identical initial weights for a given seed
    G, G_ema = cfg.generator().to(device), cfg.generator().to(device)
    G.memory_format = torch.channels_last
    run_init = None  # the modules of another run's checkpoint given as `init`
    if init is not None:
        init_state = load_checkpoint(init)
        if isinstance(init_state.get("modules"), dict):      # a Trainer checkpoint of another run
            run_init = init_state["modules"]
            sd = run_init["G_ema"]
        else:
            sd, _ = generator_state(init_state)
        check_state_dict(G, sd, what=f"GAN init {init}")   # it must be this config's generator
        G.load_state_dict(sd)
    G_ema.load_state_dict(G.state_dict())
    G_ema.eval().requires_grad_(False)
    D = Discriminator(cfg.size, channels=cfg.channels).to(device)
    if run_init is not None:  # keep its D (and its vision-aided head, below, when both runs have one)
        check_state_dict(D, run_init["D"], what=f"GAN init {init} (its D)")
        D.load_state_dict(run_init["D"])
    g_opt = _adam(G.parameters(), cfg.lr, cfg.g_reg_every if cfg.pl_weight > 0 else 0)
    d_opt = _adam(D.parameters(), cfg.lr, cfg.d_reg_every)
    stats = torch.nn.Module()  # running statistics that must survive a resume
    stats.register_buffer("pl_mean", torch.zeros((), device=device))
    modules, optimizers = dict(G=G, D=D, G_ema=G_ema, stats=stats), dict(g_opt=g_opt, d_opt=d_opt)
    use_clip = cfg.clip_d > 0 or cfg.clip_fm > 0
    if use_clip:
        if clip_model is None:
            raise ValueError("cfg.clip_d > 0 or cfg.clip_fm > 0 needs clip_model= (a clip.model.CLIP, e.g. "
                             "models.load_clip())")
        clip_model = clip_model.to(device).eval().requires_grad_(False)
    if cfg.clip_fm > 0:  # the data's mean CLIP feature: a running average, saved with the run for exact resume
        stats.register_buffer("clip_real_mean", torch.zeros(clip_model.visual.output_dim, device=device))
        stats.register_buffer("clip_real_batches", torch.zeros((), device=device))
        if run_init is not None and "clip_real_mean" in run_init.get("stats", {}):  # same data: keep its estimate
            for name in ("clip_real_mean", "clip_real_batches"):
                getattr(stats, name).copy_(run_init["stats"][name])
    if cfg.clip_d > 0:
        modules["D_clip"] = D_clip = CLIPHead(clip_model.visual.output_dim).to(device)
        if run_init is not None and "D_clip" in run_init:
            check_state_dict(D_clip, run_init["D_clip"], what=f"GAN init {init} (its CLIP head)")
            D_clip.load_state_dict(run_init["D_clip"])
        optimizers["d_clip_opt"] = _adam(D_clip.parameters(), cfg.lr, 0)
    trainer = Trainer(out_dir, modules, optimizers,
                      dict(kind="stylegan2", **_recorded(cfg), init=Path(init).name if init else None),
                      seed=seed, device=device, ckpt_every=ckpt_every, log_every=log_every, progress=progress)

    def step_fn(step):
        real = _real_batch(images, cfg, step, seed, device)
        losses = {}
        # --- discriminator: softplus(-D(real)) + softplus(D(fake))
        G.requires_grad_(False)
        D.requires_grad_(True)
        with torch.no_grad(), autocast(device, cfg.precision):
            fake = G.synthesis(_fake_ws(G, cfg.batch, cfg.mixing_prob, device), noise=_noise(G, cfg.batch))
        with autocast(device, cfg.precision):
            d_loss = d_logistic_loss(D(real).float(), D(fake).float())
        d_opt.zero_grad(set_to_none=True)
        d_loss.backward()
        d_opt.step()
        losses["d"] = d_loss.item()
        # the crops of this step depend on nothing else, so a resumed run draws the same ones
        crops = torch.Generator().manual_seed(seed * 1_000_003 + step)
        with torch.no_grad(), autocast(device, cfg.precision):  # no gradient through the tower here
            real_f = CLIPHead.features(clip_model, real.detach(), crops).float() if use_clip else None
            fake_f = CLIPHead.features(clip_model, fake, crops).float() if cfg.clip_d > 0 else None
        if cfg.clip_fm > 0:
            stats.clip_real_batches += 1
            stats.clip_real_mean.lerp_(dist.mean(real_f.mean(0)), 1 / stats.clip_real_batches)
        if cfg.clip_d > 0:  # the head learns on fixed CLIP features
            dc_loss = d_logistic_loss(D_clip(real_f), D_clip(fake_f))
            optimizers["d_clip_opt"].zero_grad(set_to_none=True)
            (cfg.clip_d * dc_loss).backward()
            optimizers["d_clip_opt"].step()
            losses["d_clip"] = dc_loss.item()
        if step % cfg.d_reg_every == 0:  # lazy R1 on real images
            r1 = r1_penalty(D, real)
            d_opt.zero_grad(set_to_none=True)
            (cfg.r1_gamma / 2 * r1 * cfg.d_reg_every).backward()
            d_opt.step()
            losses["r1"] = r1.item()
        if step < cfg.d_warmup:  # D alone: G and its EMA stay as given
            return losses
        # --- generator: non-saturating softplus(-D(G(z)))
        G.requires_grad_(True)
        D.requires_grad_(False)
        with autocast(device, cfg.precision):
            fake = G.synthesis(_fake_ws(G, cfg.batch, cfg.mixing_prob, device), noise=_noise(G, cfg.batch))
            g_loss = g_nonsaturating_loss(D(fake).float())
            if use_clip:
                fake_f = CLIPHead.features(clip_model, fake, crops).float()
            if cfg.clip_d > 0:
                D_clip.requires_grad_(False)
                gc_loss = g_nonsaturating_loss(D_clip(fake_f))
                D_clip.requires_grad_(True)
                losses["g_clip"] = gc_loss.item()
                g_loss = g_loss + cfg.clip_d * gc_loss
            if cfg.clip_fm > 0:
                fm = mean_feature_distance(fake_f, stats.clip_real_mean)
                losses["fm"] = fm.item()
                g_loss = g_loss + cfg.clip_fm * fm
        g_opt.zero_grad(set_to_none=True)
        g_loss.backward()
        g_opt.step()
        losses["g"] = g_loss.item()
        if cfg.pl_weight > 0 and step % cfg.g_reg_every == 0:
            losses["pl"] = _path_length_step(G, g_opt, cfg, stats.pl_mean, device)
        # EMA of the generator's weights. Without the ramp-up, the EMA of a short run still averages in the
        # random initial weights; the horizon is a function of the step, so resume stays exact.
        ema_nimg = cfg.ema_kimg * 1000
        if cfg.ema_rampup > 0 and init is None:  # a given generator is already a long average
            ema_nimg = min(ema_nimg, (step + 1) * cfg.batch * cfg.ema_rampup)
        ema_beta = 0.5 ** (cfg.batch / max(ema_nimg, 1e-8))
        with torch.no_grad():  # one fused call instead of a kernel per tensor (the GPU step is launch-bound)
            torch._foreach_lerp_(list(G_ema.parameters()), list(G.parameters()), 1 - ema_beta)
        return losses

    trainer.run(step_fn, steps, stop_at, stop_by)
    return G_ema, trainer


def _path_length_step(G, g_opt, cfg, pl_mean, device):
    """The lazy path-length step: its own G update, scaled by g_reg_every (StyleGAN2 paper, appendix B)."""
    n = max(dist.world_size(), cfg.batch // 2)
    ws = _fake_ws(G, n, 0.0, device)
    pl = path_length_penalty(G, ws, pl_mean, noise=_noise(G, n))
    g_opt.zero_grad(set_to_none=True)
    (cfg.pl_weight * cfg.g_reg_every * pl).backward()
    g_opt.step()
    return pl.item()


def export_generator(G_ema, path, n_mean=10_000, seed=0):
    """Write {g_ema, latent_avg} (rosinality layout) so `checkpoints.load_generator` reads it."""
    latent_avg = G_ema.mean_latent(n_mean, seed=seed)
    atomic_save(dict(g_ema=G_ema.state_dict(), latent_avg=latent_avg.cpu()), path)
    return path
