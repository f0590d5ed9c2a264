"""Online stabilizer: §5.1's checks on every frame, hold-last-stable, One-Euro smoothing.

Each frame's hand estimate is checked with the same functions the pseudo-labeller uses
(`hoposer.geometry.consistency`): the spatial ones (re-projection, bone lengths, joint angles,
and the mesh-box IoU when a detector box is given), the temporal ones against the previous frame's
estimate (2D joint motion, θ change), and shape consistency of β against a running window of
accepted frames. A frame that fails is flagged with the names of the failed checks; the published
hand then stays the last stable one (its age in frames grows) until `relock_frames` consecutive
frames pass again; before the first stable frame, the frame's own estimate is passed on, flagged.
Accepted poses go through a One-Euro filter (Casiry et al. 2012) unless it is
turned off.
"""

from collections import deque
from dataclasses import dataclass, field

import numpy as np

from hoposer.errors import HoposerError
from hoposer.geometry.consistency import (
    Thresholds,
    failed_constraints,
    spatial_statistics,
    temporal_statistics,
)
from hoposer.options import option


@dataclass(frozen=True)
class StabilizerOptions:
    """How strict the online checks are and how accepted poses are smoothed."""

    thresholds: Thresholds = field(default_factory=Thresholds)
    smoothing: bool = option(True, "One-Euro smoothing of accepted poses", flag="--smooth")
    relock_frames: int = option(
        3, "agreeing frames needed to re-lock after a failure", flag="--relock"
    )
    shape_window: int = 30  #: accepted frames whose β form the shape reference
    shape_min_frames: int = 10  #: no shape check before this many accepted frames
    shape_min_sigma: float = 0.1  #: floor on σ_C so a very steady β does not flag noise
    #: frames in a row failing the shape check alone before β's reference is learnt anew: the
    #: estimate's shape moved for good (another view of the hand, another person), and a
    #: reference learnt only from accepted frames would otherwise refuse every later frame
    shape_relearn_frames: int = 15
    min_cutoff_hz: float = 1.0  #: One-Euro: cutoff at rest (lower: smoother, more lag)
    beta_speed: float = 0.5  #: One-Euro: how fast the cutoff grows with speed (higher: less lag)
    derivative_cutoff_hz: float = 1.0

    def __post_init__(self) -> None:
        """Refuse a re-lock that could never happen."""
        if self.relock_frames < 1:
            raise HoposerError("--relock must be at least 1")


class OneEuroFilter:
    """The One-Euro filter on arrays: adaptive low-pass, little lag when moving fast."""

    def __init__(self, min_cutoff: float, beta: float, derivative_cutoff: float) -> None:
        self.min_cutoff, self.beta, self.derivative_cutoff = min_cutoff, beta, derivative_cutoff
        self.value: np.ndarray | None = None
        self.derivative: np.ndarray | None = None
        self.time: float | None = None

    @staticmethod
    def _alpha(cutoff, dt: float):
        tau = 1.0 / (2 * np.pi * cutoff)
        return 1.0 / (1.0 + tau / dt)

    def __call__(self, x: np.ndarray, t: float) -> np.ndarray:
        """Filter sample `x` taken at time `t` (seconds, increasing)."""
        x = np.asarray(x, np.float64)
        if self.value is None or self.time is None or t <= self.time:
            self.value, self.derivative, self.time = x.copy(), np.zeros_like(x), t
            return x
        dt = t - self.time
        derivative = (x - self.value) / dt
        a_d = self._alpha(self.derivative_cutoff, dt)
        self.derivative = a_d * derivative + (1 - a_d) * self.derivative
        cutoff = self.min_cutoff + self.beta * np.abs(self.derivative)
        a = self._alpha(cutoff, dt)
        self.value = a * x + (1 - a) * self.value
        self.time = t
        return self.value

    def reset(self) -> None:
        """Forget the past (after a hold, start afresh)."""
        self.value = self.derivative = self.time = None


@dataclass(frozen=True)
class HandEstimate:
    """What the stabilizer needs of one frame's hand."""

    joints_2d: np.ndarray  #: (21, 2) pixels
    joints: np.ndarray  #: (21, 3) camera frame, metres
    theta: np.ndarray  #: (48,)
    beta: np.ndarray  #: (10,)
    vertices: np.ndarray | None = None  #: (V, 3) for the IoU check
    hand_box: np.ndarray | None = None  #: (4,) detector box, pixels


@dataclass(frozen=True)
class Verdict:
    """The stabilizer's answer for one frame."""

    stable: bool  #: this frame passed every check (and the filter is locked)
    held: bool  #: the hand to publish is an earlier frame's
    age_frames: int  #: frames since the hand to publish was estimated
    flags: tuple[str, ...]  #: failed checks (plus "relocking" while waiting to re-lock)
    hand: HandEstimate | None  #: the hand to publish: the last stable one (smoothed) when held,
    #: this frame's own (flagged unstable) before anything was stable; None only without a hand
    statistics: dict[str, float]


class Stabilizer:
    """Checks, holds and smooths a stream of hand estimates (one per frame, in order)."""

    def __init__(self, options: StabilizerOptions | None = None) -> None:
        self.options = options or StabilizerOptions()
        self.previous: HandEstimate | None = None
        self.published: HandEstimate | None = None
        self.age = 0
        self.streak = 0
        self.locked = False
        self.betas: deque[np.ndarray] = deque(maxlen=self.options.shape_window)
        self.shape_misses = 0  # frames in a row that failed the shape check alone
        o = self.options
        self._filters = {
            name: OneEuroFilter(o.min_cutoff_hz, o.beta_speed, o.derivative_cutoff_hz)
            for name in ("joints_2d", "joints", "theta", "vertices")
        }

    def no_hand(self) -> Verdict:
        """A frame without a hand: hold the last pose, break the temporal chain."""
        self.previous = None
        self.streak = 0
        self.locked = False
        if self.published is not None:
            self.age += 1
        return Verdict(
            False, self.published is not None, self.age, ("no_hand",), self.published, {}
        )

    def update(self, estimate: HandEstimate, timestamp: float) -> Verdict:
        """Judge one frame's estimate and decide what to publish."""
        o = self.options
        stats = spatial_statistics(
            estimate.joints, estimate.joints_2d, estimate.vertices, estimate.hand_box
        )
        if self.previous is not None:
            stats |= temporal_statistics(
                estimate.joints_2d, estimate.theta, self.previous.joints_2d, self.previous.theta
            )
        failed = list(failed_constraints(stats, o.thresholds))
        if len(self.betas) >= o.shape_min_frames:
            reference = np.mean(self.betas, axis=0)
            spread = np.sqrt(np.mean([np.sum((b - reference) ** 2) for b in self.betas]))
            deviation = float(np.linalg.norm(estimate.beta - reference))
            stats["shape"] = deviation / max(spread, o.shape_min_sigma)
            if stats["shape"] > o.thresholds.shape_sigmas:
                failed.append("shape")
        self.shape_misses = self.shape_misses + 1 if failed == ["shape"] else 0
        if self.shape_misses >= o.shape_relearn_frames:
            self.betas.clear()  # the shape check waits for `shape_min_frames` accepted frames
            self.shape_misses = 0
        self.previous = estimate

        if failed:
            self.streak = 0
            self.locked = False
        else:
            self.streak += 1
            self.betas.append(np.asarray(estimate.beta, np.float64))
        if not failed and (self.locked or self.streak >= o.relock_frames or self.published is None):
            if not self.locked:
                for f in self._filters.values():
                    f.reset()
            self.locked = True
            self.published = self._smooth(estimate, timestamp)
            self.age = 0
            return Verdict(True, False, 0, (), self.published, stats)
        flags = tuple(failed) if failed else ("relocking",)
        if self.published is None:  # nothing stable yet: pass this frame on, flagged
            return Verdict(False, False, 0, flags, estimate, stats)
        self.age += 1
        return Verdict(False, True, self.age, flags, self.published, stats)

    def _smooth(self, estimate: HandEstimate, timestamp: float) -> HandEstimate:
        if not self.options.smoothing:
            return estimate
        f = self._filters
        return HandEstimate(
            joints_2d=f["joints_2d"](estimate.joints_2d, timestamp),
            joints=f["joints"](estimate.joints, timestamp),
            theta=f["theta"](estimate.theta, timestamp),
            beta=estimate.beta,
            vertices=None
            if estimate.vertices is None
            else f["vertices"](estimate.vertices, timestamp),
            hand_box=estimate.hand_box,
        )
