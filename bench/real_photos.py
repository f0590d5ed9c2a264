"""How the hand estimate lands on real photos, against MediaPipe Hands (full model) as reference.

    python bench/real_photos.py [--photos ../shared/realphotos] [--weights W] [--hand-model auto]
                                [--fov 60] [--object box:0.06x0.06x0.06] [--timing-repeats 50]

No labels exist for these photos; MediaPipe Hands' *full* landmark model in static mode is the 2D
reference (its *lite* model, the one the stream runs, is what the pipeline sees). For every hand
the reference finds it prints, in two modes:

- **network**: the network alone (`--refine off`), given the reference's hand box, so the
  network's own progress is visible;
- **pipeline**: what `hoposer video` publishes: the stream's own detector (MediaPipe lite; of the
  hands it finds, the one on the reference hand), crop, engine, decode and refinement
  (`--refine auto`), through `FrameProcessor`; beside it the same with `--refine network`
  (fitted to the network's own 2D joints only);

the mean 2D joint error divided by the reference box diagonal, PCK@0.05/0.1/0.2 of that diagonal,
and the box-centre baseline (all 21 joints at the reference box's centre). For the pipeline's
hands it counts plausible 3D (every bone 0.8–1.25× the hand model's rest length, wrist→middle MCP
7–11 cm), and joints beyond the hand model's limits by more than 0.05 rad; and it times the fit
alone (`refine_hand`, p50/p90 ms per hand over the hands found, CPU time and wall time).
The photos are read where they are (never copied).
"""

import argparse
import platform
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import torch

from hoposer.frames.detect import HandDetection, MediaPipeHandDetector, hand_box_from_landmarks
from hoposer.frames.sources import Frame
from hoposer.geometry.camera import default_camera_matrix
from hoposer.geometry.kinematics import bone_lengths
from hoposer.geometry.refine import Kinematics, refine_hand
from hoposer.stream.pipeline import (
    FrameProcessor,
    ObjectSpec,
    mirror_theta,
    refinement_inputs,
)

REPO = Path(__file__).resolve().parent.parent
DEFAULT_PHOTOS = REPO.parent / "shared" / "realphotos"
PCK = (0.05, 0.1, 0.2)
MAX_LIMIT_EXCESS = 0.05  # rad


class GivenHand:
    """A hand detector that returns one given detection (the bench picks the hand)."""

    def __init__(self, detection: HandDetection | None) -> None:
        self.detection = detection

    def detect(self, rgb: np.ndarray) -> HandDetection | None:  # noqa: D102
        return self.detection

    def detect_all(self, rgb: np.ndarray) -> list[HandDetection]:  # noqa: D102
        return [] if self.detection is None else [self.detection]

    def close(self) -> None:  # noqa: D102
        pass


def box_of(points: np.ndarray) -> np.ndarray:
    return np.concatenate([points.min(axis=0), points.max(axis=0)])


def box_iou(a: np.ndarray, b: np.ndarray) -> float:
    lo, hi = np.maximum(a[:2], b[:2]), np.minimum(a[2:], b[2:])
    inter = np.prod(np.clip(hi - lo, 0, None))
    area = lambda x: np.prod(x[2:] - x[:2])  # noqa: E731
    return float(inter / max(area(a) + area(b) - inter, 1e-9))


def errors_2d(predicted: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Per-joint 2D error `(21,)` over the reference landmarks' box diagonal."""
    box = box_of(reference)
    return np.linalg.norm(predicted - reference, axis=1) / np.linalg.norm(box[2:] - box[:2])


def plausible(joints: np.ndarray, rest_bones: np.ndarray) -> bool:
    """Bones 0.8–1.25× the hand model's rest lengths and wrist→middle MCP 7–11 cm."""
    ratio = bone_lengths(joints) / rest_bones
    palm = np.linalg.norm(joints[9] - joints[0])
    return bool(np.all((ratio >= 0.8) & (ratio <= 1.25)) and 0.07 <= palm <= 0.11)


def load_backend(weights: str | None, hand_model: str):
    from hoposer.engine.backends import open_backend
    from hoposer.model.checkpoint import read_checkpoint_info
    from hoposer.model.hand import hand_model_for_weights
    from hoposer.stream.options import DEFAULT_WEIGHTS

    weights = weights or str(DEFAULT_WEIGHTS)
    trained_with = read_checkpoint_info(weights).metadata.get("hand_model")
    return open_backend("auto", weights=weights), hand_model_for_weights(trained_with, hand_model)


def summary_line(name: str, errs: list[np.ndarray]) -> str:
    if not errs:
        return f"{name:<10} no hands"
    e = np.stack(errs)
    pck = " ".join(f"{(e < a).mean():.2f}" for a in PCK)
    worst = e.mean(1).max()
    return (
        f"{name:<10} err/diag {e.mean():.3f} (median hand {np.median(e.mean(1)):.3f}, worst "
        f"{worst:.3f}) PCK@{'/'.join(str(a) for a in PCK)} {pck}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", default=str(DEFAULT_PHOTOS), help="folder of .jpg photos")
    parser.add_argument("--weights", default=None, help="checkpoint (default: the shipped one)")
    parser.add_argument("--hand-model", default="auto")
    parser.add_argument("--fov", type=float, default=60.0, help="assumed horizontal FOV (deg)")
    parser.add_argument("--object", default="box:0.06x0.06x0.06", help="as `hoposer video`")
    parser.add_argument("--timing-repeats", type=int, default=50)
    args = parser.parse_args()

    photos = sorted(Path(args.photos).glob("*.jpg"))
    if not photos:
        print(f"no .jpg photos in {args.photos}: pass --photos DIR", file=sys.stderr)
        return 2
    from hoposer.geometry.control_points import object_mesh

    backend, hand_model = load_backend(args.weights, args.hand_model)
    mesh = object_mesh(args.object)
    spec = ObjectSpec(args.object, mesh.control_points, mesh.vertices, mesh.faces)
    kinematics = Kinematics.from_model(hand_model)
    rest_bones = bone_lengths(hand_model.rest_joints())
    reference = MediaPipeHandDetector(video=False, model_complexity=1)
    stream_detector = MediaPipeHandDetector(video=False, model_complexity=0)

    net_errs, pipe_errs, centre_errs, centre_pipe, netfit_errs = [], [], [], [], []
    hands = found = plausible_count = beyond_limits = 0
    timing_inputs = []
    print(
        f"{'image':<30} {'hand':<5} {'centre':>7} {'network':>8} {'net-fit':>8} {'pipeline':>9}"
        " 3D  limits evidence"
    )
    for path in photos:
        bgr = cv2.imread(str(path))
        rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        height, width = rgb.shape[:2]
        K = default_camera_matrix(width, height, args.fov)
        lite_hands = stream_detector.detect_all(rgb)
        for ref in reference.detect_all(rgb):
            hands += 1
            ref_points = ref.landmarks
            centre = np.repeat(box_of(ref_points).reshape(2, 2).mean(0)[None], 21, axis=0)
            centre_err = errors_2d(centre, ref_points)
            centre_errs.append(centre_err)
            # The network alone, on the reference's hand box.
            given = HandDetection(hand_box_from_landmarks(ref_points), ref_points, ref.side, 1.0)
            alone = FrameProcessor(
                backend, hand_model, GivenHand(given), K, object_spec=spec, refine="off"
            ).process(Frame(0, time.perf_counter(), bgr))
            net_err = errors_2d(alone.pose.hand.joints_2d, ref_points)
            net_errs.append(net_err)
            # The pipeline: the stream's detector's hand on this reference hand, refined.
            ious = [box_iou(h.box, ref.box) for h in lite_hands]
            pipe_text, netfit_text, extra = "missed", "missed", ""
            if ious and max(ious) > 0.3:
                lite = lite_hands[int(np.argmax(ious))]
                result = FrameProcessor(
                    backend, hand_model, GivenHand(lite), K, object_spec=spec, refine="auto"
                ).process(Frame(0, time.perf_counter(), bgr))
                hand = result.pose.hand
                found += 1
                pipe_err = errors_2d(hand.joints_2d, ref_points)
                pipe_errs.append(pipe_err)
                centre_pipe.append(centre_err)
                ok = plausible(hand.joints, rest_bones)
                plausible_count += ok
                theta = mirror_theta(hand.theta) if lite.side == "left" else hand.theta
                excess = float(kinematics.limit_violation(theta).max())
                beyond_limits += excess > MAX_LIMIT_EXCESS
                pipe_text = f"{pipe_err.mean():9.3f}"
                netfit = FrameProcessor(
                    backend, hand_model, GivenHand(lite), K, object_spec=spec, refine="network"
                ).process(Frame(0, time.perf_counter(), bgr))
                netfit_err = errors_2d(netfit.pose.hand.joints_2d, ref_points)
                netfit_errs.append(netfit_err)
                netfit_text = f"{netfit_err.mean():8.3f}"
                extra = f" {'ok ' if ok else 'BAD'} {excess:.3f}  {','.join(result.evidence)}"
                # Inputs for timing the fit alone (the network's hand from an unrefined run).
                raw = FrameProcessor(
                    backend, hand_model, GivenHand(lite), K, object_spec=spec, refine="off"
                ).process(Frame(0, time.perf_counter(), bgr))
                timing_inputs.append(
                    refinement_inputs(raw.pose.hand, lite, K, width, lite.side == "left", "auto")
                )
            print(
                f"{path.name[:30]:<30} {ref.side:<5} {centre_err.mean():7.3f} "
                f"{net_err.mean():8.3f} {netfit_text:>8} {pipe_text:>9}{extra}"
            )

    print(f"\n{hands} reference hands in {len(photos)} photos; the pipeline found {found}")
    print(summary_line("centre", centre_errs))
    print(summary_line("network", net_errs))
    print(summary_line("centre*", centre_pipe) + "   (*: the hands the pipeline found)")
    print(summary_line("net-fit*", netfit_errs) + "   (--refine network)")
    print(summary_line("pipeline*", pipe_errs) + "   (--refine auto)")
    if found:
        share = 100 * plausible_count / found
        print(
            f"pipeline 3D plausible: {plausible_count}/{found} ({share:.0f} %); joints beyond "
            f"limits by > {MAX_LIMIT_EXCESS} rad: {beyond_limits}/{found} hands"
        )
        wall, cpu = [], []
        for _ in range(args.timing_repeats):
            for hand, evidence in timing_inputs:
                t0, c0 = time.perf_counter(), time.thread_time()
                refine_hand(kinematics, hand.theta, hand.beta, hand.translation, evidence)
                wall.append(time.perf_counter() - t0)
                cpu.append(time.thread_time() - c0)
        wall_ms, cpu_ms = np.array(wall) * 1e3, np.array(cpu) * 1e3
        print(
            f"refine_hand per hand: wall p50 {np.median(wall_ms):.2f} ms p90 "
            f"{np.percentile(wall_ms, 90):.2f} ms; CPU p50 {np.median(cpu_ms):.2f} ms p90 "
            f"{np.percentile(cpu_ms, 90):.2f} ms ({len(wall)} fits, {platform.machine()}, "
            f"{torch.get_num_threads()} torch threads)"
        )
    reference.close()
    stream_detector.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
