"""One hand, kept: hand identity across frames and the choice of the hand to follow.

MediaPipe reports up to two hands per frame in no fixed order, and its handedness label flips
on hard frames (a hand holding a bottle reads as "left" one frame and "right" the next), so
picking its most certain hand each frame jumps between hands. `HandTracker` instead gives every
hand a track: a detection continues the track whose box it overlaps and whose landmarks (moved
on at their last velocity) it lies close to, and whose handedness votes it agrees with. The
published side is the track's vote, not the frame's label.

The followed track is chosen once and kept while it is seen (and for `lost_after_s` after it was
last seen, during which the frame has no hand rather than another hand):
- at the start, or when the followed track is gone: the user's `side` if given (the track whose
  votes favour it most), else the hand nearest the last found object, else the hand nearest the
  image centre (where a user holds up what they show the camera);
- while followed and seen, it is replaced only outside a stable stretch, and only by a hand
  that has been nearer the found object for `switch_frames` frames in a row.
Adopting a track other than the last one announces a new hand (`new_track`).
"""

from dataclasses import dataclass, replace

import numpy as np

from hoposer.errors import HoposerError
from hoposer.frames.detect import HandDetection
from hoposer.geometry.boxes import box_iou


@dataclass(frozen=True)
class TrackedHand:
    """The followed hand in this frame."""

    detection: HandDetection  #: its side is the track's handedness vote (or the user's side)
    track_id: int  #: stays the same while the same hand is followed
    new_track: bool  #: this frame starts following a hand not followed before


@dataclass
class _Track:
    track_id: int
    box: np.ndarray
    landmarks: np.ndarray
    velocity: np.ndarray  #: (21, 2) landmark motion per frame, damped
    last_seen: float
    frame_seen: int
    right_votes: list[float]  #: each frame's probability that this is a right hand
    closer_to_object: int = 0  #: consecutive frames nearer the found object than the followed

    @property
    def right_probability(self) -> float:
        return float(np.mean(self.right_votes))

    def side(self) -> str:
        return "right" if self.right_probability >= 0.5 else "left"


def _diagonal(box: np.ndarray) -> float:
    return max(float(np.linalg.norm(box[2:] - box[:2])), 1.0)


def _centre(box: np.ndarray) -> np.ndarray:
    return 0.5 * (box[:2] + box[2:])


class HandTracker:
    """Hand tracks across frames and the one hand to follow (see the module docstring)."""

    def __init__(
        self,
        side: str = "auto",
        lost_after_s: float = 1.0,
        switch_frames: int = 15,
        max_motion: float = 0.6,
        min_iou: float = 0.2,
    ) -> None:
        if side not in ("auto", "right", "left"):
            raise HoposerError(f"hand side must be auto, right or left, not {side!r}")
        self.side = side
        self.lost_after_s = lost_after_s
        self.switch_frames = switch_frames
        self.max_motion = max_motion  #: landmark distance (of the box diagonal) still the same hand
        self.min_iou = min_iou
        self.tracks: list[_Track] = []
        self.followed: int | None = None
        self.frame = 0
        self._next_id = 0
        self._last_time = -np.inf

    def update(
        self,
        detections: list[HandDetection],
        timestamp: float,
        image_size: tuple[int, int],
        object_box: np.ndarray | None = None,
        stable: bool = False,
    ) -> TrackedHand | None:
        """Associate this frame's hands with the tracks; the followed hand, or None.

        Args:
            detections: every hand the detector found this frame.
            timestamp: capture time, seconds.
            image_size: (width, height).
            object_box: where the object was last found (a found pose's box or a detector's);
                None when there is no such evidence.
            stable: the followed hand's estimate is in a stable stretch (never switch then).
        """
        if timestamp < self._last_time:
            raise ValueError(f"timestamps must not decrease: {timestamp} after {self._last_time}")
        self._last_time = timestamp
        self.frame += 1
        matched = self._associate(detections, timestamp)
        self.tracks = [t for t in self.tracks if timestamp - t.last_seen <= self.lost_after_s]
        alive = {t.track_id for t in self.tracks}
        if self.followed is not None and self.followed not in alive:
            self.followed = None
        seen = {t.track_id: d for t, d in matched}
        tracks = {t.track_id: t for t in self.tracks}
        previous = self.followed
        if self.followed is None:
            self.followed = self._choose([tracks[i] for i in seen], image_size, object_box)
        elif self.followed in seen and not stable and object_box is not None:
            self.followed = self._maybe_switch(tracks, seen, object_box)
        if self.followed is None or self.followed not in seen:
            return None
        track = tracks[self.followed]
        side = self.side if self.side != "auto" else track.side()
        detection = replace(seen[self.followed], side=side)
        return TrackedHand(detection, track.track_id, new_track=self.followed != previous)

    def _associate(
        self, detections: list[HandDetection], timestamp: float
    ) -> list[tuple[_Track, HandDetection]]:
        """Greedy matching by box overlap, predicted-landmark distance and handedness."""
        candidates = []
        for ti, track in enumerate(self.tracks):
            gap = self.frame - track.frame_seen
            predicted = track.landmarks + gap * track.velocity
            scale = _diagonal(track.box)
            for di, d in enumerate(detections):
                iou = float(box_iou(track.box, d.box))
                motion = float(np.linalg.norm(d.landmarks - predicted, axis=1).mean()) / scale
                if iou < self.min_iou and motion > self.max_motion:
                    continue
                disagreement = abs(d.right_probability - track.right_probability)
                candidates.append((iou - motion - 0.5 * disagreement, ti, di))
        matched, used_tracks, used_detections = [], set(), set()
        for _, ti, di in sorted(candidates, reverse=True):
            if ti in used_tracks or di in used_detections:
                continue
            used_tracks.add(ti)
            used_detections.add(di)
            track, d = self.tracks[ti], detections[di]
            gap = max(self.frame - track.frame_seen, 1)
            step = (d.landmarks - track.landmarks) / gap
            track.velocity = 0.5 * track.velocity + 0.5 * step
            track.box, track.landmarks = d.box, d.landmarks
            track.last_seen, track.frame_seen = timestamp, self.frame
            track.right_votes.append(d.right_probability)
            matched.append((track, d))
        for di, d in enumerate(detections):
            if di in used_detections:
                continue
            track = _Track(
                self._next_id, d.box, d.landmarks, np.zeros_like(d.landmarks), timestamp,
                self.frame, [d.right_probability],
            )  # fmt: skip
            self._next_id += 1
            self.tracks.append(track)
            matched.append((track, d))
        return matched

    def _choose(
        self,
        present: list[_Track],
        image_size: tuple[int, int],
        object_box: np.ndarray | None,
    ) -> int | None:
        if not present:
            return None
        if self.side != "auto" and len(present) > 1:
            want = (
                (lambda t: t.right_probability)
                if self.side == "right"
                else (lambda t: 1 - t.right_probability)
            )
            best = max(want(t) for t in present)
            present = [t for t in present if want(t) >= best - 0.1]
        target = _centre(object_box) if object_box is not None else 0.5 * np.asarray(image_size)
        return min(present, key=lambda t: float(np.linalg.norm(_centre(t.box) - target))).track_id

    def _maybe_switch(
        self, tracks: dict[int, _Track], seen: dict[int, HandDetection], object_box: np.ndarray
    ) -> int:
        """Follow another seen hand once it has been nearer the object for a while."""
        followed = tracks[self.followed]
        target = _centre(object_box)

        def distance(track: _Track) -> float:
            return float(np.linalg.norm(_centre(track.box) - target)) / _diagonal(track.box)

        for track_id in seen:
            track = tracks[track_id]
            if track_id == self.followed:
                continue
            nearer = distance(track) + 0.25 < distance(followed)
            if self.side != "auto" and track.side() != self.side:
                nearer = False
            track.closer_to_object = track.closer_to_object + 1 if nearer else 0
            if track.closer_to_object >= self.switch_frames:
                track.closer_to_object = 0
                return track_id
        return self.followed
