"""The joint hand-object network of §4 (Figure 2): FPN encoder, RoIAlign, CR, two decoders."""

from typing import NamedTuple

import torch
from torch import nn
from torchvision.ops import roi_align

from hoposer.model.backbone import build_backbone
from hoposer.model.config import ModelConfig
from hoposer.model.context import ContextualReasoning
from hoposer.model.hand_decoder import HandDecoder
from hoposer.model.object_decoder import ObjectDecoder

_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)
P2_STRIDE = 4

#: What `HandObjectNet.hold` can train alone.
LEARN = ("all", "object", "mesh")


class RawOutputs(NamedTuple):
    """Everything the network predicts for a batch; the same for every backend.

    2D quantities are normalised to their box: (0, 0) top-left, (1, 1) bottom-right corner.
    """

    joints_2d: torch.Tensor  #: (B, 21, 2) hand joints in the hand box, hoposer's joint order
    theta: torch.Tensor  #: (B, 48) MANO pose, axis-angle, MANO joint order, global first
    beta: torch.Tensor  #: (B, 10) MANO shape
    object_points: torch.Tensor  #: (B, R, R, 21, 2) control-point proposals in the object box
    object_confidence: torch.Tensor  #: (B, R, R, 21) proposal confidences in (0, 1)


class TrainingOutputs(NamedTuple):
    """`RawOutputs` plus the intermediate tensors the losses need."""

    raw: RawOutputs
    heatmaps: torch.Tensor  #: (B, 21, R, R) spatial-softmax heatmaps
    rotations: torch.Tensor  #: (B, 16, 3, 3) θ as rotation matrices


def intersection_boxes(hand_boxes: torch.Tensor, object_boxes: torch.Tensor):
    """Intersection of hand and object boxes `(B, 4)` xyxy, and whether it is non-empty `(B,)`."""
    top_left = torch.maximum(hand_boxes[:, :2], object_boxes[:, :2])
    bottom_right = torch.minimum(hand_boxes[:, 2:], object_boxes[:, 2:])
    overlaps = ((bottom_right - top_left) > 0).all(dim=1)
    return torch.cat((top_left, bottom_right), dim=1), overlaps


class HandObjectNet(nn.Module):
    """Image + hand box + object box → `RawOutputs`.

    Inputs: `images (B, 3, S, S)` RGB in [0, 1] (S = `config.input_size`), `hand_boxes (B, 4)`
    and `object_boxes (B, 4)` as [x1, y1, x2, y2] in input pixels.
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        c = config.fpn_channels
        self.backbone = build_backbone(config)
        self.object_backbone = build_backbone(config) if config.object_trunk else None
        self.hand_decoder = HandDecoder(config)
        self.object_decoder = ObjectDecoder(config)

        def context() -> ContextualReasoning:
            return ContextualReasoning(
                c, config.context_depth, config.context_heads, config.context_mlp_ratio
            )

        query = config.context_query
        self.object_context = context() if query in ("object", "both") else None
        self.hand_context = context() if query in ("hand", "both") else None
        if config.input_normalization == "imagenet":
            mean, std = torch.tensor(_IMAGENET_MEAN), torch.tensor(_IMAGENET_STD)
        elif config.input_normalization == "tf_lite":
            mean, std = torch.full((3,), 127 / 255), torch.full((3,), 128 / 255)
        else:
            mean, std = torch.zeros(3), torch.ones(3)
        self.register_buffer("pixel_mean", mean.reshape(1, 3, 1, 1), persistent=False)
        self.register_buffer("pixel_std", std.reshape(1, 3, 1, 1), persistent=False)
        self.held: list[nn.Module] = []

    def hand_path(self) -> list[nn.Module]:
        """The modules the hand's outputs depend on: the shared trunk and the hand's own."""
        return [m for m in (self.backbone, self.hand_context, self.hand_decoder) if m is not None]

    def hold(self, learn: str) -> None:
        """Train one part alone: every module outside it keeps its weights.

        `learn` is one of `LEARN`: "all" holds nothing; "object" trains the object branch (its
        trunk, when it has one, context module and decoder), holding the hand's path; "mesh"
        trains the hand's mesh regressor (`MeshEncoder` and the θ/β head), holding everything
        else, so the 2D joints and the object keep their values. Held modules get no gradients
        and stay in eval mode (their BatchNorm statistics too).
        """
        if learn not in LEARN:
            raise ValueError(f"learn must be one of {LEARN}, got {learn!r}")
        object_branch = (self.object_backbone, self.object_context, self.object_decoder)
        held = {
            "all": [],
            "object": self.hand_path(),
            "mesh": [self.backbone, self.hand_context, self.hand_decoder.heatmaps, *object_branch],
        }[learn]
        self.held = [m for m in held if m is not None]
        for module in self.held:
            module.requires_grad_(False)
        self.train(self.training)

    def train(self, mode: bool = True):  # noqa: D102
        super().train(mode)
        for module in self.held:
            module.eval()
        return self

    def forward(
        self,
        images: torch.Tensor,
        hand_boxes: torch.Tensor,
        object_boxes: torch.Tensor,
        intermediates: bool = False,
    ) -> RawOutputs | TrainingOutputs:
        """Predict for a batch (see the class docstring for the inputs).

        With `intermediates`, return `TrainingOutputs` (heatmaps and rotation matrices for the
        losses) instead of `RawOutputs`.
        """
        normalized = (images - self.pixel_mean) / self.pixel_std
        p2 = self.backbone(normalized)
        hand = self._roi(p2, hand_boxes)
        if self.object_backbone is not None:
            # P2 of a (4·roi)² crop is roi × roi: the same grid as the pooled RoI.
            crops = self._roi(normalized, object_boxes, scale=P2_STRIDE, stride=1)
            obj = self.object_backbone(crops)
        else:
            obj = self._roi(p2, object_boxes)
        if self.object_context is not None or self.hand_context is not None:
            inter_boxes, overlaps = intersection_boxes(hand_boxes, object_boxes)
            # Disjoint boxes give no contact region: the context is zero, not a stray crop.
            inter = self._roi(p2, inter_boxes) * overlaps[:, None, None, None].to(p2.dtype)
            enhanced_hand = self.hand_context(hand, inter) if self.hand_context else hand
            if self.object_context is not None:
                obj = self.object_context(obj, inter)
            hand = enhanced_hand
        heatmaps, joints_2d, mano = self.hand_decoder(hand)
        grid = self.object_decoder(obj)
        raw = RawOutputs(joints_2d, mano.theta, mano.beta, grid.points, grid.confidence)
        return TrainingOutputs(raw, heatmaps, mano.rotations) if intermediates else raw

    def _roi(
        self, features: torch.Tensor, boxes: torch.Tensor, scale: int = 1, stride: int = P2_STRIDE
    ) -> torch.Tensor:
        """RoIAlign of `boxes` (input pixels) from `features` at `stride`: (scale·roi)² cells."""
        index = torch.arange(boxes.shape[0], device=boxes.device, dtype=boxes.dtype)[:, None]
        side = scale * self.config.roi_size
        return roi_align(
            features,
            torch.cat((index, boxes), dim=1),
            output_size=(side, side),
            spatial_scale=1.0 / stride,
            sampling_ratio=self.config.roi_sampling_ratio,
        )


def build_model(config: ModelConfig | str = "official") -> HandObjectNet:
    """A freshly initialised network for a config or preset name."""
    from hoposer.model.config import get_config

    return HandObjectNet(get_config(config) if isinstance(config, str) else config)
