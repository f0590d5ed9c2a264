"""`hoposer video` never destroys data: not the input, not an earlier result, not on a signal."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hoposer.cli import main
from hoposer.stream.example import write_example

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return write_example(tmp_path_factory.mktemp("clip") / "hand.mp4", frames=12)


def test_out_equal_to_the_input_is_refused_and_the_input_kept(clip, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(clip.parent)
    before = clip.read_bytes()
    for out in (str(clip), "hand.mp4", f"./../{clip.parent.name}/hand.mp4"):
        assert main(["video", str(clip), "--out", out]) == 2
        assert "would overwrite the input" in capsys.readouterr().err
    link = tmp_path / "link.mp4"
    link.symlink_to(clip)
    assert main(["video", str(clip), "--out", str(link)]) == 2
    assert clip.read_bytes() == before


@pytest.mark.slow
def test_damaged_frames_inside_a_file_are_counted_and_fail_unless_allowed(tmp_path, capsys):
    clip = write_example(tmp_path / "clip.mp4", frames=8)
    data = bytearray(clip.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 3000] = bytes(3000)  # zero a stretch of a middle frame
    damaged = tmp_path / "damaged.mp4"
    damaged.write_bytes(bytes(data))
    out = tmp_path / "out.mp4"
    args = ["video", str(damaged), "--out", str(out), "--detector", "mediapipe", "--hands", "right"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "could not be decoded" in err and "--allow-gaps" in err
    summary = json.loads((tmp_path / "out.summary.json").read_text())
    assert summary["unreadable_frames"] >= 1
    # The frames after the damage were still processed (the old reader stopped at the damage).
    lines = (tmp_path / "out.jsonl").read_text().splitlines()
    assert json.loads(lines[-1])["frame_index"] == 7
    assert len(lines) == 8 - summary["unreadable_frames"]
    assert main([*args, "--allow-gaps"]) == 0


def _run_and_signal(clip: Path, out: Path, signum: int) -> subprocess.CompletedProcess:
    """Start `hoposer video`, wait until it has written a frame, send `signum`.

    The partial messages file is line-buffered, so its first line is the first frame.
    """
    command = [sys.executable, "-m", "hoposer.cli", "video", str(clip), "--out", str(out),
               "--hands", "right"]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    # A job started in the background (nohup, `&`, some CI runners) inherits an ignored SIGINT,
    # and Python then never turns SIGINT into KeyboardInterrupt. A signal this process handles
    # instead is reset to its default in the child, which then handles it as a user's would.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        process = subprocess.Popen(
            command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
    finally:
        signal.signal(signal.SIGINT, previous)
    hidden = out.with_name(f".{out.stem}.jsonl.partial")
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:
        if hidden.exists() and hidden.stat().st_size > 0:
            break
        time.sleep(0.05)
    process.send_signal(signum)
    stdout, stderr = process.communicate(timeout=60)
    return subprocess.CompletedProcess(command, process.returncode, stdout, stderr)


@pytest.mark.slow
@pytest.mark.parametrize(("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_keeps_the_earlier_result_and_the_partial_one_visibly(clip, tmp_path, signum,
                                                                        code):  # fmt: skip
    out = tmp_path / "result.mp4"
    out.write_bytes(b"an earlier complete result")
    done = _run_and_signal(clip, out, signum)
    assert done.returncode == code, done.stderr[-2000:]
    assert "Traceback" not in done.stderr
    assert "partial result is in" in done.stderr
    assert out.read_bytes() == b"an earlier complete result"
    partial = tmp_path / "result.partial.jsonl"
    lines = partial.read_text().splitlines()
    assert 1 <= len(lines) < 12
    summary = json.loads((tmp_path / "result.partial.summary.json").read_text())
    assert summary["interrupted"] == signal.Signals(signum).name
    assert (tmp_path / "result.partial.mp4").stat().st_size > 0
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]  # nothing hidden
