"""The hand refinement (`hoposer.geometry.refine`) on synthetic evidence with a known answer."""

from dataclasses import replace

import numpy as np
import pytest
import torch

from hoposer.decode import HandPose
from hoposer.frames.detect import HandDetection
from hoposer.geometry.camera import project
from hoposer.geometry.refine import (
    EVIDENCE_LANDMARKS_2D,
    EVIDENCE_LANDMARKS_3D,
    EVIDENCE_NETWORK_2D,
    Evidence,
    Kinematics,
    RefineOptions,
    _forward,
    _Problem,
    _state_of,
    plausible_shape,
    posed_joints,
    ray_rotation,
    refine_hand,
)
from hoposer.model.hand.standin import StandInHand
from hoposer.stream.pipeline import MIRROR, mirror_theta, refinement_inputs

K = np.array([[600.0, 0.0, 320.0], [0.0, 600.0, 240.0], [0.0, 0.0, 1.0]])
WIDTH = 640


@pytest.fixture(scope="module")
def model():
    return StandInHand()


@pytest.fixture(scope="module")
def kin(model):
    # Zero landmark offsets: synthetic landmarks are the model's own joints.
    return replace(Kinematics.from_model(model), landmark_offsets=np.zeros((21, 3)))


def truth(model, seed: int):
    """A plausible posed hand 0.4 m in front of the camera: θ, β, t and its joints."""
    rng = np.random.default_rng(seed)
    theta = model.plausible_pose(rng)
    theta[:3] = rng.normal(0.0, 0.6, 3) + np.array([0.0, 0.0, np.pi / 2])
    beta = rng.normal(0.0, 0.3, 10)
    t = np.array([rng.uniform(-0.05, 0.05), rng.uniform(-0.05, 0.05), 0.4])
    joints = model(torch.tensor(theta[None]), torch.tensor(beta[None]), torch.tensor(t[None]))
    return theta, beta, t, joints.joints[0].numpy()


def perturbed(theta: np.ndarray, t: np.ndarray, seed: int):
    """A network-like starting point: every angle off by ~0.1 rad, the wrist off by 2 cm."""
    rng = np.random.default_rng(seed)
    return theta + rng.normal(0.0, 0.1, 48), t + np.array([0.02, -0.02, 0.02])


def detector_view(joints: np.ndarray, camera_matrix=K) -> np.ndarray:
    """Metric landmarks as a landmark model gives them: centred, in the orientation of a view of
    the hand along the optical axis (its crop), i.e. turned back from the ray through the hand."""
    pixels = project(joints, camera_matrix)
    centre = (pixels.min(axis=0) + pixels.max(axis=0)) / 2
    return (joints - joints.mean(axis=0)) @ ray_rotation(centre, camera_matrix)


def mean_error_mm(a: np.ndarray, b: np.ndarray) -> float:
    return 1000.0 * float(np.linalg.norm(a - b, axis=1).mean())


def test_forward_kinematics_is_the_hand_models(model, kin):
    theta, beta, t, joints = truth(model, 0)
    ours, landmarks = posed_joints(kin, theta, beta, t)
    np.testing.assert_allclose(ours, joints, atol=1e-9)
    np.testing.assert_allclose(landmarks, joints, atol=1e-9)  # zero offsets


def test_hand_written_jacobian_matches_finite_differences(model, kin):
    theta, beta, t, _ = truth(model, 1)
    offsets = np.random.default_rng(1).normal(0.0, 0.005, (21, 3))
    kin = replace(kin, landmark_offsets=offsets)  # the offsets' rotation terms too
    state = _state_of(kin, theta, beta, t)
    evidence = Evidence(K, network_2d=np.zeros((21, 2)))
    weights = {"network_2d": 1.0, "landmarks_2d": None, "landmarks_3d": 0.0, "scale": 1.0}
    problem = _Problem(kin, evidence, weights, state.c, beta, RefineOptions())
    fk = _forward(kin, state)
    points = np.concatenate([fk[0], fk[1]])
    analytic = problem.jacobian(points, np.r_[np.arange(21), np.arange(21)], fk)
    numeric = np.zeros_like(analytic)
    eps = 1e-6
    for i in range(problem.size):
        step = np.zeros(problem.size)
        step[i] = eps
        plus = _forward(kin, problem.step(state, step))
        minus = _forward(kin, problem.step(state, -step))
        numeric[:, :, i] = (
            np.concatenate([plus[0], plus[1]]) - np.concatenate([minus[0], minus[1]])
        ) / (2 * eps)
    np.testing.assert_allclose(analytic, numeric, atol=1e-7)


@pytest.mark.parametrize("seed", [2, 3, 4])
def test_recovers_a_known_hand_from_clean_network_joints(model, kin, seed):
    theta, beta, t, joints = truth(model, seed)
    start_theta, start_t = perturbed(theta, t, seed)
    evidence = Evidence(K, network_2d=project(joints, K))
    fit = refine_hand(kin, start_theta, beta, start_t, evidence)
    assert fit.evidence == (EVIDENCE_NETWORK_2D,)
    assert mean_error_mm(fit.joints, joints) <= 5.0
    assert np.linalg.norm(fit.translation - t) <= 0.005
    assert fit.reprojection_px < 0.5


@pytest.mark.parametrize("seed", [5, 6, 7])
def test_recovers_a_known_hand_from_clean_landmarks_with_a_wrong_network(model, kin, seed):
    theta, beta, t, joints = truth(model, seed)
    start_theta, start_t = perturbed(theta, t, seed)
    start_theta[:3] += 0.8  # the network's global rotation badly off
    network_2d = project(joints, K) + np.random.default_rng(seed).normal(0.0, 15.0, (21, 2))
    evidence = Evidence(
        K,
        network_2d=network_2d,
        landmarks_2d=project(joints, K),
        landmarks_3d=detector_view(joints),
    )
    fit = refine_hand(kin, start_theta, beta, start_t, evidence)
    assert fit.evidence == (EVIDENCE_NETWORK_2D, EVIDENCE_LANDMARKS_2D, EVIDENCE_LANDMARKS_3D)
    assert mean_error_mm(fit.joints, joints) <= 5.0


def test_noisy_evidence_gives_a_close_hand(model, kin):
    rng = np.random.default_rng(8)
    errors = []
    for seed in range(8, 12):
        theta, beta, t, joints = truth(model, seed)
        start_theta, start_t = perturbed(theta, t, seed)
        evidence = Evidence(
            K,
            network_2d=project(joints, K) + rng.normal(0.0, 4.0, (21, 2)),
            landmarks_2d=project(joints, K) + rng.normal(0.0, 2.0, (21, 2)),
            landmarks_3d=detector_view(joints) + rng.normal(0.0, 0.004, (21, 3)),
        )
        fit = refine_hand(kin, start_theta, beta, start_t, evidence)
        # Depth is the least determined direction; compare the root-relative shape too.
        errors.append(mean_error_mm(fit.joints - fit.joints[0], joints - joints[0]))
    assert np.mean(errors) <= 8.0


def test_joint_limits_hold_even_when_the_evidence_breaks_them(model, kin):
    theta, beta, t, _ = truth(model, 12)
    broken = kin.theta_to_coords(theta)
    broken[2:13:3, 0] = -0.6  # every PIP bent backwards
    broken[1:13:3, 1] = 0.7  # every MCP splayed far past its range
    broken[2, 2] = 0.5  # a PIP twisted
    bad_theta = kin.coords_to_theta(broken)
    bad = model(torch.tensor(bad_theta[None]), torch.tensor(beta[None]), torch.tensor(t[None]))
    joints = bad.joints[0].numpy()
    assert kin.limit_violation(bad_theta).max() > 0.5
    evidence = Evidence(K, network_2d=project(joints, K), landmarks_2d=project(joints, K),
                        landmarks_3d=detector_view(joints))  # fmt: skip
    fit = refine_hand(kin, bad_theta, beta, t, evidence)
    assert kin.limit_violation(fit.theta).max() <= 1e-9


def test_deterministic(model, kin):
    theta, beta, t, joints = truth(model, 13)
    start_theta, start_t = perturbed(theta, t, 13)
    evidence = Evidence(K, network_2d=project(joints, K) + 3.0, landmarks_2d=project(joints, K),
                        landmarks_3d=joints)  # fmt: skip
    a = refine_hand(kin, start_theta, beta, start_t, evidence)
    b = refine_hand(kin, start_theta, beta, start_t, evidence)
    for name in ("theta", "beta", "translation", "joints"):
        assert np.array_equal(getattr(a, name), getattr(b, name))


def test_modes_select_the_evidence(kin):
    full = Evidence(K, network_2d=np.ones((21, 2)), landmarks_2d=np.ones((21, 2)),
                    landmarks_3d=np.ones((21, 3)))  # fmt: skip
    assert full.restricted("auto").sources() == (
        EVIDENCE_NETWORK_2D, EVIDENCE_LANDMARKS_2D, EVIDENCE_LANDMARKS_3D,
    )  # fmt: skip
    assert full.restricted("network").sources() == (EVIDENCE_NETWORK_2D,)
    assert full.restricted("off").sources() == ()
    assert refine_hand(kin, np.zeros(48), np.zeros(10), np.zeros(3), full.restricted("off")) is None
    with pytest.raises(ValueError, match="refine mode"):
        full.restricted("everything")


def test_the_ray_rotation_turns_the_optical_axis_onto_the_ray():
    pixel = np.array([600.0, 50.0])
    R = ray_rotation(pixel, K)
    np.testing.assert_allclose(R @ R.T, np.eye(3), atol=1e-12)
    ray = R @ np.array([0.0, 0.0, 1.0])
    np.testing.assert_allclose(project(ray, K), pixel, atol=1e-9)


def test_an_implausible_network_shape_is_pulled_to_a_plausible_one(kin):
    shrunk = np.array([-5.0, -2.0, 0, 0, 0, 0, 0, 0, 0, 0])
    target = plausible_shape(kin, shrunk)
    assert 0 < np.linalg.norm(target) < np.linalg.norm(shrunk)
    small = np.full(10, 0.1)
    np.testing.assert_array_equal(plausible_shape(kin, small), small)


def test_a_left_hand_is_fitted_in_the_mirror_image(model, kin):
    # A left hand in the frame is a right hand in the mirror image (x → W − x, X → −X).
    theta, beta, t, joints = truth(model, 14)
    K_mirror = K.copy()
    K_mirror[0, 2] = WIDTH - K[0, 2]
    left_joints = joints @ MIRROR  # camera frame of the real (unmirrored) image
    left_pixels = project(left_joints, K)
    start_theta, start_t = perturbed(theta, t, 14)
    network = model(torch.tensor(start_theta[None]), torch.tensor(beta[None]))
    start_joints = network.joints[0].numpy() + start_t
    frame_hand = HandPose(  # the network's estimate as the pipeline holds it: in the frame
        joints_2d=project(start_joints @ MIRROR, K),
        joints=start_joints @ MIRROR,
        vertices=network.vertices[0].numpy() @ MIRROR,
        theta=mirror_theta(start_theta),
        beta=beta,
        translation=MIRROR @ start_t,
        reprojection_px=0.0,
    )
    detection = HandDetection(np.zeros(4), left_pixels, "left", 1.0,
                              world_landmarks=detector_view(left_joints))  # fmt: skip
    hand, evidence = refinement_inputs(frame_hand, detection, K, WIDTH, True, "auto")
    np.testing.assert_allclose(evidence.camera_matrix, K_mirror)
    np.testing.assert_allclose(hand.theta, start_theta, atol=1e-12)
    fit = refine_hand(kin, hand.theta, hand.beta, hand.translation, evidence)
    assert mean_error_mm(fit.joints, joints) <= 5.0
    # Mirrored back, the fit lands on the left hand's pixels.
    assert np.abs(project(fit.joints @ MIRROR, K) - left_pixels).max() < 2.0


def test_the_previous_frames_fit_steadies_the_articulation(model, kin):
    from hoposer.geometry.consistency import pose_change

    theta, beta, t, joints = truth(model, 15)
    start_theta, start_t = perturbed(theta, t, 15)
    rng = np.random.default_rng(15)
    draws = [
        Evidence(K, network_2d=project(joints, K) + rng.normal(0.0, 6.0, (21, 2))) for _ in range(2)
    ]
    first = refine_hand(kin, start_theta, beta, start_t, draws[0])
    alone = refine_hand(kin, start_theta, beta, start_t, draws[1])
    steadied = refine_hand(kin, start_theta, beta, start_t, draws[1], previous=first)
    assert pose_change(steadied.theta, first.theta) < 0.5 * pose_change(alone.theta, first.theta)
    assert kin.limit_violation(steadied.theta).max() <= 1e-9
