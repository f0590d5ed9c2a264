"""The live view: an Open3D 3D window and an OpenCV 2D overlay window, on the main thread.

The pipeline runs in a worker thread and offers each result; the view draws only the newest one
at its own rate, so a slow window never slows inference. (The windows live on the main thread
because GUI toolkits such as Qt, which OpenCV may use, require it.) Without Open3D (an optional
extra: `pip install "hoposer[view]"`), the 3D panel is drawn by hoposer's CPU renderer inside the
OpenCV window.
'q' or Esc in either window asks the pipeline to stop; 'm' shows or hides the mesh drawn on the
frame.
"""

import logging
import os
import sys

import numpy as np

from hoposer.errors import HoposerError
from hoposer.stream.run import LatestResult

log = logging.getLogger(__name__)


def _has_display() -> bool:
    return sys.platform in ("win32", "darwin") or bool(
        os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
    )


class Viewer:
    """Windows showing the newest result; `close()` ends the thread."""

    def __init__(
        self,
        camera_matrix: np.ndarray | None,
        hand_faces: np.ndarray,
        object_spec,
        mesh: bool = True,
    ) -> None:
        """`camera_matrix` may be set later (`.K`), once the source is open, before `run`."""
        if not _has_display():
            raise HoposerError("no display to show windows on: add --no-view (headless)")
        try:
            import open3d  # noqa: F401

            self.open3d = True
        except ImportError:
            log.warning('Open3D not installed (pip install "hoposer[view]"): 3D panel in OpenCV')
            self.open3d = False
        self.K = camera_matrix
        self.faces = np.asarray(hand_faces)
        self.object_spec = object_spec
        self.mailbox = LatestResult()
        self.quit_requested = False
        self.mesh = mesh  #: draw the hand (and object) mesh on the frame; 'm' toggles it

    def offer(self, result, fps: float) -> None:
        """Hand over the newest result (never blocks)."""
        self.mailbox.put((result, fps))

    def close(self) -> None:
        """Stop drawing (`run` returns)."""
        self.mailbox.close()

    def run(self) -> None:
        """Draw the newest result until the mailbox is closed or the user quits (q, Esc)."""
        import cv2

        from hoposer.stream.annotate import annotate, render_panel

        scene = _Open3DScene(self.faces, self.object_spec) if self.open3d else None
        version = 0
        mesh = (self.object_spec.vertices, self.object_spec.faces) if self.object_spec else None
        control_points = self.object_spec.control_points if self.object_spec else None
        try:
            while not self.mailbox.closed and not self.quit_requested:
                got = self.mailbox.take(version, timeout=0.05)
                if got is not None:
                    version, (result, fps) = got
                    image = annotate(
                        result,
                        self.K,
                        control_points,
                        fps,
                        hand_faces=self.faces if self.mesh else None,
                        object_mesh=mesh,
                    )
                    if scene is not None:
                        scene.update(result)
                    else:
                        side = render_panel(result, self.faces, mesh, (image.shape[0],) * 2)
                        image = np.concatenate([image, side], axis=1)
                    cv2.imshow("hoposer", image)
                if scene is not None and not scene.poll():
                    self.quit_requested = True
                key = cv2.waitKey(1) & 0xFF
                if key in (ord("q"), 27):
                    self.quit_requested = True
                elif key == ord("m"):
                    self.mesh = not self.mesh
        finally:
            if scene is not None:
                scene.close()
            cv2.destroyAllWindows()


class _Open3DScene:
    """Hand mesh, object mesh and camera frustum in an Open3D window (camera frame, metres)."""

    def __init__(self, faces: np.ndarray, object_spec) -> None:
        import open3d as o3d

        self.o3d = o3d
        self.vis = o3d.visualization.Visualizer()
        self.vis.create_window("hoposer 3D", 640, 480)
        self.hand = o3d.geometry.TriangleMesh()
        self.faces = faces
        self.hand.paint_uniform_color([0.93, 0.75, 0.62])
        self.object = None
        self.object_vertices = None
        if object_spec is not None:
            self.object_vertices = np.asarray(object_spec.vertices)
            self.object = o3d.geometry.TriangleMesh(
                o3d.utility.Vector3dVector(self.object_vertices),
                o3d.utility.Vector3iVector(np.asarray(object_spec.faces)),
            )
            self.object.paint_uniform_color([0.35, 0.55, 0.95])
        self.frame = o3d.geometry.TriangleMesh.create_coordinate_frame(size=0.05)
        self.vis.add_geometry(self.frame)
        self._added = False

    def update(self, result) -> None:
        o3d = self.o3d
        if result.pose is None:
            return
        hand = result.pose.hand
        faces = (
            self.faces
            if result.detection is None or result.detection.side == "right"
            else (self.faces[:, ::-1])
        )
        self.hand.vertices = o3d.utility.Vector3dVector(hand.vertices)
        self.hand.triangles = o3d.utility.Vector3iVector(faces)
        self.hand.compute_vertex_normals()
        o = result.pose.object
        if self.object is not None and o is not None and o.success:
            self.object.vertices = o3d.utility.Vector3dVector(self.object_vertices @ o.R.T + o.t)
            self.object.compute_vertex_normals()
        if not self._added:
            self.vis.add_geometry(self.hand)
            if self.object is not None:
                self.vis.add_geometry(self.object)
            self._added = True
        else:
            self.vis.update_geometry(self.hand)
            if self.object is not None:
                self.vis.update_geometry(self.object)

    def poll(self) -> bool:
        """Process window events; False once the window was closed."""
        alive = self.vis.poll_events()
        self.vis.update_renderer()
        return bool(alive)

    def close(self) -> None:
        self.vis.destroy_window()
