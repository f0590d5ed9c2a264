"""Object boxes: tracking by pose, and a user-supplied YOLO-format ONNX detector."""

import numpy as np
import pytest
import torch

from hoposer.errors import HoposerError
from hoposer.frames.detect import HandDetection, OnnxObjectDetector, PoseTrackedObjectBoxes
from hoposer.geometry.camera import project
from hoposer.geometry.control_points import object_mesh

K = np.array([[500.0, 0, 320], [0, 500.0, 240], [0, 0, 1]])
HAND = HandDetection(np.array([250.0, 150, 350, 300]), np.zeros((21, 2)) + 300, "right", 0.9)


def test_object_box_follows_the_last_good_pose_and_falls_back_to_the_hand():
    cube = object_mesh("box:0.05x0.05x0.05")
    tracker = PoseTrackedObjectBoxes(cube.control_points, margin=1.0, max_age=2)
    fallback = tracker.box(HAND, K, (640, 480))
    t = np.array([0.02, 0.0, 0.5])
    tracker.update(True, np.eye(3), t)
    box = tracker.box(HAND, K, (640, 480))
    corners = project(cube.control_points + t, K)
    np.testing.assert_allclose(box, np.r_[corners.min(0), corners.max(0)])
    for _ in range(3):  # PnP fails three frames running: the pose is too old
        tracker.update(False)
    np.testing.assert_allclose(tracker.box(HAND, K, (640, 480)), fallback)
    tracker.update(True, np.eye(3), np.array([2.0, 0.0, 0.5]))  # far from the hand: drift
    np.testing.assert_allclose(tracker.box(HAND, K, (640, 480)), fallback)


class ConstantYoloV8(torch.nn.Module):
    """A YOLOv8-format detector that always reports the same boxes (input pixels).

    Output (1, 4 + 2 classes, 16 anchors): anchor 0 is class 0, anchor 1 class 1, the rest
    score nothing.
    """

    def forward(self, images):
        out = torch.zeros(1, 6, 16)
        out[0, :4, 0] = torch.tensor([150.0, 110.0, 40.0, 40.0])  # cx, cy, w, h
        out[0, :4, 1] = torch.tensor([30.0, 30.0, 20.0, 20.0])  # far from the hand
        out[0, :4, 2:] = 10.0
        out[0, 4, 0], out[0, 5, 0] = 0.9, 0.1
        out[0, 4, 1], out[0, 5, 1] = 0.05, 0.95
        return out + images.mean() * 0


@pytest.fixture(scope="module")
def yolo(tmp_path_factory):
    path = tmp_path_factory.mktemp("yolo") / "yolo.onnx"
    torch.onnx.export(ConstantYoloV8(), torch.zeros(1, 3, 320, 320), str(path),
                      input_names=["images"], dynamo=False, opset_version=17)  # fmt: skip
    return path


def test_onnx_detector_boxes_are_mapped_back_from_the_letterbox(yolo):
    detector = OnnxObjectDetector(yolo)
    frame = np.zeros((480, 640, 3), np.uint8)
    boxes, scores = detector.detections(frame)
    # 640×480 letterboxed into 320×320: scale 0.5, so input pixels double.
    np.testing.assert_allclose(boxes[0], [260, 180, 340, 260])
    assert scores[0] == pytest.approx(0.9)
    # Box 1 scores higher but lies far from the hand: the box near the hand is chosen.
    np.testing.assert_allclose(detector.box(frame, HAND), [260, 180, 340, 260])
    by_class = OnnxObjectDetector(yolo, class_id=1)
    np.testing.assert_allclose(by_class.detections(frame)[0][0], [40, 40, 80, 80])
    assert by_class.box(frame, HAND) is None


def test_missing_or_corrupt_detector_files_are_clear_errors(tmp_path):
    with pytest.raises(HoposerError, match="not found"):
        OnnxObjectDetector(tmp_path / "none.onnx")
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not onnx")
    with pytest.raises(HoposerError, match="not a loadable ONNX model"):
        OnnxObjectDetector(bad)
