import numpy as np
import pytest
import torch
from scipy.linalg import orthogonal_procrustes
from scipy.spatial import cKDTree
from scipy.spatial.transform import Rotation

from hoposer.model.hand import build_hand_model
from hoposer.train.evaluate import mean_pose_pa_error
from hoposer.train.metrics import (
    HandEvaluator,
    KeypointErrors,
    ObjectEvaluator,
    add_error,
    adds_error,
    f_score,
    ho3d_procrustes,
    ho3d_scale_translation,
    rep_error,
)

rng = np.random.default_rng(7)


def test_procrustes_undoes_a_similarity_transform():
    gt = rng.normal(size=(21, 3))
    R = Rotation.random(random_state=1).as_matrix()
    pred = 0.37 * gt @ R.T + np.array([0.1, -2.0, 0.5])
    assert np.allclose(ho3d_procrustes(gt, pred), gt, atol=1e-8)


def test_procrustes_matches_scipy_reference_on_noisy_data():
    gt = rng.normal(size=(778, 3))
    pred = gt + 0.3 * rng.normal(size=gt.shape)
    # The reference: HO-3D's align_w_scale written with scipy's orthogonal_procrustes.
    a, b = gt - gt.mean(0), pred - pred.mean(0)
    s1 = np.linalg.norm(a) + 1e-8
    a, b = a / s1, b / (np.linalg.norm(b) + 1e-8)
    R, s = orthogonal_procrustes(a, b)
    expected = b @ R.T * s * s1 + gt.mean(0)
    assert np.allclose(ho3d_procrustes(gt, pred), expected, atol=1e-10)


def test_procrustes_allows_reflections_like_the_official_eval():
    gt = rng.normal(size=(21, 3))
    mirrored = gt * np.array([-1.0, 1.0, 1.0])
    assert np.allclose(ho3d_procrustes(gt, mirrored), gt, atol=1e-8)


def test_scale_translation_alignment_uses_wrist_to_middle_mcp():
    gt = rng.normal(size=(21, 3))
    pred = 2.5 * gt + 4.0
    assert np.allclose(ho3d_scale_translation(gt, pred), gt, atol=1e-12)


def test_keypoint_errors_hand_computed():
    acc = KeypointErrors(2)
    acc.feed(np.zeros((2, 3)), np.array([[0.01, 0, 0], [0.0, 0.03, 0]]))
    acc.feed(np.zeros((2, 3)), np.array([[0.02, 0, 0], [0.0, 0.0, 0.06]]))
    m = acc.measures(0.0, 0.05, 100)
    assert m["mean"] == pytest.approx(np.mean([0.015, 0.045]))
    # PCK of keypoint 0: 0 below 10 mm, 0.5 on [10, 20), 1 from 20 mm; keypoint 1: 0.5 from 30.
    t = m["thresholds"]
    curve0 = np.where(t >= 0.02, 1.0, np.where(t >= 0.01, 0.5, 0.0))
    curve1 = np.where(t >= 0.03, 0.5, 0.0)
    assert np.allclose(m["curve"], (curve0 + curve1) / 2)
    # AUC is the normalised trapezoid area; with fine steps it tends to the step-function area.
    fine = KeypointErrors(1)
    fine.feed(np.zeros((1, 3)), np.array([[0.025, 0, 0]]))
    assert fine.measures(0.0, 0.05, 100001)["auc"] == pytest.approx(0.5, abs=1e-4)


def test_f_score_against_kdtree_reference():
    gt = rng.normal(size=(300, 3)) * 0.05
    pred = gt[:250] + rng.normal(size=(250, 3)) * 0.004
    for t in (0.005, 0.015):
        d_pred = cKDTree(gt).query(pred)[0]
        d_gt = cKDTree(pred).query(gt)[0]
        r, p = (d_pred < t).mean(), (d_gt < t).mean()
        assert f_score(gt, pred, t) == pytest.approx(2 * r * p / (r + p))
    assert f_score(gt, gt, 0.001) == 1.0
    assert f_score(gt, gt + 1.0, 0.005) == 0.0


def test_hand_evaluator_perfect_and_shifted_predictions():
    joints = rng.normal(size=(21, 3)) * 0.04
    verts = rng.normal(size=(50, 3)) * 0.04
    ev = HandEvaluator(num_vertices=50)
    ev.feed(joints, joints + 0.01, verts, verts + 0.01)
    s = ev.summary()
    assert s["joint_error_mm"] == pytest.approx(10 * np.sqrt(3))
    # the official 1e-8 epsilons in the norms leave ~1e-5 mm
    assert s["joint_pa_error_mm"] < 1e-4 and s["mesh_pa_error_mm"] < 1e-4
    assert s["f5"] == 1.0 and s["f15"] == 1.0
    assert s["mesh_pa_auc"] == pytest.approx(1.0, abs=0.01)


def test_object_measures():
    points = rng.normal(size=(100, 3)) * 0.05
    R = Rotation.random(random_state=3).as_matrix()
    t = np.array([0.0, 0.0, 0.6])
    K = np.array([[600.0, 0, 320], [0, 600, 240], [0, 0, 1]])
    assert add_error(points, R, t + [0.003, 0, 0], R, t) == pytest.approx(0.003)
    assert rep_error(points, R, t, R, t, K) == 0.0
    ev = ObjectEvaluator()
    diameter = 0.1
    ev.feed("box", points, diameter, R, t + [0.005, 0, 0], R, t, K)  # ADD 5 mm < 10 mm
    ev.feed("box", points, diameter, R, t + [0.02, 0, 0], R, t, K)  # 20 mm: miss
    ev.feed("box", points, diameter, np.full((3, 3), np.nan), np.full(3, np.nan), R, t, K)
    s = ev.summary()
    assert s["objects"]["box"]["add_0.1d"] == pytest.approx(100 / 3)
    assert s["average"]["add_0.1d"] == pytest.approx(100 / 3)
    assert s["objects"]["box"]["symmetry"] == "none"
    assert s["objects"]["box"]["pose_0.1d"] == s["objects"]["box"]["add_0.1d"]


def test_adds_matches_a_brute_force_closest_point_reference():
    from scipy.spatial.distance import cdist

    points = rng.normal(size=(300, 3)) * 0.04
    R_gt, R_pred = Rotation.random(2, random_state=5).as_matrix()
    t_gt, t_pred = np.array([0.0, 0.0, 0.6]), np.array([0.01, -0.02, 0.62])
    pred, gt = points @ R_pred.T + t_pred, points @ R_gt.T + t_gt
    reference = cdist(pred, gt).min(axis=1).mean()
    assert adds_error(points, R_pred, t_pred, R_gt, t_gt) == pytest.approx(reference, rel=1e-9)
    assert adds_error(points, R_pred, t_pred, R_gt, t_gt) < add_error(
        points, R_pred, t_pred, R_gt, t_gt
    )


def test_a_symmetric_pose_scores_as_right_under_adds_and_rep_but_not_add():
    from hoposer.geometry.control_points import object_mesh, symmetric_pose

    box = object_mesh("box:0.05x0.08x0.03")
    R = Rotation.random(random_state=4).as_matrix()
    t = np.array([0.0, 0.0, 0.5])
    K = np.array([[600.0, 0, 320], [0, 600, 240], [0, 0, 1]])
    R_flip, t_flip = symmetric_pose(R, t, np.diag([-1.0, -1.0, 1.0]), np.zeros(3))
    ev = ObjectEvaluator()
    ev.feed("box", box.vertices, 0.1, R_flip, t_flip, R, t, K, symmetry="box")
    o = ev.summary()["objects"]["box"]
    assert o["adds_0.1d"] == 100 and o["pose_0.1d"] == 100 and o["rep_5"] == 100
    assert o["add_0.1d"] == 0 and o["adds_mm_median"] < 1e-9
    assert rep_error(box.vertices, R_flip, t_flip, R, t, K) > 5  # asymmetric REP: a miss


def test_mean_pose_baseline_against_scipy_rotation_means():
    hand_model = build_hand_model("standin")
    rng = np.random.default_rng(0)
    theta = rng.normal(0.0, 0.4, (6, 48))
    beta = rng.normal(0.0, 1.0, (6, 10))
    # One articulation in every frame, seen under different global rotations: nothing to miss.
    same = np.concatenate([theta[:, :3], np.broadcast_to(theta[0, 3:], (6, 45))], axis=1)
    assert mean_pose_pa_error(same, beta, hand_model) < 1e-6

    mean = np.concatenate(
        [Rotation.from_rotvec(theta[:, 3 * j : 3 * j + 3]).mean().as_rotvec() for j in range(1, 16)]
    )
    constant = theta.copy()
    constant[:, 3:] = mean
    with torch.no_grad():
        true = hand_model(torch.tensor(theta).float(), torch.tensor(beta).float()).joints.numpy()
        pred = hand_model(torch.tensor(constant).float(), torch.tensor(beta).float()).joints.numpy()
    pairs = zip(true, pred, strict=True)
    expected = np.mean([np.linalg.norm(ho3d_procrustes(t, p) - t, axis=1).mean() for t, p in pairs])
    assert expected > 1e-3  # varied poses: the constant misses them
    assert mean_pose_pa_error(theta, beta, hand_model) == pytest.approx(expected, rel=1e-4)
