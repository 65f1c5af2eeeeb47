"""Search notebook 03's edit recipe on the scorecard: the search prompts and faces only (edit/evaluate.py's
SEARCH_PROMPTS, SEARCH_SEED); the chosen recipe is then reported by notebook 03 on faces and prompts the
search never saw. Writes runs/edit_search/search.json and prints the table (docs/edit-recipe-search.md).

    python scripts/search_edit_recipe.py [N]        # stage 1: space x identity weight; stage 2: lr x L2 (N faces/prompt)
"""
import json
import sys
import time

import torch

from styleclip_utils.edit.evaluate import SEARCH_PROMPTS, recipe_of, search
from styleclip_utils.edit.scorecard import load_judges
from styleclip_utils.losses.identity import IDLoss
from styleclip_utils.paths import RUNS_DIR
from styleclip_utils.weights import zoo


def table(rows, keys=("space", "views", "steps", "lr", "l2_lambda", "id_lambda")):
    out = ["| " + " | ".join(keys) + " | good | success | identity kept | realistic | preserved | s/edit |",
           "|" + "---|" * (len(keys) + 6)]
    for r in rows:
        out.append("| " + " | ".join(str(r[k]) for k in keys) + f" | {100 * r['good']:.0f}% | {100 * r['success']:.0f}% | "
                   f"{100 * r['identity_kept']:.0f}% | {100 * r['realistic']:.0f}% | {100 * r['preserved']:.0f}% | "
                   f"{r['seconds']:.2f} |")
    return "\n".join(out)


def main():
    torch.manual_seed(0)
    G, clip_model = zoo.load_generator(), zoo.load_clip()
    judges = load_judges(clip_model=clip_model)
    id_loss = IDLoss("synthfaces", zoo.load_identity_net())
    t0 = time.time()
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 2
    stage1 = search(G, clip_model, id_loss, judges, dict(space=["w+", "w", "s", "coarse", "medium", "fine"],
                                                         id_lambda=[0.005, 0.3]), n=n)
    best = stage1[0]
    stage2 = search(G, clip_model, id_loss, judges, dict(lr=[0.03, 0.1], l2_lambda=[0.008, 0.05]), n=n,
                    base=dict(space=best["space"], id_lambda=best["id_lambda"]))
    rows = sorted(stage1 + stage2, key=lambda r: -r["good"])
    out = RUNS_DIR / "edit_search"
    out.mkdir(parents=True, exist_ok=True)
    (out / "search.json").write_text(json.dumps(dict(prompts=SEARCH_PROMPTS, faces_per_prompt=n, stage1=stage1,
                                                     stage2=stage2, best=recipe_of(rows[0]),
                                                     seconds=round(time.time() - t0)), indent=1) + "\n")
    print("## stage 1: space x identity weight\n\n" + table(stage1))
    print("\n## stage 2: lr x L2 in the best space of stage 1\n\n" + table(stage2))
    print(f"\nbest: {recipe_of(rows[0])} ({time.time() - t0:.0f} s)")


if __name__ == "__main__":
    main()
