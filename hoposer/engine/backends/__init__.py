"""One interface over PyTorch, ONNX Runtime and TensorRT; the same inputs and outputs for all.

    base: the contract every backend keeps (`Backend`, `BackendOptions`, `validate_inputs`).
    pytorch: `TorchBackend` (and `random_model`, a network with random weights).
    onnxruntime: `OnnxRuntimeBackend`.
    tensorrt: `TensorRTBackend` (needs `hoposer[tensorrt]`, imported when one is opened).

This module chooses among them: `BACKENDS` lists each backend's opener in `auto`'s order of
preference, `resolve_backend` says which one `auto` takes, `open_backend` opens it.
"""

import difflib
import importlib.util
from collections.abc import Callable
from pathlib import Path

import torch

from hoposer.engine.backends.base import Backend, BackendOptions, validate_inputs
from hoposer.engine.backends.onnxruntime import OnnxRuntimeBackend
from hoposer.engine.backends.pytorch import TorchBackend, random_model
from hoposer.engine.backends.tensorrt import TensorRTBackend
from hoposer.errors import HoposerError
from hoposer.model.config import ModelConfig

__all__ = [
    "BACKENDS",
    "BACKEND_NAMES",
    "Backend",
    "BackendOptions",
    "OnnxRuntimeBackend",
    "TensorRTBackend",
    "TorchBackend",
    "check_backend_name",
    "open_backend",
    "random_model",
    "resolve_backend",
    "tensorrt_usable",
    "validate_inputs",
]

#: Each backend's opener (keywords: weights, config, onnx, plan, device, options), in `auto`'s
#: order of preference.
BACKENDS: dict[str, Callable[..., Backend]] = {
    "tensorrt": TensorRTBackend.open,
    "onnxruntime": OnnxRuntimeBackend.open,
    "torch": TorchBackend.open,
}
BACKEND_NAMES: tuple[str, ...] = ("auto", *BACKENDS)


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
        plan: TensorRT engine built by `hoposer.engine.plan.build_engine`.
        device: "cpu", "cuda" or "cuda:N"; None picks CUDA when the backend can use it.
        options: see `BackendOptions`.
    """
    chosen = resolve_backend(name, weights=weights, config=config, onnx=onnx, plan=plan)
    return BACKENDS[chosen](
        weights=weights,
        config=config,
        onnx=onnx,
        plan=plan,
        device=device,
        options=options or BackendOptions(),
    )
