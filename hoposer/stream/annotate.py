"""Drawing one `FrameResult`: the 2D overlay (the 3D panel is `hoposer.stream.scene3d`)."""

import numpy as np

from hoposer.stream.overlay import draw_box, draw_object_box, draw_skeleton, draw_status
from hoposer.stream.pipeline import FrameResult


def annotate(
    result: FrameResult,
    camera_matrix: np.ndarray,
    control_points: np.ndarray | None,
    fps: float | None = None,
) -> np.ndarray:
    """The frame (BGR) with skeleton, boxes, object box and a status band."""
    image = result.frame.image.copy()
    message = result.message
    stability = message["stability"]
    if result.detection is not None:
        draw_box(image, result.detection.box, (0, 255, 0))
    if result.object_box is not None:
        draw_box(image, result.object_box, (255, 160, 0))
    hand = result.verdict.hand if result.verdict is not None else None
    if hand is not None:
        draw_skeleton(image, hand.joints_2d, dim=stability["held"])
    if result.pose is not None and result.pose.object is not None and control_points is not None:
        o = result.pose.object
        if o.success:
            draw_object_box(image, control_points, o.R, o.t, camera_matrix)
    latency = message["latency_ms"]
    lines = [f"frame {message['frame_index']}"]
    if fps is not None:
        lines[0] += f"  {fps:.1f} FPS"
    if "engine" in latency:
        lines.append(f"engine {latency['engine']:.1f} ms  total {latency.get('total', 0):.1f} ms")
    if message["hand"] is None:
        lines.append("no hand")
    elif stability["stable"]:
        lines.append("stable")
    else:
        state = f"held {stability['age_frames']} frames" if stability["held"] else "unstable"
        lines.append(f"{state}: {', '.join(stability['flags'])}")
    draw_status(image, lines, warn=not stability["stable"])
    return image
