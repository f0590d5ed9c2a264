import cv2
import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from hoposer.geometry.camera import project
from hoposer.geometry.control_points import box_control_points
from hoposer.geometry.pnp import (
    ObjectPoseGate,
    PnPResult,
    object_pose_from_votes,
    solve_pnp,
    top_proposals,
    top_votes,
)

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


def test_the_pose_minimises_the_reprojection_error_of_every_vote_it_counts_as_an_inlier():
    rng = np.random.default_rng(2)
    points = np.repeat(CONTROL, 10, axis=0)
    uv = _image(points) + rng.normal(scale=2.0, size=(len(points), 2))  # noisy votes
    bad = rng.choice(len(points), size=int(0.5 * len(points)), replace=False)
    uv[bad] = rng.uniform([200, 120], [440, 360], size=(len(bad), 2))
    result = solve_pnp(points, uv, K, ransac_threshold_px=8.0)
    assert result.success
    inliers = np.linalg.norm(project(points @ result.R.T + result.t, K) - uv, axis=1) < 8.0
    assert result.inliers == inliers.sum() >= len(points) - len(bad)
    # Least squares over exactly those inliers: a further refinement does not move the pose.
    criteria = (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_COUNT, 100, 1e-14)
    rvec, tvec = cv2.Rodrigues(result.R)[0], result.t.reshape(3, 1)
    r2, t2 = cv2.solvePnPRefineLM(points[inliers], uv[inliers], K, None, rvec.copy(), tvec.copy(),
                                  criteria=criteria)  # fmt: skip
    assert np.abs(t2 - tvec).max() < 1e-7 and np.abs(r2 - rvec).max() < 1e-6


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
    result = object_pose_from_votes(top_votes(grid, confidence, k=10), CONTROL, K)
    assert result.success and result.inliers == 210
    assert _angle(result.R, R_TRUE) < 1e-2 and np.linalg.norm(result.t - T_TRUE) < 2e-3
    # the grid may keep its 2D layout
    square = object_pose_from_votes(
        top_votes(grid.reshape(8, 8, 21, 2), confidence.reshape(8, 8, 21)), CONTROL, K
    )
    assert np.allclose(square.R, result.R) and np.allclose(square.t, result.t)


def test_bad_shapes_raise():
    with pytest.raises(ValueError):
        object_pose_from_votes(np.zeros((4, 20, 2)), CONTROL, K)
    with pytest.raises(ValueError):
        top_votes(np.zeros((4, 20, 2)), np.zeros((4, 21)))
    with pytest.raises(ValueError):
        solve_pnp(CONTROL, np.zeros((20, 2)), K)


def _votes(points_2d: np.ndarray, rng, k: int = 10, noise_px: float = 0.5) -> np.ndarray:
    """k noisy votes per control point, `(k, 21, 2)`."""
    return points_2d[None] + rng.normal(scale=noise_px, size=(k, *points_2d.shape))


def _gate(votes, box, wrist_depth=float("nan"), control=CONTROL):
    points_3d = np.broadcast_to(control, (len(votes), *control.shape)).reshape(-1, 3)
    result = solve_pnp(points_3d, votes.reshape(-1, 2), K)
    return result, ObjectPoseGate().check(result, votes, box, control, K, wrist_depth)


def _box_of(points_2d: np.ndarray) -> np.ndarray:
    return np.concatenate([points_2d.min(0), points_2d.max(0)])


def test_the_gate_accepts_a_true_pose_near_the_hand():
    truth = _image(CONTROL)
    votes = _votes(truth, np.random.default_rng(0))
    result, gated = _gate(votes, _box_of(truth), wrist_depth=T_TRUE[2] + 0.08)
    assert result.success and gated is result
    assert np.linalg.norm(gated.t - T_TRUE) < 5e-3


def test_the_gate_rejects_votes_collapsed_toward_one_point():
    # What an untrained or confused decoder does: every vote near the box centre. The votes are
    # a shrunken copy of the true projection, so PnP explains them well with the object metres
    # away, a pose that fits but is not there.
    truth = _image(CONTROL)
    box = _box_of(truth)
    centre = truth.mean(0)
    collapsed = centre + 0.08 * (truth - centre)
    votes = _votes(collapsed, np.random.default_rng(1), noise_px=0.05)
    result, gated = _gate(votes, box)
    assert result.success and result.t[2] > 3  # PnP alone calls it found, far away
    assert not gated.success and "collapse" in gated.reason
    assert np.isnan(gated.t).all()


def test_the_gate_rejects_a_pose_far_from_the_hand():
    far = np.array([0.05, -0.03, 1.6])
    truth = project(CONTROL @ R_TRUE.T + far, K)
    votes = _votes(truth, np.random.default_rng(2), noise_px=0.2)
    box = _box_of(truth)
    result, gated = _gate(votes, box, wrist_depth=0.5)
    assert result.success and abs(result.t[2] - 1.6) < 0.05
    assert not gated.success and "from the hand" in gated.reason
    _, no_hand = _gate(votes, box)  # without a placed hand, 1.6 m is a plausible depth
    assert no_hand.success


def test_the_gate_rejects_a_pose_off_its_box_and_a_poor_fit():
    truth = _image(CONTROL)
    votes = _votes(truth, np.random.default_rng(3))
    elsewhere = _box_of(truth) + np.array([300.0, 0, 300, 0])
    _, gated = _gate(votes, elsewhere, wrist_depth=T_TRUE[2])
    assert not gated.success and "covers its box" in gated.reason
    scattered = _votes(truth, np.random.default_rng(4), noise_px=15.0)  # votes agree on no pose
    result, gated = _gate(scattered, _box_of(truth), wrist_depth=T_TRUE[2])
    assert not gated.success and gated.reason


def test_the_gate_accepts_a_small_object_in_the_hands_larger_grasp_box():
    # Before tracking starts, the object box is the hand's grasp region: here 6x the size of a
    # 3 cm cube. The votes' spread is judged against the cube's size at the hand's depth.
    small = box_control_points([-0.015] * 3, [0.015] * 3)
    truth = project(small @ R_TRUE.T + T_TRUE, K)
    box = _box_of(truth)
    centre, half = (box[:2] + box[2:]) / 2, 3 * (box[2:] - box[:2])
    grasp = np.concatenate([centre - half, centre + half])
    votes = _votes(truth, np.random.default_rng(5), noise_px=0.3)
    result, gated = _gate(votes, grasp, wrist_depth=T_TRUE[2] + 0.05, control=small)
    assert result.success and gated is result
    shrunk = centre + 0.2 * (truth - centre)  # the same cube's votes collapsed toward the centre
    _, collapsed = _gate(
        _votes(shrunk, np.random.default_rng(6), noise_px=0.05), grasp, T_TRUE[2], small
    )
    assert not collapsed.success and "collapse" in collapsed.reason


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
    a = object_pose_from_votes(top_votes(normalised, confidence, box=box), CONTROL, K)
    b = object_pose_from_votes(top_votes(pixels, confidence), CONTROL, K)
    assert a.success and np.array_equal(a.R, b.R) and np.array_equal(a.t, b.t)


def test_visible_beside_hand_measures_how_much_of_the_object_the_hand_covers():
    from hoposer.geometry.control_points import object_mesh
    from hoposer.geometry.pnp import visible_beside_hand

    K = np.array([[500.0, 0, 320], [0, 500.0, 240], [0, 0, 1]])
    # The "hand": a 10 cm square facing the camera at 0.5 m, two triangles.
    square = np.array([[-1, -1, 0], [1, -1, 0], [1, 1, 0], [-1, 1, 0]])
    hand = square * [0.05, 0.05, 1] + [0, 0, 0.5]
    faces = np.array([[0, 1, 2], [0, 2, 3]])
    box = object_mesh("box:0.04x0.04x0.04").vertices
    box = box - box.mean(axis=0)

    def beside(offset):
        return visible_beside_hand(box + offset, hand, faces, K)

    assert beside([0.0, 0.0, 0.45]) == pytest.approx(0.0, abs=0.02)  # in front of the palm
    assert beside([0.2, 0.0, 0.5]) == pytest.approx(1.0)  # well beside the hand
    # Straddling the square's right edge: about half of its silhouette shows beside it (the
    # box's near face is larger than its far face, hence the tolerance).
    assert beside([0.05, 0.0, 0.5]) == pytest.approx(0.5, abs=0.08)
    assert np.isnan(beside([0.0, 0.0, -0.5]))  # behind the camera
    assert np.isnan(visible_beside_hand(box + [0, 0, 0.5], hand * np.nan, faces, K))
