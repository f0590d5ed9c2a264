"""The pseudo-label filter report: a funnel per filter variant, histograms, example frames.

Writes into the pseudo-label folder: `report.json` (frames left after each stage, for every
variant of `select.FILTERS`; and where the clips carry ground truth, as synthetic clips do, how
accurate the kept and the rejected labels are), `funnel.png`, `histograms.png` (each §5.1
statistic with its threshold), and `examples.png` (kept frames on top, rejected below: the
predicted 2D joints, and dimmed, the 3D joints projected by the frame's fitted weak-perspective
camera — where the two skeletons disagree, the re-projection constraint bites).
"""

from pathlib import Path

import cv2
import numpy as np

from hoposer.errors import HoposerError
from hoposer.frames.draw import draw_skeleton
from hoposer.frames.sources import read_frames
from hoposer.geometry.camera import fit_weak_perspective, project, weak_perspective_project
from hoposer.geometry.consistency import Thresholds
from hoposer.io import atomic_path, json_text, write_text_atomic
from hoposer.train.data.ho3d import read_label
from hoposer.train.metrics import ho3d_procrustes
from hoposer.train.pseudo.select import FILTERS, PseudoLabels, load_shards, select

_LIMITS = {
    "iou": ("min_iou", "≥"),
    "reprojection": ("max_reprojection", "≤"),
    "bone_length": ("min_bone_length", "≥"),
    "joint_angle": ("max_flexion_deg", "≤"),
    "joint_motion": ("max_joint_motion", "≤"),
    "pose_change": ("max_pose_change", "≤"),
}


def write_report(folder: str | Path, thresholds: Thresholds | None = None) -> dict:
    """Write the report files; returns what `report.json` holds."""
    folder = Path(folder)
    thresholds = thresholds or Thresholds()
    labels = load_shards([folder])
    selections = {name: select(labels, name, thresholds) for name in FILTERS}  # (keep, funnel)
    funnels = {name: funnel for name, (_, funnel) in selections.items()}
    report = {"frames": len(labels), "videos": int(len(np.unique(labels.video))),
              "funnel": funnels}  # fmt: skip
    truth = ground_truth(labels)
    if truth is not None:
        errors = label_errors(labels, *truth)
        report["accuracy"] = {
            name: {"kept": _means(errors, keep), "rejected": _means(errors, ~keep)}
            for name, (keep, _) in selections.items()
        }
    write_text_atomic(folder / "report.json", json_text(report, indent=2) + "\n")
    _plot(labels, funnels["all"], thresholds, folder)
    _examples(labels, selections["all"][0], folder / "examples.png")
    return report


def ground_truth(labels: PseudoLabels) -> tuple[np.ndarray, np.ndarray] | None:
    """The true joints `(N, 21, 3)` (camera frame, metres) and camera matrices `(N, 3, 3)`.

    Read from HO-3D-layout meta files beside the frames (`SPLIT/SEQ/rgb/F.jpg` →
    `SPLIT/SEQ/meta/F.pkl`, what `train synth --videos` writes); None unless every frame has
    one with 3D joints.
    """
    joints, cameras = [], []
    for image in labels.image:
        path = Path(str(image))
        if path.parent.name != "rgb" or len(path.parents) < 4:
            return None
        try:  # a missing meta file is a HoposerError too
            label = read_label(path.parents[3], path.parents[2].name, path.parents[1].name,
                               path.stem)  # fmt: skip
        except HoposerError:
            return None
        if label.joints is None:
            return None
        joints.append(label.joints)
        cameras.append(label.camera_matrix)
    return np.asarray(joints), np.asarray(cameras)


def label_errors(
    labels: PseudoLabels, true_joints: np.ndarray, cameras: np.ndarray
) -> dict[str, np.ndarray]:
    """Each label's error against the truth, per frame `(N,)`.

    `pa_mpjpe_mm`: joints after HO-3D's Procrustes alignment (the articulation alone);
    `wrist_relative_mm`: joints with the wrists put together (articulation, global rotation and
    scale); `joints_2d`: 2D joints in pixels over the hand box's diagonal, as
    `bench/real_photos.py` measures.
    """
    truth = true_joints - true_joints[:, :1]
    predicted = labels.joints_3d - labels.joints_3d[:, :1]
    aligned = np.stack([ho3d_procrustes(t, p) for t, p in zip(truth, predicted, strict=True)])
    projected = np.stack([project(j, K) for j, K in zip(true_joints, cameras, strict=True)])
    # At least a pixel: a degenerate box must not put inf into the strict report.json.
    sides = labels.hand_box[:, 2:] - labels.hand_box[:, :2]
    diagonal = np.maximum(np.linalg.norm(sides, axis=1), 1.0)
    return {
        "pa_mpjpe_mm": 1000 * np.linalg.norm(aligned - truth, axis=-1).mean(-1),
        "wrist_relative_mm": 1000 * np.linalg.norm(predicted - truth, axis=-1).mean(-1),
        "joints_2d": np.linalg.norm(labels.joints_2d - projected, axis=-1).mean(-1) / diagonal,
    }


def _means(errors: dict[str, np.ndarray], mask: np.ndarray) -> dict:
    if not mask.any():
        return {"frames": 0}
    return {"frames": int(mask.sum()), **{k: float(v[mask].mean()) for k, v in errors.items()}}


def _plot(labels: PseudoLabels, funnel: dict, thresholds: Thresholds, folder: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, ax = plt.subplots(figsize=(8, 3.5))
    names = list(funnel)
    ax.bar(range(len(names)), [funnel[n] for n in names], color="tab:blue")
    ax.set_xticks(range(len(names)), names, rotation=30, ha="right", fontsize=8)
    ax.set_ylabel("frames")
    ax.set_title("pseudo-label funnel (all constraints)")
    figure.tight_layout()
    _save(figure, folder / "funnel.png")
    plt.close(figure)

    figure, axes = plt.subplots(2, 3, figsize=(12, 6))
    for ax, (name, (attribute, sign)) in zip(axes.flat, _LIMITS.items(), strict=True):
        values = labels.stats[name][np.isfinite(labels.stats[name])]
        limit = getattr(thresholds, attribute)
        if len(values):
            ax.hist(values, bins=40, color="tab:gray")
        ax.axvline(limit, color="tab:red", label=f"keep {sign} {limit:g}")
        ax.set_title(name)
        ax.legend(fontsize=8)
    figure.tight_layout()
    _save(figure, folder / "histograms.png")
    plt.close(figure)


def _save(figure, path: Path) -> None:
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", dpi=90)


def _examples(labels: PseudoLabels, keep: np.ndarray, path: Path, per_row: int = 4) -> None:
    rows = []
    for mask in (keep, ~keep):
        picks = np.flatnonzero(mask)
        rows.append(picks[np.linspace(0, len(picks) - 1, min(per_row, len(picks))).astype(int)])
    # All example frames read in label order: one pass through each video, not a seek per tile.
    wanted = np.unique(np.concatenate(rows))
    images = dict(zip(wanted, read_frames(str(labels.image[i]) for i in wanted), strict=True))
    strips = []
    for picks, color in zip(rows, ((60, 200, 60), (60, 60, 230)), strict=True):
        tiles = [_tile(labels, i, images[i], color) for i in picks]
        tiles += [np.zeros((192, 192, 3), np.uint8)] * (per_row - len(tiles))
        strips.append(np.concatenate(tiles, axis=1))
    ok, png = cv2.imencode(".png", np.concatenate(strips, axis=0))
    if ok:
        with atomic_path(path) as tmp:
            tmp.write_bytes(png.tobytes())


def _tile(
    labels: PseudoLabels, i: int, image: np.ndarray | None, color, size: int = 192
) -> np.ndarray:
    if image is None:  # a frame gone since labelling: show an empty tile
        return np.zeros((size, size, 3), np.uint8)
    joints_2d = labels.joints_2d[i]
    scale, shift = fit_weak_perspective(labels.joints_3d[i], joints_2d)
    projected = weak_perspective_project(labels.joints_3d[i], scale, shift)
    draw_skeleton(image, projected, dim=True)
    draw_skeleton(image, joints_2d)
    box = labels.hand_box[i]
    center, side = (box[:2] + box[2:]) / 2, max(box[2:] - box[:2]) * 1.6
    crop = cv2.getRectSubPix(image, (int(side), int(side)), tuple(center.tolist()))
    tile = cv2.resize(crop, (size, size))
    cv2.rectangle(tile, (0, 0), (size - 1, size - 1), color, 3)
    return tile
