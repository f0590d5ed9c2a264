"""The spatial and temporal consistency constraints of §5.1, written once.

They select pseudo-labels offline (`hoposer train pseudo`) and flag unstable frames online (the
stream's stabilizer). Each constraint is a statistic plus a threshold; `Thresholds` holds the
paper's values. The paper leaves its normalisations implicit; these are ours, stated exactly:

- **Weak-perspective camera (eq. 7)**: scale s and 2D translation t minimising
  ‖s·J3D[:, :2] + t − J2D‖² (closed form, `fit_weak_perspective`).
- **IoU**: the box of the mesh vertices projected by that camera against the given hand box.
  Keep when ≥ 0.6.
- **Re-projection**: both joint sets are normalised by the 2D joints' bounding box (origin at its
  centre, divided by its longer side), then ‖N(J2D) − N(Π·J3D)‖ is the Frobenius norm over the 21
  joints. Keep when ≤ 0.65 (a per-joint RMS error of about 14% of the hand's size). The same
  residuals (`reprojection_residuals`) are the 2D objective of the hand refinement
  (`hoposer.geometry.refine`), there with a pinhole camera.
- **Biomechanics**: the shortest bone divided by the wrist→middle-MCP bone is ≥ 0.1, and every
  flexion angle (between a finger bone and the next) is within [0°, 90°].
- **2D smoothness**: ‖J2D_t − J2D_{t−1}‖ (Frobenius, 21 joints) divided by the longer side of
  frame t's 2D joint box; keep when ≤ 0.5.
- **θ smoothness**: the mean squared difference of the 45 articulation components of θ
  (‖θ_t[3:] − θ_{t−1}[3:]‖² / 45; the global rotation is left out because the camera may move).
  Keep when ≤ 0.01, i.e. an RMS change of 0.1 rad per component between frames.
- **Shape**: within a video's frames that passed everything else, drop those whose
  ‖β − β̄‖ exceeds 2·σ_C, σ_C = sqrt(mean ‖β − β̄‖²).
"""

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from hoposer.geometry.boxes import box_iou
from hoposer.geometry.camera import fit_weak_perspective, weak_perspective_project
from hoposer.geometry.kinematics import flexion_angles, normalized_bone_lengths
from hoposer.options import option


@dataclass(frozen=True)
class Thresholds:
    """§5.1's thresholds (paper values by default); `train adapt` offers three as options."""

    min_iou: float = option(0.6, "§5.1 mesh-box IoU to keep a frame")
    max_reprojection: float = option(0.65, "§5.1 re-projection distance to keep a frame")
    min_bone_length: float = 0.1
    max_flexion_deg: float = option(90.0, "§5.1 largest finger flexion to keep a frame")
    max_joint_motion: float = 0.5
    max_pose_change: float = 0.01
    shape_sigmas: float = 2.0


SPATIAL = ("iou", "reprojection", "bone_length", "joint_angle")
TEMPORAL = ("joint_motion", "pose_change")


def _box(points: np.ndarray) -> np.ndarray:
    return np.concatenate([points.min(axis=0), points.max(axis=0)])


def reprojection_scale(joints_2d: np.ndarray) -> float:
    """The re-projection check's unit: the longer side of the 2D joints' box `(21, 2)`, pixels."""
    box = _box(np.asarray(joints_2d, np.float64))
    return max(float((box[2:] - box[:2]).max()), 1e-9)


def reprojection_residuals(
    projected: np.ndarray, joints_2d: np.ndarray, scale: float
) -> np.ndarray:
    """Per-joint 2D residuals `(21, 2)`, (Π·J3D − J2D) / scale: N(Π·J3D) − N(J2D) of the check.

    Args:
        projected: `(21, 2)` the 3D joints projected (any camera), pixels.
        joints_2d: `(21, 2)` the 2D joints, pixels.
        scale: `reprojection_scale(joints_2d)`.
    """
    return (np.asarray(projected, np.float64) - np.asarray(joints_2d, np.float64)) / scale


Camera = tuple[float, np.ndarray]  #: eq. 7's weak-perspective (scale, 2D translation)


def fit_camera(joints_3d: np.ndarray, joints_2d: np.ndarray) -> Camera | None:
    """Eq. 7's camera, or None when the joints define none (non-finite, or no spread)."""
    try:
        return fit_weak_perspective(joints_3d, joints_2d)
    except ValueError:
        return None


def mesh_box_iou(
    joints_3d: np.ndarray,
    joints_2d: np.ndarray,
    vertices: np.ndarray,
    hand_box: np.ndarray,
    camera: Camera | None = None,
) -> float:
    """IoU of the weak-perspective projection of the mesh's box with the given hand box.

    Args:
        joints_3d: `(21, 3)` 3D joints (any frame; the camera is fitted).
        joints_2d: `(21, 2)` 2D joints, pixels.
        vertices: `(V, 3)` mesh vertices in the frame of `joints_3d`.
        hand_box: `(4,)` the given box [x1, y1, x2, y2], pixels.
        camera: `fit_camera(joints_3d, joints_2d)` when already known.

    Returns:
        The IoU, or NaN (a failed check) when no camera fits the joints.
    """
    camera = camera or fit_camera(joints_3d, joints_2d)
    if camera is None:
        return float("nan")
    projected = weak_perspective_project(vertices, *camera)
    return float(box_iou(_box(projected), np.asarray(hand_box, np.float64)))


def reprojection_distance(
    joints_3d: np.ndarray, joints_2d: np.ndarray, camera: Camera | None = None
) -> float:
    """‖N(J2D) − N(Π·J3D)‖ with Π from eq. 7 and N the 2D-joint-box normalisation.

    NaN (a failed check) when no camera fits the joints.
    """
    camera = camera or fit_camera(joints_3d, joints_2d)
    if camera is None:
        return float("nan")
    projected = weak_perspective_project(joints_3d, *camera)
    residuals = reprojection_residuals(projected, joints_2d, reprojection_scale(joints_2d))
    return float(np.linalg.norm(residuals))


def joint_motion(joints_2d: np.ndarray, previous_2d: np.ndarray) -> float:
    """‖J2D_t − J2D_{t−1}‖ over the longer side of frame t's 2D joint box."""
    box = _box(joints_2d)
    side = max(float((box[2:] - box[:2]).max()), 1e-9)
    return float(np.linalg.norm(joints_2d - previous_2d) / side)


def pose_change(theta: np.ndarray, previous_theta: np.ndarray) -> float:
    """Mean squared change of θ's 45 articulation components."""
    delta = np.asarray(theta, np.float64)[3:] - np.asarray(previous_theta, np.float64)[3:]
    return float(np.mean(delta**2))


@dataclass(frozen=True)
class FrameCheck:
    """The statistics of one frame and the constraints it failed."""

    statistics: dict[str, float]
    failed: tuple[str, ...]

    @property
    def passed(self) -> bool:  # noqa: D102
        return not self.failed


def spatial_statistics(
    joints_3d: np.ndarray,
    joints_2d: np.ndarray,
    vertices: np.ndarray | None = None,
    hand_box: np.ndarray | None = None,
) -> dict[str, float]:
    """The spatial statistics of one prediction (`iou` only when vertices and a box are given).

    Non-finite or degenerate joints give NaN statistics, which every constraint rejects.
    """
    camera = fit_camera(joints_3d, joints_2d)
    stats = {
        "reprojection": reprojection_distance(joints_3d, joints_2d, camera),
        "bone_length": float(normalized_bone_lengths(joints_3d).min()),
        "joint_angle": float(np.degrees(flexion_angles(joints_3d)).max()),
    }
    if vertices is not None and hand_box is not None:
        stats["iou"] = mesh_box_iou(joints_3d, joints_2d, vertices, hand_box, camera)
    return stats


def temporal_statistics(
    joints_2d: np.ndarray, theta: np.ndarray, previous_2d: np.ndarray, previous_theta: np.ndarray
) -> dict[str, float]:
    """The smoothness statistics between a frame and the one before it."""
    return {
        "joint_motion": joint_motion(joints_2d, previous_2d),
        "pose_change": pose_change(theta, previous_theta),
    }


def failed_constraints(statistics: dict[str, float], thresholds: Thresholds) -> tuple[str, ...]:
    """Names of the constraints the statistics violate (absent statistics are not judged)."""
    limits = {
        "iou": lambda v: v >= thresholds.min_iou,
        "reprojection": lambda v: v <= thresholds.max_reprojection,
        "bone_length": lambda v: v >= thresholds.min_bone_length,
        "joint_angle": lambda v: v <= thresholds.max_flexion_deg,
        "joint_motion": lambda v: v <= thresholds.max_joint_motion,
        "pose_change": lambda v: v <= thresholds.max_pose_change,
    }
    return tuple(
        name
        for name, ok in limits.items()
        if name in statistics and not (np.isfinite(statistics[name]) and ok(statistics[name]))
    )


def shape_outliers(betas: Sequence[np.ndarray] | np.ndarray, sigmas: float = 2.0) -> np.ndarray:
    """Boolean `(N,)`: which of a video's confident frames' β lie beyond `sigmas`·σ_C of the mean.

    Args:
        betas: `(N, 10)` shapes of the frames that passed every other constraint.
        sigmas: the paper's factor 2.
    """
    betas = np.asarray(betas, np.float64).reshape(-1, 10)
    if len(betas) < 2:
        return np.zeros(len(betas), bool)
    deviation = np.linalg.norm(betas - betas.mean(axis=0), axis=1)
    sigma = np.sqrt(np.mean(deviation**2))
    return deviation > sigmas * sigma
