"""Checkpoints: one `.safetensors` file that describes and verifies itself, plus a JSON sidecar.

The safetensors header carries the model config (JSON), the hoposer version, free-form
provenance, and a SHA-256 over every tensor, so loading never unpickles anything and a file that
was truncated or altered is refused. `<name>.json` beside it repeats the config and provenance
for people and tools that don't read safetensors headers; loading does not need it.
"""

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from hoposer import __version__
from hoposer.errors import HoposerError
from hoposer.io import atomic_path, json_text, write_text_atomic
from hoposer.model.config import ModelConfig
from hoposer.model.network import HandObjectNet

FORMAT = "hoposer-checkpoint"
FORMAT_VERSION = "1"


@dataclass(frozen=True)
class CheckpointInfo:
    """What a checkpoint's header says about it."""

    path: Path
    config: ModelConfig
    hoposer_version: str
    metadata: dict[str, str]


def tensors_digest(state: dict[str, torch.Tensor]) -> str:
    """SHA-256 over names, dtypes, shapes and bytes of all tensors, in sorted name order."""
    digest = hashlib.sha256()
    for name in sorted(state):
        tensor = state[name].detach().to("cpu").contiguous()
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def save_checkpoint(
    model: HandObjectNet,
    path: str | Path,
    metadata: dict[str, str] | None = None,
    half: bool = False,
) -> Path:
    """Write `model`'s weights and config to `path` (`.safetensors`) and `path.json`, atomically.

    Args:
        model: the network to save.
        path: target file; its suffix must be `.safetensors`.
        metadata: extra provenance (string values), e.g. the source checkpoint or training run.
        half: store floating-point tensors as float16 (half the size; loading upcasts them to
            the model's float32, a relative change of at most 2^-11 per weight).

    Returns:
        The path written.
    """
    path = Path(path)
    if path.suffix != ".safetensors":
        raise HoposerError(f"checkpoint path {path} must end in .safetensors")
    if not path.parent.is_dir():
        raise HoposerError(f"cannot write {path}: directory {path.parent} does not exist")
    state = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    if half:
        state = {k: v.half() if v.is_floating_point() else v for k, v in state.items()}
    header = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "config": model.config.to_json(),
        "hoposer_version": __version__,
        "tensors_sha256": tensors_digest(state),
        **{str(k): str(v) for k, v in (metadata or {}).items()},
    }
    with atomic_path(path) as tmp:
        save_file(state, str(tmp), metadata=header)
    sidecar = {k: v for k, v in header.items() if k != "config"}
    sidecar["config"] = json.loads(header["config"])
    sidecar["parameters"] = sum(p.numel() for p in model.parameters())
    write_text_atomic(path.with_suffix(".json"), json_text(sidecar, indent=2) + "\n")
    return path


def read_checkpoint_info(path: str | Path) -> CheckpointInfo:
    """Read and validate a checkpoint's header without loading its tensors."""
    path = _existing_file(path)
    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = dict(f.metadata() or {})
    except (SafetensorError, OSError, ValueError) as err:
        raise HoposerError(
            f"{path} is not a readable safetensors checkpoint ({_short(err)}): "
            "it may be truncated or corrupt; copy or export it again"
        ) from None
    if metadata.get("format") != FORMAT:
        raise HoposerError(
            f"{path} is a safetensors file but not a hoposer checkpoint (no '{FORMAT}' header); "
            "official Semi-Hand-Object .pth files go through 'hoposer weights import-official'"
        )
    config = ModelConfig.from_json(metadata.get("config", ""))
    return CheckpointInfo(path, config, metadata.get("hoposer_version", "?"), metadata)


def load_checkpoint(path: str | Path, device: str | torch.device = "cpu") -> HandObjectNet:
    """Build the network described by a checkpoint and load its verified weights (eval mode)."""
    info = read_checkpoint_info(path)
    state = _verified_state(info)
    model = HandObjectNet(info.config)
    load_exact(model, state, source=str(info.path))
    return model.to(device).eval()


def verify_checkpoint(path: str | Path) -> str:
    """Read every tensor and check it against the header's checksum; returns that checksum.

    Raises:
        HoposerError: the tensors are unreadable or do not match (a damaged or altered file).
    """
    info = read_checkpoint_info(path)
    _verified_state(info)
    return info.metadata["tensors_sha256"]


def _verified_state(info: CheckpointInfo) -> dict[str, torch.Tensor]:
    try:
        with safe_open(str(info.path), framework="pt", device="cpu") as f:
            state = {name: f.get_tensor(name) for name in f.keys()}  # noqa: SIM118
    except (SafetensorError, OSError, ValueError) as err:
        raise HoposerError(
            f"{info.path}: tensor data unreadable ({_short(err)}); the file is truncated or "
            "corrupt: copy or export it again"
        ) from None
    if tensors_digest(state) != info.metadata.get("tensors_sha256"):
        raise HoposerError(
            f"{info.path}: weights do not match the checksum in its header (the file was "
            "altered or damaged); copy or export it again"
        )
    return state


def load_exact(model: torch.nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    """`load_state_dict` that names every missing, unexpected or mis-shaped key in its error."""
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    misshaped = sorted(
        f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}"
        for k in set(own) & set(state)
        if own[k].shape != state[k].shape
    )
    if missing or unexpected or misshaped:
        parts = []
        for label, keys in (("missing", missing), ("unexpected", unexpected)):
            if keys:
                parts.append(f"{len(keys)} {label} ({', '.join(keys[:4])}{' …' * (len(keys) > 4)})")
        if misshaped:
            parts.append(f"{len(misshaped)} of another shape ({', '.join(misshaped[:3])})")
        raise HoposerError(f"{source} does not fit the model: " + "; ".join(parts))
    model.load_state_dict(state, strict=True)


def _existing_file(path: str | Path) -> Path:
    path = Path(path)
    if path.is_dir():
        raise HoposerError(f"{path} is a directory; give the .safetensors checkpoint file")
    if not path.is_file():
        raise HoposerError(f"checkpoint {path} does not exist")
    return path


def _short(err: Exception) -> str:
    return str(err).splitlines()[0][:200] if str(err) else type(err).__name__
