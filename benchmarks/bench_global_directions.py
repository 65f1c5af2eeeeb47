"""Global directions: the relevance precompute (exact: the official definition; fast: the Jacobian) and the
edit latency, for the shipped SynthFaces models and, projected, for FFHQ 1024 with ViT-B/32 (random weights of
the official layouts: the same compute as the real ones). GPU rows when one is visible.

    python benchmarks/bench_global_directions.py [--skip-ffhq]

Exact precompute = channels × images × 2 renders (+ CLIP); timed on 16 channels and scaled. Fast (rank 48,
bf16): timed whole for SynthFaces; for FFHQ projected from one forward and one backward pass. The paper:
4 h of pre-processing on a GTX 1080 Ti for FFHQ, then 72 ms per edit.
"""
import argparse
import time

import torch

from timing import sync, timed
from styleclip_utils.edit import global_directions as gd


def precompute_rows(name, G, clip_model, device, n_images, exact_channels):
    """Exact: `exact_channels` channels over all n_images faces (the precompute's own batches), scaled to every
    channel. Fast: the whole default run (rank 48, bf16) over the n_images faces, timed once."""
    mean, std = gd.style_stats(G, 10000)
    channels = gd.channel_index(G)
    styles = gd.sample_styles(G, n_images, seed=1).to(device)
    with torch.no_grad():
        t_exact = timed(lambda: gd.exact_relevance(G, clip_model, styles, mean.to(device), std.to(device),
                                                   channels[:exact_channels], batch=400, progress=False), device)
    per_render = t_exact / (exact_channels * 2 * n_images)
    sync(device)
    t = time.perf_counter()
    gd.fast_relevance(G, clip_model, styles, channels, progress=False)
    sync(device)
    fast_total = time.perf_counter() - t
    exact_total = per_render * len(channels) * 2 * n_images
    print(f"| {name} | {device.type} | {len(channels)} × {n_images} | {per_render * 1e3:.1f} ms/render | "
          f"{exact_total:,.0f} s ({exact_total / 3600:.1f} h) | {fast_total / n_images:.2f} s/image | {fast_total:,.0f} s | "
          f"{exact_total / fast_total:.0f}× |", flush=True)


def projection_row(name, G, clip_model, device, n_images):
    """At 1024 px even one Jacobian is long on a CPU: time one render + CLIP forward and one backward pass,
    and project (exact: 2 renders per channel and image; fast: one forward and D backward passes per image)."""
    n128 = len(gd.channel_index(G, max_resolution=128))
    s = gd.sample_styles(G, 1, seed=1).to(device)
    with torch.no_grad():
        t_fwd = timed(lambda: gd.image_embedding(clip_model, G.synthesis_from_s(gd.from_flat(G, s))), device)

    def fwd_bwd():
        x = s.clone().requires_grad_(True)
        f = gd.image_embedding(clip_model, G.synthesis_from_s(gd.from_flat(G, x)))
        torch.autograd.grad(f[0, 0], x)
    t_bwd = max(timed(fwd_bwd, device) - t_fwd, 0.0)
    d, rank, basis = clip_model.text_projection.shape[1], 48, 4   # fast_relevance's defaults
    exact_total = t_fwd * n128 * 2 * n_images
    # the basis faces' full Jacobians (D passes), then every face's rank passes
    fast_total = basis * (t_fwd + d * t_bwd) + n_images * (t_fwd + rank * t_bwd)
    print(f"| {name} | {device.type} | {n128} × {n_images} | {t_fwd * 1e3:.0f} ms/render | {exact_total:,.0f} s "
          f"({exact_total / 3600:.1f} h) | {fast_total / n_images:.0f} s/image (backward {t_bwd:.2f} s; {basis}×{d} + "
          f"{n_images}×{rank} of them) | {fast_total:,.0f} s ({fast_total / 3600:.1f} h) | {exact_total / fast_total:.0f}× |",
          flush=True)


def latency_row(name, G, clip_model, device):
    # the latency does not depend on fs3's values: a random relevance of the right shape (a real one would take
    # 512 backward passes of the 1024 px generator to make)
    mean, std = gd.style_stats(G, 2000)
    channels = gd.channel_index(G)
    fs3 = torch.nn.functional.normalize(torch.randn(len(channels), clip_model.text_projection.shape[1]), dim=1)
    rel = gd.Relevance(fs3, channels, mean, std, {}).to(device)
    dt = gd.text_direction(clip_model, "face with red hair", "face").to(device)
    ws = G.broadcast(G.mapping(torch.randn(1, G.style_dim, device=device), 0.7))
    with torch.no_grad():
        t = timed(lambda: gd.manipulate(G, ws, rel.direction(dt, 0.0), 4.0), device, repeats=3)
    print(f"| {name} | {device.type} | edit latency (Δs + one render) | {1000 * t:.0f} ms |", flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--skip-ffhq", action="store_true")
    args = ap.parse_args()
    from styleclip_utils.weights import zoo

    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads, GPU: "
          f"{torch.cuda.get_device_name() if torch.cuda.is_available() else 'none'}")
    print("| models | device | channels × images | exact: cost | exact: total | fast: cost | fast: total | ratio |")
    print("|---|---|---|---|---|---|---|---|")
    ffhq = None
    for device in devices:
        G, C = zoo.load_generator(device), zoo.load_clip(device)
        precompute_rows("SynthFaces 64 px, small CLIP (128-d)", G, C, device, 100, 16)
        if not args.skip_ffhq:
            import clip

            from styleclip_utils.models.stylegan2 import Generator
            from styleclip_utils.weights.official import VIT_B32
            torch.manual_seed(0)
            Gf = Generator(1024, 512, 8, 2).to(device).eval().requires_grad_(False)
            Gf.mean_latent(1000)
            Cf = clip.model.CLIP(**VIT_B32).to(device).float().eval().requires_grad_(False)
            ffhq = (Gf, Cf)
            projection_row("FFHQ 1024, ViT-B/32 (512-d), channels ≤ 128 px (official), projected", Gf, Cf, device, 100)
    print()
    print("| models | device | what | time |")
    print("|---|---|---|---|")
    for device in devices:
        latency_row("SynthFaces 64 px", zoo.load_generator(device), zoo.load_clip(device), device)
        if ffhq is not None:
            latency_row("FFHQ 1024", ffhq[0].to(device), ffhq[1].to(device), device)


if __name__ == "__main__":
    main()
