"""e4e inversion speed: milliseconds per image for one encoder forward pass (no generator), at the SynthFaces
size (the recipe's encoder, 64 px in) and at the official size (Encoder4Editing(50, 'ir_se'), 256 px in, 18
rows), with random weights (the same compute as trained ones), batch 1 and 16; GPU rows when one is visible.

    python benchmarks/bench_e4e.py [--repeats N]
The e4e paper reports 0.106 s per image for the official encoder (one GPU; HyperStyle's table).
"""
import argparse
import time

import torch

from styleclip_utils.models.e4e import E4E, E4EConfig
from styleclip_utils.train.recipes import load_recipe, model_config


def bench(cfg, device, batch, repeats, precision):
    torch.manual_seed(0)
    E = E4E(cfg).to(device).eval().requires_grad_(False)
    x = torch.rand(batch, 3, cfg.in_size, cfg.in_size, device=device) * 2 - 1
    ctx = torch.autocast(device.type, dtype=torch.bfloat16) if precision == "bf16" else torch.autocast(device.type, enabled=False)
    with torch.no_grad(), ctx:
        E(x)  # warm-up
        if device.type == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        for _ in range(repeats):
            E(x)
        if device.type == "cuda":
            torch.cuda.synchronize()
    return 1000 * (time.perf_counter() - t) / repeats / batch


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    configs = {"synthfaces (recipe e4e, 64 px)": model_config(load_recipe("e4e"), 1),
               "official IR-SE50 (256 px, 18 rows)": E4EConfig()}
    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads, GPU: "
          f"{torch.cuda.get_device_name() if torch.cuda.is_available() else 'none'}")
    print("| encoder | device | precision | batch | ms/image |")
    print("|---|---|---|---|---|")
    for name, cfg in configs.items():
        for device in devices:
            for precision in ("fp32", "bf16"):
                for batch in (1, 16):
                    repeats = max(1, args.repeats // (4 if "official" in name and device.type == "cpu" else 1))
                    ms = bench(cfg, device, batch, repeats, precision)
                    print(f"| {name} | {device.type} | {precision} | {batch} | {ms:.1f} |", flush=True)


if __name__ == "__main__":
    main()
