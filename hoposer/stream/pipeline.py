"""One frame in, one pose message out: detect → crop → engine → decode → refine → stabilize.

`FrameProcessor` holds the per-stream state (hand tracks, object tracking, stabilizer) and
turns a captured frame into a `FrameResult`: the message to publish/write plus what the views
draw. It times every stage. Its first stage, `detect`, depends on no earlier result and may run
ahead on another thread (`estimator.Stream` does so for files); tracking and smoothing run on
`Frame.clock`. The threads and I/O around it live in `estimator.py` and `run.py`.

Left hands: the model is a right-hand model. A left hand is handled in the mirror image
(x → W − 1 − x): mirroring the frame is the same as mirroring the scene in the camera frame
(X → −X) with the principal point moved to W − 1 − cx, so the whole chain (crop, network, hand
placement, PnP) runs unchanged on the mirrored frame (`model.inputs.InputView`); the results are
mirrored back (joints and vertices X → −X, θ's axis-angle triplets (x, y, z) → (x, −y, −z),
object pose M·R·M, M·t).
"""

import time
from dataclasses import dataclass, field, replace

import cv2
import numpy as np
import torch

from hoposer.calib.extrinsics import Transform
from hoposer.decode import FramePose, HandPose, decode
from hoposer.errors import HoposerError
from hoposer.frames.detect import (
    HandDetection,
    HandDetector,
    PoseTrackedObjectBoxes,
    grasp_box,
)
from hoposer.frames.sources import Frame
from hoposer.geometry.camera import project
from hoposer.geometry.pnp import ObjectPoseGate, visible_beside_hand
from hoposer.geometry.refine import (
    REFINE_MODES,
    Evidence,
    Kinematics,
    RefinedHand,
    refine_hand,
)
from hoposer.model.hand import HandModel
from hoposer.model.inputs import InputView, prepare
from hoposer.stream.messages import (
    camera_frame,
    hand_payload,
    object_payload,
    pose_message,
    refinement_payload,
)
from hoposer.stream.stabilizer import HandEstimate, Stabilizer, StabilizerOptions, Verdict
from hoposer.stream.track import HandTracker, TrackedHand

MIRROR = np.diag([-1.0, 1.0, 1.0])


@dataclass(frozen=True)
class ObjectSpec:
    """The object being tracked: its name, mesh (for drawing) and control points."""

    name: str
    control_points: np.ndarray  #: (21, 3) object frame, metres
    vertices: np.ndarray  #: (N, 3)
    faces: np.ndarray  #: (F, 3)


@dataclass(frozen=True)
class Detected:
    """What `FrameProcessor.detect` found in one frame."""

    rgb: np.ndarray  #: the frame as RGB, undistorted when the camera has distortion
    hands: list[HandDetection]  #: every hand the detector found
    ms: float  #: time the stage took


@dataclass
class FrameResult:
    """Everything one frame produced."""

    frame: Frame
    message: dict
    detection: HandDetection | None = None
    object_box: np.ndarray | None = None
    pose: FramePose | None = None  #: this frame's estimate (camera frame, unmirrored, refined)
    verdict: Verdict | None = None
    timings_ms: dict[str, float] = field(default_factory=dict)
    track: TrackedHand | None = None  #: the followed hand's identity
    evidence: tuple[str, ...] = ()  #: what the hand was refined to (empty: the network's raw hand)


def mirror_theta(theta: np.ndarray) -> np.ndarray:
    """θ of the mirror-image hand: each axis-angle (x, y, z) → (x, −y, −z)."""
    out = np.asarray(theta, np.float64).reshape(16, 3).copy()
    out[:, 1:] *= -1
    return out.reshape(48)


class FrameProcessor:
    """Per-stream state and the per-frame computation."""

    def __init__(
        self,
        backend,
        hand_model: HandModel,
        detector: HandDetector,
        camera_matrix: np.ndarray,
        object_spec: ObjectSpec | None = None,
        object_detector=None,
        stabilizer: StabilizerOptions | None = None,
        transform: Transform | None = None,
        camera_id: str = "camera",
        undistort: tuple[np.ndarray, np.ndarray] | None = None,
        hands: str = "auto",
        refine: str = "auto",
    ) -> None:
        if refine not in REFINE_MODES:
            raise HoposerError(f"--refine must be one of {', '.join(REFINE_MODES)}, not {refine!r}")
        self.refine = refine
        self.kinematics = Kinematics.from_model(hand_model) if refine != "off" else None
        self.backend = backend
        self.hand_model = hand_model
        self.detector = detector
        self.K = np.asarray(camera_matrix, np.float64)
        self.object_spec = object_spec
        self.object_detector = object_detector
        self.stabilizer_options = stabilizer
        self.hands = hands
        self.object_gate = ObjectPoseGate()
        self.reset()
        self.transform = transform or camera_frame()
        self.camera_id = camera_id
        self.undistort_maps = undistort
        # perf_counter → Unix time, for the message timestamps
        self._clock_offset = time.time() - time.perf_counter()

    def reset(self) -> None:
        """Forget the stream so far: hand tracks, the previous fit, smoothing, the object's box."""
        self._previous_fit: tuple[str, RefinedHand] | None = None  # (side, fit) of the last frame
        spec = self.object_spec
        self.objects = PoseTrackedObjectBoxes(spec.control_points, margin=1.0) if spec else None
        self.stabilizer = Stabilizer(self.stabilizer_options)
        self.tracker = HandTracker(side=self.hands)
        self._object_evidence: np.ndarray | None = None  # last found object's box
        self._published_track: int | None = None  # whose pose a held hand is
        self._published_side = "right"

    def detect(self, frame: Frame) -> Detected:
        """The first stage: the frame's colour image and every hand the detector finds.

        It depends on no earlier frame's result, so a file's next frame can be detected while
        this one is estimated (`process(frame, detected)`); frames must still be detected in
        order (the detector tracks across them).
        """
        started = time.perf_counter()
        image = frame.image
        if image.ndim != 3 or image.shape[2] != 3:
            raise HoposerError(f"frame {frame.index} is not a colour image ({image.shape})")
        if self.undistort_maps is not None:
            image = cv2.remap(image, *self.undistort_maps, cv2.INTER_LINEAR)
        rgb = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
        hands = self.detector.detect_all(rgb)
        return Detected(rgb, hands, (time.perf_counter() - started) * 1e3)

    def process(self, frame: Frame, detected: Detected | None = None) -> FrameResult:
        """Run one frame through every stage (`detected`: its `detect` stage, already run)."""
        timings: dict[str, float] = {}
        tick = time.perf_counter()

        def lap(name: str) -> None:
            nonlocal tick
            now = time.perf_counter()
            timings[name] = (now - tick) * 1e3
            tick = now

        timings["capture_wait"] = (tick - frame.timestamp) * 1e3
        if detected is None:
            detected = self.detect(frame)
            tick = time.perf_counter()
        rgb = detected.rgb
        height, width = rgb.shape[:2]
        track = self.tracker.update(
            detected.hands,
            frame.clock,
            (width, height),
            self._object_evidence,
            stable=self.stabilizer.locked,
        )
        lap("detect")
        timings["detect"] += detected.ms
        if track is None:
            self._previous_fit = None
            verdict = self.stabilizer.no_hand()
            return self._result(frame, timings, None, None, None, verdict, rgb.shape)
        if track.new_track and self.stabilizer.published is not None:
            self.stabilizer = Stabilizer(self.stabilizer.options)  # another hand: start afresh
        detection = track.detection
        object_box = self._object_box(rgb, detection)
        # A left hand runs through the right-hand model in the mirror image (module docstring).
        view = InputView.around(
            [detection.box, object_box],
            self.backend.input_size,
            (width, height),
            mirrored=detection.side == "left",
        )
        net = prepare(rgb, view, detection.box, object_box, self.K)
        lap("preprocess")
        raw = self.backend.run(net.image[None], net.hand_box[None], net.object_box[None])
        lap("engine")
        pose = decode(
            raw,
            net.camera_matrix,
            net.hand_box[None],
            net.object_box[None],
            self.hand_model,
            self.object_spec.control_points if self.object_spec else None,
            object_gate=self.object_gate,
        )[0]
        pose = _to_frame(pose, view)
        lap("decode")
        pose, evidence = self._refine(pose, track, width)
        pose = self._object_at_hand(pose)
        lap("refine")
        if self.objects is not None and pose.object is not None:
            self.objects.update(pose.object.success, pose.object.R, pose.object.t)
        found = pose.object is not None and pose.object.success
        self._object_evidence = object_box if found else None
        verdict = self.stabilizer.update(
            HandEstimate(
                joints_2d=pose.hand.joints_2d,
                joints=pose.hand.joints,
                theta=pose.hand.theta,
                beta=pose.hand.beta,
                vertices=pose.hand.vertices,
                hand_box=detection.box,
            ),
            frame.clock,
        )
        lap("stabilize")
        return self._result(
            frame, timings, detection, object_box, pose, verdict, rgb.shape, track, evidence
        )

    def _refine(
        self, pose: FramePose, track: TrackedHand, width: int
    ) -> tuple[FramePose, tuple[str, ...]]:
        """Fit the hand model to the 2D evidence (`--refine`).

        The pose is returned unchanged when refinement is off or finds no placement. A left hand
        is fitted in the mirror image, where the right-hand model applies, and mirrored back.
        """
        if self.kinematics is None:
            return pose, ()
        detection = track.detection
        left = detection.side == "left"
        hand, evidence = refinement_inputs(pose.hand, detection, self.K, width, left, self.refine)
        previous = self._previous_fit  # the same hand's fit in the previous frame steadies this one
        previous = previous[1] if previous is not None and previous[0] == track.track_id else None
        fit = refine_hand(
            self.kinematics, hand.theta, hand.beta, hand.translation, evidence, previous=previous
        )
        self._previous_fit = None if fit is None else (track.track_id, fit)
        if fit is None:
            return pose, ()
        theta = torch.from_numpy(fit.theta[None])
        with torch.no_grad():
            vertices = self.hand_model(theta, torch.from_numpy(fit.beta[None])).vertices[0]
        hand = replace(
            hand,
            joints_2d=project(fit.joints, evidence.camera_matrix),
            joints=fit.joints,
            vertices=vertices.double().numpy() + fit.translation,
            theta=fit.theta,
            beta=fit.beta,
            translation=fit.translation,
            reprojection_px=fit.reprojection_px,
        )
        if left:
            hand = _mirror_hand(hand, width)
        return FramePose(hand, pose.object), fit.evidence

    def _object_at_hand(self, pose: FramePose) -> FramePose:
        """Re-check a found object against the refined hand; refuse it if it is not held.

        Decoding gated the object against the network's wrist depth; refinement can move the
        wrist by decimetres. Without an object detector the object box is the hand's grasp
        region, and the network can also "find" its object in front of the palm (on the example
        clip, whose box stands beside an open hand, it did): a held object touches the hand, and
        shows beside the fingers rather than wholly inside the hand's silhouette.
        """
        obj, hand = pose.object, pose.hand
        if obj is None or not obj.success or not np.all(np.isfinite(hand.translation)):
            return pose
        gate = self.object_gate
        gap = abs(float(obj.t[2]) - float(hand.translation[2]))
        reason = ""
        if gap > gate.max_depth_from_hand_m:
            reason = (f"depth {obj.t[2]:.2f} m is {gap:.2f} m from the hand's "
                      f"(limit {gate.max_depth_from_hand_m:g} m)")  # fmt: skip
        elif self.object_spec is not None:
            points = self.object_spec.control_points @ obj.R.T + obj.t
            centre = points.mean(axis=0)
            radius = float(np.linalg.norm(points - centre, axis=1).max())
            reach = float(np.linalg.norm(hand.joints - centre, axis=1).min()) - radius
            vertices = self.object_spec.vertices @ obj.R.T + obj.t
            beside = visible_beside_hand(vertices, hand.vertices, self.hand_model.faces, self.K)
            if reach > gate.max_gap_to_hand_m:
                reason = (f"the object is {reach:.2f} m from the hand's nearest joint "
                          f"(limit {gate.max_gap_to_hand_m:g} m)")  # fmt: skip
            elif beside < gate.min_beside_hand:  # NaN (nothing to compare with) passes
                reason = (f"the object lies on the hand ({beside:.0%} of it beside the hand, "
                          f"needs {gate.min_beside_hand:.0%})")  # fmt: skip
        if not reason:
            return pose
        nan = float("nan")
        failed = replace(obj, success=False, R=np.full((3, 3), nan), t=np.full(3, nan),
                         reprojection_px=nan, reason=reason)  # fmt: skip
        return FramePose(pose.hand, failed)

    def _object_box(self, rgb: np.ndarray, detection: HandDetection) -> np.ndarray:
        if self.object_detector is not None:
            box = self.object_detector.box(rgb, detection)
            if box is not None:
                return box
        if self.objects is not None:
            return self.objects.box(detection, self.K, (rgb.shape[1], rgb.shape[0]))
        return grasp_box(detection.box, detection.landmarks)

    def _result(
        self, frame, timings, detection, object_box, pose, verdict, shape, track=None, evidence=()
    ) -> FrameResult:
        hand = None
        if track is not None:
            self._published_track, self._published_side = track.track_id, detection.side
        if verdict.hand is not None:
            published = verdict.hand
            side = self._published_side  # a held pose keeps its hand's side
            # MANO's global rotation is the wrist's orientation.
            wrist_R = cv2.Rodrigues(np.asarray(published.theta[:3], np.float64))[0]
            reprojection = pose.hand.reprojection_px if pose is not None else float("nan")
            hand = hand_payload(
                side,
                published.joints,
                published.joints_2d,
                published.theta,
                published.beta,
                wrist_R,
                reprojection if np.isfinite(reprojection) else -1.0,
                detection.score if detection is not None else 0.0,
                self.transform,
                track_id=self._published_track,
                new_track=track is not None and track.new_track,
                refinement=refinement_payload(self.refine, evidence),
            )
        obj = None
        if self.object_spec is not None and pose is not None and pose.object is not None:
            o = pose.object
            obj = object_payload(
                self.object_spec.name,
                o.success,
                o.R,
                o.t,
                o.inliers,
                o.reprojection_px,
                o.reason,
                self.transform,
            )
        timings["total"] = (time.perf_counter() - frame.timestamp) * 1e3
        message = pose_message(
            frame_index=frame.index,
            capture_time=frame.timestamp + self._clock_offset,
            camera_id=self.camera_id,
            reference_frame=self.transform.parent,
            hand=hand,
            obj=obj,
            stable=verdict.stable,
            held=verdict.held,
            age_frames=verdict.age_frames,
            flags=verdict.flags,
            latency_ms=timings,
        )
        return FrameResult(
            frame, message, detection, object_box, pose, verdict, timings, track, evidence
        )


def refinement_inputs(
    hand: HandPose,
    detection: HandDetection,
    camera_matrix: np.ndarray,
    width: int,
    left: bool,
    mode: str,
) -> tuple[HandPose, Evidence]:
    """The network's hand and the evidence `mode` allows, in the right-hand model's image.

    For a left hand that is the mirror image: the hand, the network's 2D joints, the detector's
    landmarks (x → W − x), its metric landmarks (X → −X) and the principal point (cx → W − cx).
    """
    K = np.asarray(camera_matrix, np.float64)
    landmarks, world = detection.landmarks, detection.world_landmarks
    if left:
        hand = _mirror_hand(hand, width)
        K = K.copy()
        K[0, 2] = width - K[0, 2]
        landmarks = _mirror_points(landmarks, width)
        world = None if world is None else world @ MIRROR
    evidence = Evidence(
        K,
        network_2d=hand.joints_2d,
        landmarks_2d=landmarks,
        landmark_weights=detection.landmark_weights,
        landmarks_3d=world,
    )
    return hand, evidence.restricted(mode)


def _mirror_points(points: np.ndarray, width: int) -> np.ndarray:
    mirrored = np.array(points, np.float64)
    mirrored[:, 0] = width - mirrored[:, 0]
    return mirrored


def _mirror_hand(hand: HandPose, width: int) -> HandPose:
    """The mirror image (x → W − x, X → −X) of a hand; its own inverse."""
    return replace(
        hand,
        joints_2d=_mirror_points(hand.joints_2d, width),
        joints=hand.joints @ MIRROR,
        vertices=hand.vertices @ MIRROR,
        theta=mirror_theta(hand.theta),
        translation=MIRROR @ hand.translation,
    )


def _to_frame(pose: FramePose, view: InputView) -> FramePose:
    """Map a pose decoded in the (possibly mirrored) network input back to the original frame."""
    hand = replace(pose.hand, joints_2d=view.to_frame(pose.hand.joints_2d))
    obj = pose.object
    if view.mirrored:
        hand = replace(
            hand,
            joints=pose.hand.joints @ MIRROR,
            vertices=pose.hand.vertices @ MIRROR,
            theta=mirror_theta(pose.hand.theta),
            translation=MIRROR @ pose.hand.translation,
        )
        if obj is not None and obj.success:
            obj = replace(obj, R=MIRROR @ obj.R @ MIRROR, t=MIRROR @ obj.t)
    return FramePose(hand, obj)
