import numpy as np

from hoposer.geometry.crop import Crop, crop_around, expand_box


def project(points, K):
    uvw = points @ K.T
    return uvw[:, :2] / uvw[:, 2:]


def test_rotated_crop_equals_camera_roll_with_crop_intrinsics():
    rng = np.random.default_rng(0)
    K = np.array([[610.0, 0, 330.0], [0, 610.0, 245.0], [0, 0, 1]])
    points = rng.uniform([-0.1, -0.1, 0.4], [0.1, 0.1, 0.8], size=(50, 3))
    crop = Crop(center=np.array([300.0, 260.0]), side=220.0, size=128, rotation=0.7)
    in_crop = crop.apply(project(points, K))
    rolled = points @ crop.roll.T
    assert np.allclose(project(rolled, crop.camera(K)), in_crop, atol=1e-9)
    assert np.allclose(crop.invert(in_crop), project(points, K), atol=1e-9)


def test_unrotated_crop_maps_the_square_onto_the_output():
    crop = Crop(center=np.array([50.0, 40.0]), side=20.0, size=100)
    corners = np.array([[40.0, 30.0], [60.0, 50.0]])
    assert np.allclose(crop.apply(corners), [[0, 0], [100, 100]])
    image = np.zeros((80, 100, 3), np.uint8)
    image[30:50, 40:60] = 255
    assert crop.warp(image)[5:-5, 5:-5].min() == 255  # the border blends with the outside


def test_crop_around_boxes_is_square_and_clipped():
    hand = np.array([10.0, 10.0, 30.0, 50.0])
    obj = np.array([20.0, 40.0, 60.0, 60.0])
    crop = crop_around([hand, obj], size=64, expand=1.0)
    assert crop.side == 50.0 and np.allclose(crop.center, [35.0, 35.0])
    clipped = crop_around([np.array([-10.0, 0.0, 10.0, 10.0])], size=64, image_size=(100, 100))
    # expanded to [-15, -2.5, 15, 12.5], clipped to [0, 0, 15, 12.5]
    assert np.allclose(clipped.center, [7.5, 6.25]) and clipped.side == 15.0
    assert np.allclose(expand_box(hand, 2.0), [0.0, -10.0, 40.0, 70.0])
