"""CPU threads sized from the machine: one setting for torch, ONNX Runtime and OpenCV.

Libraries size their thread pools from the cores they see (torch: the machine's cores; ONNX
Runtime: the physical cores), not from the cores this process may use: in a container limited to
2 CPUs on a 16-core host, or under a CPU affinity mask, they start 16 busy threads that take
turns on 2 cores (a 0.1 s forward once took 3.6 s that way). `configure_threads` sizes every pool
once, from `--threads` or from what is really available: the affinity mask, the cgroup CPU quota
and, for `torchrun`, the processes sharing the machine.
"""

import contextlib
import os
from pathlib import Path

from hoposer.errors import HoposerError

CGROUP_ROOT = Path("/sys/fs/cgroup")


def cgroup_cpu_limit(root: Path = CGROUP_ROOT) -> float | None:
    """CPUs allowed by the cgroup quota (v2 `cpu.max`, v1 `cpu.cfs_quota_us`), None if none.

    cgroup v2: the tightest quota of this process's group and its ancestors.
    """
    group = Path("/")
    try:
        for line in Path("/proc/self/cgroup").read_text().splitlines():
            if line.startswith("0::"):
                group = Path(line[3:] or "/")
    except OSError:
        pass
    limits, seen_v2 = [], False
    for ancestor in (group, *group.parents):
        try:
            quota, period = (root / ancestor.relative_to("/") / "cpu.max").read_text().split()[:2]
        except (OSError, ValueError):
            continue
        seen_v2 = True
        if quota != "max" and float(period) > 0:
            limits.append(float(quota) / float(period))
    if seen_v2:
        return min(limits) if limits else None
    try:  # cgroup v1
        quota = float((root / "cpu" / "cpu.cfs_quota_us").read_text())
        period = float((root / "cpu" / "cpu.cfs_period_us").read_text())
    except (OSError, ValueError):
        return None
    return quota / period if quota > 0 and period > 0 else None


def available_cores(root: Path = CGROUP_ROOT) -> int:
    """CPU cores this process may use: its affinity mask, capped by the cgroup quota."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    limit = cgroup_cpu_limit(root)
    if limit is not None:
        cores = min(cores, int(limit))  # a fractional CPU cannot keep a whole thread busy
    return max(1, cores)


def resolve_threads(threads: int | None = None, reserve: int = 0) -> int:
    """Threads for one process (validated).

    `threads` when given, else `OMP_NUM_THREADS` when the user set it, else the available cores
    shared among the `torchrun` processes on this machine (`LOCAL_WORLD_SIZE`), less `reserve`
    cores kept for work running beside these pools (at least one thread either way).
    """
    if threads is not None:
        if threads < 1:
            raise HoposerError(f"--threads must be at least 1, not {threads}")
        return threads
    env = os.environ.get("OMP_NUM_THREADS", "")
    if env.isdigit() and int(env) > 0:
        return int(env)
    local_world = int(os.environ.get("LOCAL_WORLD_SIZE", "1") or 1)
    return max(1, available_cores() // max(1, local_world) - reserve)


def configure_threads(threads: int | None = None, reserve: int = 0) -> int:
    """Size torch's and OpenCV's thread pools (see `resolve_threads`); returns the count.

    ONNX Runtime sessions take the returned count through `onnxruntime_options`.
    """
    import cv2
    import torch

    count = resolve_threads(threads, reserve)
    torch.set_num_threads(count)
    # Inter-op parallelism is unused here; torch allows setting it only before any parallel work.
    with contextlib.suppress(RuntimeError):
        torch.set_num_interop_threads(1)
    cv2.setNumThreads(count)
    return count


def onnxruntime_options(threads: int | None = None):
    """`onnxruntime.SessionOptions` with `resolve_threads(threads)` intra-op threads.

    One inter-op thread, and idle threads sleep instead of spinning, so they do not steal the
    cores of the other stages of a stream (or of another backend being benchmarked).
    """
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = resolve_threads(threads)
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return options
