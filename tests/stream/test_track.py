import numpy as np
import pytest

from hoposer.frames.detect import HandDetection, hand_box_from_landmarks
from hoposer.stream.track import HandTracker

SIZE = (640, 480)


def _right_hand() -> np.ndarray:
    """21 landmarks of an open right hand seen from the back, wrist at the origin (pixels)."""
    points = [np.zeros(2)]
    for finger, angle in enumerate(np.radians([-70, -25, -5, 15, 35])):
        direction = np.array([np.sin(angle), -np.cos(angle)])
        base = 15 if finger == 0 else 35
        points += [direction * (base + 14 * k) for k in range(4)]
    return np.array(points)


RIGHT = _right_hand()
LEFT = RIGHT * np.array([-1.0, 1.0])  # the mirror image: the thumb on the other side


def _detection(landmarks: np.ndarray, right_probability: float) -> HandDetection:
    side = "right" if right_probability >= 0.5 else "left"
    score = max(right_probability, 1 - right_probability)
    return HandDetection(
        hand_box_from_landmarks(landmarks), landmarks, side, score, right_probability
    )


def _crossing(frames: int = 40):
    """Two hands passing each other; labels swap and one hand vanishes near the crossing."""
    rng = np.random.default_rng(0)
    for i in range(frames):
        s = i / (frames - 1)
        right = RIGHT + [140 + 360 * s, 300 + 4 * np.sin(i)]
        left = LEFT + [500 - 360 * s, 310]
        confused = abs(s - 0.5) < 0.15  # MediaPipe's labels flip while the hands overlap
        hands = [("right", _detection(right, 0.2 if confused else 0.95))]
        if i != frames // 2:  # one frame where the left hand is hidden behind the right
            hands.append(("left", _detection(left, 0.8 if confused else 0.05)))
        order = rng.permutation(len(hands))
        yield i, [hands[k] for k in order]


def _follow(tracker: HandTracker):
    followed = []
    for i, hands in _crossing():
        tracked = tracker.update([d for _, d in hands], i / 30, SIZE)
        if tracked is None:  # the followed hand is hidden: no hand, not the other one
            assert "left" not in {name for name, _ in hands}
            continue
        truth = next(
            name
            for name, d in hands
            if d is tracked.detection or np.array_equal(d.landmarks, tracked.detection.landmarks)
        )
        followed.append((truth, tracked.track_id, tracked.new_track, tracked.detection.side))
    return followed


def test_identity_holds_through_a_crossing_of_two_hands():
    followed = _follow(HandTracker())
    names = {name for name, *_ in followed}
    assert len(names) == 1, f"switched hands: {[f[0] for f in followed]}"
    assert len({track for _, track, *_ in followed}) == 1
    assert [new for *_, new, _ in followed] == [True] + [False] * (len(followed) - 1)
    # the published side is the track's vote, steady through the confused labels
    assert {side for *_, side in followed} == {names.pop()}


def test_the_users_side_picks_the_hand_and_keeps_it():
    for side in ("right", "left"):
        followed = _follow(HandTracker(side=side))
        assert len(followed) == (40 if side == "right" else 39)
        assert {name for name, *_ in followed} == {side}
        assert {s for *_, s in followed} == {side}


def test_a_lost_hand_is_waited_for_then_another_is_announced():
    tracker = HandTracker(side="right", lost_after_s=0.2)
    right = _detection(RIGHT + [200, 300], 0.9)
    left = _detection(LEFT + [450, 300], 0.1)
    first = tracker.update([right, left], 0.0, SIZE)
    assert first.detection.landmarks is right.landmarks and first.new_track
    # the followed hand is gone: no hand (not the other one) until it has been lost 0.2 s
    assert tracker.update([left], 0.1, SIZE) is None
    back = tracker.update([right, left], 0.15, SIZE)
    assert back.track_id == first.track_id and not back.new_track
    assert tracker.update([left], 0.2, SIZE) is None
    adopted = tracker.update([left], 0.5, SIZE)
    assert adopted.detection.landmarks is left.landmarks
    assert adopted.new_track and adopted.track_id != first.track_id
    assert adopted.detection.side == "right"  # the user's word wins over the label


def test_a_hand_nearer_the_found_object_takes_over_only_outside_a_stable_stretch():
    tracker = HandTracker(switch_frames=5)
    near_centre = _detection(RIGHT + [330, 300], 0.9)
    holder = _detection(LEFT + [560, 300], 0.1)
    object_box = np.array([540.0, 200, 600, 260])  # found in the other hand
    first = tracker.update([near_centre, holder], 0.0, SIZE)
    assert first.detection.landmarks is near_centre.landmarks
    for i in range(1, 20):  # stable: never switch
        kept = tracker.update([near_centre, holder], i / 30, SIZE, object_box, stable=True)
        assert kept.track_id == first.track_id
    for i in range(20, 24):
        kept = tracker.update([near_centre, holder], i / 30, SIZE, object_box, stable=False)
        assert kept.track_id == first.track_id  # not yet nearer for 5 frames in a row
    switched = tracker.update([near_centre, holder], 24 / 30, SIZE, object_box, stable=False)
    assert switched.detection.landmarks is holder.landmarks and switched.new_track


def test_time_running_backwards_is_an_error():
    tracker = HandTracker()
    hand = _detection(RIGHT + [300, 300], 0.9)
    tracker.update([hand], 1.0, SIZE)
    with pytest.raises(ValueError, match="decrease"):
        tracker.update([hand], 0.5, SIZE)
