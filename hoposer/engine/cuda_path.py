"""The torch backend's fast GPU path: pinned host staging and batch-1 CUDA-graph replay.

At batch 1 a small network on a GPU is bound by kernel launches and host-device copies, not by
arithmetic (`lite` on an H100: 9 ms eager, mostly launch gaps). Two things remove most of that:

- `HostStaging`: CPU inputs are copied into page-locked (pinned) buffers allocated once per
  input shape, so the copy to the GPU runs asynchronously (`non_blocking`) by DMA instead of a
  synchronous pageable copy; a CUDA event guards each buffer until its transfer has finished.
- `GraphRunner`: the batch-1 forward (eager or `torch.compile`d, autocast included) is captured
  once in a CUDA graph with static input buffers and replayed: one launch per frame.

`plan_gpu_path` decides which of them a backend uses and rejects combinations that cannot run
(CUDA graphs or pinned memory on a CPU), so option errors are plain `HoposerError`s.
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from hoposer.errors import HoposerError


@dataclass(frozen=True)
class GpuPath:
    """What the torch backend does on its device (all False on a CPU)."""

    pinned_staging: bool  #: copy CPU inputs through pinned buffers, asynchronously
    cuda_graph: bool  #: capture batch-1 inference in a CUDA graph and replay it
    channels_last: bool  #: model and images in channels-last memory format
    autocast: torch.dtype | None  #: fp16 / bf16 autocast dtype, None for fp32


def plan_gpu_path(
    device: torch.device,
    precision: str = "fp32",
    channels_last: bool = False,
    cuda_graph: bool = False,
) -> GpuPath:
    """The GPU path for these options on `device`, or a HoposerError saying what to change."""
    cuda = device.type == "cuda"
    if precision not in ("fp32", "fp16", "bf16"):
        raise HoposerError(f"precision must be fp32, fp16 or bf16, not {precision!r}")
    if precision != "fp32" and not cuda:
        raise HoposerError(f"precision {precision} needs a CUDA device; the CPU runs fp32")
    if cuda_graph and not cuda:
        raise HoposerError("CUDA graphs need a CUDA device; drop --cuda-graph on the CPU")
    autocast = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(precision)
    return GpuPath(
        pinned_staging=cuda, cuda_graph=cuda_graph, channels_last=channels_last, autocast=autocast
    )


class HostStaging:
    """Reusable host buffers, one per input slot, pinned when `pin` (a CUDA machine).

    `stage(slot, tensor)` copies a CPU tensor into the slot's buffer (re-allocated only when the
    shape or dtype changes) and returns the buffer; `release(slot, event)` records the CUDA event
    after which the buffer may be overwritten (the end of its asynchronous copy). Tensors already
    on a GPU are returned as they are.
    """

    def __init__(self, pin: bool) -> None:
        self.pin = pin
        self.buffers: dict[str, torch.Tensor] = {}
        self._busy: dict[str, torch.cuda.Event] = {}
        self.allocations = 0  #: buffers allocated so far (for tests and diagnostics)

    def stage(self, slot: str, tensor: torch.Tensor) -> torch.Tensor:
        """`tensor` in the slot's (pinned) host buffer; waits for that buffer's last copy."""
        if tensor.device.type != "cpu":
            return tensor
        buffer = self.buffers.get(slot)
        if buffer is None or buffer.shape != tensor.shape or buffer.dtype != tensor.dtype:
            buffer = torch.empty(tensor.shape, dtype=tensor.dtype, pin_memory=self.pin)
            self.buffers[slot] = buffer
            self.allocations += 1
        event = self._busy.pop(slot, None)
        if event is not None:
            event.synchronize()  # the GPU may still be reading the previous frame from it
        buffer.copy_(tensor)
        return buffer

    def release(self, slot: str, event: "torch.cuda.Event") -> None:
        """The buffer of `slot` is free once `event` has completed."""
        self._busy[slot] = event


def to_device(
    staging: HostStaging, tensors: dict[str, torch.Tensor], device: torch.device
) -> dict[str, torch.Tensor]:
    """Move named tensors to `device` through `staging` (asynchronous when pinned)."""
    if device.type != "cuda":
        return {name: t.to(device) for name, t in tensors.items()}
    moved = {}
    for name, tensor in tensors.items():
        staged = staging.stage(name, tensor)
        moved[name] = staged.to(device, non_blocking=True)
        if staged is not tensor:
            event = torch.cuda.Event()
            event.record(torch.cuda.current_stream(device))
            staging.release(name, event)
    return moved


class GraphRunner:
    """Replays `forward` captured in a CUDA graph for one fixed input shape.

    The first call warms `forward` up on a side stream (as CUDA graph capture requires: lazy
    initialisation, cuDNN autotuning and `torch.compile` happen outside the capture), captures
    it into static buffers and replays; later calls copy their inputs into those buffers and
    replay. Outputs are clones, valid after the next call. A call with another shape is an error
    (the backend routes only its fixed shape here).
    """

    WARMUP = 3

    def __init__(self, forward: Callable[..., Sequence[torch.Tensor]], device: torch.device):
        if device.type != "cuda":
            raise HoposerError(f"CUDA graphs need a CUDA device, not {device}")
        self.forward = forward
        self.device = device
        self.graph: torch.cuda.CUDAGraph | None = None
        self.static_inputs: tuple[torch.Tensor, ...] = ()
        self.static_outputs: tuple[torch.Tensor, ...] = ()

    def shapes(self) -> tuple[tuple[int, ...], ...]:
        """The input shapes the graph was captured for (empty before the first call)."""
        return tuple(tuple(t.shape) for t in self.static_inputs)

    def __call__(self, *inputs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Run (capturing on the first call) and return cloned outputs."""
        if self.graph is None:
            self._capture(inputs)
        elif tuple(tuple(t.shape) for t in inputs) != self.shapes():
            raise HoposerError(
                f"this CUDA graph was captured for inputs {self.shapes()}, not "
                f"{tuple(tuple(t.shape) for t in inputs)}"
            )
        else:
            for static, tensor in zip(self.static_inputs, inputs, strict=True):
                static.copy_(tensor, non_blocking=True)
        self.graph.replay()
        return tuple(t.clone() for t in self.static_outputs)

    def _capture(self, inputs: Sequence[torch.Tensor]) -> None:
        self.static_inputs = tuple(t.clone() for t in inputs)
        side = torch.cuda.Stream(self.device)
        side.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(side):
            for _ in range(self.WARMUP):
                self.forward(*self.static_inputs)
        torch.cuda.current_stream(self.device).wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            self.static_outputs = tuple(self.forward(*self.static_inputs))
        self.graph = graph
