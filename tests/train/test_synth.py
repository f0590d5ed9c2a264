"""The synthetic generator's pieces: pose families, grasps, paint, backgrounds, the CLI."""

import pickle

import cv2
import numpy as np
import pytest
import torch

from hoposer.cli import main
from hoposer.errors import HoposerError
from hoposer.model.hand import build_hand_model
from hoposer.model.hand.base import ABDUCTION_LIMITS, FLEXION_LIMITS, POSE_FAMILIES
from hoposer.render import MeshInstance, render
from hoposer.train.synth import (
    OBJECT_LABEL,
    STYLES,
    SceneSampler,
    SynthOptions,
    _inside,
    background,
    generate,
    paint_object,
    visible_fraction,
)


@pytest.fixture(scope="module")
def hand():
    return build_hand_model("standin", None)


def _tips_from_palm(hand, theta):
    joints = hand(torch.tensor(theta[None])).joints[0].numpy()
    palm = joints[[0, 5, 9, 13, 17]].mean(0)
    return np.linalg.norm(joints[[8, 12, 16, 20]] - palm, axis=1)


def test_pose_families_stay_in_the_joint_limits_and_span_open_to_fist(hand):
    flex_axes, abduct_axes = hand.joint_axes()
    reach = {}
    for family in POSE_FAMILIES:
        distances = []
        for seed in range(8):
            theta = hand.sample_pose(np.random.default_rng(seed), family)
            again = hand.sample_pose(np.random.default_rng(seed), family)
            np.testing.assert_array_equal(theta, again)
            per_joint = theta.reshape(16, 3)
            flex = (per_joint * flex_axes).sum(1)
            abduct = (per_joint * abduct_axes).sum(1)
            assert np.all(theta[:3] == 0)
            assert np.all(flex >= FLEXION_LIMITS[:, 0] - 1e-9)
            assert np.all(flex <= FLEXION_LIMITS[:, 1] + 1e-9)
            assert np.all(abduct >= ABDUCTION_LIMITS[:, 0] - 1e-9)
            assert np.all(abduct <= ABDUCTION_LIMITS[:, 1] + 1e-9)
            distances.append(_tips_from_palm(hand, theta))
        reach[family] = np.mean(distances, axis=0)  # per finger: index, middle, ring, pinky
    # Open hands reach far, fists curl the fingertips onto the palm, pointing extends the index.
    flat = _tips_from_palm(hand, np.zeros(48))
    assert np.all(reach["open"] > 0.95 * flat) and np.all(reach["spread"] > 0.95 * flat)
    assert reach["fist"].max() < 0.05
    assert reach["point"][0] > 0.95 * flat[0] and reach["point"][1:].max() < 0.05
    assert reach["fist"].mean() < reach["power"].mean() < reach["precision"].mean()
    with pytest.raises(ValueError, match="unknown pose family"):
        hand.sample_pose(np.random.default_rng(0), "wave")
    # Drawn at random, every family turns up.
    drawn = [hand.sample_pose(np.random.default_rng(s)) for s in range(40)]
    open_like = sum(np.all(_tips_from_palm(hand, t) > 0.95 * flat) for t in drawn)
    assert 4 <= open_like <= 30


@pytest.mark.parametrize("spec", ["box:0.05x0.09x0.04", "cylinder:0.03x0.12"])
def test_grasped_objects_touch_the_hand_without_penetrating_it(hand, spec, monkeypatch):
    import hoposer.train.synth as synth

    monkeypatch.setattr(synth, "_object_for_sequence", lambda rng, style, meshes: (
        spec, synth.object_mesh(spec)))  # fmt: skip
    sampler = SceneSampler(hand, STYLES["default"], 128, np.random.default_rng(5), ())
    contacts = 0
    for _ in range(24):
        grasp = sampler.grasp()
        local = (grasp.vertices - grasp.object_t) @ grasp.object_R
        assert not _inside(local, spec, sampler.mesh).any()
        if grasp.contact:
            contacts += 1
            assert _gap(grasp, spec) < 0.006  # within a step of the slide: touching
    assert contacts >= 4


def _gap(grasp, spec) -> float:
    """Distance from the hand's vertices to the object's surface (a primitive), metres."""
    local = (grasp.vertices - grasp.object_t) @ grasp.object_R
    kind, _, rest = spec.partition(":")
    dims = np.array([float(d) for d in rest.split("x")])
    if kind == "box":
        outside = np.maximum(np.abs(local) - dims / 2, 0)
        return float(np.linalg.norm(outside, axis=1).min())
    radial = np.maximum(np.hypot(local[:, 0], local[:, 2]) - dims[0], 0)
    axial = np.maximum(np.abs(local[:, 1]) - dims[1] / 2, 0)
    return float(np.hypot(radial, axial).min())


def test_paint_varies_but_the_label_keeps_the_shapes_symmetry():
    from hoposer.geometry.control_points import object_mesh

    rng = np.random.default_rng(0)
    box = object_mesh("box:0.05x0.08x0.03")
    painted = paint_object(rng, "box:0.05x0.08x0.03", box, painted=True)
    # Six faces, six different base colours...
    tri = painted.vertices[painted.faces]
    normals = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    side = np.argmax(np.abs(normals), axis=1) * 2 + (normals.max(axis=1) > -normals.min(axis=1))
    colours = {tuple(np.round(painted.colours[side == s].max(axis=0), 3)) for s in range(6)}
    assert len(colours) == 6
    # ...drawn anew for every object, so they never say which face is +x: the label keeps the
    # box's symmetry (a "none" label here made the object head's targets unlearnable).
    again = paint_object(rng, "box:0.05x0.08x0.03", box, painted=True)
    assert not np.allclose(again.colours, painted.colours)
    assert painted.symmetry == again.symmetry == "box"
    # Same outer surface as the label mesh.
    np.testing.assert_allclose(painted.vertices.min(0), box.vertices.min(0))
    np.testing.assert_allclose(painted.vertices.max(0), box.vertices.max(0))
    plain = paint_object(rng, "box:0.05x0.08x0.03", box, painted=False)
    assert plain.symmetry == "box" and len(np.unique(plain.colours, axis=0)) == 1
    can = paint_object(rng, "cylinder:0.03x0.1", object_mesh("cylinder:0.03x0.1"), True)
    assert can.symmetry == "cylinder" and len(np.unique(can.colours, axis=0)) == 4
    plain_can = paint_object(rng, "cylinder:0.03x0.1", object_mesh("cylinder:0.03x0.1"), False)
    assert plain_can.symmetry == "cylinder"


def test_a_user_mesh_is_labelled_with_its_declared_symmetry(tmp_path):
    import trimesh

    from hoposer.geometry.control_points import object_mesh

    path = tmp_path / "can.obj"
    trimesh.creation.cylinder(radius=0.03, height=0.1).export(path)
    rng = np.random.default_rng(0)
    for spec, symmetry in ((str(path), "none"), (f"{path}@cylinder", "cylinder")):
        assert paint_object(rng, spec, object_mesh(spec), painted=True).symmetry == symmetry


def test_backgrounds_are_seeded_textured_and_can_come_from_photos(tmp_path):
    for seed in range(6):
        a = background(np.random.default_rng(seed), 64, STYLES["default"])
        b = background(np.random.default_rng(seed), 64, STYLES["default"])
        assert a.shape == (64, 64, 3) and a.dtype == np.uint8
        np.testing.assert_array_equal(a, b)
    photos = tmp_path / "photos"
    photos.mkdir()
    cv2.imwrite(str(photos / "red.png"), np.full((90, 120, 3), (0, 0, 255), np.uint8))
    out = tmp_path / "data"
    generate(SynthOptions(out=str(out), frames=8, size=64, sequence_length=8, workers=1,
                          backgrounds=str(photos)))  # fmt: skip
    red_frames = 0
    for path in sorted((out / "train").glob("*/rgb/*.jpg")):
        image = cv2.imread(str(path)).astype(int)  # BGR
        red = image[..., 2] > 2 * np.maximum(image[..., 0], image[..., 1]) + 10
        red_frames += red.mean() > 0.3
    # 70 % of the backgrounds are crops of the (red) photo.
    assert 3 <= red_frames <= 8
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(HoposerError, match="no photos"):
        generate(SynthOptions(out=str(out), frames=1, size=64, backgrounds=str(empty)))


def test_meta_records_object_symmetry_and_cli_rejects_a_missing_photo_folder(tmp_path, capsys):
    out = tmp_path / "d"
    assert main(["train", "synth", "--out", str(out), "--frames", "6", "--size", "64",
                 "--sequence-length", "1", "--workers", "1"]) == 0  # fmt: skip
    seen = set()
    for path in (out / "train").glob("*/meta/*.pkl"):
        meta = pickle.loads(path.read_bytes())
        # Primitives, painted or plain, are labelled with their shape's symmetry.
        assert meta["objSpec"].startswith(meta["objSymmetry"] + ":")
        assert 0.0 <= meta["objVisible"] <= 1.0
        seen.add(meta["objSymmetry"])
    assert seen <= {"box", "cylinder"}
    code = main(["train", "synth", "--out", str(out), "--frames", "1",
                 "--backgrounds", str(tmp_path / "nowhere")])  # fmt: skip
    assert code == 2
    assert "--backgrounds" in capsys.readouterr().err


def test_visible_fraction_counts_parts_behind_the_hand_and_out_of_the_frame_as_hidden():
    K = np.array([[100.0, 0, 32], [0, 100.0, 32], [0, 0, 1]])
    # A 20 x 20 px square facing the camera, as two triangles, and a hand-labelled strip nearer.
    square = np.array([[-0.1, -0.1, 1.0], [0.1, -0.1, 1.0], [0.1, 0.1, 1.0], [-0.1, 0.1, 1.0]])
    faces = np.array([[0, 1, 2], [0, 2, 3]])

    def shown(object_vertices, hand_vertices=None):
        meshes = [MeshInstance(object_vertices, faces, (1.0, 0, 0), OBJECT_LABEL, False)]
        if hand_vertices is not None:
            meshes.append(MeshInstance(hand_vertices, faces, (0, 1.0, 0), 1, False))
        _, labels = render(meshes, K, (64, 64))
        return visible_fraction(labels, object_vertices, faces, K)

    assert shown(square) == 1.0
    # The hand covers the square's right half (x > 0) from in front of it.
    strip = np.array([[0.0, -0.3, 0.8], [0.3, -0.3, 0.8], [0.3, 0.3, 0.8], [0.0, 0.3, 0.8]])
    assert shown(square, strip) == pytest.approx(0.5, abs=0.05)
    # Moved so that its left half lies beyond the frame's left edge.
    assert shown(square - [0.32, 0.0, 0.0]) == pytest.approx(0.5, abs=0.05)
    assert visible_fraction(np.zeros((64, 64), np.uint8), square, faces, K) == 0.0
