"""Unlabelled videos with per-frame hand (and object) boxes, the input of pseudo-labelling.

Two sources:

* **box annotations** in the Something-Else format of Something-Something v2 (also what
  `hoposer train synth --videos` writes as `annotations.json`)::

      {"<video id>": [{"name": "<video id>/<frame>.jpg",
                       "labels": [{"category": "hand", "box2d": {"x1":…, "y1":…, "x2":…, "y2":…}},
                                  {"category": "<object>", "box2d": {…}}, …]}, …], …}

  Frame images are looked up as `ROOT/<name>`, `ROOT/frames/<name>`, and, for our synthetic
  layout, `ROOT/<split>/<video>/rgb/<frame>.jpg`. Frames without a hand box are left out; the
  object box is the first non-hand label (or none). Of two hand boxes the larger is used.
* **plain videos** (`frames.sources.VIDEO_SUFFIXES`) or **frame folders** (its
  `IMAGE_SUFFIXES`, as `hoposer video` reads them) without annotations: MediaPipe (the detector
  `hoposer video` uses) makes the hand box of every frame (the object box is the grasp region).
  Each is read in one pass, and its frames are named by `Source.ref`.
"""

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from hoposer.errors import HoposerError
from hoposer.frames.sources import IMAGE_SUFFIXES, VIDEO_SUFFIXES, image_files, open_source

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FrameRef:
    """One frame of an unlabelled video."""

    image: str  #: frame reference (`frames.sources`): image path, or "<video file>#<index>"
    hand_box: np.ndarray  #: (4,) pixels
    object_box: np.ndarray | None  #: (4,) pixels


@dataclass(frozen=True)
class Video:
    """A video id and its frames in order."""

    id: str
    frames: tuple[FrameRef, ...]


def _box(label: dict) -> np.ndarray:
    b = label["box2d"]
    return np.array([b["x1"], b["y1"], b["x2"], b["y2"]], np.float64)


def _area(box: np.ndarray) -> float:
    return float(np.prod(np.maximum(box[2:] - box[:2], 0)))


def _find_image(root: Path, name: str) -> Path | None:
    video, _, frame = name.partition("/")
    candidates = [root / name, root / "frames" / name]
    candidates += [root / split / video / "rgb" / frame for split in ("train", "evaluation")]
    return next((c for c in candidates if c.is_file()), None)


def read_annotated_videos(root: str | Path, annotations: str | Path | None = None) -> list[Video]:
    """Videos from a Something-Else-format box file (default `ROOT/annotations.json`).

    Raises:
        HoposerError: missing or malformed annotations.
    """
    root = Path(root)
    path = Path(annotations) if annotations else root / "annotations.json"
    try:
        data = json.loads(path.read_text())
    except OSError as err:
        raise HoposerError(f"cannot read box annotations {path}: {err.strerror}") from None
    except json.JSONDecodeError as err:
        raise HoposerError(f"{path} is not valid JSON ({err.msg}, line {err.lineno})") from None
    if not isinstance(data, dict):
        raise HoposerError(f"{path}: expected {{video id: [frames]}} (the Something-Else format)")
    videos = []
    for video_id in sorted(data):
        frames = []
        for entry in data[video_id]:
            try:
                labels = entry["labels"]
                hands = [_box(x) for x in labels if x.get("category") == "hand"]
                objects = [_box(x) for x in labels if x.get("category") != "hand"]
                name = entry["name"]
            except (KeyError, TypeError) as err:
                raise HoposerError(
                    f"{path}: video {video_id}: frame entry without {err} (expected name, "
                    "labels[].category, labels[].box2d.x1..y2)"
                ) from None
            if not hands:
                continue
            image = _find_image(root, name)
            if image is None:
                continue
            hand = max(hands, key=_area)
            frames.append(FrameRef(str(image), hand, objects[0] if objects else None))
        if frames:
            videos.append(Video(str(video_id), tuple(frames)))
    if not videos:
        raise HoposerError(f"{path}: no frame with a hand box and an existing image under {root}")
    return videos


def detect_videos(root: str | Path) -> list[Video]:
    """Videos (files or frame folders under `root`) with MediaPipe hand boxes.

    A video that cannot be opened is skipped with a warning, as are unreadable frames.
    """
    from hoposer.frames.detect import MediaPipeHandDetector, grasp_box

    root = Path(root)
    paths = sorted(p for p in root.iterdir() if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES)
    paths += sorted(p for p in root.iterdir() if p.is_dir() and image_files(p))
    if not paths:
        raise HoposerError(
            f"{root} holds no videos ({', '.join(VIDEO_SUFFIXES)}) and no folders of frames "
            f"({', '.join(IMAGE_SUFFIXES)}): give the folder that holds them"
        )
    videos = []
    for path in paths:
        try:
            source = open_source(path, skip_unreadable=True)
        except HoposerError as err:
            log.warning("skipping %s: %s", path, err)
            continue
        detector = MediaPipeHandDetector(video=True)
        frames = []
        try:
            for frame in source:
                found = detector.detect(cv2.cvtColor(frame.image, cv2.COLOR_BGR2RGB))
                if found is not None:
                    frames.append(
                        FrameRef(
                            source.ref(frame.index),
                            found.box,
                            grasp_box(found.box, found.landmarks),
                        )
                    )
        finally:
            detector.close()
            source.close()
        if source.unreadable:
            log.warning("%s: %d unreadable frames skipped", path, source.unreadable)
        if frames:
            videos.append(Video(path.stem, tuple(frames)))
    return videos


def load_videos(root: str | Path, annotations: str | Path | None = None) -> list[Video]:
    """Annotated videos when a box file exists (or is given), else detected ones.

    Frames are named by absolute path: the pseudo-labels keep these names, and training or the
    report may run from another directory than the labelling.
    """
    root = Path(root).resolve()
    if not root.is_dir():
        raise HoposerError(f"video folder {root} does not exist")
    if annotations is not None or (root / "annotations.json").is_file():
        return read_annotated_videos(root, annotations)
    return detect_videos(root)
