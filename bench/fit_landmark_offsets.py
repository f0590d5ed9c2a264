"""Fit the hand model → MediaPipe landmark offsets once, from a real clip, and store them.

    python bench/fit_landmark_offsets.py [--clip ../shared/realphotos/fpha_raw1.mp4]
                                         [--hand-model standin] [--write]

MediaPipe's landmarks are not the hand model's joints (its MCP row is more slanted and cupped,
its thumb CMC sits further palm-ward, its finger joints are spaced differently). The refinement
maps each model joint to MediaPipe's definition by a fixed offset in the frame of the bone that
carries it (`hoposer.geometry.refine`); this script fits those offsets on every hand MediaPipe
Hands (full model, static mode) finds in the clip's frames, using its metric landmarks, and with
`--write` stores them in hoposer/model/hand/landmark_offsets.json under the hand model's name.
The clip is a different source from the photos `bench/real_photos.py` scores, so the benchmark
does not grade data it was fitted on.
"""

import argparse
import json
import sys
from pathlib import Path

import cv2
import numpy as np

from hoposer.frames.detect import MediaPipeHandDetector
from hoposer.geometry.camera import default_camera_matrix
from hoposer.geometry.refine import (
    LANDMARK_OFFSETS_FILE,
    Evidence,
    Kinematics,
    fit_landmark_offsets,
)
from hoposer.model.hand import build_hand_model
from hoposer.stream.pipeline import MIRROR

REPO = Path(__file__).resolve().parent.parent
DEFAULT_CLIP = REPO.parent / "shared" / "realphotos" / "fpha_raw1.mp4"


def samples_from_clip(path: Path, fov_deg: float) -> list[Evidence]:
    """Every hand MediaPipe (full, static) finds in the clip, as right-hand evidence."""
    detector = MediaPipeHandDetector(video=False, model_complexity=1)
    capture = cv2.VideoCapture(str(path))
    samples = []
    while True:
        ok, bgr = capture.read()
        if not ok:
            break
        rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        height, width = rgb.shape[:2]
        K = default_camera_matrix(width, height, fov_deg)
        for hand in detector.detect_all(rgb):
            if hand.world_landmarks is None:
                continue
            landmarks, world = hand.landmarks.copy(), hand.world_landmarks
            if hand.side == "left":  # the right-hand model sees the mirror image
                landmarks[:, 0] = width - landmarks[:, 0]
                world = world @ MIRROR
                K = K.copy()
                K[0, 2] = width - K[0, 2]
            samples.append(Evidence(K, landmarks_2d=landmarks, landmarks_3d=world))
    capture.release()
    detector.close()
    return samples


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clip", default=str(DEFAULT_CLIP))
    parser.add_argument("--hand-model", default="standin")
    parser.add_argument("--fov", type=float, default=60.0)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--write", action="store_true", help="store the offsets")
    args = parser.parse_args()
    if not Path(args.clip).is_file():
        print(f"clip {args.clip} not found: pass --clip FILE", file=sys.stderr)
        return 2
    hand_model = build_hand_model(args.hand_model)
    kin = Kinematics.from_model(hand_model)
    kin = Kinematics(**{**kin.__dict__, "landmark_offsets": np.zeros((21, 3))})
    samples = samples_from_clip(Path(args.clip), args.fov)
    print(f"{len(samples)} hands in {args.clip}")
    _, before = fit_landmark_offsets(kin, samples, rounds=1)
    offsets, after = fit_landmark_offsets(kin, samples, rounds=args.rounds)
    print(f"mean 3D disagreement with MediaPipe's metric landmarks: {1000 * before:.1f} mm "
          f"without offsets, {1000 * after:.1f} mm with")  # fmt: skip
    print("offsets (mm):\n" + np.array2string(1000 * offsets, precision=1, suppress_small=True))
    if args.write:
        stored = {}
        if LANDMARK_OFFSETS_FILE.is_file():
            stored = json.loads(LANDMARK_OFFSETS_FILE.read_text())
        stored[hand_model.name] = {
            "about": "MediaPipe landmark minus model joint, metres, in the rest frame of the bone "
            "carrying the joint; fitted by bench/fit_landmark_offsets.py",
            "clip": Path(args.clip).name,
            "hands": len(samples),
            "mean_3d_disagreement_m": round(after, 5),
            "offsets": np.round(offsets, 5).tolist(),
        }
        LANDMARK_OFFSETS_FILE.write_text(json.dumps(stored, indent=1) + "\n")
        print(f"wrote {LANDMARK_OFFSETS_FILE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
