"""Drawing one `FrameResult`: the 2D overlay and, optionally, a rendered 3D panel beside it."""

import numpy as np

from hoposer.render import Light, MeshInstance, render
from hoposer.stream.overlay import draw_box, draw_object_box, draw_skeleton, draw_status
from hoposer.stream.pipeline import FrameResult

_SKIN = np.array([0.93, 0.75, 0.62])
_OBJECT = np.array([0.35, 0.55, 0.95])


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


def render_panel(
    result: FrameResult,
    hand_faces: np.ndarray,
    object_mesh: tuple[np.ndarray, np.ndarray] | None,
    size: tuple[int, int],
) -> np.ndarray:
    """A side view (BGR) of the hand mesh and the object, looking at the hand from its right."""
    width, height = size
    canvas = np.full((height, width, 3), 40, np.uint8)
    if result.pose is None:
        return canvas
    hand = result.pose.hand
    center = hand.joints.mean(axis=0)
    # A camera 0.5 m from the hand, rotated 90° about the vertical axis from the real one.
    R_view = np.array([[0.0, 0.0, -1.0], [0.0, 1.0, 0.0], [1.0, 0.0, 0.0]])
    eye = np.array([0.0, 0.0, 0.5])

    def view(points: np.ndarray) -> np.ndarray:
        return (points - center) @ R_view.T + eye

    faces = (
        hand_faces
        if result.detection is None or result.detection.side == "right"
        else (hand_faces[:, ::-1])
    )
    meshes = [MeshInstance(view(hand.vertices), faces, _SKIN, 1)]
    o = result.pose.object
    if object_mesh is not None and o is not None and o.success:
        vertices, object_faces = object_mesh
        meshes.append(MeshInstance(view(vertices @ o.R.T + o.t), object_faces, _OBJECT, 2))
    f = 1.2 * min(width, height)
    K = np.array([[f, 0, width / 2], [0, f, height / 2], [0, 0, 1.0]])
    rgb, _ = render(meshes, K, (width, height), background=canvas, light=Light(), supersample=1)
    return rgb[..., ::-1].copy()
