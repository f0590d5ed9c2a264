"""Import checkpoints of the public Semi-Hand-Object code (`stevenlsw/Semi-Hand-Object`).

Its `traineval.py` saves `{"epoch", "network", "state_dict"}` from `HOModel(DataParallel(HONet))`,
so keys start with some mix of `honet.` and `module.`. The state dict also holds the MANO layer's
buffers (licensed MANO data: dropped here and never written to our files), the fixed
soft-argmax grids (`hand_head.uu/vv`, checked then dropped: we compute them), the OpenGL
coordinate flip used by its HO-3D evaluation, and the FPN's P3/P4 smoothing convs, which cannot
influence P2 (the only level the network uses) and are dropped.

Architecture hyper-parameters that the weights reveal (hourglass stacks/blocks/depth, CR depth,
MANO hidden widths) are read from the tensor shapes; the number of CR attention heads is not in
the weights and defaults to 1, the value `traineval.py` trains with.
"""

import re
from collections.abc import Callable
from pathlib import Path

import torch

from hoposer.errors import HoposerError
from hoposer.model.checkpoint import load_exact
from hoposer.model.config import PRESETS, ModelConfig
from hoposer.model.network import HandObjectNet

_Rename = str | Callable[[re.Match], str] | None  # None: drop the tensor


def _encoder_unit(match: re.Match) -> str:
    # The public Residual names its layers bn/conv1/bn1/conv2/bn2/conv3/conv4 (skip); ours
    # follow the hourglass bottleneck: bn1/conv1/bn2/conv2/bn3/conv3/shortcut.
    layer = {"bn": "bn1", "bn1": "bn2", "bn2": "bn3", "conv4": "shortcut"}.get(match[2], match[2])
    return f"hand_decoder.encoder.units.{match[1]}.{layer}.{match[3]}"


def _object_conv(match: re.Match) -> str:
    index = 2 * (int(match[2]) - 1) + int(match[3]) - 1
    return f"object_decoder.shared.{index}.{match[1]}.{match[4]}"


_RULES: list[tuple[str, _Rename]] = [
    (r"base_net\.layer0\.(\d)\.(.+)", r"backbone.stem.\1.\2"),
    (r"base_net\.layer(\d)\.0\.(.+)", r"backbone.layer\1.\2"),
    (r"base_net\.toplayer\.(.+)", r"backbone.lateral5.\1"),
    (r"base_net\.latlayer1\.(.+)", r"backbone.lateral4.\1"),
    (r"base_net\.latlayer2\.(.+)", r"backbone.lateral3.\1"),
    (r"base_net\.latlayer3\.(.+)", r"backbone.lateral2.\1"),
    (r"base_net\.smooth3\.(.+)", r"backbone.smooth2.\1"),
    (r"base_net\.smooth[12]\..+", None),
    (r"hand_head\.(uu|vv)", None),
    (r"hand_head\.betas", "hand_decoder.heatmaps.temperature"),
    (r"hand_head\.hg\.(\d+)\.hg\.(.+)", r"hand_decoder.heatmaps.hourglass.\1.levels.\2"),
    (r"hand_head\.res\.(.+)", r"hand_decoder.heatmaps.residual.\1"),
    (r"hand_head\.fc\.(\d+)\.block\.0\.(.+)", r"hand_decoder.heatmaps.features.\1.conv.\2"),
    (r"hand_head\.fc\.(\d+)\.block\.1\.(.+)", r"hand_decoder.heatmaps.features.\1.bn.\2"),
    (r"hand_head\.score\.(.+)", r"hand_decoder.heatmaps.score.\1"),
    (r"hand_head\.fc_\.(.+)", r"hand_decoder.heatmaps.remap_features.\1"),
    (r"hand_head\.score_\.(.+)", r"hand_decoder.heatmaps.remap_heatmaps.\1"),
    (r"hand_encoder\.heatmap_conv\.(.+)", r"hand_decoder.encoder.heatmap_proj.\1"),
    (r"hand_encoder\.encoding_conv\.(.+)", r"hand_decoder.encoder.feature_proj.\1"),
    (r"hand_encoder\.reg\.(\d+)\.(bn|bn1|bn2|conv1|conv2|conv3|conv4)\.(.+)", _encoder_unit),
    (r"mano_branch\.mano_base_layer\.(.+)", r"hand_decoder.mano.hidden.\1"),
    (r"mano_branch\.pose_reg\.(.+)", r"hand_decoder.mano.pose.\1"),
    (r"mano_branch\.shape_reg\.(.+)", r"hand_decoder.mano.shape.\1"),
    (r"mano_branch\.coord_change_mat", None),
    (r"mano_branch\.mano_layer\..+", None),
    (r"obj_head\.(conv|bn)(\d)_(\d)\.(.+)", _object_conv),
    (r"obj_head\.out_conv\.(.+)", r"object_decoder.output.\1"),
    (r"transformer\.layers\.(\d+)\.encode_(query|key|value)\.(.+)",
     r"object_context.layers.\1.\2.\3"),
    (r"transformer\.layers\.(\d+)\.norm2\.(.+)", r"object_context.layers.\1.norm.\2"),
    (r"transformer\.layers\.(\d+)\.mlp\.fc1\.(.+)", r"object_context.layers.\1.mlp.0.\2"),
    (r"transformer\.layers\.(\d+)\.mlp\.fc2\.(.+)", r"object_context.layers.\1.mlp.2.\2"),
]  # fmt: skip
_COMPILED = [(re.compile(pattern), rename) for pattern, rename in _RULES]


def strip_wrappers(key: str) -> str:
    """Remove the `module.` (DataParallel) and `honet.` (HOModel) prefixes, in any order."""
    while True:
        for prefix in ("module.", "honet."):
            if key.startswith(prefix):
                key = key[len(prefix) :]
                break
        else:
            return key


def map_official_state(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename a public-code `HONet` state dict to ours, dropping what we do not use.

    Raises:
        HoposerError: a key no rule knows (the file is not an HONet checkpoint, or another
            variant), or soft-argmax grids that are not the standard ones.
    """
    mapped: dict[str, torch.Tensor] = {}
    unknown = []
    for full_key, tensor in state.items():
        key = strip_wrappers(full_key)
        for pattern, rename in _COMPILED:
            match = pattern.fullmatch(key)
            if match is None:
                continue
            if rename is None:
                if key in ("hand_head.uu", "hand_head.vv"):
                    _check_grid(key, tensor)
            elif callable(rename):
                mapped[rename(match)] = tensor
            else:
                mapped[match.expand(rename)] = tensor
            break
        else:
            unknown.append(full_key)
    if unknown:
        raise HoposerError(
            f"{len(unknown)} unexpected keys for a Semi-Hand-Object HONet checkpoint "
            f"({', '.join(sorted(unknown)[:5])}{' …' * (len(unknown) > 5)}); is this the "
            "'honet_transformer' network of stevenlsw/Semi-Hand-Object?"
        )
    return mapped


def _check_grid(key: str, tensor: torch.Tensor) -> None:
    side = tensor.shape[-1]
    centers = (torch.arange(side, dtype=torch.float32) + 0.5) / side
    rows, cols = torch.meshgrid(centers, centers, indexing="ij")
    expected = cols if key.endswith("uu") else rows
    if tensor.shape != expected.shape or not torch.allclose(tensor.float(), expected, atol=1e-6):
        raise HoposerError(
            f"{key} is not the standard soft-argmax grid; this checkpoint comes from a modified "
            "network and cannot be imported exactly"
        )


def infer_config(mapped: dict[str, torch.Tensor], context_heads: int = 1) -> ModelConfig:
    """The `official` preset with the hyper-parameters the weights reveal."""

    def count(pattern: str) -> int:
        regex = re.compile(pattern.replace("HG", r"hand_decoder\.heatmaps\.hourglass"))
        return len({m[1] for k in mapped if (m := regex.match(k))})

    hidden = []
    index = 0
    while f"hand_decoder.mano.hidden.{index}.weight" in mapped:
        hidden.append(int(mapped[f"hand_decoder.mano.hidden.{index}.weight"].shape[0]))
        index += 2
    try:
        fpn_channels = int(mapped["backbone.lateral5.weight"].shape[0])
    except KeyError as err:
        raise HoposerError(f"checkpoint lacks {err.args[0]}: not an HONet checkpoint") from None
    base = PRESETS["official"]
    return ModelConfig(
        **{
            **base.__dict__,
            "name": "official",
            "fpn_channels": fpn_channels,
            "hourglass_stacks": count(r"HG\.(\d+)\."),
            "hourglass_depth": count(r"HG\.0\.levels\.(\d+)\."),
            "hourglass_blocks": count(r"HG\.0\.levels\.0\.0\.(\d+)\."),
            "context_depth": count(r"object_context\.layers\.(\d+)\."),
            "context_heads": context_heads,
            "mano_hidden": tuple(hidden),
        }
    )  # fmt: skip


def read_official_checkpoint(path: str | Path) -> dict[str, torch.Tensor]:
    """Load the tensors of a public-code `.pth` / `.pth.tar` safely (`weights_only=True`)."""
    path = Path(path)
    if not path.is_file():
        raise HoposerError(f"official checkpoint {path} does not exist")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises several types for non-checkpoints and unsafe pickles
        first = str(err).strip().splitlines()[0][:200] if str(err).strip() else type(err).__name__
        raise HoposerError(
            f"cannot read {path} as a plain-tensor PyTorch checkpoint ({first}); hoposer never "
            "unpickles arbitrary objects"
        ) from None
    state = data.get("state_dict", data) if isinstance(data, dict) else None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise HoposerError(f"{path} holds no state_dict of tensors")
    return state


def import_official(path: str | Path, context_heads: int = 1) -> HandObjectNet:
    """Build our network from a public Semi-Hand-Object checkpoint, with identical outputs."""
    mapped = map_official_state(read_official_checkpoint(path))
    model = HandObjectNet(infer_config(mapped, context_heads))
    load_exact(model, mapped, source=str(path))
    return model.eval()
