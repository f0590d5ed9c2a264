"""Loss presets: the default supervises the heatmaps; the term rewards peaks at the joints."""

import dataclasses

import numpy as np
import pytest
import torch

from hoposer.errors import HoposerError
from hoposer.model.hand import StandInHand
from hoposer.model.network import RawOutputs, TrainingOutputs
from hoposer.train.fit import FitOptions
from hoposer.train.losses import (
    DEFAULT_LOSS,
    LOSS_PRESETS,
    LossWeights,
    gaussian_heatmaps,
    hand_object_loss,
    loss_weights,
)

R = 16


def _batch_and_outputs(heatmaps_like: str):
    rng = np.random.default_rng(0)
    joints_2d = torch.tensor(rng.uniform(0.2, 0.8, (2, 21, 2)))
    target = gaussian_heatmaps(joints_2d, R, 1.0)
    heatmaps = {"target": target, "uniform": torch.full_like(target, 1.0 / R**2)}[heatmaps_like]
    raw = RawOutputs(joints_2d, torch.zeros(2, 48, dtype=torch.float64),
                     torch.zeros(2, 10, dtype=torch.float64), torch.zeros(2, R, R, 21, 2),
                     torch.zeros(2, R, R, 21))  # fmt: skip
    outputs = TrainingOutputs(raw, heatmaps, torch.eye(3, dtype=torch.float64).expand(2, 16, 3, 3))
    batch = {"joints_2d": joints_2d, "has_mano": torch.ones(2), "has_object": torch.zeros(2),
             "theta": torch.zeros(2, 48, dtype=torch.float64),
             "beta": torch.zeros(2, 10, dtype=torch.float64)}  # fmt: skip
    return outputs, batch


def test_the_default_preset_is_official_plus_supervised_heatmaps():
    assert FitOptions(data="d", out="o").loss == DEFAULT_LOSS
    default, official = LOSS_PRESETS[DEFAULT_LOSS], LOSS_PRESETS["official"]
    assert default.heatmaps > 0 and official.heatmaps == 0
    assert dataclasses.replace(default, heatmaps=0.0) == official
    assert LOSS_PRESETS["paper"].heatmaps == 0.1  # eq. 5's λ_H


def test_the_heatmap_term_is_zero_at_gaussian_targets_and_positive_when_flat():
    weights = LossWeights(joints_2d=0, heatmaps=1.0, vertices=0, joints_3d=0, pose=0, shape=0,
                          object_points=0, object_confidence=0, heatmap_sigma=1.0)  # fmt: skip
    hand = StandInHand()
    _, peaked = hand_object_loss(*_batch_and_outputs("target"), hand, weights)
    _, flat = hand_object_loss(*_batch_and_outputs("uniform"), hand, weights)
    assert peaked["heatmaps"] == pytest.approx(0.0, abs=1e-12)
    # 21 joints × Σ t² ≈ 21 / (4π σ²) for a flat prediction: the scale the preset's weight assumes
    assert flat["heatmaps"] == pytest.approx(21 / (4 * np.pi), rel=0.1)


def test_confidence_is_trained_towards_zero_off_the_object_silhouette():
    """The decoder takes each point's most confident cells: off the silhouette they must be low."""
    weights = LossWeights(joints_2d=0, heatmaps=0, vertices=0, joints_3d=0, pose=0, shape=0,
                          object_points=0, object_confidence=1.0)  # fmt: skip
    outputs, batch = _batch_and_outputs("target")
    points = torch.tensor(np.random.default_rng(1).uniform(0, 1, (2, 21, 2)), dtype=torch.float32)
    mask = torch.zeros(2, R, R)
    mask[:, :, : R // 4] = 1  # a quarter of the cells show the object
    batch.update(object_points_2d=points, object_mask=mask, has_object=torch.ones(2))
    exact = points[:, None, None].expand(2, R, R, 21, 2)  # every proposal on its target

    def confidence_term(confidence):
        raw = outputs.raw._replace(object_points=exact, object_confidence=confidence)
        _, terms = hand_object_loss(outputs._replace(raw=raw), batch, StandInHand(), weights)
        return terms["object_confidence"]

    on_silhouette_only = mask[..., None].expand(2, R, R, 21)
    assert confidence_term(on_silhouette_only) == pytest.approx(0.0, abs=1e-6)
    assert confidence_term(torch.ones(2, R, R, 21)) == pytest.approx(0.75, rel=1e-5)
    assert confidence_term(torch.zeros(2, R, R, 21)) == pytest.approx(0.25, rel=1e-5)


def test_loss_weight_changes_one_term_of_a_preset():
    weights = loss_weights("heatmaps", ["heatmaps=300", "object_points = 1e3"])
    assert weights == dataclasses.replace(
        LOSS_PRESETS["heatmaps"], heatmaps=300.0, object_points=1000.0
    )
    assert loss_weights("official") is LOSS_PRESETS["official"]
    for bad in ("heatmap_sigma=2", "confidence_squared=1", "heatmaps", "heatmaps=nan",
                "heatmaps=inf"):  # fmt: skip
        with pytest.raises(HoposerError, match="--loss-weight"):
            loss_weights("heatmaps", [bad])


def test_the_object_terms_follow_the_symmetry_member_the_whole_grid_votes_for():
    """Any member of a box's family is a right answer, but all cells must give the same one."""
    weights = LossWeights(joints_2d=0, heatmaps=0, vertices=0, joints_3d=0, pose=0, shape=0,
                          object_points=1.0, object_confidence=1.0)  # fmt: skip
    outputs, batch = _batch_and_outputs("target")
    points = torch.tensor(np.random.default_rng(2).uniform(0, 1, (2, 21, 2)), dtype=torch.float32)
    turned = points[:, torch.arange(20, -1, -1)]  # another member: the same points, relabelled
    members = torch.stack([points, turned, points, points], dim=1)  # padded by the first
    mask = torch.ones(2, R, R)
    batch.update(object_points_2d=points, object_points_2d_members=members, object_mask=mask,
                 has_object=torch.ones(2))  # fmt: skip

    def terms(proposals):
        raw = outputs.raw._replace(
            object_points=proposals, object_confidence=torch.ones(2, R, R, 21)
        )
        return hand_object_loss(outputs._replace(raw=raw), batch, StandInHand(), weights)[1]

    everywhere = torch.ones(2, R, R, 1, 1)
    for member in (points, turned):
        exact = terms(member[:, None, None] * everywhere)
        assert exact["object_points"] == pytest.approx(0.0, abs=1e-6)
        assert exact["object_confidence"] == pytest.approx(0.0, abs=1e-6)
    half = torch.cat([points[:, None, None] * everywhere[:, : R // 2],
                      turned[:, None, None] * everywhere[:, R // 2 :]], dim=1)  # fmt: skip
    mixed = terms(half)["object_points"]
    mismatch = (points - turned).abs().sum(-1).mean()  # per cell of the other half
    assert mixed == pytest.approx(float(mismatch) / 2, rel=1e-5)
    # without the family, the canonical targets alone: the turned member is wrong everywhere
    del batch["object_points_2d_members"]
    assert terms(turned[:, None, None] * everywhere)["object_points"] == pytest.approx(
        float(mismatch), rel=1e-5
    )
