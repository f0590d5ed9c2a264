"""A small CPU mesh renderer: flat-shaded triangles by the painter's algorithm, via OpenCV.

Fast enough to make training data on a laptop CPU (a hand + object at 256² in a few ms) and to
draw a 3D panel in the video writer. Faces are sorted far-to-near by centroid depth and filled
with `cv2.fillConvexPoly` at sub-pixel precision; rendering at `supersample`× and area-averaging
down anti-aliases the edges. Painter's ordering can misorder faces whose depth ranges interleave
(fingertips pressed into an object): a few pixels at contacts, acceptable for synthetic data.

Each mesh also writes its integer label into a label image (0 = background), so exact masks
come with every rendering.
"""

from dataclasses import dataclass

import cv2
import numpy as np

_SHIFT = 4  # fixed-point bits of cv2's sub-pixel coordinates
_NEAR = 1e-3


@dataclass(frozen=True)
class MeshInstance:
    """A mesh placed in the camera frame (OpenCV convention: x right, y down, z forward)."""

    vertices: np.ndarray  #: (N, 3) camera-frame points, metres
    faces: np.ndarray  #: (F, 3) vertex indices, counter-clockwise seen from outside
    color: np.ndarray  #: (3,) or (F, 3) RGB in [0, 1]
    label: int = 1  #: value written into the label image
    cull_backfaces: bool = True  #: closed meshes hide their inner faces


@dataclass(frozen=True)
class Light:
    """Directional light + ambient term; `direction` points from the scene toward the light."""

    direction: tuple[float, float, float] = (0.3, -0.5, -0.8)
    ambient: float = 0.35
    diffuse: float = 0.65


def render(
    meshes: list[MeshInstance],
    camera_matrix: np.ndarray,
    size: tuple[int, int],
    background: np.ndarray | None = None,
    light: Light | None = None,
    supersample: int = 2,
) -> tuple[np.ndarray, np.ndarray]:
    """Render meshes over a background.

    Args:
        meshes: what to draw.
        camera_matrix: `(3, 3)` intrinsics of the output image.
        size: `(width, height)` of the output image.
        background: `(height, width, 3)` uint8 RGB; black if None.
        light: lighting; a default light if None.
        supersample: render at this factor and average down (1 disables anti-aliasing).

    Returns:
        `image (height, width, 3)` uint8 RGB and `labels (height, width)` uint8.
    """
    width, height = size
    light = light or Light()
    s = supersample
    if background is None:
        canvas = np.zeros((height * s, width * s, 3), np.uint8)
    else:
        if background.shape != (height, width, 3):
            raise ValueError(f"background must be {(height, width, 3)}, got {background.shape}")
        canvas = cv2.resize(background, (width * s, height * s), interpolation=cv2.INTER_NEAREST)
    labels = np.zeros((height * s, width * s), np.uint8)
    K = np.asarray(camera_matrix, np.float64).copy()
    K[:2] *= s
    K[:2, 2] += (s - 1) / 2.0  # pixel centres of the fine grid align with the coarse one

    polygons, colors, face_labels, depths = [], [], [], []
    to_light = np.asarray(light.direction, np.float64)
    to_light = to_light / np.linalg.norm(to_light)
    for mesh in meshes:
        v = np.asarray(mesh.vertices, np.float64)
        f = np.asarray(mesh.faces, np.int64)
        tri = v[f]  # (F, 3, 3)
        normals = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
        norms = np.linalg.norm(normals, axis=1, keepdims=True)
        normals = normals / np.maximum(norms, 1e-12)
        centroids = tri.mean(axis=1)
        keep = (tri[:, :, 2] > _NEAR).all(axis=1) & (norms[:, 0] > 1e-14)
        if mesh.cull_backfaces:
            keep &= (normals * centroids).sum(axis=1) < 0  # facing the camera
        else:
            flip = (normals * centroids).sum(axis=1) > 0
            normals[flip] *= -1
        shade = light.ambient + light.diffuse * np.clip(normals @ to_light, 0.0, None)
        color = np.broadcast_to(np.asarray(mesh.color, np.float64), (len(f), 3))
        rgb = np.clip(color * shade[:, None], 0.0, 1.0) * 255.0
        projected = tri @ K.T
        pixels = projected[..., :2] / projected[..., 2:3]
        polygons.append(pixels[keep])
        colors.append(rgb[keep])
        face_labels.append(np.full(int(keep.sum()), mesh.label, np.uint8))
        depths.append(centroids[keep, 2])
    if polygons:
        pixels = np.concatenate(polygons)
        order = np.argsort(-np.concatenate(depths), kind="stable")
        fixed = np.round(pixels * (1 << _SHIFT)).astype(np.int64)
        # Faces far outside the canvas only cost time; OpenCV clips the rest.
        limit = (1 << 20) * (1 << _SHIFT)
        visible = (np.abs(fixed) < limit).all(axis=(1, 2))
        fixed = fixed.astype(np.int32)
        rgb = np.concatenate(colors)
        lab = np.concatenate(face_labels)
        for i in order:
            if not visible[i]:
                continue
            cv2.fillConvexPoly(canvas, fixed[i], rgb[i].tolist(), cv2.LINE_8, _SHIFT)
            cv2.fillConvexPoly(labels, fixed[i], int(lab[i]), cv2.LINE_8, _SHIFT)
    if s > 1:
        canvas = cv2.resize(canvas, (width, height), interpolation=cv2.INTER_AREA)
        labels = labels[s // 2 :: s, s // 2 :: s]
    return canvas, labels
