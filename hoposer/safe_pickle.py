"""Reading third-party pickles (HO-3D meta files) without executing arbitrary code.

Only numpy arrays, numpy scalars and plain Python containers can be rebuilt; any other global a
pickle names is refused, so a malicious file cannot run code.
"""

import io
import pickle
from pathlib import Path
from typing import Any

from hoposer.errors import HoposerError

#: (module, name) pairs a pickle may reference; numpy moved `core` to `_core` in numpy 2.
SAFE_GLOBALS: frozenset[tuple[str, str]] = frozenset(
    {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("collections", "OrderedDict"),
        ("builtins", "set"),
        ("builtins", "frozenset"),
        ("builtins", "complex"),
        ("builtins", "slice"),
        ("_codecs", "encode"),  # Python 2 pickles of numpy arrays store bytes through it
    }
)


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that resolves only `SAFE_GLOBALS` (plus `extra` substitutes)."""

    def __init__(self, file, extra: dict[tuple[str, str], Any] | None = None, **kwargs) -> None:
        super().__init__(file, **kwargs)
        self.extra = extra or {}

    def find_class(self, module: str, name: str) -> Any:  # noqa: D102
        if (module, name) in self.extra:
            return self.extra[(module, name)]
        if (module, name) in SAFE_GLOBALS:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load global {module}.{name}")


def load_pickle(path: str | Path, extra: dict[tuple[str, str], Any] | None = None) -> Any:
    """Load a pickle (Python 2 or 3) that may contain only numpy arrays and plain containers.

    Raises:
        HoposerError: the file is missing, unreadable, or references anything else.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as err:
        raise HoposerError(f"cannot read {path}: {err.strerror or err}") from None
    try:
        return RestrictedUnpickler(io.BytesIO(data), extra=extra, encoding="latin1").load()
    except pickle.UnpicklingError as err:
        raise HoposerError(f"{path}: {err}; only plain data pickles are accepted") from None
    except Exception as err:  # truncated or corrupt pickles raise many types
        raise HoposerError(
            f"{path} is not a readable pickle ({type(err).__name__}: {err})"
        ) from None
