"""Training and evaluation samples: crop, augment (§6.1) and normalise one annotated frame.

A sample is a dict of numpy arrays ready for `collate`:

    image (3, S, S) float32 RGB in [0, 1]      hand_box, object_box (4,) crop pixels
    camera_matrix (3, 3) of the crop           joints_2d (21, 2) normalised to the hand box
    joints_3d (21, 3) wrist-relative, metres   theta (48,), beta (10,)
    has_mano, has_object () float flags (eq. 8's mask B is `has_object`)
    object_points_2d (21, 2) normalised to the object box
    object_points_2d_members (MAX_MEMBERS, 21, 2) the same for every symmetric pose (below)
    object_mask (R, R) float: grid cells on the object's silhouette
    object_R (3, 3), object_t (3,), wrist (3,): crop-camera poses for evaluation (object: the
        labelled pose, not the canonical one)
    index () int64

Object targets of a symmetric object (the frame's `object_symmetry`) are computed from the
canonical member of its pose's symmetry family in the crop camera (`canonical_pose`: the
rotation closest to the camera's axes), so that two poses showing the same image give the
same 21 targets. A box also carries the targets of every member of its family
(`object_points_2d_members`, the canonical one first, padded to `MAX_MEMBERS` by repeating it):
the loss trains each sample's whole grid towards the member nearest its proposals, so a pose
near a boundary between two canonical members is no blend of both. The cylinder's continuous
group has no finite set of members; its canonical targets alone train it.

An object the image hardly shows (meta `objVisible` under `MIN_OBJECT_VISIBLE`: hidden by the hand
or an occluder, or out of the frame) is no object label, for training as for scoring, as in BOP:
its targets cannot be read from the pixels, and learning them only teaches the head to guess.
Frames without `objVisible` (HO-3D, older synthetic data) keep their object.

Augmentation, seeded per (seed, epoch, index) so a resumed run sees the same samples:
scale ±20%, rotation ±180° (an exact camera roll: 3D labels and the MANO global rotation rotate
with the image), translation ±10% of the crop, colour jitter as the public Semi-Hand-Object
code does (brightness, contrast, saturation ×[0.5, 1.5], hue ±0.15 turns) and a Gaussian blur
(σ up to 1 px, half of the samples), so colours and sharpness are no shortcut to the labels.
"""

import logging
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

from hoposer.errors import HoposerError
from hoposer.geometry.boxes import box_from_points
from hoposer.geometry.camera import project
from hoposer.geometry.control_points import MAX_MEMBERS, canonical_pose, symmetric_targets
from hoposer.geometry.crop import HAND_BOX_EXPAND, Crop, crop_around, expand_box
from hoposer.model.inputs import network_image
from hoposer.train.data.ho3d import FrameLabel, ObjectLibrary, read_label, read_split

log = logging.getLogger(__name__)

OBJECT_BOX_EXPAND = 1.0
#: Objects showing less of their silhouette carry no label (BOP's visibility threshold). Of 400
#: synthetic frames (seed 1, 256²), 7.5 % show less than this, 2.5 % nothing, 13 % less than 0.3.
MIN_OBJECT_VISIBLE = 0.1


@dataclass(frozen=True)
class Augmentation:
    """§6.1's augmentation ranges (all off for evaluation)."""

    scale: float = 0.2
    rotation_deg: float = 180.0
    translation: float = 0.1
    color: float = 0.5
    hue: float = 0.15
    blur: float = 1.0  #: largest Gaussian blur σ in crop pixels (applied to half the samples)

    @classmethod
    def none(cls) -> "Augmentation":
        """No augmentation."""
        return cls(0.0, 0.0, 0.0, 0.0, 0.0, 0.0)

    def crop(self, base: Crop, rng: np.random.Generator) -> Crop:
        """`base` shifted, scaled and rotated by one draw of these ranges."""
        return Crop(
            center=base.center + rng.uniform(-1, 1, 2) * self.translation * base.side,
            side=base.side * rng.uniform(1 - self.scale, 1 + self.scale),
            size=base.size,
            rotation=np.deg2rad(rng.uniform(-self.rotation_deg, self.rotation_deg)),
        )


def _normalise(points: np.ndarray, box: np.ndarray) -> np.ndarray:
    return (points - box[:2]) / np.maximum(box[2:] - box[:2], 1e-6)


def jitter_color(image: np.ndarray, rng: np.random.Generator, amount: float, hue: float):
    """Brightness, contrast and saturation scaled by 1 ± `amount`, hue shifted by ± `hue` turns."""
    if amount <= 0 and hue <= 0:
        return image
    x = image.astype(np.float32)
    x *= rng.uniform(1 - amount, 1 + amount)  # brightness
    mean = x.mean()
    x = (x - mean) * rng.uniform(1 - amount, 1 + amount) + mean  # contrast
    gray = x @ np.array([0.299, 0.587, 0.114], np.float32)
    x = (x - gray[..., None]) * rng.uniform(1 - amount, 1 + amount) + gray[..., None]
    x = np.clip(x, 0, 255).astype(np.uint8)
    if hue > 0:
        hsv = cv2.cvtColor(x, cv2.COLOR_RGB2HSV)
        shift = int(round(rng.uniform(-hue, hue) * 180))
        hsv[..., 0] = ((hsv[..., 0].astype(np.int32) + shift) % 180).astype(np.uint8)
        x = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)
    return x


def blur(image: np.ndarray, rng: np.random.Generator, sigma: float) -> np.ndarray:
    """Half the time, a Gaussian blur of σ drawn in [0.1, `sigma`] pixels; else the image."""
    if sigma <= 0 or rng.uniform() < 0.5:
        return image
    return cv2.GaussianBlur(image, (0, 0), rng.uniform(0.1, max(sigma, 0.1)))


def _area_inside(box: np.ndarray, size: int) -> float:
    """Area (px²) of `box` [x1, y1, x2, y2] inside the `size`×`size` image."""
    width = min(box[2], size) - max(box[0], 0.0)
    height = min(box[3], size) - max(box[1], 0.0)
    return float(max(width, 0.0) * max(height, 0.0))


def silhouette_grid(points_2d: np.ndarray, box: np.ndarray, resolution: int) -> np.ndarray:
    """Cells of a `resolution²` grid over `box` covered by the convex hull of `points_2d`."""
    grid = _normalise(points_2d, box) * resolution
    hull = cv2.convexHull(np.round(grid * 16).astype(np.int32))
    mask = np.zeros((resolution, resolution), np.uint8)
    # Cell (i, j) spans [j, j+1) × [i, i+1); shift so cell centres sample the polygon.
    cv2.fillConvexPoly(mask, hull - 8, 1, cv2.LINE_8, 4)
    return mask.astype(np.float32)


class HandObjectDataset(torch.utils.data.Dataset):
    """An HO-3D-layout folder (HO-3D itself or our synthetic data) as network samples."""

    def __init__(
        self,
        root: str | Path,
        split: str = "train",
        input_size: int = 256,
        grid_size: int = 32,
        augmentation: Augmentation | None = None,
        seed: int = 0,
        ycb_dir: str | Path | None = None,
        max_samples: int | None = None,
    ) -> None:
        self.root = Path(root)
        self.split = split
        self.ids = read_split(self.root, split)[:max_samples]
        if not self.ids:
            raise HoposerError(f"{self.root / (split + '.txt')} lists no frames")
        self.input_size = input_size
        self.grid_size = grid_size
        self.augmentation = augmentation or Augmentation.none()
        self.seed = seed
        self.epoch = 0
        self.objects = ObjectLibrary(self.root, Path(ycb_dir) if ycb_dir else None)

    def set_epoch(self, epoch: int) -> None:
        """Choose the augmentation draw of an epoch (call before making the loader iterator)."""
        self.epoch = epoch

    def __len__(self) -> int:  # noqa: D105
        return len(self.ids)

    def label(self, index: int) -> FrameLabel:
        """The converted annotation of sample `index`."""
        sequence, frame = self.ids[index]
        return read_label(self.root, self.split, sequence, frame)

    def __getitem__(self, index: int) -> dict | None:
        """The sample, or None (logged) when its files are missing or corrupt."""
        try:
            return self.make_sample(index)
        except (HoposerError, OSError, ValueError, cv2.error) as err:
            sequence, frame = self.ids[index]
            log.warning("skipping %s/%s/%s: %s", self.split, sequence, frame, err)
            return None

    def make_sample(self, index: int) -> dict:
        """Build sample `index` (raises on bad files)."""
        label = self.label(index)
        image = cv2.imread(str(label.image_path), cv2.IMREAD_COLOR)
        if image is None:
            raise HoposerError(f"cannot read image {label.image_path}")
        image = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
        height, width = image.shape[:2]
        K = label.camera_matrix
        rng = np.random.default_rng((self.seed, self.epoch, index))
        aug = self.augmentation

        boxes = []
        if label.joints is not None:
            boxes.append(box_from_points(project(label.joints, K)))
        elif label.hand_box is not None:
            boxes.append(label.hand_box)
        else:
            raise HoposerError("frame has neither hand joints nor a hand box")
        model = None
        shown = label.object_visible is None or label.object_visible >= MIN_OBJECT_VISIBLE
        if label.object_name is not None and label.object_R is not None and shown:
            model = self.objects.get(label.object_name)
            symmetry = label.object_symmetry or model.symmetry
            # The crop, too, must not depend on which member of the family is labelled.
            shown_R, shown_t = canonical_pose(
                label.object_R, label.object_t, symmetry, model.centre, model.extent
            )
            object_2d = project(model.control_points @ shown_R.T + shown_t, K)
            boxes.append(box_from_points(object_2d))
        crop = aug.crop(crop_around(boxes, self.input_size, (width, height)), rng)
        roll, crop_K = crop.roll, crop.camera(K)
        pixels = blur(jitter_color(crop.warp(image), rng, aug.color, aug.hue), rng, aug.blur)
        sample: dict = {
            "image": network_image(pixels),
            "camera_matrix": crop_K.astype(np.float32),
            "index": np.int64(index),
        }

        if label.joints is not None:
            joints = label.joints @ roll.T
            joints_2d = project(joints, crop_K)
            hand_box = expand_box(box_from_points(joints_2d), HAND_BOX_EXPAND)
            sample["joints_2d"] = _normalise(joints_2d, hand_box)
            sample["joints_3d"] = joints - joints[0]
            sample["wrist"] = joints[0]
        else:
            corners = crop.apply(label.hand_box.reshape(2, 2))
            hand_box = expand_box(box_from_points(corners), HAND_BOX_EXPAND)
            sample["joints_2d"] = np.zeros((21, 2))
            sample["joints_3d"] = np.zeros((21, 3))
            sample["wrist"] = label.root @ roll.T if label.root is not None else np.zeros(3)
        sample["hand_box"] = hand_box
        has_mano = label.theta is not None and label.beta is not None
        theta = np.zeros(48) if label.theta is None else label.theta.copy()
        if has_mano:
            theta[:3] = cv2.Rodrigues(roll @ cv2.Rodrigues(theta[:3])[0])[0][:, 0]
        sample["theta"] = theta
        sample["beta"] = np.zeros(10) if label.beta is None else label.beta
        sample["has_mano"] = np.float32(has_mano and label.joints is not None)

        r = self.grid_size
        if model is not None:
            object_R = roll @ label.object_R
            object_t = roll @ label.object_t
            target_R, target_t = canonical_pose(
                object_R, object_t, symmetry, model.centre, model.extent
            )
            members = symmetric_targets(
                target_R, target_t, symmetry, model.control_points, model.centre, model.extent
            )
            points_2d = project(members, crop_K)  # (M, 21, 2), the canonical member first
            object_box = expand_box(box_from_points(points_2d[0]), OBJECT_BOX_EXPAND)
            # An object outside the crop (out of the frame, which clips the crop) shows no pixel
            # to learn from, and its box breaks the engines' input contract: no object here.
            if _area_inside(object_box, self.input_size) < 1.0:
                model = None
        if model is not None:
            vertices = model.vertices[:: max(1, len(model.vertices) // 2000)]
            silhouette = project(vertices @ object_R.T + object_t, crop_K)
            sample["object_points_2d"] = _normalise(points_2d[0], object_box)
            padded = np.concatenate(  # repeats of the canonical member: same loss, fixed shape
                [points_2d, np.repeat(points_2d[:1], MAX_MEMBERS - len(points_2d), axis=0)]
            )
            sample["object_points_2d_members"] = _normalise(padded, object_box)
            sample["object_mask"] = silhouette_grid(silhouette, object_box, r)
            sample["object_box"] = object_box
            sample["object_R"], sample["object_t"] = object_R, object_t
            sample["has_object"] = np.float32(1.0)
        else:
            sample["object_points_2d"] = np.zeros((21, 2))
            sample["object_points_2d_members"] = np.zeros((MAX_MEMBERS, 21, 2))
            sample["object_mask"] = np.zeros((r, r), np.float32)
            sample["object_box"] = hand_box.copy()  # any valid box: the loss ignores it
            sample["object_R"], sample["object_t"] = np.full((3, 3), np.nan), np.full(3, np.nan)
            sample["has_object"] = np.float32(0.0)
        return {
            k: (v.astype(np.float32) if isinstance(v, np.ndarray) and v.dtype == np.float64 else v)
            for k, v in sample.items()
        }


def collate(samples: list[dict | None]) -> tuple[dict[str, torch.Tensor], int]:
    """Stack the good samples; also return how many were skipped (None)."""
    good = [s for s in samples if s is not None]
    skipped = len(samples) - len(good)
    if not good:
        return {}, skipped
    batch = {key: torch.as_tensor(np.stack([s[key] for s in good])) for key in good[0]}
    return batch, skipped
