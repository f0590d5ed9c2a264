"""The 3D scene of the live view and of `video --panel`, drawn by Open3D or by the CPU renderer.

The scene lives in the camera's optical frame (x right, y down, z forward, metres), which is the
frame every pose arrives in, so the default view is the real camera itself: Open3D's view is set
from the intrinsics (`convert_from_pinhole_camera_parameters`) with an identity pose, and the
rendered hand lands on the hand in the image. The camera's frustum ends in a plane textured with
the current frame, behind the hand, so the camera view shows the mesh over the picture and the
other views show where the camera is.

Views: `camera` (the real camera), `side` (from the camera's right and above, following the
hand) and `orbit` (free mouse control; the point it orbits follows the hand). The followed point
is the centre of the hand's mesh (the object's centre while no hand is shown), smoothed over
time. Dragging or
zooming in the camera or side view switches to orbit. Keys C, S, O choose a view.

Only the legacy `open3d.visualization.Visualizer` is used: it renders through GLX, or through EGL
without a display (`visible=False`), in software on a CPU-only machine. Open3D's newer
`OffscreenRenderer` needs a GPU-backed Filament and hung on a CPU-only machine.

Colours: skin while the published hand is stable, amber while it is held or unstable; the object
mesh and its axes appear only while its pose is accepted.
"""

import logging
from dataclasses import dataclass

import cv2
import numpy as np

from hoposer.render import Light, MeshInstance, render

log = logging.getLogger(__name__)

SKIN = np.array([0.93, 0.75, 0.62])
AMBER = np.array([1.0, 0.6, 0.12])
OBJECT = np.array([0.35, 0.55, 0.95])
_FRUSTUM = np.array([0.75, 0.75, 0.8])
_GRID = np.array([0.42, 0.42, 0.46])
_BACKGROUND = np.array([0.12, 0.12, 0.14])
VIEWS = ("camera", "side", "orbit")
_SIDE_DISTANCE = 0.6  #: metres from the followed point in the side view
_FOLLOW_SECONDS = 0.25  #: time constant of the smoothing of the followed point
_TEXTURE_WIDTH = 640  #: wider frames are shrunk to this width for the image plane
_GRID_SIZE, _GRID_STEP = 2.0, 0.1  #: metres
#: Open3D's legacy lights sum to more than 1 on surfaces facing the viewer, which washes colours
#: out to white; darker vertex colours keep the hue.
_LIT = 0.7


class Open3DUnavailableError(RuntimeError):
    """Open3D is missing or cannot open an OpenGL context here."""


@dataclass(frozen=True)
class SceneContent:
    """What one `FrameResult` puts in the scene (camera frame, metres)."""

    image: np.ndarray  #: (H, W, 3) uint8 BGR: the frame
    time: float  #: capture time, seconds (perf_counter)
    hand_vertices: np.ndarray | None  #: (V, 3) the published hand, None without one
    hand_faces: np.ndarray  #: (F, 3) wound for the hand's side
    side: str  #: "right" or "left"
    steady: bool  #: the published hand is this frame's and passed every check
    object_pose: tuple[np.ndarray, np.ndarray] | None  #: (R, t), only when accepted


def scene_content(result, hand_faces: np.ndarray, side: str = "right") -> SceneContent:
    """The hand the stream publishes (the stabilizer's) and the object pose, when accepted.

    `side` is used when the frame has no detection (a held hand keeps its side).
    """
    if result.detection is not None:
        side = result.detection.side
    faces = np.asarray(hand_faces) if side == "right" else np.asarray(hand_faces)[:, ::-1]
    verdict = result.verdict
    hand = verdict.hand if verdict is not None else None
    vertices = None
    if hand is not None and np.isfinite(hand.vertices).all():
        vertices = np.asarray(hand.vertices, np.float64)
    pose = None
    o = result.pose.object if result.pose is not None else None
    if o is not None and o.success and np.isfinite(o.R).all() and np.isfinite(o.t).all():
        pose = (np.asarray(o.R, np.float64), np.asarray(o.t, np.float64))
    steady = bool(verdict is not None and verdict.stable)
    frame = result.frame
    return SceneContent(frame.image, frame.clock, vertices, faces, side, steady, pose)


def hand_color(content: SceneContent) -> np.ndarray:
    """Skin while stable, amber while held or unstable."""
    return SKIN if content.steady else AMBER


def look_at(eye: np.ndarray, target: np.ndarray, up: np.ndarray) -> np.ndarray:
    """`(4, 4)` world→camera transform of an OpenCV-convention camera at `eye` facing `target`.

    `up` is the direction that appears upward in the image (the camera's −y).
    """
    z = np.asarray(target, np.float64) - eye
    z /= np.linalg.norm(z)
    x = np.cross(-np.asarray(up, np.float64), z)
    x /= np.linalg.norm(x)
    y = np.cross(z, x)
    T = np.eye(4)
    T[:3, :3] = np.stack([x, y, z])
    T[:3, 3] = -T[:3, :3] @ eye
    return T


class _Frame:
    """Where the ground is: the robot base's z = 0 plane, or a plane below the camera."""

    def __init__(self, transform) -> None:
        self.has_base = transform is not None and transform.parent != transform.child
        if self.has_base:
            # transform: camera → base; the base in the camera frame is its inverse.
            self.base_R = transform.rotation.T
            self.base_t = -self.base_R @ transform.translation
            self.up = self.base_R[:, 2]  # the base's z axis, in the camera frame
        else:
            self.base_R, self.base_t = np.eye(3), np.zeros(3)
            self.up = np.array([0.0, -1.0, 0.0])

    def ground_grid(self) -> tuple[np.ndarray, np.ndarray]:
        """Grid line end points `(L, 2, 3)` in the camera frame."""
        half = _GRID_SIZE / 2
        ticks = np.arange(-half, half + 1e-9, _GRID_STEP)
        lines = [((t, -half), (t, half)) for t in ticks] + [((-half, t), (half, t)) for t in ticks]
        uv = np.array(lines, np.float64)  # (L, 2, 2) in the plane
        if self.has_base:
            # Centred under the point 0.6 m in front of the camera, on the base's floor.
            ahead = self.base_R.T @ (np.array([0, 0, 0.6]) - self.base_t)
            plane = np.concatenate([uv + ahead[:2], np.zeros(uv.shape[:2] + (1,))], axis=2)
            points = plane @ self.base_R.T + self.base_t
        else:
            # No extrinsics: a floor 0.4 m below the optical centre, from the camera forward.
            x, z = uv[..., 0], uv[..., 1] + half
            points = np.stack([x, np.full_like(x, 0.4), z], axis=2)
        return points, np.array([[2 * i, 2 * i + 1] for i in range(len(lines))])

    def side_view(self, target: np.ndarray) -> np.ndarray:
        """World→camera transform looking at `target` from the camera's right, front and above.

        From there the hand, the object and the frame on the image plane behind them are all in
        view.
        """
        up = self.up
        right = np.array([1.0, 0.0, 0.0]) - up[0] * up
        right /= np.linalg.norm(right)
        toward_camera = np.array([0.0, 0.0, -1.0]) - (-up[2]) * up
        toward_camera /= max(np.linalg.norm(toward_camera), 1e-9)
        direction = 0.7 * right + 0.6 * toward_camera + 0.4 * up
        eye = target + _SIDE_DISTANCE * direction / np.linalg.norm(direction)
        return look_at(eye, target, up)


def pixel_rays(K: np.ndarray, pixels: np.ndarray) -> np.ndarray:
    """`(N, 3)` camera-frame points at depth 1 that project to `pixels` `(N, 2)`."""
    fx, s, cx, fy, cy = K[0, 0], K[0, 1], K[0, 2], K[1, 1], K[1, 2]
    y = (pixels[:, 1] - cy) / fy
    x = (pixels[:, 0] - cx - s * y) / fx
    return np.stack([x, y, np.ones(len(pixels))], axis=1)


def image_plane_corners(K: np.ndarray, size: tuple[int, int], depth: float) -> np.ndarray:
    """`(4, 3)` camera-frame corners of the image at `depth` (pixel edges, not centres).

    In the order top-left, top-right, bottom-right, bottom-left.
    """
    width, height = size
    pixels = np.array([[-0.5, -0.5], [width - 0.5, -0.5], [width - 0.5, height - 0.5],
                       [-0.5, height - 0.5]])  # fmt: skip
    return pixel_rays(K, pixels) * depth


class Open3DScene:
    """The scene in a legacy Open3D window (`visible`) or an offscreen one (`video --panel`).

    Args:
        camera_matrix: `(3, 3)` intrinsics of the frames.
        frame_size: `(width, height)` of the frames.
        hand_faces: `(F, 3)` the hand model's triangles (right hand).
        object_spec: the object (`ObjectSpec`) or None.
        transform: camera → robot base (`--extrinsics`), or None.
        visible: a window on the display (with keys), or an offscreen buffer.
        window_size: `(width, height)` to render at; the frame size if None.
        position: the window's `(left, top)` on the screen.
    """

    def __init__(
        self,
        camera_matrix: np.ndarray,
        frame_size: tuple[int, int],
        hand_faces: np.ndarray,
        object_spec=None,
        transform=None,
        visible: bool = True,
        window_size: tuple[int, int] | None = None,
        position: tuple[int, int] = (50, 50),
    ) -> None:
        try:
            import open3d as o3d
        except ImportError as err:
            message = 'Open3D is not installed (pip install "hoposer[view]")'
            raise Open3DUnavailableError(message) from err
        o3d.utility.set_verbosity_level(o3d.utility.VerbosityLevel.Error)
        self.o3d = o3d
        self.K = np.asarray(camera_matrix, np.float64)
        self.frame_size = frame_size
        self.faces = np.asarray(hand_faces)
        width, height = window_size or frame_size
        if visible:
            self.vis = o3d.visualization.VisualizerWithKeyCallback()
            for key, view in (("C", "camera"), ("S", "side"), ("O", "orbit")):
                self.vis.register_key_callback(ord(key), self._key(view))
        else:
            self.vis = o3d.visualization.Visualizer()
        if not self.vis.create_window("hoposer 3D", width, height, *position, visible=visible):
            raise Open3DUnavailableError("Open3D could not open an OpenGL window (no GLX or EGL)")
        self.visible = visible
        option = self.vis.get_render_option()
        option.background_color = _BACKGROUND
        option.mesh_show_back_face = True  # the image plane seen from behind
        option.line_width = 1.0
        self.frame = _Frame(transform)
        self.view = "camera"
        self._last_extrinsic: np.ndarray | None = None
        self._lookat: np.ndarray | None = None
        self._followed: np.ndarray | None = None  # the hand's centre, smoothed
        self._follow_origin: np.ndarray | None = None  # the followed point the orbit last saw
        self._time: float | None = None
        self._side = "right"
        self._shown: set[str] = set()
        self._build(object_spec)
        control = self.vis.get_view_control()
        control.set_constant_z_near(0.005)
        control.set_constant_z_far(100.0)
        self._set_view(None)

    # --- scene content ------------------------------------------------------------------------

    def _build(self, object_spec) -> None:
        o3d = self.o3d
        points, lines = self.frame.ground_grid()
        # The grid goes in first and alone sets Open3D's bounding box, so distances are known.
        self.grid = o3d.geometry.LineSet(
            o3d.utility.Vector3dVector(points.reshape(-1, 3)), o3d.utility.Vector2iVector(lines)
        )
        self.grid.paint_uniform_color(_GRID)
        self.vis.add_geometry(self.grid, reset_bounding_box=True)
        self._shown.add("grid")
        self.extent = float(np.max(points.reshape(-1, 3).max(0) - points.reshape(-1, 3).min(0)))
        self.frustum = o3d.geometry.LineSet()
        self.image_plane = o3d.geometry.TriangleMesh()
        self.image_plane.triangles = o3d.utility.Vector3iVector(np.array([[0, 2, 1], [0, 3, 2]]))
        uv = np.array([[0, 0], [1, 0], [1, 1], [0, 1]], np.float64)
        self.image_plane.triangle_uvs = o3d.utility.Vector2dVector(uv[[0, 2, 1, 0, 3, 2]])
        self.image_plane.triangle_material_ids = o3d.utility.IntVector([0, 0])
        self._plane_depth = 1.0
        self._place_camera(np.zeros((2, 2, 3), np.uint8))
        self._show("frustum", self.frustum)
        self._show("image", self.image_plane)
        if self.frame.has_base:
            base = o3d.geometry.TriangleMesh.create_coordinate_frame(size=0.15)
            base.rotate(self.frame.base_R, center=np.zeros(3))
            base.translate(self.frame.base_t)
            self._show("base", base)
        self.hand = o3d.geometry.TriangleMesh()
        self.object = self.object_axes = None
        if object_spec is not None:
            self.object_vertices = np.asarray(object_spec.vertices, np.float64)
            self.object = o3d.geometry.TriangleMesh(
                o3d.utility.Vector3dVector(self.object_vertices),
                o3d.utility.Vector3iVector(np.asarray(object_spec.faces)),
            )
            extent = np.ptp(self.object_vertices, axis=0).max()
            axes = o3d.geometry.TriangleMesh.create_coordinate_frame(size=1.2 * extent)
            self.axes_vertices = np.asarray(axes.vertices).copy()
            self.object_axes = axes

    def _show(self, name: str, geometry, visible: bool = True, changed: bool = True) -> None:
        """Add, update or remove a geometry (removed geometries cost no drawing)."""
        if visible and name not in self._shown:
            self.vis.add_geometry(geometry, reset_bounding_box=False)
            self._shown.add(name)
        elif visible and changed:
            self.vis.update_geometry(geometry)
        elif name in self._shown:
            self.vis.remove_geometry(geometry, reset_bounding_box=False)
            self._shown.discard(name)

    def _place_camera(self, image: np.ndarray) -> None:
        """The frustum and the image plane at `self._plane_depth`."""
        o3d = self.o3d
        corners = image_plane_corners(self.K, self.frame_size, self._plane_depth)
        points = np.concatenate([np.zeros((1, 3)), corners])
        edges = np.array([[0, 1], [0, 2], [0, 3], [0, 4], [1, 2], [2, 3], [3, 4], [4, 1]])
        self.frustum.points = o3d.utility.Vector3dVector(points)
        self.frustum.lines = o3d.utility.Vector2iVector(edges)
        self.frustum.paint_uniform_color(_FRUSTUM)
        # Without normals the textured plane is drawn unlit: the frame's own colours.
        self.image_plane.vertices = o3d.utility.Vector3dVector(corners)
        rgb = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
        if rgb.shape[1] > _TEXTURE_WIDTH:
            height = round(rgb.shape[0] * _TEXTURE_WIDTH / rgb.shape[1])
            rgb = cv2.resize(rgb, (_TEXTURE_WIDTH, height), interpolation=cv2.INTER_AREA)
        self.image_plane.textures = [o3d.geometry.Image(np.ascontiguousarray(rgb))]

    def update(self, content: SceneContent) -> None:
        """Show one frame's content and move the view (camera, side or orbit)."""
        o3d = self.o3d
        centre = None
        if content.hand_vertices is not None:
            v = content.hand_vertices
            self.hand.vertices = o3d.utility.Vector3dVector(v)
            self.hand.triangles = o3d.utility.Vector3iVector(content.hand_faces)
            # Colours after the vertices: setting vertices drops a mismatched colour array.
            colors = np.broadcast_to(_LIT * hand_color(content), v.shape)
            self.hand.vertex_colors = o3d.utility.Vector3dVector(np.ascontiguousarray(colors))
            self.hand.compute_vertex_normals()
            centre = v.mean(axis=0)
        self._show("hand", self.hand, content.hand_vertices is not None)
        if self.object is not None:
            accepted = content.object_pose is not None
            if accepted:
                R, t = content.object_pose
                self.object.vertices = o3d.utility.Vector3dVector(self.object_vertices @ R.T + t)
                self.object.paint_uniform_color(_LIT * OBJECT)
                self.object.compute_vertex_normals()
                self.object_axes.vertices = o3d.utility.Vector3dVector(self.axes_vertices @ R.T + t)
                if centre is None:
                    centre = t
            self._show("object", self.object, accepted)
            self._show("object_axes", self.object_axes, accepted)
        self._follow(centre, content.time)
        if self._followed is not None:
            # The image plane stays behind the hand so the camera view shows the mesh over it.
            self._plane_depth = float(np.clip(1.6 * self._followed[2], 0.3, 20.0))
        self._place_camera(content.image)
        self._show("frustum", self.frustum)
        self._show("image", self.image_plane)
        self._set_view(self._followed)
        # The floor would only cut into the bottom of the frame in the camera view.
        self._show("grid", self.grid, self.view != "camera", changed=False)

    def _follow(self, point: np.ndarray | None, time: float) -> None:
        """Exponential smoothing of the followed point in time (frames may arrive unevenly)."""
        if point is None or not np.isfinite(point).all():
            return
        if self._followed is None or self._time is None or time <= self._time:
            self._followed = point.copy()
        else:
            alpha = 1.0 - np.exp(-(time - self._time) / _FOLLOW_SECONDS)
            self._followed = self._followed + alpha * (point - self._followed)
        self._time = time

    # --- views --------------------------------------------------------------------------------

    def _key(self, view: str):
        def callback(_vis) -> bool:
            self.set_view(view)
            return True

        return callback

    def set_view(self, view: str) -> None:
        """Switch to the camera, side or orbit view."""
        if view not in VIEWS:
            raise ValueError(f"unknown view {view!r}: one of {VIEWS}")
        if view != self.view:
            log.info("3D view: %s (keys: C camera, S side, O orbit)", view)
        self.view = view
        self._set_view(self._followed)
        self._show("grid", self.grid, self.view != "camera", changed=False)

    def _pinhole(self, extrinsic: np.ndarray):
        """Open3D camera parameters of the frame's intrinsics scaled to the window."""
        o3d = self.o3d
        control = self.vis.get_view_control()
        current = control.convert_to_pinhole_camera_parameters().intrinsic
        width, height = current.width, current.height
        sx, sy = width / self.frame_size[0], height / self.frame_size[1]
        params = o3d.camera.PinholeCameraParameters()
        # The legacy view's principal point is always the window's centre. An off-centre one
        # shifts every projected point by the same pixels, so the hand stays on the image plane
        # (built with the true K); only a strip of the plane's edge is cut or left uncovered.
        params.intrinsic = o3d.camera.PinholeCameraIntrinsic(
            width, height, self.K[0, 0] * sx, self.K[1, 1] * sy, width / 2 - 0.5, height / 2 - 0.5
        )
        params.extrinsic = extrinsic
        return params

    def _user_moved_view(self) -> bool:
        if self._last_extrinsic is None:
            return False
        control = self.vis.get_view_control()
        now = control.convert_to_pinhole_camera_parameters().extrinsic
        return not np.allclose(now, self._last_extrinsic, atol=1e-6)

    def _set_view(self, target: np.ndarray | None) -> None:
        control = self.vis.get_view_control()
        if self.view != "orbit" and self._user_moved_view():
            self.view = "orbit"
            log.info("3D view: orbit (keys: C camera, S side, O orbit)")
        depth = float(target[2]) if target is not None else 0.5
        if self.view == "camera":
            control.convert_from_pinhole_camera_parameters(self._pinhole(np.eye(4)), True)
            # Orbit about the point on the optical axis at the hand's depth (set by distance).
            self._orbit_about(np.array([0.0, 0.0, depth]), depth)
        elif self.view == "side" and target is not None:
            control.convert_from_pinhole_camera_parameters(
                self._pinhole(self.frame.side_view(target)), True
            )
            self._orbit_about(target, _SIDE_DISTANCE)
        elif self.view == "orbit" and target is not None and self._follow_origin is not None:
            params = control.convert_to_pinhole_camera_parameters()
            R, t = params.extrinsic[:3, :3], params.extrinsic[:3, 3]
            eye, front = -R.T @ t, -R[2]
            # The orbited point moved with the user's pans; keep its distance, follow the hand.
            lookat = eye - front * float((eye - self._lookat) @ front)
            control.set_lookat(lookat + (target - self._follow_origin))
            self._lookat = lookat + (target - self._follow_origin)
        if target is not None:
            self._follow_origin = target.copy()
        self._last_extrinsic = control.convert_to_pinhole_camera_parameters().extrinsic.copy()

    def _orbit_about(self, point: np.ndarray, distance: float) -> None:
        """Make Open3D orbit about `point`, `distance` in front of the (already placed) eye."""
        control = self.vis.get_view_control()
        tan_half = np.tan(np.radians(control.get_field_of_view()) / 2)
        control.set_zoom(float(np.clip(distance * tan_half / self.extent, 0.02, 2.0)))
        control.set_lookat(point)
        self._lookat = np.asarray(point, np.float64).copy()

    # --- frames -------------------------------------------------------------------------------

    def poll(self) -> bool:
        """Process window events and redraw; False once the window was closed."""
        alive = self.vis.poll_events()
        self.vis.update_renderer()
        return bool(alive)

    def capture(self) -> np.ndarray:
        """The rendered view, `(H, W, 3)` uint8 BGR."""
        buffer = np.asarray(self.vis.capture_screen_float_buffer(do_render=True))
        rgb = np.clip(buffer * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return np.ascontiguousarray(rgb[..., ::-1])

    def close(self) -> None:
        """Close the window (or the offscreen context) and free its OpenGL objects now.

        A legacy Visualizer frees its textures and shaders when it is deleted, in whichever
        context is current then: deleted after the next one was made, it would free that one's.
        """
        if self.vis is not None:
            self.vis.destroy_window()
            self.vis = None


def render_camera_view(
    content: SceneContent,
    camera_matrix: np.ndarray,
    object_mesh: tuple[np.ndarray, np.ndarray] | None,
) -> np.ndarray:
    """The camera view by hoposer's CPU renderer: the meshes over the frame, BGR."""
    image = content.image
    height, width = image.shape[:2]
    background = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    meshes = []
    if content.hand_vertices is not None:
        meshes.append(MeshInstance(content.hand_vertices, content.hand_faces, hand_color(content)))
    if object_mesh is not None and content.object_pose is not None:
        R, t = content.object_pose
        vertices, faces = object_mesh
        meshes.append(MeshInstance(vertices @ R.T + t, faces, OBJECT, 2))
    rgb, _ = render(meshes, camera_matrix, (width, height), background, Light(), supersample=1)
    return np.ascontiguousarray(rgb[..., ::-1])


class Panel:
    """The 3D panel beside each frame of `video --panel`, in the camera-true view.

    Open3D renders it offscreen (EGL without a display) when it is installed and can open an
    OpenGL context, unless `cpu_reason` says why not to; otherwise hoposer's CPU renderer draws
    the meshes over the frame, after a one-line notice.
    """

    def __init__(
        self,
        camera_matrix: np.ndarray,
        frame_size: tuple[int, int],
        hand_faces: np.ndarray,
        object_spec=None,
        transform=None,
        cpu_reason: str | None = None,
    ) -> None:
        self.K = np.asarray(camera_matrix, np.float64)
        self.faces = np.asarray(hand_faces)
        self.mesh = (object_spec.vertices, object_spec.faces) if object_spec is not None else None
        self.side = "right"
        self.scene: Open3DScene | None = None
        reason = cpu_reason
        if reason is None:
            try:
                self.scene = Open3DScene(
                    camera_matrix, frame_size, hand_faces, object_spec, transform, visible=False
                )
            except Open3DUnavailableError as err:
                reason = str(err)
        if self.scene is None:
            log.warning("3D panel: %s; drawing it with hoposer's CPU renderer instead", reason)

    def draw(self, result) -> np.ndarray:
        """The panel for one result, `(H, W, 3)` uint8 BGR, the frame's size."""
        content = scene_content(result, self.faces, self.side)
        self.side = content.side
        if self.scene is None:
            return render_camera_view(content, self.K, self.mesh)
        self.scene.update(content)
        return self.scene.capture()

    def close(self) -> None:
        """Release the offscreen context."""
        if self.scene is not None:
            self.scene.close()
            self.scene = None
