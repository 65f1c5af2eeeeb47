"""Training speed of the recipes' trainers, one at a time: ms per step and images per second at each recipe's
sizes, on a small SynthFaces set (the data's values do not change the compute). On a GPU, also with cuDNN's
autotuner (`torch.backends.cudnn.benchmark`), and the GAN step's top kernels.

    python benchmarks/bench_train.py                                  # the shipped models' recipes
    python benchmarks/bench_train.py --recipes generator_continue --set config.batch=64
    python benchmarks/bench_train.py --recipes generator_5_clip_fm --profile
Times are read from each run's own log (steps 10 to --steps), so the first steps' warm-up is left out.
"""
import argparse
import tempfile
from pathlib import Path

import torch

from styleclip_utils.device import resolve_device
from styleclip_utils.train import recipes
from styleclip_utils.train.loop import read_log

SHIPPED = ["classifier", "identity", "clip_3_neutral", "generator_5_clip_fm"]


def batch_of(R):
    return R.config.get("batch", 0) if R.model == "stylegan2" else R.train.get("batch", 0)


def time_recipe(R, out):
    _, run = recipes.train(R, out, progress=False)
    log = read_log(run.out_dir)
    first, last = log[0], log[-1]   # step 10 and the last step
    per_step = (last["seconds"] - first["seconds"]) / (last["step"] - first["step"])
    return per_step, batch_of(R) / per_step


def profile(R, out, top=15):
    from torch.profiler import ProfilerActivity, profile as torch_profile
    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if torch.cuda.is_available() else [])
    with torch_profile(activities=acts) as prof:
        recipes.train(R, out, progress=False)
    key = "self_cuda_time_total" if torch.cuda.is_available() else "self_cpu_time_total"
    print(prof.key_averages().table(sort_by=key, row_limit=top, max_name_column_width=60))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--recipes", nargs="+", default=SHIPPED)
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override in every recipe")
    ap.add_argument("--steps", type=int, default=40, help="steps per configuration (timed from step 10)")
    ap.add_argument("--n-images", type=int, default=1024, help="SynthFaces images to train on")
    ap.add_argument("--profile", action="store_true", help="print the last recipe's top ops")
    args = ap.parse_args()
    sets = dict(recipes.parse_override(s) for s in args.set)
    todo = [recipes.load_recipe(name, steps=args.steps, **{"data.n_images": args.n_images}, **sets)
            for name in args.recipes]
    for R in todo:
        R.init = ""  # speed does not depend on the start
    dev = resolve_device(todo[0].device)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for autotune in ([False, True] if dev.type == "cuda" else [False]):
            torch.backends.cudnn.benchmark = autotune
            for R in todo:
                per_step, ips = time_recipe(R, Path(tmp) / f"{autotune}")
                rows.append((R.name, R.model, batch_of(R), autotune, per_step, ips))
                print(f"  {R.name} cudnn.benchmark={autotune}: {1000 * per_step:.1f} ms/step", flush=True)
        if args.profile:
            torch.backends.cudnn.benchmark = False
            profile(todo[-1], Path(tmp) / "profile")
    print(f"\ntorch {torch.__version__}, device {dev} "
          f"({torch.cuda.get_device_name() if dev.type == 'cuda' else f'{torch.get_num_threads()} threads'})")
    print("| recipe | trainer | batch | cudnn.benchmark | ms/step | images/s |")
    print("|---|---|---|---|---|---|")
    for name, model, b, autotune, per_step, ips in rows:
        print(f"| {name} | {model} | {b} | {autotune} | {1000 * per_step:.1f} | {ips:.0f} |")


if __name__ == "__main__":
    main()
