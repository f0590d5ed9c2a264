"""Frames from a camera, a video file, an image folder, a single image or a stream URL.

Live sources (a camera index, an RTSP/HTTP URL) are read by a thread that keeps only the newest
frame: a consumer slower than the camera gets the latest image, never a backlog, and the number
of frames it skipped is counted. Files and folders are read in order, every frame, in one pass.

Each `Frame` carries its index in the source and the time it was captured
(`time.perf_counter()`, seconds), so every later stage can measure latency from capture.

A frame of a file or folder can be named by a reference string (`Source.ref`): the image's path,
or `<video file>#<index>` for a frame inside a video. Pseudo-labels store these; `read_frames`
reads a list of them in order, each video decoded once from its start, and `read_frame` reads one
(a seek into the video: for random access only, e.g. training on shuffled frames).
"""

import contextlib
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from hoposer.errors import HoposerError

#: Image files, for every command that reads them (frame folders, single images, calibration).
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".pgm", ".ppm")
#: Video files, where a folder is searched for clips (a file named directly may be any video
#: OpenCV decodes).
VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm")
_URL_PREFIXES = ("rtsp://", "rtsps://", "http://", "https://", "udp://", "tcp://")


@contextlib.contextmanager
def _quiet_opencv():
    level = cv2.getLogLevel()
    cv2.setLogLevel(0)  # silent
    try:
        yield
    finally:
        cv2.setLogLevel(level)


@dataclass(frozen=True)
class Frame:
    """One captured image."""

    index: int  #: position in the source (live sources: count of frames the camera delivered)
    timestamp: float  #: `time.perf_counter()` at capture
    image: np.ndarray  #: (H, W, 3) uint8 BGR, as OpenCV reads it
    media_time: float | None = None  #: a file's own time of the frame (index / fps), seconds

    @property
    def clock(self) -> float:
        """The time tracking and smoothing run on: a file's own, else the capture time.

        A file processed at any speed then gives the same poses; latencies use `timestamp`.
        """
        return self.timestamp if self.media_time is None else self.media_time


class Source:
    """Iterable of frames with a known kind and, for files, a length."""

    live: bool = False
    fps: float = 30.0
    size: tuple[int, int] = (0, 0)  #: (width, height)
    length: int | None = None  #: frame count when known (files, folders)
    dropped: int = 0  #: frames a live source skipped because the consumer was busy
    unreadable: int = 0  #: frames of a file that could not be decoded (skipped, not the end)

    def __iter__(self) -> Iterator[Frame]:  # noqa: D105
        raise NotImplementedError

    def ref(self, index: int) -> str | None:
        """The reference `read_frame` reads frame `index` back from; None for live sources."""
        return None

    def close(self) -> None:
        """Release the device or file."""


def open_source(
    spec: str | int | Path, live: bool = False, loop: bool = False, skip_unreadable: bool = False
) -> Source:
    """Open `spec`: a camera index (`0`), a video file, a folder of images, an image, or a URL.

    With `live`, a video file is played like a camera: at its own frame rate, newest frame only
    (what `hoposer live --camera clip.mp4` does), from the start again at its end with `loop`
    (a camera that never stops, for soak tests); otherwise files give every frame in order.
    A damaged frame inside a video is skipped and counted (`Source.unreadable`); an unreadable
    image of a folder is an error, unless `skip_unreadable` (large unlabelled data sets), when it
    is skipped and counted the same way.

    Raises:
        HoposerError: the camera, file or folder cannot be opened or holds no frames.
    """
    text = str(spec)
    if text.isdigit():
        return LiveSource(int(text), f"camera {text}")
    if text.lower().startswith(_URL_PREFIXES):
        return LiveSource(text, text)
    path = Path(text)
    if path.is_dir():
        files = image_files(path)
        if not files:
            raise HoposerError(f"{path} is a folder with no images ({', '.join(IMAGE_SUFFIXES)})")
        return ImageSource(files, skip_unreadable)
    if not path.exists():
        raise HoposerError(
            f"{path} does not exist: give a video file, an image folder, a URL or a camera index"
        )
    if path.suffix.lower() in IMAGE_SUFFIXES and not live:
        return ImageSource([path], skip_unreadable)
    if live:
        VideoFileSource(path).close()  # same checks and messages as for `video`
        return LiveSource(str(path), str(path), paced=True, loop=loop)
    return VideoFileSource(path)


def image_files(folder: str | Path) -> list[Path]:
    """The images directly in `folder` (`IMAGE_SUFFIXES`), sorted by name."""
    return sorted(p for p in Path(folder).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)


def read_image(path: str | Path, flags: int = cv2.IMREAD_COLOR) -> np.ndarray:
    """An image file, as OpenCV reads it with `flags` (default: 8-bit BGR).

    Raises:
        HoposerError: the file is missing, not an image, or corrupt.
    """
    image = cv2.imread(str(path), flags)
    if image is None:
        raise HoposerError(f"cannot read image {path} (missing, not an image, or corrupt)")
    return image


class VideoFileSource(Source):
    """Every frame of a video file, in order."""

    def __init__(self, path: Path) -> None:
        self.path = path
        with _quiet_opencv():
            self._capture = cv2.VideoCapture(str(path))
        if not self._capture.isOpened():
            raise HoposerError(
                f"cannot read {path} as a video: is it a video file OpenCV can decode?"
            )
        ok, first = self._capture.read()
        if not ok or first is None:
            self._capture.release()
            raise HoposerError(f"{path} holds no readable video frames (corrupt or empty file)")
        self._first = first
        self.size = (first.shape[1], first.shape[0])
        fps = self._capture.get(cv2.CAP_PROP_FPS)
        self.fps = fps if 0 < fps < 1000 else 30.0
        count = int(self._capture.get(cv2.CAP_PROP_FRAME_COUNT))
        self.length = count if count > 0 else None

    def ref(self, index: int) -> str:  # noqa: D102
        return f"{self.path}#{index}"

    def __iter__(self) -> Iterator[Frame]:
        """Every decodable frame; a damaged one inside the file is counted and skipped.

        Without a known frame count the first failed read ends the file.
        """
        yield Frame(0, time.perf_counter(), self._first, 0.0)
        index = 1
        while self.length is None or index < self.length:
            with _quiet_opencv():
                ok, image = self._capture.read()
            if ok and image is not None:
                yield Frame(index, time.perf_counter(), image, index / self.fps)
            elif self.length is None:
                return
            else:
                self.unreadable += 1
            index += 1

    def close(self) -> None:  # noqa: D102
        self._capture.release()


class ImageSource(Source):
    """Image files in the given order: a folder's frames, or one image.

    An unreadable file is an error, or with `skip_unreadable` skipped and counted; frame indices
    stay the files' positions either way.
    """

    def __init__(self, files: list[Path], skip_unreadable: bool = False) -> None:
        self.files = list(files)
        self.skip_unreadable = skip_unreadable
        first = next((image for _, image in self._images()), None)
        if first is None:
            raise HoposerError(
                f"none of the {len(self.files)} images in {self.files[0].parent} could be read "
                "(corrupt, or not images): give a folder of readable frames"
            )
        self.unreadable = 0  # counted again by the iteration
        self.size = (first.shape[1], first.shape[0])
        self.length = len(self.files)

    def _images(self) -> Iterator[tuple[int, np.ndarray]]:
        for index, path in enumerate(self.files):
            try:
                yield index, read_image(path)
            except HoposerError:
                if not self.skip_unreadable:
                    raise
                self.unreadable += 1

    def ref(self, index: int) -> str:  # noqa: D102
        return str(self.files[index])

    def __iter__(self) -> Iterator[Frame]:  # noqa: D105
        for index, image in self._images():
            yield Frame(index, time.perf_counter(), image, index / self.fps)


class LiveSource(Source):
    """A camera or a network stream, read by a thread that keeps only the newest frame."""

    live = True

    def __init__(
        self,
        device: int | str,
        name: str,
        paced: bool = False,
        open_timeout_s: float = 10.0,
        loop: bool = False,
    ) -> None:
        self.name = name
        self.paced = paced
        self.loop = loop
        with _quiet_opencv():  # OpenCV logs its own warnings for a missing device
            self._capture = cv2.VideoCapture(device)
        if not self._capture.isOpened():
            hint = (
                "check the index with `ls /dev/video*`"
                if isinstance(device, int)
                else "check the URL"
            )
            raise HoposerError(f"cannot open {name}: {hint}, or give a video file instead")
        self._capture.set(cv2.CAP_PROP_BUFFERSIZE, 1)
        fps = self._capture.get(cv2.CAP_PROP_FPS)
        self.fps = fps if 0 < fps < 1000 else 30.0
        self._lock = threading.Condition()
        self._latest: Frame | None = None
        self._taken = -1
        self._running = True
        self._ended = False
        self._delivered = 0
        self._thread = threading.Thread(target=self._read_loop, name=f"capture {name}", daemon=True)
        self._thread.start()
        with self._lock:
            self._lock.wait_for(lambda: self._latest is not None or self._ended, open_timeout_s)
            if self._latest is None:
                self.close()
                raise HoposerError(
                    f"{name} opened but delivered no frame in {open_timeout_s:.0f} s"
                )
            self.size = (self._latest.image.shape[1], self._latest.image.shape[0])

    def _read_loop(self) -> None:
        period = 1.0 / self.fps
        next_due = time.perf_counter()
        while self._running:
            if self.paced:  # a file played as a camera delivers frames at its own rate
                next_due += period
                time.sleep(max(0.0, next_due - time.perf_counter()))
            ok, image = self._capture.read()
            if not ok and self.loop and self._delivered:  # a looping file: start again
                self._capture.set(cv2.CAP_PROP_POS_FRAMES, 0)
                ok, image = self._capture.read()
            stamp = time.perf_counter()
            with self._lock:
                if not ok or image is None:
                    self._ended = True
                    self._lock.notify_all()
                    return
                self._latest = Frame(self._delivered, stamp, image)
                self._delivered += 1
                self._lock.notify_all()

    def __iter__(self) -> Iterator[Frame]:  # noqa: D105
        while True:
            with self._lock:
                self._lock.wait_for(
                    lambda: self._ended or (self._latest and self._latest.index > self._taken), 1.0
                )
                frame = self._latest
                if frame is None or frame.index <= self._taken:
                    if self._ended or not self._running:
                        return
                    continue
                self.dropped += frame.index - self._taken - 1
                self._taken = frame.index
            yield frame

    def close(self) -> None:  # noqa: D102
        self._running = False
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(timeout=2.0)
        self._capture.release()


def _split_ref(ref: str) -> tuple[str, int | None]:
    """(file, frame index in a video) of a frame reference; the index is None for an image."""
    path, _, index = ref.rpartition("#")
    if path and index.isdigit():
        return path, int(index)
    return ref, None


def read_frame(ref: str) -> np.ndarray:
    """The BGR image of one frame reference (random access: a frame in a video is a seek).

    Raises:
        HoposerError: unreadable image or frame.
    """
    path, index = _split_ref(ref)
    if index is None:
        return read_image(path)
    with _quiet_opencv():
        capture = cv2.VideoCapture(path)
        capture.set(cv2.CAP_PROP_POS_FRAMES, index)
        ok, image = capture.read()
    capture.release()
    if not ok or image is None:
        raise HoposerError(f"cannot read frame {ref}")
    return image


def read_frames(refs: Iterable[str]) -> Iterator[np.ndarray | None]:
    """The BGR images of frame references, in their order; None for one that cannot be read.

    Consecutive frames of one video are read in a single forward pass through it, never by
    seeking: the video is opened once and decoded up to each requested frame in turn. It is
    opened again only when a reference goes back in it or another file comes between.
    """
    reader: _ForwardReader | None = None
    try:
        for ref in refs:
            path, index = _split_ref(ref)
            if index is None:
                try:
                    yield read_image(path)
                except HoposerError:
                    yield None
                continue
            if reader is None or reader.path != path or not reader.ahead_of(index):
                if reader is not None:
                    reader.close()
                reader = None
                try:
                    reader = _ForwardReader(path)
                except HoposerError:
                    yield None
                    continue
            yield reader.read(index)
    finally:
        if reader is not None:
            reader.close()


class _ForwardReader:
    """One video's frames by index, decoded in order (the frames in between are passed over)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._source = VideoFileSource(Path(path))
        self._frames = iter(self._source)
        self._current: Frame | None = None  #: the furthest frame decoded so far

    def ahead_of(self, index: int) -> bool:
        """Whether frame `index` is not behind what was decoded already."""
        return self._current is None or index >= self._current.index

    def read(self, index: int) -> np.ndarray | None:
        """Frame `index`, or None when it is damaged or past the end."""
        while self._current is None or self._current.index < index:
            frame = next(self._frames, None)
            if frame is None:
                return None
            self._current = frame
        return self._current.image if self._current.index == index else None

    def close(self) -> None:  # noqa: D102
        self._source.close()
