"""The estimate drawn on the frame: the hand mesh lands on the hand, the object's axes on it."""

import cv2
import numpy as np
import pytest

from hoposer.engine.backends import open_backend
from hoposer.frames.detect import MediaPipeHandDetector, hand_box_from_landmarks
from hoposer.frames.draw import draw_axes, draw_meshes
from hoposer.frames.sources import Frame
from hoposer.geometry.camera import default_camera_matrix, project
from hoposer.geometry.control_points import object_mesh
from hoposer.model.checkpoint import read_checkpoint_info
from hoposer.model.hand import hand_model_for_weights
from hoposer.render import MeshInstance
from hoposer.stream.annotate import annotate
from hoposer.stream.example import EXAMPLE_OBJECT, render_example
from hoposer.stream.options import DEFAULT_WEIGHTS
from hoposer.stream.pipeline import FrameProcessor, ObjectSpec

K = default_camera_matrix(640, 480)


@pytest.fixture(scope="module")
def processed():
    """The real pipeline (MediaPipe, the shipped weights) on rendered example frames.

    Timestamps are the clip's (30 frames/s), not the wall clock: the smoothing depends on them.
    """
    images, truth = render_example(frames=30)  # the first frames: the open hand of the README clip
    images, truth = images[:4], truth[:4]
    trained_with = read_checkpoint_info(DEFAULT_WEIGHTS).metadata.get("hand_model")
    hand_model = hand_model_for_weights(trained_with)
    backend = open_backend("torch", weights=DEFAULT_WEIGHTS, device="cpu")
    mesh = object_mesh(EXAMPLE_OBJECT)
    spec = ObjectSpec(EXAMPLE_OBJECT, mesh.control_points, mesh.vertices, mesh.faces)
    detector = MediaPipeHandDetector(video=True, side="right")
    try:
        processor = FrameProcessor(backend, hand_model, detector, K, object_spec=spec)
        results = [processor.process(Frame(i, i / 30.0, im)) for i, im in enumerate(images)]
    finally:
        detector.close()
    return results, truth, hand_model, spec


def test_the_mesh_drawn_on_the_video_lands_on_the_hand(processed):
    results, truth, hand_model, spec = processed
    drawn = 0
    for result, true in zip(results, truth, strict=True):
        if result.detection is None:
            continue
        plain = annotate(result, K, spec.control_points)
        # The hand's mesh alone: a found object is drawn where it is, beside the hand too.
        meshed = annotate(result, K, spec.control_points, hand_faces=hand_model.faces)
        changed = np.abs(meshed.astype(int) - plain.astype(int)).sum(axis=2) > 0
        ys, xs = np.nonzero(changed)
        assert len(xs) > 500, "no mesh drawn"
        # The rendered hand's own box (its true joints, expanded as the network's hand box):
        # a wrong projection (intrinsics, mirroring, crop offset) would land next to the hand.
        x1, y1, x2, y2 = hand_box_from_landmarks(project(true.joints, K))
        inside = (xs >= x1) & (xs <= x2) & (ys >= y1) & (ys <= y2)
        assert inside.mean() >= 0.8, f"{inside.mean():.0%} of the mesh's pixels on the hand box"
        centre = np.array([xs.mean(), ys.mean()])
        assert (centre > [x1, y1]).all() and (centre < [x2, y2]).all()
        drawn += 1
    assert drawn >= 3


def test_draw_meshes_blends_shaded_meshes_and_reports_their_pixels(processed):
    _, truth, _, spec = processed
    image = np.full((480, 640, 3), 200, np.uint8)
    frame = truth[0]
    vertices = spec.vertices @ frame.object_R.T + frame.object_t
    mask = draw_meshes(image, [MeshInstance(vertices, spec.faces, np.array([0.2, 0.4, 0.9]))], K)
    projected = np.array([[K[0, 0] * x / z + K[0, 2], K[1, 1] * y / z + K[1, 2]]
                          for x, y, z in vertices])  # fmt: skip
    ys, xs = np.nonzero(mask)
    assert mask.sum() > 200
    assert xs.min() >= projected[:, 0].min() - 1 and xs.max() <= projected[:, 0].max() + 1
    inner = cv2.erode(mask.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0  # inside the outline
    covered = image[inner].astype(int)
    assert (covered[:, 0] > covered[:, 2]).all()  # blue (BGR) blended in, background kept grey
    assert (image[~mask] == 200).sum() / (~mask).sum() / 3 > 0.99
    axes = image.copy()
    draw_axes(axes, frame.object_R, frame.object_t, 0.04, K)
    red = (axes[..., 2] > 200) & (axes[..., 0] < 80) & (axes[..., 1] < 80)  # the x axis
    assert red.sum() > 20
