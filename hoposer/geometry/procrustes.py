"""Procrustes problems: one point set aligned onto another, rotations averaged.

`procrustes` is Umeyama's (1991) similarity alignment; `mean_rotation` the rotation nearest the
average of several.
"""

import numpy as np


def procrustes(
    pred, target, allow_reflection: bool = False
) -> tuple[np.ndarray, float, np.ndarray, np.ndarray]:
    """The least-squares similarity `x ↦ s·R·x + t` taking `pred` onto `target`.

    Umeyama's closed form: with `U D Vᵀ` the SVD of the cross-covariance of the centred sets,
    `R = U S Vᵀ` where `S = diag(1, 1, det(U Vᵀ))` keeps `R` a proper rotation. With
    `allow_reflection=True`, `S = I` (the plain orthogonal Procrustes solution, as HO-3D's and
    FreiHAND's official evaluation, where a mirrored prediction aligns perfectly).

    Args:
        pred: `(N, 3)` the points to move.
        target: `(N, 3)` the points to align them onto.
        allow_reflection: allow `det(R) = -1`.

    Returns:
        `(aligned (N, 3), scale, R (3, 3), t (3,))` with ``aligned = scale · pred @ R.T + t``.

    Raises:
        ValueError: the shapes differ or are not `(N, 3)`, or `pred` is a single point.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> x = rng.normal(size=(10, 3))
        >>> _, s, R, t = procrustes(x, 2.0 * x[:, [1, 0, 2]] * [1, 1, -1] + 1.0)
        >>> round(s, 9), round(float(np.linalg.det(R)), 9)
        (2.0, 1.0)
    """
    pred = np.asarray(pred, dtype=np.float64)
    target = np.asarray(target, dtype=np.float64)
    if pred.ndim != 2 or pred.shape[1] != 3 or target.shape != pred.shape:
        raise ValueError(f"pred and target must both be (N, 3), got {pred.shape}, {target.shape}")
    mu_pred, mu_target = pred.mean(0), target.mean(0)
    X, Y = pred - mu_pred, target - mu_target
    variance = float((X**2).sum())
    if not variance > 0:
        raise ValueError("procrustes: pred has no spread (all points coincide)")
    U, D, Vt = np.linalg.svd(Y.T @ X)
    S = np.ones(3)
    if not allow_reflection and np.linalg.det(U) * np.linalg.det(Vt) < 0:
        S[2] = -1.0
    R = (U * S) @ Vt
    scale = float((D * S).sum() / variance)
    t = mu_target - scale * R @ mu_pred
    return scale * pred @ R.T + t, scale, R, t


def mean_rotation(rotations: np.ndarray) -> np.ndarray:
    """The chordal L2 mean of `rotations (N, ..., 3, 3)` over N: the rotation nearest their mean.

    Nearest in the Frobenius norm, by the SVD of the mean matrix with `diag(1, 1, det)` so that it
    is a proper rotation, never a reflection. It minimises the summed squared Frobenius distances
    to the rotations, and so equals the quaternion average (the top eigenvector of `Σ q qᵀ`).
    """
    u, _, vt = np.linalg.svd(np.asarray(rotations, np.float64).mean(axis=0))
    keep = np.ones(u.shape[:-1])
    keep[..., -1] = np.sign(np.linalg.det(u @ vt))
    return (u * keep[..., None, :]) @ vt
