"""Every message, file and listener line is strict JSON: NaN/Infinity never leave hoposer."""

import json
import math
import socket
import time

import jsonschema
import numpy as np
import pytest
import torch

from hoposer.cli import main
from hoposer.engine.backends import random_model
from hoposer.io import json_text, loads_strict
from hoposer.model.checkpoint import save_checkpoint
from hoposer.stream.example import write_example
from hoposer.stream.messages import camera_frame, hand_payload, pose_message, schema
from hoposer.stream.publish import PosePublisher, PoseSubscriber


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def unplaceable_hand_message(index: int) -> dict:
    """What the pipeline builds when decode returns NaN joints (a hand it cannot place in 3D)."""
    nan = np.full((21, 3), np.nan)
    hand = hand_payload(
        "right", nan, np.zeros((21, 2)), np.zeros(48), np.zeros(10), np.full((3, 3), np.nan),
        1.0, 0.9, camera_frame(),
    )  # fmt: skip
    return pose_message(
        index, time.time(), "cam", "camera", hand, None, True, False, 0, (), {"engine": math.inf}
    )


def test_loads_strict_refuses_what_json_parse_refuses():
    with pytest.raises(ValueError, match="NaN"):
        loads_strict('{"x": NaN}')
    with pytest.raises(ValueError, match="Infinity"):
        loads_strict("[-Infinity]")
    assert json.loads(json_text({"a": [1.0, math.nan], "b": np.float32("inf")})) == {
        "a": [1.0, None],
        "b": None,
    }


def test_non_finite_values_are_published_as_null_and_the_frame_is_flagged():
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    with PosePublisher(endpoint) as publisher, PoseSubscriber(endpoint) as subscriber:
        deadline, got, index = time.monotonic() + 5, None, 0
        while got is None and time.monotonic() < deadline:
            publisher.publish(unplaceable_hand_message(index))
            index += 1
            got = subscriber.receive(timeout_s=0.02)  # parsed strictly: NaN would be refused
    assert got is not None and subscriber.invalid == 0
    jsonschema.validate(got, schema())
    assert got["hand"]["joints"][0] == [None, None, None]
    assert got["latency_ms"]["engine"] is None
    stability = got["stability"]
    assert stability["stable"] is False and "non_finite" in stability["flags"]
    assert set(stability["non_finite"]) == {
        "hand.joints",
        "hand.wrist.position",
        "hand.wrist.rotation",
        "hand.wrist.quaternion",
        "latency_ms.engine",
    }


def test_a_subscriber_skips_a_payload_that_is_not_strict_json():
    import zmq

    endpoint = f"tcp://127.0.0.1:{free_port()}"
    context = zmq.Context()
    raw = context.socket(zmq.PUB)  # a foreign publisher writing Python's lax JSON
    raw.setsockopt(zmq.LINGER, 0)
    raw.bind(endpoint)
    try:
        with PoseSubscriber(endpoint) as subscriber:
            deadline = time.monotonic() + 5
            while subscriber.invalid == 0 and time.monotonic() < deadline:
                raw.send(b'hoposer.pose {"x": NaN}')
                assert subscriber.receive(timeout_s=0.02) is None
    finally:
        raw.close()
        context.term()
    assert subscriber.invalid >= 1


@pytest.mark.slow
def test_video_with_nan_decodes_writes_only_strict_json(tmp_path):
    """A checkpoint whose weights are NaN: every decode is NaN, end to end through `video`."""
    model = random_model("lite")
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.fill_(math.nan)
    weights = save_checkpoint(model, tmp_path / "nan.safetensors")
    clip = write_example(tmp_path / "clip.mp4", frames=4)
    out = tmp_path / "nan.mp4"
    code = main(["video", str(clip), "--weights", str(weights), "--backend", "torch",
                 "--hands", "right", "--out", str(out)])  # fmt: skip
    assert code == 0
    lines = (tmp_path / "nan.jsonl").read_text().splitlines()
    assert len(lines) == 4
    messages = [loads_strict(line) for line in lines]  # raises on a bare NaN
    for m in messages:
        jsonschema.validate(m, schema())
    with_hand = [m for m in messages if m["hand"] is not None]
    assert with_hand, "MediaPipe found no hand in the example clip"
    for m in with_hand:
        assert not m["stability"]["stable"]
        assert "non_finite" in m["stability"]["flags"]
        assert "hand.joints" in m["stability"]["non_finite"]
    loads_strict((tmp_path / "nan.summary.json").read_text())
