"""Training e4e (encoder4editing): an encoder from images into the W+ of a frozen generator, with every loss of
the official training (Tov et al. 2021; encoder4editing/training/coach.py):

    loss = λ_L2·MSE(G(E(x)), x) + λ_LPIPS·perceptual(G(E(x)), x) + λ_ID·(1 − cos(id(G(E(x))), id(x)))
         + λ_w·softplus(−D(w_i)) (rows unlocked so far) + λ_δ·Σ_i ‖w_i − w_0‖₂

and the latent discriminator D (real: mapped z; fake: the encoder's codes through a pool of 50), trained with
the non-saturating loss and R1 every `d_reg_every` steps. Deltas are unlocked one row at a time: none before
`progressive_start`, then one more every `progressive_step` steps. The printed metrics keep e4e's names.

One deliberate difference: the official code shows D the encoder's output *before* latent_avg is added (its
codes live around the average w, the real ones around it too after the mapping; the official fake codes are
offsets around 0). Here D sees the codes the generator actually receives (with latent_avg).

Fine-tuning: `init` is a trained encoder (the shipped SynthFaces one, or `e4e_ffhq_encode.pt`'s encoder) to
continue from, on another image folder.
"""
from dataclasses import asdict

import torch
import torch.nn.functional as F

from ..device import autocast, check_precision
from ..models.e4e import E4E, E4EConfig, LatentCodesDiscriminator, LatentPool
from .. import dist
from .loop import Trainer, batch_at


def progressive_stage(step, n_styles, start, every):
    """Rows 1..stage get deltas at this step: 0 before `start`, then one more every `every` steps."""
    if step < start:
        return 0
    return min(n_styles - 1, 1 + (step - start) // max(every, 1))


def train_e4e(images, G, id_loss, perceptual, out_dir, steps, cfg=None, batch=8, lr=1e-4, l2_lambda=1.0,
              lpips_lambda=0.8, id_lambda=0.1, w_discriminator_lambda=0.1, delta_lambda=2e-4, d_lr=2e-5,
              r1_gamma=10.0, d_reg_every=16, pool_size=50, progressive_start=20_000, progressive_step=2_000,
              init=None, seed=0, device="cpu", precision="fp32", ckpt_every=500, log_every=10, progress=True,
              stop_at=None, stop_by=None):
    """Train an encoder for the frozen generator G on uint8 `images` [N, 3, S, S] -> (E4E in eval mode, trainer).

    id_loss(img, ref) -> [B] (losses.identity.IDLoss) and perceptual(a, b) -> [B] (LPIPS, or
    losses.perceptual.FeatureDistance on SynthFaces) are loss-side models: never the scorecard's judges.
    `init`: a state dict of a trained E4E to fine-tune from (its config must match `cfg`)."""
    check_precision(precision)
    cfg = cfg or E4EConfig(in_size=images.shape[-1], n_styles=G.n_latent, style_dim=G.style_dim)
    if (cfg.n_styles, cfg.style_dim) != (G.n_latent, G.style_dim):
        raise ValueError(f"the encoder writes {cfg.n_styles} rows of {cfg.style_dim}; the generator reads "
                         f"{G.n_latent} of {G.style_dim}")
    torch.manual_seed(seed)
    G = G.eval().requires_grad_(False)
    E = E4E(cfg, latent_avg=G.w_avg.detach().cpu()).to(device)
    if init is not None:
        E.load_state_dict(init)
    D = LatentCodesDiscriminator(cfg.style_dim).to(device)
    pools = dict(real_pool=LatentPool(pool_size, cfg.style_dim).to(device),
                 fake_pool=LatentPool(pool_size, cfg.style_dim).to(device))
    opt_E = torch.optim.Adam(E.encoder.parameters(), lr=lr)
    opt_D = torch.optim.Adam(D.parameters(), lr=d_lr)
    # no `steps`: the lr is constant and the row schedule a function of the step, so more steps continue a run
    config = dict(kind="e4e", batch=batch, lr=lr, l2_lambda=l2_lambda, lpips_lambda=lpips_lambda,
                  id_lambda=id_lambda, w_discriminator_lambda=w_discriminator_lambda, delta_lambda=delta_lambda,
                  d_lr=d_lr, r1_gamma=r1_gamma, d_reg_every=d_reg_every, pool_size=pool_size,
                  progressive_start=progressive_start, progressive_step=progressive_step, precision=precision,
                  fine_tuned=init is not None, **asdict(cfg))
    trainer = Trainer(out_dir, dict(encoder=E, discriminator=D, **pools), dict(encoder=opt_E, discriminator=opt_D),
                      config, seed=seed, device=device, ckpt_every=ckpt_every, log_every=log_every, progress=progress)
    use_d = w_discriminator_lambda > 0

    def discriminator_step(step, fake_w0):
        real_w = G.mapping(dist.randn(len(fake_w0), cfg.style_dim, device=device))
        real_w, fake_w = pools["real_pool"].query(real_w), pools["fake_pool"].query(fake_w0)
        d_real, d_fake = F.softplus(-D(real_w)).mean(), F.softplus(D(fake_w)).mean()
        opt_D.zero_grad(set_to_none=True)
        (d_real + d_fake).backward()
        opt_D.step()
        out = dict(d_real_loss=d_real.item(), d_fake_loss=d_fake.item(), discriminator_loss=(d_real + d_fake).item())
        if step % d_reg_every == 0:  # lazy R1 on real codes, scaled by the interval (StyleGAN2's convention)
            real_w = real_w.detach().requires_grad_(True)
            grad, = torch.autograd.grad(D(real_w).sum(), real_w, create_graph=True)
            r1 = grad.pow(2).sum(1).mean()
            opt_D.zero_grad(set_to_none=True)
            (r1_gamma / 2 * r1 * d_reg_every).backward()
            opt_D.step()
            out["discriminator_r1_loss"] = r1.item()
        return out

    def step_fn(step):
        stage = progressive_stage(step, cfg.n_styles, progressive_start, progressive_step)
        E.encoder.progressive_stage = stage
        E.train()
        _, x = batch_at(images, batch, step, seed, device)
        logs = {}
        if use_d:  # D first, on row 0 of the encoder's codes (as the official code)
            with torch.no_grad():
                fake_w0 = E(x)[:, 0]
            logs.update(discriminator_step(step, fake_w0))
        D.requires_grad_(False)  # the encoder's adversarial term must not train D
        with autocast(device, precision):
            ws = E(x)
            y_hat = G.synthesis(ws, noise_mode="const").float()
        loss_l2 = F.mse_loss(y_hat, x)
        loss_lpips = perceptual(y_hat, x).mean()
        loss_id = id_loss(y_hat, x).mean()
        rows = range(stage + 1)
        delta = sum((ws[:, i] - ws[:, 0]).float().norm(dim=1).mean() for i in range(1, stage + 1)) if stage else ws.new_zeros(())
        adv = (sum(F.softplus(-D(ws[:, i].float())).mean() for i in rows) / len(rows)) if use_d else ws.new_zeros(())
        loss = (l2_lambda * loss_l2 + lpips_lambda * loss_lpips + id_lambda * loss_id
                + w_discriminator_lambda * adv + delta_lambda * delta)
        opt_E.zero_grad(set_to_none=True)
        loss.backward()
        opt_E.step()
        D.requires_grad_(True)
        return dict(logs, encoder_discriminator_loss=float(adv.detach()), total_delta_loss=float(delta.detach()),
                    loss_id=loss_id.item(), id_improve=-loss_id.item(),  # e4e: sim(ŷ, y) − sim(x, y); here x = y
                    loss_l2=loss_l2.item(), loss_lpips=loss_lpips.item(), loss=loss.item(), stage=stage)

    trainer.run(step_fn, steps, stop_at, stop_by)
    E.encoder.progressive_stage = cfg.n_styles
    return E.eval(), trainer
