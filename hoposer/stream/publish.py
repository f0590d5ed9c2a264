"""Poses over ZeroMQ: a publisher that never blocks the pipeline, and the reference subscriber.

Each message is two frames: the topic (`hoposer.pose`) and a UTF-8 JSON payload that follows
`pose.schema.json`. The publisher binds to loopback unless told otherwise, keeps a small send
high-water mark and sends without blocking: when a subscriber is slow or absent, messages are
dropped (and counted) rather than queued, so memory stays bounded and the robot always gets the
newest pose. Optional CURVE encryption + authentication uses key files made by `make_keys`.
"""

import ipaddress
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from hoposer.errors import HoposerError
from hoposer.io import loads_strict
from hoposer.stream.messages import encode_message

TOPIC = "hoposer.pose"
SEND_HWM = 4  #: messages queued per subscriber before new ones are dropped


@dataclass(frozen=True)
class CurveKeys:
    """Paths of CURVE key files (made by `make_keys`)."""

    secret: Path  #: this side's `.key_secret` file
    server_public: Path | None = None  #: subscriber side: the publisher's `.key` file
    authorized: Path | None = None  #: publisher side: folder of client `.key` files allowed in


def check_endpoint(endpoint: str, allow_remote: bool) -> None:
    """Refuse a bind address other than loopback unless `allow_remote`.

    Raises:
        HoposerError: malformed endpoint, or a non-loopback one without `allow_remote`.
    """
    parsed = urlparse(endpoint)
    if parsed.scheme not in ("tcp", "ipc", "inproc"):
        raise HoposerError(
            f"bad endpoint {endpoint!r}: use tcp://HOST:PORT, ipc://PATH or inproc://NAME"
        )
    if parsed.scheme != "tcp":
        return
    if parsed.port is None:
        raise HoposerError(
            f"bad endpoint {endpoint!r}: tcp needs a port, e.g. tcp://127.0.0.1:5555"
        )
    host = parsed.hostname or ""
    if host in ("localhost",):
        return
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback and not allow_remote:
        raise HoposerError(
            f"{endpoint} would publish poses beyond this machine: pass --allow-remote to bind it "
            "(consider --curve for encryption), or use tcp://127.0.0.1:PORT"
        )


class PosePublisher:
    """A ZeroMQ PUB socket sending pose messages without ever blocking."""

    def __init__(
        self, endpoint: str, allow_remote: bool = False, curve: CurveKeys | None = None
    ) -> None:
        import zmq

        check_endpoint(endpoint, allow_remote)
        self.context = zmq.Context()
        self.socket = self.context.socket(zmq.PUB)
        self.socket.setsockopt(zmq.SNDHWM, SEND_HWM)
        self.socket.setsockopt(zmq.LINGER, 0)
        self._authenticator = None
        if curve is not None:
            self._authenticator = _serve_curve(self.context, self.socket, curve)
        try:
            self.socket.bind(endpoint)
        except zmq.ZMQError as err:
            self.close()
            raise HoposerError(f"cannot publish on {endpoint}: {err}") from None
        self.endpoint = endpoint
        self.sent = 0
        self.dropped = 0

    def publish(self, message: dict) -> bool:
        """Send one message; False (and counted) when it had to be dropped."""
        import zmq

        payload = encode_message(message).encode()
        try:
            self.socket.send_multipart([TOPIC.encode(), payload], flags=zmq.NOBLOCK)
        except zmq.Again:
            self.dropped += 1
            return False
        self.sent += 1
        return True

    def close(self) -> None:
        """Close the socket at once (queued messages are discarded)."""
        if self._authenticator is not None:
            self._authenticator.stop()
        self.socket.close(linger=0)
        self.context.term()

    def __enter__(self) -> "PosePublisher":  # noqa: D105
        return self

    def __exit__(self, *exc) -> None:  # noqa: D105
        self.close()


class PoseSubscriber:
    """A SUB socket for `hoposer.pose` messages (the reference client)."""

    def __init__(self, endpoint: str, curve: CurveKeys | None = None) -> None:
        import zmq

        check_endpoint(endpoint, allow_remote=True)
        self.context = zmq.Context()
        self.socket = self.context.socket(zmq.SUB)
        self.socket.setsockopt(zmq.LINGER, 0)
        self.socket.setsockopt(zmq.RCVHWM, 100)
        if curve is not None:
            _client_curve(self.socket, curve)
        self.socket.setsockopt(zmq.SUBSCRIBE, TOPIC.encode())
        self.socket.connect(endpoint)
        self.invalid = 0  #: payloads skipped because they were not strict JSON

    def receive(self, timeout_s: float | None = None) -> dict | None:
        """The next message, or None after `timeout_s` seconds without a valid one.

        A payload that is not strict JSON (NaN, Infinity, truncated) is skipped and counted in
        `invalid`: a robot must never act on it.
        """
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while True:
            wait_ms = None if deadline is None else max(0, int((deadline - time.monotonic()) * 1e3))
            if wait_ms is not None and not self.socket.poll(wait_ms):
                return None
            _topic, payload = self.socket.recv_multipart()
            try:
                return loads_strict(payload)
            except ValueError:  # UnicodeDecodeError and JSONDecodeError included
                self.invalid += 1

    def close(self) -> None:  # noqa: D102
        self.socket.close(linger=0)
        self.context.term()

    def __enter__(self) -> "PoseSubscriber":  # noqa: D105
        return self

    def __exit__(self, *exc) -> None:  # noqa: D105
        self.close()


def make_keys(folder: str | Path) -> dict[str, Path]:
    """Write a server and a client CURVE key pair into `folder` (secret files mode 0600).

    Returns:
        Paths: server/client public (`.key`) and secret (`.key_secret`) files.
    """
    import zmq
    import zmq.auth

    if not zmq.has("curve"):
        raise HoposerError("this libzmq was built without CURVE support: reinstall pyzmq from PyPI")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for name in ("server", "client"):
        public, secret = zmq.auth.create_certificates(str(folder), name)
        Path(secret).chmod(0o600)
        out[f"{name}_public"], out[f"{name}_secret"] = Path(public), Path(secret)
    return out


def _load_secret(path: Path) -> tuple[bytes, bytes]:
    import zmq.auth

    if not path.is_file():
        raise HoposerError(f"CURVE key file {path} not found: make one with `hoposer keys DIR`")
    public, secret = zmq.auth.load_certificate(str(path))
    if secret is None:
        raise HoposerError(f"{path} holds no secret key: give the .key_secret file")
    return public, secret


def _serve_curve(context, socket, curve: CurveKeys):
    import zmq
    from zmq.auth.thread import ThreadAuthenticator

    public, secret = _load_secret(curve.secret)
    authenticator = None
    if curve.authorized is not None:
        if not curve.authorized.is_dir():
            raise HoposerError(f"{curve.authorized} is not a folder of client .key files")
        authenticator = ThreadAuthenticator(context)
        authenticator.start()
        authenticator.configure_curve(domain="*", location=str(curve.authorized))
    socket.curve_secretkey = secret
    socket.curve_publickey = public
    socket.setsockopt(zmq.CURVE_SERVER, 1)
    return authenticator


def _client_curve(socket, curve: CurveKeys) -> None:
    import zmq.auth

    if curve.server_public is None or not curve.server_public.is_file():
        raise HoposerError("CURVE needs the publisher's public key file (server.key)")
    public, secret = _load_secret(curve.secret)
    server_public, _ = zmq.auth.load_certificate(str(curve.server_public))
    socket.curve_secretkey = secret
    socket.curve_publickey = public
    socket.curve_serverkey = server_public
