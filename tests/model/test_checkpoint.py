import json

import pytest
import torch

from hoposer.errors import HoposerError
from hoposer.model import PRESETS, ModelConfig, build_model
from hoposer.model.checkpoint import load_checkpoint, read_checkpoint_info, save_checkpoint

CONFIG = ModelConfig(**{**PRESETS["lite"].__dict__, "input_size": 64})


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    torch.manual_seed(3)
    model = build_model(CONFIG).eval()
    # Non-trivial BN statistics, so the round trip checks buffers too.
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.1, 0.1)
            module.running_var.uniform_(0.5, 1.5)
    path = tmp_path_factory.mktemp("ckpt") / "model.safetensors"
    save_checkpoint(model, path, metadata={"source": "unit test"})
    return model, path


def example():
    g = torch.Generator().manual_seed(1)
    images = torch.rand((1, 3, 64, 64), generator=g)
    return images, torch.tensor([[5.0, 5.0, 40.0, 50.0]]), torch.tensor([[20.0, 15.0, 60.0, 60.0]])


def test_round_trip_gives_identical_outputs(saved):
    model, path = saved
    loaded = load_checkpoint(path)
    assert loaded.config == CONFIG
    with torch.no_grad():
        for a, b in zip(model(*example()), loaded(*example()), strict=True):
            assert torch.equal(a, b)


def test_header_and_sidecar_describe_the_weights(saved):
    _, path = saved
    info = read_checkpoint_info(path)
    assert info.metadata["source"] == "unit test"
    sidecar = json.loads(path.with_suffix(".json").read_text())
    assert ModelConfig.from_dict(sidecar["config"]) == CONFIG
    assert sidecar["parameters"] > 1_000_000


def test_truncated_checkpoint_is_refused(saved, tmp_path):
    _, path = saved
    data = path.read_bytes()
    for cut in (10, len(data) // 2):
        broken = tmp_path / f"cut{cut}.safetensors"
        broken.write_bytes(data[:cut])
        with pytest.raises(HoposerError, match="truncated or corrupt"):
            load_checkpoint(broken)


def test_tampered_weights_are_refused(saved, tmp_path):
    _, path = saved
    data = bytearray(path.read_bytes())
    data[-100] ^= 0xFF  # inside the last tensor's bytes
    tampered = tmp_path / "tampered.safetensors"
    tampered.write_bytes(bytes(data))
    with pytest.raises(HoposerError, match="checksum"):
        load_checkpoint(tampered)


def test_missing_directory_and_foreign_files(tmp_path):
    with pytest.raises(HoposerError, match="does not exist"):
        load_checkpoint(tmp_path / "nope.safetensors")
    with pytest.raises(HoposerError, match="directory"):
        load_checkpoint(tmp_path)
    from safetensors.torch import save_file

    foreign = tmp_path / "foreign.safetensors"
    save_file({"x": torch.zeros(2)}, str(foreign))
    with pytest.raises(HoposerError, match="not a hoposer checkpoint"):
        load_checkpoint(foreign)
    with pytest.raises(HoposerError, match=".safetensors"):
        save_checkpoint(build_model(CONFIG), tmp_path / "model.pt")


def test_failed_write_leaves_previous_checkpoint_intact(saved, tmp_path):
    model, path = saved
    target = tmp_path / "keep.safetensors"
    save_checkpoint(model, target)
    before = target.read_bytes()

    class Exploding(torch.nn.Module):
        config = CONFIG

        def state_dict(self):
            raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        save_checkpoint(Exploding(), target)
    assert target.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.json", "keep.safetensors"]
