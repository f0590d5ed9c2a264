"""The square crop the network sees: its image warp and the matching camera.

One crop serves training and inference alike: the union of the (expanded) hand and object boxes,
made square, optionally jittered, scaled and rotated (augmentation), warped to the network's
input size. An in-plane rotation of the image by r about any point, followed by re-centring, is
the image of a camera roll by r about the optical axis (for fx = fy, no skew), so a rotated crop
is described exactly by new intrinsics plus a 3D rotation of the scene about the camera's z axis.
"""

from dataclasses import dataclass

import cv2
import numpy as np

#: How much each box grows before the square crop around them is taken (training and inference).
CROP_EXPAND = 1.5
#: The network's hand box: the 2D joints' box grown by this (as the public Semi-Hand-Object code).
HAND_BOX_EXPAND = 1.1


@dataclass(frozen=True)
class Crop:
    """A square image region mapped onto an `size × size` network input."""

    center: np.ndarray  #: (2,) centre in source pixels
    side: float  #: side length in source pixels
    size: int  #: output side in pixels
    rotation: float = 0.0  #: in-plane rotation in radians (counter-clockwise in the image)

    @property
    def affine(self) -> np.ndarray:
        """`(3, 3)` map from source pixels to crop pixels: S·R·(p − c) + size/2."""
        s = self.size / self.side
        c, n = np.cos(self.rotation), np.sin(self.rotation)
        sr = s * np.array([[c, -n], [n, c]])
        out = np.eye(3)
        out[:2, :2] = sr
        out[:2, 2] = self.size / 2.0 - sr @ np.asarray(self.center, np.float64)
        return out

    @property
    def roll(self) -> np.ndarray:
        """`(3, 3)` rotation of camera-frame points that the image rotation corresponds to."""
        c, n = np.cos(self.rotation), np.sin(self.rotation)
        return np.array([[c, -n, 0.0], [n, c, 0.0], [0.0, 0.0, 1.0]])

    def camera(self, camera_matrix: np.ndarray) -> np.ndarray:
        """Intrinsics of the crop for points already rotated by `roll`."""
        K = np.asarray(camera_matrix, np.float64)
        s = self.size / self.side
        principal = self.affine @ np.array([K[0, 2], K[1, 2], 1.0])
        out = np.array([[s * K[0, 0], s * K[0, 1], 0.0], [0.0, s * K[1, 1], 0.0], [0, 0, 1.0]])
        out[:2, 2] = principal[:2]
        return out

    def apply(self, points: np.ndarray) -> np.ndarray:
        """Source pixels `(..., 2)` → crop pixels."""
        a = self.affine
        return np.asarray(points, np.float64) @ a[:2, :2].T + a[:2, 2]

    def apply_box(self, box: np.ndarray) -> np.ndarray:
        """The axis-aligned crop-pixel box `(4,)` around a source box's four mapped corners."""
        x1, y1, x2, y2 = np.asarray(box, np.float64)
        corners = self.apply(np.array([[x1, y1], [x2, y1], [x1, y2], [x2, y2]]))
        return np.concatenate([corners.min(axis=0), corners.max(axis=0)])

    def invert(self, points: np.ndarray) -> np.ndarray:
        """Crop pixels `(..., 2)` → source pixels."""
        a = np.linalg.inv(self.affine)
        return np.asarray(points, np.float64) @ a[:2, :2].T + a[:2, 2]

    def warp(self, image: np.ndarray, border_value: int = 0) -> np.ndarray:
        """Warp `image (H, W, C)` into the crop (bilinear, constant border)."""
        return cv2.warpAffine(
            image,
            self.affine[:2],
            (self.size, self.size),
            flags=cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_CONSTANT,
            borderValue=(border_value,) * 3,
        )


def expand_box(box: np.ndarray, factor: float) -> np.ndarray:
    """Scale an [x1, y1, x2, y2] box about its centre."""
    box = np.asarray(box, np.float64)
    center = (box[:2] + box[2:]) / 2.0
    half = (box[2:] - box[:2]) * factor / 2.0
    return np.concatenate([center - half, center + half])


def crop_around(
    boxes: list[np.ndarray],
    size: int,
    image_size: tuple[int, int] | None = None,
    expand: float = CROP_EXPAND,
) -> Crop:
    """The square crop around the union of `boxes`, each first expanded by `expand`.

    As the public Semi-Hand-Object code: the union is clipped to the image (when `image_size`
    = (width, height) is given) and the square's side is the union's longer side.
    """
    union = np.array([np.inf, np.inf, -np.inf, -np.inf])
    for box in boxes:
        b = expand_box(box, expand)
        union[:2] = np.minimum(union[:2], b[:2])
        union[2:] = np.maximum(union[2:], b[2:])
    if image_size is not None:
        union[:2] = np.maximum(union[:2], 0.0)
        union[2:] = np.minimum(union[2:], image_size)
    side = float(max(union[2] - union[0], union[3] - union[1], 1.0))
    return Crop(center=(union[:2] + union[2:]) / 2.0, side=side, size=size)
