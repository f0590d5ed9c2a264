import socket
import time

import jsonschema
import numpy as np
import pytest

from hoposer.errors import HoposerError
from hoposer.stream.messages import camera_frame, hand_payload, pose_message, schema
from hoposer.stream.publish import CurveKeys, PosePublisher, PoseSubscriber, make_keys


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def message(index: int) -> dict:
    hand = hand_payload(
        "right", np.zeros((21, 3)), np.zeros((21, 2)), np.zeros(48), np.zeros(10), np.eye(3),
        1.0, 0.9, camera_frame(),
    )  # fmt: skip
    return pose_message(index, time.time(), "cam", "camera", hand, None, True, False, 0, (), {})


def receive_until(subscriber, publisher, want: int, timeout_s: float = 5.0):
    """Publish numbered messages until the subscriber has received `want` of them."""
    got, index, deadline = [], 0, time.monotonic() + timeout_s
    while len(got) < want and time.monotonic() < deadline:
        publisher.publish(message(index))
        index += 1
        m = subscriber.receive(timeout_s=0.01)
        if m is not None:
            got.append(m)
    return got


def test_messages_reach_a_real_subscriber_and_follow_the_schema():
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    with PosePublisher(endpoint) as publisher, PoseSubscriber(endpoint) as subscriber:
        got = receive_until(subscriber, publisher, 3)
    assert len(got) == 3
    for m in got:
        jsonschema.validate(m, schema())
    assert [m["frame_index"] for m in got] == sorted(m["frame_index"] for m in got)


def test_publishing_never_blocks_without_or_with_a_stalled_subscriber():
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    with PosePublisher(endpoint) as publisher:
        started = time.perf_counter()
        for i in range(2000):  # nobody listening
            publisher.publish(message(i))
        assert time.perf_counter() - started < 5.0
        # A subscriber that connects and never reads: the queue stays bounded, sends go on.
        stalled = PoseSubscriber(endpoint)
        time.sleep(0.2)
        started = time.perf_counter()
        for i in range(5000):
            publisher.publish(message(i))
        elapsed = time.perf_counter() - started
        stalled.close()
    assert elapsed < 10.0
    assert publisher.sent == 7000


def test_curve_encryption_authenticates_clients(tmp_path):
    keys = make_keys(tmp_path / "keys")
    clients = tmp_path / "clients"
    clients.mkdir()
    (clients / "client.key").write_bytes(keys["client_public"].read_bytes())
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    server = CurveKeys(keys["server_secret"], authorized=clients)
    client = CurveKeys(keys["client_secret"], server_public=keys["server_public"])
    with PosePublisher(endpoint, curve=server) as publisher:
        with PoseSubscriber(endpoint, curve=client) as subscriber:
            assert len(receive_until(subscriber, publisher, 2)) == 2
        # A client with a key the publisher does not know gets nothing.
        stranger = make_keys(tmp_path / "stranger")
        bad = CurveKeys(stranger["client_secret"], server_public=keys["server_public"])
        with PoseSubscriber(endpoint, curve=bad) as subscriber:
            assert receive_until(subscriber, publisher, 1, timeout_s=1.0) == []


def test_binding_beyond_loopback_needs_consent():
    with pytest.raises(HoposerError, match="allow-remote"):
        PosePublisher(f"tcp://0.0.0.0:{free_port()}")
    with pytest.raises(HoposerError, match="bad endpoint"):
        PosePublisher("udp://127.0.0.1:1")


def test_poses_move_into_the_robot_frame_given_by_the_extrinsics(tmp_path):
    from hoposer.calib.extrinsics import Transform, read_transform, write_transform

    quarter = np.array([0.0, 0.0, np.sqrt(0.5), np.sqrt(0.5)])  # 90° about z
    path = write_transform(
        tmp_path / "base.yaml", Transform("base", "camera", np.array([1.0, 2.0, 3.0]), quarter)
    )
    to_base = read_transform(path)
    joints = np.zeros((21, 3))
    joints[:, 0] = 0.1  # 10 cm along the camera's x
    hand = hand_payload(
        "right", joints, np.zeros((21, 2)), np.zeros(48), np.zeros(10), np.eye(3), 1.0, 0.9,
        to_base,
    )  # fmt: skip
    np.testing.assert_allclose(hand["joints"][0], [1.0, 2.1, 3.0], atol=1e-6)
    np.testing.assert_allclose(hand["wrist"]["quaternion"], quarter, atol=1e-6)
