"""Import of public Semi-Hand-Object checkpoints, checked against outputs of the public code."""

import numpy as np
import pytest
import torch
from official_fixture import (
    MANO_BUFFERS,
    REFERENCE_FILE,
    official_keys,
    seeded_inputs,
    seeded_state_dict,
)

from hoposer.errors import HoposerError
from hoposer.model.official import import_official, map_official_state


def official_checkpoint(path, state):
    """Save like the public traineval.py: HOModel(DataParallel(HONet)), MANO buffers included."""
    wrapped = {f"honet.module.{k}": v for k, v in state.items()}
    for name, shape in MANO_BUFFERS.items():
        wrapped[f"honet.module.mano_branch.mano_layer.{name}"] = torch.ones(shape)
    torch.save({"epoch": 60, "network": "honet_transformer", "state_dict": wrapped}, path)
    return path


@pytest.fixture(scope="module")
def state():
    return seeded_state_dict(official_keys())


def test_import_reproduces_the_public_code_outputs(state, tmp_path):
    model = import_official(official_checkpoint(tmp_path / "honet.pth.tar", state))
    with torch.no_grad():
        out = model(*seeded_inputs())
    ref = np.load(REFERENCE_FILE)
    tol = 1e-5
    assert np.abs(out.joints_2d.numpy() - ref["joints_2d"]).max() <= tol
    assert np.abs(out.theta.numpy() - ref["theta"]).max() <= tol
    assert np.abs(out.beta.numpy() - ref["beta"]).max() <= tol
    assert np.abs(out.object_points[..., 0].numpy() - ref["object_x"]).max() <= tol
    assert np.abs(out.object_points[..., 1].numpy() - ref["object_y"]).max() <= tol
    assert np.abs(out.object_confidence.numpy() - ref["object_confidence"]).max() <= tol


def test_mano_buffers_are_dropped(state):
    wrapped = {f"module.honet.{k}": v for k, v in state.items()}
    wrapped["module.honet.mano_branch.mano_layer.th_shapedirs"] = torch.ones(778, 3, 10)
    mapped = map_official_state(wrapped)
    assert not any("mano_layer" in k or "th_" in k for k in mapped)
    assert len(mapped) == len(state) - 7  # smooth1/2 (4), uu, vv, coord_change_mat


def test_wrong_keys_are_named(state, tmp_path):
    broken = dict(state)
    broken.pop("obj_head.out_conv.weight")
    broken["obj_head.extra_conv.weight"] = torch.zeros(1)
    with pytest.raises(HoposerError, match="obj_head.extra_conv.weight"):
        import_official(official_checkpoint(tmp_path / "a.pth", broken))
    broken.pop("obj_head.extra_conv.weight")
    with pytest.raises(HoposerError, match="missing.*object_decoder.output.weight"):
        import_official(official_checkpoint(tmp_path / "b.pth", broken))


def test_unsafe_or_foreign_files_are_refused(tmp_path):
    class Payload:
        def __reduce__(self):
            return (print, ("executed",))

    evil = tmp_path / "evil.pth"
    torch.save({"state_dict": Payload()}, evil)
    with pytest.raises(HoposerError, match="never unpickles"):
        import_official(evil)
    text = tmp_path / "notes.pth"
    text.write_text("not a checkpoint")
    with pytest.raises(HoposerError, match="cannot read"):
        import_official(text)
    with pytest.raises(HoposerError, match="does not exist"):
        import_official(tmp_path / "missing.pth")
