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
