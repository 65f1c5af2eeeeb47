"""Train one model from its recipe, evaluate it, and (only when asked) export it into data/weights/.

    python -m styleclip_utils.train classifier                      # recipes/classifier.toml -> runs/train/classifier/
    python -m styleclip_utils.train classifier --resume             # continue a killed or extended run
    python -m styleclip_utils.train clip_3_neutral --export         # ... then write data/weights/synthfaces/clip.*
    python -m styleclip_utils.train generator_continue --set steps=4000 --set config.lr=0.001 --seconds 3600
    torchrun --nproc-per-node 2 -m styleclip_utils.train mapper     # on 2 processes (docs/scaling.md)

A finished run is evaluated (metrics.json) and exported into its own folder (<name>.safetensors + .json, which
the zoo loads and the next stage of a chain starts from). A run stopped by --seconds keeps its checkpoint;
run the same command with --resume to go on.
"""
import argparse
import sys
import time

from .. import dist
from . import recipes


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m styleclip_utils.train", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("recipe", help="a recipe name in recipes/ (e.g. classifier) or the path of a .toml file")
    ap.add_argument("--resume", action="store_true", help="continue the run folder's checkpoint")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="override a recipe value, e.g. steps=500, data.n_images=2000, train.lr=1e-3")
    ap.add_argument("--out", help="parent folder of the run folder (default: runs/train)")
    ap.add_argument("--seconds", type=float, help="stop after this long with a checkpoint (resume later)")
    ap.add_argument("--export", nargs="?", const="", default=None, metavar="DIR",
                    help="after training, write the model into DIR (default: data/weights/synthfaces)")
    ap.add_argument("--no-progress", action="store_true")
    args = ap.parse_args(argv)
    try:
        R = recipes.load_recipe(args.recipe, **dict(recipes.parse_override(item) for item in args.set))
    except recipes.RecipeError as e:
        ap.error(str(e))
    progress = not args.no_progress
    try:
        world = dist.init(R.device)
        return _train(ap, args, R, progress, world)
    finally:
        dist.close()


def _train(ap, args, R, progress, world):
    if world > 1:
        batch = recipes.global_batch(R)
        try:
            dist.check_batch(batch)
        except ValueError as e:
            ap.error(f"{R.name}: {e}")
        if dist.is_main():
            print(f"{R.name}: {world} processes, {batch // world} of the global batch of {batch} each")
    with dist.main_first():  # rank 0 renders the data set when it is missing; the others then read it
        data = recipes.load_data(R, progress=progress and dist.is_main())
    try:
        model, run = recipes.train(R, args.out, resume=args.resume, progress=progress, data=data,
                                   stop_by=time.time() + args.seconds if args.seconds else None)
    except (recipes.RunExistsError, FileNotFoundError) as e:
        ap.error(str(e))
    if not dist.is_main():  # every rank holds the same weights; rank 0 evaluates and exports them
        return 0
    if run.step < R.steps:
        print(f"{R.name}: stopped at step {run.step} of {R.steps} -> {run.out_dir}; run again with --resume")
        return 0
    metrics = recipes.evaluate(R, model, data)
    recipes.write_json(run.out_dir / "metrics.json", metrics)
    # the run folder is a weights folder too (the zoo loads it; the next stage of a chain starts from it)
    recipes.export(R, model, run, metrics, run.out_dir, root=data[0])
    print(f"{R.name}: {run.step} steps in {run.elapsed:.0f} s of training -> {run.out_dir}")
    print(recipes.headline(R, metrics))
    if args.export is not None:
        path = recipes.export(R, model, run, metrics, args.export or None, root=data[0])
        print(f"exported -> {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
