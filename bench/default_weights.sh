#!/usr/bin/env bash
# The shipped default weights: the `lite` network trained on seeded synthetic data, evaluated on
# a held-out synthetic split. Run from the repository root on a machine with a GPU (it runs on a
# CPU too, slowly). Everything lands in ${OUT:-runs/default}.
#   FRAMES (12000) TEST_FRAMES (500) EPOCHS (12) BATCH (64) LR (5e-4) MINUTES (4.5) WORKERS (nproc)
set -euo pipefail
out=${OUT:-runs/default}
frames=${FRAMES:-12000}; test_frames=${TEST_FRAMES:-500}; epochs=${EPOCHS:-12}
batch=${BATCH:-64}; lr=${LR:-5e-4}; minutes=${MINUTES:-4.5}; workers=${WORKERS:-$(nproc)}
data=${DATA:-/tmp/hoposer-synth}
hoposer() { python3 -m hoposer.cli "$@"; }
mkdir -p "$out"
start=$(date +%s)
hoposer train synth --out "$data" --frames "$frames" --seed 0 --size 256 --workers "$workers"
hoposer train synth --out "$data" --frames "$test_frames" --seed 1 --size 256 \
  --split evaluation --workers "$workers"
echo "synth: $(( $(date +%s) - start )) s for $((frames + test_frames)) frames" | tee "$out/log.txt"
hoposer train fit --data "$data" --out "$data/run" --config lite --epochs "$epochs" \
  --batch-size "$batch" --lr "$lr" --lr-step 4 --lr-gamma 0.5 --workers "$((workers - 2))" \
  --hand-model standin --seed 0 --max-minutes "$minutes" --checkpoint-every 0
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
# The device tool returns files of at most 16 MiB: split, to be joined with `cat`.
split -b 15M -d "$out/lite-synthetic.safetensors" "$out/lite-synthetic.safetensors.part"
rm "$out/lite-synthetic.safetensors"
echo "total: $(( $(date +%s) - start )) s" | tee -a "$out/log.txt"
