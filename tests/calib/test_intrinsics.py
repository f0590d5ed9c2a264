import numpy as np
import pytest

from hoposer.calib.boards import parse_board
from hoposer.calib.camera_info import read_camera_info, write_camera_info
from hoposer.calib.detect import BoardDetector, detect_in_files
from hoposer.calib.intrinsics import (
    CalibrationOptions,
    Coverage,
    ViewSelector,
    calibrate,
    view_features,
)
from hoposer.calib.report import render_report
from hoposer.calib.synthetic import (
    default_camera,
    project,
    render_view,
    render_views,
    rotation,
    sample_poses,
)
from hoposer.errors import HoposerError

CAM = default_camera()
CHECKER = parse_board("checker:9x6", 0.024)
CHARUCO = parse_board("charuco:9x7", 0.03, 0.022, "4X4_50")


def _views(spec, n, seed, **kw):
    poses = sample_poses(spec, CAM, n, seed=seed, **kw)
    images = render_views(spec, CAM, poses, seed=seed)
    det = BoardDetector(spec)
    return poses, images, [det.detect(im, f"v{i}") for i, im in enumerate(images)]


@pytest.fixture(scope="module")
def checker_views():
    return _views(CHECKER, 16, seed=0)


@pytest.fixture(scope="module")
def charuco_views():
    return _views(CHARUCO, 18, seed=1, fill=(0.45, 0.8))


def _relative_errors(K):
    k0 = CAM.K
    est = np.array([K[0, 0], K[1, 1], K[0, 2], K[1, 2]])
    return np.abs(est / np.array([k0[0, 0], k0[1, 1], k0[0, 2], k0[1, 2]]) - 1)


def _max_distortion_px(info):
    """Largest difference between true and estimated distorted pixels over the image."""
    import cv2

    xs, ys = np.meshgrid(np.linspace(0, 639, 17), np.linspace(0, 479, 13))
    pts = np.stack([xs, ys], -1).reshape(-1, 1, 2)
    rays = cv2.undistortPointsIter(
        pts, CAM.K, CAM.D, None, None, (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 50, 1e-12)
    ).reshape(-1, 2)
    obj = np.concatenate([rays, np.ones((len(rays), 1))], 1)
    uv, _ = cv2.projectPoints(obj, np.zeros(3), np.zeros(3), info.K, info.D)
    return np.abs(uv.reshape(-1, 2) - pts.reshape(-1, 2)).max()


def test_corner_detection_is_subpixel_accurate(checker_views, charuco_views):
    for spec, (poses, _, dets) in ((CHECKER, checker_views), (CHARUCO, charuco_views)):
        assert all(d is not None for d in dets), spec
        errs = [
            np.linalg.norm(project(CAM, R, t, d.object_points) - d.image_points, axis=1).mean()
            for d, (R, t) in zip(dets, poses, strict=True)
        ]
        assert max(errs) < 0.2, (spec, errs)


@pytest.mark.parametrize("which", ["checker", "charuco"])
def test_calibration_recovers_intrinsics(which, checker_views, charuco_views):
    _, _, dets = checker_views if which == "checker" else charuco_views
    result = calibrate(dets, CAM.size)
    assert result.kept.all()
    assert result.rms < 0.3
    assert _relative_errors(result.info.K).max() < 0.005  # 0.5 %
    D = result.info.D
    assert abs(D[0] - CAM.D[0]) < 0.01 and abs(D[1] - CAM.D[1]) < 0.03
    assert np.abs(D[2:4] - CAM.D[2:4]).max() < 0.001
    assert _max_distortion_px(result.info) < 1.0
    assert set(result.std) >= {"fx", "fy", "cx", "cy", "k1", "k2"}
    assert result.std["fx"] < 2.0
    assert len(result.view_errors) == len(dets)


def test_outlier_view_is_dropped(checker_views):
    _, _, dets = checker_views
    bad = dets[3]
    rng = np.random.default_rng(0)
    corrupted = type(bad)(
        bad.image_points + rng.normal(0, 4.0, bad.image_points.shape).astype(np.float32),
        bad.object_points,
        bad.ids,
        bad.image_size,
        bad.sharpness,
        "corrupted",
    )
    result = calibrate([*dets, corrupted], CAM.size)
    assert not result.kept[-1] and result.kept[:-1].all()
    assert result.view_errors[-1] > 2.0
    assert _relative_errors(result.info.K).max() < 0.005
    assert "corrupted" in result.summary()


def test_fisheye_option_runs(checker_views):
    _, _, dets = checker_views
    result = calibrate(dets, CAM.size, CalibrationOptions(fisheye=True, max_rms=5.0))
    assert result.info.distortion_model == "equidistant" and len(result.info.D) == 4
    assert abs(result.info.K[0, 0] / CAM.K[0, 0] - 1) < 0.1


def test_too_few_views(checker_views):
    _, _, dets = checker_views
    with pytest.raises(HoposerError, match="only 5 views") as err:
        calibrate(dets[:5], CAM.size)
    assert "\n" not in str(err.value)


def test_fronto_parallel_set_is_refused():
    spec = CHECKER
    poses = []
    for i in range(9):
        R = rotation(0, 0, 20 * (i - 4) / 4)
        u, v = 200 + 120 * (i % 3), 160 + 80 * (i // 3)
        t = 0.55 * np.linalg.solve(CAM.K, [u, v, 1.0]) - R @ np.array([0.12, 0.084, 0])
        poses.append((R, t))
    images = render_views(spec, CAM, poses)
    det = BoardDetector(spec)
    dets = [det.detect(im) for im in images]
    assert all(d is not None for d in dets)
    with pytest.raises(HoposerError, match="degenerate") as err:
        calibrate(dets, CAM.size)
    assert "\n" not in str(err.value)


def test_no_board_and_wrong_size(tmp_path, checker_views):
    import cv2

    _, images, _ = checker_views
    for i, im in enumerate(images[:3]):
        cv2.imwrite(str(tmp_path / f"v{i}.png"), im)
    files = sorted(tmp_path.iterdir())
    with pytest.raises(HoposerError, match="not found in any of 3 images") as err:
        detect_in_files(parse_board("checker:8x6", 0.024), files)
    assert "\n" not in str(err.value)
    (tmp_path / "broken.png").write_bytes(b"not a png")
    with pytest.raises(HoposerError, match="cannot read image .*broken.png"):
        detect_in_files(CHECKER, sorted(tmp_path.iterdir()), strict=True)


def test_view_selector_and_coverage(checker_views):
    _, _, dets = checker_views
    selector = ViewSelector(min_sharpness=10.0, max_motion_px=0.0)
    assert selector.consider(dets[0])
    assert not selector.consider(dets[0])  # the same view again is not new
    for d in dets[1:]:
        selector.consider(d)
    assert len(selector.kept) > 8
    coverage = Coverage(CAM.size)
    for d in selector.kept:
        coverage.add(d)
    assert isinstance(coverage.missing(), list)
    assert coverage.draw(np.zeros((480, 640), np.uint8), 3).shape == (480, 640, 3)
    f = view_features(dets[0])
    assert 0 <= f.x <= 1 and 0 <= f.y <= 1 and 0 < f.size < 1
    # A still board is needed when motion is checked: a first frame alone never counts.
    still = ViewSelector(min_sharpness=10.0)
    assert not still.consider(dets[0]) and still.consider(dets[0])


def test_report_and_yaml_round_trip(tmp_path, checker_views):
    _, images, dets = checker_views
    result = calibrate(dets, CAM.size)
    report = render_report(result, images[0])
    assert report.ndim == 3 and report.shape[1] > 1000
    path = write_camera_info(tmp_path / "cam.yaml", result.info)
    back = read_camera_info(path)
    np.testing.assert_array_equal(back.K, result.info.K)
    np.testing.assert_array_equal(back.D, result.info.D)
    np.testing.assert_array_equal(back.P, result.info.P)


def test_render_view_of_marker_is_upright():
    spec = parse_board("aruco:7", None, 0.1, "4X4_50")
    R = rotation(180, 0, 0)  # marker z towards the camera
    image = render_view(spec, CAM, R, np.array([0, 0, 0.5]))
    det = BoardDetector(spec).detect(image)
    assert det is not None
    uv = project(CAM, R, np.array([0, 0, 0.5]), spec.object_points())
    assert np.abs(uv - det.image_points).max() < 0.3
