import numpy as np
import pytest

from hoposer.geometry.kinematics import (
    FLEXION_JOINTS,
    bone_lengths,
    bone_vectors,
    flexion_angles,
    normalized_bone_lengths,
)
from hoposer.geometry.skeleton import JOINT_NAMES


def _flat_hand():
    """Five straight fingers fanned in the x-y plane; every phalanx 1 cm, palm bones 8 cm."""
    joints = np.zeros((21, 3))
    for f in range(5):
        direction = np.array([np.cos(0.3 * f), np.sin(0.3 * f), 0.0])
        for i in range(4):
            joints[1 + 4 * f + i] = direction * (0.08 + 0.01 * i)
    return joints


def test_bone_lengths_of_a_hand_made_skeleton():
    joints = _flat_hand()
    lengths = bone_lengths(joints)
    assert lengths.shape == (20,)
    expected = np.tile([0.08, 0.01, 0.01, 0.01], 5)
    assert np.allclose(lengths, expected)
    assert np.allclose(normalized_bone_lengths(joints), expected / 0.08)
    assert np.allclose(bone_vectors(joints)[8], joints[9] - joints[0])
    batch = np.stack([joints, 2 * joints])
    assert bone_lengths(batch).shape == (2, 20)
    assert np.allclose(normalized_bone_lengths(batch)[1], expected / 0.08)


def test_flexion_straight_and_bent():
    joints = _flat_hand()
    assert np.allclose(flexion_angles(joints), 0.0, atol=1e-12)
    # bend the index finger 90 degrees at its PIP (towards -z)
    pip = JOINT_NAMES.index("index_pip")
    joints[pip + 1] = joints[pip] + [0, 0, -0.01]
    joints[pip + 2] = joints[pip] + [0, 0, -0.02]
    angles = flexion_angles(joints)
    k = FLEXION_JOINTS.index(pip)
    assert k == 4
    assert angles[k] == pytest.approx(np.pi / 2)
    assert np.allclose(np.delete(angles, k), 0.0, atol=1e-12)
    assert flexion_angles(np.stack([joints] * 3)).shape == (3, 15)


def test_flexion_order_is_documented():
    assert [JOINT_NAMES[j] for j in FLEXION_JOINTS[:6]] == [
        "thumb_cmc", "thumb_mcp", "thumb_ip", "index_mcp", "index_pip", "index_dip",
    ]  # fmt: skip


def test_wrong_shape():
    with pytest.raises(ValueError):
        bone_lengths(np.zeros((20, 3)))
