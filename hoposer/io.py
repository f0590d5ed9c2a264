"""Files that a crash never leaves half-written, and JSON that every parser accepts.

JSON written through `json_text` never holds NaN or Infinity (see `finite_or_null`).
"""

import contextlib
import json
import math
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from hoposer.errors import HoposerError


@contextlib.contextmanager
def atomic_path(path: str | Path, sync: bool = True) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success it replaces `path` in one rename.

    The parent directory must exist. `sync=False` skips the fsync: readers still never see a
    partial file, only durability across a power cut is lost (for many small files of a data
    set whose listing, written last with a sync, is what makes it complete). On an exception
    the temporary file is removed and `path` is left as it was.
    """
    path = Path(path)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        if sync:
            with open(tmp, "rb") as f:
                os.fsync(f.fileno())
        # mkstemp makes owner-only files; give the result the mode a plain open() would.
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_text_atomic(path: str | Path, text: str) -> None:
    """Replace `path` with `text` (UTF-8) atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def _umask() -> int:
    """The process umask, read without changing it (os.umask would, racing other threads)."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    return 0o022


def finite_or_null(value, path: str = "", found: list[str] | None = None):
    """A copy of a JSON-like value with every NaN/±inf number replaced by None.

    JSON has no NaN or Infinity (RFC 8259): Python's `json` writes them as bare tokens that strict
    parsers (JavaScript's `JSON.parse`, Go, Rust's serde) reject. When `found` is given, the
    dotted path of each replaced number is appended to it (list indices dropped, each path once).
    """
    if isinstance(value, float | np.floating):
        if math.isfinite(value):
            return float(value)
        if found is not None and path not in found:
            found.append(path)
        return None
    if isinstance(value, dict):
        prefix = f"{path}." if path else ""
        return {k: finite_or_null(v, f"{prefix}{k}", found) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite_or_null(v, path, found) for v in value]
    if isinstance(value, np.integer):
        return int(value)
    return value


def json_text(value, **dumps_kwargs) -> str:
    """`json.dumps` that never writes NaN/Infinity: non-finite numbers become null."""
    try:
        return json.dumps(value, allow_nan=False, **dumps_kwargs)
    except (ValueError, TypeError):  # NaN/inf, or numpy scalars `finite_or_null` converts
        return json.dumps(finite_or_null(value), allow_nan=False, **dumps_kwargs)


def loads_strict(text: str | bytes):
    """`json.loads` that refuses NaN/Infinity tokens, as JavaScript's `JSON.parse` does."""

    def refuse(token: str):
        raise ValueError(f"{token} is not JSON")

    return json.loads(text, parse_constant=refuse)


def check_writable_file(path: str | Path, option: str = "--out") -> Path:
    """Fail early, with one line, when the file `path` cannot be created (its folder must exist).

    The folder is probed by creating a temporary file in it, so read-only mounts, `/proc` and
    full disks are caught as well as permissions (which do not stop root).
    """
    path = Path(path)
    if path.is_dir():
        raise HoposerError(f"{option} {path} is a folder: give a file name")
    parent = path.parent
    if parent.exists() and not parent.is_dir():
        raise HoposerError(f"cannot write {path}: {parent} is a file, not a folder")
    if not parent.is_dir():
        raise HoposerError(f"cannot write {path}: folder {parent} does not exist")
    _probe(parent, path, option)
    return path


def check_writable_folder(path: str | Path, option: str = "--out") -> Path:
    """Fail early when the folder `path` cannot be written or created (nothing is created)."""
    path = Path(path)
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise HoposerError(f"cannot write {path}: {existing} is a file, not a folder")
    _probe(existing, path, option)
    return path


def _probe(folder: Path, target: Path, option: str) -> None:
    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as err:
        raise HoposerError(
            f"cannot write {target}: folder {folder} is not writable ({err.strerror}); choose "
            f"another {option}"
        ) from None
