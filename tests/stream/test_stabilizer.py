import numpy as np
from skeletons import K_TEST, project, straight_hand

from hoposer.stream.stabilizer import HandEstimate, OneEuroFilter, Stabilizer, StabilizerOptions


def sequence(n: int, step_at: int | None = None, spike_at: int | None = None):
    """A hand drifting slowly to the right; optionally a lasting jump or a one-frame spike."""
    estimates = []
    for t in range(n):
        offset = np.array([0.002 * t, 0.0, 0.0])
        if step_at is not None and t >= step_at:
            offset += np.array([0.12, 0.0, 0.0])  # the hand jumps 12 cm and stays there
        joints = straight_hand() + offset
        theta = np.zeros(48)
        theta[3:] = 0.01 * t
        if spike_at is not None and t == spike_at:
            theta[3:] += 0.5  # one frame of wildly different articulation
        estimates.append(HandEstimate(project(joints, K_TEST), joints, theta, np.zeros(10)))
    return estimates


def failed_frames(verdicts):
    return [t for t, v in enumerate(verdicts) if set(v.flags) - {"relocking"}]


def run(estimates, **options):
    stabilizer = Stabilizer(StabilizerOptions(smoothing=False, **options))
    return [stabilizer.update(e, t / 30) for t, e in enumerate(estimates)]


def test_a_smooth_sequence_is_stable_throughout():
    verdicts = run(sequence(20))
    assert all(v.stable and not v.held and v.age_frames == 0 for v in verdicts)


def test_a_lasting_jump_is_flagged_once_then_relocks_after_n_frames():
    verdicts = run(sequence(20, step_at=8), relock_frames=3)
    assert failed_frames(verdicts) == [8]
    assert verdicts[8].flags == ("joint_motion",)
    # Frames 9 and 10 agree with each other but the lock needs 3 in a row: held, relocking.
    for t, age in ((8, 1), (9, 2), (10, 3)):
        assert verdicts[t].held and not verdicts[t].stable and verdicts[t].age_frames == age
    assert verdicts[9].flags == ("relocking",)
    # Held means the published hand is frame 7's.
    np.testing.assert_allclose(verdicts[10].hand.joints, sequence(20, step_at=8)[7].joints)
    assert verdicts[11].stable and verdicts[11].age_frames == 0


def test_a_one_frame_spike_is_flagged_on_the_way_in_and_out():
    verdicts = run(sequence(20, spike_at=12), relock_frames=2)
    assert failed_frames(verdicts) == [12, 13]
    assert verdicts[12].flags == ("pose_change",)
    assert not verdicts[14].stable and verdicts[15].stable


def test_shape_changes_are_flagged_against_the_running_window():
    estimates = sequence(30)
    rng = np.random.default_rng(0)
    estimates = [
        HandEstimate(e.joints_2d, e.joints, e.theta, rng.normal(0, 0.02, 10)) for e in estimates
    ]
    odd = estimates[20]
    estimates[20] = HandEstimate(odd.joints_2d, odd.joints, odd.theta, np.full(10, 0.5))
    verdicts = run(estimates, relock_frames=1)
    assert failed_frames(verdicts) == [20]
    assert verdicts[20].flags == ("shape",)


def test_a_lasting_shape_change_is_learnt_anew_after_a_bounded_stretch():
    # β moves for good at frame 20 (say the hand turned and the network sees it differently):
    # after `shape_relearn_frames` frames failing only the shape check, the reference is learnt
    # anew and the stream locks again, instead of refusing every later frame.
    rng = np.random.default_rng(1)
    estimates = [
        HandEstimate(e.joints_2d, e.joints, e.theta, rng.normal(0.5 * (t >= 20), 0.02, 10))
        for t, e in enumerate(sequence(60))
    ]
    verdicts = run(estimates, relock_frames=3, shape_relearn_frames=10)
    assert failed_frames(verdicts) == list(range(20, 30))
    assert all(verdicts[t].flags == ("shape",) for t in range(20, 30))
    assert [t for t, v in enumerate(verdicts) if not v.stable] == list(range(20, 32))
    assert all(v.stable for v in verdicts[32:])


def test_no_hand_holds_the_last_pose_and_breaks_the_temporal_chain():
    stabilizer = Stabilizer(StabilizerOptions(smoothing=False, relock_frames=2))
    estimates = sequence(6)
    for t in range(3):
        stabilizer.update(estimates[t], t / 30)
    gone = stabilizer.no_hand()
    assert gone.held and gone.age_frames == 1 and gone.flags == ("no_hand",)
    np.testing.assert_allclose(gone.hand.joints, estimates[2].joints)
    # The hand comes back elsewhere: no motion check against the frame before the gap.
    far = estimates[3].joints + 0.2
    back = stabilizer.update(
        HandEstimate(project(far, K_TEST), far, estimates[3].theta, np.zeros(10)), 4 / 30
    )
    assert back.flags == ("relocking",)


def test_one_euro_filter_smooths_noise_and_follows_motion():
    rng = np.random.default_rng(0)
    f = OneEuroFilter(min_cutoff=1.0, beta=0.0, derivative_cutoff=1.0)
    noisy = [f(np.array([1.0 + rng.normal(0, 0.1)]), t / 30)[0] for t in range(300)]
    assert np.std(noisy[100:]) < 0.05
    fast = OneEuroFilter(min_cutoff=1.0, beta=5.0, derivative_cutoff=1.0)
    ramp = [fast(np.array([t * 0.1]), t / 30)[0] for t in range(60)]
    assert abs(ramp[-1] - 5.9) < 0.3


def test_before_any_stable_frame_the_estimate_is_passed_on_flagged():
    estimates = sequence(3)
    bad = estimates[0]
    scrambled = HandEstimate(bad.joints_2d[::-1].copy(), bad.joints, bad.theta, bad.beta)
    verdict = Stabilizer(StabilizerOptions(smoothing=False)).update(scrambled, 0.0)
    assert not verdict.stable and not verdict.held and "reprojection" in verdict.flags
    assert verdict.hand is scrambled


def test_an_unplaceable_hand_is_flagged_not_raised():
    # decode gives NaN camera-frame joints when the translation cannot be solved.
    good = sequence(1)[0]
    nowhere = good.joints + np.nan
    box = np.array([0, 0, 50, 50.0])
    lost = HandEstimate(good.joints_2d, nowhere, good.theta, good.beta, nowhere, box)
    verdict = Stabilizer(StabilizerOptions(smoothing=False)).update(lost, 0.0)
    assert not verdict.stable
    assert {"reprojection", "iou", "bone_length", "joint_angle"} <= set(verdict.flags)
