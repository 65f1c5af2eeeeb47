"""The per-level ablation of the latent mapper: a hair-style prompt and a hair-colour prompt, each trained with
all three levels, without the fine level (StyleCLIP's choice for styles and expressions) and with the fine level
alone, then scored by the judges on the same held-out faces. Trains what runs/train/ lacks (recipes/mapper.toml,
about 2 minutes a mapper on 2 CPU cores); prints a Markdown table (docs/mapper.md keeps it).

    .venv/bin/python scripts/mapper_levels_ablation.py [--prompts afro "purple hair"] [--n 32]
"""
import argparse
import json

from styleclip_utils.edit.evaluate import start_faces
from styleclip_utils.edit.mapper import mapper_edits
from styleclip_utils.edit.report import pct
from styleclip_utils.edit.scorecard import load_judges, summarize
from styleclip_utils.models.mapper import consistency
from styleclip_utils.train import recipes
from styleclip_utils.weights import zoo

LEVELS = {"coarse+medium+fine": ["coarse", "medium", "fine"], "coarse+medium": ["coarse", "medium"], "fine": ["fine"]}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--prompts", nargs="+", default=["afro", "purple hair"])
    ap.add_argument("--n", type=int, default=32, help="held-out faces per prompt")
    ap.add_argument("--alpha", type=float, default=1.0)
    args = ap.parse_args()
    G = zoo.load_generator()
    judges = load_judges()
    rows = []
    print("| prompt | levels | good | success | same person | realistic | kept | consistency |")
    print("|---|---|---|---|---|---|---|---|")
    for prompt in args.prompts:
        starts = start_faces(G, judges.attributes, [prompt], args.n, 0.7, seed=100)
        for name, levels in LEVELS.items():
            # the recipe's own levels are not an override: the same run folder as scripts/train_mappers.sh
            default = levels == recipes.load_recipe("mapper", **{"train.prompt": prompt}).config["levels"]
            R = recipes.load_recipe("mapper", **{"train.prompt": prompt}, **({} if default else {"config.levels": levels}))
            M, run = recipes.train(R, resume=True, progress=False)
            _, card, _ = mapper_edits(G, {prompt: M}, judges, [prompt], starts, alpha=args.alpha)
            s = summarize(card)
            c = consistency(M, starts[1])
            rows.append(dict(prompt=prompt, levels=name, consistency=c, **s))
            print(f"| {prompt} | {name} | {pct(s['good'])} | {pct(s['success'])} | {pct(s['identity_kept'])} | "
                  f"{pct(s['realistic'])} | {pct(s['preserved'])} | {c:.2f} |", flush=True)
    print(json.dumps(dict(alpha=args.alpha, n=args.n, rows=rows)))


if __name__ == "__main__":
    main()
