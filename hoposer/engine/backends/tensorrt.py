"""TensorRT (10 or newer): build a plan from the exported ONNX file, check it, run it.

`tensorrt` is imported only inside the functions that need it (`pip install "hoposer[tensorrt]"`).
Buffers are torch CUDA tensors and inference is enqueued on torch's current stream, so no pycuda.

A plan only runs on the GPU model and TensorRT version that built it, so `build_engine` writes
`<plan>.json` beside it (TensorRT version, GPU, compute capability, precision, ONNX sha256, max
batch, model config) and `check_plan` refuses, with the rebuild command, a plan that does not fit.

The binding logic (tensor names → shapes and dtypes → allocations for a batch) is in pure
functions (`TensorSpec`, `specs_from_onnx`, `binding_plan`, `check_specs`, `plan_mismatches`),
tested without TensorRT.
"""

import json
import math
import platform
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch

from hoposer import __version__
from hoposer.errors import HoposerError
from hoposer.io import atomic_path, json_text, write_text_atomic
from hoposer.model.config import ModelConfig
from hoposer.model.network import RawOutputs

PLAN_FORMAT = "hoposer-tensorrt-plan"
INSTALL_HINT = (
    'TensorRT is not installed: pip install "hoposer[tensorrt]" (TensorRT wheels come from '
    "NVIDIA's index: pip install --extra-index-url https://pypi.nvidia.com tensorrt); it also "
    "needs an NVIDIA GPU. Use --backend onnxruntime or torch meanwhile"
)

#: TensorRT DataType names → numpy-style dtype names.
TRT_DTYPE_NAMES: dict[str, str] = {
    "FLOAT": "float32",
    "HALF": "float16",
    "BF16": "bfloat16",
    "INT32": "int32",
    "INT64": "int64",
    "INT8": "int8",
    "UINT8": "uint8",
    "BOOL": "bool",
}
TORCH_DTYPES: dict[str, torch.dtype] = {
    "float32": torch.float32,
    "float16": torch.float16,
    "bfloat16": torch.bfloat16,
    "int32": torch.int32,
    "int64": torch.int64,
    "int8": torch.int8,
    "uint8": torch.uint8,
    "bool": torch.bool,
}


def import_tensorrt():
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
# Pure binding logic


@dataclass(frozen=True)
class TensorSpec:
    """One engine input or output as declared: -1 marks a dynamic dimension."""

    name: str
    shape: tuple[int, ...]
    dtype: str  #: numpy-style name, a key of TORCH_DTYPES
    is_input: bool


@dataclass(frozen=True)
class Allocation:
    """A buffer to allocate (or bind) for one tensor at a concrete batch size."""

    name: str
    shape: tuple[int, ...]
    dtype: torch.dtype
    is_input: bool

    @property
    def nbytes(self) -> int:
        """Bytes the buffer needs."""
        itemsize = torch.empty((), dtype=self.dtype).element_size()
        return math.prod(self.shape) * itemsize


def specs_from_onnx(onnx_model) -> list[TensorSpec]:
    """The I/O specs of an ONNX graph, as TensorRT would report them for the parsed network."""
    import onnx

    specs = []
    for is_input, values in ((True, onnx_model.graph.input), (False, onnx_model.graph.output)):
        for value in values:
            tensor = value.type.tensor_type
            shape = tuple(d.dim_value if d.HasField("dim_value") else -1 for d in tensor.shape.dim)
            dtype = onnx.helper.tensor_dtype_to_np_dtype(tensor.elem_type).name
            specs.append(TensorSpec(value.name, shape, dtype, is_input))
    return specs


def check_specs(specs: list[TensorSpec], input_size: int | None = None) -> None:
    """Check that an engine has exactly hoposer's inputs and outputs, batch first.

    Raises:
        HoposerError: naming what differs (another model, a stale plan, a foreign file).
    """
    from hoposer.engine.export import INPUT_NAMES, OUTPUT_NAMES

    inputs = tuple(s.name for s in specs if s.is_input)
    outputs = {s.name for s in specs if not s.is_input}
    if set(inputs) != set(INPUT_NAMES) or outputs != set(OUTPUT_NAMES):
        raise HoposerError(
            f"engine has inputs {sorted(inputs)} and outputs {sorted(outputs)}, not hoposer's "
            f"{list(INPUT_NAMES)} → {list(OUTPUT_NAMES)}; rebuild it from a hoposer export"
        )
    expected_tail = {
        "images": (3, input_size, input_size),
        "hand_boxes": (4,),
        "object_boxes": (4,),
    }
    for spec in specs:
        if spec.dtype not in TORCH_DTYPES:
            raise HoposerError(f"engine tensor {spec.name} has unsupported dtype {spec.dtype}")
        if spec.is_input and spec.dtype != "float32":
            raise HoposerError(f"engine input {spec.name} is {spec.dtype}, expected float32")
        if not spec.shape or any(d < 0 for d in spec.shape[1:]):
            raise HoposerError(
                f"engine tensor {spec.name} has shape {spec.shape}: only the batch axis may be "
                "dynamic"
            )
        if spec.is_input and input_size is not None and spec.shape[1:] != expected_tail[spec.name]:
            raise HoposerError(
                f"engine input {spec.name} has shape {spec.shape}, expected "
                f"(B, {', '.join(map(str, expected_tail[spec.name]))})"
            )


def binding_plan(
    specs: list[TensorSpec], batch: int, max_batch: int | None = None
) -> list[Allocation]:
    """Concrete buffers for `batch`: the dynamic batch axis (dim 0) resolved, the rest as declared.

    Raises:
        HoposerError: when `batch` is outside 1..max_batch or a non-batch axis is dynamic.
    """
    if batch < 1 or (max_batch is not None and batch > max_batch):
        raise HoposerError(
            f"batch {batch} is outside this engine's range 1..{max_batch}; rebuild it with a "
            "larger --max-batch or split the batch"
        )
    plan = []
    for spec in specs:
        if not spec.shape:
            raise HoposerError(f"engine tensor {spec.name} is a scalar; expected a batch axis")
        if any(d < 0 for d in spec.shape[1:]):
            raise HoposerError(f"engine tensor {spec.name} {spec.shape}: only dim 0 may be dynamic")
        if spec.shape[0] not in (-1, batch):
            raise HoposerError(
                f"engine tensor {spec.name} has a fixed batch of {spec.shape[0]}, not {batch}"
            )
        if spec.dtype not in TORCH_DTYPES:
            raise HoposerError(f"engine tensor {spec.name} has unsupported dtype {spec.dtype}")
        shape = (batch, *spec.shape[1:])
        plan.append(Allocation(spec.name, shape, TORCH_DTYPES[spec.dtype], spec.is_input))
    return plan


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
    from hoposer.engine.export import file_sha256, read_onnx_info

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
    from hoposer.engine.export import file_sha256

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


# --------------------------------------------------------------------------------------------
# Runtime


class TensorRTBackend:
    """A deserialized plan run on torch's current CUDA stream; see `hoposer.engine.backends`.

    Output buffers are torch CUDA tensors allocated once per batch size; `run` returns copies,
    so results stay valid after the next call. With `options.cuda_graph`, batch-1 inference is
    captured once in a CUDA graph and replayed (fixed input buffers, one launch).
    """

    name = "tensorrt"

    def __init__(
        self,
        plan_path: str | Path,
        onnx_path: str | Path | None = None,
        device: str | torch.device | None = None,
        options=None,
    ) -> None:
        from hoposer.engine.backends import BackendOptions

        trt = import_tensorrt()
        self.options = options or BackendOptions()
        self.device = torch.device(device or "cuda")
        if self.device.type != "cuda":
            raise HoposerError(f"TensorRT runs on a CUDA device, not {self.device}")
        recorded = check_plan(plan_path, onnx_path)
        self.recorded = recorded
        self.config = ModelConfig.from_dict(recorded["config"])
        self.input_size = int(recorded["input_size"])
        self.max_batch = int(recorded["max_batch"])
        self._logger = trt.Logger(trt.Logger.WARNING)
        trt.init_libnvinfer_plugins(self._logger, "")
        with torch.cuda.device(self.device):
            self._runtime = trt.Runtime(self._logger)
            self.engine = self._runtime.deserialize_cuda_engine(Path(plan_path).read_bytes())
            if self.engine is None:
                raise HoposerError(
                    f"TensorRT could not deserialize {plan_path}; rebuild it: "
                    + rebuild_command(recorded, plan_path)
                )
            self.context = self.engine.create_execution_context()
        self.specs = [
            _spec_from_engine(trt, self.engine, self.engine.get_tensor_name(i))
            for i in range(self.engine.num_io_tensors)
        ]
        check_specs(self.specs, self.input_size)
        memory = getattr(self.engine, "device_memory_size_v2", None)
        self.device_memory_bytes = int(
            memory if memory is not None else self.engine.device_memory_size
        )
        self._outputs: dict[int, dict[str, torch.Tensor]] = {}
        self._graph: torch.cuda.CUDAGraph | None = None
        self._graph_buffers: dict[str, torch.Tensor] | None = None

    def _output_buffers(self, batch: int) -> dict[str, torch.Tensor]:
        if batch not in self._outputs:
            plan = binding_plan(self.specs, batch, self.max_batch)
            self._outputs[batch] = {
                a.name: torch.empty(a.shape, dtype=a.dtype, device=self.device)
                for a in plan
                if not a.is_input
            }
        return self._outputs[batch]

    def _enqueue(self, buffers: dict[str, torch.Tensor]) -> None:
        for spec in self.specs:
            tensor = buffers[spec.name]
            if spec.is_input:
                self.context.set_input_shape(spec.name, tuple(tensor.shape))
            self.context.set_tensor_address(spec.name, tensor.data_ptr())
        stream = torch.cuda.current_stream(self.device)
        if not self.context.execute_async_v3(stream.cuda_stream):
            raise HoposerError("TensorRT inference failed (see its log above)")

    def run(self, images, hand_boxes, object_boxes) -> RawOutputs:
        """Predict for a batch (see `hoposer.engine.backends`)."""
        from hoposer.engine.backends import validate_inputs
        from hoposer.engine.export import OUTPUT_NAMES

        images, hand, obj = validate_inputs(
            images, hand_boxes, object_boxes, self.input_size, self.max_batch
        )
        batch = images.shape[0]
        with torch.cuda.device(self.device):
            inputs = {
                "images": images.to(self.device, non_blocking=True).contiguous(),
                "hand_boxes": hand.to(self.device, non_blocking=True).contiguous(),
                "object_boxes": obj.to(self.device, non_blocking=True).contiguous(),
            }
            if self.options.cuda_graph and batch == 1:
                outputs = self._run_graph(inputs)
            else:
                outputs = self._output_buffers(batch)
                self._enqueue({**inputs, **outputs})
            return RawOutputs(*(outputs[n].float().clone() for n in OUTPUT_NAMES))

    def _run_graph(self, inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        if self._graph is None:
            static = {k: v.clone() for k, v in inputs.items()}
            static.update({k: v.clone() for k, v in self._output_buffers(1).items()})
            self._enqueue(static)  # TensorRT sets up shape-dependent state outside capture
            torch.cuda.current_stream(self.device).synchronize()
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                self._enqueue(static)
            self._graph, self._graph_buffers = graph, static
        buffers = self._graph_buffers
        for name, tensor in inputs.items():
            buffers[name].copy_(tensor, non_blocking=True)
        self._graph.replay()
        return buffers


def _spec_from_engine(trt, engine, name: str) -> TensorSpec:
    dtype_name = engine.get_tensor_dtype(name).name
    if dtype_name not in TRT_DTYPE_NAMES:
        raise HoposerError(f"engine tensor {name} has unsupported TensorRT dtype {dtype_name}")
    return TensorSpec(
        name=name,
        shape=tuple(int(d) for d in engine.get_tensor_shape(name)),
        dtype=TRT_DTYPE_NAMES[dtype_name],
        is_input=engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT,
    )
