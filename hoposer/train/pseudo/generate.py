"""`hoposer train pseudo`: pseudo-labels for unlabelled videos (§5.1), sharded and resumable.

Each frame is predicted under 8 test-time augmentations (scales 1.0 and 1.15 × in-plane
rotations −15°, −5°, 5°, 15° of the crop); every prediction is mapped back to the frame (2D
joints through the inverse crop, the MANO global rotation un-rolled) and they are averaged: 2D
joints, θ's articulation and β arithmetically, the global rotation as the rotation closest to the
mean matrix. 3D joints and vertices come from the hand model at the averaged θ, β.

For every frame the §5.1 statistics are computed and stored (spatial: mesh-box IoU with the given
hand box, re-projection distance, shortest normalised bone, largest flexion angle; temporal:
2D joint motion and θ change against the previous frame of the same video); which frames are
kept is decided when the labels are used (`select`), so each ablation of Table 4 reuses one
generation. Output: `shard-NNNNN.npz` (plain arrays, no pickle), one per `videos_per_shard`
videos, written atomically and skipped when present, so a killed job resumes; with `torchrun`,
rank r makes shards r, r + world, …
"""

import logging
import math
import os
from dataclasses import asdict
from pathlib import Path

import cv2
import numpy as np
import torch

from hoposer.frames.sources import read_frames
from hoposer.geometry.consistency import spatial_statistics, temporal_statistics
from hoposer.geometry.crop import Crop
from hoposer.geometry.procrustes import mean_rotation
from hoposer.geometry.rotations import axis_angle_to_matrix, matrix_to_axis_angle
from hoposer.io import atomic_path, json_text, write_text_atomic
from hoposer.model.checkpoint import load_checkpoint, read_checkpoint_info
from hoposer.model.hand import HandModel, hand_model_for_weights
from hoposer.model.inputs import InputView, prepare, stack
from hoposer.train.fit import resolve_device
from hoposer.train.options import PseudoOptions
from hoposer.train.pseudo.videos import Video, load_videos

log = logging.getLogger(__name__)

#: (scale, rotation in degrees) of the 8 test-time augmentations.
TTA: tuple[tuple[float, float], ...] = tuple(
    (s, r) for s in (1.0, 1.15) for r in (-15.0, -5.0, 5.0, 15.0)
)
STATISTICS = ("iou", "reprojection", "bone_length", "joint_angle", "joint_motion", "pose_change")


def _rank_world() -> tuple[int, int]:
    return int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))


class TTAPredictor:
    """A model + hand model that predicts one frame's hand under test-time augmentation."""

    def __init__(
        self, model, hand_model: HandModel, device: torch.device, augmentations=TTA
    ) -> None:
        self.model = model.to(device).eval()
        self.hand_model = hand_model
        self.device = device
        self.size = model.config.input_size
        self.augmentations = augmentations

    def predict(self, image_rgb: np.ndarray, hand_box: np.ndarray, object_box) -> dict:
        """Averaged prediction for one frame (frame pixels, camera orientation, metres)."""
        height, width = image_rgb.shape[:2]
        boxes = [hand_box] + ([object_box] if object_box is not None else [])
        base = InputView.around(boxes, self.size, (width, height))
        inputs = [
            prepare(image_rgb, base.with_crop(crop), hand_box, object_box)
            for crop in (
                Crop(base.crop.center, base.crop.side * scale, self.size, np.radians(degrees))
                for scale, degrees in self.augmentations
            )
        ]
        images, hand_boxes, object_boxes = (
            torch.from_numpy(x).to(self.device) for x in stack(inputs)
        )
        with torch.inference_mode():
            raw = self.model(images, hand_boxes, object_boxes)
        joints_norm = raw.joints_2d.float().cpu().numpy()
        theta = raw.theta.float().cpu().numpy().astype(np.float64)
        beta = raw.beta.float().cpu().numpy().astype(np.float64)
        joints_2d, globals_ = [], []
        for i, one in enumerate(inputs):
            joints_2d.append(one.to_frame(joints_norm[i]))
            rolled = axis_angle_to_matrix(torch.from_numpy(theta[i, :3])).numpy()
            globals_.append(one.view.crop.roll.T @ rolled)  # undo the camera roll of the crop
        mean_theta = theta.mean(axis=0)
        mean_theta[:3] = matrix_to_axis_angle(torch.from_numpy(mean_rotation(np.stack(globals_))))
        mean_beta = beta.mean(axis=0)
        with torch.no_grad():
            hand = self.hand_model(
                torch.from_numpy(mean_theta[None]), torch.from_numpy(mean_beta[None])
            )
        return {
            "joints_2d": np.mean(joints_2d, axis=0),
            "theta": mean_theta,
            "beta": mean_beta,
            "joints_3d": hand.joints[0].double().numpy(),
            "vertices": hand.vertices[0].double().numpy(),
        }


def label_video(predictor: TTAPredictor, video: Video) -> dict[str, np.ndarray]:
    """Predictions and §5.1 statistics for every readable frame of a video (read in one pass)."""
    rows: dict[str, list] = {k: [] for k in ("image", "hand_box", "object_box", "joints_2d",
                                             "joints_3d", "theta", "beta", "stats")}  # fmt: skip
    previous = None
    images = read_frames(frame.image for frame in video.frames)
    for frame, bgr in zip(video.frames, images, strict=True):
        if bgr is None:
            log.warning("skipping %s: the frame cannot be read", frame.image)
            previous = None  # a gap breaks the temporal chain
            continue
        image = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        p = predictor.predict(image, frame.hand_box, frame.object_box)
        stats = spatial_statistics(p["joints_3d"], p["joints_2d"], p["vertices"], frame.hand_box)
        if previous is not None:
            stats |= temporal_statistics(
                p["joints_2d"], p["theta"], previous["joints_2d"], previous["theta"]
            )
        previous = p
        rows["image"].append(frame.image)
        rows["hand_box"].append(frame.hand_box)
        rows["object_box"].append(
            frame.object_box if frame.object_box is not None else np.full(4, np.nan)
        )
        for key in ("joints_2d", "joints_3d", "theta", "beta"):
            rows[key].append(p[key])
        rows["stats"].append([stats.get(name, np.nan) for name in STATISTICS])
    out = {k: np.asarray(v, dtype=np.float64) for k, v in rows.items() if k != "image"}
    out["image"] = np.asarray(rows["image"], dtype=str)
    out["video"] = np.asarray([video.id] * len(rows["image"]), dtype=str)
    return out


def generate_pseudo_labels(options: PseudoOptions, progress=None) -> dict:
    """Write the shards this rank owns (skipping finished ones); returns counts."""
    rank, world = _rank_world()
    device = resolve_device(options.device)
    if world > 1 and device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    videos = load_videos(options.videos, options.annotations)
    out = Path(options.out)
    out.mkdir(parents=True, exist_ok=True)
    per_shard = max(1, options.videos_per_shard)
    shards = math.ceil(len(videos) / per_shard)
    if rank == 0:
        info = {"options": asdict(options), "videos": len(videos), "shards": shards,
                "statistics": list(STATISTICS), "tta": [list(a) for a in TTA]}  # fmt: skip
        write_text_atomic(out / "pseudo.json", json_text(info, indent=2) + "\n")
    model = load_checkpoint(options.weights)
    trained_with = read_checkpoint_info(options.weights).metadata.get("hand_model")
    hand_model = hand_model_for_weights(trained_with, options.hand_model, options.mano_dir)
    predictor = TTAPredictor(model, hand_model, device, TTA if options.tta else ((1.0, 0.0),))
    total_frames = sum(len(v.frames) for v in videos)
    done_frames = written = skipped = 0
    for shard in range(rank, shards, world):
        path = out / f"shard-{shard:05d}.npz"
        members = videos[shard * per_shard : (shard + 1) * per_shard]
        if path.is_file():
            skipped += 1
            done_frames += sum(len(v.frames) for v in members)
            continue
        parts = [label_video(predictor, v) for v in members]
        arrays = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
        arrays["statistic_names"] = np.asarray(STATISTICS, dtype=str)
        with atomic_path(path) as tmp, open(tmp, "wb") as f:
            np.savez(f, **arrays)
        written += 1
        done_frames += sum(len(v.frames) for v in members)
        if progress:
            progress(done_frames, total_frames)
    return {"videos": len(videos), "frames": total_frames, "shards_written": written,
            "shards_skipped": skipped}  # fmt: skip
