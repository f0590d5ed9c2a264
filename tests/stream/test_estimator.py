"""The library API: `Estimator` gives what `hoposer video` writes; single images on their own."""

import json
import threading
import time

import cv2
import numpy as np
import pytest

from hoposer import Estimate, Estimator
from hoposer.cli import main
from hoposer.errors import HoposerError
from hoposer.frames.sources import open_source
from hoposer.stream.estimator import DetectAhead
from hoposer.stream.example import write_example
from hoposer.stream.pipeline import Detected

FRAMES = 8
OBJECT = "box:0.05x0.05x0.05"


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return write_example(tmp_path_factory.mktemp("clip") / "hand.mp4", frames=FRAMES)


@pytest.fixture(scope="module")
def estimator():
    with Estimator(object=OBJECT, hands="right", backend="torch", threads=1) as est:
        yield est


def _without_times(message):
    return {k: v for k, v in message.items() if k not in ("latency_ms", "capture_time",
                                                          "publish_time")}  # fmt: skip


def test_stream_gives_the_messages_hoposer_video_writes(clip, estimator, tmp_path):
    estimates = list(estimator.stream(str(clip)))
    assert [e.frame_index for e in estimates] == list(range(FRAMES))
    out = tmp_path / "cli.mp4"
    assert main(["video", str(clip), "--out", str(out), "--hands", "right", "--object", OBJECT,
                 "--backend", "torch", "--threads", "1"]) == 0  # fmt: skip
    written = [json.loads(line) for line in (tmp_path / "cli.jsonl").read_text().splitlines()]
    assert [_without_times(e.message) for e in estimates] == [_without_times(m) for m in written]
    for e in estimates:
        assert isinstance(e, Estimate) and e.joints.shape == (21, 3)
        assert e.vertices.shape[1] == 3 and estimator.hand_faces.max() < len(e.vertices)
        np.testing.assert_allclose(e.joints, e.message["hand"]["joints"])
        assert e.object_found == e.message["object"]["found"]
        assert (e.object_pose is None) == (not e.object_found)


def test_one_image_is_estimated_on_its_own(clip, estimator):
    capture = cv2.VideoCapture(str(clip))
    ok, image = capture.read()
    capture.release()
    assert ok
    first, again = estimator(image), estimator(image)
    assert first.joints is not None and first.joints_2d.shape == (21, 2)
    # No state carries over from one image to the next.
    assert _without_times(first.message) == _without_times(again.message)
    assert first.vertices.shape[1] == 3 and estimator.hand_faces.max() < len(first.vertices)
    with pytest.raises(HoposerError, match="uint8 BGR image"):
        estimator(np.zeros((4, 4), np.uint8))


def test_options_the_estimator_does_not_take_are_refused():
    with pytest.raises(HoposerError, match="does not take publish"):
        Estimator(publish="tcp://127.0.0.1:5555")
    with pytest.raises(HoposerError, match="does not take colour"):
        Estimator(colour="red")
    with pytest.raises(HoposerError, match="unknown --detector"):
        Estimator(detector="yolo")


def test_open_gives_each_frame_result_and_stops_cleanly_midway(clip, estimator):
    # What `hoposer video`/`live` iterate: the full FrameResult (what they draw), read ahead.
    with estimator.open(str(clip), camera_id="bench") as frames:
        assert frames.source.size == (640, 480) and frames.camera_matrix.shape == (3, 3)
        results = iter(frames)
        first, second = next(results), next(results)
    assert (first.frame.index, second.frame.index) == (0, 1)
    assert first.detection is not None and first.message["camera_id"] == "bench"
    assert next(iter(frames), None) is None  # closed with frame 2 read ahead: nothing more


def test_a_file_played_live_gives_only_the_newest_frames(clip, estimator):
    indices = [e.frame_index for e in estimator.stream(str(clip), live=True)]
    assert indices and indices == sorted(set(indices)) and indices[-1] < FRAMES


def _sleepy_detect(seconds):
    """A detection stage that takes `seconds` and records when it ran."""
    calls = []

    def detect(frame):
        started = time.perf_counter()
        time.sleep(seconds)
        calls.append((frame.index, started))
        return Detected(frame.image, [], seconds * 1e3)

    return detect, calls


def test_detect_ahead_detects_the_newest_frame_while_the_consumer_works_never_ahead(clip):
    # A 30 frames/s file played as a camera; detection 20 ms, the consumer 60 ms a frame.
    detect, calls = _sleepy_detect(0.02)
    source = open_source(clip, live=True, loop=True)
    taken, done = [], []  # the frames the consumer took, when it finished with each
    try:
        with DetectAhead(source, detect) as ahead:
            for frame, _ in ahead:
                taken.append(frame.index)
                if len(taken) == 8:
                    break
                time.sleep(0.06)
                done.append(time.perf_counter())
    finally:
        source.close()
    assert taken == [index for index, _ in calls[: len(taken)]]  # each detection reaches us
    assert taken == sorted(set(taken))  # newest frames, never one twice
    assert taken[-1] - taken[0] > len(taken)  # frames were dropped, as live should
    starts = [started for _, started in calls]
    for n in range(1, len(done)):
        # frame n+1 is detected after frame n was taken (so after the consumer finished frame
        # n-1), while the consumer works on frame n
        assert done[n - 1] <= starts[n + 1] < done[n]


def test_detect_ahead_raises_the_workers_error_on_the_consumer(clip):
    def broken(frame):
        raise RuntimeError("detector died")

    source = open_source(clip, live=True)
    try:
        with DetectAhead(source, broken) as ahead, pytest.raises(RuntimeError, match="died"):
            next(iter(ahead))
    finally:
        source.close()


def test_a_live_stream_runs_every_stage_and_stops_when_closed(estimator, clip):
    frames = estimator.open(str(clip), live=True, loop=True)
    with frames:
        results = []
        for result in frames:
            results.append(result)
            if len(results) == 4:
                break
    assert [r.frame.index for r in results] == sorted({r.frame.index for r in results})
    assert all("detect" in r.message["latency_ms"] for r in results)
    assert any("engine" in r.message["latency_ms"] for r in results)
    assert not any(t.name == "detect ahead" for t in threading.enumerate())
