"""Hand decoder (§4.2, Appendix A): 2D joint heatmaps, then MANO θ and β.

heatmaps: stacked hourglass on the hand RoI features → 21 heatmaps (roi × roi) → spatial softmax
    with a learned per-joint temperature → 2D joints by soft-argmax, normalised to the hand box
    (cell centres at (i + 0.5) / roi).
mesh regression: 1×1 convs merge the heatmaps and the hourglass features, residual stages with
    max-pooling reduce them to a small map, which is flattened and regressed by fully-connected
    layers to β and to θ — either directly as axis-angle or as 16 6D rotations (public code).
"""

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from hoposer.geometry.rotations import (
    axis_angle_to_matrix,
    matrix_to_axis_angle,
    rot6d_to_matrix,
)
from hoposer.model.blocks import ConvBNAct, PreActBottleneck, make_activation
from hoposer.model.config import ModelConfig


class Hourglass(nn.Module):
    """Newell et al.'s hourglass: recursive pool → residual → upsample with skip branches."""

    def __init__(self, channels: int, depth: int, blocks: int, activation: str) -> None:
        super().__init__()

        def units() -> nn.Sequential:
            return nn.Sequential(
                *(PreActBottleneck(channels, channels, activation) for _ in range(blocks))
            )

        # levels[i] = [skip, down, up] (+ [bottom] for the innermost level i = 0)
        self.levels = nn.ModuleList(
            nn.ModuleList(units() for _ in range(4 if i == 0 else 3)) for i in range(depth)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return self._level(len(self.levels), x)

    def _level(self, n: int, x: torch.Tensor) -> torch.Tensor:
        skip, down, up, *bottom = self.levels[n - 1]
        low = down(F.max_pool2d(x, 2, stride=2))
        low = self._level(n - 1, low) if n > 1 else bottom[0](low)
        return skip(x) + F.interpolate(up(low), scale_factor=2.0, mode="nearest")


class HeatmapHead(nn.Module):
    """Stacked hourglasses → heatmaps and soft-argmax 2D joints."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        c, j, act = config.fpn_channels, config.num_joints, config.activation
        stacks = config.hourglass_stacks
        self.hourglass = nn.ModuleList(
            Hourglass(c, config.hourglass_depth, config.hourglass_blocks, act)
            for _ in range(stacks)
        )
        self.residual = nn.ModuleList(
            nn.Sequential(*(PreActBottleneck(c, c, act) for _ in range(config.hourglass_blocks)))
            for _ in range(stacks)
        )
        self.features = nn.ModuleList(
            ConvBNAct(c, c, 1, make_activation(act)) for _ in range(stacks)
        )
        self.score = nn.ModuleList(nn.Conv2d(c, j, 1) for _ in range(stacks))
        # Between stacks: features and heatmaps are projected back and added to the input.
        self.remap_features = nn.ModuleList(nn.Conv2d(c, c, 1) for _ in range(stacks - 1))
        self.remap_heatmaps = nn.ModuleList(nn.Conv2d(j, c, 1) for _ in range(stacks - 1))
        self.temperature = nn.Parameter(torch.ones(j, 1))
        centers = (torch.arange(config.roi_size, dtype=torch.float32) + 0.5) / config.roi_size
        self.register_buffer("cell_centers", centers, persistent=False)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Hand RoI features `(B, C, R, R)` → heatmaps `(B, 21, R, R)`, joints `(B, 21, 2)`.

        The third value feeds the mesh regressor: the last stack's features `(B, C, R, R)`, and
        for stacked models also that stack's input.
        """
        for i in range(len(self.hourglass)):
            y = self.features[i](self.residual[i](self.hourglass[i](x)))
            heatmaps = self._spatial_softmax(self.score[i](y))
            if i < len(self.hourglass) - 1:
                x = x + self.remap_features[i](y) + self.remap_heatmaps[i](heatmaps)
        joints = self._soft_argmax(heatmaps)
        # The mesh regressor sees the last stack's features, plus its input for stacked models.
        features = y if len(self.hourglass) == 1 else (y, x)
        return heatmaps, joints, features

    def _spatial_softmax(self, logits: torch.Tensor) -> torch.Tensor:
        b, j, h, w = logits.shape
        weights = torch.softmax(logits.reshape(b, j, h * w) * self.temperature, dim=-1)
        return weights.reshape(b, j, h, w)

    def _soft_argmax(self, heatmaps: torch.Tensor) -> torch.Tensor:
        u = (heatmaps.sum(dim=2) * self.cell_centers).sum(dim=-1)
        v = (heatmaps.sum(dim=3) * self.cell_centers).sum(dim=-1)
        return torch.stack((u, v), dim=-1)


class MeshEncoder(nn.Module):
    """Heatmaps + hourglass features → flattened features for the MANO regressor."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        c, act = config.fpn_channels, config.activation
        self.heatmap_proj = nn.Conv2d(config.num_joints, c, 1)
        self.feature_proj = nn.Conv2d(c, c, 1)
        units = []
        for stage in range(config.encoder_blocks):
            for unit in range(config.encoder_modules):
                last = stage == config.encoder_blocks - 1 and unit == config.encoder_modules - 1
                units.append(PreActBottleneck(c, config.encoder_channels if last else c, act))
        self.units = nn.ModuleList(units)
        self.modules_per_stage = config.encoder_modules

    def forward(self, heatmaps: torch.Tensor, features) -> torch.Tensor:  # noqa: D102
        if isinstance(features, tuple):
            last, previous = features
            x = self.heatmap_proj(heatmaps) + self.feature_proj(last) + previous
        else:
            x = self.heatmap_proj(heatmaps) + self.feature_proj(features)
        for i, unit in enumerate(self.units):
            x = unit(x)
            if (i + 1) % self.modules_per_stage == 0:
                x = F.max_pool2d(x, 2, stride=2)
        return x.flatten(1)


class ManoParams(NamedTuple):
    """MANO parameters regressed by the hand decoder."""

    theta: torch.Tensor  #: (B, 48) axis-angle, MANO joint order, global rotation first
    beta: torch.Tensor  #: (B, 10)
    rotations: torch.Tensor  #: (B, 16, 3, 3) the same rotations as matrices


class ManoRegressor(nn.Module):
    """Fully-connected regression of θ and β from the mesh-encoder features.

    With `config.mano_joint_input` it also reads the 2D joints, centred on the box.
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        widths = (config.mano_input_size, *config.mano_hidden)
        layers: list[nn.Module] = []
        for w_in, w_out in zip(widths[:-1], widths[1:], strict=True):
            layers += [nn.Linear(w_in, w_out), make_activation(config.activation)]
        self.hidden = nn.Sequential(*layers)
        self.rot6d = config.pose_head == "rot6d"
        self.pose = nn.Linear(widths[-1], 16 * (6 if self.rot6d else 3))
        self.shape = nn.Linear(widths[-1], 10)

    def forward(self, features: torch.Tensor, joints: torch.Tensor | None = None) -> ManoParams:
        """Encoder features `(B, F)`, and the joints `(B, 21, 2)` in [0, 1] when it reads them."""
        if joints is not None:
            features = torch.cat((features, (joints - 0.5).flatten(1)), dim=1)
        h = self.hidden(features)
        pose, beta = self.pose(h), self.shape(h)
        b = pose.shape[0]
        if self.rot6d:
            rotations = rot6d_to_matrix(pose.reshape(b, 16, 6))
            theta = matrix_to_axis_angle(rotations).reshape(b, 48)
        else:
            theta = pose
            rotations = axis_angle_to_matrix(pose.reshape(b, 16, 3))
        return ManoParams(theta, beta, rotations)


class HandDecoder(nn.Module):
    """Hand RoI features → heatmaps, 2D joints and MANO parameters."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.heatmaps = HeatmapHead(config)
        self.encoder = MeshEncoder(config)
        self.mano = ManoRegressor(config)
        self.joint_input = config.mano_joint_input

    def forward(self, features: torch.Tensor):  # noqa: D102
        heatmaps, joints, hg_features = self.heatmaps(features)
        return heatmaps, joints, self.regress(heatmaps, joints, hg_features)

    def regress(self, heatmaps: torch.Tensor, joints: torch.Tensor, hg_features) -> ManoParams:
        """The mesh regressor alone, on what the heatmap head gave (what `--learn mesh` trains)."""
        return self.mano(self.encoder(heatmaps, hg_features), joints if self.joint_input else None)
