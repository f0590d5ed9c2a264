"""HO-3D's official evaluation measures, and the object measures of the paper.

Hand (as HO-3D's codalab `eval.py`, which inherits FreiHAND's `EvalUtil`):
    * per-keypoint Euclidean errors accumulated over the set; mean error = mean over keypoints of
      the per-keypoint mean; PCK/PCV curve at 100 thresholds in [0, 50] mm; AUC = trapezoidal
      area under each keypoint's curve over the threshold range, averaged over keypoints;
    * "procrustes aligned": prediction centred, both scaled to unit Frobenius norm, rotated by
      the orthogonal Procrustes solution (reflections allowed, as scipy's
      `orthogonal_procrustes`), and put back at the ground truth's scale and centroid;
    * "scale-translation aligned": prediction scaled so its wrist→middle-MCP bone matches the
      ground truth's, then translated so the wrists coincide;
    * F@5 mm / F@15 mm: harmonic mean of the fractions of predicted vertices within the
      threshold of any ground-truth vertex and vice versa, on the aligned mesh.
All hand arrays here are in HO-3D's joint order (`skeleton.OURS_TO_HO3D` converts ours).

Object: ADD = mean distance between model points under the predicted and the true pose;
ADD-0.1D = ADD below 10% of the object's diameter (bounding-box diagonal, as the public
Semi-Hand-Object evaluation); REP = mean 2D reprojection distance of the model points; REP-5 =
REP below 5 px. For symmetric objects (HO-3D and BOP practice) ADD-S replaces ADD as the pose
measure: the mean distance from each predicted model point to the *closest* true model point,
which does not punish a pose the symmetry makes indistinguishable; their REP is the smallest REP
over the symmetry group's poses. Both ADD-0.1D and ADD-S-0.1D are reported for every object;
`pose_0.1d` is ADD-S-0.1D for symmetric objects and ADD-0.1D for the others.
"""

from dataclasses import dataclass, field

import numpy as np

from hoposer.geometry.control_points import symmetric_pose, symmetry_rotations

_trapezoid = getattr(np, "trapezoid", None) or np.trapz  # numpy 2 renamed trapz

#: HO-3D order index of the middle finger's MCP, the scale bone's far end (wrist is 0).
_HO3D_MIDDLE_MCP = 4


def _check(name: str, array: np.ndarray, last: int) -> np.ndarray:
    array = np.asarray(array, dtype=np.float64)
    if array.ndim != 2 or array.shape[1] != last:
        raise ValueError(f"{name} must be (N, {last}), got {array.shape}")
    return array


def ho3d_procrustes(gt: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """HO-3D's `align_w_scale`: align `pred (N, 3)` onto `gt (N, 3)`; returns aligned pred.

    A line-by-line replica of the official code, its 1e-8 terms included, so that reported
    numbers match codalab's; otherwise the same alignment as
    `hoposer.geometry.procrustes.procrustes(pred, gt, allow_reflection=True)`.
    """
    gt, pred = _check("gt", gt, 3), _check("pred", pred, 3)
    t1, t2 = gt.mean(0), pred.mean(0)
    a, b = gt - t1, pred - t2
    s1 = np.linalg.norm(a) + 1e-8
    s2 = np.linalg.norm(b) + 1e-8
    a, b = a / s1, b / s2
    # orthogonal_procrustes(a, b): R = U Vᵀ from svd(aᵀ b), scale = sum of singular values
    u, w, vt = np.linalg.svd(a.T @ b)
    rotation = u @ vt
    return (b @ rotation.T) * w.sum() * s1 + t1


def ho3d_scale_translation(gt: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """HO-3D's `align_sc_tr` on joints in HO-3D order `(21, 3)`."""
    gt, pred = _check("gt", gt, 3), _check("pred", pred, 3)
    s = np.linalg.norm(pred[_HO3D_MIDDLE_MCP] - pred[0])
    if s > 0:
        pred = pred / s
    pred = pred * np.linalg.norm(gt[_HO3D_MIDDLE_MCP] - gt[0])
    return pred - pred[0:1] + gt[0:1]


def nearest_distances(source: np.ndarray, target: np.ndarray, chunk: int = 2048) -> np.ndarray:
    """For each point of `source (N, 3)`, the distance to its nearest point in `target (M, 3)`."""
    source, target = _check("source", source, 3), _check("target", target, 3)
    out = np.empty(len(source))
    t_sq = (target**2).sum(1)
    for start in range(0, len(source), chunk):
        s = source[start : start + chunk]
        d2 = (s**2).sum(1)[:, None] - 2.0 * s @ target.T + t_sq[None, :]
        out[start : start + chunk] = np.sqrt(np.maximum(d2.min(axis=1), 0.0))
    return out


def f_score(gt: np.ndarray, pred: np.ndarray, threshold: float) -> float:
    """HO-3D's `calculate_fscore` (threshold in metres)."""
    recall = float((nearest_distances(pred, gt) < threshold).mean())
    precision = float((nearest_distances(gt, pred) < threshold).mean())
    return 0.0 if recall + precision == 0 else 2 * recall * precision / (recall + precision)


@dataclass
class KeypointErrors:
    """FreiHAND/HO-3D `EvalUtil`: per-keypoint error lists and the measures derived from them."""

    num_points: int
    errors: list[list[float]] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.errors:
            self.errors = [[] for _ in range(self.num_points)]

    def feed(self, gt: np.ndarray, pred: np.ndarray) -> None:
        """Add one sample: `gt` and `pred` are `(num_points, 3)` in metres."""
        gt, pred = _check("gt", gt, 3), _check("pred", pred, 3)
        if len(gt) != self.num_points or len(pred) != self.num_points:
            raise ValueError(f"expected {self.num_points} points, got {len(gt)} and {len(pred)}")
        for i, d in enumerate(np.linalg.norm(gt - pred, axis=1)):
            self.errors[i].append(float(d))

    def measures(self, low: float = 0.0, high: float = 0.05, steps: int = 100) -> dict:
        """Mean / median error (m), AUC, PCK curve and thresholds, as `EvalUtil.get_measures`."""
        thresholds = np.linspace(low, high, steps)
        norm = _trapezoid(np.ones_like(thresholds), thresholds)
        means, medians, aucs, curves = [], [], [], []
        for errors in self.errors:
            if not errors:
                continue
            data = np.asarray(errors)
            means.append(data.mean())
            medians.append(np.median(data))
            curve = np.array([(data <= t).mean() for t in thresholds])
            curves.append(curve)
            aucs.append(_trapezoid(curve, thresholds) / norm)
        if not means:
            raise ValueError("no samples were fed")
        return {
            "mean": float(np.mean(means)),
            "median": float(np.mean(medians)),
            "auc": float(np.mean(aucs)),
            "curve": np.mean(curves, axis=0),
            "thresholds": thresholds,
        }


class HandEvaluator:
    """Accumulates HO-3D's hand measures over a set (joints in HO-3D order, metres)."""

    F_THRESHOLDS = (0.005, 0.015)

    def __init__(self, num_vertices: int = 778) -> None:
        self.joints = KeypointErrors(21)
        self.joints_aligned = KeypointErrors(21)
        self.joints_scale_translation = KeypointErrors(21)
        self.mesh = KeypointErrors(num_vertices)
        self.mesh_aligned = KeypointErrors(num_vertices)
        self.f_scores: list[tuple[float, ...]] = []
        self.f_scores_aligned: list[tuple[float, ...]] = []

    def feed(
        self, gt_joints: np.ndarray, pred_joints: np.ndarray, gt_verts: np.ndarray, pred_verts
    ) -> None:
        """Add one hand: joints `(21, 3)` in HO-3D order and vertices `(V, 3)`, metres."""
        self.joints.feed(gt_joints, pred_joints)
        self.joints_scale_translation.feed(
            gt_joints, ho3d_scale_translation(gt_joints, pred_joints)
        )
        self.joints_aligned.feed(gt_joints, ho3d_procrustes(gt_joints, pred_joints))
        self.mesh.feed(gt_verts, pred_verts)
        aligned = ho3d_procrustes(gt_verts, pred_verts)
        self.mesh_aligned.feed(gt_verts, aligned)
        self.f_scores.append(tuple(f_score(gt_verts, pred_verts, t) for t in self.F_THRESHOLDS))
        self.f_scores_aligned.append(
            tuple(f_score(gt_verts, aligned, t) for t in self.F_THRESHOLDS)
        )

    def summary(self) -> dict:
        """Errors in mm, AUCs and F-scores in [0, 1], and the PCK/PCV curves (thresholds in mm)."""
        out: dict = {"samples": len(self.f_scores)}
        curves = {}
        for name, acc in (
            ("joint", self.joints),
            ("joint_pa", self.joints_aligned),
            ("joint_st", self.joints_scale_translation),
            ("mesh", self.mesh),
            ("mesh_pa", self.mesh_aligned),
        ):
            m = acc.measures()
            out[f"{name}_error_mm"] = 1000 * m["mean"]
            out[f"{name}_auc"] = m["auc"]
            curves[name] = {
                "thresholds_mm": (1000 * m["thresholds"]).tolist(),
                "pck": m["curve"].tolist(),
            }
        f = np.mean(self.f_scores, axis=0)
        fa = np.mean(self.f_scores_aligned, axis=0)
        out["f5"], out["f15"] = float(fa[0]), float(fa[1])
        out["f5_unaligned"], out["f15_unaligned"] = float(f[0]), float(f[1])
        out["curves"] = curves
        return out


def transform(points: np.ndarray, R: np.ndarray, t: np.ndarray) -> np.ndarray:
    """`points (N, 3)` mapped by `x ↦ R x + t`."""
    return np.asarray(points, np.float64) @ np.asarray(R, np.float64).T + np.asarray(t, np.float64)


def add_error(points: np.ndarray, R_pred, t_pred, R_gt, t_gt) -> float:
    """ADD: mean distance between the model points under the two poses (metres)."""
    return float(
        np.linalg.norm(
            transform(points, R_pred, t_pred) - transform(points, R_gt, t_gt), axis=1
        ).mean()
    )


def adds_error(points: np.ndarray, R_pred, t_pred, R_gt, t_gt) -> float:
    """ADD-S: mean distance from each predicted model point to the closest true one (metres)."""
    return float(
        nearest_distances(transform(points, R_pred, t_pred), transform(points, R_gt, t_gt)).mean()
    )


def rep_error(
    points: np.ndarray, R_pred, t_pred, R_gt, t_gt, camera_matrix, symmetry="none", centre=None
) -> float:
    """REP: mean 2D distance between the model points projected under the two poses (pixels).

    For a symmetric object, the smallest REP over the true pose's symmetry family (about
    `centre`, the bounding-box centre; the cylinder's group sampled every 1°, a box's group
    widened by its equal sides).
    """
    K = np.asarray(camera_matrix, np.float64)

    def project(p: np.ndarray) -> np.ndarray:
        uvw = p @ K.T
        return uvw[:, :2] / (uvw[:, 2:3] + 1e-5)  # the public evaluation's epsilon

    pred = project(transform(points, R_pred, t_pred))
    centre = np.zeros(3) if centre is None else centre
    best = float("inf")
    extent = np.ptp(np.asarray(points, np.float64), axis=0)
    for S in symmetry_rotations(symmetry, extent=extent):
        gt = project(transform(points, *symmetric_pose(R_gt, t_gt, S, centre)))
        best = min(best, float(np.linalg.norm(pred - gt, axis=1).mean()))
    return best


@dataclass
class ObjectEvaluator:
    """Per-object ADD-0.1D, ADD-S-0.1D and REP-5 success rates; a failed pose counts as a miss."""

    add: dict[str, list[float]] = field(default_factory=dict)
    adds: dict[str, list[float]] = field(default_factory=dict)
    rep: dict[str, list[float]] = field(default_factory=dict)
    diameters: dict[str, float] = field(default_factory=dict)
    symmetries: dict[str, str] = field(default_factory=dict)

    def feed(
        self, name, points, diameter, R_pred, t_pred, R_gt, t_gt, camera_matrix,
        symmetry="none", centre=None,
    ) -> None:  # fmt: skip
        """Add one object pose; NaN predictions (PnP failure) count as infinitely wrong.

        `symmetry` (one of `control_points.SYMMETRIES`) and `centre` (the bounding-box centre)
        describe how the object looks; a name keeps the symmetry it was first fed with.
        """
        self.diameters[name] = float(diameter)
        self.symmetries.setdefault(name, symmetry)
        if not (np.isfinite(R_pred).all() and np.isfinite(t_pred).all()):
            add = adds = rep = float("inf")
        else:
            add = add_error(points, R_pred, t_pred, R_gt, t_gt)
            adds = adds_error(points, R_pred, t_pred, R_gt, t_gt)
            rep = rep_error(points, R_pred, t_pred, R_gt, t_gt, camera_matrix, symmetry, centre)
        self.add.setdefault(name, []).append(add)
        self.adds.setdefault(name, []).append(adds)
        self.rep.setdefault(name, []).append(rep)

    def summary(self) -> dict:
        """Per object and averaged: ADD-0.1D, ADD-S-0.1D, `pose_0.1d`, REP-5 (%), medians (mm).

        `pose_0.1d` is ADD-S-0.1D for a symmetric object and ADD-0.1D otherwise.
        """
        per_object = {}
        for name in sorted(self.add):
            add, adds = np.asarray(self.add[name]), np.asarray(self.adds[name])
            rep = np.asarray(self.rep[name])
            limit = 0.1 * self.diameters[name]
            symmetry = self.symmetries[name]
            per_object[name] = {
                "samples": len(add),
                "symmetry": symmetry,
                "add_0.1d": 100.0 * float((add < limit).mean()),
                "adds_0.1d": 100.0 * float((adds < limit).mean()),
                "pose_0.1d": 100.0 * float(((adds if symmetry != "none" else add) < limit).mean()),
                "rep_5": 100.0 * float((rep < 5.0).mean()),
                "add_mm_median": 1000.0 * float(np.median(add)),
                "adds_mm_median": 1000.0 * float(np.median(adds)),
            }
        average = (
            {
                key: float(np.mean([v[key] for v in per_object.values()]))
                for key in ("pose_0.1d", "add_0.1d", "adds_0.1d", "rep_5")
            }
            if per_object
            else {}
        )
        return {"objects": per_object, "average": average}
