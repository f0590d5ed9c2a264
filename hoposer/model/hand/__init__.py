"""Hand models: θ, β → 21 joints and a mesh (MANO via smplx, or the procedural stand-in)."""

from hoposer.model.hand.base import HandModel, HandOutput
from hoposer.model.hand.build import HAND_MODELS, build_hand_model, hand_model_for_weights
from hoposer.model.hand.mano import MANOHand
from hoposer.model.hand.standin import StandInHand

__all__ = [
    "HAND_MODELS",
    "HandModel",
    "HandOutput",
    "MANOHand",
    "StandInHand",
    "build_hand_model",
    "hand_model_for_weights",
]
