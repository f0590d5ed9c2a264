"""Rendering a board as a known camera sees it, for tests and for trying the tool without a camera.

Every output pixel is undistorted to a ray, the ray meets the board plane, and the board texture
is sampled there (`cv2.remap`), supersampled and area-averaged for anti-aliasing, then lightly
blurred and noised. The camera model is exactly the one OpenCV calibrates, so what calibration
recovers can be compared with what was rendered.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hoposer.calib.boards import BoardSpec, board_texture
from hoposer.calib.camera_info import CameraInfo, write_camera_info
from hoposer.calib.extrinsics import Transform, write_transform
from hoposer.calib.report import write_png
from hoposer.errors import HoposerError
from hoposer.io import write_text_atomic


@dataclass(frozen=True, eq=False)
class SyntheticCamera:
    """A camera to render with.

    Attributes:
        K: `(3, 3)` intrinsics.
        D: distortion coefficients (OpenCV order; 4 for fisheye).
        size: `(width, height)`.
        fisheye: use OpenCV's fisheye (equidistant) model instead of pinhole.
    """

    K: np.ndarray
    D: np.ndarray
    size: tuple[int, int]
    fisheye: bool = False


def default_camera() -> SyntheticCamera:
    """640x480, about 56° horizontal field of view, visible barrel distortion."""
    K = np.array([[600.0, 0.0, 322.5], [0.0, 603.0, 236.0], [0.0, 0.0, 1.0]])
    D = np.array([-0.28, 0.11, 0.0008, -0.0006, 0.0])
    return SyntheticCamera(K, D, (640, 480))


def ray_map(camera: SyntheticCamera, supersample: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """Normalised rays `(H*s, W*s, 2)` for every (supersampled) pixel and a validity mask.

    A sub-pixel at supersampled index `i` sits at image coordinate `(i + 0.5) / s - 0.5`, so that
    area-averaging `s × s` blocks gives pixels centred on integer coordinates.
    """
    import cv2

    w, h = camera.size
    s = supersample
    xs = (np.arange(w * s) + 0.5) / s - 0.5
    ys = (np.arange(h * s) + 0.5) / s - 0.5
    gx, gy = np.meshgrid(xs, ys)
    pts = np.stack([gx, gy], -1).reshape(-1, 1, 2)
    criteria = (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 50, 1e-12)
    K, D = camera.K.astype(np.float64), camera.D.astype(np.float64)
    if camera.fisheye:
        rays = cv2.fisheye.undistortPoints(pts, K, D.reshape(4, 1), criteria=criteria)
        back = cv2.fisheye.distortPoints(rays, K, D.reshape(4, 1))
    else:
        rays = cv2.undistortPointsIter(pts, K, D, None, None, criteria)
        obj = np.concatenate([rays.reshape(-1, 2), np.ones((len(pts), 1))], 1)
        back, _ = cv2.projectPoints(obj, np.zeros(3), np.zeros(3), K, D)
    # Where the iterative inverse did not converge, the pixel is left as background.
    valid = np.linalg.norm(back.reshape(-1, 2) - pts.reshape(-1, 2), axis=1) < 1e-3
    return rays.reshape(h * s, w * s, 2), valid.reshape(h * s, w * s)


def render_view(
    spec: BoardSpec,
    camera: SyntheticCamera,
    R: np.ndarray,
    t: np.ndarray,
    *,
    rays: tuple[np.ndarray, np.ndarray] | None = None,
    supersample: int = 2,
    blur: float = 0.5,
    noise: float = 1.5,
    background: int = 110,
    rng: np.random.Generator | None = None,
) -> np.ndarray:
    """The board seen by `camera` at pose `(R, t)` (board → camera: `x_cam = R x_board + t`).

    Returns:
        `(H, W)` uint8 grey image.
    """
    import cv2

    if rays is None:
        rays = ray_map(camera, supersample)
    ray, valid = rays
    s = ray.shape[0] // camera.size[1]
    R = np.asarray(R, np.float64)
    t = np.asarray(t, np.float64).reshape(3)
    # Board-frame ray: origin o = -Rᵀt, direction d = Rᵀ[x, y, 1]; meet z = 0.
    o = -R.T @ t
    d = ray[..., 0:1] * R.T[:, 0] + ray[..., 1:2] * R.T[:, 1] + R.T[:, 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        lam = -o[2] / d[..., 2]
    hit = valid & np.isfinite(lam) & (lam > 0)
    X = o[0] + lam * d[..., 0]
    Y = o[1] + lam * d[..., 1]
    # Texture resolution matched to the view: about one texel per supersampled pixel.
    depth = float((R @ np.array([*np.array(spec.size_m) / 2, 0.0]) + t)[2])
    px_per_m = max(camera.K[0, 0] * s / max(depth, 1e-3), 200.0)
    texture, A = board_texture(spec, px_per_m)
    map_x = np.where(hit, A[0, 0] * X + A[0, 1] * Y + A[0, 2], -10).astype(np.float32)
    map_y = np.where(hit, A[1, 0] * X + A[1, 1] * Y + A[1, 2], -10).astype(np.float32)
    big = cv2.remap(
        texture,
        map_x,
        map_y,
        cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=background,
    )
    w, h = camera.size
    image = cv2.resize(big.astype(np.float32), (w, h), interpolation=cv2.INTER_AREA)
    if blur > 0:
        image = cv2.GaussianBlur(image, (0, 0), blur)
    if noise > 0:
        rng = rng or np.random.default_rng(0)
        image = image + rng.normal(0.0, noise, image.shape)
    return np.clip(np.rint(image), 0, 255).astype(np.uint8)


def rotation(rx: float, ry: float, rz: float) -> np.ndarray:
    """`Rz @ Ry @ Rx` from angles in degrees."""
    ax, ay, az = np.radians([rx, ry, rz])
    cx, sx, cy, sy, cz, sz = np.cos(ax), np.sin(ax), np.cos(ay), np.sin(ay), np.cos(az), np.sin(az)
    Rx = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    Ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    Rz = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    return Rz @ Ry @ Rx


def project(camera: SyntheticCamera, R: np.ndarray, t: np.ndarray, pts: np.ndarray) -> np.ndarray:
    """`(N, 2)` pixels of board points `(N, 3)` at pose `(R, t)`."""
    import cv2

    rvec = cv2.Rodrigues(np.asarray(R, np.float64))[0]
    tvec = np.asarray(t, np.float64).reshape(3, 1)
    pts = np.asarray(pts, np.float64).reshape(-1, 1, 3)
    if camera.fisheye:
        uv, _ = cv2.fisheye.projectPoints(pts, rvec, tvec, camera.K, camera.D.reshape(4, 1))
    else:
        uv, _ = cv2.projectPoints(pts, rvec, tvec, camera.K, camera.D)
    return uv.reshape(-1, 2)


def _outline(spec: BoardSpec) -> np.ndarray:
    """The pattern's outer corners plus its quiet zone, board frame."""
    q = spec.quiet_zone_m
    if spec.kind == "aruco":
        h = spec.marker / 2 + q
        return np.array([[-h, -h, 0], [h, -h, 0], [h, h, 0], [-h, h, 0]])
    w, hh = spec.size_m
    return np.array([[-q, -q, 0], [w + q, -q, 0], [w + q, hh + q, 0], [-q, hh + q, 0]])


def board_centre(spec: BoardSpec) -> np.ndarray:
    """The pattern's centre in the board frame."""
    if spec.kind == "aruco":
        return np.zeros(3)
    return np.array([*np.array(spec.size_m) / 2, 0.0])


def in_view(camera: SyntheticCamera, spec: BoardSpec, R: np.ndarray, t: np.ndarray) -> bool:
    """Whether the whole board with its quiet zone projects inside the image, 8 px clear."""
    corners = _outline(spec)
    cam = corners @ np.asarray(R).T + np.asarray(t).reshape(3)
    if (cam[:, 2] <= 0.05).any():
        return False
    uv = project(camera, R, t, corners)
    w, h = camera.size
    return bool(((uv > 8) & (uv < np.array([w - 8, h - 8]))).all())


def sample_poses(
    spec: BoardSpec,
    camera: SyntheticCamera,
    n: int,
    seed: int = 0,
    max_tilt: float = 40.0,
    fill: tuple[float, float] = (0.35, 0.7),
) -> list[tuple[np.ndarray, np.ndarray]]:
    """`n` varied board poses `(R, t)` that keep the board fully in view.

    Tilts up to `max_tilt` degrees about both board axes, roll up to 20°, the board spanning a
    `fill` fraction of the image width, placed all over the image.
    """
    rng = np.random.default_rng(seed)
    w, h = camera.size
    extent = max(spec.size_m) + 2 * spec.quiet_zone_m
    centre = board_centre(spec)
    poses: list[tuple[np.ndarray, np.ndarray]] = []
    tries = 0
    while len(poses) < n:
        tries += 1
        if tries > 200 * n:
            raise RuntimeError("could not place the board in view; use a smaller board")
        R = rotation(*rng.uniform(-max_tilt, max_tilt, 2), rng.uniform(-20, 20))
        z = camera.K[0, 0] * extent / (rng.uniform(*fill) * w)
        u, v = rng.uniform(0.15, 0.85) * w, rng.uniform(0.15, 0.85) * h
        ray = np.linalg.solve(camera.K, [u, v, 1.0])
        t = z * ray - R @ centre
        if in_view(camera, spec, R, t):
            poses.append((R, t))
    return poses


def render_views(
    spec: BoardSpec,
    camera: SyntheticCamera,
    poses: list[tuple[np.ndarray, np.ndarray]],
    seed: int = 0,
    **kwargs: float,
) -> list[np.ndarray]:
    """Render `spec` at every pose with one shared ray map (fast)."""
    rng = np.random.default_rng(seed)
    rays = ray_map(camera, int(kwargs.pop("supersample", 2)))
    return [render_view(spec, camera, R, t, rays=rays, rng=rng, **kwargs) for R, t in poses]


def _homogeneous(R: np.ndarray, t: np.ndarray) -> np.ndarray:
    T = np.eye(4)
    T[:3, :3], T[:3, 3] = R, np.asarray(t).reshape(3)
    return T


@dataclass(frozen=True, eq=False)
class MarkerScene:
    """A static camera looking at a marker/board lying at a known pose in the robot base.

    Attributes:
        images: grey frames (same pose, independent noise).
        T_base_board: `(4, 4)` the board's pose in the base (what `--marker-pose` gives).
        T_base_cam: `(4, 4)` the true camera pose in the base (what calibration should find).
    """

    images: list[np.ndarray]
    T_base_board: np.ndarray
    T_base_cam: np.ndarray


def marker_scene(
    spec: BoardSpec, camera: SyntheticCamera, n_frames: int = 8, seed: int = 0
) -> MarkerScene:
    """Render a marker scene: board at (0.5, 0.1, 0) in the base, camera ~45° above it."""
    T_base_board = _homogeneous(rotation(0, 0, 90), [0.5, 0.1, 0.0])
    # Camera pose relative to the board: tilted 35°, board centre in front of the camera.
    R_cb = rotation(35, -10, 5) if spec.kind == "aruco" else rotation(-35, 10, 5)
    if spec.kind == "aruco":  # marker z points at the camera: turn the board frame around
        R_cb = R_cb @ rotation(180, 0, 0)
    extent = max(spec.size_m) + 2 * spec.quiet_zone_m
    z = camera.K[0, 0] * extent / (0.5 * camera.size[0])
    t_cb = z * np.array([0.02, -0.03, 1.0]) - R_cb @ board_centre(spec)
    if not in_view(camera, spec, R_cb, t_cb):
        raise RuntimeError("marker scene does not fit the image")
    T_cam_board = _homogeneous(R_cb, t_cb)
    T_base_cam = T_base_board @ np.linalg.inv(T_cam_board)
    images = render_views(spec, camera, [(R_cb, t_cb)] * n_frames, seed=seed)
    return MarkerScene(images, T_base_board, T_base_cam)


@dataclass(frozen=True, eq=False)
class HandEyeScene:
    """Views for hand-eye calibration with the robot poses they were taken at.

    Attributes:
        images: grey images.
        T_base_gripper: per image, the gripper's pose in the base `(4, 4)`.
        X: the truth: T_gripper_cam (eye-in-hand) or T_base_cam (eye-to-hand).
        setup: "eye-in-hand" or "eye-to-hand".
    """

    images: list[np.ndarray]
    T_base_gripper: list[np.ndarray]
    X: np.ndarray
    setup: str


def hand_eye_scene(
    spec: BoardSpec,
    camera: SyntheticCamera,
    n_views: int = 12,
    setup: str = "eye-in-hand",
    seed: int = 0,
) -> HandEyeScene:
    """Render a hand-eye data set: varied views, and the robot poses that produce them."""
    poses = sample_poses(spec, camera, n_views, seed=seed, max_tilt=35.0, fill=(0.45, 0.75))
    if setup == "eye-in-hand":
        X = _homogeneous(rotation(3, -4, 90), [0.04, -0.02, 0.09])  # T_gripper_cam
        T_base_board = _homogeneous(rotation(180, 0, 0), [0.6, -0.1, 0.02])
        T_bg = [
            T_base_board @ np.linalg.inv(_homogeneous(R, t)) @ np.linalg.inv(X) for R, t in poses
        ]
    elif setup == "eye-to-hand":
        X = _homogeneous(rotation(-150, 0, 90), [1.2, 0.1, 0.7])  # T_base_cam
        T_gripper_board = _homogeneous(rotation(0, 0, 0), [0.0, 0.0, 0.05])
        T_bg = [X @ _homogeneous(R, t) @ np.linalg.inv(T_gripper_board) for R, t in poses]
    else:
        raise ValueError(f"unknown setup {setup}")
    images = render_views(spec, camera, poses, seed=seed)
    return HandEyeScene(images, T_bg, X, setup)


#: What `write_synthetic_set` renders: views for intrinsics, or for one of the extrinsics methods.
SCENES = ("camera", "marker", "eye-in-hand", "eye-to-hand")


def write_synthetic_set(
    out: str | Path, spec: BoardSpec, scene: str = "camera", views: int = 20, seed: int = 0
) -> tuple[int, str]:
    """Render a data set with known truth into `out`, laid out as the calib commands read it.

    `out` gets `view_NNN.png`, `truth_camera_info.yaml` and, for the extrinsics scenes,
    `truth_extrinsics.yaml` (the marker scene's camera in the base; the hand-eye scenes' camera
    in the gripper or the base) and, for the hand-eye scenes, `poses.csv` (the gripper poses).

    Args:
        out: the folder to create and fill.
        spec: the board: a checker or ChArUco board for "camera", a marker or ChArUco board for
            the others.
        scene: one of `SCENES`.
        views: images to render.
        seed: random seed.

    Returns:
        `(images written, what to pass to the calib command that recovers the truth)`.
    """
    if scene not in SCENES:
        raise HoposerError(f"--scene must be one of {', '.join(SCENES)}, not '{scene}'")
    if scene == "camera" and spec.kind == "aruco":
        raise HoposerError("the camera scene needs a checker or charuco board")
    if scene != "camera" and spec.kind == "checker":
        raise HoposerError(f"the {scene} scene needs an aruco marker or a charuco board")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    cam = default_camera()
    truth = CameraInfo(cam.size[0], cam.size[1], "synthetic", cam.K, cam.D, comment=("truth",))
    write_camera_info(out / "truth_camera_info.yaml", truth)
    if scene == "camera":
        images = render_views(spec, cam, sample_poses(spec, cam, views, seed), seed)
        hint = f"truth: {out / 'truth_camera_info.yaml'}"
    elif scene == "marker":
        m = marker_scene(spec, cam, n_frames=views, seed=seed)
        images = m.images
        T = Transform.from_matrix(m.T_base_board, "base", "board")
        pose = ",".join(f"{v:.9g}" for v in (*T.translation, *T.quaternion))
        write_transform(
            out / "truth_extrinsics.yaml",
            Transform.from_matrix(m.T_base_cam, "base", "camera_optical"),
        )
        hint = f"--marker-pose {pose}  (truth: {out / 'truth_extrinsics.yaml'})"
    else:
        h = hand_eye_scene(spec, cam, n_views=views, setup=scene, seed=seed)
        images = h.images
        lines = ["image,x,y,z,qx,qy,qz,qw"]
        for i, T in enumerate(h.T_base_gripper):
            tf = Transform.from_matrix(T, "base", "tool0")
            lines.append(
                ",".join(
                    [f"view_{i:03d}.png"] + [f"{v:.12g}" for v in (*tf.translation, *tf.quaternion)]
                )
            )
        write_text_atomic(out / "poses.csv", "\n".join(lines) + "\n")
        parent = "tool0" if scene == "eye-in-hand" else "base"
        write_transform(
            out / "truth_extrinsics.yaml", Transform.from_matrix(h.X, parent, "camera_optical")
        )
        hint = f"--hand-eye {out / 'poses.csv'} --setup {scene}"
    for i, image in enumerate(images):
        write_png(out / f"view_{i:03d}.png", image)
    return len(images), hint
