"""Hand and object boxes for the joint model.

hands: MediaPipe Hands (the palm detector + landmark model shipped inside the mediapipe 0.10.21
    wheel, so no download). In video mode MediaPipe tracks the hand from its landmarks and runs
    the palm detector again only when tracking is lost. The hand box is the landmarks' box,
    expanded like the training crops. MediaPipe labels handedness as if the image were mirrored
    (a selfie view); frames here are not mirrored unless `selfie=True`, so its label is swapped.
    Its handedness can be wrong on unusual hands (it reads the featureless palm of the rendered
    stand-in hand as the back of a left hand): `side="right"|"left"` fixes it when known.
objects: tracked by pose. The box of frame t is the projection of the object's 3D control
    points at the pose of frame t − 1; it starts from (and falls back to) the region the grasp
    makes likely: the hand box pushed toward the fingers. A user-supplied YOLO-format ONNX
    detector (`onnx:PATH`) replaces that when given.
"""

import contextlib
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from hoposer.errors import HoposerError
from hoposer.geometry.boxes import box_iou
from hoposer.geometry.camera import project
from hoposer.geometry.crop import HAND_BOX_EXPAND, expand_box


@contextlib.contextmanager
def quiet_native_stderr():
    """Silence what native code writes to file descriptor 2 (Python's own errors included)."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


@dataclass(frozen=True)
class HandDetection:
    """One hand found in a frame."""

    box: np.ndarray  #: (4,) [x1, y1, x2, y2] pixels
    landmarks: np.ndarray  #: (21, 2) MediaPipe's landmarks, pixels (hoposer's order)
    side: str  #: "right" or "left"
    score: float
    right_probability: float = 0.5  #: MediaPipe's handedness as P(right hand), mirroring undone
    #: (21, 3) MediaPipe's metric "world" landmarks (metres, origin near the hand's centre,
    #: camera orientation), or None when the detector has none
    world_landmarks: np.ndarray | None = None
    #: (21,) per-landmark confidence (visibility × presence) when the detector reports it
    landmark_weights: np.ndarray | None = None


class HandDetector(Protocol):
    """Finds the hand to estimate in an RGB frame."""

    def detect(self, rgb: np.ndarray) -> HandDetection | None:
        """The most confident hand, or None."""
        ...

    def detect_all(self, rgb: np.ndarray) -> list[HandDetection]:
        """Every hand found (the stream's tracker picks the one to follow)."""
        ...

    def close(self) -> None:
        """Release resources."""
        ...


#: two reported hands whose boxes overlap this much are one hand
SAME_HAND_IOU = 0.5


class MediaPipeHandDetector:
    """MediaPipe Hands in tracking (video) or single-image mode, up to two hands.

    The light palm detector (`model_complexity=0`) misses some plain hands outright (the bundled
    example clip's open hand on frame 0 scores below 0.3), and video mode only runs it again on
    the next frame. So when nothing is found, the frame is looked at once more by the full
    single-image model (`fallback=True`), which costs a second detection on frames without a
    hand only.

    In video mode MediaPipe runs its palm detector on every frame where it tracks fewer hands
    than it may report: with one hand in view, looking for a second one took 10 of a 17 ms
    detection on 2 CPU cores. So while one hand is in view, a one-hand tracker follows it (6.5
    ms), and the two-hand tracker looks for every hand only on every `SEARCH_EVERY`-th frame and
    on any frame the one-hand tracker finds nothing; once it sees two hands it runs on every
    frame (tracking both, it needs no palm detection). A second hand is reported within
    `SEARCH_EVERY` frames. A hand reported twice (the two-hand tracker, having skipped frames,
    may follow a hand where it was while finding its palm where it is) is reported once.
    """

    #: frames between two searches for every hand while one hand is followed
    SEARCH_EVERY = 5

    def __init__(
        self,
        video: bool = True,
        model_complexity: int = 0,
        min_detection_confidence: float = 0.5,
        min_tracking_confidence: float = 0.5,
        selfie: bool = False,
        side: str = "auto",
        fallback: bool = True,
    ) -> None:
        with quiet_native_stderr():  # TF Lite / absl start-up chatter
            import mediapipe as mp

            # video mode: the one-hand tracker, and the two-hand search
            self._hands = mp.solutions.hands.Hands(
                static_image_mode=not video,
                max_num_hands=1 if video else 2,
                model_complexity=model_complexity,
                min_detection_confidence=min_detection_confidence,
                min_tracking_confidence=min_tracking_confidence,
            )
            self._hands.process(np.zeros((64, 64, 3), np.uint8))  # first-call warnings, too
            self._search = None
            if video:
                self._search = mp.solutions.hands.Hands(
                    static_image_mode=False,
                    max_num_hands=2,
                    model_complexity=model_complexity,
                    min_detection_confidence=min_detection_confidence,
                    min_tracking_confidence=min_tracking_confidence,
                )
                self._search.process(np.zeros((64, 64, 3), np.uint8))
            self._unsearched = self.SEARCH_EVERY  # frames since the last search: search first
            self._hands_in_view = 0  # hands the last search found
            self._fallback = None
            if fallback:
                self._fallback = mp.solutions.hands.Hands(
                    static_image_mode=True,
                    max_num_hands=2,
                    model_complexity=1,
                    min_detection_confidence=min_detection_confidence,
                )
                self._fallback.process(np.zeros((64, 64, 3), np.uint8))
        if side not in ("auto", "right", "left"):
            raise HoposerError(f"hand side must be auto, right or left, not {side!r}")
        self.selfie = selfie
        self.side = side
        self._calls = 0

    def detect(self, rgb: np.ndarray) -> HandDetection | None:  # noqa: D102
        found = self.detect_all(rgb)
        return max(found, key=lambda d: d.score) if found else None

    def detect_all(self, rgb: np.ndarray) -> list[HandDetection]:  # noqa: D102
        if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
            raise ValueError(f"expected an (H, W, 3) uint8 RGB image, got {rgb.shape} {rgb.dtype}")
        if self._search is None:
            found = self._found(self._process(self._hands, rgb), rgb.shape)
        else:
            found = []
            self._unsearched += 1
            if self._hands_in_view < 2:
                found = self._found(self._process(self._hands, rgb), rgb.shape)
            if not found or self._unsearched >= self.SEARCH_EVERY:
                searched = self._found(self._process(self._search, rgb), rgb.shape)
                self._unsearched = 0
                self._hands_in_view = len(searched)
                if not found or len(searched) > 1:
                    found = searched
        self._calls += 1
        if not found and self._fallback is not None:
            found = self._found(self._fallback.process(rgb), rgb.shape)
        return found

    def _found(self, result, shape: tuple[int, ...]) -> list[HandDetection]:
        """MediaPipe's hands as `HandDetection`s, each hand once."""
        if not result.multi_hand_landmarks:
            return []
        height, width = shape[:2]
        found = []
        worlds = result.multi_hand_world_landmarks or [None] * len(result.multi_hand_landmarks)
        for landmarks, handedness, world in zip(
            result.multi_hand_landmarks, result.multi_handedness, worlds, strict=True
        ):
            label = handedness.classification[0]
            points = np.array([[p.x * width, p.y * height] for p in landmarks.landmark])
            side = label.label.lower()
            if not self.selfie:
                side = "left" if side == "right" else "right"
            right = label.score if side == "right" else 1.0 - label.score
            if self.side != "auto":  # the user knows which hand is in view
                side = self.side
            found.append(
                HandDetection(
                    hand_box_from_landmarks(points),
                    points,
                    side,
                    label.score,
                    float(right),
                    world_landmarks=(
                        None
                        if world is None
                        else np.array([[p.x, p.y, p.z] for p in world.landmark])
                    ),
                    landmark_weights=_landmark_weights(landmarks.landmark),
                )
            )
        # A tracker that skipped frames may still follow a hand where it was while its palm is
        # found again where it is: the same hand twice, the less certain copy is dropped.
        found.sort(key=lambda d: -d.score)
        return [d for i, d in enumerate(found)
                if all(box_iou(d.box, kept.box) < SAME_HAND_IOU for kept in found[:i])]  # fmt: skip

    def _process(self, hands, rgb: np.ndarray):
        if self._calls < 3:  # MediaPipe's graph warns once as tracking first engages
            with quiet_native_stderr():
                return hands.process(rgb)
        return hands.process(rgb)

    def close(self) -> None:  # noqa: D102
        for hands in (self._hands, self._search, self._fallback):
            if hands is not None:
                hands.close()


def _landmark_weights(landmarks) -> np.ndarray | None:
    """Visibility × presence of each landmark `(21,)`, or None when MediaPipe left both unset.

    Its Hands solution leaves them unset; the Tasks API's landmarkers may fill them in.
    """
    weights = np.ones(len(landmarks))
    reported = False
    for i, p in enumerate(landmarks):
        for name in ("visibility", "presence"):
            if p.HasField(name):
                weights[i] *= getattr(p, name)
                reported = True
    return weights if reported else None


def hand_box_from_landmarks(landmarks: np.ndarray) -> np.ndarray:
    """The network's hand box from 21 landmarks `(21, 2)`: their box, expanded as in training."""
    box = np.concatenate([landmarks.min(axis=0), landmarks.max(axis=0)])
    return expand_box(box, HAND_BOX_EXPAND)


def grasp_box(hand_box: np.ndarray, landmarks: np.ndarray | None = None) -> np.ndarray:
    """Where a grasped object likely is: the hand box moved toward the fingertips.

    With landmarks, the box is centred between the palm and the fingertips and sized like the
    hand; without, it is the hand box itself (the object overlaps the hand).
    """
    hand_box = np.asarray(hand_box, np.float64)
    if landmarks is None:
        return hand_box.copy()
    palm = landmarks[[0, 5, 9, 13, 17]].mean(axis=0)
    tips = landmarks[[4, 8, 12, 16, 20]].mean(axis=0)
    center = 0.5 * (palm + tips) + 0.25 * (tips - palm)
    half = 0.5 * (hand_box[2:] - hand_box[:2])
    return np.concatenate([center - half, center + half])


class PoseTrackedObjectBoxes:
    """Object boxes from the previous frame's object pose, re-initialised from the hand.

    The box is the projection of the control points at the last good pose (expanded by
    `margin`); it is dropped, and the grasp box used instead, when PnP failed on the previous
    frame, when it covers too little of the hand's surroundings (drift), or after `max_age`
    frames without a good pose.
    """

    def __init__(self, control_points: np.ndarray, margin: float = 1.15, max_age: int = 5) -> None:
        self.control_points = np.asarray(control_points, np.float64)
        self.margin = margin
        self.max_age = max_age
        self.pose: tuple[np.ndarray, np.ndarray] | None = None
        self.age = 0

    def box(
        self, hand: HandDetection, camera_matrix: np.ndarray, image_size: tuple[int, int]
    ) -> np.ndarray:
        """The object box for the current frame."""
        if self.pose is not None and self.age <= self.max_age:
            R, t = self.pose
            points = project(self.control_points @ R.T + t, camera_matrix)
            box = expand_box(np.concatenate([points.min(0), points.max(0)]), self.margin)
            if _plausible(box, hand.box, image_size):
                return box
        return grasp_box(hand.box, hand.landmarks)

    def update(self, success: bool, R: np.ndarray | None = None, t: np.ndarray | None = None):
        """Record this frame's PnP result."""
        if success and R is not None and t is not None and t[2] > 0:
            self.pose, self.age = (np.asarray(R), np.asarray(t)), 0
        else:
            self.age += 1
            if self.age > self.max_age:
                self.pose = None


def _plausible(box: np.ndarray, hand_box: np.ndarray, image_size: tuple[int, int]) -> bool:
    """A tracked box is kept only if finite, inside the image and near the hand."""
    if not np.isfinite(box).all() or (box[2:] - box[:2]).min() < 4:
        return False
    width, height = image_size
    if box[2] < 0 or box[3] < 0 or box[0] > width or box[1] > height:
        return False
    hand_side = (hand_box[2:] - hand_box[:2]).max()
    gap = np.maximum(0, np.maximum(box[:2] - hand_box[2:], hand_box[:2] - box[2:])).max()
    too_big = (box[2:] - box[:2]).max() > 6 * hand_side
    return gap < hand_side and not too_big


class OnnxObjectDetector:
    """A user-supplied YOLO-format ONNX detector (v5/v8 style outputs) run with ONNX Runtime.

    Accepts an output of shape `(1, N, 5 + C)` (YOLOv5: box, objectness, class scores) or
    `(1, 4 + C, N)` (YOLOv8: box, class scores), boxes as centre x, y, width, height in input
    pixels. The object box is the highest-scoring detection of `class_id` (any class if None)
    overlapping the hand's surroundings.
    """

    def __init__(
        self,
        path: str | Path,
        class_id: int | None = None,
        min_score: float = 0.25,
        threads: int | None = None,
    ):
        import onnxruntime as ort

        from hoposer.threads import onnxruntime_options

        path = Path(path)
        if not path.is_file():
            raise HoposerError(f"detector model {path} not found")
        try:
            self.session = ort.InferenceSession(
                str(path), onnxruntime_options(threads), providers=["CPUExecutionProvider"]
            )
        except Exception as err:  # ORT raises its own exception types for corrupt models
            raise HoposerError(f"{path} is not a loadable ONNX model: {err}") from None
        shape = self.session.get_inputs()[0].shape
        self.input_name = self.session.get_inputs()[0].name
        self.size = (
            int(shape[3]) if isinstance(shape[3], int) else 640,
            int(shape[2]) if isinstance(shape[2], int) else 640,
        )
        self.class_id, self.min_score = class_id, min_score

    def detections(self, rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """All boxes `(N, 4)` xyxy in frame pixels and their scores `(N,)`."""
        import cv2

        height, width = rgb.shape[:2]
        scale = min(self.size[0] / width, self.size[1] / height)
        resized = cv2.resize(rgb, (round(width * scale), round(height * scale)))
        canvas = np.full((self.size[1], self.size[0], 3), 114, np.uint8)
        canvas[: resized.shape[0], : resized.shape[1]] = resized
        blob = canvas.transpose(2, 0, 1)[None].astype(np.float32) / 255.0
        out = np.asarray(self.session.run(None, {self.input_name: blob})[0])[0]
        if out.ndim != 2 or min(out.shape) == 0:
            return np.zeros((0, 4)), np.zeros(0)
        if out.shape[0] < out.shape[1]:  # (4 + C, N): YOLOv8 (anchors outnumber classes)
            out = out.T
            boxes, scores = out[:, :4], out[:, 4:]
        else:
            boxes, scores = out[:, :4], out[:, 5:] * out[:, 4:5]
        cls = scores[:, self.class_id] if self.class_id is not None else scores.max(axis=1)
        keep = cls >= self.min_score
        xyxy = np.concatenate(
            [boxes[keep, :2] - boxes[keep, 2:] / 2, boxes[keep, :2] + boxes[keep, 2:] / 2], axis=1
        )
        return xyxy / scale, cls[keep]

    def box(self, rgb: np.ndarray, hand: HandDetection) -> np.ndarray | None:
        """The best detection near the hand, or None."""
        boxes, scores = self.detections(rgb)
        best, best_score = None, -1.0
        for box, score in zip(boxes, scores, strict=True):
            if _plausible(box, hand.box, (rgb.shape[1], rgb.shape[0])) and score > best_score:
                best, best_score = box, float(score)
        return best
