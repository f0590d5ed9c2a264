"""Image boxes `[x1, y1, x2, y2]` in pixels: areas, IoU, intersections, boxes around points.

(Expanding a box about its centre is `crop.expand_box`.)
"""

import numpy as np


def _boxes(name: str, boxes) -> np.ndarray:
    boxes = np.asarray(boxes, dtype=np.float64)
    if boxes.shape[-1:] != (4,):
        raise ValueError(f"{name} must be (..., 4) [x1, y1, x2, y2], got {boxes.shape}")
    return boxes


def box_area(boxes) -> np.ndarray:
    """Areas of `boxes (..., 4)`; an inverted (empty) box has area 0. Returns `(...)`.

    Example:
        >>> float(box_area([0, 0, 2, 3]))
        6.0
    """
    boxes = _boxes("boxes", boxes)
    size = np.clip(boxes[..., 2:] - boxes[..., :2], 0.0, None)
    return size[..., 0] * size[..., 1]


def box_iou(a, b) -> np.ndarray:
    """Intersection over union of `a (..., 4)` and `b (..., 4)`, broadcast element-wise.

    Two empty boxes have IoU 0. Returns `(...)`.

    Example:
        >>> float(box_iou([0, 0, 2, 2], [1, 0, 3, 2]))
        0.3333333333333333
    """
    a, b = _boxes("a", a), _boxes("b", b)
    lo = np.maximum(a[..., :2], b[..., :2])
    hi = np.minimum(a[..., 2:], b[..., 2:])
    inter = box_area(np.concatenate(np.broadcast_arrays(lo, hi), axis=-1))
    union = box_area(a) + box_area(b) - inter
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)


def intersection_box(a, b) -> np.ndarray | None:
    """The intersection of boxes `a (4,)` and `b (4,)`, or None when they do not overlap.

    Boxes that only touch (zero-area intersection) do not overlap.
    """
    a, b = _boxes("a", a).reshape(-1), _boxes("b", b).reshape(-1)
    if a.shape != (4,) or b.shape != (4,):
        raise ValueError("intersection_box takes two single boxes (4,)")
    out = np.concatenate([np.maximum(a[:2], b[:2]), np.minimum(a[2:], b[2:])])
    if not (out[2] > out[0] and out[3] > out[1]):
        return None
    return out


def box_from_points(points, margin: float = 0.0, image_size=None) -> np.ndarray:
    """The box around the finite ones of `points (N, 2)`, grown by `margin` of its size per side.

    Args:
        points: `(N, 2)` pixels; rows with NaN or infinity are ignored.
        margin: fraction of the box's width (height) added on the left and right (top and bottom).
        image_size: `(width, height)` to clip the box to, or None.

    Returns:
        `(4,)` `[x1, y1, x2, y2]`.

    Raises:
        ValueError: no finite point.

    Example:
        >>> box_from_points([[10, 20], [30, 60]], margin=0.5).tolist()
        [0.0, 0.0, 40.0, 80.0]
    """
    points = np.asarray(points, dtype=np.float64)
    if points.ndim != 2 or points.shape[1] != 2:
        raise ValueError(f"points must be (N, 2), got {points.shape}")
    points = points[np.isfinite(points).all(1)]
    if len(points) == 0:
        raise ValueError("box_from_points needs at least one finite point")
    lo, hi = points.min(0), points.max(0)
    grow = (hi - lo) * float(margin)
    box = np.concatenate([lo - grow, hi + grow])
    if image_size is not None:
        width, height = image_size
        box = np.clip(box, 0.0, np.array([width, height, width, height], dtype=np.float64))
    return box
