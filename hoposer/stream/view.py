"""The live view: the 2D overlay window (left) and the Open3D 3D window (right), on the main thread.

The pipeline runs in a worker thread and offers each result; the view draws only the newest one
at its own rate, so a slow window never slows inference. (The windows live on the main thread
because GUI toolkits such as Qt, which OpenCV may use, require it.) Both windows are the frame's
size, shrunk so that the two fit side by side on a 1920-pixel-wide screen. The 3D window starts
at the real camera's view (`hoposer.stream.scene3d`); C, S and O switch between the camera view,
a side view and free orbit. Without Open3D (an optional extra: `pip install "hoposer[view]"`),
the 3D panel is drawn by hoposer's CPU renderer inside the OpenCV window.
'q' or Esc in either window asks the pipeline to stop; 'm' shows or hides the mesh drawn on the
frame.
"""

import logging
import os
import sys

import cv2
import numpy as np

from hoposer.errors import HoposerError
from hoposer.stream.run import LatestResult

log = logging.getLogger(__name__)

_SCREEN_WIDTH = 1920  #: the two windows are shrunk to fit side by side on this width
_WINDOW = "hoposer"


def _has_display() -> bool:
    return sys.platform in ("win32", "darwin") or bool(
        os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
    )


def window_size(frame_size: tuple[int, int]) -> tuple[int, int]:
    """Each window's size: the frame's, shrunk until two fit side by side on the screen."""
    width, height = frame_size
    scale = min(1.0, (_SCREEN_WIDTH // 2 - 10) / width)
    return max(1, round(width * scale)), max(1, round(height * scale))


class Viewer:
    """Windows showing the newest result; `close()` ends the thread."""

    def __init__(
        self,
        camera_matrix: np.ndarray | None,
        frame_size: tuple[int, int] | None,
        hand_faces: np.ndarray,
        object_spec,
        transform=None,
        mesh: bool = True,
    ) -> None:
        """Windows open in `run`; `camera_matrix` and `frame_size` may be set before that.

        A live source opens last (after the model and windows are ready), so its intrinsics and
        size are given as `.K` and `.frame_size` once known.
        """
        if not _has_display():
            raise HoposerError("no display to show windows on: add --no-view (headless)")
        self.K = None if camera_matrix is None else np.asarray(camera_matrix, np.float64)
        self.frame_size = frame_size
        self.faces = np.asarray(hand_faces)
        self.object_spec = object_spec
        self.transform = transform
        self.mailbox = LatestResult()
        self.quit_requested = False
        self.mesh = mesh  #: draw the hand (and object) mesh on the frame; 'm' toggles it

    def offer(self, result, fps: float) -> None:
        """Hand over the newest result (never blocks)."""
        self.mailbox.put((result, fps))

    def close(self) -> None:
        """Stop drawing (`run` returns)."""
        self.mailbox.close()

    def _open_scene(self, size: tuple[int, int]):
        from hoposer.stream.scene3d import Open3DScene, Open3DUnavailableError

        try:
            return Open3DScene(
                self.K, self.frame_size, self.faces, self.object_spec, self.transform,
                visible=True, window_size=size, position=(size[0], 0),
            )  # fmt: skip
        except Open3DUnavailableError as err:
            log.warning("%s: the 3D panel is drawn by hoposer's CPU renderer instead", err)
            return None

    def run(self) -> None:
        """Draw the newest result until the mailbox is closed or the user quits (q, Esc)."""
        from hoposer.stream.annotate import annotate
        from hoposer.stream.scene3d import render_camera_view, scene_content

        size = window_size(self.frame_size)
        scene = self._open_scene(size)
        cv2.namedWindow(_WINDOW, cv2.WINDOW_AUTOSIZE | cv2.WINDOW_GUI_NORMAL)  # no Qt toolbar
        cv2.moveWindow(_WINDOW, 0, 0)
        mesh = (self.object_spec.vertices, self.object_spec.faces) if self.object_spec else None
        control_points = self.object_spec.control_points if self.object_spec else None
        version, side = 0, "right"
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
                    content = scene_content(result, self.faces, side)
                    side = content.side
                    if scene is not None:
                        scene.update(content)
                    else:
                        panel = render_camera_view(content, self.K, mesh)
                        image = np.concatenate([image, panel], axis=1)
                    if image.shape[0] != size[1]:
                        scaled = (round(image.shape[1] * size[1] / image.shape[0]), size[1])
                        image = cv2.resize(image, scaled, interpolation=cv2.INTER_AREA)
                    cv2.imshow(_WINDOW, image)
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
