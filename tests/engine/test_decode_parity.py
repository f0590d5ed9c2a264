"""ONNX Runtime and torch give the same decoded poses on a real frame with the shipped weights."""

import cv2
import numpy as np

from hoposer.decode import decode
from hoposer.engine.backends import open_backend
from hoposer.geometry.camera import default_camera_matrix, project
from hoposer.geometry.control_points import object_mesh
from hoposer.model.hand import StandInHand
from hoposer.model.inputs import InputView, prepare
from hoposer.stream.example import EXAMPLE_OBJECT, render_example
from hoposer.stream.options import DEFAULT_WEIGHTS


def test_decoded_poses_agree_between_backends(tmp_path, monkeypatch):
    monkeypatch.setenv("HOPOSER_CACHE_DIR", str(tmp_path))
    images, truth = render_example(frames=3)
    K = default_camera_matrix(640, 480)
    box = object_mesh(EXAMPLE_OBJECT)
    joints_2d = project(truth[1].joints, K)
    hand_box = np.r_[joints_2d.min(0), joints_2d.max(0)]
    points = project(box.control_points @ truth[1].object_R.T + truth[1].object_t, K)
    object_box = np.r_[points.min(0), points.max(0)]
    torch_backend = open_backend("torch", weights=DEFAULT_WEIGHTS, device="cpu")
    ort_backend = open_backend("onnxruntime", weights=DEFAULT_WEIGHTS)
    size = torch_backend.input_size
    view = InputView.around([hand_box, object_box], size, (640, 480))
    net = prepare(cv2.cvtColor(images[1], cv2.COLOR_BGR2RGB), view, hand_box, object_box, K)
    batch = net.image[None]
    boxes = [net.hand_box[None], net.object_box[None]]
    hand = StandInHand()
    poses = [
        decode(b.run(batch, *boxes), net.camera_matrix, *boxes, hand, box.control_points)[0]
        for b in (torch_backend, ort_backend)
    ]
    a, b = poses
    np.testing.assert_allclose(a.hand.theta, b.hand.theta, atol=1e-5)  # radians
    np.testing.assert_allclose(a.hand.joints, b.hand.joints, atol=1e-5)  # metres
    np.testing.assert_allclose(a.hand.vertices, b.hand.vertices, atol=1e-5)
    # The shipped weights' object head is untrained (README): its proposals scatter and PnP on
    # them is ill-posed, so 1e-6 differences move RANSAC. Compare object poses only when the
    # solve is well-conditioned; the raw proposals' parity is in test_backends.
    well_posed = all(p.object.success and p.object.reprojection_px < 3 and p.object.inliers >= 50
                     for p in poses)  # fmt: skip
    if well_posed:
        np.testing.assert_allclose(a.object.t, b.object.t, atol=1e-5)
        np.testing.assert_allclose(a.object.R, b.object.R, atol=1e-5)
