import numpy as np
import pytest

from hoposer.calib.boards import parse_board
from hoposer.calib.camera_info import CameraInfo
from hoposer.calib.detect import BoardDetector
from hoposer.calib.extrinsics import (
    camera_to_base_from_marker,
    hand_eye,
    hand_eye_extrinsics,
    marker_extrinsics,
    read_robot_poses,
    robust_mean,
    rotation_angle_deg,
)
from hoposer.calib.synthetic import default_camera, hand_eye_scene, marker_scene, rotation
from hoposer.errors import HoposerError

CAM = default_camera()
ARUCO = parse_board("aruco:7", None, 0.1, "4X4_50")
CHARUCO = parse_board("charuco:5x7", 0.04, 0.03, "4X4_50")
INFO = CameraInfo(CAM.size[0], CAM.size[1], "synthetic", CAM.K, CAM.D)


def _errors(T_est, T_true):
    dt_mm = np.linalg.norm(T_est[:3, 3] - T_true[:3, 3]) * 1000
    return dt_mm, rotation_angle_deg(T_est[:3, :3], T_true[:3, :3])


@pytest.mark.parametrize("spec", [ARUCO, CHARUCO], ids=["aruco", "charuco"])
def test_marker_extrinsics_within_2mm_02deg(spec):
    scene = marker_scene(spec, CAM, n_frames=6, seed=3)
    det = BoardDetector(spec)
    views = [(d.image_points, d.object_points) for d in map(det.detect, scene.images) if d]
    assert len(views) == 6
    tf = camera_to_base_from_marker(
        views, scene.T_base_board, CAM.K, CAM.D, square_marker=spec.kind == "aruco"
    )
    dt, dr = _errors(tf.as_matrix(), scene.T_base_cam)
    assert dt < 2.0 and dr < 0.2, (dt, dr)
    assert tf.parent == "base" and tf.child == "camera_optical"
    assert tf.quality["reprojection_rms_px"] < 0.5


def test_marker_outlier_frames_are_rejected():
    scene = marker_scene(ARUCO, CAM, n_frames=6, seed=3)
    det = BoardDetector(ARUCO)
    views = [(d.image_points, d.object_points) for d in map(det.detect, scene.images)]
    shifted = views[0][0] + np.array([20.0, -12.0], np.float32)  # a bumped frame
    tf = camera_to_base_from_marker(
        [*views, (shifted, views[0][1])], scene.T_base_board, CAM.K, CAM.D, square_marker=True
    )
    assert tf.quality["frames_rejected"] == 1
    dt, dr = _errors(tf.as_matrix(), scene.T_base_cam)
    assert dt < 2.0 and dr < 0.2


def test_robust_mean_of_rotations():
    rng = np.random.default_rng(0)
    Ts = []
    for _ in range(20):
        T = np.eye(4)
        T[:3, :3] = rotation(*(np.array([10.0, 20, 30]) + rng.normal(0, 0.05, 3)))
        T[:3, 3] = [0.1, 0.2, 0.3] + rng.normal(0, 1e-4, 3)
        Ts.append(T)
    Ts[5] = Ts[5].copy()
    Ts[5][:3, 3] += 0.05
    m = robust_mean(Ts)
    assert not m.inliers[5] and m.inliers.sum() == 19
    assert rotation_angle_deg(m.T[:3, :3], rotation(10, 20, 30)) < 0.05


@pytest.mark.parametrize("setup", ["eye-in-hand", "eye-to-hand"])
def test_hand_eye_recovers_camera(setup):
    scene = hand_eye_scene(CHARUCO, CAM, n_views=10, setup=setup, seed=2)
    det = BoardDetector(CHARUCO)
    from hoposer.calib.extrinsics import board_pose

    T_cb, T_bg = [], []
    for image, T in zip(scene.images, scene.T_base_gripper, strict=True):
        d = det.detect(image)
        assert d is not None
        T_cb.append(board_pose(d.image_points, d.object_points, CAM.K, CAM.D)[0])
        T_bg.append(T)
    X, _, quality = hand_eye(T_bg, T_cb, setup=setup)
    dt, dr = _errors(X, scene.X)
    assert dt < 2.0 and dr < 0.2, (dt, dr)
    assert quality["consistency_translation_mm"] < 2.0


def test_hand_eye_from_images_skips_views_without_the_board():
    scene = hand_eye_scene(CHARUCO, CAM, n_views=10, setup="eye-to-hand", seed=2)
    blank = np.full_like(scene.images[0], 128)
    views = [(f"view{i}", image, T) for i, (image, T) in
             enumerate(zip(scene.images, scene.T_base_gripper, strict=True))]  # fmt: skip
    views.insert(3, ("blank", blank, scene.T_base_gripper[0]))
    skipped = []
    tf = hand_eye_extrinsics(views, CHARUCO, INFO, setup="eye-to-hand", skipped=skipped.append)
    assert skipped == ["blank"]
    assert tf.parent == "base" and tf.child == "camera_optical" and tf.quality["views"] == 10
    dt, dr = _errors(tf.as_matrix(), scene.X)
    assert dt < 2.0 and dr < 0.2, (dt, dr)


def test_extrinsics_from_images_refuse_checkerboards_other_sizes_and_no_board():
    checker = parse_board("checker:9x6", 0.024, None, None)
    with pytest.raises(HoposerError, match="orientation is ambiguous"):
        marker_extrinsics([], checker, INFO, np.eye(4))
    with pytest.raises(HoposerError, match="orientation is ambiguous"):
        hand_eye_extrinsics([], checker, INFO)
    small = np.zeros((240, 320), np.uint8)
    with pytest.raises(HoposerError, match="a.png is 320x240 but cam.yaml is for 640x480"):
        marker_extrinsics([("a.png", small)], ARUCO, INFO, np.eye(4), info_source="cam.yaml")
    blank = np.full((480, 640), 128, np.uint8)
    with pytest.raises(HoposerError, match="not found in any of 2 images"):
        marker_extrinsics([("a", blank), ("b", blank)], ARUCO, INFO, np.eye(4))


def test_hand_eye_refuses_bad_input(tmp_path):
    with pytest.raises(HoposerError, match="at least 3 views"):
        hand_eye([np.eye(4)] * 2, [np.eye(4)] * 2)
    with pytest.raises(HoposerError, match="barely rotate"):
        hand_eye([np.eye(4)] * 4, [np.eye(4)] * 4)
    with pytest.raises(HoposerError, match="unknown hand-eye method"):
        hand_eye([np.eye(4)] * 4, [np.eye(4)] * 4, method="magic")
    p = tmp_path / "poses.csv"
    p.write_text("img,x,y\n")
    with pytest.raises(HoposerError, match="header"):
        read_robot_poses(p)
    p.write_text("image,x,y,z,qx,qy,qz,qw\na.png,1,2,3,0,0,0\n")
    with pytest.raises(HoposerError, match="row 2: expected 8 columns"):
        read_robot_poses(p)
