import importlib.util
import pickle
import sys

import numpy as np
import pytest
import torch
import trimesh
from synthetic_mano import mano_arrays, write_synthetic_mano

from hoposer.errors import HoposerError
from hoposer.geometry.kinematics import flexion_angles
from hoposer.geometry.skeleton import HO3D_TO_OURS, MANO_JOINTS_IN_OURS, TIPS
from hoposer.model.hand import HandOutput, MANOHand, StandInHand, build_hand_model
from hoposer.model.hand.base import ABDUCTION_LIMITS, FLEXION_LIMITS
from hoposer.model.hand.mano import CACHE_FILE, TIP_VERTICES, load_mano_pickle


@pytest.fixture(scope="module")
def hand():
    return StandInHand()


def _pose(hand, theta, beta=None, dtype=torch.float64):
    theta = torch.as_tensor(np.asarray(theta), dtype=dtype).reshape(-1, 48)
    beta = None if beta is None else torch.as_tensor(np.asarray(beta), dtype=dtype).reshape(-1, 10)
    return hand(theta, beta)


# ----------------------------------------------------------------------------- stand-in


def test_standin_rest_layout(hand):
    out = _pose(hand, np.zeros(48))
    assert isinstance(out, HandOutput)
    joints = out.joints[0].numpy()
    assert joints.shape == (21, 3) and out.vertices.shape == (1, hand.num_vertices, 3)
    np.testing.assert_allclose(joints[0], 0.0, atol=1e-12)
    dist = np.linalg.norm(joints, axis=1)
    for tip in TIPS:  # the tip is farther from the wrist than the finger's base joint
        assert dist[tip] > dist[tip - 2] > dist[tip - 3]
    assert dist[9] == pytest.approx(0.09, abs=0.002)  # middle_mcp
    assert dist[12] == pytest.approx(0.18, abs=0.004)  # middle_tip
    # Documented frame: fingers along -x, thumb on +z, little finger on -z, palm facing -y.
    assert (joints[[8, 12, 16, 20], 0] < -0.14).all()
    assert joints[4, 2] > 0.05 > -0.02 > joints[20, 2]
    assert joints[5, 2] > joints[9, 2] > joints[13, 2] > joints[17, 2]
    # Zero pose is the flat hand: every digit's joints from its base on are collinear (the
    # first angle of each digit is the splay relative to the wrist, not a flexion).
    np.testing.assert_allclose(flexion_angles(joints).reshape(5, 3)[:, 1:], 0.0, atol=1e-9)


def test_standin_mesh_is_closed_and_outward(hand):
    assert hand.faces.dtype == np.int64 and hand.faces.shape[1] == 3
    assert len(hand.faces) < 5000 and hand.faces.max() < hand.num_vertices
    mesh = trimesh.Trimesh(hand.v_template.numpy(), hand.faces, process=False)
    assert mesh.is_watertight and mesh.is_winding_consistent
    assert mesh.volume > 0  # outward winding
    tips = _pose(hand, np.zeros(48)).joints[0, list(TIPS)].numpy()
    np.testing.assert_allclose(tips, hand.v_template.numpy()[list(hand.tip_vertices)])


def test_beta0_scales_monotonically(hand):
    sizes = []
    for b in (-2.0, -1.0, 0.0, 1.0, 2.0):
        joints = _pose(hand, np.zeros(48), np.eye(10)[0] * b).joints[0].numpy()
        sizes.append(np.linalg.norm(joints[12]))
    assert np.all(np.diff(sizes) > 0)
    assert sizes[3] / sizes[2] == pytest.approx(1.07)


def test_other_betas_change_what_they_say(hand):
    rest = _pose(hand, np.zeros(48)).joints[0].numpy()
    longer = _pose(hand, np.zeros(48), np.eye(10)[1]).joints[0].numpy()  # finger length
    assert np.linalg.norm(longer[12] - longer[9]) > np.linalg.norm(rest[12] - rest[9])
    np.testing.assert_allclose(longer[9], rest[9])
    wider = _pose(hand, np.zeros(48), np.eye(10)[2]).joints[0].numpy()  # palm width
    assert wider[5, 2] - wider[17, 2] > rest[5, 2] - rest[17, 2]


def test_flexing_index_moves_only_index(hand):
    theta = np.zeros(48)
    theta[3:6] = [0.0, 0.0, 0.8]  # MANO joint 1 = index_mcp; +z flexes the four fingers
    rest = _pose(hand, np.zeros(48)).joints[0].numpy()
    bent = _pose(hand, theta).joints[0].numpy()
    moved = np.flatnonzero(np.linalg.norm(bent - rest, axis=1) > 1e-9)
    assert moved.tolist() == [6, 7, 8]
    assert bent[8, 1] < -0.02  # the tip curls towards the palm (-y)
    bones = np.linalg.norm(np.diff(bent[5:9], axis=0), axis=1)
    np.testing.assert_allclose(bones, np.linalg.norm(np.diff(rest[5:9], axis=0), axis=1))


def test_translation_adds(hand):
    rng = np.random.default_rng(3)
    theta = torch.tensor(rng.normal(0, 0.3, (2, 48)))
    beta = torch.tensor(rng.normal(0, 1, (2, 10)))
    t = torch.tensor([[0.1, -0.2, 0.5], [0.0, 0.3, 1.0]], dtype=torch.float64)
    a, b = hand(theta, beta), hand(theta, beta, t)
    torch.testing.assert_close(b.joints, a.joints + t[:, None])
    torch.testing.assert_close(b.vertices, a.vertices + t[:, None])


def test_skinning_vertices_follow_bones(hand):
    rng = np.random.default_rng(4)
    theta = hand.plausible_pose(rng)
    theta[:3] = [0.3, -1.0, 0.4]
    rest, posed = _pose(hand, np.zeros(48)), _pose(hand, theta)
    # Vertices fully bound to the index distal bone (MANO joint 3) keep their distances to
    # index_dip (7) and index_tip (8).
    ids = np.flatnonzero(hand.lbs_weights.numpy()[:, 3] == 1.0)
    assert len(ids) > 20
    for j in (7, 8):
        d0 = np.linalg.norm(rest.vertices[0, ids] - rest.joints[0, j], axis=1)
        d1 = np.linalg.norm(posed.vertices[0, ids] - posed.joints[0, j], axis=1)
        np.testing.assert_allclose(d1, d0, atol=1e-12)
    # A pure global rotation rotates every vertex about the wrist.
    glob = np.zeros(48)
    glob[:3] = [0.0, 0.0, np.pi / 2]
    turned = _pose(hand, glob).vertices[0].numpy()
    R = np.array([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    np.testing.assert_allclose(turned, rest.vertices[0].numpy() @ R.T, atol=1e-12)


def test_plausible_pose_within_limits_and_deterministic(hand):
    flex_axes, abduct_axes = hand.joint_axes()
    for seed in range(20):
        theta = hand.plausible_pose(np.random.default_rng(seed))
        assert theta.shape == (48,) and theta.dtype == np.float64
        np.testing.assert_array_equal(theta, hand.plausible_pose(np.random.default_rng(seed)))
        assert np.all(theta[:3] == 0)
        per_joint = theta.reshape(16, 3)
        flex = (per_joint * flex_axes).sum(1)
        abduct = (per_joint * abduct_axes).sum(1)
        residual = per_joint - flex[:, None] * flex_axes - abduct[:, None] * abduct_axes
        np.testing.assert_allclose(residual, 0.0, atol=1e-12)
        assert np.all(flex >= FLEXION_LIMITS[:, 0] - 1e-12)
        assert np.all(flex <= FLEXION_LIMITS[:, 1] + 1e-12)
        assert np.all(abduct >= ABDUCTION_LIMITS[:, 0] - 1e-12)
        assert np.all(abduct <= ABDUCTION_LIMITS[:, 1] + 1e-12)
    a = hand.plausible_pose(np.random.default_rng(0))
    assert not np.allclose(a, hand.plausible_pose(np.random.default_rng(1)))
    # A grasp: fingertips end up on the palm side (-y) of the hand.
    joints = _pose(hand, a).joints[0].numpy()
    assert joints[[8, 12, 16, 20], 1].mean() < -0.01


def test_gradients_and_dtypes(hand):
    rng = np.random.default_rng(5)
    theta = torch.tensor(rng.normal(0, 0.3, (2, 48)), requires_grad=True)
    beta = torch.tensor(rng.normal(0, 1, (2, 10)), requires_grad=True)
    out = hand(theta, beta)
    (out.joints.square().sum() + out.vertices.square().sum()).backward()
    assert theta.grad.abs().sum() > 0 and beta.grad.abs().sum() > 0
    assert torch.isfinite(theta.grad).all() and torch.isfinite(beta.grad).all()
    out32 = hand(theta.detach().float(), beta.detach().float())
    assert out32.joints.dtype == torch.float32 and out32.vertices.dtype == torch.float32
    torch.testing.assert_close(out32.joints.double(), out.joints.detach(), atol=1e-5, rtol=0)
    small = (
        theta[:1].detach().clone().requires_grad_(),
        beta[:1].detach().clone().requires_grad_(),
    )
    assert torch.autograd.gradcheck(lambda t, b: hand(t, b).joints, small, fast_mode=True)


def test_bad_shapes_raise(hand):
    with pytest.raises(ValueError, match="theta"):
        hand(torch.zeros(2, 45))
    with pytest.raises(ValueError, match="beta"):
        hand(torch.zeros(2, 48), torch.zeros(1, 10))


# ----------------------------------------------------------------------------- MANO


@pytest.fixture()
def mano_dir(tmp_path):
    write_synthetic_mano(tmp_path / "mano")
    return tmp_path / "mano"


def test_mano_pickle_loads_without_chumpy(mano_dir):
    assert importlib.util.find_spec("chumpy") is None
    arrays = load_mano_pickle(mano_dir / "MANO_RIGHT.pkl")
    assert "chumpy" not in sys.modules
    ref = mano_arrays()
    for key, value in arrays.items():
        np.testing.assert_allclose(value, ref[key], err_msg=key)
    assert arrays["J_regressor"].shape == (16, 778) and arrays["shapedirs"].shape == (778, 3, 10)


def test_mano_rest_joints_match_template(mano_dir, tmp_path):
    hand = MANOHand(mano_dir, cache_dir=tmp_path / "cache")
    assert hand.name == "mano" and hand.num_vertices == 778 and hand.faces.shape == (1538, 3)
    out = hand(torch.zeros(1, 48, dtype=torch.float64))
    ref = mano_arrays()
    ho3d = np.concatenate(
        [ref["J_regressor"] @ ref["v_template"], ref["v_template"][[*TIP_VERTICES]]]
    )
    ours = ho3d[list(HO3D_TO_OURS)] - ho3d[0]
    np.testing.assert_allclose(out.joints[0].numpy(), ours, atol=1e-6)
    np.testing.assert_allclose(out.vertices[0].numpy(), ref["v_template"] - ho3d[0], atol=1e-6)


def test_mano_matches_smplx_when_posed(mano_dir, tmp_path):
    import smplx

    from hoposer.model.hand.mano import load_mano_arrays

    hand = MANOHand(mano_dir, cache_dir=tmp_path / "cache")
    arrays = load_mano_arrays(mano_dir / "MANO_RIGHT.pkl", tmp_path / "cache")
    from types import SimpleNamespace

    layer = smplx.MANO(str(mano_dir), data_struct=SimpleNamespace(**arrays), use_pca=False,
                       flat_hand_mean=True, num_betas=10)  # fmt: skip
    rng = np.random.default_rng(6)
    theta = torch.tensor(rng.normal(0, 0.4, (3, 48)), dtype=torch.float32)
    beta = torch.tensor(rng.normal(0, 1, (3, 10)), dtype=torch.float32)
    ref = layer(betas=beta, global_orient=theta[:, :3], hand_pose=theta[:, 3:])
    out = hand(theta, beta)
    kin = ref.joints[:, :16] - ref.joints[:, :1]
    torch.testing.assert_close(out.joints[:, list(MANO_JOINTS_IN_OURS)], kin, atol=1e-6, rtol=0)
    tips = ref.vertices[:, list(TIP_VERTICES)] - ref.joints[:, :1]
    torch.testing.assert_close(out.joints[:, list(TIPS)], tips, atol=1e-6, rtol=0)
    torch.testing.assert_close(out.vertices, ref.vertices - ref.joints[:, :1], atol=1e-6, rtol=0)


def test_mano_cache_written_and_reused(mano_dir, tmp_path):
    cache = tmp_path / "cache" / CACHE_FILE
    first = MANOHand(mano_dir, cache_dir=cache.parent)
    assert cache.is_file()
    stamp = cache.stat().st_mtime_ns
    second = MANOHand(mano_dir, cache_dir=cache.parent)
    assert cache.stat().st_mtime_ns == stamp
    theta = torch.tensor(first.plausible_pose(np.random.default_rng(0))[None], dtype=torch.float32)
    torch.testing.assert_close(first(theta).vertices, second(theta).vertices)
    with np.load(cache, allow_pickle=False) as data:  # a plain npz, no pickled objects
        assert data["J_regressor"].shape == (16, 778)
    write_synthetic_mano(mano_dir, seed=1)  # a different file replaces the cache
    MANOHand(mano_dir, cache_dir=cache.parent)
    with np.load(cache, allow_pickle=False) as data:
        np.testing.assert_allclose(data["hands_mean"], mano_arrays(1)["hands_mean"])


def test_missing_mano_file_says_where_to_get_it(tmp_path):
    with pytest.raises(HoposerError) as err:
        MANOHand(tmp_path / "nowhere", cache_dir=tmp_path)
    message = str(err.value)
    assert "MANO_RIGHT.pkl" in message and "https://mano.is.tue.mpg.de" in message
    assert "--mano-dir" in message and "HOPOSER_MANO_DIR" in message


def test_malicious_pickle_is_refused(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    (tmp_path / "MANO_RIGHT.pkl").write_bytes(pickle.dumps({"v_template": Evil()}, protocol=2))
    with pytest.raises(HoposerError, match="refusing"):
        MANOHand(tmp_path, cache_dir=tmp_path)


def test_build_hand_model(mano_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("HOPOSER_CACHE_DIR", str(tmp_path / "cache"))
    assert isinstance(build_hand_model("standin"), StandInHand)
    assert isinstance(build_hand_model("auto", tmp_path / "empty"), StandInHand)
    assert isinstance(build_hand_model("auto", mano_dir), MANOHand)
    assert isinstance(build_hand_model("mano", mano_dir / "MANO_RIGHT.pkl"), MANOHand)
    with pytest.raises(HoposerError, match="MANO_RIGHT.pkl"):
        build_hand_model("mano", tmp_path / "empty")
    with pytest.raises(HoposerError, match="unknown hand model"):
        build_hand_model("bogus")
