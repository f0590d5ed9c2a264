"""Which pseudo-labels to keep: §5.1's spatial, then temporal, then shape constraints.

`FILTERS` names the variants of the paper's ablation (Table 4): all constraints, none, without
the spatial ones, without the temporal ones (smoothness and shape).
"""

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hoposer.errors import HoposerError
from hoposer.geometry.consistency import (
    SPATIAL,
    TEMPORAL,
    Thresholds,
    failed_constraints,
    shape_outliers,  # noqa: I001
)

FILTERS = ("all", "none", "no-spatial", "no-temporal")


@dataclass(frozen=True)
class PseudoLabels:
    """Every frame of a set of shards (arrays over frames)."""

    video: np.ndarray  #: (N,) str
    image: np.ndarray  #: (N,) str
    hand_box: np.ndarray  #: (N, 4)
    object_box: np.ndarray  #: (N, 4), NaN when none
    joints_2d: np.ndarray  #: (N, 21, 2) frame pixels
    joints_3d: np.ndarray  #: (N, 21, 3) wrist-relative, camera orientation, metres
    theta: np.ndarray  #: (N, 48)
    beta: np.ndarray  #: (N, 10)
    stats: dict[str, np.ndarray]  #: statistic name → (N,), NaN where undefined

    def __len__(self) -> int:  # noqa: D105
        return len(self.image)

    def subset(self, mask: np.ndarray) -> "PseudoLabels":
        """The frames where `mask` is true."""
        fields = ("video", "image", "hand_box", "object_box", "joints_2d", "joints_3d", "theta",
                  "beta")  # fmt: skip
        take = {k: getattr(self, k)[mask] for k in fields}
        return PseudoLabels(**take, stats={k: v[mask] for k, v in self.stats.items()})


def load_shards(folders: list[str | Path]) -> PseudoLabels:
    """Read every `shard-*.npz` of the given folders.

    Raises:
        HoposerError: no shard found, or a shard that cannot be read.
    """
    paths = sorted(p for folder in folders for p in Path(folder).glob("shard-*.npz"))
    if not paths:
        raise HoposerError(
            f"no pseudo-label shards (shard-*.npz) in {', '.join(map(str, folders))}"
        )
    parts = []
    for path in paths:
        try:
            with np.load(path, allow_pickle=False) as data:
                parts.append({k: data[k] for k in data.files})
        except (OSError, ValueError) as err:
            raise HoposerError(f"cannot read pseudo-label shard {path}: {err}") from None
    names = [str(n) for n in parts[0]["statistic_names"]]
    joined = {k: np.concatenate([p[k] for p in parts]) for k in parts[0] if k != "statistic_names"}
    stats = {name: joined["stats"][:, i] for i, name in enumerate(names)}
    return PseudoLabels(
        video=joined["video"], image=joined["image"], hand_box=joined["hand_box"],
        object_box=joined["object_box"], joints_2d=joined["joints_2d"],
        joints_3d=joined["joints_3d"], theta=joined["theta"], beta=joined["beta"], stats=stats,
    )  # fmt: skip


def _passes(labels: PseudoLabels, names: tuple[str, ...], thresholds: Thresholds) -> np.ndarray:
    keep = np.ones(len(labels), bool)
    for i in range(len(labels)):
        stats = {n: float(labels.stats[n][i]) for n in names if np.isfinite(labels.stats[n][i])}
        keep[i] = not failed_constraints(stats, thresholds)
    return keep


def select(
    labels: PseudoLabels, filters: str = "all", thresholds: Thresholds | None = None
) -> tuple[np.ndarray, dict[str, int]]:
    """The kept frames `(N,)` and the funnel (frames left after each stage, as in Figure 5).

    Temporal statistics are undefined (NaN) for a video's first frame, which therefore passes
    the smoothness check; the shape check runs per video on the frames kept so far.
    """
    if filters not in FILTERS:
        raise HoposerError(f"unknown pseudo-label filters {filters!r}: use one of {FILTERS}")
    thresholds = thresholds or Thresholds()
    keep = np.ones(len(labels), bool)
    funnel = {"frames": len(labels)}
    if filters in ("all", "no-temporal"):
        for name in SPATIAL:  # each constraint's own rejections, for the report
            funnel[f"passes_{name}"] = int(_passes(labels, (name,), thresholds).sum())
        keep &= _passes(labels, SPATIAL, thresholds)
        funnel["after_spatial"] = int(keep.sum())
    if filters in ("all", "no-spatial"):
        keep &= _passes(labels, TEMPORAL, thresholds)
        funnel["after_smoothness"] = int(keep.sum())
        for video in np.unique(labels.video):
            members = np.flatnonzero((labels.video == video) & keep)
            outliers = shape_outliers(labels.beta[members], thresholds.shape_sigmas)
            keep[members[outliers]] = False
        funnel["after_shape"] = int(keep.sum())
    funnel["kept"] = int(keep.sum())
    return keep, funnel
