import numpy as np
import pytest
from skeletons import K_TEST, project, straight_hand

from hoposer.geometry.consistency import (
    Thresholds,
    failed_constraints,
    joint_motion,
    mesh_box_iou,
    pose_change,
    reprojection_distance,
    shape_outliers,
    spatial_statistics,
)


def bend(joints: np.ndarray, finger: int, degrees: float) -> np.ndarray:
    """Rotate the pip→tip chain of one finger about the palm's x axis by `degrees`."""
    out = joints.copy()
    pip = 1 + 4 * finger + 1
    a = np.radians(degrees)
    R = np.array([[1, 0, 0], [0, np.cos(a), -np.sin(a)], [0, np.sin(a), np.cos(a)]])
    out[pip : pip + 3] = (joints[pip : pip + 3] - joints[pip - 1]) @ R.T + joints[pip - 1]
    return out


def test_a_plausible_hand_passes_every_spatial_constraint():
    joints = straight_hand()
    joints_2d = project(joints, K_TEST)
    box = np.r_[joints_2d.min(0), joints_2d.max(0)]
    stats = spatial_statistics(joints, joints_2d, vertices=joints, hand_box=box)
    assert stats["iou"] == pytest.approx(1.0)
    assert stats["reprojection"] < 1e-9
    assert failed_constraints(stats, Thresholds()) == ()


def test_each_spatial_constraint_rejects_its_violation():
    joints = straight_hand()
    joints_2d = project(joints, K_TEST)
    # 2D joints that disagree with the 3D ones: a scrambled hand.
    scrambled = joints_2d[np.random.default_rng(0).permutation(21)]
    assert "reprojection" in failed_constraints(spatial_statistics(joints, scrambled), Thresholds())
    # A bone shrunk to 5% of the palm.
    short = joints.copy()
    short[8] = short[7] + (short[8] - short[7]) * 0.05 / 0.2
    assert failed_constraints(spatial_statistics(short, project(short, K_TEST)), Thresholds()) == (
        "bone_length",
    )
    # A finger bent backwards beyond 90 degrees.
    bent = bend(joints, finger=2, degrees=120)
    assert failed_constraints(spatial_statistics(bent, project(bent, K_TEST)), Thresholds()) == (
        "joint_angle",
    )
    assert (
        failed_constraints(
            spatial_statistics(bend(joints, 2, 80), project(bend(joints, 2, 80), K_TEST)),
            Thresholds(),
        )
        == ()
    )
    # A detector box far from the projected mesh.
    box = np.r_[joints_2d.min(0), joints_2d.max(0)] + 60
    assert mesh_box_iou(joints, joints_2d, joints, box) < 0.6


def test_temporal_statistics_are_normalised_as_documented():
    joints_2d = project(straight_hand(), K_TEST)
    side = (joints_2d.max(0) - joints_2d.min(0)).max()
    moved = joints_2d + np.array([side * 0.5 / np.sqrt(21), 0])
    assert joint_motion(moved, joints_2d) == pytest.approx(
        0.5 * side / (moved.max(0) - moved.min(0)).max()
    )
    theta = np.zeros(48)
    other = theta.copy()
    other[3:] = 0.1
    other[:3] = 2.0  # the global rotation does not count
    assert pose_change(other, theta) == pytest.approx(0.01)


def test_reprojection_is_scale_free():
    joints = straight_hand()
    joints_2d = project(joints, K_TEST)
    noisy = joints_2d + np.random.default_rng(1).normal(0, 2, joints_2d.shape)
    d = reprojection_distance(joints, noisy)
    assert reprojection_distance(joints, noisy * 3 + 100) == pytest.approx(d)


def test_shape_outliers_drop_beyond_two_sigma():
    rng = np.random.default_rng(0)
    betas = rng.normal(0, 0.05, (40, 10))
    betas[7] += 1.0
    outliers = shape_outliers(betas)
    assert outliers.nonzero()[0].tolist() == [7]
    assert not shape_outliers(betas[:1]).any()
