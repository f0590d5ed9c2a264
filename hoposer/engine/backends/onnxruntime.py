"""The ONNX Runtime backend: an exported `.onnx` file on the CPU or the CUDA execution provider."""

from pathlib import Path
from typing import Self

import numpy as np
import torch

from hoposer.engine.backends.base import BackendOptions, validate_inputs
from hoposer.engine.cache import cached_onnx, verified_weights_sha256
from hoposer.engine.export import OUTPUT_NAMES, read_onnx_info
from hoposer.errors import HoposerError
from hoposer.model.config import ModelConfig
from hoposer.model.network import RawOutputs
from hoposer.threads import onnxruntime_options


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
        """From an ONNX file, or weights exported once into the cache; `open_backend`'s files.

        Given both, the file must have been exported from these (intact) weights.
        """
        del config, plan  # the torch and TensorRT backends' artefacts
        if onnx is None and weights is not None:
            onnx = cached_onnx(weights)
        if onnx is None:
            raise HoposerError(
                "the onnxruntime backend needs an .onnx file (--onnx); make one with "
                "'hoposer engine export --weights W.safetensors --out model.onnx'"
            )
        backend = cls(onnx, device, options)
        if weights is not None and backend.info.weights_sha256 != verified_weights_sha256(weights):
            raise HoposerError(
                f"{onnx} was exported from other weights than {weights}; export it again"
            )
        return backend

    def run(self, images, hand_boxes, object_boxes) -> RawOutputs:
        """Predict for a batch (see `hoposer.engine.backends.base` for the contract)."""
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
