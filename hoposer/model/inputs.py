"""The network's input contract, one for training, evaluation, pseudo-labels and the stream.

Frame → network input (`prepare`):

1. colour order: the network sees RGB. Frames read with OpenCV are BGR; callers convert once
   (`cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)`) and hand the RGB frame here.
2. geometry (`InputView`): optionally the mirror image (x → W − 1 − x, the array flipped
   left-right: how a left hand goes through the right-hand model), then the square `Crop`, warped
   to S × S in one bilinear warp with a black border. Boxes and the camera matrix go through the
   same map, so the network's input camera describes its input pixels exactly.
3. scaling (`network_image`): uint8 → float32 in [0, 1], channels first (NCHW for a batch). The
   network's own normalisation (ImageNet mean/std for pretrained backbones) stays inside the
   network (`HandObjectNet.pixel_mean`/`pixel_std`), so torch, ONNX Runtime and TensorRT all take
   this one tensor.

Network output → frame (`NetworkInput.to_frame`, `box_to_pixels`): box-normalised 2D joints and
object control-point proposals → network input pixels (through the boxes the network was given)
→ frame pixels (through the inverse crop, and the mirror). 3D results decoded with
`NetworkInput.camera_matrix` are in the network's camera frame: the frame's camera rotated by
`crop.roll` (rotated crops) and mirrored X → −X (mirrored views).

Training applies its augmentation between the warp and the scaling (colour jitter on the warped
uint8 crop), so it uses `Crop.warp` and `network_image` directly; its crop is the same `Crop`.
"""

from dataclasses import dataclass

import cv2
import numpy as np

from hoposer.errors import HoposerError
from hoposer.geometry.crop import Crop, crop_around


def network_image(pixels: np.ndarray) -> np.ndarray:
    """Warped uint8 RGB `(..., S, S, 3)` → the network's float32 `(..., 3, S, S)` in [0, 1]."""
    return np.ascontiguousarray(np.moveaxis(pixels, -1, -3), np.float32) / 255.0


def box_to_pixels(normalised: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """Box-normalised points `(B, ..., 2)` → pixels, given boxes `(B, 4)` as [x1, y1, x2, y2]."""
    boxes = np.asarray(boxes, dtype=np.float64)
    extra = (1,) * (normalised.ndim - 2)
    origin = boxes[:, :2].reshape(-1, *extra, 2)
    size = (boxes[:, 2:] - boxes[:, :2]).reshape(-1, *extra, 2)
    return origin + normalised.astype(np.float64) * size


def mirror_box(box: np.ndarray, width: int) -> np.ndarray:
    """A frame box `[x1, y1, x2, y2]` in the mirror image of a `width`-pixel-wide frame."""
    x1, y1, x2, y2 = np.asarray(box, np.float64)
    return np.array([width - 1 - x2, y1, width - 1 - x1, y2])


@dataclass(frozen=True)
class InputView:
    """Where the network's input lies in the frame: the frame, or its mirror image, cropped."""

    crop: Crop
    #: width of the frame when the crop is taken in its mirror image (x → W − 1 − x), else None
    mirror_width: int | None = None

    @classmethod
    def around(
        cls, boxes: list[np.ndarray], size: int, frame_size: tuple[int, int], mirrored=False
    ) -> "InputView":
        """The standard crop (`crop_around`) around frame `boxes`, in the mirror image if asked."""
        width = int(frame_size[0])
        if mirrored:
            boxes = [mirror_box(b, width) for b in boxes]
        return cls(crop_around(boxes, size, frame_size), width if mirrored else None)

    @property
    def mirrored(self) -> bool:  # noqa: D102
        return self.mirror_width is not None

    @property
    def size(self) -> int:  # noqa: D102
        return self.crop.size

    @property
    def affine(self) -> np.ndarray:
        """`(3, 3)` map from frame pixels to network input pixels."""
        if not self.mirrored:
            return self.crop.affine
        flip = np.array([[-1.0, 0.0, self.mirror_width - 1.0], [0, 1, 0], [0, 0, 1]])
        return self.crop.affine @ flip

    def with_crop(self, crop: Crop) -> "InputView":
        """The same frame (mirrored or not) seen through another crop (augmentation, TTA)."""
        return InputView(crop, self.mirror_width)

    def to_network(self, points: np.ndarray) -> np.ndarray:
        """Frame pixels `(..., 2)` → network input pixels."""
        if not self.mirrored:
            return self.crop.apply(points)
        a = self.affine
        return np.asarray(points, np.float64) @ a[:2, :2].T + a[:2, 2]

    def to_frame(self, points: np.ndarray) -> np.ndarray:
        """Network input pixels `(..., 2)` → frame pixels."""
        if not self.mirrored:
            return self.crop.invert(points)
        a = np.linalg.inv(self.affine)
        return np.asarray(points, np.float64) @ a[:2, :2].T + a[:2, 2]

    def box(self, box: np.ndarray) -> np.ndarray:
        """A frame box → the axis-aligned network input box around its four mapped corners."""
        return self.crop.apply_box(mirror_box(box, self.mirror_width) if self.mirrored else box)

    def camera(self, camera_matrix: np.ndarray) -> np.ndarray:
        """The frame's intrinsics → those of the network input (for the rolled, mirrored scene).

        The mirror image is the image of the mirrored scene (X → −X) through a camera with
        cx → W − 1 − cx and the skew negated.
        """
        K = np.asarray(camera_matrix, np.float64)
        if self.mirrored:
            K = K.copy()
            K[0, 1], K[0, 2] = -K[0, 1], self.mirror_width - 1.0 - K[0, 2]
        return self.crop.camera(K)

    def warp(self, frame_rgb: np.ndarray) -> np.ndarray:
        """The frame's `(H, W, 3)` uint8 pixels that the network sees, `(S, S, 3)`."""
        if not self.mirrored:
            return self.crop.warp(frame_rgb)
        return cv2.warpAffine(
            frame_rgb,
            self.affine[:2],
            (self.size, self.size),
            flags=cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_CONSTANT,
            borderValue=(0, 0, 0),
        )


@dataclass(frozen=True)
class NetworkInput:
    """One frame prepared for the network, and the way back to the frame."""

    image: np.ndarray  #: (3, S, S) float32 RGB in [0, 1]
    hand_box: np.ndarray  #: (4,) float32, network input pixels
    object_box: np.ndarray  #: (4,) float32, network input pixels
    view: InputView
    camera_matrix: np.ndarray | None  #: (3, 3) of the network input, when the frame's was given

    def to_frame(self, normalised: np.ndarray, box: str = "hand") -> np.ndarray:
        """Box-normalised network output points `(..., 2)` → frame pixels.

        2D joints are normalised to the hand box (`box="hand"`), object control-point proposals
        `(R, R, 21, 2)` to the object box (`box="object"`).
        """
        reference = {"hand": self.hand_box, "object": self.object_box}[box]
        normalised = np.asarray(normalised)
        pixels = box_to_pixels(normalised[None], reference[None])[0]
        return self.view.to_frame(pixels)


def prepare(
    frame_rgb: np.ndarray,
    view: InputView,
    hand_box: np.ndarray,
    object_box: np.ndarray | None = None,
    camera_matrix: np.ndarray | None = None,
) -> NetworkInput:
    """A frame, its hand (and object) box in frame pixels → the network's input.

    Without an object box the network is given the hand box in its place (the object head's
    output is then meaningless and not decoded).
    """
    if frame_rgb.ndim != 3 or frame_rgb.shape[2] != 3 or frame_rgb.dtype != np.uint8:
        raise HoposerError(
            f"the network takes an (H, W, 3) uint8 RGB frame, not {frame_rgb.dtype} "
            f"{frame_rgb.shape}: convert it with cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)"
        )
    network_hand = view.box(hand_box).astype(np.float32)
    network_object = (
        view.box(object_box).astype(np.float32) if object_box is not None else network_hand.copy()
    )
    return NetworkInput(
        image=network_image(view.warp(frame_rgb)),
        hand_box=network_hand,
        object_box=network_object,
        view=view,
        camera_matrix=view.camera(camera_matrix) if camera_matrix is not None else None,
    )


def stack(inputs: list[NetworkInput]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`(images (B, 3, S, S), hand_boxes (B, 4), object_boxes (B, 4))` for a backend's `run`."""
    return (
        np.stack([i.image for i in inputs]),
        np.stack([i.hand_box for i in inputs]),
        np.stack([i.object_box for i in inputs]),
    )
