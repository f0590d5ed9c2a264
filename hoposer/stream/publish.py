"""Poses over ZeroMQ: a publisher that never blocks the pipeline, and the reference subscriber.

Each message is one ZeroMQ frame: the topic `hoposer.pose`, a space, and the UTF-8 JSON payload
(strict JSON, `pose.schema.json`). One frame, not a topic frame + payload frame, because
`ZMQ_CONFLATE` (keep only the newest message) does not support multipart messages.

Freshness: both sides keep only the newest message (`ZMQ_CONFLATE` on the publisher's queue per
subscriber and on the subscriber's receive queue; the subscriber's I/O thread drains the TCP
stream continuously, so nothing piles up in kernel buffers either). A subscriber that reads once
a second gets the newest pose, at most one frame period old when it reads, never a backlog; it
counts the frames it never saw in `skipped`. When the publisher goes away, a pose still waiting
in the subscriber's queue is dropped, not handed out: nothing arrives after the publisher closes.

The publisher binds to loopback unless told otherwise. Optional CURVE encryption +
authentication uses key files made by `make_keys`.
"""

import ipaddress
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from hoposer.errors import HoposerError
from hoposer.io import loads_strict
from hoposer.stream.messages import encode_message

TOPIC = "hoposer.pose"
PREFIX = (TOPIC + " ").encode()  #: what every message starts with (and subscribers filter on)

log = logging.getLogger(__name__)


def message_age_s(message: dict) -> float:
    """Seconds since the message's frame was captured (clocks of both machines must agree)."""
    return time.time() - message["capture_time"]


@dataclass(frozen=True)
class CurveKeys:
    """Paths of CURVE key files (made by `make_keys`)."""

    secret: Path  #: this side's `.key_secret` file
    server_public: Path | None = None  #: subscriber side: the publisher's `.key` file
    authorized: Path | None = None  #: publisher side: folder of client `.key` files allowed in


def is_loopback(endpoint: str) -> bool:
    """Whether a (checked) endpoint stays on this machine (ipc/inproc, or tcp on loopback)."""
    parsed = urlparse(endpoint)
    if parsed.scheme != "tcp":
        return True
    host = parsed.hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


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
    try:
        port = parsed.port
    except ValueError:  # not a number, or beyond 65535
        port = -1
    if port is None or not 1 <= port <= 65535:
        raise HoposerError(
            f"bad endpoint {endpoint!r}: tcp needs a port from 1 to 65535, e.g. "
            "tcp://127.0.0.1:5555"
        )
    if not is_loopback(endpoint) and not allow_remote:
        raise HoposerError(
            f"{endpoint} would publish poses beyond this machine: pass --allow-remote to bind it "
            "(consider --curve for encryption), or use tcp://127.0.0.1:PORT"
        )


class PosePublisher:
    """A ZeroMQ PUB socket sending pose messages without ever blocking or queueing old ones."""

    def __init__(
        self, endpoint: str, allow_remote: bool = False, curve: CurveKeys | None = None
    ) -> None:
        import zmq

        check_endpoint(endpoint, allow_remote)
        self.context = zmq.Context()
        self.socket = self.context.socket(zmq.PUB)
        self.socket.setsockopt(zmq.CONFLATE, 1)  # per subscriber: only the newest message waits
        self.socket.setsockopt(zmq.LINGER, 0)
        self._authenticator = None
        try:
            if curve is not None:
                self._authenticator = _serve_curve(self.context, self.socket, curve)
            self.socket.bind(endpoint)
        except zmq.ZMQError as err:
            self.close()
            raise HoposerError(f"cannot publish on {endpoint}: {err}") from None
        except BaseException:
            self.close()  # a left-open socket would hang the context's term() at exit
            raise
        self.endpoint = endpoint
        self.sent = 0
        if curve is None and not is_loopback(endpoint):
            log.warning(
                "publishing on %s without CURVE: poses travel unencrypted and any machine that "
                "can reach it may subscribe; make keys with `hoposer keys DIR` and pass "
                "--curve-secret and --curve-clients",
                endpoint,
            )

    def publish(self, message: dict) -> None:
        """Send one message (replacing any older one still waiting for a slow subscriber)."""
        import zmq

        self.socket.send(PREFIX + encode_message(message).encode(), flags=zmq.NOBLOCK)
        self.sent += 1

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
    """A SUB socket for `hoposer.pose` messages that holds only the newest (the reference client).

    Attributes:
        invalid: payloads skipped because they were not strict JSON.
        skipped: gaps in `frame_index` between the messages it returned: frames it never saw,
            because it read too slowly or the publisher skipped them (a live camera's dropped
            frames).
        after_close: poses dropped because their publisher had gone away before they were read.
    """

    def __init__(self, endpoint: str, curve: CurveKeys | None = None) -> None:
        import zmq

        check_endpoint(endpoint, allow_remote=True)
        self.context = zmq.Context()
        self.socket = self.context.socket(zmq.SUB)
        self.socket.setsockopt(zmq.LINGER, 0)
        self.socket.setsockopt(zmq.CONFLATE, 1)  # keep only the newest message
        if curve is not None:
            try:
                _client_curve(self.socket, curve)
            except BaseException:
                self.socket.close(linger=0)
                self.context.term()
                raise
        self.socket.setsockopt(zmq.SUBSCRIBE, PREFIX)
        self._monitor = self.socket.get_monitor_socket(
            zmq.EVENT_CONNECTED
            | zmq.EVENT_HANDSHAKE_SUCCEEDED
            | zmq.EVENT_DISCONNECTED
            | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL
            | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
            | zmq.EVENT_HANDSHAKE_FAILED_AUTH
        )
        self.endpoint = endpoint
        self.curve = curve
        self.connected: bool | None = None  #: None until the first connection event
        self.ever_connected = False  #: a TCP connection to the publisher was made
        self.handshake_failed = False  #: the publisher refused the keys (or spoke another way)
        self.socket.connect(endpoint)
        self.invalid = self.skipped = self.after_close = 0
        self._last_index: int | None = None

    def _read_events(self) -> None:
        import zmq
        from zmq.utils.monitor import recv_monitor_message

        failed = (
            zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL
            | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
            | zmq.EVENT_HANDSHAKE_FAILED_AUTH
        )
        while self._monitor.poll(0):
            event = recv_monitor_message(self._monitor, flags=zmq.NOBLOCK)["event"]
            if event == zmq.EVENT_DISCONNECTED:
                self.connected = False
            elif event & failed:
                self.handshake_failed = True
            else:
                self.connected = self.ever_connected = True

    def silence_hint(self) -> str:
        """Why nothing may have arrived: what the connection events say, and what to check."""
        self._read_events()
        if self.handshake_failed and self.curve is not None:
            return (
                "the publisher refused this client's CURVE handshake: --curve-server must be "
                "the publisher's server.key and this client's .key must be in the publisher's "
                "--curve-clients folder"
            )
        if self.handshake_failed:
            return (
                "the handshake with the publisher failed: it probably uses CURVE; pass "
                "--curve-secret (this client's .key_secret) and --curve-server (its server.key)"
            )
        if not self.ever_connected:
            return (
                f"nothing is listening at {self.endpoint}: is `hoposer live` (or `video "
                "--publish`) running with this --publish endpoint, and is the port reachable?"
            )
        return (
            "connected, but the publisher sent nothing: is it still starting (loading the "
            "model) or stopped?"
            + (" With CURVE, check that --curve-server is its server.key" if self.curve else "")
        )

    def receive(self, timeout_s: float | None = None) -> dict | None:
        """The newest message, or None after `timeout_s` seconds without a valid one.

        A payload that is not strict JSON (NaN, Infinity, truncated) is skipped and counted in
        `invalid`, and a pose whose publisher has since gone away in `after_close`: a robot must
        never act on either.
        """
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while True:
            wait_ms = -1 if deadline is None else max(0, int((deadline - time.monotonic()) * 1e3))
            if not self.socket.poll(wait_ms):
                return None
            payload = self.socket.recv()
            self._read_events()
            if self.connected is False:
                self.after_close += 1
                continue
            try:
                message = loads_strict(payload[len(PREFIX) :])
            except ValueError:  # UnicodeDecodeError and JSONDecodeError included
                self.invalid += 1
                continue
            self._count_skipped(message)
            return message

    def _count_skipped(self, message: dict) -> None:
        index = message.get("frame_index") if isinstance(message, dict) else None
        if isinstance(index, int):
            if self._last_index is not None and index > self._last_index:
                self.skipped += index - self._last_index - 1
            self._last_index = index

    def close(self) -> None:  # noqa: D102
        self.socket.disable_monitor()
        self._monitor.close(linger=0)
        self.socket.close(linger=0)
        self.context.term()

    def __enter__(self) -> "PoseSubscriber":  # noqa: D105
        return self

    def __exit__(self, *exc) -> None:  # noqa: D105
        self.close()


def make_keys(folder: str | Path, force: bool = False) -> dict[str, Path]:
    """Write a server and a client CURVE key pair into `folder` (secret files mode 0600).

    Existing key pairs are never replaced silently (their holders would lose access): that
    needs `force`.

    Returns:
        Paths: server/client public (`.key`) and secret (`.key_secret`) files.
    """
    import zmq
    import zmq.auth

    from hoposer.io import check_writable_folder

    if not zmq.has("curve"):
        raise HoposerError("this libzmq was built without CURVE support: reinstall pyzmq from PyPI")
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise HoposerError(f"{folder} is a file, not a folder: give a folder for the key files")
    check_writable_folder(folder, "folder")
    existing = [
        folder / f"{name}{suffix}"
        for name in ("server", "client")
        for suffix in (".key", ".key_secret")
        if (folder / f"{name}{suffix}").exists()
    ]
    if existing and not force:
        raise HoposerError(
            f"{folder} already holds keys ({', '.join(p.name for p in existing)}): pass --force "
            "to replace them (clients holding the old ones lose access), or choose another folder"
        )
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for name in ("server", "client"):
        public, secret = zmq.auth.create_certificates(str(folder), name)
        Path(secret).chmod(0o600)
        out[f"{name}_public"], out[f"{name}_secret"] = Path(public), Path(secret)
    return out


def _load_key(path: Path) -> tuple[bytes, bytes | None]:
    """(public, secret or None) from a key file made by `make_keys`."""
    import zmq.auth

    if not path.is_file():
        raise HoposerError(f"CURVE key file {path} not found: make one with `hoposer keys DIR`")
    try:
        return zmq.auth.load_certificate(str(path))
    except (ValueError, OSError, UnicodeDecodeError):
        raise HoposerError(
            f"{path} is not a CURVE key file (no key in it): give a file made by `hoposer keys DIR`"
        ) from None


def _load_secret(path: Path) -> tuple[bytes, bytes]:
    public, secret = _load_key(path)
    if secret is None:
        raise HoposerError(f"{path} holds no secret CURVE key: give the .key_secret file")
    return public, secret


def _serve_curve(context, socket, curve: CurveKeys):
    import zmq
    from zmq.auth.thread import ThreadAuthenticator

    public, secret = _load_secret(curve.secret)
    _set_keys(socket, curve.secret, secretkey=secret, publickey=public)
    socket.setsockopt(zmq.CURVE_SERVER, 1)
    if curve.authorized is None:
        log.warning(
            "CURVE without --curve-clients: poses are encrypted, but any client holding the "
            "server's public key (%s) may subscribe; pass --curve-clients DIR to admit only the "
            "client keys in DIR",
            curve.secret.with_suffix(".key").name,
        )
        return None
    if not curve.authorized.is_dir():
        raise HoposerError(f"{curve.authorized} is not a folder of client .key files")
    for client in curve.authorized.glob("*.key"):
        _load_key(client)  # a garbage file there is named, not a traceback from the auth thread
    authenticator = ThreadAuthenticator(context)
    authenticator.start()
    authenticator.configure_curve(domain="*", location=str(curve.authorized))
    return authenticator


def _client_curve(socket, curve: CurveKeys) -> None:
    if curve.server_public is None or not curve.server_public.is_file():
        raise HoposerError("CURVE needs the publisher's public key file (server.key)")
    public, secret = _load_secret(curve.secret)
    server_public, _ = _load_key(curve.server_public)
    _set_keys(socket, curve.secret, secretkey=secret, publickey=public)
    _set_keys(socket, curve.server_public, serverkey=server_public)


def _set_keys(socket, path: Path, **keys: bytes) -> None:
    import zmq

    try:
        for name, value in keys.items():
            setattr(socket, f"curve_{name}", value)
    except zmq.ZMQError:  # EINVAL: not a 40-character Z85 key
        raise HoposerError(
            f"{path} does not hold a valid CURVE key: make new ones with `hoposer keys DIR`"
        ) from None
