"""Latent-optimisation speed: seconds per step and per 300-step w+ edit (one prompt), for the SynthFaces
preset (64 px generator + small CLIP + identity net) and the real pipeline's shapes (1024 px config-f
generator + ViT-B/32 + IR-SE50), with random weights: same compute as the real files.

    python benchmarks/bench_edit.py                 # both presets; 1024 only timed on a GPU unless --cpu-1024
    python benchmarks/bench_edit.py --cpu-1024 --batch 1 4 --steps 2   # the FFHQ preset on CPU, batch 1 and 4
    python benchmarks/bench_edit.py --steps 20      # fewer timed steps (the per-edit figure is extrapolated)
    python benchmarks/bench_edit.py --views 4       # CLIP scores 4 random crops per step (notebook 03's default)
Target (issue 5): a 300-step w+ edit at 1024 px in <= 5 s on an H100 (the paper: 98 s on a GTX 1080 Ti).
"""
import argparse
import itertools
import time

import torch

from styleclip_utils.weights import zoo
from styleclip_utils.losses.clip_loss import CLIPLoss
from styleclip_utils.losses.identity import IDLoss
from styleclip_utils.models.arcface import Backbone
from styleclip_utils.models.nets import ConvNetConfig, IdentityNet, SmallCLIPConfig, small_clip
from styleclip_utils.edit.optimize import EditConfig, edit
from styleclip_utils.models.stylegan2 import Generator
from styleclip_utils.weights.official import VIT_B32


def build(preset, device, views=0):
    torch.manual_seed(0)
    if preset == "synthfaces":
        # the shipped SynthFaces models' sizes, read from their records (random weights: the same compute)
        G = Generator(64, 256, 4, channels={4: 128, 8: 128, 16: 128, 32: 64, 64: 32})
        clip_model = small_clip(SmallCLIPConfig(**zoo.read_record("clip")["config"]))
        id_loss = IDLoss("synthfaces", IdentityNet(ConvNetConfig(64, 32, 128)))
    else:
        import clip

        G = Generator(1024)
        clip_model = clip.model.CLIP(**VIT_B32)
        id_loss = IDLoss("arcface", Backbone(50, "ir_se"))
    G = G.to(device).eval().requires_grad_(False)
    return G, CLIPLoss(clip_model.to(device), ["red hair"], views=views), id_loss.to(device)


def bench(preset, device, steps, mode, views=0, batch=1):
    G, clip_loss, id_loss = build(preset, device, views)
    G.memory_format = torch.channels_last
    ws = G.broadcast(G.mapping(torch.randn(batch, G.style_dim, device=device)))
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = mode == "tf32"
    precision = "bf16" if mode == "bf16" else "fp32"
    cfg = EditConfig(space="w+", steps=steps, precision=precision)
    edit(G, clip_loss, [0] * batch, ws, EditConfig(space="w+", steps=1, precision=precision), id_loss=id_loss,
         progress=False)  # warm-up
    if device.type == "cuda":
        torch.cuda.synchronize()
    t = time.perf_counter()
    edit(G, clip_loss, [0] * batch, ws, cfg, id_loss=id_loss, progress=False)
    if device.type == "cuda":
        torch.cuda.synchronize()
    per_step = (time.perf_counter() - t) / steps
    return dict(preset=preset, device=device.type, mode=mode, views=views, batch=batch, step_s=per_step,
                edit_300_s=300 * per_step / batch)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=30, help="timed steps per configuration")
    ap.add_argument("--cpu-1024", action="store_true", help="also time the 1024 preset on CPU (slow: ~10 s/step)")
    ap.add_argument("--views", type=int, default=0, help="random crops CLIP scores per step (0: official loss)")
    ap.add_argument("--batch", type=int, nargs="+", default=[1], help="faces edited together (one row each)")
    ap.add_argument("--only", choices=("synthfaces", "ffhq-1024"), help="time one preset only")
    args = ap.parse_args()
    rows = []
    for device in [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else []):
        for preset in [args.only] if args.only else ("synthfaces", "ffhq-1024"):
            if preset == "ffhq-1024" and device.type == "cpu" and not args.cpu_1024:
                continue
            for mode, batch in itertools.product(["fp32", "tf32", "bf16"] if device.type == "cuda" else ["fp32", "bf16"],
                                                 args.batch):
                steps = min(args.steps, 3) if device.type == "cpu" and preset != "synthfaces" else args.steps
                rows.append(bench(preset, device, steps, mode, args.views, batch))
                print(f"  measured {preset} {device.type} {mode} batch {batch}: {rows[-1]['step_s'] * 1000:.0f} ms/step",
                      flush=True)
    print(f"\ntorch {torch.__version__}, {torch.get_num_threads()} CPU threads, GPU: "
          f"{torch.cuda.get_device_name() if torch.cuda.is_available() else 'none'}")
    print("| preset | device | mode | CLIP views | batch | s/step | s per 300-step w+ edit (per face) |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['preset']} | {r['device']} | {r['mode']} | {r['views']} | {r['batch']} | {r['step_s']:.3f} | "
              f"{r['edit_300_s']:.1f} |")


if __name__ == "__main__":
    main()
