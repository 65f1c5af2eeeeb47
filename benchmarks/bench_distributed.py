"""Training speed on 1 process vs N processes (torchrun, gloo on CPU, nccl on GPUs) at the same global batch:
the shipped generator's config (64 px, batch 16, on random images) and the shipped mapper recipe (batch 8,
4 CLIP views, the shipped generator, CLIP and identity net). On CPU the cores are split between the
processes (1 process x C threads vs N processes x C/N threads), so the ratio says what DDP costs or gains
on the same machine; on GPUs each process has its own device.

    python benchmarks/bench_distributed.py [--nproc 2] [--steps 12]
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

WARMUP = 2  # steps left out of the timing (allocations, oneDNN kernel choice)


def inner(what, out, steps):
    import torch

    from styleclip_utils import dist
    from styleclip_utils.device import resolve_device

    dist.init()
    dev = resolve_device("auto")
    common = dict(seed=0, device=dev, progress=False, log_every=1, ckpt_every=10 ** 9)
    if what == "gan":
        from styleclip_utils.train import recipes
        from styleclip_utils.train.stylegan2 import train_stylegan2
        cfg = recipes.model_config(recipes.load_recipe("generator_1_scratch"), 0)
        cfg.precision = "fp32"
        images = torch.randint(0, 256, (256, 3, cfg.size, cfg.size), generator=torch.Generator().manual_seed(0),
                               dtype=torch.uint8)
        train_stylegan2(images, out, steps, cfg, **common)
    else:
        from styleclip_utils.losses.clip_loss import CLIPLoss
        from styleclip_utils.losses.identity import IDLoss
        from styleclip_utils.models.mapper import MapperConfig
        from styleclip_utils.train.mapper import latents_from_generator, train_mapper
        from styleclip_utils.weights import zoo
        G, clip_model = zoo.load_generator(dev), zoo.load_clip(dev)
        cfg = MapperConfig(dim=G.style_dim, hidden=64)
        train_mapper(latents_from_generator(G, 512, 0.7, seed=1), G, CLIPLoss(clip_model, ["red hair"], views=4),
                     IDLoss("synthfaces", zoo.load_identity_net(dev)), out, steps, cfg, batch=8, **common)
    dist.close()


def seconds_per_step(out):
    rows = [json.loads(line) for line in (Path(out) / "log.jsonl").read_text().splitlines()]
    return (rows[-1]["seconds"] - rows[WARMUP - 1]["seconds"]) / (rows[-1]["step"] - WARMUP)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--nproc", type=int, default=2)
    ap.add_argument("--steps", type=int, default=12)
    ap.add_argument("--inner", nargs=2, metavar=("WHAT", "OUT"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.inner:
        return inner(*args.inner, args.steps)
    import torch
    cores = os.cpu_count() if not torch.cuda.is_available() else None
    print(f"torch {torch.__version__}, {'CPU, %d cores' % cores if cores else torch.cuda.get_device_name()}")
    print(f"| training | 1 process s/step | {args.nproc} processes s/step | speed-up |")
    print("|---|---|---|---|")
    for what in ("gan", "mapper"):
        times = []
        for n in (1, args.nproc):
            threads = str(max(1, cores // n)) if cores else os.environ.get("OMP_NUM_THREADS", "4")
            with tempfile.TemporaryDirectory() as out:
                launcher = ["-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={n}"] if n > 1 else []
                subprocess.run([sys.executable, *launcher, __file__, "--inner", what, out, "--steps", str(args.steps)],
                               env=dict(os.environ, OMP_NUM_THREADS=threads), check=True, capture_output=True)
                times.append(seconds_per_step(out))
        print(f"| {what} | {times[0]:.3f} | {times[1]:.3f} | {times[0] / times[1]:.2f}x |")


if __name__ == "__main__":
    main()
