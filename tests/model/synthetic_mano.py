"""Writes a MANO-format pickle (same keys, shapes and pickled classes as MANO_RIGHT.pkl).

The geometry is the stand-in hand's, resampled to MANO's 778 vertices; faces are shape-only.
`shapedirs` is stored as a `chumpy.ch.Ch` and `J` as a `chumpy.ch_ops.add` of two `Ch`, exactly
as the class references appear in the official files, and `J_regressor` as a scipy
`csc_matrix`. chumpy is not installed: tiny stand-in classes are registered under the names
`chumpy.ch` / `chumpy.ch_ops` in `sys.modules` while pickling only, and removed afterwards, so the
loader under test must cope without chumpy.
"""

import pickle
import sys
import types
from pathlib import Path

import numpy as np
import scipy.sparse

from hoposer.model.hand.standin import StandInHand

NUM_VERTICES, NUM_FACES = 778, 1538


class _Ch:
    """Pickles like chumpy's `Ch`: class `chumpy.ch.Ch`, state a dict holding `x`."""

    def __init__(self, x):
        self.x = np.asarray(x)

    def __getstate__(self):
        return {"x": self.x, "_dirty_vars": set(), "_itr": None}


class _Add:
    """Pickles like chumpy's `ch_ops.add`: state holds operands `a` and `b`."""

    def __init__(self, a, b):
        self.a, self.b = a, b

    def __getstate__(self):
        return {"a": self.a, "b": self.b, "_dirty_vars": set()}


def mano_arrays(seed: int = 0) -> dict:
    """Plain numpy versions of everything the pickle stores (J_regressor dense)."""
    rng = np.random.default_rng(seed)
    hand = StandInHand()
    pick = np.linspace(0, hand.num_vertices - 1, NUM_VERTICES).round().astype(np.int64)
    v_template = hand.v_template.numpy()[pick] + np.array([0.09, 0.005, 0.006])
    weights = hand.lbs_weights.numpy()[pick]
    shapedirs = hand.shapedirs.numpy()[pick]
    # Each joint: the mean of the 4 template vertices nearest to the stand-in's joint.
    joints = hand.j_template.numpy() + np.array([0.09, 0.005, 0.006])
    J_regressor = np.zeros((16, NUM_VERTICES))
    for j, p in enumerate(joints):
        near = np.argsort(np.linalg.norm(v_template - p, axis=1))[:4]
        J_regressor[j, near] = 0.25
    kintree = np.array([[2**32 - 1, 0, 1, 2, 0, 4, 5, 0, 7, 8, 0, 10, 11, 0, 13, 14], range(16)])
    return {
        "v_template": v_template,
        "f": rng.integers(0, NUM_VERTICES, (NUM_FACES, 3)).astype(np.uint32),
        "J_regressor": J_regressor,
        "weights": weights,
        "kintree_table": kintree.astype(np.int64),
        "shapedirs": shapedirs,
        "posedirs": rng.normal(0.0, 1e-3, (NUM_VERTICES, 3, 135)),
        "hands_components": np.linalg.qr(rng.normal(size=(45, 45)))[0],
        "hands_mean": rng.normal(0.0, 0.1, 45),
        "hands_coeffs": rng.normal(size=(100, 45)),
        "J": J_regressor @ v_template,
        "bs_style": "lbs",
        "bs_type": "lrotmin",
    }


def write_synthetic_mano(folder: str | Path, seed: int = 0) -> Path:
    """Write `folder/MANO_RIGHT.pkl`; returns its path."""
    arrays = mano_arrays(seed)
    stored = dict(arrays)
    stored["shapedirs"] = _Ch(arrays["shapedirs"])
    stored["J"] = _Add(_Ch(arrays["J"] - 1.0), _Ch(np.ones_like(arrays["J"])))
    stored["J_regressor"] = scipy.sparse.csc_matrix(arrays["J_regressor"])
    fake = {name: types.ModuleType(name) for name in ("chumpy", "chumpy.ch", "chumpy.ch_ops")}
    saved = {name: sys.modules.get(name) for name in fake}
    classes = {(_Ch, "chumpy.ch", "Ch"), (_Add, "chumpy.ch_ops", "add")}
    try:
        for cls, module, name in classes:
            cls.__module__, cls.__qualname__ = module, name
            setattr(fake[module], name, cls)
        sys.modules.update(fake)
        path = Path(folder) / "MANO_RIGHT.pkl"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(pickle.dumps(stored, protocol=2))
    finally:
        for cls, name in ((_Ch, "_Ch"), (_Add, "_Add")):
            cls.__module__, cls.__qualname__ = __name__, name
        for name, module in saved.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module
    return path
