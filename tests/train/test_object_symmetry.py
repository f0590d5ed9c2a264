"""Symmetry-canonical object targets: what a frame shows decides its 21 control-point targets."""

import pickle

import cv2
import numpy as np
import pytest

from hoposer.geometry.control_points import symmetric_pose
from hoposer.train.data.dataset import HandObjectDataset
from hoposer.train.data.ho3d import FrameLabel, read_label, to_ho3d_meta

SIZE = 64
K = np.array([[150.0, 0, 48], [0, 150.0, 48], [0, 0, 1]])


def _write_frames(root, spec, poses, symmetry=None, visible=None):
    """One frame per object pose (same image, same hand), in the HO-3D layout.

    `visible`: each frame's `objVisible` (None: not recorded).
    """
    rng = np.random.default_rng(0)
    joints = np.array([0.0, 0.0, 0.5]) + rng.normal(0, 0.03, (21, 3))
    ids = []
    for i, (R, t) in enumerate(poses):
        shown = None if visible is None else visible[i]
        label = FrameLabel(root / "x.jpg", K, "standin", joints=joints, object_name=spec,
                           object_R=R, object_t=t, object_symmetry=symmetry,
                           object_visible=shown)  # fmt: skip
        meta = to_ho3d_meta(label, object_spec=spec)
        for folder in ("rgb", "meta"):
            (root / "train" / f"S{i}" / folder).mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(root / "train" / f"S{i}" / "rgb" / "0000.jpg"), np.zeros((96, 96, 3)))
        (root / "train" / f"S{i}" / "meta" / "0000.pkl").write_bytes(pickle.dumps(meta))
        ids.append(f"S{i}/0000")
    (root / "train.txt").write_text("\n".join(ids) + "\n")
    return HandObjectDataset(root, input_size=SIZE, grid_size=8)


def _poses(turns):
    R = cv2.Rodrigues(np.array([0.4, -0.7, 0.3]))[0]
    t = np.array([0.01, 0.0, 0.5])
    return [symmetric_pose(R, t, S, np.zeros(3)) for S in turns]


def _turn_y(angle):
    return cv2.Rodrigues(np.array([0.0, angle, 0.0]))[0]


@pytest.mark.parametrize(
    "spec, turns",
    [
        ("box:0.05x0.08x0.03", [np.eye(3), np.diag([-1.0, 1, -1]), np.diag([1.0, -1, -1])]),
        # turns by whole mesh segments (32 per turn), so that the silhouettes match too
        (
            "cylinder:0.03x0.1",
            [
                np.eye(3),
                _turn_y(2 * np.pi * 6 / 32),
                np.diag([1.0, -1, -1]) @ _turn_y(-2 * np.pi * 10 / 32),
            ],
        ),
        # a cube also looks the same turned 90° (here about z, then about x)
        (
            "box:0.06x0.06x0.06",
            [
                np.eye(3),
                np.array([[0.0, -1, 0], [1, 0, 0], [0, 0, 1]]),
                np.array([[1.0, 0, 0], [0, 0, -1], [0, 1, 0]]),
            ],
        ),
    ],
)
def test_two_symmetric_poses_give_identical_targets(tmp_path, spec, turns):
    dataset = _write_frames(tmp_path, spec, _poses(turns))
    samples = [dataset.make_sample(i) for i in range(len(turns))]
    for key in ("object_points_2d", "object_box", "object_mask"):
        for other in samples[1:]:
            np.testing.assert_allclose(other[key], samples[0][key], atol=1e-4, err_msg=key)
    # the labelled (not canonical) poses are kept for evaluation
    assert not np.allclose(samples[1]["object_R"], samples[0]["object_R"], atol=1e-3)


def test_an_object_declared_asymmetric_keeps_its_own_targets(tmp_path):
    # A meta's objSymmetry "none" (e.g. a box with a fixed, known paint) overrides the spec's.
    poses = _poses([np.eye(3), np.diag([-1.0, 1, -1])])
    dataset = _write_frames(tmp_path, "box:0.05x0.08x0.03", poses, symmetry="none")
    assert dataset.label(0).object_symmetry == "none"
    a, b = dataset.make_sample(0), dataset.make_sample(1)
    assert np.abs(a["object_points_2d"] - b["object_points_2d"]).max() > 0.1


def test_the_symmetry_is_read_from_the_meta_key_or_derived_from_the_spec(tmp_path):
    _write_frames(tmp_path / "a", "cylinder:0.03x0.1", _poses([np.eye(3)]))
    assert read_label(tmp_path / "a", "train", "S0", "0000").object_symmetry == "cylinder"
    _write_frames(tmp_path / "b", "box:0.05x0.08x0.03@none", _poses([np.eye(3)]))
    assert read_label(tmp_path / "b", "train", "S0", "0000").object_symmetry == "none"
    _write_frames(tmp_path / "c", "box:0.05x0.08x0.03", _poses([np.eye(3)]), symmetry="cylinder")
    assert read_label(tmp_path / "c", "train", "S0", "0000").object_symmetry == "cylinder"


def test_an_object_out_of_the_frame_is_no_object_to_learn(tmp_path):
    R = np.eye(3)
    inside, outside = (R, np.array([0.01, 0.0, 0.5])), (R, np.array([0.6, 0.0, 0.5]))
    dataset = _write_frames(tmp_path, "box:0.05x0.08x0.03", [inside, outside])
    seen, unseen = dataset.make_sample(0), dataset.make_sample(1)
    assert seen["has_object"] == 1.0
    # 0.6 m aside at 0.5 m depth is far outside the 96-px frame, which clips the crop.
    assert unseen["has_object"] == 0.0 and not unseen["object_mask"].any()
    np.testing.assert_allclose(unseen["object_box"], unseen["hand_box"])


def test_an_object_the_image_hardly_shows_is_no_object_to_learn(tmp_path):
    pose = (np.eye(3), np.array([0.01, 0.0, 0.5]))
    dataset = _write_frames(tmp_path, "box:0.05x0.08x0.03", [pose] * 3, visible=[0.05, 0.5, None])
    assert read_label(tmp_path, "train", "S1", "0000").object_visible == 0.5
    hidden, half, unknown = (dataset.make_sample(i) for i in range(3))
    assert hidden["has_object"] == 0.0 and not hidden["object_mask"].any()
    # Half shown is enough; a frame that does not record visibility (HO-3D) keeps its object.
    assert half["has_object"] == 1.0 and unknown["has_object"] == 1.0


@pytest.mark.parametrize("spec, distinct", [("box:0.05x0.08x0.03", 4), ("box:0.06x0.06x0.06", 24),
                                            ("cylinder:0.03x0.1", 1)])  # fmt: skip
def test_a_sample_carries_the_targets_of_every_member_of_a_finite_symmetry(
    tmp_path, spec, distinct
):
    """The loss may train towards any member: each is the same point set, relabelled."""
    sample = _write_frames(tmp_path, spec, _poses([np.eye(3)])).make_sample(0)
    members = sample["object_points_2d_members"]
    np.testing.assert_allclose(members[0], sample["object_points_2d"])
    assert len(np.unique(members.round(4), axis=0)) == distinct  # padded by the first member
    for member in members:
        np.testing.assert_allclose(
            np.sort(member.round(4), axis=0), np.sort(members[0].round(4), axis=0), atol=2e-4
        )
