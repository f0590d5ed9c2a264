"""A small CPU mesh renderer: flat-shaded triangles by the painter's algorithm, via OpenCV.

Shading is per face, Blinn-Phong: an ambient term plus, for each light, a diffuse term on the
face colour and a white specular highlight (the half-vector against the face normal, viewed
from the camera centre).

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
    """Directional light + ambient term; `direction` points from the scene toward the light.

    With several lights, the first one's `ambient` is the scene's ambient term; the others add
    only their diffuse and specular terms.
    """

    direction: tuple[float, float, float] = (0.3, -0.5, -0.8)
    ambient: float = 0.35
    diffuse: float = 0.65
    specular: float = 0.0  #: strength of the white Blinn-Phong highlight
    shininess: float = 20.0  #: Blinn-Phong exponent (larger: smaller, sharper highlights)


def render(
    meshes: list[MeshInstance],
    camera_matrix: np.ndarray,
    size: tuple[int, int],
    background: np.ndarray | None = None,
    light: Light | list[Light] | tuple[Light, ...] | None = None,
    supersample: int = 2,
) -> tuple[np.ndarray, np.ndarray]:
    """Render meshes over a background.

    Args:
        meshes: what to draw.
        camera_matrix: `(3, 3)` intrinsics of the output image.
        size: `(width, height)` of the output image.
        background: `(height, width, 3)` uint8 RGB; black if None.
        light: one light or several (the first gives the ambient term); a default if None.
        supersample: render at this factor and average down (1 disables anti-aliasing).

    Returns:
        `image (height, width, 3)` uint8 RGB and `labels (height, width)` uint8.
    """
    width, height = size
    lights = [Light()] if light is None else [light] if isinstance(light, Light) else list(light)
    ambient = lights[0].ambient
    s = supersample
    # Colour and label as one 4-channel image, so each face is one OpenCV fill.
    layers = np.zeros((height * s, width * s, 4), np.uint8)
    if background is not None:
        if background.shape != (height, width, 3):
            raise ValueError(f"background must be {(height, width, 3)}, got {background.shape}")
        layers[..., :3] = cv2.resize(
            background, (width * s, height * s), interpolation=cv2.INTER_NEAREST
        )
    K = np.asarray(camera_matrix, np.float64).copy()
    K[:2] *= s
    K[:2, 2] += (s - 1) / 2.0  # pixel centres of the fine grid align with the coarse one

    polygons, colors, face_labels, depths = [], [], [], []
    to_lights = np.array([light.direction for light in lights], np.float64)
    to_lights /= np.linalg.norm(to_lights, axis=1, keepdims=True)
    diffuse = np.array([light.diffuse for light in lights])
    specular = np.array([light.specular for light in lights])
    shininess = np.array([light.shininess for light in lights])
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
        cosines = normals @ to_lights.T  # (F, L)
        shade = ambient + (np.clip(cosines, 0.0, None) * diffuse).sum(axis=1)
        color = np.broadcast_to(np.asarray(mesh.color, np.float64), (len(f), 3))
        rgb = color * shade[:, None]
        if specular.any():
            to_eye = -centroids / np.maximum(np.linalg.norm(centroids, axis=1, keepdims=True), 1e-9)
            half = to_eye[:, None, :] + to_lights[None]  # (F, L, 3)
            half /= np.maximum(np.linalg.norm(half, axis=2, keepdims=True), 1e-9)
            facing = np.clip(np.einsum("fc,flc->fl", normals, half), 0.0, None)
            lit = cosines > 0
            rgb = rgb + ((facing**shininess) * lit * specular).sum(axis=1)[:, None]
        rgb = np.clip(rgb, 0.0, 1.0) * 255.0
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
        # ... and so do faces wholly beside it.
        extent = np.array([width * s, height * s]) * (1 << _SHIFT)
        visible &= (fixed.max(axis=1) >= 0).all(axis=1) & (fixed.min(axis=1) < extent).all(axis=1)
        order = order[visible[order]]
        fixed = fixed.astype(np.int32)
        fills = np.concatenate([np.concatenate(colors), np.concatenate(face_labels)[:, None]], 1)
        for polygon, fill in zip(fixed[order], fills[order].tolist(), strict=True):
            cv2.fillConvexPoly(layers, polygon, fill, cv2.LINE_8, _SHIFT)
    canvas, labels = np.ascontiguousarray(layers[..., :3]), layers[..., 3]
    if s > 1:
        canvas = cv2.resize(canvas, (width, height), interpolation=cv2.INTER_AREA)
        labels = labels[s // 2 :: s, s // 2 :: s]
    return canvas, np.ascontiguousarray(labels)


def silhouette_pixels(
    vertices, faces, camera_matrix, size: tuple[int, int], supersample: int = 2
) -> int:
    """How many label pixels a mesh alone covers, the image extended by its size on every side.

    Sampled as `render`'s label image is (faces filled on the `supersample`× grid, one fine pixel
    per output pixel), so a rendered label count over this is the share of the mesh the image
    shows; pixels beyond the image count too, so a part outside the frame counts as hidden.
    Every face is filled (the union of a closed mesh's faces is its silhouette, culled or not).
    """
    width, height = size
    s = supersample
    K = np.asarray(camera_matrix, np.float64).copy()
    K[:2] *= s
    K[:2, 2] += (s - 1) / 2.0 + np.array([width, height], np.float64) * s
    tri = np.asarray(vertices, np.float64)[np.asarray(faces, np.int64)]
    tri = tri[(tri[:, :, 2] > _NEAR).all(axis=1)]
    projected = tri @ K.T
    fixed = np.round(projected[..., :2] / projected[..., 2:3] * (1 << _SHIFT))
    fixed = fixed[(np.abs(fixed) < (1 << 20) * (1 << _SHIFT)).all(axis=(1, 2))].astype(np.int32)
    canvas = np.zeros((3 * height * s, 3 * width * s), np.uint8)
    for polygon in fixed:
        cv2.fillConvexPoly(canvas, polygon, 1, cv2.LINE_8, _SHIFT)
    return int(canvas[s // 2 :: s, s // 2 :: s].sum())
