"""`torchrun` runs the same `hoposer train fit` as data-parallel ranks (gloo on a CPU)."""

import dataclasses
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from hoposer.model import get_config
from hoposer.train.synth import SynthOptions, generate

LAUNCHER_LOG = re.compile(r"[IWE]\d{4} \d\d:\d\d")


@pytest.mark.slow
def test_two_cpu_ranks_train_and_report_every_image(tmp_path):
    torchrun = Path(sys.executable).with_name("torchrun")
    if not torchrun.is_file() and shutil.which("torchrun") is None:
        pytest.skip("torchrun not found beside this Python")
    data = tmp_path / "data"
    generate(SynthOptions(out=str(data), frames=8, size=96, sequence_length=8, workers=1))
    config = tmp_path / "tiny.json"
    config.write_text(dataclasses.replace(get_config("lite"), input_size=96, roi_size=16).to_json())
    run = tmp_path / "run"
    # --standalone: a free rendezvous port, not the fixed 29500 another job may hold.
    command = [str(torchrun), "--standalone", "--nproc_per_node", "2", "-m", "hoposer.cli",
               "train", "fit", "--data", str(data), "--out", str(run), "--config", str(config),
               "--epochs", "1", "--batch-size", "2", "--workers", "0", "--hand-model", "standin",
               "--device", "cpu"]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    # What the ranks said: the launcher's own log lines and traceback would crowd it out.
    ranks_said = done.stderr.split("\nTraceback (most recent call last):")[0]
    ranks_said = "\n".join(line for line in ranks_said.splitlines() if not LAUNCHER_LOG.match(line))
    assert done.returncode == 0, ranks_said[-3000:]
    summary = json.loads((run / "metrics.jsonl").read_text().splitlines()[-1])
    assert summary["images"] == 8  # 4 per rank, summed
    assert (run / "model.safetensors").is_file() and (run / "state.pt").is_file()

    # The same --out again without --resume: every rank stops with the one-line error.
    again = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert again.returncode != 0
    assert again.stderr.count("already holds a training run: pass --resume") == 2
    assert "[rank" not in again.stderr  # no rank died on a traceback
