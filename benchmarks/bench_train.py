"""Training speed of notebook 00's four trainers, one at a time: ms per step and images per second at the
notebook's sizes, on a small SynthFaces set (the data's values do not change the compute). On a GPU, also
with cuDNN's autotuner (`torch.backends.cudnn.benchmark`), and the GAN step's top kernels.

    python benchmarks/bench_train.py                          # every trainer, notebook 00's parameters
    python benchmarks/bench_train.py --gan-batches 16 64      # the GAN at these batch sizes
    python benchmarks/bench_train.py --models stylegan2 --profile
Times are read from each run's own log (steps 10 to --steps), so the first steps' warm-up is left out.
"""
import argparse
import json
import tempfile
from pathlib import Path

import torch

from styleclip_utils import train_all
from styleclip_utils.runs import notebook_parameters, parse_value

BATCH_PARAM = dict(classifier="batch_nets", identity="batch_nets", clip="batch_clip", stylegan2="batch_gan")
STEPS_PARAM = dict(classifier="steps_classifier", identity="steps_identity", clip="steps_clip", stylegan2="steps_gan")


def time_model(model, P, train, steps, out):
    P = dict(P, out_dir=str(out), **{STEPS_PARAM[model]: steps})
    getattr(train_all, model)(P, train, progress=False, log_every=10, ckpt_every=10 ** 9)
    log = [json.loads(line) for line in (out / model / "log.jsonl").open()]
    first, last = log[0], log[-1]   # step 10 and the last step
    per_step = (last["seconds"] - first["seconds"]) / (last["step"] - first["step"])
    return per_step, P[BATCH_PARAM[model]] / per_step


def profile_gan(P, train, out, steps=12, top=15):
    from torch.profiler import ProfilerActivity, profile
    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if torch.cuda.is_available() else [])
    with profile(activities=acts) as prof:
        train_all.stylegan2(dict(P, out_dir=str(out), steps_gan=steps), train, progress=False, ckpt_every=10 ** 9)
    key = "self_cuda_time_total" if torch.cuda.is_available() else "self_cpu_time_total"
    print(prof.key_averages().table(sort_by=key, row_limit=top, max_name_column_width=60))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="+", default=list(BATCH_PARAM), choices=list(BATCH_PARAM))
    ap.add_argument("--gan-batches", nargs="+", type=int, help="GAN batch sizes (default: the notebook's)")
    ap.add_argument("--steps", type=int, default=40, help="steps per configuration (timed from step 10)")
    ap.add_argument("--n-images", type=int, default=1024, help="SynthFaces images to train on")
    ap.add_argument("--profile", action="store_true", help="print the GAN step's top ops")
    ap.add_argument("-p", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
                    help="a notebook 00 parameter (Python literal)")
    args = ap.parse_args()
    P = notebook_parameters(train_all.NOTEBOOK)
    P.update({k: parse_value(v) for k, v in args.p}, n_images=args.n_images)
    train_all.check_parameters(P)
    _, train, _ = train_all.load_data(P)
    dev = train_all.device_of(P)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for autotune in ([False, True] if dev.type == "cuda" else [False]):
            torch.backends.cudnn.benchmark = autotune
            for model in args.models:
                batches = args.gan_batches if model == "stylegan2" and args.gan_batches else [P[BATCH_PARAM[model]]]
                for b in batches:
                    out = Path(tmp) / f"{model}_{b}_{autotune}"
                    per_step, ips = time_model(model, dict(P, **{BATCH_PARAM[model]: b}), train, args.steps, out)
                    rows.append((model, b, autotune, per_step, ips))
                    print(f"  {model} batch {b} cudnn.benchmark={autotune}: {1000 * per_step:.1f} ms/step", flush=True)
        if args.profile:
            torch.backends.cudnn.benchmark = False
            profile_gan(P, train, Path(tmp) / "profile")
    print(f"\ntorch {torch.__version__}, device {dev} "
          f"({torch.cuda.get_device_name() if dev.type == 'cuda' else f'{torch.get_num_threads()} threads'}), "
          f"precision {P['precision']}")
    print("| trainer | batch | cudnn.benchmark | ms/step | images/s |")
    print("|---|---|---|---|---|")
    for model, b, autotune, per_step, ips in rows:
        print(f"| {model} | {b} | {autotune} | {1000 * per_step:.1f} | {ips:.0f} |")


if __name__ == "__main__":
    main()
