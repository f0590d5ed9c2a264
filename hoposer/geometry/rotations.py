"""Rotation conversions in torch, batched over any leading dimensions.

Written with plain element-wise ops, `torch.where` and no in-place masking, so that they trace to
ONNX and TensorRT and keep gradients finite.
"""

import torch
import torch.nn.functional as F

_EPS = 1e-8


def rot6d_to_matrix(x: torch.Tensor) -> torch.Tensor:
    """6D rotation representation to rotation matrices (Zhou et al., CVPR 2019).

    The two 3-vectors are Gram-Schmidt orthonormalised and become the first two *columns* of the
    matrix (the convention of the public Semi-Hand-Object code).

    Args:
        x: `(..., 6)`.

    Returns:
        `(..., 3, 3)` rotation matrices.
    """
    if x.shape[-1] != 6:
        raise ValueError(f"rot6d_to_matrix expects (..., 6), got {tuple(x.shape)}")
    a1, a2 = x[..., 0:3], x[..., 3:6]
    b1 = F.normalize(a1, dim=-1)
    b2 = F.normalize(a2 - (b1 * a2).sum(-1, keepdim=True) * b1, dim=-1)
    b3 = torch.cross(b1, b2, dim=-1)
    return torch.stack((b1, b2, b3), dim=-1)


def axis_angle_to_matrix(aa: torch.Tensor) -> torch.Tensor:
    """Axis-angle (Rodrigues) vectors to rotation matrices.

    Args:
        aa: `(..., 3)`, rotation axis times angle in radians.

    Returns:
        `(..., 3, 3)`.
    """
    if aa.shape[-1] != 3:
        raise ValueError(f"axis_angle_to_matrix expects (..., 3), got {tuple(aa.shape)}")
    angle_sq = (aa * aa).sum(-1, keepdim=True)
    angle = torch.sqrt(angle_sq + _EPS**2)
    small = angle_sq < 1e-12
    # sin(a)/a and (1-cos(a))/a^2 with their Taylor series near zero.
    sin_over = torch.where(small, 1.0 - angle_sq / 6.0, torch.sin(angle) / angle)
    cos_term = torch.where(small, 0.5 - angle_sq / 24.0, (1.0 - torch.cos(angle)) / (angle * angle))
    x, y, z = aa[..., 0], aa[..., 1], aa[..., 2]
    zero = torch.zeros_like(x)
    skew = torch.stack((zero, -z, y, z, zero, -x, -y, x, zero), dim=-1).reshape(
        *aa.shape[:-1], 3, 3
    )
    eye = torch.eye(3, dtype=aa.dtype, device=aa.device).expand_as(skew)
    return eye + sin_over[..., None] * skew + cos_term[..., None] * (skew @ skew)


def matrix_to_quaternion(m: torch.Tensor) -> torch.Tensor:
    """Rotation matrices to unit quaternions `(w, x, y, z)` with `w >= 0`.

    Uses the numerically best of the four classic branches per element (largest diagonal term).

    Args:
        m: `(..., 3, 3)`.

    Returns:
        `(..., 4)`.
    """
    if m.shape[-2:] != (3, 3):
        raise ValueError(f"matrix_to_quaternion expects (..., 3, 3), got {tuple(m.shape)}")
    m00, m01, m02 = m[..., 0, 0], m[..., 0, 1], m[..., 0, 2]
    m10, m11, m12 = m[..., 1, 0], m[..., 1, 1], m[..., 1, 2]
    m20, m21, m22 = m[..., 2, 0], m[..., 2, 1], m[..., 2, 2]
    # 4*q_i^2 for each component; the largest gives the stable branch.
    q_abs_sq = torch.stack(
        (
            1.0 + m00 + m11 + m22,
            1.0 + m00 - m11 - m22,
            1.0 - m00 + m11 - m22,
            1.0 - m00 - m11 + m22,
        ),
        dim=-1,
    )
    q_abs = torch.sqrt(torch.clamp(q_abs_sq, min=_EPS))
    candidates = torch.stack(
        (
            torch.stack((q_abs_sq[..., 0], m21 - m12, m02 - m20, m10 - m01), dim=-1),
            torch.stack((m21 - m12, q_abs_sq[..., 1], m10 + m01, m02 + m20), dim=-1),
            torch.stack((m02 - m20, m10 + m01, q_abs_sq[..., 2], m12 + m21), dim=-1),
            torch.stack((m10 - m01, m20 + m02, m21 + m12, q_abs_sq[..., 3]), dim=-1),
        ),
        dim=-2,
    ) / (2.0 * q_abs[..., None])
    best = F.one_hot(q_abs_sq.argmax(dim=-1), num_classes=4).to(m.dtype)
    quat = (candidates * best[..., None]).sum(dim=-2)
    quat = F.normalize(quat, dim=-1)
    return torch.where(quat[..., :1] < 0, -quat, quat)


def quaternion_to_axis_angle(q: torch.Tensor) -> torch.Tensor:
    """Unit quaternions `(w, x, y, z)` to axis-angle vectors with angle in `[0, π]`.

    Args:
        q: `(..., 4)`.

    Returns:
        `(..., 3)`.
    """
    q = torch.where(q[..., :1] < 0, -q, q)
    xyz = q[..., 1:]
    sin_half_sq = (xyz * xyz).sum(-1, keepdim=True)
    sin_half = torch.sqrt(sin_half_sq + _EPS**2)
    angle = 2.0 * torch.atan2(sin_half, q[..., :1])
    # angle / sin(angle/2) -> 2 as the angle goes to zero.
    scale = torch.where(sin_half_sq < 1e-12, 2.0 + sin_half_sq / 3.0, angle / sin_half)
    return xyz * scale


def matrix_to_axis_angle(m: torch.Tensor) -> torch.Tensor:
    """Rotation matrices to axis-angle vectors, angle in `[0, π]`.

    Args:
        m: `(..., 3, 3)`.

    Returns:
        `(..., 3)`.
    """
    return quaternion_to_axis_angle(matrix_to_quaternion(m))
