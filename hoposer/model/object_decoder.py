"""Object decoder (§4.3, Appendix A): per-cell 2D proposals for the 21 control points.

Every cell g of the (roi × roi) object grid predicts, for each control point i, an offset v_{g,i}
from its own centre p_g and a confidence c_{g,i} = sigmoid(·). Points are returned normalised to
the object box: (0, 0) is its top-left and (1, 1) its bottom-right corner. Offsets are predicted
in units of 1/`OFFSET_SCALE` of the box (the public code's `coord_norm_factor`).
"""

from typing import NamedTuple

import torch
from torch import nn

from hoposer.model.blocks import ConvBNAct, make_activation
from hoposer.model.config import ModelConfig

OFFSET_SCALE = 10.0
_SLOPE = 0.1  # the public object decoder's LeakyReLU slope


class ObjectGrid(NamedTuple):
    """Per-cell control-point proposals."""

    points: torch.Tensor  #: (B, R, R, 21, 2) normalised to the object box, (x, y)
    confidence: torch.Tensor  #: (B, R, R, 21) in (0, 1)


class ObjectDecoder(nn.Module):
    """Object RoI features `(B, C, R, R)` → `ObjectGrid`."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        c, n = config.fpn_channels, config.num_control_points
        self.num_points = n
        act = config.activation if config.object_head == "paper" else "leaky_relu"

        def block(c_in: int, c_out: int, k: int) -> ConvBNAct:
            return ConvBNAct(c_in, c_out, k, make_activation(act, _SLOPE))

        if config.object_head == "official":
            # 3 × (1×1 to C/2, 3×3 back to C), then one conv for [confidence, x, y] × 21.
            self.shared = nn.Sequential(
                *(layer for _ in range(3) for layer in (block(c, c // 2, 1), block(c // 2, c, 3)))
            )
            self.output = nn.Conv2d(c, 3 * n, 1)
            self.offset_stream = self.confidence_stream = None
        else:
            self.shared = nn.Sequential(*(block(c, c, 3) for _ in range(4)))
            self.output = None
            self.offset_stream = nn.Sequential(block(c, c, 3), nn.Conv2d(c, 2 * n, 1))
            self.confidence_stream = nn.Sequential(block(c, c, 3), nn.Conv2d(c, n, 1))
        for conv in self._output_convs():
            nn.init.zeros_(conv.bias)
        side = config.roi_size
        centers = (torch.arange(side, dtype=torch.float32) + 0.5) / side
        grid = torch.stack(torch.meshgrid(centers, centers, indexing="xy"), dim=-1)
        self.register_buffer("cell_centers", grid[:, :, None, :], persistent=False)

    def _output_convs(self) -> list[nn.Conv2d]:
        if self.output is not None:
            return [self.output]
        return [self.offset_stream[-1], self.confidence_stream[-1]]

    def forward(self, features: torch.Tensor) -> ObjectGrid:  # noqa: D102
        x = self.shared(features)
        if self.output is not None:
            out = self.output(x)
            logits, offsets = out[:, : self.num_points], out[:, self.num_points :]
        else:
            logits, offsets = self.confidence_stream(x), self.offset_stream(x)
        b, _, h, w = offsets.shape
        # (B, [x|y] × N, H, W) → (B, H, W, N, 2)
        offsets = offsets.reshape(b, 2, self.num_points, h, w).permute(0, 3, 4, 2, 1)
        points = offsets / OFFSET_SCALE + self.cell_centers
        confidence = torch.sigmoid(logits).permute(0, 2, 3, 1)
        return ObjectGrid(points, confidence)
