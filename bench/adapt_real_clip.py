"""`hoposer train adapt` on a real clip: adapt on its first part, measure the rest, before vs after.

    python bench/adapt_real_clip.py [--clip ../shared/realphotos/fpha_raw1.mp4] [--weights W]
                                    [--work /tmp/adapt-real] [--holdout 0.3] [--max-steps 300]
                                    [--lr 2e-4] [--stride 1] [--seed 0] [--data DIR]

Adapts the weights on the first (1 − holdout) of the clip (`hoposer train adapt --holdout`), then
runs both the given and the adapted weights through the stream's `FrameProcessor` (MediaPipe lite
in tracking mode, crop, network, decode, refinement, stabilizer) over the held-out frames in
order, and prints for each:

- **stable fraction**: the frames whose hand passed every §5.1 check of the stabilizer;
- **2D error vs MediaPipe full** (static mode, as `bench/real_photos.py`): mean joint distance
  over the reference landmarks' box diagonal, for the published hand (`--refine auto`) and for
  the network alone (`--refine off`);
- and the adapt report's own held-out measures (the network alone: §5 pass rate and 2D error vs
  the landmarks the labelling used).

The clip is read where it is; frames are written under `--work` only.
"""

import argparse
import json
import sys
import time
from pathlib import Path

import cv2
import numpy as np

from hoposer.frames.detect import MediaPipeHandDetector
from hoposer.frames.sources import Frame
from hoposer.geometry.camera import default_camera_matrix
from hoposer.stream.pipeline import FrameProcessor
from hoposer.train.adapt import AdaptOptions, adapt

REPO = Path(__file__).resolve().parent.parent
DEFAULT_CLIP = REPO.parent / "shared" / "realphotos" / "fpha_raw1.mp4"


def errors_2d(predicted: np.ndarray, reference: np.ndarray) -> float:
    """Mean joint error over the reference landmarks' box diagonal."""
    diagonal = np.linalg.norm(reference.max(axis=0) - reference.min(axis=0))
    return float(np.linalg.norm(predicted - reference, axis=1).mean() / diagonal)


def read_frames(clip: str) -> list[np.ndarray]:
    capture = cv2.VideoCapture(clip)
    frames = []
    while True:
        ok, image = capture.read()
        if not ok:
            break
        frames.append(image)
    capture.release()
    return frames


def stream_measures(weights: str, frames: list[np.ndarray], fps: float, fov: float) -> dict:
    """The stream on `frames` in order: stable fraction and 2D error vs MediaPipe full."""
    from hoposer.engine.backends import open_backend
    from hoposer.model.checkpoint import read_checkpoint_info
    from hoposer.model.hand import hand_model_for_weights

    trained_with = read_checkpoint_info(weights).metadata.get("hand_model")
    hand_model = hand_model_for_weights(trained_with, "auto")
    reference = MediaPipeHandDetector(video=False, model_complexity=1)
    out = {}
    for refine in ("auto", "off"):
        backend = open_backend("torch", weights=weights)
        height, width = frames[0].shape[:2]
        processor = FrameProcessor(
            backend, hand_model, MediaPipeHandDetector(video=True),
            default_camera_matrix(width, height, fov), refine=refine,
        )  # fmt: skip
        stable = with_hand = 0
        errors = []
        for i, bgr in enumerate(frames):
            result = processor.process(Frame(i, i / fps, bgr))
            if result.pose is None:
                continue
            with_hand += 1
            stable += bool(result.verdict is not None and result.verdict.stable)
            refs = reference.detect_all(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
            if refs:
                joints = result.pose.hand.joints_2d
                errors.append(min(errors_2d(joints, r.landmarks) for r in refs))
        out[refine] = {
            "frames": len(frames),
            "with_hand": with_hand,
            "stable_fraction": stable / len(frames),
            "error_2d_vs_mediapipe_full": float(np.mean(errors)) if errors else None,
            "frames_with_reference": len(errors),
        }
    reference.close()
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clip", default=str(DEFAULT_CLIP))
    parser.add_argument(
        "--weights", default=str(REPO / "hoposer/weights/lite-synthetic.safetensors")
    )
    parser.add_argument("--work", default="/tmp/adapt-real")
    parser.add_argument("--holdout", type=float, default=0.3)
    parser.add_argument("--max-steps", type=int, default=AdaptOptions.max_steps)
    parser.add_argument("--lr", type=float, default=AdaptOptions.lr)
    parser.add_argument("--fov", type=float, default=60.0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--stride", type=int, default=1, help="label every n-th frame")
    parser.add_argument("--seed", type=int, default=AdaptOptions.seed)
    parser.add_argument("--data", help="labelled HO-3D-layout frames to mix in (train synth)")
    args = parser.parse_args()
    if not Path(args.clip).is_file():
        print(f"no clip {args.clip}: pass --clip FILE", file=sys.stderr)
        return 2
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    out = work / "adapted.safetensors"
    started = time.perf_counter()
    report = adapt(
        AdaptOptions(
            clips=(args.clip,), weights=args.weights, out=str(out), holdout=args.holdout,
            max_steps=args.max_steps, lr=args.lr, fov=args.fov, threads=args.threads, device="auto",
            stride=args.stride, seed=args.seed, data=args.data,
        )
    )  # fmt: skip
    adapt_seconds = time.perf_counter() - started
    frames = read_frames(args.clip)
    fps = cv2.VideoCapture(args.clip).get(cv2.CAP_PROP_FPS) or 30.0
    cut = int(np.ceil((1 - args.holdout) * len(frames)))
    held_out = frames[cut:]
    result = {
        "clip": args.clip,
        "frames": len(frames),
        "held_out_from": cut,
        "adapt_seconds": adapt_seconds,
        "funnel": report["funnel"],
        "adapt_report": {"before": report["before"], "after": report["after"]},
        "stream_before": stream_measures(args.weights, held_out, fps, args.fov),
        "stream_after": stream_measures(str(out), held_out, fps, args.fov),
    }
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
