"""The joint hand-object network (§4) and the hand models it decodes into."""

from hoposer.model.config import PRESETS, ModelConfig, get_config
from hoposer.model.network import HandObjectNet, RawOutputs, TrainingOutputs, build_model

__all__ = [
    "PRESETS",
    "HandObjectNet",
    "ModelConfig",
    "RawOutputs",
    "TrainingOutputs",
    "build_model",
    "get_config",
]
