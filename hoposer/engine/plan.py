"""TensorRT plans (TensorRT 10 or newer): build one from the exported ONNX file, check it fits.

`tensorrt` is imported only inside the functions that need it (`pip install "hoposer[tensorrt]"`).
A plan only runs on the GPU model and TensorRT version that built it, so `build_engine` writes
`<plan>.json` beside it (TensorRT version, GPU, compute capability, precision, ONNX sha256, max
batch, model config) and `check_plan` refuses, with the rebuild command, a plan that does not fit.
`hoposer.engine.backends.tensorrt` runs the plans; this module never imports it.
"""

import json
import platform
from pathlib import Path
from types import ModuleType
from typing import Any, Literal

import torch

from hoposer import __version__
from hoposer.engine.export import file_sha256, read_onnx_info
from hoposer.errors import HoposerError
from hoposer.io import atomic_path, json_text, write_text_atomic

PLAN_FORMAT = "hoposer-tensorrt-plan"
INSTALL_HINT = (
    'TensorRT is not installed: pip install "hoposer[tensorrt]" (TensorRT wheels come from '
    "NVIDIA's index: pip install --extra-index-url https://pypi.nvidia.com tensorrt); it also "
    "needs an NVIDIA GPU. Use --backend onnxruntime or torch meanwhile"
)


def import_tensorrt() -> ModuleType:
    """The `tensorrt` module (10 or newer), or a HoposerError saying how to install it."""
    try:
        import tensorrt as trt
    except ImportError:
        raise HoposerError(INSTALL_HINT) from None
    major = int(str(trt.__version__).split(".")[0])
    if major < 10:
        raise HoposerError(
            f"TensorRT {trt.__version__} is too old: hoposer needs TensorRT 10 or newer "
            '(pip install -U "hoposer[tensorrt]")'
        )
    return trt


# --------------------------------------------------------------------------------------------
# The sidecar


def plan_sidecar_path(plan_path: str | Path) -> Path:
    """`model.plan` → `model.plan.json`."""
    plan_path = Path(plan_path)
    return plan_path.with_name(plan_path.name + ".json")


def rebuild_command(recorded: dict[str, Any], plan_path: str | Path) -> str:
    """The `hoposer engine build` command that rebuilds a plan as it was built."""
    return (
        f"hoposer engine build {recorded.get('onnx_file', 'model.onnx')} --out {plan_path} "
        f"--precision {recorded.get('precision', 'fp16')} "
        f"--max-batch {recorded.get('max_batch', 8)}"
    )


def plan_mismatches(
    recorded: dict[str, Any], current: dict[str, Any], onnx_sha256: str | None = None
) -> list[str]:
    """Why a plan described by `recorded` (its sidecar) cannot run in `current` (environment).

    `current` has the keys `tensorrt_version`, `gpu_name` and `compute_capability`; `onnx_sha256`
    is the ONNX file the plan should have been built from (None: not checked).
    """
    problems = []
    if recorded.get("format") != PLAN_FORMAT:
        problems.append("its sidecar is not a hoposer plan description")
    if recorded.get("tensorrt_version") != current.get("tensorrt_version"):
        problems.append(
            f"it was built with TensorRT {recorded.get('tensorrt_version')}, this is TensorRT "
            f"{current.get('tensorrt_version')}"
        )
    if recorded.get("compute_capability") != current.get("compute_capability") or recorded.get(
        "gpu_name"
    ) != current.get("gpu_name"):
        problems.append(
            f"it was built for {recorded.get('gpu_name')} (compute capability "
            f"{recorded.get('compute_capability')}), this GPU is {current.get('gpu_name')} "
            f"(compute capability {current.get('compute_capability')})"
        )
    if onnx_sha256 is not None and recorded.get("onnx_sha256") != onnx_sha256:
        problems.append("it was built from another ONNX file (sha256 differs)")
    return problems


# --------------------------------------------------------------------------------------------
# Environment, build, check


def current_environment(device: int | str | torch.device = 0) -> dict[str, str]:
    """TensorRT version, GPU name and compute capability here (needs TensorRT and CUDA)."""
    trt = import_tensorrt()
    if not torch.cuda.is_available():
        raise HoposerError("TensorRT needs an NVIDIA GPU, and torch sees no CUDA device")
    major, minor = torch.cuda.get_device_capability(device)
    return {
        "tensorrt_version": str(trt.__version__),
        "gpu_name": torch.cuda.get_device_name(device),
        "compute_capability": f"{major}.{minor}",
    }


def build_engine(
    onnx_path: str | Path,
    plan_path: str | Path,
    precision: Literal["fp16", "fp32"] = "fp16",
    max_batch: int = 8,
    workspace_gb: float = 2.0,
    timing_cache: str | Path | None = None,
) -> Path:
    """Build a TensorRT plan from a hoposer ONNX export, atomically, with its JSON sidecar.

    Args:
        onnx_path: file written by `export_onnx`.
        plan_path: the plan to write; `<plan_path>.json` describes it.
        precision: "fp16" (FP16 kernels allowed where faster) or "fp32".
        max_batch: the optimisation profile covers batches 1..max_batch (tuned for 1).
        workspace_gb: builder workspace memory pool limit.
        timing_cache: file to load kernel timings from (if present) and save them to, which
            makes rebuilds on the same GPU much faster.

    Returns:
        The plan path.
    """
    trt = import_tensorrt()
    if precision not in ("fp16", "fp32"):
        raise HoposerError(f"precision must be 'fp16' or 'fp32', not {precision!r}")
    if max_batch < 1:
        raise HoposerError(f"max_batch must be at least 1, not {max_batch}")
    plan_path = Path(plan_path)
    if not plan_path.parent.is_dir():
        raise HoposerError(f"cannot write {plan_path}: directory {plan_path.parent} does not exist")
    info, _ = read_onnx_info(onnx_path)
    environment = current_environment()
    logger = trt.Logger(trt.Logger.WARNING)
    trt.init_libnvinfer_plugins(logger, "")  # RoiAlign is a plugin layer
    builder = trt.Builder(logger)
    network = builder.create_network(0)  # explicit batch: the only mode in TensorRT 10
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(info.path)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise HoposerError(f"TensorRT cannot parse {info.path}: {errors[:500]}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_gb * (1 << 30)))
    if precision == "fp16":
        config.set_flag(trt.BuilderFlag.FP16)
    s = info.input_size
    profile = builder.create_optimization_profile()
    for name, tail in (("images", (3, s, s)), ("hand_boxes", (4,)), ("object_boxes", (4,))):
        profile.set_shape(name, (1, *tail), (1, *tail), (max_batch, *tail))
    config.add_optimization_profile(profile)
    cache_path = Path(timing_cache) if timing_cache is not None else None
    cached = cache_path.read_bytes() if cache_path is not None and cache_path.is_file() else b""
    cache = config.create_timing_cache(cached)
    config.set_timing_cache(cache, ignore_mismatch=False)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise HoposerError(
            f"TensorRT failed to build an engine from {info.path} (see its log above); try "
            "--precision fp32 or a larger --workspace-gb"
        )
    if cache_path is not None:
        with atomic_path(cache_path) as tmp:
            tmp.write_bytes(bytes(memoryview(config.get_timing_cache().serialize())))
    with atomic_path(plan_path) as tmp:
        tmp.write_bytes(bytes(memoryview(serialized)))
    sidecar = {
        "format": PLAN_FORMAT,
        **environment,
        "precision": precision,
        "max_batch": max_batch,
        "input_size": s,
        "onnx_file": str(info.path),
        "onnx_sha256": file_sha256(info.path),
        "weights_sha256": info.weights_sha256,
        "config": json.loads(info.config.to_json()),
        "hoposer_version": __version__,
        "host": platform.node(),
    }
    write_text_atomic(plan_sidecar_path(plan_path), json_text(sidecar, indent=2) + "\n")
    return plan_path


def read_plan_sidecar(plan_path: str | Path) -> dict[str, Any]:
    """The JSON description beside a plan, or a HoposerError saying how to rebuild."""
    plan_path = Path(plan_path)
    if not plan_path.is_file():
        raise HoposerError(
            f"TensorRT plan {plan_path} does not exist; build it with 'hoposer engine build "
            f"model.onnx --out {plan_path}'"
        )
    sidecar = plan_sidecar_path(plan_path)
    try:
        recorded = json.loads(sidecar.read_text())
    except (OSError, json.JSONDecodeError):
        raise HoposerError(
            f"{sidecar} (the description of {plan_path}) is missing or unreadable; rebuild the "
            f"plan with 'hoposer engine build model.onnx --out {plan_path}'"
        ) from None
    if not isinstance(recorded, dict):
        raise HoposerError(f"{sidecar} is not a JSON object; rebuild the plan")
    return recorded


def check_plan(plan_path: str | Path, onnx_path: str | Path | None = None) -> dict[str, Any]:
    """Refuse a plan built for another GPU, TensorRT version or ONNX file; return its sidecar."""
    recorded = read_plan_sidecar(plan_path)
    onnx_sha = None
    if onnx_path is not None:
        if not Path(onnx_path).is_file():
            raise HoposerError(f"ONNX file {onnx_path} does not exist")
        onnx_sha = file_sha256(onnx_path)
    problems = plan_mismatches(recorded, current_environment(), onnx_sha)
    if problems:
        raise HoposerError(
            f"TensorRT plan {plan_path} cannot run here: {'; '.join(problems)}. Rebuild it: "
            + rebuild_command(recorded, plan_path)
        )
    return recorded
