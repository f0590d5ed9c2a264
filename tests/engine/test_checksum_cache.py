"""A damaged checkpoint is refused on every backend, even when an export of it is cached."""

import json

import pytest

from hoposer.engine.backends import open_backend
from hoposer.engine.cache import cached_onnx
from hoposer.errors import HoposerError
from hoposer.model.checkpoint import save_checkpoint


def flip_one_bit(path, damaged):
    data = bytearray(path.read_bytes())
    data[-1000] ^= 0x01  # inside the last tensor's bytes; the header is untouched
    damaged.write_bytes(bytes(data))
    return damaged


@pytest.fixture()
def weights(small_model, tmp_path, monkeypatch):
    monkeypatch.setenv("HOPOSER_CACHE_DIR", str(tmp_path / "cache"))
    good = save_checkpoint(small_model, tmp_path / "good.safetensors")
    return good, flip_one_bit(good, tmp_path / "damaged.safetensors")


def test_a_damaged_checkpoint_is_refused_on_every_backend(weights):
    _, damaged = weights
    for name in ("onnxruntime", "torch", "auto"):
        with pytest.raises(HoposerError, match="checksum"):
            open_backend(name, weights=damaged)


@pytest.mark.slow
def test_a_cached_export_of_the_intact_file_does_not_let_the_damaged_one_through(
    weights, small_onnx, tmp_path
):
    good, damaged = weights
    backend = open_backend("onnxruntime", weights=good)  # exports into the cache
    path = cached_onnx(good)
    header = json.loads(good.with_suffix(".json").read_text())
    assert backend.info.path == path and header["tensors_sha256"][:16] in path.name
    verified = tmp_path / "cache" / "verified"
    assert len(list(verified.iterdir())) == 1  # this content is known to match its checksum
    for name in ("onnxruntime", "torch", "auto"):
        with pytest.raises(HoposerError, match="checksum"):
            open_backend(name, weights=damaged)
    with pytest.raises(HoposerError, match="checksum"):
        open_backend("onnxruntime", weights=damaged, onnx=small_onnx)
    assert len(list(verified.iterdir())) == 1  # a failed check is not remembered
