"""The contract every backend keeps: options, the `Backend` protocol, input validation.

One module per backend (`pytorch`, `onnxruntime`, `tensorrt`) builds on this one alone;
`hoposer.engine.backends` chooses and opens them.

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

from dataclasses import dataclass
from typing import Literal, Protocol, runtime_checkable

import numpy as np
import torch

from hoposer.errors import HoposerError
from hoposer.model.config import ModelConfig
from hoposer.model.network import RawOutputs

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
