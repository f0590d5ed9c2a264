"""Thread counts from the machine, and `--threads` reaching torch and ONNX Runtime sessions."""

import dataclasses
import json
import os

import cv2
import pytest
import torch

from hoposer.cli import main
from hoposer.errors import HoposerError
from hoposer.threads import (
    available_cores,
    cgroup_cpu_limit,
    configure_threads,
    onnxruntime_options,
    resolve_threads,
)


@pytest.fixture(autouse=True)
def _restore_thread_pools():
    torch_threads, cv2_threads = torch.get_num_threads(), cv2.getNumThreads()
    yield
    torch.set_num_threads(torch_threads)
    cv2.setNumThreads(cv2_threads)


def _write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_cgroup_quota_is_read_from_v2_and_v1_files(tmp_path):
    v2 = tmp_path / "v2"
    _write(v2 / "cpu.max", "150000 100000\n")
    assert cgroup_cpu_limit(v2) == pytest.approx(1.5)
    assert available_cores(v2) == 1  # 1.5 CPUs keep one thread busy, not two
    _write(v2 / "cpu.max", "max 100000\n")
    assert cgroup_cpu_limit(v2) is None
    assert available_cores(v2) == len(os.sched_getaffinity(0))
    v1 = tmp_path / "v1"
    _write(v1 / "cpu" / "cpu.cfs_quota_us", "200000\n")
    _write(v1 / "cpu" / "cpu.cfs_period_us", "100000\n")
    assert cgroup_cpu_limit(v1) == pytest.approx(2.0)
    _write(v1 / "cpu" / "cpu.cfs_quota_us", "-1\n")
    assert cgroup_cpu_limit(v1) is None
    assert cgroup_cpu_limit(tmp_path / "none") is None


def test_threads_come_from_the_option_then_the_environment_then_the_cores(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    assert resolve_threads() == available_cores()
    monkeypatch.setenv("LOCAL_WORLD_SIZE", str(available_cores() * 4))  # torchrun: share them
    assert resolve_threads() == 1
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert resolve_threads() == 3
    assert resolve_threads(5) == 5
    with pytest.raises(HoposerError, match="--threads must be at least 1"):
        resolve_threads(0)


def test_configure_threads_sizes_torch_opencv_and_onnxruntime():
    assert configure_threads(2) == 2
    assert torch.get_num_threads() == 2 and cv2.getNumThreads() == 2
    options = onnxruntime_options(2)
    assert options.intra_op_num_threads == 2 and options.inter_op_num_threads == 1


@pytest.mark.slow
def test_engine_bench_threads_reach_torch_and_the_onnxruntime_session(tmp_path, capsys):
    out = tmp_path / "bench.json"
    code = main(
        [
            "engine", "bench", "--config", "lite", "--input-size", "64",
            "--backend", "onnxruntime,torch", "--batch", "1", "--iterations", "1",
            "--warmup", "0", "--device", "cpu", "--threads", "2", "--out", str(out),
        ]
    )  # fmt: skip
    assert code == 0, capsys.readouterr().err
    data = json.loads(out.read_text())
    assert {r["backend"]: r["cpu_threads"] for r in data["rows"]} == {
        "onnxruntime": 2,
        "torch": 2,
    }
    assert "--threads 2" in data["command"] and data["machine"]["torch_threads"] == "2"
    assert main(["engine", "bench", "--config", "lite", "--threads", "0"]) == 2
    assert "--threads must be at least 1" in capsys.readouterr().err


@pytest.mark.slow
def test_train_fit_threads_reach_torch_and_the_run_options(tmp_path):
    from hoposer.model import get_config
    from hoposer.train.synth import SynthOptions, generate

    data = tmp_path / "synth"
    generate(SynthOptions(out=str(data), frames=2, seed=0, size=64, sequence_length=2, workers=1))
    config = tmp_path / "tiny.json"
    config.write_text(dataclasses.replace(get_config("lite"), input_size=64, roi_size=16).to_json())
    run = tmp_path / "run"
    code = main(
        [
            "train", "fit", "--data", str(data), "--out", str(run), "--config", str(config),
            "--batch-size", "2", "--workers", "0", "--hand-model", "standin",
            "--device", "cpu", "--max-steps", "1", "--threads", "2",
        ]
    )  # fmt: skip
    assert code == 0
    assert json.loads((run / "options.json").read_text())["threads"] == 2
    assert torch.get_num_threads() == 2


@pytest.mark.slow
def test_video_threads_reach_torch_and_the_summary(tmp_path):
    from hoposer.stream.example import write_example

    clip = write_example(tmp_path / "nohand.mp4", frames=2, with_hand=False)
    out = tmp_path / "out.mp4"
    args = ["video", str(clip), "--out", str(out), "--backend", "torch", "--threads", "2"]
    assert main(args) == 0
    assert json.loads((tmp_path / "out.summary.json").read_text())["threads"] == 2
    assert torch.get_num_threads() == 2 and cv2.getNumThreads() == 2


def test_work_running_beside_the_pools_keeps_its_cores(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    cores = available_cores()
    assert resolve_threads(reserve=1) == max(1, cores - 1)
    assert resolve_threads(reserve=cores + 3) == 1  # never fewer than one
    assert resolve_threads(4, reserve=1) == 4  # an explicit count is taken as given
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert resolve_threads(reserve=1) == 3  # so is the user's environment
