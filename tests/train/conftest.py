"""Fixtures the self-training tests share, built once per session."""

import dataclasses

import pytest

from hoposer.engine.backends import random_model
from hoposer.model import get_config
from hoposer.model.checkpoint import save_checkpoint
from hoposer.train.synth import SynthOptions, generate

SIZE = 96  # the SIZE of the tests that use these: small images keep them fast


@pytest.fixture(scope="session")
def clips(tmp_path_factory):
    """Unlabelled video clips from the target domain: 12 frames in 3 clips of 4."""
    root = tmp_path_factory.mktemp("clips")
    generate(SynthOptions(out=str(root), frames=12, seed=5, size=SIZE, sequence_length=4,
                          videos=True, style="shifted", workers=1))  # fmt: skip
    return root


@pytest.fixture(scope="session")
def weights(tmp_path_factory):
    """A randomly initialised lite network at SIZE, saved with the stand-in hand model."""
    config = dataclasses.replace(get_config("lite"), input_size=SIZE, roi_size=16)
    path = tmp_path_factory.mktemp("w") / "w.safetensors"
    return save_checkpoint(random_model(config), path, metadata={"hand_model": "standin"})
