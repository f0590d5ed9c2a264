"""Self-training data (§5.2): kept pseudo-labels as samples, mixed with the labelled set.

A pseudo-labelled sample has the same keys as a labelled one (`HandObjectDataset`), so one
collate, one loop and one loss serve both. It carries hand labels only: `has_object` is 0, so
eq. 8's mask B removes the object terms, and the object box given to the network is the
annotated one (or the hand box). Crops and augmentation are those of the labelled set: the 2D
joints go through the crop's affine map, the 3D joints and the global rotation through its roll.
"""

import logging
from pathlib import Path

import cv2
import numpy as np
import torch

from hoposer.errors import HoposerError
from hoposer.frames.sources import read_frame
from hoposer.geometry.boxes import box_from_points
from hoposer.geometry.control_points import MAX_MEMBERS
from hoposer.geometry.crop import HAND_BOX_EXPAND, crop_around, expand_box
from hoposer.model.inputs import network_image
from hoposer.train.data.dataset import Augmentation, HandObjectDataset, blur, jitter_color
from hoposer.train.pseudo.select import load_shards, select

log = logging.getLogger(__name__)


class PseudoLabelDataset(torch.utils.data.Dataset):
    """The kept frames of pseudo-label shards, as training samples."""

    def __init__(
        self,
        folders: list[str | Path],
        input_size: int,
        grid_size: int,
        augmentation: Augmentation | None = None,
        seed: int = 0,
        filters: str = "all",
    ) -> None:
        labels = load_shards(folders)
        keep, self.funnel = select(labels, filters)
        self.labels = labels.subset(keep)
        if not len(self.labels):
            raise HoposerError(
                f"no pseudo-label passes the '{filters}' filters in {', '.join(map(str, folders))}"
            )
        self.input_size, self.grid_size = input_size, grid_size
        self.augmentation = augmentation or Augmentation.none()
        self.seed, self.epoch = seed, 0
        self.samples = len(self.labels)

    def repeat_to(self, samples: int) -> None:
        """Give `samples` samples per epoch by using each kept frame again, newly augmented.

        Sample i is frame i mod N in its (i div N)-th draw; the first draws are the plain set's.
        """
        self.samples = max(int(samples), len(self.labels))

    def set_epoch(self, epoch: int) -> None:  # noqa: D102
        self.epoch = epoch

    def __len__(self) -> int:  # noqa: D105
        return self.samples

    def __getitem__(self, index: int) -> dict | None:  # noqa: D105
        if not 0 <= index < self.samples:
            raise IndexError(index)
        try:
            return self.make_sample(index)
        except (HoposerError, OSError, ValueError, cv2.error) as err:
            log.warning(
                "skipping pseudo-label %s: %s", self.labels.image[index % len(self.labels)], err
            )
            return None

    def make_sample(self, index: int) -> dict:
        """Build sample `index` (raises on unreadable frames)."""
        lab = self.labels
        draw, index = divmod(index, len(lab))
        image = cv2.cvtColor(read_frame(str(lab.image[index])), cv2.COLOR_BGR2RGB)
        height, width = image.shape[:2]
        key = (self.seed, self.epoch, index, 1) + ((draw,) if draw else ())  # 1: the pseudo set
        rng = np.random.default_rng(key)
        aug = self.augmentation
        object_box = lab.object_box[index]
        has_box = bool(np.isfinite(object_box).all())
        boxes = [box_from_points(lab.joints_2d[index])] + ([object_box] if has_box else [])
        crop = aug.crop(crop_around(boxes, self.input_size, (width, height)), rng)
        roll = crop.roll
        pixels = blur(jitter_color(crop.warp(image), rng, aug.color, aug.hue), rng, aug.blur)
        joints_2d = crop.apply(lab.joints_2d[index])
        hand_box = expand_box(box_from_points(joints_2d), HAND_BOX_EXPAND)
        network_object_box = crop.apply_box(object_box) if has_box else hand_box.copy()
        theta = lab.theta[index].copy()
        theta[:3] = cv2.Rodrigues(roll @ cv2.Rodrigues(theta[:3])[0])[0][:, 0]
        r = self.grid_size
        sample = {
            "image": network_image(pixels),
            "camera_matrix": np.eye(3),  # unknown: pseudo-labels are weak-perspective
            "index": np.int64(index),
            "joints_2d": (joints_2d - hand_box[:2]) / np.maximum(hand_box[2:] - hand_box[:2], 1e-6),
            "joints_3d": lab.joints_3d[index] @ roll.T,
            "wrist": np.full(3, np.nan),
            "hand_box": hand_box,
            "theta": theta,
            "beta": lab.beta[index],
            "has_mano": np.float32(1.0),
            "object_points_2d": np.zeros((21, 2)),
            "object_points_2d_members": np.zeros((MAX_MEMBERS, 21, 2)),
            "object_mask": np.zeros((r, r), np.float32),
            "object_box": network_object_box,
            "object_R": np.full((3, 3), np.nan),
            "object_t": np.full(3, np.nan),
            "has_object": np.float32(0.0),  # eq. 8: no object loss on pseudo-labels
        }
        return {
            k: (v.astype(np.float32) if isinstance(v, np.ndarray) and v.dtype == np.float64 else v)
            for k, v in sample.items()
        }


def mixed_dataset(labelled: HandObjectDataset, options, config, augmentation: Augmentation):
    """Labelled ∪ pseudo-labelled, with `options.pseudo_ratio` pseudo samples per labelled one.

    When there are more kept pseudo-labels than the ratio allows, a fixed (seeded) subset is used;
    when there are fewer, each is used once (or, with `options.pseudo_repeat`, as often as the
    ratio asks).
    """
    pseudo = PseudoLabelDataset(
        options.pseudo,
        config.input_size,
        config.roi_size,
        augmentation,
        options.seed,
        options.pseudo_filters,
    )
    log.info("pseudo-labels: %s", pseudo.funnel)
    wanted = int(round(options.pseudo_ratio * len(labelled)))
    if wanted <= 0:
        return labelled
    if wanted > len(pseudo) and options.pseudo_repeat:
        pseudo.repeat_to(wanted)
    part = pseudo
    if wanted < len(pseudo):
        order = np.random.default_rng(options.seed).permutation(len(pseudo))[:wanted]
        part = torch.utils.data.Subset(pseudo, sorted(order.tolist()))
    return _Concat([labelled, part], [labelled, pseudo])


class _Concat(torch.utils.data.ConcatDataset):
    """ConcatDataset that forwards `set_epoch` to the datasets it joins."""

    def __init__(self, parts, epoch_aware) -> None:
        super().__init__(parts)
        self._epoch_aware = epoch_aware

    def set_epoch(self, epoch: int) -> None:  # noqa: D102
        for dataset in self._epoch_aware:
            dataset.set_epoch(epoch)
