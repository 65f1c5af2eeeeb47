"""Precompute the exact relevance (fs3) of the shipped SynthFaces generator and CLIP: the official definition
on 100 faces (each of the 928 non-toRGB channels set to mean ± 5σ, restored before the next), the reference
notebook 05 measures the fast (Jacobian) relevance against. Resumable: rerun the same command after an
interruption and it goes on from its cache.

    python scripts/precompute_relevance.py [--n-images 100] [--device auto]
    torchrun --nproc-per-node 8 scripts/precompute_relevance.py      # channels split over 8 GPUs (docs/scaling.md)

About 25 minutes on a 2-core CPU; writes data/weights/synthfaces/relevance_exact.safetensors and .json.
Under torchrun each process computes a chunk of the channels (resumable on its own), rank 0 writes the files.
"""
import argparse

import torch

from styleclip_utils import dist
from styleclip_utils.device import resolve_device
from styleclip_utils.edit import global_directions as gd
from styleclip_utils.paths import RUNS_DIR
from styleclip_utils.weights import zoo


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n-images", type=int, default=100)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--out", default=str(zoo.SYNTHFACES_DIR / "relevance_exact.safetensors"))
    ap.add_argument("--cache", default=str(RUNS_DIR / "relevance" / "exact_cache.pt"))
    args = ap.parse_args()
    dist.init(args.device)
    dev = resolve_device(args.device)
    torch.set_grad_enabled(False)
    G, clip_model = zoo.load_generator(dev), zoo.load_clip(dev)
    from pathlib import Path
    Path(args.cache).parent.mkdir(parents=True, exist_ok=True)
    rel = gd.compute_relevance(G, clip_model, "exact", n_images=args.n_images, cache=args.cache, batch=400)
    rel.about["note"] = "seconds: this run's own (a resumed run counts only its part)"
    rel.about["processes"] = dist.world_size()
    if dist.is_main():
        rel.save(args.out)
        print(f"{len(rel.channels)} channels x {args.n_images} faces in {rel.about['seconds']:.0f} s on "
              f"{dist.world_size()} process(es) -> {args.out}")
    dist.close()


if __name__ == "__main__":
    main()
