import json

import pytest
import torch

from hoposer.errors import HoposerError
from hoposer.model import PRESETS, ModelConfig, build_model
from hoposer.model.network import intersection_boxes


def small(name: str) -> ModelConfig:
    """The preset at a small input size so CPU tests stay fast."""
    return ModelConfig(**{**PRESETS[name].__dict__, "input_size": 128})


def inputs(batch: int = 2, size: int = 128):
    g = torch.Generator().manual_seed(0)
    images = torch.rand((batch, 3, size, size), generator=g)
    hand = torch.tensor([[10.0, 20.0, 80.0, 90.0]]).repeat(batch, 1)
    obj = torch.tensor([[40.0, 30.0, 120.0, 110.0]]).repeat(batch, 1)
    return images, hand, obj


@pytest.mark.parametrize("name", ["official", "paper", "lite"])
def test_forward_shapes_finite_and_gradients_reach_backbone(name):
    torch.manual_seed(0)
    model = build_model(small(name)).train()
    out = model(*inputs(), intermediates=True)
    raw = out.raw
    r = model.config.roi_size
    assert raw.joints_2d.shape == (2, 21, 2)
    assert raw.theta.shape == (2, 48)
    assert raw.beta.shape == (2, 10)
    assert raw.object_points.shape == (2, r, r, 21, 2)
    assert raw.object_confidence.shape == (2, r, r, 21)
    assert out.heatmaps.shape == (2, 21, r, r)
    assert out.rotations.shape == (2, 16, 3, 3)
    for tensor in (*raw, out.heatmaps, out.rotations):
        assert torch.isfinite(tensor).all()
    # Soft-argmax joints are convex combinations of cell centres; confidences are sigmoids.
    assert ((raw.joints_2d > 0) & (raw.joints_2d < 1)).all()
    assert ((raw.object_confidence > 0) & (raw.object_confidence < 1)).all()
    loss = sum(t.float().pow(2).mean() for t in (*raw, out.heatmaps))
    loss.backward()
    # The first trainable backbone weight (the lite preset freezes its early stages).
    first = next(p for p in model.backbone.parameters() if p.requires_grad)
    assert first.grad is not None and first.grad.abs().sum() > 0
    for module in (model.hand_decoder, model.object_decoder):
        assert all(p.grad is not None for p in module.parameters())


@pytest.mark.parametrize("query", ["object", "hand", "both", "none"])
def test_context_query_ablation_variants(query):
    config = ModelConfig(**{**small("lite").__dict__, "context_query": query})
    model = build_model(config).eval()
    assert (model.object_context is not None) == (query in ("object", "both"))
    assert (model.hand_context is not None) == (query in ("hand", "both"))
    with torch.no_grad():
        out = model(*inputs(1))
    assert torch.isfinite(out.theta).all()


def test_rotations_are_rotations_and_theta_matches_them():
    from hoposer.geometry.rotations import axis_angle_to_matrix

    model = build_model(small("lite")).eval()
    with torch.no_grad():
        out = model(*inputs(2), intermediates=True)
    rot = out.rotations.double()
    eye = torch.eye(3, dtype=torch.float64)
    assert torch.allclose(rot @ rot.transpose(-1, -2), eye.expand_as(rot), atol=1e-5)
    from_theta = axis_angle_to_matrix(out.raw.theta.double().reshape(2, 16, 3))
    assert torch.allclose(from_theta, rot, atol=1e-4)


def test_disjoint_boxes_zero_the_context():
    hand = torch.tensor([[0.0, 0.0, 10.0, 10.0], [0.0, 0.0, 10.0, 10.0]])
    obj = torch.tensor([[5.0, 5.0, 20.0, 20.0], [10.0, 0.0, 20.0, 10.0]])
    boxes, overlaps = intersection_boxes(hand, obj)
    assert boxes[0].tolist() == [5.0, 5.0, 10.0, 10.0]
    assert overlaps.tolist() == [True, False]  # touching edges do not overlap


def test_disjoint_boxes_make_the_context_module_see_zeros():
    model = build_model(small("lite")).eval()
    images, hand, _ = inputs(1)
    far = torch.tensor([[100.0, 100.0, 127.0, 127.0]])
    seen = {}
    handle = model.object_context.layers[0].key.register_forward_hook(
        lambda mod, args, out: seen.setdefault("context", args[0])
    )
    with torch.no_grad():
        model(images, hand, far)
    handle.remove()
    assert torch.count_nonzero(seen["context"]) == 0


def test_batch_items_are_independent():
    model = build_model(small("lite")).eval()
    images, hand, obj = inputs(2)
    with torch.no_grad():
        both = model(images, hand, obj)
        first = model(images[:1], hand[:1], obj[:1])
    for a, b in zip(both, first, strict=True):
        assert torch.allclose(a[:1], b, atol=1e-5)


def test_invalid_configs_are_refused_with_the_reason():
    with pytest.raises(HoposerError, match="multiple of 32"):
        ModelConfig(input_size=500)
    with pytest.raises(HoposerError, match="context_heads"):
        ModelConfig(context_heads=3)
    with pytest.raises(HoposerError, match="backbone"):
        ModelConfig(backbone="vgg16")


def test_config_json_round_trip():
    for config in PRESETS.values():
        assert ModelConfig.from_json(config.to_json()) == config
    with pytest.raises(HoposerError, match="unknown fields"):
        ModelConfig.from_dict({"warp_drive": True})
    # Files written before a field existed load with its default.
    older = json.loads(PRESETS["official"].to_json())
    del older["mano_joint_input"]
    assert ModelConfig.from_dict(older) == PRESETS["official"]


def test_a_mesh_regressor_that_reads_the_joints_changes_theta_with_them_alone():
    from hoposer.model.hand_decoder import ManoRegressor

    config = small("lite").with_mesh_regressor(["mano_joint_input=on", "mano_hidden=64,32"])
    assert config.mano_input_size == config.mano_feature_size + 42
    torch.manual_seed(0)
    regressor = ManoRegressor(config).eval()
    features = torch.randn(2, config.mano_feature_size)
    joints = torch.rand(2, 21, 2)
    moved = joints.clone()
    moved[1, 8] += 0.2  # one fingertip of the second hand
    with torch.no_grad():
        a, b = regressor(features, joints), regressor(features, moved)
    assert torch.equal(a.theta[0], b.theta[0]) and not torch.equal(a.theta[1], b.theta[1])
    outputs = build_model(config).eval()(*inputs())
    assert all(torch.isfinite(output).all() for output in outputs)


def test_mesh_regressor_changes_are_checked_and_name_the_option():
    lite = small("lite")
    grown = lite.with_mesh_regressor(["encoder_channels=96", " mano_hidden = 128 "])
    assert (grown.encoder_channels, grown.mano_hidden) == (96, (128,))
    assert grown.backbone == lite.backbone
    assert lite.with_mesh_regressor([]) == lite
    for change, reason in [
        ("backbone=resnet18", "KEY one of encoder_blocks"),
        ("mano_hidden=wide", "e.g. mano_hidden=1024,512"),
        ("mano_joint_input=maybe", "e.g. mano_joint_input=true"),
        ("encoder_channels=0", "e.g. encoder_channels=256"),
        ("encoder_blocks=5", "roi_size=16 is not divisible"),
    ]:
        with pytest.raises(HoposerError, match=f"--mesh-regressor.*{reason}"):
            lite.with_mesh_regressor([change])


def test_an_object_trunk_sees_only_the_object_box_and_starts_from_imagenet():
    from hoposer.model.backbone import load_pretrained

    config = small("lite")
    assert config.object_trunk
    model = build_model(config).eval()
    for trunk in (model.backbone, model.object_backbone):
        assert load_pretrained(trunk, "auto")
    shared, own = model.backbone.state_dict(), model.object_backbone.state_dict()
    trunk = [k for k in shared if k.startswith(("stem.", "blocks."))]  # not the FPN's layers
    assert shared.keys() == own.keys() and len(trunk) > 100
    assert all(torch.equal(shared[k], own[k]) for k in trunk)  # the same ImageNet start
    images, hand, obj = inputs(1)
    with torch.no_grad():
        before = model(images, hand, obj)
        outside, inside = images.clone(), images.clone()
        outside[..., :, :36] = 0.5  # left of the object box (x ≥ 40), more than a bin away
        outside[..., 114:, :] = 0.5  # below it (y ≤ 110)
        inside[..., 60:90, 70:100] = 0.5
        after_outside, after_inside = model(outside, hand, obj), model(inside, hand, obj)
    r = config.roi_size
    assert before.object_points.shape == (1, r, r, 21, 2)
    # The object branch crops its box from the input: pixels outside it reach the object only
    # through the contextual reasoning (the hand–object intersection, from the shared P2).
    config = ModelConfig(**{**config.__dict__, "context_query": "none"})
    isolated = build_model(config).eval()
    with torch.no_grad():
        base = isolated(images, hand, obj).object_points
        assert torch.equal(isolated(outside, hand, obj).object_points, base)
        assert not torch.equal(isolated(inside, hand, obj).object_points, base)
    assert not torch.equal(after_inside.object_points, before.object_points)
    assert not torch.equal(after_outside.joints_2d, before.joints_2d)  # the hand did see it


def test_an_object_trunk_needs_a_crop_the_trunk_can_divide():
    with pytest.raises(HoposerError, match="object_trunk needs a 4·roi_size crop"):
        ModelConfig(**{**small("lite").__dict__, "roi_size": 12})
