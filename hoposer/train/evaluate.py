"""`hoposer train eval`: HO-3D's measures on a labelled split, and the codalab submission.

Every frame is cropped as in training (no augmentation), run through the network and decoded
with the same `decode` the stream uses: hand joints and mesh placed in the camera frame by the
2D-3D translation solve, the object by PnP on the top-10 proposals per control point.

With ground truth (our synthetic data, or HO-3D's train split), the hand measures of
`metrics.HandEvaluator` (mean joint/mesh errors unaligned, scale-translation and Procrustes
aligned, AUC of PCK/PCV over 0-50 mm, F@5/F@15 mm) and the object measures of
`metrics.ObjectEvaluator` (ADD-0.1D and ADD-S-0.1D, REP-5 per object; `pose_0.1d` is ADD-S for
objects whose frames declare a symmetry, ADD otherwise) are computed. HO-3D's evaluation split
gives only the wrist position: as the public code, predictions are then placed at that root,
and `pred.json` (+ `pred.zip`) is written in the codalab format: per frame
`[joints (21×3), vertices (778×3)]` in HO-3D's joint order and OpenGL camera frame, metres.
"""

import logging
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from hoposer.decode import decode
from hoposer.errors import HoposerError
from hoposer.geometry.procrustes import mean_rotation
from hoposer.geometry.rotations import axis_angle_to_matrix, matrix_to_axis_angle
from hoposer.geometry.skeleton import OURS_TO_HO3D
from hoposer.io import atomic_path, json_text, write_text_atomic
from hoposer.model.checkpoint import load_checkpoint, read_checkpoint_info
from hoposer.model.hand import HandModel, hand_model_for_weights
from hoposer.model.inputs import box_to_pixels
from hoposer.train.data.dataset import HandObjectDataset, collate
from hoposer.train.data.ho3d import GL_TO_CV
from hoposer.train.fit import resolve_device
from hoposer.train.metrics import HandEvaluator, ObjectEvaluator, ho3d_procrustes
from hoposer.train.options import EvalOptions

log = logging.getLogger(__name__)


@dataclass
class Scores:
    """What `score_split` accumulates over a split."""

    hands: HandEvaluator
    objects: ObjectEvaluator
    submission: list[list] = field(default_factory=list)  #: codalab rows, one per frame
    joint_2d_errors_px: list[float] = field(default_factory=list)  #: mean per labelled hand
    #: ground-truth MANO parameters of the labelled hands: θ `(48,)`, β `(10,)`
    true_hands: list[tuple[np.ndarray, np.ndarray]] = field(default_factory=list)
    mean_pose_pa_error_mm: float = float("nan")  #: see `mean_pose_pa_error`
    skipped: int = 0  #: unreadable frames

    def metrics(self) -> dict:
        """The measures as `metrics.json` holds them (hand and object only when scored)."""
        metrics: dict = {"frames": len(self.submission), "skipped_frames": self.skipped}
        if self.hands.f_scores:
            metrics["hand"] = self.hands.summary()
            metrics["hand"]["joint_2d_error_px"] = float(np.mean(self.joint_2d_errors_px))
            hand = metrics["hand"]
            baseline = self.mean_pose_pa_error_mm
            hand["mean_pose_pa_error_mm"] = baseline
            # Hands that all share one articulation leave no baseline to compare with (null).
            hand["joint_pa_vs_mean_pose"] = (
                hand["joint_pa_error_mm"] / baseline if baseline > 1e-3 else float("nan")
            )
        if self.objects.add:
            metrics["object"] = self.objects.summary()
        return metrics


def score_split(
    run: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], Sequence],
    dataset: HandObjectDataset,
    hand_model: HandModel,
    batch_size: int = 16,
    workers: int = 2,
    progress=None,
) -> Scores:
    """Run every frame of `dataset` through `run(images, hand_boxes, object_boxes)` and score it.

    `run` is the torch model or any engine backend's `run` (ONNX Runtime fp32 or int8, ...):
    everything after the network is the same `decode` and the same measures.
    """
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=batch_size, num_workers=workers, collate_fn=collate, shuffle=False
    )
    scores = Scores(HandEvaluator(num_vertices=hand_model.num_vertices), ObjectEvaluator())
    done = 0
    with torch.inference_mode():
        for batch, bad in loader:
            scores.skipped += bad
            if not batch:
                continue
            raw = run(batch["image"], batch["hand_box"], batch["object_box"])
            for i, index in enumerate(batch["index"].tolist()):
                _score(dataset, index, raw, i, batch, hand_model, scores)
            done += len(batch["index"])
            if progress:
                progress(done, len(dataset))
    if scores.true_hands:
        theta, beta = (np.stack(x) for x in zip(*scores.true_hands, strict=True))
        scores.mean_pose_pa_error_mm = 1000 * mean_pose_pa_error(theta, beta, hand_model)
    return scores


def mean_pose_pa_error(theta: np.ndarray, beta: np.ndarray, hand_model: HandModel) -> float:
    """PA-MPJPE (metres) of one constant articulation for every hand.

    This is what a network that ignores the fingers scores. The constant is the set's own mean
    articulation (per joint, the rotation nearest the mean of the rotation matrices), so the
    baseline is at least as strong as any mean taken from training data. Each hand keeps its
    true shape and global rotation; Procrustes alignment would undo the latter anyway.

    Args:
        theta: `(N, 48)` true MANO poses (axis-angle, global first).
        beta: `(N, 10)` true shapes.
        hand_model: the model the poses belong to.
    """
    theta = torch.as_tensor(np.asarray(theta), dtype=torch.float64)
    beta = torch.as_tensor(np.asarray(beta), dtype=torch.float64)
    rotations = axis_angle_to_matrix(theta[:, 3:].reshape(len(theta), -1, 3)).numpy()
    mean = matrix_to_axis_angle(torch.from_numpy(mean_rotation(rotations))).reshape(-1)
    constant = theta.clone()
    constant[:, 3:] = mean
    with torch.no_grad():
        true = hand_model(theta.float(), beta.float()).joints.double().numpy()
        pred = hand_model(constant.float(), beta.float()).joints.double().numpy()
    errors = [
        np.linalg.norm(ho3d_procrustes(t, p) - t, axis=1).mean()
        for t, p in zip(true, pred, strict=True)
    ]
    return float(np.mean(errors))


def evaluate(options: EvalOptions, progress=None) -> dict:
    """Run the evaluation; returns (and writes) the metrics."""
    device = resolve_device(options.device)
    model = load_checkpoint(options.weights).to(device).eval()
    config = model.config
    trained_with = read_checkpoint_info(options.weights).metadata.get("hand_model")
    hand_model = hand_model_for_weights(trained_with, options.hand_model, options.mano_dir)
    dataset = HandObjectDataset(
        options.data,
        options.split,
        input_size=config.input_size,
        grid_size=config.roi_size,
        ycb_dir=options.ycb_dir,
        max_samples=options.max_samples,
    )

    def run(images, hand_boxes, object_boxes):
        return model(images.to(device), hand_boxes.to(device), object_boxes.to(device))

    scores = score_split(run, dataset, hand_model, options.batch_size, options.workers, progress)
    if not scores.submission:
        raise HoposerError(f"no readable frames in {options.data} split {options.split}")
    out = Path(options.out)
    out.mkdir(parents=True, exist_ok=True)
    metrics = scores.metrics()
    if "hand" in metrics:
        _plot_curves(metrics["hand"]["curves"], out / "pck.png")
    _write_submission(scores.submission, out)
    write_text_atomic(out / "metrics.json", json_text(metrics, indent=2) + "\n")
    return metrics


def _score(dataset, index, raw, i, batch, hand_model, scores: Scores) -> None:
    one = [x[i : i + 1] for x in raw]
    K = batch["camera_matrix"][i].double().numpy()
    has_object = bool(batch["has_object"][i])
    label = dataset.label(index) if has_object else None
    model = dataset.objects.get(label.object_name) if label is not None else None
    hand_box = batch["hand_box"][i : i + 1].numpy()
    pose = decode(
        one,
        K,
        hand_box,
        batch["object_box"][i : i + 1].numpy(),
        hand_model,
        model.control_points if model is not None else None,
    )[0]
    wrist = batch["wrist"][i].double().numpy()
    with torch.no_grad():
        rel = hand_model(one[1].float().cpu(), one[2].float().cpu())
    joints_rel, vertices_rel = rel.joints[0].double().numpy(), rel.vertices[0].double().numpy()
    if bool(batch["has_mano"][i]):
        gt_joints = batch["joints_3d"][i].double().numpy() + wrist
        theta = batch["theta"][i : i + 1].float()
        beta = batch["beta"][i : i + 1].float()
        scores.true_hands.append((theta[0].double().numpy(), beta[0].double().numpy()))
        with torch.no_grad():
            gt_vertices = hand_model(theta, beta).vertices[0].double().numpy() + wrist
        pred_joints, pred_vertices = pose.hand.joints, pose.hand.vertices
        if not np.isfinite(pred_joints).all():  # unplaceable hand: fall back to the true root
            pred_joints, pred_vertices = joints_rel + wrist, vertices_rel + wrist
        order = list(OURS_TO_HO3D)
        scores.hands.feed(gt_joints[order], pred_joints[order], gt_vertices, pred_vertices)
        gt_2d = box_to_pixels(batch["joints_2d"][i : i + 1].double().numpy(), hand_box)[0]
        scores.joint_2d_errors_px.append(
            float(np.linalg.norm(pose.hand.joints_2d - gt_2d, axis=-1).mean())
        )
    if model is not None:
        symmetry = label.object_symmetry or model.symmetry
        # A frame whose meta declares another symmetry than its spec is another object to score.
        name = model.name if symmetry == model.symmetry else f"{model.name} ({symmetry})"
        scores.objects.feed(
            name,
            model.vertices,
            model.diameter,
            pose.object.R,
            pose.object.t,
            batch["object_R"][i].double().numpy(),
            batch["object_t"][i].double().numpy(),
            K,
            symmetry=symmetry,
            centre=model.centre,
        )
    # Codalab: root-relative prediction at the given root, HO-3D order, OpenGL frame.
    joints_gl = ((joints_rel + wrist) @ GL_TO_CV)[list(OURS_TO_HO3D)]
    vertices_gl = (vertices_rel + wrist) @ GL_TO_CV
    scores.submission.append([np.round(joints_gl, 6).tolist(), np.round(vertices_gl, 6).tolist()])


def _write_submission(submission: list, out: Path) -> None:
    with atomic_path(out / "pred.json") as tmp:
        tmp.write_text(json_text(submission))
    with atomic_path(out / "pred.zip") as tmp, zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as z:
        z.write(out / "pred.json", "pred.json")


def _plot_curves(curves: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, names, title in (
        (axes[0], ("joint", "joint_st", "joint_pa"), "PCK (joints)"),
        (axes[1], ("mesh", "mesh_pa"), "PCV (mesh vertices)"),
    ):
        for name in names:
            c = curves[name]
            ax.plot(c["thresholds_mm"], c["pck"], label=name)
        ax.set_xlabel("error threshold (mm)")
        ax.set_ylim(0, 1)
        ax.set_title(title)
        ax.grid(alpha=0.3)
        ax.legend()
    figure.tight_layout()
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", dpi=100)
    plt.close(figure)
