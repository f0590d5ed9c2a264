"""The PyTorch backend: eager (optionally compiled) torch, on the CPU or a CUDA GPU."""

from collections.abc import Callable
from pathlib import Path
from typing import Self

import torch

from hoposer.engine.backends.base import BackendOptions, validate_inputs
from hoposer.engine.cuda_path import GraphRunner, HostStaging, plan_gpu_path, to_device
from hoposer.errors import HoposerError
from hoposer.model.checkpoint import load_checkpoint
from hoposer.model.config import ModelConfig, get_config
from hoposer.model.network import HandObjectNet, RawOutputs
from hoposer.threads import configure_threads


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
        """From a checkpoint, or random weights for a config (testing); `open_backend`'s files.

        The ONNX file and the plan are other backends' artefacts; torch runs the weights.
        """
        del onnx, plan
        if weights is not None:
            model = load_checkpoint(weights)
        elif config is not None:
            model = random_model(config)
        else:
            raise HoposerError("the torch backend needs --weights (or --config for random weights)")
        return cls(model, device, options)

    def _forward(self, images, hand_boxes, object_boxes) -> tuple[torch.Tensor, ...]:
        if self.path.autocast is not None:
            with torch.autocast("cuda", dtype=self.path.autocast):
                out = self._compiled(images, hand_boxes, object_boxes)
        else:
            out = self._compiled(images, hand_boxes, object_boxes)
        return tuple(out)

    def run(self, images, hand_boxes, object_boxes) -> RawOutputs:
        """Predict for a batch (see `hoposer.engine.backends.base` for the contract)."""
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


def random_model(config: ModelConfig | str, seed: int = 0) -> HandObjectNet:
    """A randomly initialised network, the same for the same config and seed (tests, benches)."""
    config = get_config(config) if isinstance(config, str) else config
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return HandObjectNet(config).eval()
