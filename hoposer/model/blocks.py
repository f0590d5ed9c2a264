"""Small building blocks shared by the backbone and the decoders."""

from torch import nn

LEAKY_SLOPE = 0.01


def make_activation(kind: str, slope: float = LEAKY_SLOPE) -> nn.Module:
    """`relu` or `leaky_relu` (the public code's slope 0.01 unless told otherwise)."""
    if kind == "leaky_relu":
        return nn.LeakyReLU(slope, inplace=True)
    if kind == "relu":
        return nn.ReLU(inplace=True)
    raise ValueError(f"unknown activation {kind!r}")


class ConvBNAct(nn.Sequential):
    """Conv (with bias, as in the public code) → BatchNorm → activation."""

    def __init__(self, c_in: int, c_out: int, kernel_size: int, activation: nn.Module) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, kernel_size, padding=(kernel_size - 1) // 2)
        self.bn = nn.BatchNorm2d(c_out)
        self.act = activation


class PreActBottleneck(nn.Module):
    """Pre-activation bottleneck: (BN → act → conv) × 3 at widths in → out/2 → out/2 → out.

    The residual unit of the hourglass and of the mesh regressor (Newell et al.); a 1×1
    convolution on the shortcut when the widths differ.
    """

    def __init__(self, c_in: int, c_out: int, activation: str) -> None:
        super().__init__()
        mid = c_out // 2
        self.bn1 = nn.BatchNorm2d(c_in)
        self.conv1 = nn.Conv2d(c_in, mid, 1)
        self.bn2 = nn.BatchNorm2d(mid)
        self.conv2 = nn.Conv2d(mid, mid, 3, padding=1)
        self.bn3 = nn.BatchNorm2d(mid)
        self.conv3 = nn.Conv2d(mid, c_out, 1)
        self.act = make_activation(activation)
        self.shortcut = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else None

    def forward(self, x):  # noqa: D102
        out = self.conv1(self.act(self.bn1(x)))
        out = self.conv2(self.act(self.bn2(out)))
        out = self.conv3(self.act(self.bn3(out)))
        return out + (x if self.shortcut is None else self.shortcut(x))
