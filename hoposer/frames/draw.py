"""The 2D overlay: hand mesh, skeleton, projected object, boxes, FPS, latency and stability."""

import cv2
import numpy as np

from hoposer.geometry.camera import project
from hoposer.geometry.skeleton import PARENTS
from hoposer.render import Light, MeshInstance, render

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
    width = max(cv2.getTextSize(line, cv2.FONT_HERSHEY_SIMPLEX, 0.5, 1)[0][0] for line in lines)
    band = image[:height, : min(image.shape[1], max(420, width + 12))]
    band[:] = (band * 0.4).astype(image.dtype)
    for i, line in enumerate(lines):
        color = (60, 60, 255) if warn and i == len(lines) - 1 else (255, 255, 255)
        cv2.putText(
            image, line, (6, 18 + 18 * i), cv2.FONT_HERSHEY_SIMPLEX, 0.5, color, 1, cv2.LINE_AA
        )


#: Mesh colours (RGB in [0, 1]): skin for the hand, blue for the object; held poses are greyed.
SKIN = np.array([0.93, 0.75, 0.62])
OBJECT_BLUE = np.array([0.35, 0.55, 0.95])
HELD_GREY = np.array([0.6, 0.6, 0.6])
#: Lit from the upper left and slightly behind the camera, like HaMeR's demo renderings.
MESH_LIGHT = Light(direction=(-0.4, -0.6, -0.7), ambient=0.3, diffuse=0.8)


def draw_meshes(
    image: np.ndarray,
    meshes: list[MeshInstance],
    camera_matrix: np.ndarray,
    opacity: float = 0.6,
) -> np.ndarray:
    """Blend shaded meshes (camera frame, metres) onto a BGR image in place.

    Only the meshes' bounding box in the image is rendered (the painter's renderer's cost grows
    with the pixels it fills), then blended with `opacity` where a mesh covers a pixel. Returns
    the coverage mask `(H, W)` bool (what the tests check lands on the hand).
    """
    height, width = image.shape[:2]
    mask = np.zeros((height, width), bool)
    points = [project(m.vertices[m.vertices[:, 2] > 1e-3], camera_matrix) for m in meshes]
    points = np.concatenate([p for p in points if len(p)] or [np.zeros((0, 2))])
    points = points[np.isfinite(points).all(axis=1)]
    if not len(points):
        return mask
    x1, y1 = np.clip(np.floor(points.min(axis=0)) - 2, 0, [width, height]).astype(int)
    x2, y2 = np.clip(np.ceil(points.max(axis=0)) + 2, 0, [width, height]).astype(int)
    if x2 - x1 < 2 or y2 - y1 < 2:
        return mask
    K = np.asarray(camera_matrix, np.float64).copy()
    K[0, 2] -= x1
    K[1, 2] -= y1
    region = np.ascontiguousarray(image[y1:y2, x1:x2, ::-1])  # the renderer works in RGB
    rendered, labels = render(meshes, K, (x2 - x1, y2 - y1), region, MESH_LIGHT, supersample=1)
    covered = labels > 0
    blend = region.astype(np.float32)
    blend[covered] = (1 - opacity) * blend[covered] + opacity * rendered[covered]
    image[y1:y2, x1:x2] = blend[..., ::-1].round().astype(np.uint8)
    # A darker outline keeps a skin-coloured mesh readable over a skin-coloured hand.
    contours, _ = cv2.findContours(
        covered.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE
    )
    cv2.drawContours(image[y1:y2, x1:x2], contours, -1, (40, 70, 130), 1, cv2.LINE_AA)
    mask[y1:y2, x1:x2] = covered
    return mask


def draw_axes(
    image: np.ndarray,
    R: np.ndarray,
    t: np.ndarray,
    length: float,
    camera_matrix: np.ndarray,
) -> None:
    """The object's axes at pose R, t: x red, y green, z blue (BGR lines), `length` metres."""
    if not (np.isfinite(R).all() and np.isfinite(t).all()) or t[2] <= 0:
        return
    ends = np.vstack([np.zeros(3), np.eye(3) * length]) @ R.T + t
    if (ends[:, 2] <= 1e-3).any():
        return
    pixels = project(ends, camera_matrix)
    for axis, color in enumerate(((0, 0, 255), (0, 200, 0), (255, 0, 0))):
        cv2.arrowedLine(
            image, _point(pixels[0]), _point(pixels[axis + 1]), color, 2, cv2.LINE_AA, 0, 0.2
        )
