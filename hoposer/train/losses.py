"""Training losses: hand (eq. 5), object (eq. 6) and the pseudo-label mask of eq. 8.

Three weightings (`hoposer train fit --loss NAME`):

* `official` is what the public Semi-Hand-Object code trains with (and what produced its
  checkpoints): MSE on the soft-argmax 2D joints (1e2), MSE on MANO vertices and joints (1e4
  each, metres), on the 16 joint rotation matrices (10) and on β (0.1); L1 on the object
  proposals (5e2) and their confidences (1e2). It puts no weight on the heatmaps themselves.
* `paper` is the text's: λ_H = 0.1 on heatmaps against Gaussian targets (eq. 5), unit L2 terms on
  θ (rotation matrices), β, joints and vertices, λ_p = 0.5 (L1 offsets) and λ_c = 0.1 (squared
  confidence error).
* `heatmaps` (the default) is `official` plus eq. 5's supervised heatmap term, weighted 3e2.
  Under `official` the 3D terms (×1e4) outweigh the soft-argmax 2D term (×1e2) a thousandfold
  on the heatmap head and the heatmaps stay nearly uniform. Overfitting one batch of 8 synthetic
  frames from the ImageNet backbone (lite, 128², Adam 1e-3, 120 steps), the mean heatmap peak
  and soft-argmax error (hand-box sides) are 0.023 / 0.178 without the term, 0.141 / 0.041 at
  3e2, 0.152 / 0.034 at 3e3 and 0.151 / 0.038 at 3e4: a small weight forms the peaks. A large
  one starves the object: the backbone is shared, and Adam scales each parameter's step by its
  whole gradient. On the weights trained at 3e4 the heatmap term's gradient on the backbone was
  4.1e4, the object points' 165 and the 3D hand terms' 28-36 (`bench/loss_gradients.py`), and
  the object head sat near the constant predictor (training L1 0.37 per point vs 0.40).
  Fine-tuned from them at 3e2 (16,000 synthetic frames, 4.75 epochs on a CPU), held-out object
  pose-0.1D went from 3.7 to 7.3 % and REP-5 from 5.8 to 14.9 %, with PA-MPJPE 10.7 → 10.2 mm
  (hoposer/weights/README.md).

The object's proposals are trained on the grid cells on its silhouette only (the public code's
`obj_mask`); their confidences on every cell, towards 0 off the silhouette, so that the decoder's
most confident cells are silhouette cells. Both average over the samples whose `has_object` is 1
(eq. 8's B: pseudo-labelled frames train the hand only). Hand terms likewise use `has_mano`.
A box's proposals are scored against each member of its symmetry group
(`object_points_2d_members`) and trained towards the member closest to the whole grid's
proposals: one member per sample, so that all cells vote for the same labelling and PnP never
mixes two. The symmetry-canonical targets (see `train.data.dataset`) alone made every box whose
pose lies near a boundary between two canonical members a blend of both: on held-out frames the
votes missed by 0.19-0.22 of the box diagonal there, against 0.08 far from a boundary (cylinders
0.04). A cylinder's continuous group keeps its canonical targets.
"""

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from hoposer.errors import HoposerError
from hoposer.geometry.rotations import axis_angle_to_matrix
from hoposer.model.hand import HandModel
from hoposer.model.network import TrainingOutputs


@dataclass(frozen=True)
class LossWeights:
    """Weights of every loss term (0 disables a term)."""

    joints_2d: float = 1e2
    heatmaps: float = 0.0
    heatmap_sigma: float = 1.0  #: Gaussian target width in heatmap cells
    vertices: float = 1e4
    joints_3d: float = 1e4
    pose: float = 10.0
    shape: float = 0.1
    object_points: float = 5e2
    object_confidence: float = 1e2
    confidence_squared: bool = False  #: paper: squared error; public code: L1


#: The weighted terms, named as `hand_object_loss` reports them (`--loss-weight TERM=VALUE`)
TERMS = tuple(
    field.name
    for field in dataclasses.fields(LossWeights)
    if field.type in (float, "float") and field.name != "heatmap_sigma"
)

#: The default `--loss` preset (see the module docstring).
DEFAULT_LOSS = "heatmaps"

LOSS_PRESETS = {
    "official": LossWeights(),
    "heatmaps": LossWeights(heatmaps=3e2),
    "paper": LossWeights(
        joints_2d=0.0,
        heatmaps=0.1,
        vertices=1.0,
        joints_3d=1.0,
        pose=1.0,
        shape=1.0,
        object_points=0.5,
        object_confidence=0.1,
        confidence_squared=True,
    ),
}


def loss_weights(preset: str, changes: Sequence[str] = ()) -> LossWeights:
    """A `LOSS_PRESETS` entry with `changes` ("TERM=VALUE", `--loss-weight`) applied.

    Raises:
        HoposerError: an unknown preset or term, or a value that is not a number ≥ 0.
    """
    if preset not in LOSS_PRESETS:
        raise HoposerError(
            f"--loss must be one of {', '.join(sorted(LOSS_PRESETS))}, not {preset!r}"
        )
    weights = LOSS_PRESETS[preset]
    for change in changes:
        term, _, text = change.partition("=")
        term = term.strip()
        if term not in TERMS:
            raise HoposerError(
                f"--loss-weight {change}: {term!r} is not a loss term; give TERM=VALUE with TERM "
                f"one of {', '.join(TERMS)}"
            )
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not 0.0 <= value < math.inf:
            raise HoposerError(
                f"--loss-weight {change}: the value must be a number ≥ 0, e.g. {term}=300"
            )
        weights = dataclasses.replace(weights, **{term: value})
    return weights


def gaussian_heatmaps(joints: torch.Tensor, size: int, sigma: float) -> torch.Tensor:
    """Normalised Gaussian targets `(B, J, size, size)` at box-normalised `joints (B, J, 2)`."""
    centers = (torch.arange(size, device=joints.device, dtype=joints.dtype) + 0.5) / size
    dx = (centers[None, None, None, :] - joints[..., 0, None, None]) * size
    dy = (centers[None, None, :, None] - joints[..., 1, None, None]) * size
    heat = torch.exp(-(dx**2 + dy**2) / (2 * sigma**2))
    return heat / heat.sum(dim=(-1, -2), keepdim=True).clamp_min(1e-12)


def _masked_mean(per_sample: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of `per_sample (B,)` over samples with mask 1; 0 (with gradient) if none."""
    return (per_sample * mask).sum() / mask.sum().clamp_min(1.0)


def hand_object_loss(
    outputs: TrainingOutputs,
    batch: dict[str, torch.Tensor],
    hand_model: HandModel,
    weights: LossWeights,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Total loss and its terms (floats, for logging) for one batch."""
    raw = outputs.raw
    has_mano = batch["has_mano"].to(raw.theta.dtype)
    has_object = batch["has_object"].to(raw.theta.dtype)
    terms: dict[str, torch.Tensor] = {}

    if weights.joints_2d:
        per = (raw.joints_2d - batch["joints_2d"]).pow(2).mean(dim=(1, 2))
        terms["joints_2d"] = weights.joints_2d * _masked_mean(per, has_mano)
    if weights.heatmaps:
        target = gaussian_heatmaps(
            batch["joints_2d"], outputs.heatmaps.shape[-1], weights.heatmap_sigma
        )
        per = (outputs.heatmaps - target).pow(2).sum(dim=(2, 3)).sum(dim=1)
        terms["heatmaps"] = weights.heatmaps * _masked_mean(per, has_mano)
    if weights.vertices or weights.joints_3d:
        pred = hand_model(raw.theta, raw.beta)
        with torch.no_grad():
            gt = hand_model(batch["theta"], batch["beta"])
        if weights.vertices:
            per = (pred.vertices - gt.vertices).pow(2).mean(dim=(1, 2))
            terms["vertices"] = weights.vertices * _masked_mean(per, has_mano)
        if weights.joints_3d:
            per = (pred.joints - batch["joints_3d"]).pow(2).mean(dim=(1, 2))
            terms["joints_3d"] = weights.joints_3d * _masked_mean(per, has_mano)
    if weights.pose:
        gt_rot = axis_angle_to_matrix(batch["theta"].reshape(-1, 16, 3))
        per = (outputs.rotations - gt_rot).pow(2).mean(dim=(1, 2, 3))
        terms["pose"] = weights.pose * _masked_mean(per, has_mano)
    if weights.shape:
        per = (raw.beta - batch["beta"]).pow(2).mean(dim=1)
        terms["shape"] = weights.shape * _masked_mean(per, has_mano)

    if weights.object_points or weights.object_confidence:
        cells = batch["object_mask"][..., None]  # (B, R, R, 1)
        cell_count = cells.sum(dim=(1, 2, 3)).clamp_min(1.0) * raw.object_points.shape[-2]
        members = batch.get("object_points_2d_members", batch["object_points_2d"][:, None])
        # (B, M, R, R, 21, 2): every cell's proposals against each member's targets
        deltas = raw.object_points[:, None] - members[:, :, None, None]
        errors = (deltas.abs().sum(-1) * cells[:, None]).sum(dim=(2, 3, 4))  # (B, M)
        per_member = errors / cell_count[:, None]
        best = per_member.detach().argmin(dim=1)  # one member for the whole grid of a sample
        delta = deltas[torch.arange(len(best), device=best.device), best]  # (B, R, R, 21, 2)
        if weights.object_points:
            per = per_member.gather(1, best[:, None])[:, 0]
            terms["object_points"] = weights.object_points * _masked_mean(per, has_object)
        if weights.object_confidence:
            # Every cell, with target 0 off the silhouette (the public code masks the target, not
            # the prediction): the decoder picks each point's most confident cells, and a cell
            # whose confidence was never trained down would hand PnP an untrained proposal.
            target_conf = torch.exp(-delta.detach().norm(dim=-1)) * cells
            error = raw.object_confidence - target_conf
            error = error.pow(2) if weights.confidence_squared else error.abs()
            per = error.mean(dim=(1, 2, 3))
            terms["object_confidence"] = weights.object_confidence * _masked_mean(per, has_object)

    total = sum(terms.values(), torch.zeros((), device=raw.theta.device))
    return total, {name: float(value.detach()) for name, value in terms.items()}
