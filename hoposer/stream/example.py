"""A rendered example clip: the stand-in hand presenting a box to the camera.

Used by the README's first command, by the tests and by the stream benchmark, so that the whole
pipeline (MediaPipe's real detector included) runs without a camera or a licensed data set. The
open hand faces the camera (the view MediaPipe's palm detector finds most reliably), drifts
slowly, turns a little and flexes its fingers; a box rests against the thumb. The ground truth
of every frame is returned for checking.
"""

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

from hoposer.errors import HoposerError
from hoposer.geometry.camera import default_camera_matrix
from hoposer.geometry.control_points import object_mesh
from hoposer.geometry.rotations import axis_angle_to_matrix, matrix_to_axis_angle
from hoposer.io import atomic_path
from hoposer.model.hand import StandInHand
from hoposer.render import Light, MeshInstance, render

EXAMPLE_OBJECT = "box:0.05x0.05x0.05"
#: The stand-in's frame (fingers −x, palm −y) turned so fingers point up, palm to the camera.
_FACING = np.array([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])


@dataclass(frozen=True)
class ExampleFrame:
    """Ground truth of one frame (camera frame, metres)."""

    joints: np.ndarray  #: (21, 3)
    object_R: np.ndarray
    object_t: np.ndarray


def render_example(
    frames: int = 90,
    size: tuple[int, int] = (640, 480),
    with_hand: bool = True,
    seed: int = 0,
) -> tuple[list[np.ndarray], list[ExampleFrame]]:
    """Render the clip: BGR images and per-frame ground truth."""
    width, height = size
    K = default_camera_matrix(width, height)  # what the stream assumes without camera info
    hand = StandInHand()
    box = object_mesh(EXAMPLE_OBJECT)
    rng = np.random.default_rng(seed)
    background = np.empty((height, width, 3), np.uint8)
    ramp = np.linspace(0, 1, height)[:, None, None]
    background[:] = (np.array([205, 208, 214]) * (1 - 0.25 * ramp)).astype(np.uint8)
    light = Light((0.2, -0.3, -1.0), 0.45, 0.6)
    images, truth = [], []
    for i in range(frames):
        phase = 2 * np.pi * i / max(frames, 1)
        turn = axis_angle_to_matrix(torch.tensor([0.15 * np.sin(phase), 0.35 * np.sin(phase), 0]))
        R = turn.numpy() @ _FACING
        theta = np.zeros(48)
        theta[:3] = matrix_to_axis_angle(torch.tensor(R)).numpy()
        curl = 0.25 * (1 - np.cos(2 * phase))
        for j in (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12):  # the four fingers' joints
            theta[3 * j + 2] = curl * (0.6 if j % 3 == 1 else 1.0)
        wrist = np.array([0.05 * np.sin(phase), 0.1 + 0.02 * np.cos(phase), 0.5])
        out = hand(torch.tensor(theta[None]), torch.zeros(1, 10, dtype=torch.float64))
        joints = out.joints[0].numpy() + wrist
        vertices = out.vertices[0].numpy() + wrist
        # The box rests against the thumb's base, on the camera side of the palm plane.
        object_t = joints[2] + R @ np.array([-0.02, -0.03, 0.04])
        object_R = R
        meshes = [MeshInstance(box.vertices @ object_R.T + object_t, box.faces, (0.3, 0.5, 0.9), 2)]
        if with_hand:
            meshes.append(MeshInstance(vertices, hand.faces, np.array([0.9, 0.72, 0.6]), 1))
        noise = rng.normal(0, 2.0, background.shape)
        bg = np.clip(background + noise, 0, 255).astype(np.uint8)
        rgb, _ = render(meshes, K, (width, height), background=bg, light=light)
        images.append(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
        truth.append(ExampleFrame(joints, object_R, object_t))
    return images, truth


def write_example(path: str | Path, frames: int = 90, with_hand: bool = True) -> Path:
    """Write the example clip as an mp4 (30 FPS), atomically."""
    path = Path(path)
    if path.suffix.lower() != ".mp4":
        raise HoposerError(f"{path}: the example clip is written as .mp4")
    images, _ = render_example(frames, with_hand=with_hand)
    height, width = images[0].shape[:2]
    with atomic_path(path) as tmp:
        video = tmp.with_suffix(".mp4")
        writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), 30.0, (width, height))
        for image in images:
            writer.write(image)
        writer.release()
        video.replace(tmp)
    return path
