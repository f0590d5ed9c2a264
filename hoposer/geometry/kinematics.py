"""Bones and joint angles of the 21-joint hand, for the pseudo-label filters of paper §5.

Bone `i` (of 20) ends at joint `i + 1` and starts at its parent, `skeleton.PARENTS[i + 1]`: bones
0-3 are the thumb's (wrist→cmc, cmc→mcp, mcp→ip, ip→tip), 4-7 the index finger's, 8-11 the
middle finger's (bone 8 = wrist→middle_mcp, the scale bone), 12-15 the ring's, 16-19 the pinky's.

Flexion angles (15), finger by finger, base to tip::

     0 thumb_cmc   1 thumb_mcp   2 thumb_ip
     3 index_mcp   4 index_pip   5 index_dip
     6 middle_mcp  7 middle_pip  8 middle_dip
     9 ring_mcp   10 ring_pip   11 ring_dip
    12 pinky_mcp  13 pinky_pip  14 pinky_dip

each the angle at that joint between the bone arriving at it and the bone leaving it (0 for a
straight finger, π/2 for a right-angle bend; the direction of the bend is not distinguished).
All functions are numpy, batched over leading dimensions.
"""

import numpy as np

from hoposer.geometry.skeleton import NUM_JOINTS, PARENTS

#: Bone index of wrist→middle_mcp, the length the normalised bone lengths are divided by.
SCALE_BONE = 8

#: Joints the flexion angles are measured at, in the documented order.
FLEXION_JOINTS: tuple[int, ...] = tuple(base + i for base in (1, 5, 9, 13, 17) for i in range(3))

#: (incoming bone, outgoing bone) for each flexion angle.
_FLEXION_BONES = np.array([(j - 1, j) for j in FLEXION_JOINTS])


def _joints(joints) -> np.ndarray:
    joints = np.asarray(joints, dtype=np.float64)
    if joints.shape[-2:] != (NUM_JOINTS, 3):
        raise ValueError(f"joints must be (..., {NUM_JOINTS}, 3), got {joints.shape}")
    return joints


def bone_vectors(joints) -> np.ndarray:
    """Child minus parent for every bone of `joints (..., 21, 3)`; returns `(..., 20, 3)`."""
    joints = _joints(joints)
    return joints[..., 1:, :] - joints[..., list(PARENTS[1:]), :]


def bone_lengths(joints) -> np.ndarray:
    """Lengths of the 20 bones of `joints (..., 21, 3)`; returns `(..., 20)`.

    Example:
        >>> j = np.zeros((21, 3)); j[1:, 0] = 1.0
        >>> bone_lengths(j)[:2].tolist()
        [1.0, 0.0]
    """
    return np.linalg.norm(bone_vectors(joints), axis=-1)


def normalized_bone_lengths(joints) -> np.ndarray:
    """Bone lengths divided by the wrist→middle_mcp length (so bone 8 is 1); `(..., 20)`.

    A hand whose scale bone has zero length gives infinities or NaN.
    """
    lengths = bone_lengths(joints)
    with np.errstate(divide="ignore", invalid="ignore"):
        return lengths / lengths[..., SCALE_BONE : SCALE_BONE + 1]


def flexion_angles(joints) -> np.ndarray:
    """Bend angles in radians at each finger's three inner joints; `(..., 15)`, module's order.

    The angle between bones `a` (arriving) and `b` (leaving) is `atan2(|a × b|, a · b)`: 0 when
    they are collinear and pointing the same way, π when the finger folds back on itself. A
    zero-length bone gives 0.
    """
    bones = bone_vectors(joints)
    a = bones[..., _FLEXION_BONES[:, 0], :]
    b = bones[..., _FLEXION_BONES[:, 1], :]
    return np.arctan2(np.linalg.norm(np.cross(a, b), axis=-1), (a * b).sum(-1))
