#!/usr/bin/env bash
# Train the four SynthFaces models on a GPU lease, all at once, then execute notebook 00 in place: it finds
# the finished checkpoints, evaluates, and exports data/weights/synthfaces/ with its records and figures.
#
#   scripts/train_on_gpu.sh RESULTS_DIR
#
# Settings (environment):
#   PARAMS       notebook 00 parameter values to commit first, a Python dict literal
#   BUDGET       seconds from the start by which training must end (the GAN is time-boxed; the CLIP's steps
#                are sized from a timed trial to end by then: its cosine schedule needs its length up front)
#   GAN_BATCHES  StyleGAN2 batch sizes to train side by side; the one whose generated attribute frequencies
#                are closest to the data's (the notebook's bar) ships, and the comparison is written
#   WORKERS      processes rendering SynthFaces
#   MPS=1        start CUDA's Multi-Process Service first (falls back to plain time-slicing if it fails)
# RESULTS_DIR gets: results.tgz (split in 15 MB parts) with the executed notebook, the weights, the run's
# figures and logs, and gan_selection.json.
set -uo pipefail
RESULTS=${1:?usage: scripts/train_on_gpu.sh RESULTS_DIR}
PY=${PY:-python3}
BUDGET=${BUDGET:-420}
GAN_BATCHES=${GAN_BATCHES:-"32 64"}
WORKERS=${WORKERS:-16}
NB=00_train_synthfaces_models
T0=$(date +%s)
export PYTHONUNBUFFERED=1 OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
cd "$(dirname "$0")/.."
mkdir -p "$RESULTS" runs
log() { echo "[$(($(date +%s) - T0)) s] $*"; }
param() { $PY -c "from styleclip_utils.runs import notebook_parameters as p; print(p('$NB')['$1'])"; }

pack() {  # whatever exists, also after a failure: the weights are written model by model
    tar czf runs/results.tgz --ignore-failed-read notebooks/$NB.ipynb data/weights/synthfaces \
        $(ls runs/$NB/*.png runs/$NB/*.json runs/*/*/log.jsonl runs/*/*/config.json runs/*.log runs/$NB/*/log.jsonl 2>/dev/null)
    split -b 15m -d runs/results.tgz "$RESULTS/results.tgz.part"
    log "packed $(du -h runs/results.tgz | cut -f1)"
}
trap pack EXIT

if [ "${MPS:-0}" = 1 ]; then  # CUDA MPS: the processes' kernels share the GPU instead of taking turns
    nvidia-cuda-mps-control -d && timeout 60 $PY -c "import torch; torch.ones(1, device='cuda').sum().item()" \
        && log "MPS on" || { echo quit | nvidia-cuda-mps-control; log "MPS failed: without it"; }
fi
[ -n "${PARAMS:-}" ] && $PY -c "from styleclip_utils.runs import set_parameters; set_parameters('$NB', **$PARAMS)"
N=$(param n_images); S=$(param size)
RETRAIN=" $($PY -c "from styleclip_utils.runs import notebook_parameters as p; print(*p('$NB')['retrain'])") "
retrains() { [[ "$RETRAIN" == *" $1 "* ]]; }   # models not in `retrain` are the shipped ones: not trained here
$PY -m styleclip_utils.synthfaces --out data/synthfaces_${S}px_n${N}_seed0 --n "$N" --size "$S" --workers "$WORKERS" \
    --no-progress > runs/synthfaces.log 2>&1 || { cat runs/synthfaces.log; exit 1; }
log "data ready: $(head -1 runs/synthfaces.log)"

train() {  # model, log name, then train_all arguments
    local model=$1 name=$2; shift 2
    $PY -m styleclip_utils.train_all "$model" --no-progress "$@" > "runs/$name.log" 2>&1 &
}
deadline=$((T0 + BUDGET))
retrains classifier && train classifier classifier
retrains identity && train identity identity
retrains stylegan2 || GAN_BATCHES=""
for b in $GAN_BATCHES; do
    train stylegan2 gan_b$b -p steps_gan 1000000 -p batch_gan "$b" -p out_dir "runs/gan_b$b" --seconds $((deadline - $(date +%s) - 15))
done
if retrains clip; then
    # A timed trial of the CLIP (steps 20-40, past cuDNN's warm-up, beside the other runs) sizes the real run.
    rm -rf runs/clip_trial
    $PY -m styleclip_utils.train_all clip --no-progress -p steps_clip 40 -p out_dir runs/clip_trial \
        > runs/clip_trial.log 2>&1 || { cat runs/clip_trial.log; exit 1; }
    steps_clip=$($PY - <<PY
import json, time
log = [json.loads(l) for l in open("runs/clip_trial/clip/log.jsonl")]
per_step = (log[-1]["seconds"] - log[1]["seconds"]) / (log[-1]["step"] - log[1]["step"])
left = $deadline - time.time() - 20   # data loading and the final checkpoint
print(max(250, int(0.9 * left / per_step) // 250 * 250))
PY
)
    log "CLIP trial done; steps_clip=$steps_clip"
    $PY -c "from styleclip_utils.runs import set_parameters; set_parameters('$NB', steps_clip=$steps_clip)"
    train clip clip
fi
command -v nvidia-smi > /dev/null && for t in 60 180; do  # how busy the GPU is with all runs on it
    (sleep $t; nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader >> runs/gpu.log) &
done
wait
log "training done"; cat runs/gpu.log 2>/dev/null; tail -n 2 runs/*.log

# The GAN variant that ships: most prompt attributes within ±50% of the data's frequency, then the smallest
# worst error. Each variant's generator comes from its checkpoint through the notebook's own calls; the judge
# is the classifier of this run, or the shipped one when it is not retrained.
[ -z "$GAN_BATCHES" ] || $PY - <<PY || exit 1
import json
import os
import shutil
from styleclip_utils import evaluate, models, train_all
from styleclip_utils.checkpoints import load_checkpoint
from styleclip_utils.runs import notebook_parameters, set_parameters
P = notebook_parameters("$NB")
_, train, test = train_all.load_data(P)
judge = (train_all.classifier(P, train, progress=False)[0] if "classifier" in P["retrain"]
         else models.load_classifier(train_all.device_of(P)))
rows = []
for b in "$GAN_BATCHES".split():
    out = f"runs/gan_b{b}"
    step = load_checkpoint(f"{out}/stylegan2/checkpoint.pt")["step"]
    Q = dict(P, batch_gan=int(b), out_dir=out, steps_gan=step)
    G, _ = train_all.stylegan2(Q, train, progress=False)
    _, _, rel = evaluate.frequency_check(G, judge, test["attrs"], n=P["eval_images"], seed=P["seed"],
                                         device=train_all.device_of(P))
    rows.append(dict(batch_gan=int(b), steps=step, images=step * int(b), within=sum(v <= 0.5 for v in rel.values()),
                     worst=max(rel.values()), relative_error=rel))
    print({k: v for k, v in rows[-1].items() if k != "relative_error"})
best = max(rows, key=lambda r: (r["within"], -r["worst"]))
os.makedirs("runs/$NB", exist_ok=True)
json.dump(dict(chosen=best["batch_gan"], variants=rows), open("runs/$NB/gan_selection.json", "w"), indent=1)
set_parameters("$NB", batch_gan=best["batch_gan"], steps_gan=best["steps"])
shutil.rmtree("runs/$NB/stylegan2", ignore_errors=True)
shutil.move(f"runs/gan_b{best['batch_gan']}/stylegan2", "runs/$NB/stylegan2")
PY
log "GAN chosen"
$PY -m styleclip_utils.runs $NB --inplace > runs/notebook.log 2>&1; rc=$?
tail -n 5 runs/notebook.log
log "notebook 00 rc=$rc"
exit $rc
