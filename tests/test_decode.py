import numpy as np
import pytest
import torch

from hoposer.decode import decode
from hoposer.geometry.camera import project
from hoposer.geometry.control_points import object_mesh
from hoposer.model import build_model, get_config
from hoposer.model.hand import StandInHand
from hoposer.model.network import RawOutputs

K = np.array([[500.0, 0, 128], [0, 500.0, 128], [0, 0, 1]])


def box_of(points: np.ndarray, margin: float = 1.1) -> np.ndarray:
    lo, hi = points.min(0), points.max(0)
    c, half = (lo + hi) / 2, (hi - lo) * margin / 2
    return np.r_[c - half, c + half]


def ground_truth_outputs(hand, rng, grid: int = 8):
    """Network outputs that encode an exactly known hand and object pose."""
    theta = hand.plausible_pose(rng)
    theta[:3] = rng.normal(0, 0.5, 3)
    beta = rng.normal(0, 0.5, 10)
    wrist = np.array([0.02, -0.01, 0.45])
    rel = hand(torch.tensor(theta[None]), torch.tensor(beta[None])).joints[0].numpy()
    joints_2d = project(rel + wrist, K)
    hand_box = box_of(joints_2d)
    cube = object_mesh("box:0.05x0.08x0.04")
    angle = rng.normal(0, 0.6, 3)
    R = torch.linalg.matrix_exp(
        torch.tensor([[0, -angle[2], angle[1]], [angle[2], 0, -angle[0]], [-angle[1], angle[0], 0]])
    ).numpy()
    t = np.array([0.0, 0.03, 0.5])
    points_2d = project(cube.control_points @ R.T + t, K)
    object_box = box_of(points_2d, 1.0)
    normalise = lambda p, b: (p - b[:2]) / (b[2:] - b[:2])  # noqa: E731
    # Every cell proposes the true points; confidences random so top-k picks vary.
    cells = np.broadcast_to(normalise(points_2d, object_box), (grid, grid, 21, 2)).copy()
    confidence = rng.uniform(0.1, 1.0, (grid, grid, 21))
    raw = RawOutputs(
        torch.tensor(normalise(joints_2d, hand_box)[None]),
        torch.tensor(theta[None]),
        torch.tensor(beta[None]),
        torch.tensor(cells[None]),
        torch.tensor(confidence[None]),
    )
    truth = {"wrist": wrist, "joints": rel + wrist, "R": R, "t": t, "theta": theta}
    return raw, hand_box[None], object_box[None], cube, truth


def test_decode_recovers_an_exactly_encoded_hand_and_object():
    hand = StandInHand()
    raw, hand_box, object_box, cube, truth = ground_truth_outputs(hand, np.random.default_rng(0))
    (pose,) = decode(raw, K, hand_box, object_box, hand, cube.control_points)
    np.testing.assert_allclose(pose.hand.translation, truth["wrist"], atol=1e-5)
    np.testing.assert_allclose(pose.hand.joints, truth["joints"], atol=1e-5)
    assert pose.hand.vertices.shape == (hand.num_vertices, 3)
    assert pose.hand.reprojection_px < 1e-2
    assert pose.object.success and pose.object.reason == ""
    np.testing.assert_allclose(pose.object.R, truth["R"], atol=1e-5)
    np.testing.assert_allclose(pose.object.t, truth["t"], atol=1e-5)
    assert pose.object.inliers == 21 * 10


def test_decode_accepts_numpy_outputs_like_onnx_runtime_gives():
    hand = StandInHand()
    raw, hand_box, object_box, cube, _ = ground_truth_outputs(hand, np.random.default_rng(1))
    from_torch = decode(raw, K, hand_box, object_box, hand, cube.control_points)[0]
    as_numpy = [x.numpy().astype(np.float32) for x in raw]
    from_numpy = decode(as_numpy, K, hand_box, object_box, hand, cube.control_points)[0]
    np.testing.assert_allclose(from_numpy.hand.joints, from_torch.hand.joints, atol=1e-4)
    np.testing.assert_allclose(from_numpy.object.t, from_torch.object.t, atol=1e-4)


def test_decode_reports_failure_explicitly_for_garbage():
    hand = StandInHand()
    raw, hand_box, object_box, cube, _ = ground_truth_outputs(hand, np.random.default_rng(2))
    collapsed = RawOutputs(
        torch.full_like(raw.joints_2d, 0.5),
        raw.theta,
        raw.beta,
        torch.full_like(raw.object_points, 0.5),  # every proposal at one point
        raw.object_confidence,
    )
    (pose,) = decode(collapsed, K, hand_box, object_box, hand, cube.control_points)
    assert not pose.object.success and pose.object.reason
    assert np.isnan(pose.object.R).all()


def test_a_real_network_forward_decodes_for_every_item():
    torch.manual_seed(0)
    model = build_model(get_config("lite")).eval()
    size = model.config.input_size
    images = torch.rand(2, 3, size, size)
    hand_boxes = torch.tensor([[40.0, 50, 150, 170], [60, 60, 200, 210]])
    object_boxes = torch.tensor([[90.0, 80, 200, 190], [20, 30, 120, 140]])
    with torch.no_grad():
        raw = model(images, hand_boxes, object_boxes)
    cube = object_mesh("cylinder:0.03x0.1")
    poses = decode(raw, K, hand_boxes, object_boxes, StandInHand(), cube.control_points)
    assert len(poses) == 2
    for pose in poses:
        assert pose.hand.joints.shape == (21, 3) and pose.hand.theta.shape == (48,)
        assert pose.object.success in (True, False)
        assert pose.object.success == np.isfinite(pose.object.t).all()


@pytest.mark.parametrize("K_batch", [False, True])
def test_per_item_intrinsics(K_batch):
    hand = StandInHand()
    raw, hand_box, object_box, cube, truth = ground_truth_outputs(hand, np.random.default_rng(3))
    camera = np.stack([K]) if K_batch else K
    (pose,) = decode(raw, camera, hand_box, object_box, hand, None)
    assert pose.object is None
    np.testing.assert_allclose(pose.hand.translation, truth["wrist"], atol=1e-5)


@pytest.mark.parametrize("spec", ["box:0.05x0.08x0.04", "box:0.06x0.06x0.06", "cylinder:0.03x0.1"])
def test_pnp_on_canonical_target_votes_recovers_a_symmetric_object_up_to_its_symmetry(spec):
    from hoposer.geometry.control_points import canonical_pose
    from hoposer.train.metrics import add_error, adds_error

    hand = StandInHand()
    raw, hand_box, _, _, _ = ground_truth_outputs(hand, np.random.default_rng(3))
    mesh = object_mesh(spec)
    rng = np.random.default_rng(4)
    for _ in range(5):
        angle = rng.normal(0, 1.5, 3)
        R = cv2_rodrigues(angle)
        t = np.array([0.01, 0.02, 0.45])
        extent = mesh.control_points[7] - mesh.control_points[0]
        R_c, t_c = canonical_pose(R, t, mesh.symmetry, mesh.control_points[20], extent)
        points_2d = project(mesh.control_points @ R_c.T + t_c, K)
        object_box = box_of(points_2d, 1.0)
        cells = np.broadcast_to((points_2d - object_box[:2]) / (object_box[2:] - object_box[:2]),
                                (8, 8, 21, 2)).copy()  # fmt: skip
        votes = raw._replace(object_points=torch.tensor(cells[None]),
                             object_confidence=torch.ones(1, 8, 8, 21))  # fmt: skip
        (pose,) = decode(votes, K, hand_box, object_box[None], hand, mesh.control_points)
        assert pose.object.success
        diameter = np.linalg.norm(np.ptp(mesh.vertices, axis=0))
        surface = mesh.vertices if mesh.symmetry == "box" else _dense_cylinder_rims(0.03, 0.1)
        assert adds_error(surface, pose.object.R, pose.object.t, R, t) < 1e-3 * diameter
        # the truth itself is one of the family; PnP found the canonical member
        assert add_error(mesh.vertices, pose.object.R, pose.object.t, R_c, t_c) < 1e-6 * diameter


def _dense_cylinder_rims(radius: float, height: float, steps: int = 3600) -> np.ndarray:
    """Points on the rims of the ideal cylinder (the mesh's 32-gon is not turn-invariant)."""
    a = 2 * np.pi * np.arange(steps) / steps
    ring = np.stack([radius * np.cos(a), np.zeros(steps), radius * np.sin(a)], 1)
    return np.concatenate([ring + [0, -height / 2, 0], ring + [0, height / 2, 0]])


def cv2_rodrigues(axis_angle) -> np.ndarray:
    import cv2

    return cv2.Rodrigues(np.asarray(axis_angle, np.float64))[0]


def test_the_object_gate_keeps_a_true_pose_and_rejects_collapsed_votes():
    from hoposer.geometry.pnp import ObjectPoseGate

    hand = StandInHand()
    raw, hand_box, object_box, cube, truth = ground_truth_outputs(hand, np.random.default_rng(4))
    gate = ObjectPoseGate()
    (pose,) = decode(raw, K, hand_box, object_box, hand, cube.control_points, object_gate=gate)
    assert pose.object.success
    np.testing.assert_allclose(pose.object.t, truth["t"], atol=1e-5)
    points = raw.object_points
    shrunk = 0.5 + 0.05 * (points - points.mean(dim=-2, keepdim=True))  # a far-away copy
    collapsed = RawOutputs(raw.joints_2d, raw.theta, raw.beta, shrunk, raw.object_confidence)
    (ungated,) = decode(collapsed, K, hand_box, object_box, hand, cube.control_points)
    (gated,) = decode(
        collapsed, K, hand_box, object_box, hand, cube.control_points, object_gate=gate
    )
    assert ungated.object.success and ungated.object.t[2] > 3
    assert not gated.object.success and "collapse" in gated.object.reason
