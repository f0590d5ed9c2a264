"""Raw network outputs → metric hand mesh and 6-DoF object pose, for every backend.

`decode` takes the network's box-normalised outputs (torch tensors or numpy arrays, so ONNX
Runtime and TensorRT results go through the same code), the boxes and the intrinsics of the
image the network saw, and returns one `FramePose` per batch item:

hand: θ, β → hand model → wrist-relative joints and mesh (camera orientation, metres); the
    camera-space translation is solved from the predicted 2D joints by linear least squares.
object: the top-10 most confident cells per control point (§4.3) → 2D-3D correspondences →
    AP3P in RANSAC, inliers re-selected, Levenberg-Marquardt refinement, then (optionally)
    `ObjectPoseGate`'s plausibility tests. Failure is explicit, never an identity pose.
"""

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from hoposer.geometry.camera import project, solve_translation
from hoposer.geometry.pnp import ObjectPoseGate, object_pose_from_votes, top_votes
from hoposer.model.hand import HandModel
from hoposer.model.inputs import box_to_pixels


@dataclass(frozen=True)
class HandPose:
    """The hand in the camera frame (metres) and in the image (pixels)."""

    joints_2d: np.ndarray  #: (21, 2) network's 2D joints, pixels, hoposer joint order
    joints: np.ndarray  #: (21, 3) 3D joints, camera frame
    vertices: np.ndarray  #: (V, 3) mesh vertices, camera frame (faces: the hand model's)
    theta: np.ndarray  #: (48,) MANO pose, axis-angle
    beta: np.ndarray  #: (10,) MANO shape
    translation: np.ndarray  #: (3,) wrist position, camera frame (NaN when it cannot be solved)
    reprojection_px: float  #: mean distance between projected 3D joints and 2D joints


@dataclass(frozen=True)
class ObjectPose:
    """The object's pose: `x_camera = R @ x_object + t` (metres), or why there is none."""

    success: bool
    R: np.ndarray  #: (3, 3), NaN on failure
    t: np.ndarray  #: (3,), NaN on failure
    inliers: int  #: PnP inliers among the proposals
    reprojection_px: float  #: mean reprojection error of the inliers
    reason: str  #: empty on success


@dataclass(frozen=True)
class FramePose:
    """Everything decoded for one image."""

    hand: HandPose
    object: ObjectPose | None  #: None when no object model was given


def _numpy(x) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().to("cpu", torch.float32).numpy()
    return np.asarray(x, dtype=np.float32)


def decode(
    raw: Sequence,
    camera_matrix: np.ndarray,
    hand_boxes: np.ndarray,
    object_boxes: np.ndarray,
    hand_model: HandModel,
    control_points: np.ndarray | None = None,
    proposals_per_point: int = 10,
    object_gate: ObjectPoseGate | None = None,
) -> list[FramePose]:
    """Decode a batch of network outputs.

    Args:
        raw: `RawOutputs` (or the same five arrays in order: joints_2d `(B, 21, 2)`, theta
            `(B, 48)`, beta `(B, 10)`, object_points `(B, R, R, 21, 2)`, object_confidence
            `(B, R, R, 21)`), torch or numpy.
        camera_matrix: intrinsics of the network's input image, `(3, 3)` or `(B, 3, 3)`.
        hand_boxes: `(B, 4)` the hand boxes given to the network, input pixels.
        object_boxes: `(B, 4)` the object boxes given to the network.
        hand_model: decodes θ, β into joints and mesh.
        control_points: `(21, 3)` the object's control points in its own frame (metres), or
            None to skip the object.
        proposals_per_point: most confident cells per control point used by PnP.
        object_gate: when given, a PnP pose it does not believe (collapsed votes, poor fit,
            metres from the hand, off its box) becomes a failure naming why. Evaluation leaves
            it out to score every pose PnP returns.

    Returns:
        One `FramePose` per batch item.
    """
    joints_norm, theta, beta, points_norm, confidence = (_numpy(x) for x in raw)
    batch = joints_norm.shape[0]
    hand_boxes = np.asarray(hand_boxes, dtype=np.float64).reshape(batch, 4)
    object_boxes = np.asarray(object_boxes, dtype=np.float64).reshape(batch, 4)
    K = np.broadcast_to(np.asarray(camera_matrix, dtype=np.float64), (batch, 3, 3))
    joints_2d = box_to_pixels(joints_norm, hand_boxes)
    with torch.inference_mode():  # no autograd bookkeeping at all: ~25 % off the hand model
        hand = hand_model(torch.from_numpy(theta), torch.from_numpy(beta))
    joints_rel = hand.joints.double().numpy()
    vertices_rel = hand.vertices.double().numpy()

    frames = []
    for i in range(batch):
        try:
            t = solve_translation(joints_rel[i], joints_2d[i], K[i])
        except ValueError:  # degenerate 2D joints: no placement, never an exception
            t = np.full(3, np.nan)
        joints = joints_rel[i] + t
        reprojection = np.linalg.norm(project(joints, K[i]) - joints_2d[i], axis=-1).mean()
        hand_pose = HandPose(
            joints_2d=joints_2d[i],
            joints=joints,
            vertices=vertices_rel[i] + t,
            theta=theta[i].astype(np.float64),
            beta=beta[i].astype(np.float64),
            translation=t,
            reprojection_px=float(reprojection),
        )
        object_pose = None
        if control_points is not None:
            votes = top_votes(
                points_norm[i], confidence[i], proposals_per_point, box=object_boxes[i]
            )
            pnp = object_pose_from_votes(votes, control_points, K[i])
            if object_gate is not None:
                pnp = object_gate.check(
                    pnp, votes, object_boxes[i], control_points, K[i], wrist_depth_m=t[2]
                )
            object_pose = ObjectPose(
                success=pnp.success,
                R=pnp.R,
                t=pnp.t,
                inliers=pnp.inliers,
                reprojection_px=float(pnp.reprojection_error_px),
                reason=pnp.reason,
            )
        frames.append(FramePose(hand_pose, object_pose))
    return frames
