"""The TensorRT backend: a plan built by `hoposer.engine.plan` run on torch's CUDA stream.

`tensorrt` (10 or newer) is imported only when a backend is opened (`pip install
"hoposer[tensorrt]"`); the annotations name its types without importing it. Buffers are torch
CUDA tensors and inference is enqueued on torch's current stream, so no pycuda.

The binding logic (tensor names → shapes and dtypes → allocations for a batch) is in pure
functions (`TensorSpec`, `specs_from_onnx`, `binding_plan`, `check_specs`), tested without
TensorRT.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Self

import torch

from hoposer.engine.backends.base import BackendOptions, validate_inputs
from hoposer.engine.cache import verified_weights_sha256
from hoposer.engine.export import INPUT_NAMES, OUTPUT_NAMES
from hoposer.engine.plan import check_plan, import_tensorrt, plan_sidecar_path, rebuild_command
from hoposer.errors import HoposerError
from hoposer.model.config import ModelConfig
from hoposer.model.network import RawOutputs

if TYPE_CHECKING:
    import tensorrt as trt

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


# --------------------------------------------------------------------------------------------
# Runtime


class TensorRTBackend:
    """A deserialized plan run on torch's current CUDA stream.

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
        options: BackendOptions | None = None,
    ) -> None:
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
        self._logger: trt.ILogger = trt.Logger(trt.Logger.WARNING)
        trt.init_libnvinfer_plugins(self._logger, "")
        with torch.cuda.device(self.device):
            self._runtime: trt.Runtime = trt.Runtime(self._logger)
            engine = self._runtime.deserialize_cuda_engine(Path(plan_path).read_bytes())
            if engine is None:
                raise HoposerError(
                    f"TensorRT could not deserialize {plan_path}; rebuild it: "
                    + rebuild_command(recorded, plan_path)
                )
            self.engine: trt.ICudaEngine = engine
            self.context: trt.IExecutionContext = engine.create_execution_context()
        self.specs = [
            _spec_from_engine(engine, engine.get_tensor_name(i))
            for i in range(engine.num_io_tensors)
        ]
        check_specs(self.specs, self.input_size)
        memory = getattr(engine, "device_memory_size_v2", None)  # 10.1+; 10.0 has the old name
        self.device_memory_bytes = int(memory if memory is not None else engine.device_memory_size)
        self._outputs: dict[int, dict[str, torch.Tensor]] = {}
        self._graph: torch.cuda.CUDAGraph | None = None
        self._graph_buffers: dict[str, torch.Tensor] | None = None

    @classmethod
    def open(
        cls,
        *,
        weights: str | Path | None,
        config: ModelConfig | str | None,
        onnx: str | Path | None,
        plan: str | Path | None,
        device: str | None,
        options: BackendOptions,
    ) -> Self:
        """From a plan; `open_backend`'s files.

        Given weights, the plan must have been built from them (intact); given an ONNX file, from
        that file.
        """
        del config  # the torch backend's
        if plan is None:
            raise HoposerError(
                "the tensorrt backend needs a plan (--plan); build one with "
                "'hoposer engine build model.onnx --out model.plan'"
            )
        if weights is not None:
            sidecar = plan_sidecar_path(plan)
            recorded = None
            if sidecar.is_file():
                recorded = json.loads(sidecar.read_text()).get("weights_sha256")
            if recorded != verified_weights_sha256(weights):
                raise HoposerError(
                    f"{plan} was not built from {weights} (its {sidecar.name} records other "
                    "weights or none); build it again from an export of these weights"
                )
        return cls(plan, onnx_path=onnx, device=device, options=options)

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
        """Predict for a batch (see `hoposer.engine.backends.base` for the contract)."""
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


def _spec_from_engine(engine: trt.ICudaEngine, name: str) -> TensorSpec:
    dtype_name = engine.get_tensor_dtype(name).name
    if dtype_name not in TRT_DTYPE_NAMES:
        raise HoposerError(f"engine tensor {name} has unsupported TensorRT dtype {dtype_name}")
    return TensorSpec(
        name=name,
        shape=tuple(int(d) for d in engine.get_tensor_shape(name)),
        dtype=TRT_DTYPE_NAMES[dtype_name],
        is_input=engine.get_tensor_mode(name).name == "INPUT",  # trt.TensorIOMode
    )
