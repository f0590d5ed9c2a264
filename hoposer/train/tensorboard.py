"""A TensorBoard scalar writer with no dependency: event files written directly.

TensorBoard reads `events.out.tfevents.*` files: TFRecords (length, masked CRC32C of the length,
payload, masked CRC32C of the payload) whose payloads are `Event` protocol buffers. Scalars need
only a handful of fields, encoded here by hand, so training logs scalars without pulling in
TensorFlow or the tensorboard package (install `tensorboard` only to view them).
"""

import socket
import struct
import time
from pathlib import Path

_CRC_TABLE = []
for _i in range(256):
    _c = _i
    for _ in range(8):
        _c = (_c >> 1) ^ 0x82F63B78 if _c & 1 else _c >> 1
    _CRC_TABLE.append(_c)


def crc32c(data: bytes) -> int:
    """CRC-32C (Castagnoli), the checksum TFRecords use."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc = _CRC_TABLE[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def _masked_crc(data: bytes) -> int:
    crc = crc32c(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _field(number: int, wire_type: int, payload: bytes) -> bytes:
    return _varint((number << 3) | wire_type) + payload


def _length_delimited(number: int, payload: bytes) -> bytes:
    return _field(number, 2, _varint(len(payload)) + payload)


def scalar_event(tag: str, value: float, step: int, wall_time: float) -> bytes:
    """Serialised `Event{wall_time, step, summary{value{tag, simple_value}}}`."""
    summary_value = _length_delimited(1, tag.encode()) + _field(5, 5, struct.pack("<f", value))
    summary = _length_delimited(1, summary_value)
    return (
        _field(1, 1, struct.pack("<d", wall_time))
        + _field(2, 0, _varint(step))
        + _length_delimited(5, summary)
    )


def _file_version_event(wall_time: float) -> bytes:
    return _field(1, 1, struct.pack("<d", wall_time)) + _length_delimited(3, b"brain.Event:2")


class ScalarWriter:
    """Appends scalars to a fresh event file in `log_dir`."""

    def __init__(self, log_dir: str | Path) -> None:
        self.log_dir = Path(log_dir)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        now = time.time()
        name = f"events.out.tfevents.{int(now)}.{socket.gethostname()}"
        self.path = self.log_dir / name
        self._file = open(self.path, "ab")  # noqa: SIM115 (kept open for the run)
        self._write(_file_version_event(now))

    def _write(self, payload: bytes) -> None:
        header = struct.pack("<Q", len(payload))
        record = header + struct.pack("<I", _masked_crc(header)) + payload
        self._file.write(record + struct.pack("<I", _masked_crc(payload)))

    def add_scalar(self, tag: str, value: float, step: int) -> None:
        """Log `value` under `tag` at `step`."""
        self._write(scalar_event(tag, float(value), int(step), time.time()))

    def flush(self) -> None:
        """Push buffered records to disk."""
        self._file.flush()

    def close(self) -> None:
        """Flush and close the file."""
        self._file.close()
