"""The latent mapper: training time to the plateau of the shipped SynthFaces mappers (from their records'
loss curves), and the time per edit at batch 1 and 64, the mapping alone and with the render, for the
SynthFaces mappers and for the official FFHQ size (LevelsMapper 4 x 512 per level, 18 rows; the 1024 px
generator's render timed at batch 1 only). GPU rows when one is visible.

    python benchmarks/bench_mapper.py [--skip-ffhq]

Plateau: the first logged step from which the CLIP loss, averaged over 5 log points, stays within 0.02 of
its average over the last 5 (the loss is noisy at batch 8). The paper: 10-12 h of training per prompt on a
GTX 1080 Ti (50,000 steps at batch 2), then 75 ms per edit.
"""
import argparse

import torch

from timing import timed
from styleclip_utils.models.mapper import ConditionedMapper, LevelsMapper, MapperConfig, mapper_slug
from styleclip_utils.weights import zoo


def plateau(curve, window=5, tol=0.02):
    """(plateau step, total steps) from a record's curve."""
    loss, steps = curve["loss_clip"], curve["step"]
    smooth = [sum(loss[max(0, i - window + 1):i + 1]) / len(loss[max(0, i - window + 1):i + 1]) for i in range(len(loss))]
    final = sum(loss[-window:]) / len(loss[-window:])
    for i in range(len(smooth)):
        if all(abs(v - final) <= tol for v in smooth[i:]):
            return steps[i], steps[-1]
    return steps[-1], steps[-1]


def training_rows():
    print("| mapper | levels | steps | plateau at step | training s (CPU) | to plateau s | CLIP loss first -> last |")
    print("|---|---|---|---|---|---|---|")
    rows = [(p, zoo.read_record(f"mappers/{mapper_slug(p)}")) for p in zoo.mapper_prompts()]
    cond = zoo.SYNTHFACES_DIR / "mappers" / "conditioned.json"
    if cond.exists():
        rows.append(("conditioned (42 texts)", zoo.read_record("mappers/conditioned")))
    total = 0
    for name, r in rows:
        at, steps = plateau(r["curve"])
        per_step = r["wall_time_s"] / r["steps"]
        total += r["wall_time_s"] if not name.startswith("conditioned") else 0
        c = r["curve"]["loss_clip"]
        print(f"| {name} | {'+'.join(r['config']['levels'])} | {steps} | {at} | {r['wall_time_s']} | {at * per_step:.0f} | "
              f"{c[0]:.3f} -> {c[-1]:.3f} |", flush=True)
    print(f"per-prompt mappers: {total} s of training in all ({total / 60:.0f} min on 2 CPU cores)")


def edit_rows(name, M, G, device, text_dim=None):
    M = M.to(device).eval()
    for batch in (1, 64):
        ws = torch.randn(batch, G.n_latent if G is not None else 18, M.cfg.dim, device=device)
        t = torch.randn(batch, text_dim, device=device) if text_dim else None
        with torch.no_grad():
            mapping = timed(lambda: M.edit(ws, t) if t is not None else M.edit(ws), device, repeats=5)
            render = timed(lambda: G.synthesis(ws, noise_mode="const"), device, repeats=2) if G is not None and (
                batch == 1 or G.size <= 256) else None
        full = f"{(mapping + render) / batch * 1e3:.2f}" if render is not None else "–"
        print(f"| {name} | {device.type} | {batch} | {mapping / batch * 1e3:.3f} | {full} |", flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--skip-ffhq", action="store_true")
    args = ap.parse_args()
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads\n")
    training_rows()
    print("\n| mapper | device | batch | ms/edit, mapping | ms/edit, mapping + render |")
    print("|---|---|---|---|---|")
    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    for device in devices:
        G = zoo.load_generator(device)
        prompt = zoo.mapper_prompts()[0]
        edit_rows(f"SynthFaces per prompt ({prompt})", zoo.load_mapper(prompt, device), G, device)
        if (zoo.SYNTHFACES_DIR / "mappers" / "conditioned.json").exists():
            C = zoo.load_conditioned_mapper(device)
            edit_rows("SynthFaces conditioned", C, G, device, C.text_dim)
        if not args.skip_ffhq:
            from styleclip_utils.models.stylegan2 import Generator
            G1024 = Generator(1024, 512, 8).to(device).eval()
            edit_rows("FFHQ size (official LevelsMapper)", LevelsMapper(MapperConfig(dim=512)), G1024, device)
            edit_rows("FFHQ size, conditioned", ConditionedMapper(MapperConfig(dim=512), 512), None, device, 512)


if __name__ == "__main__":
    main()
