#!/usr/bin/env bash
# Train recipes on a GPU lease, side by side (on a GPU the small models are launch-bound, so several processes
# train in about the time of the slowest), each time-boxed, then evaluate and export each into its run folder.
#
#   scripts/train_on_gpu.sh RESULTS_DIR [RECIPE[:KEY=VALUE,...] ...]     # default: generator_continue
#   scripts/train_on_gpu.sh out generator_continue:config.batch=32 generator_continue:config.batch=64
#
# Settings (environment):
#   BUDGET   seconds from the start by which training must end (default 420); runs resume with --resume
#   WORKERS  processes rendering SynthFaces (default 16)
# RESULTS_DIR gets results.tgz (split in 15 MB parts): each run folder's log, recipe, metrics and exported
# model, the console logs and gpu.log. Nothing is written into data/weights/: export a run that measured
# better with `python -m styleclip_utils.train RECIPE --resume --export` (same overrides).
set -uo pipefail
RESULTS=${1:?usage: scripts/train_on_gpu.sh RESULTS_DIR [RECIPE[:KEY=VALUE,...] ...]}
shift
SPECS=("${@:-generator_continue}")
PY=${PY:-python3}
BUDGET=${BUDGET:-420}
WORKERS=${WORKERS:-16}
T0=$(date +%s)
export PYTHONUNBUFFERED=1 OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
cd "$(dirname "$0")/.."
mkdir -p "$RESULTS" runs/train
log() { echo "[$(($(date +%s) - T0)) s] $*"; }

pack() {  # whatever exists, also after a failure
    tar czf runs/results.tgz --ignore-failed-read --exclude=checkpoint.pt runs/train runs/*.log 2>/dev/null
    split -b 15m -d runs/results.tgz "$RESULTS/results.tgz.part"
    log "packed $(du -h runs/results.tgz | cut -f1)"
}
trap pack EXIT

# Render each recipe's data once, before the runs start (they would otherwise race to write it).
for spec in "${SPECS[@]}"; do
    name=${spec%%:*}; sets=(); [[ "$spec" == *:* ]] && IFS=, read -ra sets <<< "${spec#*:}"
    $PY - "$name" "${sets[@]}" <<'PY' || exit 1
import sys
from styleclip_utils.data import synthfaces
from styleclip_utils.paths import DATA_DIR
from styleclip_utils.train import recipes
R = recipes.load_recipe(sys.argv[1], **dict(recipes.parse_override(s) for s in sys.argv[2:]))
n, size, seed = R.data["n_images"], R.data["size"], R.data["seed"]
synthfaces.ensure_synthfaces(DATA_DIR / f"synthfaces_{size}px_n{n}_seed{seed}", n=n, size=size, seed=seed,
                             workers=int(__import__("os").environ.get("WORKERS", 16)), progress=False)
PY
done
log "data ready"

i=0
for spec in "${SPECS[@]}"; do
    name=${spec%%:*}; args=(); [[ "$spec" == *:* ]] && IFS=, read -ra sets <<< "${spec#*:}" \
        && for s in "${sets[@]}"; do args+=(--set "$s"); done
    $PY -m styleclip_utils.train "$name" --resume --no-progress --seconds $((T0 + BUDGET - $(date +%s) - 30)) \
        "${args[@]}" > "runs/train_$i.log" 2>&1 &
    i=$((i + 1))
done
command -v nvidia-smi > /dev/null && for t in 60 180; do  # how busy the GPU is with all runs on it
    (sleep $t; nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader >> runs/gpu.log) &
done
wait
log "training done"
tail -n 3 runs/train_*.log
