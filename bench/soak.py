"""Soak: `hoposer live` on a looping clip for a bounded time, with a fast and a slow subscriber.

    python bench/soak.py [--minutes 10] [--clip CLIP.mp4] [--slow-period 1.0] [--json OUT.json]

Starts `hoposer live --camera CLIP --loop --no-view --publish tcp://127.0.0.1:PORT` as a child
process (the rendered example clip when no --clip), and two reference subscribers in this process:
a fast one reading as quickly as it can and a slow one reading once per `--slow-period` seconds
(a slow robot controller). Every message is parsed as strict JSON and validated against
`pose.schema.json`. At the end it prints the child's RSS at start (its first pose) and end, the
longest stall between consecutive published frames (seen by the fast subscriber), messages
published and received, the age of every received pose (receive time − capture time), and
whether each target holds:

    RSS growth ≤ 5 %, no stall > 1 s, 0 invalid messages, newest-pose age ≤ 1 s (fast and slow).

Exit code 0 when every target holds, 1 otherwise. The soak runs on the CPU unless the machine
has a GPU; `uptime` is printed so the load is on record.
"""

import argparse
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import jsonschema
import numpy as np

from hoposer.io import json_text
from hoposer.stream.example import EXAMPLE_OBJECT, write_example
from hoposer.stream.messages import schema
from hoposer.stream.publish import PoseSubscriber

REPO = Path(__file__).resolve().parents[1]
TARGETS = {"rss_growth": 0.05, "stall_s": 1.0, "invalid": 0, "age_s": 1.0}


def rss_mib(pid: int) -> float:
    """Resident set size of a process (MiB), from /proc."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


class Listener:
    """A subscriber thread that validates every message and records ages and gaps."""

    def __init__(self, name: str, endpoint: str, period_s: float) -> None:
        self.name, self.period_s = name, period_s
        self.subscriber = PoseSubscriber(endpoint)
        self.ages: list[float] = []
        self.publish_times: list[float] = []
        self.invalid_schema = 0
        self.first = threading.Event()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name=name, daemon=True)
        self.validator = jsonschema.Draft202012Validator(schema())

    def _run(self) -> None:
        while not self.stop.is_set():
            message = self.subscriber.receive(timeout_s=0.5)
            if message is None:
                continue
            self.ages.append(time.time() - message["capture_time"])
            self.publish_times.append(message["publish_time"])
            if not self.validator.is_valid(message):
                self.invalid_schema += 1
            self.first.set()
            if self.period_s:
                self.stop.wait(self.period_s)

    @property
    def invalid(self) -> int:
        return self.invalid_schema + self.subscriber.invalid

    def ages_summary(self) -> dict:
        ages = np.asarray(self.ages) if self.ages else np.zeros(1)
        return {
            "received": len(self.ages),
            "age_p50_s": float(np.percentile(ages, 50)),
            "age_p99_s": float(np.percentile(ages, 99)),
            "age_max_s": float(ages.max()),
            "skipped_frames": self.subscriber.skipped,
            "invalid": self.invalid,
        }


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--clip", type=Path, default=None, help="video file played as a camera")
    parser.add_argument("--frames", type=int, default=90, help="example clip length (no --clip)")
    parser.add_argument("--slow-period", type=float, default=1.0)
    parser.add_argument("--backend", default="auto")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = parser.parse_args()
    if args.minutes <= 0:
        parser.error("--minutes must be positive")

    with tempfile.TemporaryDirectory() as folder:
        clip = args.clip or write_example(Path(folder) / "clip.mp4", frames=args.frames)
        endpoint = f"tcp://127.0.0.1:{free_port()}"
        fast = Listener("fast", endpoint, 0.0)
        slow = Listener("slow", endpoint, args.slow_period)
        for listener in (fast, slow):
            listener.thread.start()
        command = [
            sys.executable, "-m", "hoposer.cli", "live", "--camera", str(clip), "--loop",
            "--no-view", "--publish", endpoint, "--hands", "right", "--object", EXAMPLE_OBJECT,
            "--backend", args.backend,
        ]  # fmt: skip
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        child = subprocess.Popen(
            command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        try:
            if not fast.first.wait(timeout=300):
                raise SystemExit("soak: no pose within 300 s of starting `hoposer live`")
            rss_start, started = rss_mib(child.pid), time.monotonic()
            rss_peak = rss_start
            deadline = started + args.minutes * 60
            while time.monotonic() < deadline and child.poll() is None:
                time.sleep(min(5.0, max(0.0, deadline - time.monotonic())))
                rss_peak = max(rss_peak, rss_mib(child.pid))
            if child.poll() is not None:
                raise SystemExit(f"soak: `hoposer live` exited early:\n{child.stderr.read()}")
            rss_end = rss_mib(child.pid)
            elapsed = time.monotonic() - started
        finally:
            if child.poll() is None:
                child.send_signal(signal.SIGINT)
            stdout, stderr = child.communicate(timeout=120)
            for listener in (fast, slow):
                listener.stop.set()
                listener.thread.join(timeout=5)
                listener.subscriber.close()

    published = next(
        (int(line.split()[1]) for line in stdout.splitlines() if line.startswith("published ")),
        None,
    )
    stalls = np.diff(fast.publish_times) if len(fast.publish_times) > 1 else np.zeros(1)
    result = {
        "command": " ".join(["python", "bench/soak.py", *sys.argv[1:]]),
        "uptime": subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip(),
        "minutes": elapsed / 60,
        "live_exit_code": child.returncode,
        "rss_start_mib": rss_start,
        "rss_end_mib": rss_end,
        "rss_peak_mib": rss_peak,
        "rss_growth": rss_end / rss_start - 1,
        "longest_stall_s": float(stalls.max()),
        "published": published,
        "fast": fast.ages_summary(),
        "slow": slow.ages_summary(),
        "live_summary": stdout.strip().splitlines()[-2:],
    }
    checks = {
        f"RSS growth ≤ {TARGETS['rss_growth']:.0%}": result["rss_growth"] <= TARGETS["rss_growth"],
        f"no stall > {TARGETS['stall_s']} s": result["longest_stall_s"] <= TARGETS["stall_s"],
        "0 invalid messages": fast.invalid + slow.invalid == TARGETS["invalid"],
        f"newest-pose age ≤ {TARGETS['age_s']} s (fast)": result["fast"]["age_max_s"]
        <= TARGETS["age_s"],
        f"newest-pose age ≤ {TARGETS['age_s']} s (slow)": result["slow"]["age_max_s"]
        <= TARGETS["age_s"],
        "`live` exited cleanly": child.returncode == 0,
    }
    result["checks"] = checks
    print(json_text(result, indent=2, ensure_ascii=False))
    for name, ok in checks.items():
        print(f"{'PASS' if ok else 'FAIL'}  {name}")
    if child.returncode != 0:
        print(stderr[-2000:], file=sys.stderr)
    if args.json:
        args.json.write_text(json_text(result, indent=2, ensure_ascii=False) + "\n")
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
