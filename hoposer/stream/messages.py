"""The published pose message (`pose.schema.json`, version 2), built from one frame's results.

Version 2 added the required `hand.refinement` (which evidence the hand was fitted to); every other
member is as in version 1.
"""

import json
import time
from functools import cache
from pathlib import Path

import numpy as np

from hoposer.calib.extrinsics import Transform, matrix_to_quat
from hoposer.io import finite_or_null

SCHEMA_VERSION = 2
SCHEMA_PATH = Path(__file__).with_name("pose.schema.json")


@cache
def schema() -> dict:
    """The JSON Schema every message follows."""
    return json.loads(SCHEMA_PATH.read_text())


CAMERA_FRAME = "camera"


def camera_frame() -> Transform:
    """The identity: poses stay in the camera (OpenCV optical) frame."""
    return Transform(CAMERA_FRAME, CAMERA_FRAME, np.zeros(3), np.array([0.0, 0.0, 0.0, 1.0]))


def _move(transform: Transform, R: np.ndarray, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A pose (R, t) of some body in the camera frame, expressed in `transform.parent`."""
    rotation = transform.rotation
    return rotation @ R, rotation @ t + transform.translation


def quaternion_xyzw(R: np.ndarray) -> list[float]:
    """A rotation matrix as a unit quaternion [qx, qy, qz, qw], qw ≥ 0 (NaNs for a NaN matrix)."""
    R = np.asarray(R, np.float64)
    if not np.isfinite(R).all():  # an unplaceable hand; eigh would not converge
        return [float("nan")] * 4
    return [float(v) for v in matrix_to_quat(R)]


def _pose(R: np.ndarray, t: np.ndarray) -> dict:
    return {
        "position": [float(v) for v in t],
        "rotation": [[float(v) for v in row] for row in R],
        "quaternion": quaternion_xyzw(R),
    }


def _list(x: np.ndarray) -> list:
    return np.round(np.asarray(x, np.float64), 6).tolist()


def hand_payload(
    side: str,
    joints: np.ndarray,
    joints_2d: np.ndarray,
    theta: np.ndarray,
    beta: np.ndarray,
    wrist_rotation: np.ndarray,
    reprojection_px: float,
    detector_score: float,
    transform: Transform,
    track_id: int | None = None,
    new_track: bool = False,
    refinement: dict | None = None,
) -> dict:
    """The `hand` member (3D quantities moved into the transform's frame).

    `track_id` names the followed hand (a held pose keeps its hand's number); `new_track` is
    true on the first frame of a hand not followed before. `refinement`:
    `refinement_payload(...)`; None means the network's raw hand (`--refine off`).
    """
    R, t = _move(transform, wrist_rotation, joints[0])
    return {
        "side": side,
        "joints": _list(transform.apply(joints)),
        "joints_2d": _list(joints_2d),
        "theta": _list(theta),
        "beta": _list(beta),
        "wrist": _pose(R, t),
        "reprojection_px": float(reprojection_px),
        "detector_score": float(detector_score),
        "track_id": track_id,
        "new_track": bool(new_track),
        "refinement": refinement or refinement_payload("off", ()),
    }


def refinement_payload(mode: str, evidence: tuple[str, ...] | list[str]) -> dict:
    """`hand.refinement`: the `--refine` mode and the evidence the hand was fitted to.

    An empty evidence list means the network's raw hand (refinement off, or no placement found).
    """
    return {"mode": mode, "evidence": list(evidence)}


def object_payload(
    name: str,
    found: bool,
    R: np.ndarray | None,
    t: np.ndarray | None,
    inliers: int,
    reprojection_px: float | None,
    reason: str,
    transform: Transform,
) -> dict:
    """The `object` member."""
    pose = None
    if found and R is not None and t is not None:
        pose = _pose(*_move(transform, R, t))
    finite = reprojection_px is not None and np.isfinite(reprojection_px)
    return {
        "name": name,
        "found": bool(found and pose is not None),
        "pose": pose,
        "inliers": int(inliers),
        "reprojection_px": float(reprojection_px) if finite else None,
        "reason": reason,
    }


def pose_message(
    frame_index: int,
    capture_time: float,
    camera_id: str,
    reference_frame: str,
    hand: dict | None,
    obj: dict | None,
    stable: bool,
    held: bool,
    age_frames: int,
    flags: tuple[str, ...] | list[str],
    latency_ms: dict[str, float],
) -> dict:
    """One message. `capture_time` is Unix time in seconds."""
    return {
        "schema_version": SCHEMA_VERSION,
        "frame_index": int(frame_index),
        "capture_time": float(capture_time),
        "publish_time": time.time(),
        "camera_id": camera_id,
        "reference_frame": reference_frame,
        "hand": hand,
        "object": obj,
        "stability": {
            "stable": bool(stable),
            "held": bool(held),
            "age_frames": int(age_frames),
            "flags": list(flags),
        },
        "latency_ms": {k: round(float(v), 3) for k, v in latency_ms.items()},
    }


NON_FINITE = "non_finite"  #: the stability flag of a frame that had NaN/inf values nulled


def strict_message(message: dict) -> dict:
    """`message` as strict JSON allows: each NaN/±inf number becomes null.

    Such a frame is marked unstable and flagged `non_finite`, with the nulled fields listed in
    `stability.non_finite` (e.g. `hand.joints` when the hand could not be placed in 3D).
    """
    nulled: list[str] = []
    clean = finite_or_null(message, found=nulled)
    if nulled:
        stability = clean["stability"]
        stability["stable"] = False
        if NON_FINITE not in stability["flags"]:
            stability["flags"].append(NON_FINITE)
        stability["non_finite"] = nulled
    return clean


def encode_message(message: dict) -> str:
    """One message as a line of strict JSON (no NaN/Infinity, see `strict_message`)."""
    try:  # the usual, all-finite message: no walk over its ~250 numbers
        return json.dumps(message, separators=(",", ":"), allow_nan=False)
    except (ValueError, TypeError):  # NaN/inf, or numpy scalars the walk converts
        return json.dumps(strict_message(message), separators=(",", ":"), allow_nan=False)
