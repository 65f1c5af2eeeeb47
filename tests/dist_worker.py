"""A training run for tests/test_distributed.py, the same under `python` (one process) and `torchrun` (several):

    torchrun --standalone --nproc-per-node 2 tests/dist_worker.py gan OUT --steps 4 [--die-at 3]
    python tests/dist_worker.py mapper OUT --steps 4

gan: the tiny StyleGAN2 of conftest on random images (mixing, R1, path length, flips, noise: every random draw);
mapper: a LevelsMapper with CLIP views and the identity loss on the tiny generator's codes; relevance: the exact
fs3 of 24 channels (OUT/cache.pt). --die-at K: rank 1 dies (os._exit) at step K, as a killed process would.
"""
import argparse
import dataclasses
import os
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from conftest import TINY_GAN, dummy_clip, dummy_generator, dummy_identity_net  # noqa: E402

from styleclip_utils import dist  # noqa: E402
from styleclip_utils.train import loop  # noqa: E402


def die_at(k):
    """Make rank 1 exit abruptly at step k (after the checkpoints before it)."""
    run = loop.Trainer.run

    def dying(self, step_fn, *a, **kw):
        def step(s):
            if s == k and dist.rank() == 1:
                os._exit(17)
            return step_fn(s)
        return run(self, step, *a, **kw)

    loop.Trainer.run = dying


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("what", choices=("gan", "mapper", "relevance"))
    ap.add_argument("out")
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--die-at", type=int)
    args = ap.parse_args()
    torch.set_num_threads(1)  # two processes on two cores
    dist.init("cpu")
    if args.die_at is not None:
        die_at(args.die_at)
    common = dict(seed=0, progress=False, log_every=1, ckpt_every=2)
    if args.what == "gan":
        from styleclip_utils.train.stylegan2 import train_stylegan2
        images = torch.randint(0, 256, (64, 3, 32, 32), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)
        cfg = dataclasses.replace(TINY_GAN, batch=8, pl_weight=2.0, g_reg_every=2, d_reg_every=2, mixing_prob=0.9)
        train_stylegan2(images, args.out, args.steps, cfg, **common)
    elif args.what == "mapper":
        from styleclip_utils.losses.clip_loss import CLIPLoss
        from styleclip_utils.losses.identity import IDLoss
        from styleclip_utils.train.mapper import latents_from_generator, train_mapper
        G = dummy_generator()
        latents = latents_from_generator(G, 32, 0.7, seed=1)
        loss = CLIPLoss(dummy_clip(), ["red hair"], views=2, seed=0)
        train_mapper(latents, G, loss, IDLoss("synthfaces", dummy_identity_net()), args.out, args.steps, batch=4,
                     **common)
    else:
        from styleclip_utils.edit import global_directions as gd
        G, clip_model = dummy_generator(), dummy_clip()
        Path(args.out).mkdir(parents=True, exist_ok=True)
        mean, std = gd.style_stats(G, 256)
        fs = gd.exact_relevance(G, clip_model, gd.sample_styles(G, 2, seed=1), mean, std,
                                gd.channel_index(G)[:24], batch=8, cache=Path(args.out) / "cache.pt", progress=False)
        if dist.is_main():
            torch.save(fs, Path(args.out) / "fs.pt")
    dist.close()


if __name__ == "__main__":
    main()
