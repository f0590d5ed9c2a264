"""CURVE that is hard to get wrong: no silent key overwrite, warnings, a listener that explains."""

import logging
import socket
import threading
import time

import numpy as np

from hoposer.cli import main
from hoposer.stream.messages import camera_frame, hand_payload, pose_message
from hoposer.stream.publish import CurveKeys, PosePublisher


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


def test_keys_are_replaced_only_with_force(tmp_path, capsys):
    keys = tmp_path / "keys"
    assert main(["keys", str(keys)]) == 0
    first = (keys / "server.key_secret").read_bytes()
    assert main(["keys", str(keys)]) == 2
    assert "--force" in capsys.readouterr().err
    assert (keys / "server.key_secret").read_bytes() == first
    assert main(["keys", str(keys), "--force"]) == 0
    assert (keys / "server.key_secret").read_bytes() != first


def test_publishing_warns_when_anyone_may_subscribe(tmp_path, caplog):
    assert main(["keys", str(tmp_path / "keys")]) == 0
    server = CurveKeys(tmp_path / "keys" / "server.key_secret")  # no client list
    with caplog.at_level(logging.WARNING):
        PosePublisher(f"tcp://127.0.0.1:{free_port()}", curve=server).close()
    assert "any client holding the server's public key" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        PosePublisher(f"tcp://0.0.0.0:{free_port()}", allow_remote=True).close()
    assert "without CURVE" in caplog.text and "unencrypted" in caplog.text


def publishing(endpoint, curve, stop):
    def run():
        with PosePublisher(endpoint, curve=curve) as publisher:
            index = 0
            while not stop.is_set():
                publisher.publish(message(index))
                index += 1
                time.sleep(0.02)

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def test_a_listener_with_a_key_the_publisher_refuses_says_so_and_exits_2(tmp_path, capsys):
    assert main(["keys", str(tmp_path / "keys")]) == 0
    assert main(["keys", str(tmp_path / "stranger")]) == 0
    clients = tmp_path / "clients"
    clients.mkdir()
    (clients / "client.key").write_bytes((tmp_path / "keys" / "client.key").read_bytes())
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    server = CurveKeys(tmp_path / "keys" / "server.key_secret", authorized=clients)
    stop = threading.Event()
    thread = publishing(endpoint, server, stop)
    try:
        listen = ["listen", endpoint, "--timeout", "1.5", "--curve-server",
                  str(tmp_path / "keys" / "server.key")]  # fmt: skip
        stranger = str(tmp_path / "stranger" / "client.key_secret")
        assert main([*listen, "--curve-secret", stranger]) == 2
        err = capsys.readouterr().err
        assert "no pose from" in err and "refused this client's CURVE handshake" in err
        friend = str(tmp_path / "keys" / "client.key_secret")
        assert main([*listen, "--curve-secret", friend, "--count", "2"]) == 0
        assert capsys.readouterr().out.count(" age ") == 2
    finally:
        stop.set()
        thread.join()


def test_a_listener_with_nobody_publishing_says_so_and_exits_2(capsys):
    assert main(["listen", f"tcp://127.0.0.1:{free_port()}", "--timeout", "0.5"]) == 2
    assert "nothing is listening" in capsys.readouterr().err


def test_video_publish_takes_the_curve_options(tmp_path, capsys):
    garbage = tmp_path / "garbage.key_secret"
    garbage.write_text("no key here\n")
    args = ["video", "clip.mp4", "--publish", f"tcp://127.0.0.1:{free_port()}",
            "--curve-secret", str(garbage)]  # fmt: skip
    assert main(args) == 2
    assert "is not a CURVE key file" in capsys.readouterr().err
