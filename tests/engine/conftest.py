import dataclasses

import pytest

from hoposer.engine.backends import random_model
from hoposer.engine.export import export_onnx
from hoposer.model import get_config

SMALL = 128  # lite at 128² keeps every export and inference well under a second


@pytest.fixture(scope="session")
def small_config():
    return dataclasses.replace(get_config("lite"), input_size=SMALL)


@pytest.fixture(scope="session")
def small_model(small_config):
    return random_model(small_config)


@pytest.fixture(scope="session")
def small_onnx(small_model, tmp_path_factory):
    return export_onnx(small_model, tmp_path_factory.mktemp("onnx") / "lite128.onnx", max_batch=8)
