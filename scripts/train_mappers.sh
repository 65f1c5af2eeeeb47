#!/usr/bin/env bash
# Train and ship the SynthFaces latent mappers: one per notebook-03 prompt (recipes/mapper.toml) and the
# text-conditioned one (recipes/mapper_conditioned.toml), into data/weights/synthfaces/mappers/.
# As StyleCLIP trains them: hair-style and expression prompts with the fine level off, colours and the
# rest with all three levels (docs/mapper.md has the ablation).
# About 30 + 10 minutes on 2 CPU cores. A killed run resumes: run the script again (each run keeps its
# checkpoint in runs/train/). Extra arguments go to every call, e.g. --set device=cuda.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
PROMPTS=$($PY -c "from styleclip_utils.data.attributes import PROMPT_ATTRIBUTES; print('\n'.join(PROMPT_ATTRIBUTES))")
NO_FINE="curly hair|bald|mohawk|afro|bob-cut|smiling|surprised"
while IFS= read -r prompt; do
  levels=()
  if [[ "$prompt" =~ ^($NO_FINE)$ ]]; then levels=(--set 'config.levels=["coarse", "medium"]'); fi
  $PY -m styleclip_utils.train mapper --set "train.prompt=\"$prompt\"" "${levels[@]}" --resume --export --no-progress "$@"
done <<< "$PROMPTS"
$PY -m styleclip_utils.train mapper_conditioned --resume --export --no-progress "$@"
