"""`hoposer video` and `hoposer live` end to end: real MediaPipe, real model, real files."""

import json
import socket
import threading

import cv2
import jsonschema
import numpy as np
import pytest

from hoposer.cli import main
from hoposer.frames.detect import MediaPipeHandDetector
from hoposer.geometry.camera import default_camera_matrix, project
from hoposer.stream.example import render_example, write_example
from hoposer.stream.messages import schema
from hoposer.stream.publish import PoseSubscriber

FRAMES = 10


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return write_example(tmp_path_factory.mktemp("clip") / "hand.mp4", frames=FRAMES)


@pytest.fixture(scope="module")
def empty_clip(tmp_path_factory):
    path = tmp_path_factory.mktemp("clip") / "nohand.mp4"
    return write_example(path, frames=6, with_hand=False)


def read_video(path):
    capture = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, image = capture.read()
        if not ok:
            return frames
        frames.append(image)


def test_video_writes_annotated_video_poses_and_summary(clip, tmp_path, capsys):
    out = tmp_path / "result.mp4"
    code = main(["video", str(clip), "--out", str(out), "--hands", "right", "--panel",
                 "--object", "box:0.05x0.05x0.05"])  # fmt: skip
    assert code == 0
    frames = read_video(out)
    assert len(frames) == FRAMES
    assert frames[0].shape == (480, 640 + 640, 3)  # the frame and the camera-true 3D panel
    messages = [json.loads(line) for line in (tmp_path / "result.jsonl").read_text().splitlines()]
    assert [m["frame_index"] for m in messages] == list(range(FRAMES))
    for m in messages:
        jsonschema.validate(m, schema())
    with_hand = [m for m in messages if m["hand"] is not None]
    assert len(with_hand) == FRAMES  # MediaPipe finds the rendered hand (frame 0 too)
    for m in with_hand:
        assert m["hand"]["side"] == "right" and len(m["hand"]["joints"]) == 21
        assert m["object"]["name"] == "box:0.05x0.05x0.05"
        if m["object"]["found"]:  # never metres away from the hand that holds it
            depth = m["object"]["pose"]["position"][2] - m["hand"]["wrist"]["position"][2]
            assert abs(depth) <= 0.5
        else:
            assert m["object"]["reason"]
        # --refine auto: fitted to the network's joints and MediaPipe's 2D and metric landmarks
        assert m["hand"]["refinement"] == {
            "mode": "auto", "evidence": ["network_2d", "landmarks_2d", "landmarks_3d"],
        }  # fmt: skip
    # one hand, announced once, kept
    assert [m["hand"]["track_id"] for m in with_hand] == [with_hand[0]["hand"]["track_id"]] * FRAMES
    assert [m["hand"]["new_track"] for m in with_hand] == [True] + [False] * (FRAMES - 1)
    summary = json.loads((tmp_path / "result.summary.json").read_text())
    assert summary["frames"] == FRAMES and summary["hands_followed"] == 1
    assert {"detect", "engine", "decode", "refine", "capture_to_publish"} <= set(
        summary["latency_ms"]
    )
    assert not list(tmp_path.glob(".*partial*"))  # temporary files renamed away
    assert "frames/s" in capsys.readouterr().out


def test_a_clip_without_a_hand_gives_null_hands_and_exit_0(empty_clip, tmp_path):
    out = tmp_path / "empty.mp4"
    assert main(["video", str(empty_clip), "--out", str(out)]) == 0
    messages = [json.loads(line) for line in (tmp_path / "empty.jsonl").read_text().splitlines()]
    assert len(messages) == 6
    assert all(m["hand"] is None and m["stability"]["flags"] == ["no_hand"] for m in messages)
    assert len(read_video(out)) == 6


def test_live_plays_a_file_as_a_camera_and_publishes_over_zeromq(clip):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    endpoint = f"tcp://127.0.0.1:{port}"
    received = []

    def listen():
        with PoseSubscriber(endpoint) as subscriber:
            while (m := subscriber.receive(timeout_s=20)) is not None:
                received.append(m)

    listener = threading.Thread(target=listen)
    listener.start()
    code = main(["live", "--camera", str(clip), "--no-view", "--publish", endpoint,
                 "--hands", "right", "--max-frames", "6"])  # fmt: skip
    listener.join(timeout=30)
    assert code == 0
    assert received, "the subscriber got no message"
    for m in received:
        jsonschema.validate(m, schema())
        # every stage that ran reports its latency, and the time from capture to publishing
        # travels with every message. A frame where the detector finds no hand runs no engine
        # (its message is empty or holds the last pose), and live playback can drop frames.
        stages = {"detect", "capture_to_publish"}
        if "no_hand" not in m["stability"]["flags"]:
            stages |= {"engine", "refine"}
        assert stages <= set(m["latency_ms"]), m["stability"]
    assert any("engine" in m["latency_ms"] for m in received), "no published frame ran the engine"


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["video", "missing.mp4", "--out", "o.mp4"], "does not exist"),
        (["video", "{corrupt}", "--out", "o.mp4"], "cannot read"),
        (["video", "{folder}", "--out", "o.mp4"], "no images"),
        (["video", "{clip}", "--out", "{folder}"], "is a directory"),
        (["video", "{clip}", "--out", "/proc/nope/o.mp4"], "does not exist"),
        (["video", "{clip}", "--out", "o.mp4", "--camera-info", "{bad_yaml}"], "camera"),
        (["live", "--camera", "42", "--no-view"], "cannot open camera 42"),
        (["video", "{clip}", "--out", "o.mp4", "--object", "sphere:1"], "box:"),
        (["video", "{clip}", "--view"], "no display"),
        (["video", "{clip}"], "nothing to produce"),
        (["video", "{clip}", "--out", "o.mp4", "--refine", "all"], "--refine must be one of"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(args, expected, clip, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    corrupt = tmp_path / "corrupt.mp4"
    corrupt.write_bytes(b"not a video" * 100)
    folder = tmp_path / "folder"
    folder.mkdir()
    bad_yaml = tmp_path / "cam.yaml"
    bad_yaml.write_text("image_width: 640\ncamera_matrix: {rows: 2}\n")
    names = {"corrupt": corrupt, "folder": folder, "clip": clip, "bad_yaml": bad_yaml}
    code = main([a.format(**names) for a in args])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert err.startswith("hoposer: error:") and "\n" not in err and "Traceback" not in err
    assert expected in err


def test_mediapipe_video_mode_reports_each_hand_in_view_once():
    # One hand is followed by the one-hand tracker between searches; two hands side by side
    # (the frame and its mirror image) are both reported on every frame, each once.
    images, _ = render_example(frames=20)
    rgb = [cv2.cvtColor(im, cv2.COLOR_BGR2RGB) for im in images]
    pairs = [np.ascontiguousarray(np.concatenate([im, im[:, ::-1]], axis=1)) for im in rgb]
    detector = MediaPipeHandDetector(video=True)
    try:
        one = [len(detector.detect_all(im)) for im in rgb]
    finally:
        detector.close()
    detector = MediaPipeHandDetector(video=True)
    try:
        two = [detector.detect_all(im) for im in pairs]
    finally:
        detector.close()
    assert one == [1] * len(rgb)
    assert [len(found) for found in two] == [2] * len(pairs)
    for left, right in two:  # one hand in each half, not one hand twice
        assert sorted([left.box[0] < 640, right.box[0] < 640]) == [False, True]


def test_mediapipe_finds_the_rendered_hand_and_nothing_in_an_empty_image():
    images, truth = render_example(frames=12)
    K = default_camera_matrix(640, 480)
    detector = MediaPipeHandDetector(video=True)
    try:
        assert detector.detect(np.full((480, 640, 3), 128, np.uint8)) is None
        boxes = [detector.detect(cv2.cvtColor(im, cv2.COLOR_BGR2RGB)) for im in images]
    finally:
        detector.close()
    found = [(d, t) for d, t in zip(boxes, truth, strict=True) if d is not None]
    assert len(found) >= 8
    for detection, frame in found:
        joints = project(frame.joints, K)
        # The box holds the four fingertips (MediaPipe places the stand-in's stubby thumb
        # short of its tip) and its centre lies on the hand.
        fingertips = joints[[8, 12, 16, 20]]
        inside = (fingertips >= detection.box[:2] - 15) & (fingertips <= detection.box[2:] + 15)
        assert inside.all()
        center = (detection.box[:2] + detection.box[2:]) / 2
        assert (center >= joints.min(0)).all() and (center <= joints.max(0)).all()
        assert detection.landmarks.shape == (21, 2)


@pytest.fixture
def virtual_display(monkeypatch):
    import shutil
    import subprocess
    import time

    if shutil.which("Xvfb") is None:
        pytest.skip("needs Xvfb (Debian: xvfb) for a virtual display")
    display = ":97"
    server = subprocess.Popen(["Xvfb", display, "-screen", "0", "1280x720x24"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    time.sleep(1.0)
    monkeypatch.setenv("DISPLAY", display)
    yield display
    server.terminate()
    server.wait(timeout=10)


def test_the_view_runs_beside_the_pipeline_on_a_display(clip, tmp_path, virtual_display):
    out = tmp_path / "viewed.mp4"
    assert main(["video", str(clip), "--view", "--out", str(out), "--hands", "right"]) == 0
    assert len(read_video(out)) == FRAMES


def test_calibration_files_from_hoposer_calib_set_the_camera_and_the_robot_frame(clip, tmp_path):
    from hoposer.calib.camera_info import CameraInfo, write_camera_info
    from hoposer.calib.extrinsics import Transform, write_transform

    K = default_camera_matrix(640, 480)
    # Distortion on: the stream undistorts each frame before anything else.
    info = CameraInfo(640, 480, "example", K, np.array([0.01, 0.0, 0.0, 0.0, 0.0]))
    camera_info = write_camera_info(tmp_path / "cam.yaml", info)
    to_base = Transform("base", "camera", np.array([0.5, 0.0, 1.0]), np.array([0, 0, 0, 1.0]))
    extrinsics = write_transform(tmp_path / "base.yaml", to_base)
    out = tmp_path / "robot.mp4"
    args = ["video", str(clip), "--out", str(out), "--hands", "right", "--max-frames", "4",
            "--camera-info", str(camera_info), "--extrinsics", str(extrinsics),
            "--object-name", "cube"]  # fmt: skip
    assert main(args) == 0
    messages = [json.loads(line) for line in (tmp_path / "robot.jsonl").read_text().splitlines()]
    hands = [m["hand"] for m in messages if m["hand"] is not None]
    assert hands and all(m["reference_frame"] == "base" for m in messages)
    assert {m["object"]["name"] for m in messages if m["object"]} == {"cube"}
    # The base frame is the camera frame shifted 1 m back along z: a hand ~0.5 m deep lands ~1.5.
    for hand in hands:
        assert 1.2 < hand["wrist"]["position"][2] < 2.5


def test_a_live_source_opens_after_the_model_loads_so_no_start_up_frame_is_lost(clip, tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = tmp_path / "live.mp4"
    code = main(["live", "--camera", str(clip), "--no-view", "--publish",
                 f"tcp://127.0.0.1:{port}", "--hands", "right", "--max-frames", "3",
                 "--out", str(out)])  # fmt: skip
    assert code == 0
    summary = json.loads((tmp_path / "live.summary.json").read_text())
    # Loading the model and MediaPipe takes seconds (tens of frames at 30 FPS); the clip, played
    # as a camera, starts only once they are ready.
    assert summary["startup_skipped_frames"] <= 2
    first = json.loads((tmp_path / "live.jsonl").read_text().splitlines()[0])
    assert first["frame_index"] == summary["startup_skipped_frames"]


def test_a_file_gives_the_same_poses_however_fast_it_is_processed():
    # Tracking and smoothing run on a file's own frame times (`Frame.media_time`), and the detect
    # stage may run ahead on another thread: frames captured 1 ms or 0.5 s apart, detected
    # inline or beforehand, give the same poses.
    from concurrent.futures import ThreadPoolExecutor

    from hoposer.engine.backends import open_backend
    from hoposer.frames.sources import Frame
    from hoposer.geometry.control_points import object_mesh
    from hoposer.model.checkpoint import read_checkpoint_info
    from hoposer.model.hand import hand_model_for_weights
    from hoposer.stream.example import EXAMPLE_OBJECT
    from hoposer.stream.options import DEFAULT_WEIGHTS
    from hoposer.stream.pipeline import FrameProcessor, ObjectSpec

    images, _ = render_example(frames=16)
    trained_with = read_checkpoint_info(DEFAULT_WEIGHTS).metadata["hand_model"]
    hand_model = hand_model_for_weights(trained_with)
    backend = open_backend("torch", weights=DEFAULT_WEIGHTS, device="cpu")
    mesh = object_mesh(EXAMPLE_OBJECT)
    spec = ObjectSpec(EXAMPLE_OBJECT, mesh.control_points, mesh.vertices, mesh.faces)
    K = default_camera_matrix(640, 480)

    def run(spacing_s, ahead):
        detector = MediaPipeHandDetector(video=True, side="right")
        processor = FrameProcessor(backend, hand_model, detector, K, object_spec=spec)
        frames = [Frame(i, 100.0 + i * spacing_s, im, i / 30) for i, im in enumerate(images)]
        try:
            if ahead:
                with ThreadPoolExecutor(1) as pool:
                    detected = [pool.submit(processor.detect, f) for f in frames]
                    pairs = zip(frames, detected, strict=True)
                    results = [processor.process(f, d.result()) for f, d in pairs]
            else:
                results = [processor.process(f) for f in frames]
        finally:
            detector.close()
        messages = [r.message for r in results]
        for m in messages:
            for key in ("latency_ms", "capture_time", "publish_time"):
                m.pop(key)
        return messages

    inline = run(0.001, ahead=False)
    assert sum(m["stability"]["stable"] for m in inline) >= 5  # smoothing was at work
    assert run(0.5, ahead=True) == inline
