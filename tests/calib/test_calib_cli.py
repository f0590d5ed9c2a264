import re

import numpy as np

from hoposer.calib.camera_info import read_camera_info
from hoposer.calib.extrinsics import read_transform, rotation_angle_deg
from hoposer.cli import main


def test_synth_then_calibrate_camera(tmp_path, capsys):
    data = tmp_path / "synth"
    assert main(["calib", "synth", "--out", str(data), "--views", "14", "--seed", "4"]) == 0
    out = tmp_path / "cam.yaml"
    args = [
        "calib",
        "camera",
        "--images",
        str(data),
        "--board",
        "checker:9x6",
        "--square",
        "0.024",
        "--out",
        str(out),
    ]
    assert main(args) == 0
    info, truth = read_camera_info(out), read_camera_info(data / "truth_camera_info.yaml")
    idx = ([0, 1, 0, 1], [0, 1, 2, 2])  # fx, fy, cx, cy
    assert np.abs(info.K[idx] / truth.K[idx] - 1).max() < 0.005
    assert (tmp_path / "cam_report.png").stat().st_size > 10_000
    assert "RMS reprojection error" in capsys.readouterr().out


def test_synth_then_robot_marker(tmp_path, capsys):
    data = tmp_path / "m"
    board = ["--board", "aruco:3", "--marker", "0.1", "--dict", "4X4_50"]
    assert (
        main(["calib", "synth", "--out", str(data), "--scene", "marker", "--views", "4", *board])
        == 0
    )
    pose = capsys.readouterr().out.split("--marker-pose ")[1].split()[0]
    out = tmp_path / "extr.yaml"
    args = [
        "calib",
        "robot",
        "--camera-info",
        str(data / "truth_camera_info.yaml"),
        *board,
        "--images",
        str(data),
        "--marker-pose",
        pose,
        "--out",
        str(out),
    ]
    assert main(args) == 0
    est, truth = read_transform(out), read_transform(data / "truth_extrinsics.yaml")
    assert np.linalg.norm(est.translation - truth.translation) < 0.002
    assert rotation_angle_deg(est.rotation, truth.rotation) < 0.2


def test_synth_then_robot_hand_eye(tmp_path, capsys):
    data = tmp_path / "h"
    board = ["--board", "charuco:5x7", "--square", "0.04", "--marker", "0.03", "--dict", "4X4_50"]
    synth = ["calib", "synth", "--out", str(data), "--scene", "eye-in-hand", "--views", "8"]
    assert main([*synth, *board]) == 0
    import cv2

    cv2.imwrite(str(data / "view_002.png"), np.full((480, 640), 128, np.uint8))  # no board
    out = tmp_path / "extr.yaml"
    info = data / "truth_camera_info.yaml"
    args = ["calib", "robot", "--camera-info", str(info), *board, "--hand-eye",
            str(data / "poses.csv"), "--setup", "eye-in-hand", "--out", str(out)]  # fmt: skip
    capsys.readouterr()
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "board not found in view_002.png; skipped" in printed
    assert "tool0 <- camera_optical" in printed and "views 7" in printed
    est, truth = read_transform(out), read_transform(data / "truth_extrinsics.yaml")
    assert est.parent == "tool0" and est.quality["views"] == 7
    assert np.linalg.norm(est.translation - truth.translation) < 0.002
    assert rotation_angle_deg(est.rotation, truth.rotation) < 0.2


def _one_line_error(capsys):
    err = capsys.readouterr().err.strip()
    assert err.startswith("hoposer: error:") and "\n" not in err and "Traceback" not in err
    return err


def test_folder_without_board_fails_cleanly(tmp_path, capsys):
    import cv2

    for i in range(3):
        cv2.imwrite(str(tmp_path / f"{i}.png"), np.full((480, 640), 128, np.uint8))
    args = [
        "calib",
        "camera",
        "--images",
        str(tmp_path),
        "--board",
        "checker:9x6",
        "--square",
        "0.024",
        "--out",
        str(tmp_path / "c.yaml"),
    ]
    assert main(args) == 2
    assert "not found in any of 3 images" in _one_line_error(capsys)
    assert not (tmp_path / "c.yaml").exists()


def test_bad_inputs_fail_cleanly(tmp_path, capsys):
    base = ["calib", "camera", "--board", "checker:9x6", "--square", "0.024"]
    assert main([*base, "--images", str(tmp_path / "missing")]) == 2
    assert "does not exist" in _one_line_error(capsys)
    (tmp_path / "x.png").write_bytes(b"junk")
    assert main([*base, "--images", str(tmp_path)]) == 2
    assert "cannot read image" in _one_line_error(capsys)
    assert main([*base, "--images", str(tmp_path), "--video", "v.avi"]) == 2
    assert "exactly one source" in _one_line_error(capsys)
    assert main(["calib", "camera", "--board", "checkers:9x6", "--images", str(tmp_path)]) == 2
    assert "did you mean" in _one_line_error(capsys)
    assert (
        main(
            [
                "calib",
                "robot",
                "--camera-info",
                str(tmp_path / "none.yaml"),
                "--board",
                "aruco:1",
                "--marker",
                "0.1",
                "--dict",
                "4X4_50",
            ]
        )
        == 2
    )
    assert "does not exist" in _one_line_error(capsys)
    assert main(["calib", "board", "--out", str(tmp_path / "b.pdf")]) == 0


def _write_video(images_dir, path):
    """The synthetic views as an MJPG video, each held for 3 frames (a view is kept only when the
    board did not move since the previous frame)."""
    import cv2

    files = sorted(images_dir.glob("view_*.png"))
    first = cv2.imread(str(files[0]))
    writer = cv2.VideoWriter(
        str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (first.shape[1], first.shape[0])
    )
    for file in files:
        for _ in range(3):
            writer.write(cv2.imread(str(file)))
    writer.release()
    return path


def test_synth_video_then_calibrate_camera_and_robot_marker(tmp_path, capsys):
    data = tmp_path / "synth"
    assert main(["calib", "synth", "--out", str(data), "--views", "14", "--seed", "4"]) == 0
    video = _write_video(data, tmp_path / "views.avi")
    out = tmp_path / "cam.yaml"
    board = ["--board", "checker:9x6", "--square", "0.024"]
    assert main(["calib", "camera", "--video", str(video), *board, "--out", str(out)]) == 0
    info, truth = read_camera_info(out), read_camera_info(data / "truth_camera_info.yaml")
    idx = ([0, 1, 0, 1], [0, 1, 2, 2])  # fx, fy, cx, cy
    assert np.abs(info.K[idx] / truth.K[idx] - 1).max() < 0.01
    kept = re.search(r"kept (\d+) views", capsys.readouterr().out)
    assert kept and int(kept[1]) >= 8  # the views far enough apart, read from the video

    marker = tmp_path / "m"
    board = ["--board", "aruco:3", "--marker", "0.1", "--dict", "4X4_50"]
    args = ["calib", "synth", "--out", str(marker), "--scene", "marker", "--views", "4", *board]
    assert main(args) == 0
    pose = capsys.readouterr().out.split("--marker-pose ")[1].split()[0]
    video = _write_video(marker, tmp_path / "marker.avi")
    out = tmp_path / "extr.yaml"
    args = ["calib", "robot", "--camera-info", str(marker / "truth_camera_info.yaml"), *board,
            "--video", str(video), "--marker-pose", pose, "--out", str(out)]  # fmt: skip
    assert main(args) == 0
    est, truth = read_transform(out), read_transform(marker / "truth_extrinsics.yaml")
    assert np.linalg.norm(est.translation - truth.translation) < 0.005
    assert rotation_angle_deg(est.rotation, truth.rotation) < 0.5


def test_bad_video_and_camera_sources_fail_cleanly(tmp_path, capsys):
    base = ["calib", "camera", "--board", "checker:9x6", "--square", "0.024", "--out",
            str(tmp_path / "c.yaml")]  # fmt: skip
    assert main([*base, "--video", str(tmp_path / "missing.avi")]) == 2
    assert "does not exist" in _one_line_error(capsys)
    (tmp_path / "junk.avi").write_bytes(b"not a video")
    assert main([*base, "--video", str(tmp_path / "junk.avi")]) == 2
    assert "cannot read" in _one_line_error(capsys)
    assert main([*base, "--camera", "57"]) == 2
    assert "cannot open camera 57" in _one_line_error(capsys)
