"""The 2D overlay: skeleton, projected object box, boxes, FPS, latency and stability flags."""

import cv2
import numpy as np

from hoposer.geometry.camera import project
from hoposer.geometry.skeleton import PARENTS

# Bone colours per finger (BGR): thumb, index, middle, ring, pinky.
_FINGER_COLORS = ((0, 140, 255), (0, 215, 255), (0, 200, 0), (255, 160, 0), (200, 0, 200))
# The 12 edges of a box given by its 8 corners in control-point order (see control_points.py).
BOX_EDGES = (
    (0, 1), (2, 3), (4, 5), (6, 7),  # along x
    (0, 2), (1, 3), (4, 6), (5, 7),  # along y
    (0, 4), (1, 5), (2, 6), (3, 7),  # along z
)  # fmt: skip


def _point(p: np.ndarray) -> tuple[int, int]:
    return int(round(float(p[0]))), int(round(float(p[1])))


def draw_skeleton(image: np.ndarray, joints_2d: np.ndarray, dim: bool = False) -> None:
    """Draw 21 joints `(21, 2)` (pixels) and their bones in place."""
    if not np.isfinite(joints_2d).all():
        return
    scale = 0.4 if dim else 1.0
    for child, parent in enumerate(PARENTS):
        if parent < 0:
            continue
        color = tuple(int(c * scale) for c in _FINGER_COLORS[(child - 1) // 4])
        cv2.line(image, _point(joints_2d[parent]), _point(joints_2d[child]), color, 2, cv2.LINE_AA)
    for p in joints_2d:
        cv2.circle(image, _point(p), 3, (255, 255, 255) if not dim else (110, 110, 110), -1)


def draw_object_box(
    image: np.ndarray,
    control_points: np.ndarray,
    R: np.ndarray,
    t: np.ndarray,
    camera_matrix: np.ndarray,
    dim: bool = False,
) -> None:
    """Draw the object's 3D box (its first 8 control points) at pose R, t in place."""
    if not (np.isfinite(R).all() and np.isfinite(t).all()) or t[2] <= 0:
        return
    corners = project(control_points[:8] @ R.T + t, camera_matrix)
    color = (80, 80, 80) if dim else (255, 80, 40)
    for a, b in BOX_EDGES:
        cv2.line(image, _point(corners[a]), _point(corners[b]), color, 2, cv2.LINE_AA)


def draw_box(image: np.ndarray, box: np.ndarray, color: tuple[int, int, int]) -> None:
    """An axis-aligned box [x1, y1, x2, y2]."""
    if np.isfinite(box).all():
        cv2.rectangle(image, _point(box[:2]), _point(box[2:]), color, 1, cv2.LINE_AA)


def draw_status(image: np.ndarray, lines: list[str], warn: bool) -> None:
    """Status text in the top-left corner on a dark band."""
    height = 18 * len(lines) + 8
    band = image[:height, : min(image.shape[1], 420)]
    band[:] = (band * 0.4).astype(image.dtype)
    for i, line in enumerate(lines):
        color = (60, 60, 255) if warn and i == len(lines) - 1 else (255, 255, 255)
        cv2.putText(
            image, line, (6, 18 + 18 * i), cv2.FONT_HERSHEY_SIMPLEX, 0.5, color, 1, cv2.LINE_AA
        )
