"""Choosing the hand model: real MANO when the user has it, else the stand-in."""

import functools
import logging
from pathlib import Path

from hoposer.errors import HoposerError
from hoposer.model.hand.base import HandModel
from hoposer.model.hand.mano import MANOHand, find_mano_file, missing_mano_message
from hoposer.model.hand.standin import StandInHand

log = logging.getLogger(__name__)

HAND_MODELS: tuple[str, ...] = ("auto", "mano", "standin")


@functools.cache
def _warn_standin(reason: str) -> None:
    log.warning("using the stand-in hand model: %s", reason)


def build_hand_model(kind: str = "auto", mano_dir: str | Path | None = None) -> HandModel:
    """Build a hand model.

    Args:
        kind: "mano" (real MANO; error if `MANO_RIGHT.pkl` is missing), "standin" (the procedural
            hand), or "auto" (MANO when found, else the stand-in with a warning logged once).
        mano_dir: folder holding `MANO_RIGHT.pkl` (or the file); None: `$HOPOSER_MANO_DIR`, else
            `~/.cache/hoposer/mano`.

    Raises:
        HoposerError: unknown `kind`, or "mano" without a usable MANO file.
    """
    if kind == "standin":
        return StandInHand()
    if kind == "mano":
        return MANOHand(mano_dir)
    if kind == "auto":
        if find_mano_file(mano_dir) is not None:
            return MANOHand(mano_dir)
        _warn_standin(missing_mano_message(mano_dir))
        return StandInHand()
    raise HoposerError(f"unknown hand model {kind!r}; choose one of {', '.join(HAND_MODELS)}")


def hand_model_for_weights(
    trained_with: str | None, kind: str = "auto", mano_dir: str | Path | None = None
) -> HandModel:
    """The hand model that decodes a network's θ, β: the one it was trained with.

    Args:
        trained_with: the checkpoint's `hand_model` header ("mano" or "standin"), if recorded.
        kind: the user's choice; "auto" follows `trained_with`.
        mano_dir: as for `build_hand_model`.

    Raises:
        HoposerError: the user asked for a hand model other than the weights were trained with
            (their θ and β would mean something else).
    """
    if trained_with not in ("mano", "standin"):
        return build_hand_model(kind, mano_dir)
    if kind not in ("auto", trained_with):
        raise HoposerError(
            f"these weights were trained with the {trained_with} hand model, whose θ and β mean "
            f"something else for {kind}: use --hand-model {trained_with} (or auto)"
        )
    if trained_with == "standin":
        return StandInHand()
    return MANOHand(mano_dir)
