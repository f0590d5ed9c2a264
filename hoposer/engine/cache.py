"""What the engine keeps under `$HOPOSER_CACHE_DIR`: checkpoints verified once, ONNX exported once.

Opening a backend from weights (`hoposer.engine.backends.open_backend`) checks that the tensors
match the checksum their header claims, and ONNX Runtime runs an export of them; both are
remembered by content, so the next start is fast and a damaged file is still refused.
"""

import os
from pathlib import Path

from hoposer.engine.export import export_onnx, file_sha256
from hoposer.errors import HoposerError
from hoposer.io import write_text_atomic
from hoposer.model.checkpoint import (
    load_checkpoint,
    read_checkpoint_info,
    verify_checkpoint,
)


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
