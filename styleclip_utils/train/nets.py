"""Trainers for the attribute classifier, the identity net and the small CLIP, on in-memory SynthFaces
tensors (uint8 images [N, 3, S, S]). All use the shared `Trainer`: progress bar, loss log, atomic
checkpoints, exact resume.
"""
import math
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..weights.checkpoints import check_state_dict, load_checkpoint
from ..losses.clip_loss import to_clip_input
from ..data.attributes import IDENTITY_TRAITS, NEUTRAL_TEXT
from ..models.nets import (ArcMarginHead, AttributeClassifier, ConvNetConfig, IdentityJudge, IdentityNet,
                           MeasureJudge, RealismJudge, SmallCLIPConfig, encode_text_by_length, small_clip)
from ..device import autocast, check_precision, math_attention
from .. import dist
from .loop import Trainer, batch_at, batch_indices

def augment(x, shift=3, blur=0.3, flip=True):
    """Geometry-only augmentation (colour is an attribute, so no colour jitter): random translation by up
    to `shift` px (edge-replicated), x-flip, and with probability `blur` a blur, since generated faces are
    softer."""
    B, _, H, W = x.shape
    x = F.pad(x, [shift] * 4, mode="replicate")
    dy, dx = torch.randint(0, 2 * shift + 1, (2,))
    x = x[:, :, dy:dy + H, dx:dx + W]
    if flip:
        flip = (dist.rand(B) < 0.5).to(x.device)  # this rank's slice of the global batch's coin flips
        x = torch.where(flip[:, None, None, None], x.flip(3), x)
    if torch.rand(()) < blur:
        k = torch.tensor([1.0, 2.0, 1.0], device=x.device)
        k = (k[:, None] * k[None, :] / 16).expand(3, 1, 3, 3)
        x = F.conv2d(F.pad(x, [1] * 4, mode="replicate"), k, groups=3)
    return x


def warmup_cosine(opt, steps, warmup_frac=0.05):
    """Linear warm-up over the first 5% of steps, then cosine decay to 0 at `steps`: the last steps take
    small updates, so the final weights are not one noisy step away from a better point."""
    warmup = max(1, int(steps * warmup_frac))
    return torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min((s + 1) / warmup,
                                                                0.5 * (1 + math.cos(math.pi * min(s, steps) / steps))))


def _adamw_run(out_dir, modules, steps, lr, config, seed, device, ckpt_every, log_every, progress,
               weight_decay=1e-4, **adamw):
    """AdamW over every module's parameters (in `modules`' order), the warm-up-cosine schedule, and the Trainer
    that checkpoints them: the set-up every net trainer shares -> (opt, sched, trainer)."""
    params = [p for m in modules.values() for p in m.parameters()]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay, **adamw)
    sched = warmup_cosine(opt, steps)
    trainer = Trainer(out_dir, modules, dict(opt=opt, sched=sched), config, seed=seed, device=device,
                      ckpt_every=ckpt_every, log_every=log_every, progress=progress)
    return opt, sched, trainer


def _descend(opt, sched, loss):
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    sched.step()


def train_classifier(images, attrs, attribute_names, out_dir, steps, cfg=None, batch=64, lr=2e-3, seed=0,
                     device="cpu", precision="fp32", ckpt_every=500, log_every=10, progress=True, stop_at=None,
                     stop_by=None):
    """Multi-label BCE on 0/1 attribute targets [N, A]. Returns (model, trainer)."""
    check_precision(precision)
    cfg = cfg or ConvNetConfig(in_size=images.shape[-1], out_dim=attrs.shape[1])
    torch.manual_seed(seed)
    model = AttributeClassifier(cfg, attribute_names).to(device, memory_format=torch.channels_last)
    config = dict(kind="attribute_classifier", steps=steps, batch=batch, lr=lr, precision=precision,
                  attributes=list(attribute_names), **asdict(cfg))
    opt, sched, trainer = _adamw_run(out_dir, dict(model=model), steps, lr, config, seed, device, ckpt_every,
                                     log_every, progress)

    def step_fn(step):
        model.train()
        idx, x = batch_at(images, batch, step, seed, device)
        with autocast(device, precision):
            logits = model(augment(x)).float()
        loss = F.binary_cross_entropy_with_logits(logits, attrs[idx].to(device).float())
        _descend(opt, sched, loss)
        return {"bce": loss.item()}

    trainer.run(step_fn, steps, stop_at, stop_by)
    return model.eval(), trainer


def train_identity(images, identities, out_dir, steps, cfg=None, batch=64, lr=2e-3, seed=0, device="cpu",
                   precision="fp32", ckpt_every=500, log_every=10, progress=True, stop_at=None, stop_by=None):
    """ArcFace margin loss over identity labels (any ints). Returns (embedding net, trainer)."""
    check_precision(precision)
    classes, labels = torch.unique(torch.as_tensor(identities), return_inverse=True)
    cfg = cfg or ConvNetConfig(in_size=images.shape[-1], out_dim=128)
    torch.manual_seed(seed)
    model = IdentityNet(cfg).to(device, memory_format=torch.channels_last)
    head = ArcMarginHead(cfg.out_dim, len(classes)).to(device)
    config = dict(kind="identity_net", steps=steps, batch=batch, lr=lr, precision=precision,
                  n_identities=len(classes), **asdict(cfg))
    opt, sched, trainer = _adamw_run(out_dir, dict(model=model, head=head), steps, lr, config, seed, device, ckpt_every,
                                     log_every, progress)

    def step_fn(step):
        model.train()
        idx, x = batch_at(images, batch, step, seed, device)
        y = labels[idx].to(device)
        with autocast(device, precision):
            emb = model(augment(x)).float()
        logits = head(emb, y)
        loss = F.cross_entropy(logits, y)
        _descend(opt, sched, loss)
        return {"arcface": loss.item()}

    trainer.run(step_fn, steps, stop_at, stop_by)
    return model.eval(), trainer


def train_clip(images, captions, out_dir, steps, cfg=None, batch=128, lr=5e-4, seed=0, device="cpu",
               precision="fp32", ckpt_every=500, log_every=10, progress=True, stop_at=None, stop_by=None,
               attrs=None, attribute_names=None, label_captions=0, label_columns=None, blur=0.3, neutral=0.0,
               init=None):
    """Contrastive (InfoNCE both ways) on images and captions; `captions[i]` is a list of phrasings of
    image i, one drawn per step. Returns (clip.model.CLIP, trainer).

    `label_captions` > 0 (needs `attrs` [N, A] and `attribute_names`) adds that many single-attribute
    captions per step (up to 4 per image: "a photo of a face with freckles", `synthfaces.attribute_caption`)
    whose matches are *every* image in the batch with that attribute, from the labels. Plain CLIP must treat those images as
    negatives, so a detail shared by a fifth of the batch (a smile, glasses) barely helps to tell images
    apart and is learned late; with the labels it is a direct signal (a label-aware contrastive loss, as
    in UniCL). `label_columns` (attribute names) limits what those captions may name, e.g. to the columns
    behind the project's prompts (`synthfaces.PROMPT_ATTRIBUTES`): each then gets ~2.5x the share it has
    among all 47 phrased attributes. `blur`: the share of steps whose images are blurred (`augment`); a blur
    wipes out details a pixel wide (lashes), so a fine-tune for them may set it to 0.

    `neutral` > 0 adds, with that weight, a loss anchored on the neutral text ("a photo of a face"): for
    each label caption X and each image, sigmoid(scale * (cos(image, X) - cos(image, neutral))) should be 1
    when the image has X and 0 when not. The contrastive losses only rank texts against each other, so the
    neutral text, never a caption, drifts: a long run ranked lashes better (AUC 0.91 -> 0.95) while fewer
    images with lashes came out closer to "... with big lashes" than to "a photo of a face" (81% -> 78%).
    That difference of two texts is what a zero-shot check and StyleCLIP's global directions use.

    `init`: a small CLIP file (safetensors, as exported) to continue from instead of random weights; it must
    be this config's model. The optimiser and the learning-rate schedule start afresh."""
    check_precision(precision)
    if label_captions and (attrs is None or attribute_names is None):
        raise ValueError("label_captions > 0 needs the images' attrs and attribute_names")
    if label_columns is not None and not set(label_columns) <= set(attribute_names or ()):
        raise ValueError(f"label_columns must be attribute names of the data; unknown: "
                         f"{sorted(set(label_columns) - set(attribute_names or ()))}")
    sayable = set(label_columns) if label_columns is not None else set(attribute_names or ())
    import clip

    from ..data.captions import attribute_caption

    cfg = cfg or SmallCLIPConfig(image_resolution=images.shape[-1])
    torch.manual_seed(seed)
    model = small_clip(cfg)
    if init is not None:
        sd = {k: v.float() for k, v in load_checkpoint(init).items()}  # float16-stored keys back to float32
        check_state_dict(model, sd, what=f"CLIP init {init}")
        model.load_state_dict(sd)
    model = model.to(device)
    config = dict(kind="small_clip", steps=steps, batch=batch, lr=lr, precision=precision,
                  label_captions=label_captions, blur=blur, neutral=neutral, **asdict(cfg),
                  init=Path(init).name if init else None,
                  **({"label_columns": sorted(label_columns)} if label_columns is not None else {}))
    opt, sched, trainer = _adamw_run(out_dir, dict(model=model), steps, lr, config, seed, device, ckpt_every,
                                     log_every, progress, weight_decay=0.1, betas=(0.9, 0.98), eps=1e-6)

    def step_fn(step):
        model.train()
        _, x = batch_at(images, batch, step, seed, device)
        # The contrastive loss reads the whole global batch: every rank builds all its texts (cheap) and
        # gathers the images' features; each rank's slice carries only its own images through the tower.
        idx = batch_indices(len(images), batch, step, seed)
        picks = torch.randint(0, 1 << 30, (len(idx),))
        texts = [captions[i][p % len(captions[i])] for i, p in zip(idx.tolist(), picks.tolist())]
        # Captions of two images in a batch can be identical ("a photo of a man"): every image whose
        # caption text matches is a positive, instead of forcing the one-hot diagonal.
        match = torch.tensor([[a == b for b in texts] for a in texts], dtype=torch.bool)   # [image, text]
        cols = []
        if label_captions:
            rng = np.random.default_rng([seed, step])   # per step, so a resumed run draws the same
            a = attrs[idx.cpu()].bool()
            rows = a.tolist()   # idx is a random draw: caption its first images (asked for more than
            for k in range(4 * len(rows)):   # the batch: go round again, drawing anew)
                said = attribute_caption({n for n, v in zip(attribute_names, rows[k % len(rows)])
                                          if v and n in sayable}, rng)
                if said is not None:
                    texts.append(said[0])
                    cols.append(attribute_names.index(said[1]))
                if len(cols) == label_captions:
                    break
            match = torch.cat([match, a[:, cols]], 1)
        match = match.to(device, torch.float)
        anchored = bool(neutral and cols)
        tokens = clip.tokenize(texts + [NEUTRAL_TEXT] * anchored, context_length=cfg.context_length,
                               truncate=True).to(device)
        with autocast(device, precision), math_attention(device):
            img_f = F.normalize(model.encode_image(to_clip_input(augment(x, blur=blur), cfg.image_resolution)).float(), dim=1)
            img_f = dist.gather_cat(img_f)   # [global batch, D]; gradients flow back to this rank's slice
            txt_f = F.normalize(encode_text_by_length(model, tokens).float(), dim=1)
        scale = model.logit_scale.exp().clamp(max=100)
        logits = scale * img_f @ txt_f[:len(texts)].t()   # [image, text]
        loss = (torch.sum(-match / match.sum(1, keepdim=True) * F.log_softmax(logits, 1), 1).mean()
                + torch.sum(-match / match.sum(0, keepdim=True) * F.log_softmax(logits, 0), 0).mean()) / 2
        out = {"contrastive": loss.item()}
        if anchored:   # label captions vs the neutral text, per image: [image, label caption]
            labels = slice(len(texts) - len(cols), len(texts))   # the label captions follow the images' own
            margin = logits[:, labels] - scale * img_f @ txt_f[-1:].t()
            anchor = F.binary_cross_entropy_with_logits(margin, match[:, labels])
            loss = loss + neutral * anchor
            out["neutral"] = anchor.item()
        _descend(opt, sched, loss)
        return dict(out, logit_scale=model.logit_scale.exp().item(), label_captions=len(cols) if label_captions else 0)

    trainer.run(step_fn, steps, stop_at, stop_by)
    return model.eval(), trainer


def train_identity_judge(images, trait_classes, face_shape, out_dir, steps, cfg=None, batch=64, lr=2e-3, seed=0,
                         device="cpu", precision="fp32", ckpt_every=500, log_every=10, progress=True, stop_at=None,
                         stop_by=None, shape_weight=1.0):
    """Cross-entropy on each identity trait + `shape_weight` x MSE on the face shape. Returns (judge, trainer).
    The judge of "same person"; never the identity loss of an editing method (that is the identity net)."""
    check_precision(precision)
    n_shape = face_shape.shape[1]
    cfg = cfg or ConvNetConfig(in_size=images.shape[-1], out_dim=sum(map(len, IDENTITY_TRAITS.values())) + n_shape)
    torch.manual_seed(seed)
    model = IdentityJudge(cfg, IDENTITY_TRAITS, n_shape).to(device, memory_format=torch.channels_last)
    config = dict(kind="identity_judge", steps=steps, batch=batch, lr=lr, precision=precision,
                  shape_weight=shape_weight, traits=list(IDENTITY_TRAITS), **asdict(cfg))
    opt, sched, trainer = _adamw_run(out_dir, dict(model=model), steps, lr, config, seed, device, ckpt_every,
                                     log_every, progress)

    def step_fn(step):
        model.train()
        idx, x = batch_at(images, batch, step, seed, device)
        with autocast(device, precision):
            logits, shape = model.split(model(augment(x)).float())
        y = trait_classes[idx].to(device)
        ce = sum(F.cross_entropy(l, y[:, k]) for k, l in enumerate(logits)) / len(logits)
        mse = F.mse_loss(shape, face_shape[idx].to(device))
        _descend(opt, sched, ce + shape_weight * mse)
        return {"ce": ce.item(), "shape_mse": mse.item()}

    trainer.run(step_fn, steps, stop_at, stop_by)
    return model.eval(), trainer


def train_realism_judge(images, generated, out_dir, steps, cfg=None, batch=64, lr=2e-3, seed=0, device="cpu",
                        precision="fp32", ckpt_every=500, log_every=10, progress=True, stop_at=None, stop_by=None):
    """Binary: real renders and unedited generated faces (uint8, half of each batch) against broken copies of
    them drawn afresh every step (`metrics.judges.broken`: blobs, noise). Returns (judge, trainer)."""
    from ..metrics.judges import break_faces

    check_precision(precision)
    cfg = cfg or ConvNetConfig(in_size=images.shape[-1], out_dim=1)
    torch.manual_seed(seed)
    model = RealismJudge(cfg).to(device, memory_format=torch.channels_last)
    config = dict(kind="realism_judge", steps=steps, batch=batch, lr=lr, precision=precision,
                  n_generated=len(generated), **asdict(cfg))
    opt, sched, trainer = _adamw_run(out_dir, dict(model=model), steps, lr, config, seed, device, ckpt_every,
                                     log_every, progress)

    def step_fn(step):
        model.train()
        half = batch // 2
        _, real = batch_at(images, half - half // 2, step, seed, "cpu")
        _, fake = batch_at(generated, half // 2, step, seed + 1, "cpu")
        good = torch.cat([real, fake])
        bad = break_faces(good, torch.Generator().manual_seed(seed * 1_000_003 + step))
        x = torch.cat([good, bad]).to(device).contiguous(memory_format=torch.channels_last)
        y = torch.cat([torch.ones(len(good)), torch.zeros(len(bad))]).to(device)
        with autocast(device, precision):
            logits = model(augment(x)).float()[:, 0]
        loss = F.binary_cross_entropy_with_logits(logits, y)
        _descend(opt, sched, loss)
        return {"bce": loss.item()}

    trainer.run(step_fn, steps, stop_at, stop_by)
    return model.eval(), trainer


def train_measure_judge(images, measures, domains, out_dir, steps, cfg=None, batch=64, lr=2e-3, seed=0, device="cpu",
                        precision="fp32", ckpt_every=500, log_every=10, progress=True, stop_at=None, stop_by=None):
    """MSE on the face measures (scaled to [0, 1]) + cross-entropy on the domain (0 natural, 1 toon).
    No x-flip: a mirrored face has the opposite yaw and roll. Returns (judge, trainer)."""
    from ..data.render import MEASURES
    check_precision(precision)
    cfg = cfg or ConvNetConfig(in_size=images.shape[-1], out_dim=len(MEASURES) + 1)
    torch.manual_seed(seed)
    model = MeasureJudge(cfg, MEASURES).to(device, memory_format=torch.channels_last)
    config = dict(kind="measure_judge", steps=steps, batch=batch, lr=lr, precision=precision, measures=list(MEASURES),
                  **asdict(cfg))
    opt, sched, trainer = _adamw_run(out_dir, dict(model=model), steps, lr, config, seed, device, ckpt_every,
                                     log_every, progress)

    def step_fn(step):
        model.train()
        idx, x = batch_at(images, batch, step, seed, device)
        with autocast(device, precision):
            scaled, logit = model.split(model(augment(x, flip=False)).float())
        mse = F.mse_loss(scaled, measures[idx].to(device))
        ce = F.binary_cross_entropy_with_logits(logit, domains[idx].to(device).float())
        _descend(opt, sched, mse + 0.1 * ce)
        return {"measure_mse": mse.item(), "domain_ce": ce.item()}

    trainer.run(step_fn, steps, stop_at, stop_by)
    return model.eval(), trainer
