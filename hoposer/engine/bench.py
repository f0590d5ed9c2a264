"""Latency, throughput, memory and parity of backends on the same inputs.

For every batch size, each backend first runs once on the benchmark inputs (its outputs are
compared with a torch fp32 CPU reference: max |difference| per output), then warms up, then
the backends are timed *in alternation*, one call each per round, so that background load on a
shared machine affects them alike. Latency is wall time of `Backend.run` including input
validation and, for CUDA backends, a device synchronisation.

Peak memory: on CUDA, `torch.cuda.max_memory_allocated` during the backend's first run (plus
TensorRT's own activation memory); on the CPU the process's RSS high-water mark
(`resource.getrusage`) after the backend's first run, which is cumulative: it includes every
model loaded before it in the same process.
"""

import copy
import platform
import resource
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from hoposer.engine.backends import (
    Backend,
    BackendOptions,
    OnnxRuntimeBackend,
    TensorRTBackend,
    TorchBackend,
    check_backend_name,
)
from hoposer.engine.export import example_inputs, export_onnx
from hoposer.engine.plan import build_engine
from hoposer.errors import HoposerError
from hoposer.io import json_text, write_text_atomic
from hoposer.model.network import HandObjectNet, RawOutputs
from hoposer.threads import available_cores


@dataclass(frozen=True)
class BenchRow:
    """One backend at one batch size."""

    backend: str
    config: str
    input_size: int
    device: str
    batch: int
    iterations: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    throughput_fps: float  #: images per second at this batch (batch / mean latency)
    peak_memory_mb: float
    memory_kind: str  #: "cuda-max-allocated" or "cpu-rss-high-water (cumulative)"
    max_abs_diff: dict[str, float] = field(default_factory=dict)  #: per output vs torch fp32
    cpu_threads: int = 0  #: the CPU threads it computed with (0: it runs on a GPU)


def _sync(backend: Backend) -> None:
    if backend.device.type == "cuda":
        torch.cuda.synchronize(backend.device)


def _rss_mb() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1 << 20) if sys.platform == "darwin" else peak / 1024  # bytes vs KiB


def _cpu_threads(backend: Backend) -> int:
    if backend.device.type != "cpu":
        return 0
    session_options = getattr(backend, "session_options", None)  # ONNX Runtime
    if session_options is not None:
        return session_options.intra_op_num_threads
    return torch.get_num_threads()


def backend_label(backend: Backend) -> str:
    """The backend's name, `onnxruntime-int8` for a file from `hoposer engine quantize`."""
    info = getattr(backend, "info", None)
    if backend.name == "onnxruntime" and info is not None:
        from hoposer.engine.quantize import QUANTIZATION_KEY

        if QUANTIZATION_KEY in info.metadata:
            return "onnxruntime-int8"
    return backend.name


def max_abs_diff(outputs: RawOutputs, reference: RawOutputs) -> dict[str, float]:
    """Max |a - b| per output field, computed in float32 on the CPU."""
    result = {}
    for name, a, b in zip(RawOutputs._fields, outputs, reference, strict=True):
        a = torch.as_tensor(a).detach().to("cpu", torch.float32)
        b = torch.as_tensor(b).detach().to("cpu", torch.float32)
        result[name] = float((a - b).abs().max())
    return result


def benchmark(
    backends: Sequence[Backend],
    reference: Backend,
    batches: Sequence[int] = (1, 8),
    iterations: int = 20,
    warmup: int = 3,
    seed: int = 0,
) -> list[BenchRow]:
    """Time `backends` (same model, same input size) and compare each with `reference`."""
    if not backends:
        raise HoposerError("no backend to benchmark")
    if iterations < 1 or warmup < 0:
        raise HoposerError("iterations must be ≥ 1 and warmup ≥ 0")
    input_size = backends[0].input_size
    if any(b.input_size != input_size for b in (*backends, reference)):
        raise HoposerError("all benchmarked backends must share one input size")
    rows = []
    for batch in batches:
        inputs = example_inputs(input_size, batch, seed)
        expected = reference.run(*inputs)
        diffs, memory, kinds = [], [], []
        for backend in backends:
            cuda = backend.device.type == "cuda"
            if cuda:
                torch.cuda.reset_peak_memory_stats(backend.device)
            diffs.append(max_abs_diff(backend.run(*inputs), expected))
            _sync(backend)
            if cuda:
                extra = getattr(backend, "device_memory_bytes", 0)
                memory.append((torch.cuda.max_memory_allocated(backend.device) + extra) / 2**20)
                kinds.append("cuda-max-allocated")
            else:
                memory.append(_rss_mb())
                kinds.append("cpu-rss-high-water (cumulative)")
        for backend in backends:
            for _ in range(warmup):
                backend.run(*inputs)
            _sync(backend)
        times: list[list[float]] = [[] for _ in backends]
        for _ in range(iterations):
            for i, backend in enumerate(backends):
                start = time.perf_counter()
                backend.run(*inputs)
                _sync(backend)
                times[i].append(time.perf_counter() - start)
        for i, backend in enumerate(backends):
            ms = np.asarray(times[i]) * 1000.0
            p50, p90, p99 = np.percentile(ms, [50, 90, 99])
            rows.append(
                BenchRow(
                    backend=backend_label(backend),
                    config=backend.config.name,
                    input_size=input_size,
                    device=str(backend.device),
                    batch=batch,
                    iterations=iterations,
                    p50_ms=float(p50),
                    p90_ms=float(p90),
                    p99_ms=float(p99),
                    throughput_fps=float(batch * 1000.0 / ms.mean()),
                    peak_memory_mb=float(memory[i]),
                    memory_kind=kinds[i],
                    max_abs_diff=diffs[i],
                    cpu_threads=_cpu_threads(backend),
                )
            )
    return rows


def run_benchmark(
    backend_names: Sequence[str],
    model: HandObjectNet,
    *,
    onnx: str | Path | None = None,
    plan: str | Path | None = None,
    quantized: str | Path | None = None,
    batches: Sequence[int] = (1, 8),
    iterations: int = 20,
    warmup: int = 3,
    device: str | None = None,
    options: BackendOptions | None = None,
) -> list[BenchRow]:
    """Open the named backends on `model` (exporting / building what is missing) and bench them.

    The reference is `model` in torch fp32 on the CPU. The onnxruntime backend uses `onnx` or a
    fresh export of `model`; tensorrt uses `plan` or builds one (fp16, max batch = the largest
    requested) from the ONNX file. `quantized` (an int8 file from `hoposer engine quantize`) adds
    an ONNX Runtime CPU backend on it, benchmarked with the others.
    """
    names = [check_backend_name(n) for n in backend_names]
    if "auto" in names:
        raise HoposerError("name the backends to benchmark; 'auto' is not one")
    options = options or BackendOptions()
    reference = TorchBackend(copy.deepcopy(model), "cpu")
    with tempfile.TemporaryDirectory(prefix="hoposer-bench-") as tmp:
        if onnx is None and {"onnxruntime", "tensorrt"} & set(names):
            onnx = export_onnx(model, Path(tmp) / "model.onnx", max_batch=max(batches))
        backends: list[Backend] = []
        for name in names:
            if name == "torch":
                backends.append(TorchBackend(copy.deepcopy(model), device, options))
            elif name == "onnxruntime":
                ort_device = device if device in (None, "cpu", "cuda") else "cuda"
                backends.append(OnnxRuntimeBackend(onnx, ort_device, options))
            else:
                if plan is None:
                    plan = build_engine(onnx, Path(tmp) / "model.plan", max_batch=max(batches))
                backends.append(TensorRTBackend(plan, onnx, device, options))
        if quantized is not None:
            backends.append(OnnxRuntimeBackend(quantized, "cpu", options))
        return benchmark(backends, reference, batches, iterations, warmup)


def machine_description() -> dict[str, str]:
    """CPU, cores, GPU and library versions, for the JSON file."""
    import onnxruntime

    info = {
        "cpu": platform.processor() or platform.machine(),
        "cores": str(available_cores()),
        "torch_threads": str(torch.get_num_threads()),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "onnxruntime": onnxruntime.__version__,
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none",
    }
    return info


def format_table(rows: Sequence[BenchRow]) -> str:
    """A Markdown table; `vs torch` is torch's p50 over this row's p50 at the same batch."""
    torch_p50 = {(r.config, r.batch): r.p50_ms for r in rows if r.backend == "torch"}
    lines = [
        "| config | input | backend | device | batch | p50 ms | p90 ms | p99 ms | img/s | "
        "vs torch | peak MB | max abs diff |",
        "| --- | --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        ratio = torch_p50.get((r.config, r.batch))
        speedup = f"{ratio / r.p50_ms:.2f}×" if ratio else "–"
        diff = max(r.max_abs_diff.values()) if r.max_abs_diff else float("nan")
        lines.append(
            f"| {r.config} | {r.input_size}² | {r.backend} | {r.device} | {r.batch} | "
            f"{r.p50_ms:.1f} | {r.p90_ms:.1f} | {r.p99_ms:.1f} | {r.throughput_fps:.1f} | "
            f"{speedup} | {r.peak_memory_mb:.0f} | {diff:.1e} |"
        )
    return "\n".join(lines)


def save_rows(rows: Sequence[BenchRow], path: str | Path, command: str = "") -> Path:
    """Write rows and the machine description as JSON, atomically."""
    path = Path(path)
    if not path.parent.is_dir():
        raise HoposerError(f"cannot write {path}: directory {path.parent} does not exist")
    data = {"command": command, "machine": machine_description(), "rows": [asdict(r) for r in rows]}
    write_text_atomic(path, json_text(data, indent=2) + "\n")
    return path
