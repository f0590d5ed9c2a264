"""Real MANO (Romero et al. 2017) through smplx, from the user's licensed `MANO_RIGHT.pkl`.

The official pickle holds chumpy objects and scipy sparse matrices. It is read without chumpy and
without executing code: `hoposer.safe_pickle.RestrictedUnpickler` rebuilds numpy arrays and turns
the chumpy and scipy classes it names into inert stand-ins that are then evaluated to arrays. The
result is cached once as a plain `.npz` (default `~/.cache/hoposer/mano_right.npz`, directory set
by `cache_dir` or `HOPOSER_CACHE_DIR`), keyed by the pickle's SHA-256, and fed to `smplx.MANO`
through `data_struct`.

Where the pickle is looked for: the `mano_dir` argument (`--mano-dir`; a folder holding
`MANO_RIGHT.pkl`, or the file itself), else `$HOPOSER_MANO_DIR`, else `~/.cache/hoposer/mano`.
"""

import contextlib
import hashlib
import io
import logging
import os
import pickle
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import torch

from hoposer.errors import HoposerError
from hoposer.model.hand.base import HandModel, HandOutput, check_inputs, finish
from hoposer.safe_pickle import load_pickle

log = logging.getLogger(__name__)

MANO_FILE = "MANO_RIGHT.pkl"
MANO_URL = "https://mano.is.tue.mpg.de"
DEFAULT_MANO_DIR = Path("~/.cache/hoposer/mano")
DEFAULT_CACHE_DIR = Path("~/.cache/hoposer")
CACHE_FILE = "mano_right.npz"

#: MANO vertices used as fingertips (thumb, index, middle, ring, pinky), as in Semi-Hand-Object.
TIP_VERTICES: tuple[int, ...] = (728, 353, 442, 576, 694)

#: The arrays smplx's MANO needs, kept in the cache.
_KEYS = (
    "v_template",
    "f",
    "J_regressor",
    "weights",
    "kintree_table",
    "shapedirs",
    "posedirs",
    "hands_components",
    "hands_mean",
)


def find_mano_file(mano_dir: str | Path | None = None) -> Path | None:
    """The `MANO_RIGHT.pkl` that `mano_dir` (else $HOPOSER_MANO_DIR, else the default) names."""
    if mano_dir is None:
        mano_dir = os.environ.get("HOPOSER_MANO_DIR") or DEFAULT_MANO_DIR
    path = Path(mano_dir).expanduser()
    if path.is_dir():
        path = path / MANO_FILE
    return path if path.is_file() else None


def missing_mano_message(mano_dir: str | Path | None = None) -> str:
    """The one-line error for a missing MANO file: what it is, where to get it, where to put it."""
    where = Path(mano_dir or os.environ.get("HOPOSER_MANO_DIR") or DEFAULT_MANO_DIR).expanduser()
    return (
        f"{MANO_FILE} not found in {where}: register at {MANO_URL} (licence required), download "
        f"'Models & Code', and put mano_v*/models/{MANO_FILE} in a folder given by --mano-dir or "
        f"$HOPOSER_MANO_DIR (default {DEFAULT_MANO_DIR}); or use the stand-in hand model"
    )


# ----------------------------------------------------------------------------- chumpy & scipy


class _Inert:
    """What a pickled chumpy or scipy.sparse object becomes: its state, evaluated on request."""

    kind = ""

    def __setstate__(self, state: Any) -> None:
        if isinstance(state, tuple):  # (dict, slots) from classes with __slots__
            state = {**(state[0] or {}), **(state[1] or {})}
        self.state = state if isinstance(state, dict) else {}


def _inert_class(module: str, name: str) -> type:
    return type(name, (_Inert,), {"kind": name, "__module__": __name__, "source": module})


_CHUMPY = {
    ("chumpy.ch", "Ch"),
    ("chumpy.reordering", "Select"),
    ("chumpy.reordering", "Reshape"),
    ("chumpy.reordering", "transpose"),
    ("chumpy.ch_ops", "add"),
    ("chumpy.ch_ops", "subtract"),
    ("chumpy.ch_ops", "multiply"),
    ("chumpy.ch_ops", "divide"),
}
_SPARSE = {
    (module, name)
    for name in ("csc_matrix", "csr_matrix")
    for module in ("scipy.sparse", f"scipy.sparse.{name[:3]}", f"scipy.sparse._{name[:3]}")
}
_INERT_CLASSES = {key: _inert_class(*key) for key in _CHUMPY | _SPARSE}


def _reconstructor(cls: type, base: type, state: Any) -> Any:
    """`copyreg._reconstructor` (protocol 0/1 pickles) restricted to the inert classes."""
    if cls not in _INERT_CLASSES.values() or base is not object or state is not None:
        raise pickle.UnpicklingError(f"refusing to reconstruct {getattr(cls, '__name__', cls)}")
    return object.__new__(cls)


_EXTRA: dict[tuple[str, str], Any] = {
    **_INERT_CLASSES,
    ("copy_reg", "_reconstructor"): _reconstructor,
    ("copyreg", "_reconstructor"): _reconstructor,
    ("__builtin__", "object"): object,
    ("builtins", "object"): object,
    # Python 2 names of builtins that chumpy's pickled state uses (e.g. `_dirty_vars`).
    ("__builtin__", "set"): set,
    ("__builtin__", "frozenset"): frozenset,
}


def _evaluate(value: Any) -> Any:
    """Turn inert chumpy / sparse objects (recursively) into numpy arrays; others pass."""
    if not isinstance(value, _Inert):
        return value
    s, kind = value.state, value.kind
    try:
        if kind in ("csc_matrix", "csr_matrix"):
            data, indices, indptr = (np.asarray(s[k]) for k in ("data", "indices", "indptr"))
            shape = tuple(int(n) for n in s.get("_shape", s.get("shape")))
            dense = np.zeros(shape if kind == "csr_matrix" else shape[::-1], dtype=data.dtype)
            major = np.repeat(np.arange(len(indptr) - 1), np.diff(indptr))
            np.add.at(dense, (major, indices), data)
            return dense if kind == "csr_matrix" else dense.T
        if kind == "Ch":
            return np.asarray(_evaluate(s["x"]))
        a = np.asarray(_evaluate(s["a"]))
        if kind == "Select":
            out = a.ravel()[np.asarray(s["idxs"])]
            shape = s.get("preferred_shape")
            return out.reshape(shape) if shape is not None else out
        if kind == "Reshape":
            return a.reshape(s["newshape"])
        if kind == "transpose":
            return np.transpose(a, s.get("axes"))
        b = np.asarray(_evaluate(s["b"]))
        return {"add": np.add, "subtract": np.subtract, "multiply": np.multiply}.get(
            kind, np.divide
        )(a, b)
    except (KeyError, TypeError, ValueError) as err:
        raise HoposerError(
            f"cannot evaluate a {value.source}.{kind} object in the MANO file ({err})"
        ) from None


def load_mano_pickle(path: str | Path) -> dict[str, np.ndarray]:
    """The arrays of an official MANO pickle, read without chumpy and without running code.

    Returns:
        `v_template (778, 3)`, `f (1538, 3)` int64, `J_regressor (16, 778)` dense,
        `weights (778, 16)`, `kintree_table (2, 16)`, `shapedirs (778, 3, 10)`,
        `posedirs (778, 3, 135)`, `hands_components (45, 45)`, `hands_mean (45,)`, and the
        rest joints `J (16, 3)` when the file has them.
    """
    raw = load_pickle(path, extra=_EXTRA)
    if not isinstance(raw, dict):
        raise HoposerError(f"{path} is not a MANO model file (expected a dict)")
    missing = [k for k in _KEYS if k not in raw]
    if missing:
        raise HoposerError(f"{path} is not a MANO model file: missing {', '.join(missing)}")
    arrays = {k: np.asarray(_evaluate(raw[k])) for k in (*_KEYS, "J") if k in raw}
    arrays["f"] = arrays["f"].astype(np.int64)
    arrays["kintree_table"] = arrays["kintree_table"].astype(np.int64)
    return arrays


def load_mano_arrays(
    path: str | Path, cache_dir: str | Path | None = None
) -> dict[str, np.ndarray]:
    """`load_mano_pickle` through a `.npz` cache keyed by the pickle's SHA-256.

    An unwritable cache directory only costs the conversion next time (logged).
    """
    path = Path(path)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    cache_root = Path(cache_dir or os.environ.get("HOPOSER_CACHE_DIR") or DEFAULT_CACHE_DIR)
    cache = cache_root.expanduser() / CACHE_FILE
    if cache.is_file():
        try:
            with np.load(cache, allow_pickle=False) as data:
                if str(data["source_sha256"]) == digest:
                    return {k: data[k] for k in _KEYS}
        except (OSError, KeyError, ValueError) as err:
            log.warning("ignoring unreadable MANO cache %s (%s)", cache, err)
    arrays = load_mano_pickle(path)
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_suffix(".tmp.npz")
        np.savez(tmp, source_sha256=np.array(digest), **arrays)
        os.replace(tmp, cache)
    except OSError as err:
        log.warning("cannot write the MANO cache %s (%s); continuing without it", cache, err)
    return arrays


# ----------------------------------------------------------------------------- the model


class MANOHand(HandModel):
    """MANO's right hand via `smplx.MANO` (flat_hand_mean, no PCA, 10 β), hoposer's semantics.

    21 joints: smplx's 16 kinematic joints plus the tip vertices `TIP_VERTICES`, in HO-3D order,
    reordered to hoposer's and re-centred on the wrist, as the Semi-Hand-Object MANO layer does.
    Computes in the layer's dtype (float32 unless the module is converted) and returns θ's dtype.
    """

    name = "mano"

    def __init__(self, mano_dir: str | Path | None = None, cache_dir: str | Path | None = None):
        super().__init__()
        path = find_mano_file(mano_dir)
        if path is None:
            raise HoposerError(missing_mano_message(mano_dir))
        arrays = load_mano_arrays(path, cache_dir)
        import smplx  # lazy: only real-MANO users pay for it

        # smplx prints a warning about MANO having only 10 shape components; it is expected.
        with contextlib.redirect_stdout(io.StringIO()):
            self.layer = smplx.MANO(
                model_path=str(path),
                data_struct=SimpleNamespace(**arrays),
                is_rhand=True,
                use_pca=False,
                flat_hand_mean=True,
                num_betas=10,
                create_global_orient=False,
                create_hand_pose=False,
                create_betas=False,
                create_transl=False,
            )
        self.faces = np.asarray(arrays["f"], dtype=np.int64)
        self.num_vertices = int(arrays["v_template"].shape[0])
        self.source = path

    def forward(
        self,
        theta: torch.Tensor,
        beta: torch.Tensor | None = None,
        translation: torch.Tensor | None = None,
    ) -> HandOutput:
        """Pose and shape the hand; see `HandModel.forward`."""
        theta, beta = check_inputs(theta, beta, translation)
        ref = self.layer.shapedirs
        th, be = theta.to(ref), beta.to(ref)
        out = self.layer(betas=be, global_orient=th[:, :3], hand_pose=th[:, 3:])
        vertices = out.vertices
        joints = torch.cat([out.joints[:, :16], vertices[:, list(TIP_VERTICES)]], 1)
        result = finish(joints, vertices, None)
        result = HandOutput(result.vertices.to(theta.dtype), result.joints.to(theta.dtype))
        if translation is None:
            return result
        shift = translation.to(theta)[:, None]
        return HandOutput(result.vertices + shift, result.joints + shift)
