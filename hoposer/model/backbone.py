"""ResNet-FPN encoder returning the finest pyramid level P2 (stride 4)."""

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


class ResNetFPN(nn.Module):
    """ResNet + top-down FPN (Lin et al., CVPR 2017), computing only what P2 needs.

    P2 = smooth(lateral2(C2) + up(P3')), P3' = lateral3(C3) + up(P4'), P4' = lateral4(C4) +
    up(P5), P5 = lateral5(C5): the unsmoothed P3'/P4' feed the next level, as in the public code,
    so the smoothing convs of P3 and P4 do not influence P2 and are not built.
    """

    def __init__(self, depth: str, channels: int, activation: str) -> None:
        super().__init__()
        make_resnet, widths = _RESNETS[depth]
        resnet = make_resnet(weights=None)
        if activation != "relu":
            _replace_relu(resnet, activation)
        self.stem = nn.Sequential(resnet.conv1, resnet.bn1, resnet.relu, resnet.maxpool)
        self.layer1, self.layer2 = resnet.layer1, resnet.layer2
        self.layer3, self.layer4 = resnet.layer3, resnet.layer4
        self.lateral5 = nn.Conv2d(widths[3], channels, 1)
        self.lateral4 = nn.Conv2d(widths[2], channels, 1)
        self.lateral3 = nn.Conv2d(widths[1], channels, 1)
        self.lateral2 = nn.Conv2d(widths[0], channels, 1)
        self.smooth2 = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """`(B, 3, H, W)` → P2 `(B, C, H/4, W/4)`."""
        c2 = self.layer1(self.stem(images))
        c3 = self.layer2(c2)
        c4 = self.layer3(c3)
        c5 = self.layer4(c4)
        p = self.lateral5(c5)
        p = _upsample_add(p, self.lateral4(c4))
        p = _upsample_add(p, self.lateral3(c3))
        p = _upsample_add(p, self.lateral2(c2))
        return self.smooth2(p)

    def load_imagenet(self, path: str | Path) -> None:
        """Load torchvision-format ImageNet ResNet weights from a user-supplied file.

        The file is a torchvision state dict (e.g. `resnet50-0676ba61.pth`); it is read with
        `weights_only=True`, and its classifier (`fc.*`) is ignored.
        """
        path = Path(path)
        if not path.is_file():
            raise HoposerError(
                f"ImageNet weights {path} not found: download the torchvision ResNet checkpoint "
                "yourself and pass its path (hoposer never downloads weights)"
            )
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as err:
            raise HoposerError(f"cannot read ImageNet weights {path}: {err}") from None
        mapped = {}
        for key, value in state.items():
            if key.startswith("fc."):
                continue
            head, _, rest = key.partition(".")
            if head in ("conv1", "bn1"):
                key = f"stem.{0 if head == 'conv1' else 1}.{rest}"
            mapped[key] = value
        own = {k for k in self.state_dict() if not k.startswith(("lateral", "smooth"))}
        missing, unexpected = own - set(mapped), set(mapped) - own
        if missing or unexpected:
            raise HoposerError(
                f"{path} does not match this backbone: missing {sorted(missing)[:5]}, "
                f"unexpected {sorted(unexpected)[:5]}"
            )
        self.load_state_dict(mapped, strict=False)


def _upsample_add(coarse: torch.Tensor, fine: torch.Tensor) -> torch.Tensor:
    return F.interpolate(coarse, size=fine.shape[-2:], mode="bilinear", align_corners=False) + fine


def _replace_relu(module: nn.Module, activation: str) -> None:
    for name, child in module.named_children():
        if isinstance(child, nn.ReLU):
            setattr(module, name, make_activation(activation))
        else:
            _replace_relu(child, activation)
