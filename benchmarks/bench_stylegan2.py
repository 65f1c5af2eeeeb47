"""Generator synthesis speed: forward, and forward+backward w.r.t. W+ (what latent optimisation does),
at batch 1 and 8, for the small SynthFaces config and the FFHQ 1024 config-f, on CPU and on a GPU when
there is one (fp32, TF32, and bf16 autocast with its error against fp32).

    python benchmarks/bench_stylegan2.py               # full table
    python benchmarks/bench_stylegan2.py --quick       # batch 1 only, one timed repeat
Weights are random: speed does not depend on their values.
"""
import argparse
import contextlib
import json
import platform
import time

import torch

from styleclip_utils.models.stylegan2 import Generator

CONFIGS = {
    # the SynthFaces generator's shape (64 px); see styleclip_utils/models.py once trained weights ship
    "synthfaces-64": dict(size=64, style_dim=256, n_mlp=4, channels={4: 256, 8: 256, 16: 256, 32: 128, 64: 64}),
    "ffhq-1024": dict(size=1024, style_dim=512, n_mlp=8, channel_multiplier=2),
}


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def timeit(fn, device, repeats):
    for _ in range(1 if repeats > 1 else 0):  # warm-up (cuDNN autotune, allocator) unless a single run is asked
        fn()
    sync(device)
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - t)
    return min(times)  # min: the least disturbed run, as timeit recommends


def bench(config, device, batch, mode, repeats):
    torch.manual_seed(0)
    G = Generator(**CONFIGS[config]).to(device).eval().requires_grad_(False)
    ws = torch.randn(batch, G.n_latent, G.style_dim, device=device)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if mode == "bf16" else contextlib.nullcontext()
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = mode == "tf32"

    def fwd():
        with torch.no_grad(), autocast:
            return G.synthesis(ws)

    def fwd_bwd():
        w = ws.clone().requires_grad_(True)
        with autocast:
            img = G.synthesis(w)
        img.float().square().mean().backward()

    row = dict(config=config, device=device.type, mode=mode, batch=batch,
               fwd_ms=1000 * timeit(fwd, device, repeats) / batch,
               fwd_bwd_ms=1000 * timeit(fwd_bwd, device, repeats) / batch)
    if mode != "fp32":  # accuracy of the reduced-precision mode against full fp32
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
        with torch.no_grad():
            ref = G.synthesis(ws)
        row["rel_err"] = ((fwd().float() - ref).abs().max() / ref.abs().max()).item()
    return row


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="batch 1 only, one timed repeat")
    ap.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    ap.add_argument("--json", help="also write the rows to this JSON file")
    args = ap.parse_args()

    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    batches = [1] if args.quick else [1, 8]
    rows = []
    for device in devices:
        modes = ["fp32", "tf32", "bf16"] if device.type == "cuda" else ["fp32"]
        for config in args.configs:
            for batch in batches:
                for mode in modes:
                    repeats = 1 if (args.quick or (device.type == "cpu" and config == "ffhq-1024")) else 3
                    rows.append(bench(config, device, batch, mode, repeats))
                    r = rows[-1]
                    print(f"  measured {config} {device.type} {mode} b{batch}: "
                          f"{r['fwd_ms']:.1f} / {r['fwd_bwd_ms']:.1f} ms per image", flush=True)

    name = torch.cuda.get_device_name() if torch.cuda.is_available() else platform.processor() or "cpu"
    print(f"\ntorch {torch.__version__}, {torch.get_num_threads()} CPU threads, GPU: "
          f"{name if torch.cuda.is_available() else 'none'}")
    print(f"| config | device | mode | batch | forward ms/img | fwd+bwd ms/img | (fwd+bwd)/fwd | rel. err vs fp32 |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        err = f"{r['rel_err']:.1e}" if "rel_err" in r else "-"
        print(f"| {r['config']} | {r['device']} | {r['mode']} | {r['batch']} | {r['fwd_ms']:.1f} | "
              f"{r['fwd_bwd_ms']:.1f} | {r['fwd_bwd_ms'] / r['fwd_ms']:.2f} | {err} |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
