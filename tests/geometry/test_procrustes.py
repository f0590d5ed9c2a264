import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from hoposer.geometry.procrustes import mean_rotation, procrustes
from hoposer.train.metrics import ho3d_procrustes

rng = np.random.default_rng(11)


def test_recovers_a_similarity_exactly():
    pred = rng.normal(size=(50, 3))
    R = Rotation.random(random_state=3).as_matrix()
    target = 0.7 * pred @ R.T + [0.3, -1.0, 2.0]
    aligned, s, R_fit, t = procrustes(pred, target)
    assert np.allclose(aligned, target, atol=1e-12)
    assert s == pytest.approx(0.7)
    assert np.allclose(R_fit, R, atol=1e-12)
    assert np.allclose(t, [0.3, -1.0, 2.0])
    assert np.allclose(s * pred @ R_fit.T + t, aligned)


def test_reflection_flag():
    pred = rng.normal(size=(21, 3))
    mirrored = pred * [-1.0, 1.0, 1.0]
    aligned, _, R, _ = procrustes(pred, mirrored, allow_reflection=True)
    assert np.allclose(aligned, mirrored, atol=1e-12)
    assert np.linalg.det(R) == pytest.approx(-1.0)
    aligned, _, R, _ = procrustes(pred, mirrored)
    assert np.linalg.det(R) == pytest.approx(1.0)
    assert not np.allclose(aligned, mirrored, atol=1e-3)


def test_matches_the_official_eval_up_to_its_epsilons():
    gt = rng.normal(size=(21, 3)) * 0.05
    pred = gt + rng.normal(size=gt.shape) * 0.01
    aligned, *_ = procrustes(pred, gt, allow_reflection=True)
    assert np.allclose(aligned, ho3d_procrustes(gt, pred), atol=1e-9)


def test_bad_input():
    with pytest.raises(ValueError):
        procrustes(np.zeros((5, 3)), np.zeros((4, 3)))
    with pytest.raises(ValueError):
        procrustes(np.ones((5, 3)), rng.normal(size=(5, 3)))


def test_the_mean_rotation_is_the_quaternion_average_over_the_first_axis():
    rng = np.random.default_rng(3)
    centre = Rotation.from_rotvec([0.3, 1.0, 0.2])
    spread = Rotation.from_rotvec(rng.normal(0, 0.8, (12, 2, 3)).reshape(-1, 3))
    rotations = (spread * centre).as_matrix().reshape(12, 2, 3, 3)
    mean = mean_rotation(rotations)
    assert mean.shape == (2, 3, 3)
    for k in range(2):  # scipy's mean is the top eigenvector of Σ q qᵀ
        expected = Rotation.from_matrix(rotations[:, k]).mean().as_matrix()
        np.testing.assert_allclose(mean[k], expected, atol=1e-9)
        assert np.linalg.det(mean[k]) == pytest.approx(1.0)
