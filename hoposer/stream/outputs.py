"""What `hoposer video` writes: the annotated video, one JSON message per frame, a summary.

Each file is written under a temporary name beside its destination and renamed when complete,
so an interrupted run never leaves a truncated file under the final name.
"""

import os
from pathlib import Path

import cv2
import numpy as np

from hoposer.errors import HoposerError
from hoposer.io import json_text, write_text_atomic
from hoposer.stream.messages import encode_message


def check_writable(out: Path) -> None:
    """Fail early, with one line, when `out` cannot be written."""
    if out.is_dir():
        raise HoposerError(f"--out {out} is a directory: give a file name such as result.mp4")
    parent = out.parent if str(out.parent) else Path(".")
    if not parent.is_dir():
        raise HoposerError(f"cannot write {out}: folder {parent} does not exist")
    if not os.access(parent, os.W_OK):
        raise HoposerError(f"cannot write {out}: folder {parent} is not writable")
    if out.suffix.lower() not in (".mp4", ".avi", ".mkv", ".mov"):
        raise HoposerError(f"--out {out}: use a video file name ending in .mp4, .avi, .mkv or .mov")


def check_not_input(out: Path, source: str) -> None:
    """Refuse outputs that would overwrite the input clip (or a sibling it owns)."""
    source_path = Path(source)
    if not source_path.exists():
        return  # a camera index or a URL
    written = (out, out.with_suffix(".jsonl"), out.with_name(out.stem + ".summary.json"))
    for path in written:
        same = path.resolve() == source_path.resolve() or (
            path.exists() and os.path.samefile(path, source_path)
        )
        if same:
            raise HoposerError(
                f"--out {out} would overwrite the input {source}: choose another file name"
            )


class VideoOutputs:
    """Annotated video + `<stem>.jsonl` + `<stem>.summary.json`, all renamed on `close()`."""

    def __init__(self, out: str | Path, fps: float) -> None:
        self.out = Path(out)
        check_writable(self.out)
        self.jsonl = self.out.with_suffix(".jsonl")
        self.summary = self.out.with_name(self.out.stem + ".summary.json")
        self._tmp_video = self.out.with_name(f".{self.out.stem}.partial{self.out.suffix}")
        self._tmp_jsonl = self.jsonl.with_name(f".{self.jsonl.name}.partial")
        # Line-buffered: each finished frame's message is in the file at once, for a reader
        # following the run and for what a kill leaves behind (a block buffer held ~10 frames).
        self._lines = open(self._tmp_jsonl, "w", encoding="utf-8", buffering=1)  # noqa: SIM115
        self.fps = fps
        self._writer: cv2.VideoWriter | None = None
        self.frames = 0

    def write(self, image: np.ndarray, message: dict) -> None:
        """Append one annotated frame (BGR) and its message."""
        if self._writer is None:
            fourcc = cv2.VideoWriter_fourcc(*("mp4v" if self.out.suffix != ".avi" else "MJPG"))
            height, width = image.shape[:2]
            self._writer = cv2.VideoWriter(str(self._tmp_video), fourcc, self.fps, (width, height))
            if not self._writer.isOpened():
                raise HoposerError(f"OpenCV cannot write {self.out.suffix} video to {self.out}")
        self._writer.write(image)
        self._lines.write(encode_message(message) + "\n")
        self.frames += 1

    def close(self, summary: dict) -> None:
        """Finish: flush, rename into place, write the summary."""
        if self._writer is not None:
            self._writer.release()
        self._lines.close()
        if self.frames:
            os.replace(self._tmp_video, self.out)
        os.replace(self._tmp_jsonl, self.jsonl)
        write_text_atomic(self.summary, json_text(summary, indent=2) + "\n")

    def keep_partial(self, summary: dict) -> Path:
        """An interrupted run: keep what was written under visible `<stem>.partial.*` names.

        Any earlier complete result at `out` stays untouched.

        Returns:
            The partial video's path.
        """
        video = self.out.with_name(f"{self.out.stem}.partial{self.out.suffix}")
        if self._writer is not None:
            self._writer.release()
            self._writer = None
        self._lines.close()
        if self.frames:
            os.replace(self._tmp_video, video)
        os.replace(self._tmp_jsonl, video.with_suffix(".jsonl"))
        write_text_atomic(
            video.with_name(video.stem + ".summary.json"), json_text(summary, indent=2) + "\n"
        )
        return video

    def abort(self) -> None:
        """Remove the partial files (an error or Ctrl-C before the end)."""
        if self._writer is not None:
            self._writer.release()
        self._lines.close()
        for path in (self._tmp_video, self._tmp_jsonl):
            path.unlink(missing_ok=True)
