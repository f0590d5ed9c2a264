"""The network's input contract: frame → network input → frame, image content, camera, mirror."""

import cv2
import numpy as np
import pytest

from hoposer.errors import HoposerError
from hoposer.geometry.camera import project
from hoposer.geometry.crop import Crop
from hoposer.model.inputs import InputView, mirror_box, network_image, prepare, stack

WIDTH, HEIGHT = 640, 480
K = np.array([[600.0, 0.0, 331.5], [0.0, 600.0, 242.0], [0.0, 0.0, 1.0]])
HAND_BOX = np.array([250.0, 180.0, 350.0, 290.0])
OBJECT_BOX = np.array([330.0, 230.0, 420.0, 330.0])
MIRROR = np.diag([-1.0, 1.0, 1.0])


def _views() -> dict[str, InputView]:
    base = InputView.around([HAND_BOX, OBJECT_BOX], 128, (WIDTH, HEIGHT))
    left = InputView.around([HAND_BOX, OBJECT_BOX], 128, (WIDTH, HEIGHT), mirrored=True)
    rotated = Crop(left.crop.center, left.crop.side * 1.15, 128, np.radians(15.0))
    return {"right": base, "left": left, "left rotated": left.with_crop(rotated)}


def _frame_with_dot(point: np.ndarray) -> np.ndarray:
    """A black frame with a Gaussian dot (σ = 4 px) centred at `point` (sub-pixel)."""
    y, x = np.mgrid[:HEIGHT, :WIDTH]
    dot = np.exp(-((x - point[0]) ** 2 + (y - point[1]) ** 2) / (2 * 4.0**2))
    return np.repeat((dot * 255).round().astype(np.uint8)[..., None], 3, axis=2)


@pytest.mark.parametrize("name", ["right", "left", "left rotated"])
def test_frame_point_to_network_output_and_back(name):
    view = _views()[name]
    net = prepare(np.zeros((HEIGHT, WIDTH, 3), np.uint8), view, HAND_BOX, OBJECT_BOX, K)
    points = np.random.default_rng(0).uniform([200, 150], [450, 350], size=(21, 2))
    assert np.abs(view.to_frame(view.to_network(points)) - points).max() <= 1e-4
    # As the network reports them: normalised to the (float32) boxes it was given.
    for box_name, box in (("hand", net.hand_box), ("object", net.object_box)):
        box = box.astype(np.float64)
        normalised = (view.to_network(points) - box[:2]) / (box[2:] - box[:2])
        assert np.abs(net.to_frame(normalised, box_name) - points).max() <= 1e-4
    proposals = np.broadcast_to(normalised, (4, 4, 21, 2))  # object grid (R, R, 21, 2)
    assert np.abs(net.to_frame(proposals, "object") - points).max() <= 1e-4


@pytest.mark.parametrize("name", ["right", "left", "left rotated"])
def test_network_image_shows_the_frame_where_the_points_map(name):
    view = _views()[name]
    point = np.array([301.3, 247.6])
    net = prepare(_frame_with_dot(point), view, HAND_BOX, OBJECT_BOX, K)
    assert net.image.shape == (3, 128, 128) and net.image.dtype == np.float32
    weights = net.image[0].astype(np.float64)
    y, x = np.mgrid[:128, :128]
    centroid = np.array([(weights * x).sum(), (weights * y).sum()]) / weights.sum()
    assert np.abs(centroid - view.to_network(point)).max() < 0.05


@pytest.mark.parametrize("name", ["right", "left", "left rotated"])
def test_network_camera_projects_the_rolled_mirrored_scene_onto_network_pixels(name):
    view = _views()[name]
    points = np.random.default_rng(1).uniform([-0.1, -0.1, 0.4], [0.1, 0.1, 0.8], size=(30, 3))
    scene = points @ MIRROR if view.mirrored else points
    network = project(scene @ view.crop.roll.T, view.camera(K))
    assert np.abs(network - view.to_network(project(points, K))).max() <= 1e-6


def test_left_view_is_the_right_view_of_the_flipped_frame():
    noise = np.random.default_rng(2).integers(0, 256, (HEIGHT, WIDTH, 3), dtype=np.uint8)
    frame = cv2.GaussianBlur(noise, (0, 0), 3.0)  # OpenCV samples at 1/32 px: keep it smooth
    left = prepare(frame, _views()["left"], HAND_BOX, OBJECT_BOX)
    flipped = [mirror_box(b, WIDTH) for b in (HAND_BOX, OBJECT_BOX)]
    right = prepare(
        np.ascontiguousarray(frame[:, ::-1]),
        InputView.around(flipped, 128, (WIDTH, HEIGHT)),
        *flipped,
    )
    assert np.abs(left.image - right.image).max() <= 2 / 255
    np.testing.assert_array_equal(left.hand_box, right.hand_box)
    np.testing.assert_array_equal(left.object_box, right.object_box)


def test_network_image_is_float_rgb_channels_first_in_unit_range():
    pixels = np.random.default_rng(3).integers(0, 256, (2, 8, 8, 3), dtype=np.uint8)
    image = network_image(pixels)
    assert image.shape == (2, 3, 8, 8) and image.dtype == np.float32
    assert image.flags.c_contiguous
    np.testing.assert_array_equal(image[1, 2], pixels[1, ..., 2] / np.float32(255))
    one = prepare(pixels[0].repeat(10, 0).repeat(10, 1), _views()["right"], HAND_BOX)
    images, hands, objects = stack([one, one])
    assert images.shape == (2, 3, 128, 128) and hands.dtype == objects.dtype == np.float32
    np.testing.assert_array_equal(objects[0], hands[0])  # no object: the hand box stands in


def test_prepare_rejects_a_float_or_grey_frame():
    with pytest.raises(HoposerError, match="uint8 RGB"):
        prepare(np.zeros((HEIGHT, WIDTH, 3), np.float32), _views()["right"], HAND_BOX)
    with pytest.raises(HoposerError, match="uint8 RGB"):
        prepare(np.zeros((HEIGHT, WIDTH), np.uint8), _views()["right"], HAND_BOX)
