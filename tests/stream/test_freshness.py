"""A slow subscriber gets the newest pose, never a backlog, and nothing after the publisher left."""

import socket
import threading
import time

import numpy as np

from hoposer.stream.messages import camera_frame, hand_payload, pose_message
from hoposer.stream.publish import PosePublisher, PoseSubscriber

PERIOD_S = 1 / 30  # the publisher's frame period


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


def test_a_subscriber_sleeping_1s_per_message_gets_fresh_poses_and_nothing_after_close():
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    publisher = PosePublisher(endpoint)
    stop = threading.Event()

    def publish() -> None:  # a 30 FPS camera, ~2.5 s (75 messages)
        index = 0
        while not stop.is_set() and index < 75:
            publisher.publish(message(index))
            index += 1
            time.sleep(PERIOD_S)
        publisher.close()

    ages, indices = [], []
    with PoseSubscriber(endpoint) as subscriber:
        sender = threading.Thread(target=publish)
        sender.start()
        try:
            while sender.is_alive():
                got = subscriber.receive(timeout_s=0.5)
                if got is None:
                    continue
                ages.append(time.time() - got["capture_time"])
                indices.append(got["frame_index"])
                time.sleep(1.0)  # a slow robot controller
        finally:
            stop.set()
            sender.join()
        after_close = subscriber.receive(timeout_s=1.0)
    assert len(ages) >= 2, indices
    assert max(ages) <= 2 * PERIOD_S + 1.0, (ages, indices)
    assert indices == sorted(indices) and indices[-1] >= 50  # the newest, not the 3rd queued
    assert after_close is None, f"frame {after_close['frame_index']} arrived after close"
    assert subscriber.skipped >= indices[-1] - len(indices)  # the gaps it did not see
    assert subscriber.after_close == 1  # the pose waiting when it closed was dropped, not read


def test_a_looping_file_played_as_a_camera_never_ends(tmp_path):
    from hoposer.frames.sources import open_source
    from hoposer.stream.example import write_example

    clip = write_example(tmp_path / "clip.mp4", frames=4, with_hand=False)
    source = open_source(clip, live=True, loop=True)
    try:
        frames = []
        for frame in source:
            frames.append(frame.index)
            if len(frames) == 10:
                break
    finally:
        source.close()
    assert len(frames) == 10 and frames == sorted(frames)  # past the clip's 4 frames
