"""Drawing one `FrameResult`: the 2D overlay (the 3D panel is `hoposer.stream.scene3d`)."""

import numpy as np

from hoposer.frames.draw import (
    HELD_GREY,
    OBJECT_BLUE,
    SKIN,
    draw_axes,
    draw_box,
    draw_meshes,
    draw_object_box,
    draw_skeleton,
    draw_status,
)
from hoposer.render import MeshInstance
from hoposer.stream.pipeline import FrameResult

#: Hand box colour (BGR) by stability state.
_STATE_COLORS = {"stable": (0, 220, 0), "held": (0, 190, 255), "unstable": (60, 60, 255)}


def annotate(
    result: FrameResult,
    camera_matrix: np.ndarray,
    control_points: np.ndarray | None,
    fps: float | None = None,
    hand_faces: np.ndarray | None = None,
    object_mesh: tuple[np.ndarray, np.ndarray] | None = None,
) -> np.ndarray:
    """The frame (BGR) with what was estimated drawn on it, and a status band.

    With `hand_faces`, the published hand mesh is projected on the frame, shaded and
    semi-transparent (grey while a held pose is shown), and the found object's mesh with it
    (`object_mesh`: vertices, faces in the object frame); the skeleton is drawn over it. The
    object's 3D box and axes are drawn when its pose was found; the hand box's colour is the
    stability state (green stable, orange held, red unstable).
    """
    image = result.frame.image.copy()
    message = result.message
    stability = message["stability"]
    state = "stable" if stability["stable"] else ("held" if stability["held"] else "unstable")
    if result.object_box is not None:
        draw_box(image, result.object_box, (255, 160, 0))
    hand = result.verdict.hand if result.verdict is not None else None
    o = result.pose.object if result.pose is not None else None
    found = o is not None and o.success
    if hand_faces is not None:
        meshes = []
        if hand is not None and hand.vertices is not None and np.isfinite(hand.vertices).all():
            faces = hand_faces if message["hand"]["side"] == "right" else hand_faces[:, ::-1]
            color = HELD_GREY if stability["held"] else SKIN
            meshes.append(MeshInstance(hand.vertices, faces, color, 1))
        if found and object_mesh is not None:
            vertices, object_faces = object_mesh
            meshes.append(MeshInstance(vertices @ o.R.T + o.t, object_faces, OBJECT_BLUE, 2))
        if meshes:
            draw_meshes(image, meshes, camera_matrix)
    if result.detection is not None:
        draw_box(image, result.detection.box, _STATE_COLORS[state])
    if hand is not None:
        draw_skeleton(image, hand.joints_2d, dim=stability["held"])
    if found and control_points is not None:
        draw_object_box(image, control_points, o.R, o.t, camera_matrix)
        size = np.ptp(control_points[:8], axis=0).max()
        draw_axes(image, o.R, o.t, 0.75 * size, camera_matrix)
    latency = message["latency_ms"]
    lines = [f"frame {message['frame_index']}"]
    if fps is not None:
        lines[0] += f"  {fps:.1f} FPS"
    if "engine" in latency:
        lines.append(f"engine {latency['engine']:.1f} ms  total {latency.get('total', 0):.1f} ms")
    obj = message["object"]
    if obj is not None:
        if obj["found"]:
            z = obj["pose"]["position"][2]
            lines.append(f"{obj['name']}: found, {obj['inliers']} inliers, z {z:.2f} m")
        else:
            lines.append(f"{obj['name']}: not found ({obj['reason'].split(' (')[0]})")
    if message["hand"] is None:
        lines.append("no hand")
    elif stability["stable"]:
        lines.append("stable")
    else:
        held = f"held {stability['age_frames']} frames" if stability["held"] else "unstable"
        lines.append(f"{held}: {', '.join(stability['flags'])}")
    draw_status(image, lines, warn=not stability["stable"])
    return image
