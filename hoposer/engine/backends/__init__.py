"""One interface over PyTorch, ONNX Runtime and TensorRT; the same inputs and outputs for all.

`Backend.run(images, hand_boxes, object_boxes) -> RawOutputs`:

Inputs (numpy arrays or torch tensors, any device; validated by `validate_inputs` the same way
for every backend, so a bad input is a `HoposerError`, never a native crash):
    images: `(B, 3, S, S)` float32 RGB in [0, 1], S = the backend's `input_size`, B ≥ 1.
    hand_boxes, object_boxes: `(B, 4)` finite floats, [x1, y1, x2, y2] in input pixels. A box
        must be at least 1 px wide and 1 px tall, and at least 1 px² of it must lie inside the
        image [0, S]². Boxes that reach past the image edge are legal and are passed on
        unchanged (RoIAlign samples zeros there), so `decode` sees the very boxes the network
        saw; hoposer never clips or alters them silently.

Outputs: `RawOutputs` of float32 torch tensors (so every field is a `torch.Tensor`, as the type
says): on the backend's `device` for torch and TensorRT, on the CPU for ONNX Runtime (zero-copy
views of its numpy results). `hoposer.decode` accepts them as they are.
"""

import difflib
import importlib.util
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol, runtime_checkable

import numpy as np
import torch

from hoposer.errors import HoposerError
from hoposer.model.config import ModelConfig
from hoposer.model.network import HandObjectNet, RawOutputs
from hoposer.threads import configure_threads, onnxruntime_options

BackendName = Literal["auto", "torch", "onnxruntime", "tensorrt"]
Precision = Literal["fp32", "fp16", "bf16"]


@dataclass(frozen=True)
class BackendOptions:
    """Settings a backend may honour; the others ignore what does not apply to them.

    Attributes:
        precision: torch: autocast dtype on CUDA ("fp16"/"bf16"; the CPU runs "fp32" only).
            TensorRT's precision is fixed when the plan is built.
        compile: torch: wrap the model in `torch.compile`.
        channels_last: torch: channels-last memory format for model and images.
        threads: CPU threads (ONNX Runtime intra-op, torch CPU); None = `hoposer.threads`'s
            default (the cores this process may use).
        cuda_graph: torch (CUDA) and TensorRT: capture batch-1 inference in a CUDA graph and
            replay it.
    """

    precision: Precision = "fp32"
    compile: bool = False
    channels_last: bool = False
    threads: int | None = None
    cuda_graph: bool = False


@runtime_checkable
class Backend(Protocol):
    """Runs the network: see the module docstring for the input and output contract."""

    name: str  #: "torch", "onnxruntime" or "tensorrt"
    input_size: int  #: S of the `(B, 3, S, S)` images it accepts
    config: ModelConfig  #: the architecture it runs
    device: torch.device  #: where its output tensors live

    def run(self, images, hand_boxes, object_boxes) -> RawOutputs:
        """Predict for a batch."""
        ...


# --------------------------------------------------------------------------------------------
# Input validation, shared by every backend


def _as_tensor(x, name: str) -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        return x
    if isinstance(x, np.ndarray):
        if x.dtype == object or not x.dtype.isbuiltin:
            raise HoposerError(f"{name} has numpy dtype {x.dtype}, which is not numeric")
        return torch.from_numpy(np.ascontiguousarray(x))
    raise HoposerError(f"{name} must be a numpy array or a torch tensor, not {type(x).__name__}")


def validate_inputs(
    images, hand_boxes, object_boxes, input_size: int, max_batch: int | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Check a batch against the contract in the module docstring.

    Returns:
        `(images, hand_boxes, object_boxes)` as torch tensors (float32, contiguous, on the
        device they came on; numpy inputs become CPU tensors without a copy when possible).

    Raises:
        HoposerError: naming the input (and the box) that breaks the contract.
    """
    images = _as_tensor(images, "images")
    s = input_size
    if images.ndim != 4 or images.shape[1] != 3 or images.shape[2:] != (s, s):
        raise HoposerError(
            f"images must have shape (B, 3, {s}, {s}) for this model, not {tuple(images.shape)}"
        )
    if images.dtype != torch.float32:
        raise HoposerError(f"images must be float32 RGB in [0, 1], not {images.dtype}")
    batch = images.shape[0]
    if batch < 1:
        raise HoposerError("images hold an empty batch (B = 0)")
    if max_batch is not None and batch > max_batch:
        raise HoposerError(
            f"batch of {batch} exceeds this engine's maximum of {max_batch}; split it or "
            "rebuild the engine with a larger --max-batch"
        )
    lo, hi = (float(v) for v in torch.aminmax(images))
    if not (lo >= 0.0 and hi <= 1.0):  # also false for NaN
        raise HoposerError(
            f"images must be RGB scaled to [0, 1]; values span [{lo:g}, {hi:g}] "
            "(divide 8-bit images by 255; NaN/inf are not allowed)"
        )
    boxes = []
    for name, raw in (("hand_boxes", hand_boxes), ("object_boxes", object_boxes)):
        box = _as_tensor(raw, name)
        if box.shape != (batch, 4):
            raise HoposerError(
                f"{name} must have shape ({batch}, 4) to match the images, not {tuple(box.shape)}"
            )
        if not box.dtype.is_floating_point:
            raise HoposerError(f"{name} must be floating point [x1, y1, x2, y2], not {box.dtype}")
        box = box.to(torch.float32).contiguous()
        _check_boxes(box.detach().to("cpu").numpy(), name, s)
        boxes.append(box)
    return images.contiguous(), boxes[0], boxes[1]


def _check_boxes(boxes: np.ndarray, name: str, size: int) -> None:
    rule = (
        "boxes are [x1, y1, x2, y2] input pixels, at least 1 px wide and tall, with at least "
        f"1 px² inside the {size}×{size} image"
    )
    for i, (x1, y1, x2, y2) in enumerate(boxes.astype(np.float64)):
        shown = f"{name}[{i}] = [{x1:g}, {y1:g}, {x2:g}, {y2:g}]"
        if not np.isfinite([x1, y1, x2, y2]).all():
            raise HoposerError(f"{shown} is not finite; {rule}")
        if x2 - x1 < 1.0 or y2 - y1 < 1.0:
            raise HoposerError(
                f"{shown} is {x2 - x1:g} × {y2 - y1:g} px (empty or inverted); {rule}"
            )
        inside_w = max(0.0, min(x2, size) - max(x1, 0.0))
        inside_h = max(0.0, min(y2, size) - max(y1, 0.0))
        if inside_w * inside_h < 1.0:
            raise HoposerError(f"{shown} lies outside the image; {rule}")


# --------------------------------------------------------------------------------------------
# PyTorch


class TorchBackend:
    """Eager PyTorch (optionally `torch.compile`d, channels-last, fp16/bf16 autocast on CUDA).

    On CUDA, CPU inputs go through pinned host buffers and are copied asynchronously, and with
    `options.cuda_graph` the batch-1 forward is captured once in a CUDA graph and replayed (see
    `hoposer.engine.cuda_path`); other batch sizes run the ordinary forward.

    "fp32" on CUDA follows torch's TF32 switches (`torch.backends.cudnn.allow_tf32` is on by
    default, so convolutions run in TF32: ~1e-2 from CPU fp32 on θ); turn it off for exact fp32.
    """

    name = "torch"

    def __init__(
        self,
        model: HandObjectNet,
        device: str | torch.device | None = None,
        options: BackendOptions | None = None,
    ) -> None:
        from hoposer.engine.cuda_path import GraphRunner, HostStaging, plan_gpu_path

        options = options or BackendOptions()
        self.device = _torch_device(device)
        self.path = plan_gpu_path(
            self.device, options.precision, options.channels_last, options.cuda_graph
        )
        if options.threads is not None and self.device.type == "cpu":
            configure_threads(options.threads)
        self.config = model.config
        self.input_size = model.config.input_size
        self.options = options
        self._memory_format = torch.channels_last if options.channels_last else None
        model = model.to(self.device).eval()
        if self._memory_format is not None:
            model = model.to(memory_format=self._memory_format)
        self.model = model
        compiled: Callable = torch.compile(model) if options.compile else model
        self._compiled = compiled
        self._staging = HostStaging(pin=self.path.pinned_staging)
        self._graph = GraphRunner(self._forward, self.device) if self.path.cuda_graph else None

    def _forward(self, images, hand_boxes, object_boxes) -> tuple[torch.Tensor, ...]:
        if self.path.autocast is not None:
            with torch.autocast("cuda", dtype=self.path.autocast):
                out = self._compiled(images, hand_boxes, object_boxes)
        else:
            out = self._compiled(images, hand_boxes, object_boxes)
        return tuple(out)

    def run(self, images, hand_boxes, object_boxes) -> RawOutputs:
        """Predict for a batch (see the module docstring)."""
        from hoposer.engine.cuda_path import to_device

        images, hand, obj = validate_inputs(images, hand_boxes, object_boxes, self.input_size)
        moved = to_device(
            self._staging, {"images": images, "hand": hand, "object": obj}, self.device
        )
        images, hand, obj = moved["images"], moved["hand"], moved["object"]
        if self._memory_format is not None:
            images = images.contiguous(memory_format=self._memory_format)
        with torch.inference_mode():
            if self._graph is not None and images.shape[0] == 1:
                out = self._graph(images, hand, obj)
            else:
                out = self._forward(images, hand, obj)
        return RawOutputs(*(t.float() for t in out))


def _torch_device(device: str | torch.device | None) -> torch.device:
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise HoposerError(f"device {device!r} is not a torch device ({err})") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise HoposerError(f"device {device!r} requested but torch sees no CUDA GPU; use 'cpu'")
    return dev


# --------------------------------------------------------------------------------------------
# ONNX Runtime


class OnnxRuntimeBackend:
    """ONNX Runtime on the CPU (default) or the CUDA execution provider.

    Session: all graph optimisations (`ORT_ENABLE_ALL`, which folds BatchNorm into convolutions
    and fuses activations), sequential execution, threads from `hoposer.threads` (intra-op:
    `--threads` or the cores this process may use; idle threads not spinning).
    """

    name = "onnxruntime"

    def __init__(
        self,
        onnx_path: str | Path,
        device: str | None = None,
        options: BackendOptions | None = None,
    ) -> None:
        import onnxruntime as ort

        from hoposer.engine.export import OUTPUT_NAMES, read_onnx_info

        options = options or BackendOptions()
        info, _ = read_onnx_info(onnx_path)
        self.info = info
        self.config = info.config
        self.input_size = info.input_size
        available = ort.get_available_providers()
        has_cuda = "CUDAExecutionProvider" in available and torch.cuda.is_available()
        if device is None:
            device = "cuda" if has_cuda else "cpu"
        if device not in ("cpu", "cuda"):
            raise HoposerError(f"onnxruntime runs on 'cpu' or 'cuda', not {device!r}")
        if device == "cuda" and not has_cuda:
            raise HoposerError(
                "onnxruntime's CUDAExecutionProvider is not available here (providers: "
                f"{', '.join(available)}); install onnxruntime-gpu or use --device cpu"
            )
        providers = ["CUDAExecutionProvider", "CPUExecutionProvider"]
        self.providers = providers if device == "cuda" else providers[1:]
        session_options = onnxruntime_options(options.threads)
        session_options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        session_options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        self.session_options = session_options
        try:
            self.session = ort.InferenceSession(
                str(info.path), session_options, providers=self.providers
            )
        except Exception as err:  # noqa: BLE001 - ORT's pybind errors share no base but Exception
            first = str(err).splitlines()[0][:200]
            raise HoposerError(
                f"onnxruntime cannot load {info.path} ({first}); export it again with "
                "'hoposer engine export'"
            ) from None
        self.device = torch.device("cpu")  # results come back as host numpy arrays
        self._outputs = list(OUTPUT_NAMES)

    def run(self, images, hand_boxes, object_boxes) -> RawOutputs:
        """Predict for a batch (see the module docstring)."""
        images, hand, obj = validate_inputs(images, hand_boxes, object_boxes, self.input_size)
        feed = {
            "images": _numpy(images),
            "hand_boxes": _numpy(hand),
            "object_boxes": _numpy(obj),
        }
        out = self.session.run(self._outputs, feed)
        return RawOutputs(*(torch.from_numpy(o) for o in out))


def _numpy(t: torch.Tensor) -> np.ndarray:
    return t.detach().to("cpu").numpy()


# --------------------------------------------------------------------------------------------
# Choosing and opening a backend


def _open_torch(weights, config, onnx, plan, device, options) -> Backend:
    from hoposer.model.checkpoint import load_checkpoint

    if weights is not None:
        model = load_checkpoint(weights)
    elif config is not None:
        model = random_model(config)
    else:
        raise HoposerError("the torch backend needs --weights (or --config for random weights)")
    return TorchBackend(model, device, options)


def cache_root() -> Path:
    """`$HOPOSER_CACHE_DIR`, default `~/.cache/hoposer`."""
    return Path(os.environ.get("HOPOSER_CACHE_DIR", Path.home() / ".cache" / "hoposer"))


def verified_weights_sha256(weights: str | Path) -> str:
    """The checkpoint's tensors checksum, checked against its tensors once per file content.

    A header only claims a checksum; this reads the tensors and checks the claim, so a damaged
    file is refused whichever backend runs it. The result is remembered under
    `cache_root()/verified/<SHA-256 of the file's bytes>`: hashing the bytes (fast) is repeated
    every time, the tensor check only for content not seen before.

    Raises:
        HoposerError: the tensors do not match the header's checksum.
    """
    from hoposer.engine.export import file_sha256
    from hoposer.io import write_text_atomic
    from hoposer.model.checkpoint import read_checkpoint_info, verify_checkpoint

    info = read_checkpoint_info(weights)
    claimed = info.metadata.get("tensors_sha256", "")
    marker = cache_root() / "verified" / file_sha256(info.path)
    if marker.is_file() and marker.read_text().strip() == claimed:
        return claimed
    verify_checkpoint(info.path)
    try:
        marker.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(marker, claimed + "\n")
    except OSError:
        pass  # a read-only cache only costs verifying again next time
    return claimed


def cached_onnx(weights: str | Path) -> Path:
    """An ONNX export of a checkpoint, made once and kept in the cache folder.

    The file is named after the checkpoint's verified weights checksum
    (`verified_weights_sha256`), so new weights get a new export and a damaged file never
    reaches an export made from the intact one. The folder is `cache_root()/onnx`.
    """
    from hoposer.engine.export import export_onnx
    from hoposer.model.checkpoint import load_checkpoint, read_checkpoint_info

    info = read_checkpoint_info(weights)
    sha256 = verified_weights_sha256(weights)
    path = cache_root() / "onnx" / f"{info.config.name}-{info.config.input_size}-{sha256[:16]}.onnx"
    if not path.is_file():
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise HoposerError(
                f"cannot create the ONNX cache {path.parent} ({err.strerror}): set "
                "HOPOSER_CACHE_DIR to a writable folder, or pass --onnx"
            ) from None
        export_onnx(load_checkpoint(weights), path, weights_sha256=sha256)
    return path


def _open_onnxruntime(weights, config, onnx, plan, device, options) -> Backend:
    if onnx is None and weights is not None:
        onnx = cached_onnx(weights)
    if onnx is None:
        raise HoposerError(
            "the onnxruntime backend needs an .onnx file (--onnx); make one with "
            "'hoposer engine export --weights W.safetensors --out model.onnx'"
        )
    backend = OnnxRuntimeBackend(onnx, device, options)
    if weights is not None:
        _check_same_weights(backend.info.weights_sha256, weights, onnx)
    return backend


def _open_tensorrt(weights, config, onnx, plan, device, options) -> Backend:
    from hoposer.engine.backends.tensorrt import TensorRTBackend, plan_sidecar_path

    if plan is None:
        raise HoposerError(
            "the tensorrt backend needs a plan (--plan); build one with "
            "'hoposer engine build model.onnx --out model.plan'"
        )
    if weights is not None:  # the plan must come from these (intact) weights
        sidecar = plan_sidecar_path(plan)
        recorded = None
        if sidecar.is_file():
            recorded = json.loads(sidecar.read_text()).get("weights_sha256")
        if recorded != verified_weights_sha256(weights):
            raise HoposerError(
                f"{plan} was not built from {weights} (its {sidecar.name} records other weights "
                "or none); build it again from an export of these weights"
            )
    return TensorRTBackend(plan, onnx_path=onnx, device=device, options=options)


def _check_same_weights(onnx_sha: str, weights, onnx) -> None:
    ckpt_sha = verified_weights_sha256(weights)
    if onnx_sha != ckpt_sha:
        raise HoposerError(
            f"{onnx} was exported from other weights than {weights}; export it again"
        )


#: Each backend's opener, in `auto`'s order of preference.
BACKENDS: dict[str, Callable[..., Backend]] = {
    "tensorrt": _open_tensorrt,
    "onnxruntime": _open_onnxruntime,
    "torch": _open_torch,
}
BACKEND_NAMES: tuple[str, ...] = ("auto", *BACKENDS)


def random_model(config: ModelConfig | str, seed: int = 0) -> HandObjectNet:
    """A randomly initialised network, the same for the same config and seed (tests, benches)."""
    from hoposer.model.config import get_config

    config = get_config(config) if isinstance(config, str) else config
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return HandObjectNet(config).eval()


def check_backend_name(name: str) -> str:
    """`name` if it is a backend (or "auto"), else a HoposerError with a suggestion."""
    if name in BACKEND_NAMES:
        return name
    close = difflib.get_close_matches(name, BACKEND_NAMES, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    raise HoposerError(f"unknown backend {name!r}: use one of {', '.join(BACKEND_NAMES)}{hint}")


def tensorrt_usable() -> bool:
    """Whether TensorRT can run here: a CUDA GPU and the `tensorrt` package."""
    return torch.cuda.is_available() and importlib.util.find_spec("tensorrt") is not None


def resolve_backend(name: str, *, weights=None, config=None, onnx=None, plan=None) -> str:
    """The concrete backend `open_backend` would open.

    `auto` picks the first of tensorrt (a CUDA GPU, the tensorrt package and a plan), torch on a
    CUDA GPU (weights), onnxruntime (an .onnx file, or weights exported once into the cache),
    torch (weights or a config) that can run with what was given.
    """
    name = check_backend_name(name)
    if name != "auto":
        return name
    if plan is not None and tensorrt_usable():
        return "tensorrt"
    if weights is not None and torch.cuda.is_available():
        return "torch"
    if (onnx is not None or weights is not None) and importlib.util.find_spec("onnxruntime"):
        return "onnxruntime"  # on a CPU, ONNX Runtime beats eager torch (see the README)
    if weights is not None or config is not None:
        return "torch"
    raise HoposerError(
        "no backend can run with what was given: pass --plan (TensorRT), --onnx (ONNX Runtime) "
        "or --weights (PyTorch)"
    )


def open_backend(
    name: str = "auto",
    *,
    weights: str | Path | None = None,
    config: ModelConfig | str | None = None,
    onnx: str | Path | None = None,
    plan: str | Path | None = None,
    device: str | None = None,
    options: BackendOptions | None = None,
) -> Backend:
    """Open a backend by name ("auto", "torch", "onnxruntime" or "tensorrt").

    Args:
        name: the backend; `auto` as in `resolve_backend`.
        weights: hoposer checkpoint (torch; for onnxruntime it is checked against the file).
        config: preset name or config for a randomly initialised torch model (testing only).
        onnx: exported file (onnxruntime; for tensorrt it is checked against the plan).
        plan: TensorRT engine built by `build_engine`.
        device: "cpu", "cuda" or "cuda:N"; None picks CUDA when the backend can use it.
        options: see `BackendOptions`.
    """
    chosen = resolve_backend(name, weights=weights, config=config, onnx=onnx, plan=plan)
    return BACKENDS[chosen](weights, config, onnx, plan, device, options or BackendOptions())
