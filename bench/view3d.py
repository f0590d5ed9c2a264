"""Per-frame cost of the 3D view: the live Open3D window, the headless panel, the CPU panel.

    python bench/view3d.py [--frames 60] [--size 640x480]

Each frame moves the stand-in hand and the example box and changes the image on the frustum, as
a stream does. "window" is `Open3DScene.update` + `poll` in a visible window (needs a display,
e.g. under `xvfb-run -a`; skipped without one); "panel" is `Panel.draw` (Open3D offscreen: EGL
without a display); "cpu panel" is `Panel.draw` with hoposer's CPU renderer. Prints a markdown
table of milliseconds per frame and the OpenGL renderer in use.
"""

import argparse
import os
import time

import numpy as np
import torch

from hoposer.geometry.camera import default_camera_matrix
from hoposer.geometry.control_points import object_mesh
from hoposer.model.hand import StandInHand
from hoposer.stream.example import EXAMPLE_OBJECT, render_example
from hoposer.stream.pipeline import ObjectSpec
from hoposer.stream.scene3d import Open3DScene, Open3DUnavailableError, Panel, SceneContent


def contents(frames: int, size: tuple[int, int]) -> list[SceneContent]:
    hand = StandInHand()
    images, truth = render_example(frames=min(frames, 30), size=size)
    theta = torch.zeros(frames, 48, dtype=torch.float64)
    theta[:, 0] = torch.linspace(-0.3, 0.3, frames)
    out = hand(theta, torch.zeros(frames, 10, dtype=torch.float64))
    result = []
    for i in range(frames):
        wrist = np.array([0.05 * np.sin(i / 10), 0.05, 0.5])
        t = truth[i % len(truth)]
        result.append(
            SceneContent(
                images[i % len(images)], i / 30.0, out.vertices[i].numpy() + wrist, hand.faces,
                "right", i % 10 != 0, (t.object_R, t.object_t),
            )
        )  # fmt: skip
    return result


def per_frame_ms(step, items) -> float:
    step(items[0])  # first frame: uploads, shader compilation
    tick = time.perf_counter()
    for item in items[1:]:
        step(item)
    return (time.perf_counter() - tick) * 1e3 / (len(items) - 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=60)
    parser.add_argument("--size", default="640x480")
    args = parser.parse_args()
    size = tuple(int(v) for v in args.size.split("x"))
    K = default_camera_matrix(*size)
    box = object_mesh(EXAMPLE_OBJECT)
    spec = ObjectSpec(EXAMPLE_OBJECT, box.control_points, box.vertices, box.faces)
    faces = StandInHand().faces
    items = contents(args.frames, size)
    rows = []
    if os.environ.get("DISPLAY"):
        try:
            scene = Open3DScene(K, size, faces, spec, visible=True)
        except Open3DUnavailableError as err:
            print(f"window: {err}")
        else:

            def show(content):
                scene.update(content)
                scene.poll()

            rows.append(("window (update + redraw)", per_frame_ms(show, items)))
            scene.close()
    panel = Panel(K, size, faces, spec)
    if panel.scene is not None:
        rows.append(("panel, Open3D offscreen (update + read back)", per_frame_ms(panel.draw, [
            _Result(c) for c in items])))  # fmt: skip
        panel.close()
    cpu = Panel(K, size, faces, spec, cpu_reason="measured without Open3D")
    rows.append(("panel, CPU renderer", per_frame_ms(cpu.draw, [_Result(c) for c in items])))
    print(f"{args.size}, {args.frames} frames, DISPLAY={os.environ.get('DISPLAY', 'none')}")
    print("\n| what | ms per frame |\n| --- | ---: |")
    for name, ms in rows:
        print(f"| {name} | {ms:.1f} |")


class _Result:
    """The parts of a `FrameResult` that `Panel.draw` reads, from a `SceneContent`."""

    def __init__(self, content: SceneContent) -> None:
        from types import SimpleNamespace

        from hoposer.stream.stabilizer import Verdict

        hand = SimpleNamespace(vertices=content.hand_vertices)
        self.detection = None
        self.verdict = Verdict(content.steady, False, 0, (), hand, {})
        R, t = content.object_pose
        obj = SimpleNamespace(success=True, R=R, t=t)
        self.pose = SimpleNamespace(object=obj)
        self.frame = SimpleNamespace(image=content.image, timestamp=content.time)


if __name__ == "__main__":
    main()
