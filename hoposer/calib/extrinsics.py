"""Camera→robot extrinsics: a marker at a known pose, or hand-eye calibration; their YAML file.

A `Transform` maps points from its child frame into its parent frame:
`p_parent = R(quaternion) @ p_child + translation` (the pose of the child in the parent, as a
ROS `TransformStamped` from `header.frame_id` to `child_frame_id`). The camera frame is OpenCV's
optical frame: x right, y down, z forward.

File layout (a `geometry_msgs/TransformStamped` in YAML, plus a `hoposer` block of quality
numbers that readers may ignore):

```yaml
header: {frame_id: base}
child_frame_id: camera_optical
transform:
  translation: {x: 0.5, y: 0.0, z: 0.8}
  rotation: {x: 0.0, y: 0.0, z: 0.0, w: 1.0}
hoposer: {method: marker, frames_used: 30, ...}
```
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from hoposer.calib.boards import BoardSpec
from hoposer.calib.camera_info import CameraInfo
from hoposer.calib.detect import BoardDetector, Detection, no_board_error
from hoposer.errors import HoposerError
from hoposer.geometry.procrustes import mean_rotation
from hoposer.io import write_text_atomic

# --- rotations --------------------------------------------------------------------------------


def quat_to_matrix(q: np.ndarray) -> np.ndarray:
    """`(3, 3)` rotation of a unit quaternion `(x, y, z, w)`."""
    x, y, z, w = np.asarray(q, np.float64) / np.linalg.norm(q)
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
        ]
    )


def matrix_to_quat(R: np.ndarray) -> np.ndarray:
    """Unit quaternion `(x, y, z, w)` with w ≥ 0 of a `(3, 3)` rotation."""
    R = np.asarray(R, np.float64)
    # The eigenvector of Bar-Itzhack's symmetric matrix: robust for every rotation.
    K = (
        np.array(
            [
                [
                    R[0, 0] - R[1, 1] - R[2, 2],
                    R[1, 0] + R[0, 1],
                    R[2, 0] + R[0, 2],
                    R[2, 1] - R[1, 2],
                ],
                [
                    R[1, 0] + R[0, 1],
                    R[1, 1] - R[0, 0] - R[2, 2],
                    R[2, 1] + R[1, 2],
                    R[0, 2] - R[2, 0],
                ],
                [
                    R[2, 0] + R[0, 2],
                    R[2, 1] + R[1, 2],
                    R[2, 2] - R[0, 0] - R[1, 1],
                    R[1, 0] - R[0, 1],
                ],
                [
                    R[2, 1] - R[1, 2],
                    R[0, 2] - R[2, 0],
                    R[1, 0] - R[0, 1],
                    R[0, 0] + R[1, 1] + R[2, 2],
                ],
            ]
        )
        / 3.0
    )
    q = np.linalg.eigh(K)[1][:, -1]
    return q if q[3] >= 0 else -q


def rotation_angle_deg(Ra: np.ndarray, Rb: np.ndarray) -> float:
    """Angle of `Ra @ Rb.T`, degrees."""
    c = (np.trace(np.asarray(Ra) @ np.asarray(Rb).T) - 1) / 2
    return float(np.degrees(np.arccos(np.clip(c, -1.0, 1.0))))


# --- the transform and its file -------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Transform:
    """A rigid transform from `child` frame to `parent` frame (the child's pose in the parent).

    Attributes:
        parent: parent frame name (e.g. "base").
        child: child frame name (e.g. "camera_optical").
        translation: `(3,)` metres, the child's origin in the parent.
        quaternion: `(4,)` unit quaternion `(x, y, z, w)`, w ≥ 0.
        quality: numbers about how it was estimated (written under `hoposer:`).
    """

    parent: str
    child: str
    translation: np.ndarray
    quaternion: np.ndarray
    quality: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        t = np.asarray(self.translation, np.float64).reshape(3)
        q = np.asarray(self.quaternion, np.float64).reshape(4)
        q = q / np.linalg.norm(q)
        object.__setattr__(self, "translation", t)
        object.__setattr__(self, "quaternion", q if q[3] >= 0 else -q)

    @classmethod
    def from_matrix(cls, T: np.ndarray, parent: str, child: str, quality: dict | None = None):
        """From a `(4, 4)` matrix mapping child → parent."""
        T = np.asarray(T, np.float64)
        return cls(parent, child, T[:3, 3], matrix_to_quat(T[:3, :3]), dict(quality or {}))

    @property
    def rotation(self) -> np.ndarray:
        """`(3, 3)` rotation matrix."""
        return quat_to_matrix(self.quaternion)

    def as_matrix(self) -> np.ndarray:
        """`(4, 4)` homogeneous matrix mapping child-frame points into the parent frame."""
        T = np.eye(4)
        T[:3, :3] = self.rotation
        T[:3, 3] = self.translation
        return T

    def inverse(self) -> Transform:
        """The transform from parent to child."""
        return Transform.from_matrix(np.linalg.inv(self.as_matrix()), self.child, self.parent)

    def apply(self, points: np.ndarray) -> np.ndarray:
        """Map `(..., 3)` child-frame points into the parent frame."""
        return np.asarray(points) @ self.rotation.T + self.translation

    def summary(self) -> str:
        """Two lines for the terminal: the transform, then its quality numbers."""
        t, q = self.translation, self.quaternion
        quality = (
            f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in self.quality.items()
        )
        return (
            f"{self.parent} <- {self.child}: t = {np.round(t, 4).tolist()} m, "
            f"q (xyzw) = {np.round(q, 5).tolist()}\n" + ", ".join(quality)
        )


def _plain(value: object) -> object:
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [_plain(v) for v in value]
    if isinstance(value, (np.integer, int)):
        return int(value)
    if isinstance(value, (np.floating, float)):
        return float(value)
    return value if isinstance(value, (str, bool)) or value is None else str(value)


def transform_yaml(transform: Transform) -> str:
    """The YAML text of `transform`."""
    import yaml

    t, q = transform.translation, transform.quaternion
    f = [repr(float(v)) for v in (*t, *q)]
    lines = [
        f"# p_{transform.parent} = R p_{transform.child} + t  (written by hoposer calib robot)",
        f"header: {{frame_id: {transform.parent}}}",
        f"child_frame_id: {transform.child}",
        "transform:",
        f"  translation: {{x: {f[0]}, y: {f[1]}, z: {f[2]}}}",
        f"  rotation: {{x: {f[3]}, y: {f[4]}, z: {f[5]}, w: {f[6]}}}",
    ]
    if transform.quality:
        body = yaml.safe_dump({"hoposer": _plain(transform.quality)}, sort_keys=False)
        lines.append(body.rstrip())
    return "\n".join(lines) + "\n"


def _check_frame(name: str) -> str:
    import re

    if not re.fullmatch(r"[A-Za-z0-9_./\-]+", name or ""):
        raise HoposerError(f"frame name '{name}' must be letters, digits, '_', '-', '.' or '/'")
    return name


def write_transform(path: str | Path, transform: Transform) -> Path:
    """Write `transform` as YAML, atomically."""
    path = Path(path)
    _check_frame(transform.parent)
    _check_frame(transform.child)
    if not path.parent.exists():
        raise HoposerError(f"folder {path.parent} does not exist")
    write_text_atomic(path, transform_yaml(transform))
    return path


def read_transform(path: str | Path) -> Transform:
    """Read and validate an extrinsics YAML file (the layout `write_transform` writes).

    Raises:
        HoposerError: missing/unreadable file, bad YAML, missing fields, non-numeric values or a
            quaternion far from unit length — one line naming the field.
    """
    import yaml

    path = Path(path)
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise HoposerError(f"extrinsics file {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as err:
        raise HoposerError(f"cannot read extrinsics {path}: {err}") from None
    except yaml.YAMLError:
        raise HoposerError(f"{path}: not valid YAML") from None
    if not isinstance(doc, dict):
        raise HoposerError(f"{path}: not an extrinsics YAML mapping")
    header, tf = doc.get("header"), doc.get("transform")
    if not isinstance(header, dict) or "frame_id" not in header:
        raise HoposerError(f"{path}: missing 'header: {{frame_id: ...}}' (the parent frame)")
    if "child_frame_id" not in doc:
        raise HoposerError(f"{path}: missing 'child_frame_id'")
    if not isinstance(tf, dict):
        raise HoposerError(f"{path}: missing 'transform' with translation and rotation")

    def vector(key: str, names: str) -> np.ndarray:
        node = tf.get(key)
        if not isinstance(node, dict) or not set(names) <= node.keys():
            raise HoposerError(f"{path}: transform.{key} needs keys {', '.join(names)}")
        try:
            v = np.array([float(node[k]) for k in names])
        except (TypeError, ValueError):
            raise HoposerError(f"{path}: transform.{key} values must be numbers") from None
        if not np.isfinite(v).all():
            raise HoposerError(f"{path}: transform.{key} values must be finite")
        return v

    t = vector("translation", "xyz")
    q = vector("rotation", "xyzw")
    if abs(np.linalg.norm(q) - 1.0) > 1e-3:
        raise HoposerError(
            f"{path}: transform.rotation is not a unit quaternion (norm {np.linalg.norm(q):.4f})"
        )
    quality = doc.get("hoposer") if isinstance(doc.get("hoposer"), dict) else {}
    return Transform(str(header["frame_id"]), str(doc["child_frame_id"]), t, q, quality)


def parse_pose(text: str) -> np.ndarray:
    """`x,y,z,qx,qy,qz,qw` (metres, unit quaternion) → `(4, 4)` matrix.

    Raises:
        HoposerError: not seven numbers, or a quaternion far from unit length.
    """
    try:
        v = np.array([float(s) for s in text.replace(" ", "").split(",")])
    except ValueError:
        v = np.zeros(0)
    if v.shape != (7,) or not np.isfinite(v).all():
        raise HoposerError(
            f"pose '{text}' must be 7 numbers x,y,z,qx,qy,qz,qw (metres, quaternion)"
        )
    n = np.linalg.norm(v[3:])
    if abs(n - 1.0) > 1e-2:
        raise HoposerError(
            f"pose '{text}': quaternion qx,qy,qz,qw must have unit length, not {n:.3f}"
        )
    T = np.eye(4)
    T[:3, :3] = quat_to_matrix(v[3:])
    T[:3, 3] = v[:3]
    return T


# --- board poses in the camera -----------------------------------------------------------------


def board_pose(
    image_points: np.ndarray,
    object_points: np.ndarray,
    K: np.ndarray,
    D: np.ndarray,
    fisheye: bool = False,
    square_marker: bool = False,
) -> tuple[np.ndarray, float]:
    """`(T_cam_board (4, 4), RMS reprojection error px)` from one view by PnP.

    Single markers use `SOLVEPNP_IPPE_SQUARE` (both of its solutions are tried, keeping the one
    that reprojects best); boards use IPPE then Levenberg-Marquardt refinement.
    """
    import cv2

    obj = np.asarray(object_points, np.float64).reshape(-1, 3)
    img = np.asarray(image_points, np.float64).reshape(-1, 1, 2)
    if fisheye:  # work in undistorted pixels of the same K
        img = cv2.fisheye.undistortPoints(img, K, np.asarray(D).reshape(4, 1), P=K)
        D = np.zeros(5)
    flags = cv2.SOLVEPNP_IPPE_SQUARE if square_marker else cv2.SOLVEPNP_IPPE
    n, rvecs, tvecs, errs = cv2.solvePnPGeneric(obj, img, K, D, flags=flags)
    if n == 0:
        raise HoposerError("PnP failed on a view; check --camera-info and the board sizes")
    best = int(np.argmin(np.asarray(errs).reshape(-1)))
    rvec, tvec = cv2.solvePnPRefineLM(obj, img, K, D, rvecs[best], tvecs[best])
    uv, _ = cv2.projectPoints(obj, rvec, tvec, K, D)
    rms = float(np.sqrt(np.mean(np.sum((uv - img).reshape(-1, 2) ** 2, 1))))
    T = np.eye(4)
    T[:3, :3] = cv2.Rodrigues(rvec)[0]
    T[:3, 3] = tvec.reshape(3)
    return T, rms


@dataclass(frozen=True, eq=False)
class RobustMean:
    """The robust mean of a set of rigid transforms.

    Attributes:
        T: `(4, 4)` mean of the inliers.
        inliers: `(N,)` bool.
        translation_std_mm: per-axis spread of inlier translations (RMS of the 3 axes), mm.
        rotation_std_deg: RMS angle of inlier rotations from the mean, degrees.
    """

    T: np.ndarray
    inliers: np.ndarray
    translation_std_mm: float
    rotation_std_deg: float


def robust_mean(
    Ts: list[np.ndarray], max_dev_mm: float = 5.0, max_dev_deg: float = 1.0, k: float = 3.0
) -> RobustMean:
    """Average rigid transforms, rejecting frames far from the median estimate.

    A frame is an outlier when its translation or rotation deviates from the current mean by
    more than `k` × the median deviation and more than `max_dev_mm` / `max_dev_deg`; repeated
    until stable.
    """
    Ts = np.asarray(Ts, np.float64)
    inl = np.ones(len(Ts), bool)
    # Start from the element-wise median translation and the rotation nearest the chordal mean.
    t0 = np.median(Ts[:, :3, 3], 0)
    R0 = mean_rotation(Ts[:, :3, :3])
    for _ in range(10):
        dt = np.linalg.norm(Ts[:, :3, 3] - t0, axis=1) * 1000
        dr = np.array([rotation_angle_deg(R, R0) for R in Ts[:, :3, :3]])
        lim_t = max(k * np.median(dt[inl]), max_dev_mm)
        lim_r = max(k * np.median(dr[inl]), max_dev_deg)
        new = (dt <= lim_t) & (dr <= lim_r)
        if not new.any():
            new = dt <= np.median(dt)
        t0 = Ts[new, :3, 3].mean(0)
        R0 = mean_rotation(Ts[new, :3, :3])
        if np.array_equal(new, inl):
            break
        inl = new
    T = np.eye(4)
    T[:3, :3], T[:3, 3] = R0, t0
    std_t = float(np.sqrt(np.mean(np.var(Ts[inl, :3, 3], 0))) * 1000) if inl.sum() > 1 else 0.0
    dr = np.array([rotation_angle_deg(R, R0) for R in Ts[inl, :3, :3]])
    return RobustMean(T, inl, std_t, float(np.sqrt(np.mean(dr**2))))


def camera_to_base_from_marker(
    views: list[tuple[np.ndarray, np.ndarray]],
    T_base_board: np.ndarray,
    K: np.ndarray,
    D: np.ndarray,
    *,
    fisheye: bool = False,
    square_marker: bool = False,
    parent: str = "base",
    child: str = "camera_optical",
) -> Transform:
    """Camera pose in the robot base from views of a board/marker at a known base pose.

    Args:
        views: per frame `(image_points (N, 2), object_points (N, 3))` of the board.
        T_base_board: `(4, 4)` the board frame's pose in the base (from `--marker-pose`).
        K: `(3, 3)` camera intrinsics.
        D: distortion coefficients.
        fisheye: `D` is OpenCV's fisheye model.
        square_marker: the board is a single ArUco marker (IPPE_SQUARE).
        parent: name of the base frame.
        child: name of the camera frame.

    Returns:
        `Transform` camera → base, with `quality` holding the reprojection error and the spread.
    """
    if not views:
        raise HoposerError("the marker/board was not found in any frame")
    poses, errors = [], []
    for img, obj in views:
        T_cam_board, rms = board_pose(img, obj, K, D, fisheye, square_marker)
        poses.append(T_base_board @ np.linalg.inv(T_cam_board))
        errors.append(rms)
    mean = robust_mean(poses)
    quality = {
        "method": "marker",
        "frames_used": int(mean.inliers.sum()),
        "frames_rejected": int((~mean.inliers).sum()),
        "reprojection_rms_px": float(np.sqrt(np.mean(np.square(errors)[mean.inliers]))),
        "translation_spread_mm": mean.translation_std_mm,
        "rotation_spread_deg": mean.rotation_std_deg,
    }
    return Transform.from_matrix(mean.T, parent, child, quality)


# --- hand-eye ------------------------------------------------------------------------------------


def read_robot_poses(path: str | Path) -> list[tuple[str, np.ndarray]]:
    """Read a hand-eye CSV: a header `image,x,y,z,qx,qy,qz,qw` then one row per view.

    Each row is the robot's gripper (tool flange) pose in its base frame when `image` (a path
    relative to the CSV's folder) was taken. Metres and a unit quaternion.

    Raises:
        HoposerError: missing file, bad header, or a row that is not a file name and 7 numbers.
    """
    path = Path(path)
    try:
        with open(path, newline="", encoding="utf-8") as f:
            rows = list(csv.reader(f))
    except FileNotFoundError:
        raise HoposerError(f"robot pose CSV {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as err:
        raise HoposerError(f"cannot read robot pose CSV {path}: {err}") from None
    expected = ["image", "x", "y", "z", "qx", "qy", "qz", "qw"]
    rows = [r for r in rows if r and not r[0].startswith("#")]
    if not rows or [c.strip().lower() for c in rows[0]] != expected:
        raise HoposerError(f"{path}: the first line must be the header {','.join(expected)}")
    out = []
    for line, row in enumerate(rows[1:], start=2):
        if len(row) != 8:
            raise HoposerError(f"{path} row {line}: expected 8 columns, got {len(row)}")
        try:
            T = parse_pose(",".join(row[1:]))
        except HoposerError as err:
            raise HoposerError(f"{path} row {line}: {err}") from None
        out.append((row[0].strip(), T))
    return out


def hand_eye(
    T_base_gripper: list[np.ndarray],
    T_cam_board: list[np.ndarray],
    setup: str = "eye-in-hand",
    method: str = "park",
) -> tuple[np.ndarray, np.ndarray, dict]:
    """Hand-eye calibration with OpenCV.

    Args:
        T_base_gripper: per view, the gripper's pose in the robot base `(4, 4)`.
        T_cam_board: per view, the board's pose in the camera `(4, 4)`.
        setup: "eye-in-hand" (camera on the gripper, board fixed in the world) or "eye-to-hand"
            (camera fixed, board on the gripper).
        method: "tsai", "park", "horaud", "andreff" or "daniilidis".

    Returns:
        `(X, B, quality)`: eye-in-hand X = T_gripper_cam, B = T_base_board; eye-to-hand
        X = T_base_cam, B = T_gripper_board. `quality` has the consistency error (spread of B
        over the views).
    """
    import cv2

    methods = {
        "tsai": cv2.CALIB_HAND_EYE_TSAI,
        "park": cv2.CALIB_HAND_EYE_PARK,
        "horaud": cv2.CALIB_HAND_EYE_HORAUD,
        "andreff": cv2.CALIB_HAND_EYE_ANDREFF,
        "daniilidis": cv2.CALIB_HAND_EYE_DANIILIDIS,
    }
    if method not in methods:
        raise HoposerError(f"unknown hand-eye method '{method}'; use one of {list(methods)}")
    if setup not in ("eye-in-hand", "eye-to-hand"):
        raise HoposerError(f"--setup must be eye-in-hand or eye-to-hand, not '{setup}'")
    if len(T_base_gripper) != len(T_cam_board):
        raise ValueError("one robot pose per board pose")
    if len(T_cam_board) < 3:
        raise HoposerError(
            f"hand-eye needs at least 3 views with the board found (better 10+), got "
            f"{len(T_cam_board)}"
        )
    A = [np.asarray(T, np.float64) for T in T_base_gripper]
    if setup == "eye-to-hand":
        A = [np.linalg.inv(T) for T in A]  # base→gripper: the same equations give cam→base
    rots = np.array([rotation_angle_deg(a[:3, :3], A[0][:3, :3]) for a in A])
    if rots.max() < 5.0:
        raise HoposerError(
            "the robot poses barely rotate (< 5°); hand-eye needs rotations about at least two "
            "different axes between views"
        )
    try:
        R, t = cv2.calibrateHandEye(
            [a[:3, :3] for a in A],
            [a[:3, 3] for a in A],
            [b[:3, :3] for b in T_cam_board],
            [b[:3, 3] for b in T_cam_board],
            method=methods[method],
        )
    except cv2.error as err:
        raise HoposerError(
            f"OpenCV hand-eye calibration failed: {str(err).strip()[-120:]}"
        ) from None
    X = np.eye(4)
    X[:3, :3], X[:3, 3] = R, t.reshape(3)
    # The board is fixed in the (base or gripper) frame: its estimate from every view agrees.
    Bs = [a @ X @ b for a, b in zip(A, T_cam_board, strict=True)]
    mean = robust_mean(Bs, max_dev_mm=1e9, max_dev_deg=1e9)
    quality = {
        "method": f"hand-eye {setup} ({method})",
        "views": len(Bs),
        "consistency_translation_mm": mean.translation_std_mm,
        "consistency_rotation_deg": mean.rotation_std_deg,
    }
    return X, mean.T, quality


# --- from images ---------------------------------------------------------------------------------


def _board_finder(
    spec: BoardSpec, info: CameraInfo, info_source: str
) -> Callable[[np.ndarray, str], Detection | None]:
    """A detector of `spec` in images of the camera `info` describes, which refuses others."""
    if spec.kind == "checker":
        raise HoposerError(
            "a checkerboard's orientation is ambiguous; use an ArUco marker (aruco:ID) or a "
            "ChArUco board for extrinsics"
        )
    detector = BoardDetector(spec)

    def find(image: np.ndarray, name: str) -> Detection | None:
        if (image.shape[1], image.shape[0]) != (info.width, info.height):
            raise HoposerError(
                f"{name} is {image.shape[1]}x{image.shape[0]} but {info_source} is for "
                f"{info.width}x{info.height}"
            )
        return detector.detect(image, name)

    return find


def marker_extrinsics(
    frames: Iterable[tuple[str, np.ndarray]],
    spec: BoardSpec,
    info: CameraInfo,
    T_base_board: np.ndarray,
    *,
    parent: str = "base",
    child: str = "camera_optical",
    info_source: str = "the camera info",
) -> Transform:
    """Camera pose in the robot base from images of a marker/board at a known base pose.

    Args:
        frames: `(name, BGR or grey image)` taken by the camera `info` describes.
        spec: the marker or ChArUco board (a checkerboard's orientation is ambiguous).
        info: the camera's intrinsics.
        T_base_board: `(4, 4)` the board frame's pose in the base (from `--marker-pose`).
        parent: name of the base frame.
        child: name of the camera frame.
        info_source: where `info` came from, for messages.

    Returns:
        `Transform` camera → base (see `camera_to_base_from_marker`).

    Raises:
        HoposerError: a checkerboard, an image of another size, or the board found nowhere.
    """
    find = _board_finder(spec, info, info_source)
    views, n = [], 0
    for name, image in frames:
        n += 1
        det = find(image, name)
        if det is not None:
            views.append((det.image_points, det.object_points))
    if not views:
        raise no_board_error(spec, n)
    return camera_to_base_from_marker(
        views,
        T_base_board,
        info.K,
        info.D,
        fisheye=info.fisheye,
        square_marker=spec.kind == "aruco",
        parent=parent,
        child=child,
    )


def hand_eye_extrinsics(
    views: Iterable[tuple[str, np.ndarray, np.ndarray]],
    spec: BoardSpec,
    info: CameraInfo,
    *,
    setup: str = "eye-in-hand",
    method: str = "park",
    base: str = "base",
    gripper: str = "tool0",
    camera: str = "camera_optical",
    info_source: str = "the camera info",
    skipped: Callable[[str], None] = lambda name: None,
) -> Transform:
    """Camera pose from views of a board taken at known robot poses (see `hand_eye`).

    Args:
        views: `(name, image, T_base_gripper (4, 4))`: each image and the gripper's pose in the
            base when it was taken (`read_robot_poses`).
        spec: the marker or ChArUco board (a checkerboard's orientation is ambiguous).
        info: the camera's intrinsics.
        setup: "eye-in-hand" or "eye-to-hand".
        method: OpenCV's hand-eye method (see `hand_eye`).
        base: name of the robot base frame.
        gripper: name of the gripper (tool) frame.
        camera: name of the camera frame.
        info_source: where `info` came from, for messages.
        skipped: called with the name of each view the board was not found in.

    Returns:
        `Transform` camera → gripper (eye-in-hand) or camera → base (eye-to-hand).

    Raises:
        HoposerError: a checkerboard, an image of another size, the board found nowhere, or
            what `hand_eye` refuses.
    """
    find = _board_finder(spec, info, info_source)
    T_base_gripper, T_cam_board, n_seen = [], [], 0
    for name, image, T in views:
        det = find(image, name)
        n_seen += 1
        if det is None:
            skipped(name)
            continue
        pose, _ = board_pose(
            det.image_points, det.object_points, info.K, info.D, info.fisheye, spec.kind == "aruco"
        )
        T_base_gripper.append(T)
        T_cam_board.append(pose)
    if not T_cam_board:
        raise no_board_error(spec, n_seen)
    X, _, quality = hand_eye(T_base_gripper, T_cam_board, setup=setup, method=method)
    parent = gripper if setup == "eye-in-hand" else base
    return Transform.from_matrix(X, parent, camera, quality)
