"""Pinhole projection, the hand's camera-space translation, and the weak-perspective camera.

The hand decoder predicts 2D joints in the image and a root-relative 3D hand (MANO θ, β). The
camera-space hand is the 3D hand moved by the translation `t` that makes its projection agree with
the 2D joints (`solve_translation`). The paper's eq. 7 instead fits a weak-perspective camera
`x ≈ s·X[:, :2] + t` between the two (`fit_weak_perspective`), used by its 2D-3D consistency loss.
All functions are numpy float64.
"""

import numpy as np


def _camera_matrix(K) -> np.ndarray:
    K = np.asarray(K, dtype=np.float64)
    if K.shape != (3, 3):
        raise ValueError(f"camera matrix must be (3, 3), got {K.shape}")
    return K


def _array(name: str, array, shape: tuple[int | None, ...]) -> np.ndarray:
    array = np.asarray(array, dtype=np.float64)
    wrong = array.ndim != len(shape) or any(
        s is not None and a != s for a, s in zip(array.shape, shape, strict=True)
    )
    if wrong:
        want = ", ".join("N" if s is None else str(s) for s in shape)
        raise ValueError(f"{name} must be ({want}), got {array.shape}")
    return array


def _weights(weights, count: int) -> np.ndarray:
    if weights is None:
        return np.ones(count)
    weights = _array("weights", weights, (count,))
    if not np.isfinite(weights).all() or (weights < 0).any():
        raise ValueError("weights must be finite and non-negative")
    return weights


def default_camera_matrix(width: int, height: int, horizontal_fov_deg: float = 60.0) -> np.ndarray:
    """Intrinsics of an ideal camera with the given horizontal field of view."""
    f = (width / 2) / np.tan(np.radians(horizontal_fov_deg) / 2)
    return np.array([[f, 0, width / 2], [0, f, height / 2], [0, 0, 1.0]])


def project(points, K) -> np.ndarray:
    """Pinhole projection of camera-frame points.

    Args:
        points: `(..., 3)` camera-frame points (OpenCV: x right, y down, z forward).
        K: `(3, 3)` intrinsics.

    Returns:
        `(..., 2)` pixels.

    Example:
        >>> K = np.array([[500.0, 0, 320], [0, 500, 240], [0, 0, 1]])
        >>> project(np.array([0.1, -0.2, 2.0]), K).tolist()
        [345.0, 190.0]
    """
    points = np.asarray(points, dtype=np.float64)
    if points.shape[-1:] != (3,):
        raise ValueError(f"points must be (..., 3), got {points.shape}")
    uvw = points @ _camera_matrix(K).T
    return uvw[..., :2] / uvw[..., 2:3]


def solve_translation(joints_rel, joints_2d, K, weights=None) -> np.ndarray:
    """The translation `t` with `project(joints_rel + t, K) ≈ joints_2d`, by linear least squares.

    Each joint gives two equations linear in `t`: for image row `i` (u, then v),
    ``(K[i] - p_i · e_z) · (X + t) = 0``, i.e. the pinhole equations multiplied by the depth.
    Rows are weighted by `sqrt(weights)`. Noise-free input is recovered exactly.

    Args:
        joints_rel: `(J, 3)` 3D joints relative to any origin (e.g. the wrist), metres.
        joints_2d: `(J, 2)` the joints' pixels.
        K: `(3, 3)` intrinsics.
        weights: `(J,)` non-negative per-joint weights (e.g. 2D confidences), or None.

    Returns:
        `(3,)` the translation, with the joints' mean depth positive.

    Raises:
        ValueError: fewer than 2 joints, non-finite input, a rank-deficient system, or a solution
            that puts the joints behind the camera.
    """
    X = _array("joints_rel", joints_rel, (None, 3))
    p = _array("joints_2d", joints_2d, (len(X), 2))
    K = _camera_matrix(K)
    w = _weights(weights, len(X))
    if len(X) < 2:
        raise ValueError(f"solve_translation needs at least 2 joints, got {len(X)}")
    if not (np.isfinite(X).all() and np.isfinite(p).all() and np.isfinite(K).all()):
        raise ValueError("solve_translation got NaN or infinite input")
    # A[j, i] = K[i] - p[j, i] * e_z, so that A[j, i] · (X_j + t) = 0.
    A = K[None, :2, :] - p[:, :, None] * np.array([0.0, 0.0, 1.0])
    b = -np.einsum("jik,jk->ji", A, X)
    sw = np.sqrt(w)[:, None, None]
    A, b = (A * sw).reshape(-1, 3), (b * sw[..., 0]).reshape(-1)
    t, _, rank, _ = np.linalg.lstsq(A, b, rcond=None)
    if rank < 3 or not np.isfinite(t).all():
        raise ValueError("solve_translation: degenerate system (all weight on too few joints?)")
    if (X[:, 2] + t[2]) @ w / max(w.sum(), 1e-12) <= 0:
        raise ValueError("solve_translation: the best fit puts the joints behind the camera")
    return t


def fit_weak_perspective(points_3d, points_2d, weights=None) -> tuple[float, np.ndarray]:
    """Closed-form least-squares weak-perspective camera (paper eq. 7): `x ≈ s·X[:, :2] + t`.

    With both point sets centred on their (weighted) means, ``s = <P̄, p̄> / ||P̄||²`` and
    ``t = mean(p) - s·mean(P[:, :2])``.

    Args:
        points_3d: `(J, 3)` 3D points (only x and y are used).
        points_2d: `(J, 2)` their 2D positions.
        weights: `(J,)` non-negative weights, or None.

    Returns:
        `(scale, translation (2,))`.

    Raises:
        ValueError: the weighted 3D points have no spread in x, y.

    Example:
        >>> P = np.array([[0.0, 0, 1], [1, 0, 1], [0, 2, 1]])
        >>> s, t = fit_weak_perspective(P, 3 * P[:, :2] + [5, 7])
        >>> round(s, 9), t.round(9).tolist()
        (3.0, [5.0, 7.0])
    """
    P = _array("points_3d", points_3d, (None, 3))[:, :2]
    p = _array("points_2d", points_2d, (len(P), 2))
    w = _weights(weights, len(P))
    total = w.sum()
    if total <= 0:
        raise ValueError("fit_weak_perspective: all weights are zero")
    mean_3d, mean_2d = w @ P / total, w @ p / total
    Pc, pc = P - mean_3d, p - mean_2d
    spread = float(w @ (Pc**2).sum(1))
    if not spread > 1e-300:
        raise ValueError("fit_weak_perspective: the 3D points have no spread in x, y")
    scale = float(w @ (Pc * pc).sum(1)) / spread
    return scale, mean_2d - scale * mean_3d


def weak_perspective_project(points_3d, scale: float, translation) -> np.ndarray:
    """Weak-perspective projection `s·X[..., :2] + t` of `points_3d (..., 3)`; `(..., 2)`."""
    points_3d = np.asarray(points_3d, dtype=np.float64)
    if points_3d.shape[-1:] != (3,):
        raise ValueError(f"points_3d must be (..., 3), got {points_3d.shape}")
    return scale * points_3d[..., :2] + np.asarray(translation, dtype=np.float64)
