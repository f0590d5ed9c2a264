import cv2
import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from hoposer.geometry.camera import project
from hoposer.geometry.control_points import box_control_points
from hoposer.geometry.pnp import PnPResult, object_pose_from_grid, solve_pnp, top_proposals

K = np.array([[615.0, 0.0, 320.0], [0.0, 615.0, 240.0], [0.0, 0.0, 1.0]])
CONTROL = box_control_points([-0.04, -0.06, -0.03], [0.04, 0.06, 0.03])
R_TRUE = Rotation.from_rotvec([0.4, -1.1, 0.7]).as_matrix()
T_TRUE = np.array([0.03, -0.02, 0.55])


def _angle(R_a, R_b):
    return np.linalg.norm(cv2.Rodrigues(R_a @ R_b.T)[0])


def _image(points_3d):
    return project(points_3d @ R_TRUE.T + T_TRUE, K)


def test_noise_free_control_points_recover_the_pose():
    result = solve_pnp(CONTROL, _image(CONTROL), K)
    assert result.success and result.reason == ""
    assert _angle(result.R, R_TRUE) < 1e-4
    assert np.linalg.norm(result.t - T_TRUE) < 1e-4
    assert result.inliers == 21 and result.reprojection_error_px < 1e-6


def test_outliers_are_rejected():
    rng = np.random.default_rng(0)
    points = np.repeat(CONTROL, 5, axis=0)
    uv = _image(points) + rng.normal(scale=0.3, size=(len(points), 2))
    bad = rng.choice(len(points), size=int(0.3 * len(points)), replace=False)
    uv[bad] = rng.uniform([0, 0], [640, 480], size=(len(bad), 2))
    result = solve_pnp(points, uv, K)
    assert result.success
    assert _angle(result.R, R_TRUE) < 5e-3  # 0.3 px noise on a ~60 px object
    assert np.linalg.norm(result.t - T_TRUE) < 1e-3
    assert result.inliers >= len(points) - len(bad)
    again = solve_pnp(points, uv, K)  # deterministic
    assert np.array_equal(again.R, result.R) and np.array_equal(again.t, result.t)


def test_exact_correspondences_with_outliers():
    rng = np.random.default_rng(1)
    points = np.repeat(CONTROL, 3, axis=0)
    uv = _image(points)
    bad = rng.choice(len(points), size=int(0.3 * len(points)), replace=False)
    uv[bad] += rng.uniform(30, 200, size=(len(bad), 2)) * rng.choice([-1, 1], size=(len(bad), 2))
    result = solve_pnp(points, uv, K)
    assert result.success
    assert _angle(result.R, R_TRUE) < 1e-3 and np.linalg.norm(result.t - T_TRUE) < 1e-3


def _assert_failed(result: PnPResult):
    assert not result.success and result.reason
    assert np.isnan(result.R).all() and result.R.shape == (3, 3)
    assert np.isnan(result.t).all() and result.t.shape == (3,)


def test_too_few_or_non_finite_points_fail_cleanly():
    _assert_failed(solve_pnp(CONTROL[:5], _image(CONTROL[:5]), K))
    uv = _image(CONTROL)
    uv[4:] = np.nan
    result = solve_pnp(CONTROL, uv, K)
    _assert_failed(result)
    assert "4 finite" in result.reason
    _assert_failed(solve_pnp(CONTROL, np.random.default_rng(0).uniform(0, 640, (21, 2)), K))


def test_degenerate_input_fails():
    collapsed = solve_pnp(CONTROL, np.full((21, 2), 100.0), K)  # object "at infinity"
    _assert_failed(collapsed)
    assert "span" in collapsed.reason
    _assert_failed(solve_pnp(np.zeros((21, 3)), _image(CONTROL), K))
    _assert_failed(solve_pnp(CONTROL, _image(CONTROL), np.full((3, 3), np.nan)))


def test_pose_from_grid_uses_the_most_confident_cells():
    rng = np.random.default_rng(2)
    cells = 64
    truth = _image(CONTROL)
    grid = rng.uniform(0, 640, size=(cells, 21, 2))  # garbage proposals
    confidence = rng.uniform(0.0, 0.4, size=(cells, 21))
    for j in range(21):
        good = rng.choice(cells, size=12, replace=False)
        grid[good, j] = truth[j] + rng.normal(scale=0.5, size=(12, 2))
        confidence[good, j] = rng.uniform(0.6, 1.0, size=12)
    confidence[0, 0] = np.nan
    result = object_pose_from_grid(grid, confidence, CONTROL, K, k=10)
    assert result.success and result.inliers == 210
    assert _angle(result.R, R_TRUE) < 1e-2 and np.linalg.norm(result.t - T_TRUE) < 2e-3
    # the grid may keep its 2D layout
    square = object_pose_from_grid(
        grid.reshape(8, 8, 21, 2), confidence.reshape(8, 8, 21), CONTROL, K
    )
    assert np.allclose(square.R, result.R) and np.allclose(square.t, result.t)


def test_bad_shapes_raise():
    with pytest.raises(ValueError):
        object_pose_from_grid(np.zeros((4, 20, 2)), np.zeros((4, 20)), CONTROL, K)
    with pytest.raises(ValueError):
        solve_pnp(CONTROL, np.zeros((20, 2)), K)


@pytest.mark.parametrize("k", [1, 3, 10, 40, 64, 100])
def test_top_proposals_match_a_stable_sort_with_ties_and_nan(k):
    rng = np.random.default_rng(k)
    confidence = rng.uniform(size=(64, 21)).astype(np.float32)
    confidence[:, :7] = np.round(confidence[:, :7] * 4) / 4  # many ties at every rank
    confidence[rng.uniform(size=confidence.shape) < 0.1] = np.nan
    confidence[:, 20] = 0.5  # one column of equal values: lower index first
    reference = np.argsort(-np.nan_to_num(confidence, nan=-np.inf), axis=0, kind="stable")
    np.testing.assert_array_equal(top_proposals(confidence, k), reference[: min(k, 64)])


def test_pose_from_box_normalised_grid_equals_pose_from_pixels():
    rng = np.random.default_rng(5)
    truth = _image(CONTROL)
    grid = truth + rng.normal(scale=0.5, size=(32, 21, 2))
    confidence = rng.uniform(size=(32, 21))
    box = np.array([100.0, 80.0, 420.0, 380.0])
    normalised = ((grid - box[:2]) / (box[2:] - box[:2])).astype(np.float32)
    pixels = box[:2] + normalised.astype(np.float64) * (box[2:] - box[:2])
    a = object_pose_from_grid(normalised, confidence, CONTROL, K, box=box)
    b = object_pose_from_grid(pixels, confidence, CONTROL, K)
    assert a.success and np.array_equal(a.R, b.R) and np.array_equal(a.t, b.t)
