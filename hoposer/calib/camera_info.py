"""Camera intrinsics in ROS's `camera_info` YAML, the layout `camera_calibration_parsers` reads.

```yaml
image_width: 640
image_height: 480
camera_name: camera
camera_matrix: {rows: 3, cols: 3, data: [fx, 0, cx, 0, fy, cy, 0, 0, 1]}
distortion_model: plumb_bob        # or rational_polynomial, equidistant
distortion_coefficients: {rows: 1, cols: 5, data: [k1, k2, p1, p2, k3]}
rectification_matrix: {rows: 3, cols: 3, data: [...]}
projection_matrix: {rows: 3, cols: 4, data: [...]}
```
(written in block style, one key per line, exactly as ROS writes it).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from hoposer.errors import HoposerError
from hoposer.io import write_text_atomic

# Number of distortion coefficients per ROS distortion model.
DISTORTION_LENGTHS: dict[str, tuple[int, ...]] = {
    "plumb_bob": (5,),  # k1 k2 p1 p2 k3
    "rational_polynomial": (8,),  # k1 k2 p1 p2 k3 k4 k5 k6
    "equidistant": (4,),  # k1 k2 k3 k4 (OpenCV fisheye)
}
_MATRICES = {
    "camera_matrix": (3, 3),
    "rectification_matrix": (3, 3),
    "projection_matrix": (3, 4),
}


@dataclass(frozen=True, eq=False)
class CameraInfo:
    """A calibrated camera, as ROS `sensor_msgs/CameraInfo` holds it.

    Attributes:
        width: image width in pixels.
        height: image height in pixels.
        name: camera name (letters, digits, `_`, `-`, `.`).
        K: `(3, 3)` intrinsics `[[fx, 0, cx], [0, fy, cy], [0, 0, 1]]`, pixel centres at integers.
        D: distortion coefficients, OpenCV order, length fixed by `distortion_model`.
        distortion_model: "plumb_bob", "rational_polynomial" or "equidistant" (fisheye).
        R: `(3, 3)` rectification rotation (identity for a monocular camera).
        P: `(3, 4)` projection matrix of the rectified (undistorted) image.
        comment: lines written as `#` comments at the top of the file (not read back).
    """

    width: int
    height: int
    name: str
    K: np.ndarray
    D: np.ndarray
    distortion_model: str = "plumb_bob"
    R: np.ndarray = field(default_factory=lambda: np.eye(3))
    P: np.ndarray | None = None
    comment: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "K", np.asarray(self.K, np.float64).reshape(3, 3))
        object.__setattr__(self, "D", np.asarray(self.D, np.float64).reshape(-1))
        object.__setattr__(self, "R", np.asarray(self.R, np.float64).reshape(3, 3))
        if self.P is None:
            object.__setattr__(self, "P", np.concatenate([self.K, np.zeros((3, 1))], 1))
        object.__setattr__(self, "P", np.asarray(self.P, np.float64).reshape(3, 4))

    @property
    def fisheye(self) -> bool:
        """Whether the distortion model is OpenCV's fisheye (ROS "equidistant")."""
        return self.distortion_model == "equidistant"

    def scaled_to(self, width: int, height: int) -> CameraInfo:
        """The same camera at another resolution of the same aspect ratio (K and P scaled).

        Raises:
            HoposerError: the aspect ratio differs (a crop, not a scaling: recalibrate).
        """
        if (width, height) == (self.width, self.height):
            return self
        sx, sy = width / self.width, height / self.height
        if abs(sx - sy) > 0.01 * max(sx, sy):
            raise HoposerError(
                f"camera info is for {self.width}x{self.height} but images are {width}x{height}"
                " (different aspect ratio); calibrate at this resolution"
            )
        S = np.diag([sx, sy, 1.0])
        # Pixel centres at integers: x' = s (x + 0.5) - 0.5.
        S[0, 2], S[1, 2] = 0.5 * sx - 0.5, 0.5 * sy - 0.5
        return CameraInfo(
            width,
            height,
            self.name,
            S @ self.K,
            self.D,
            self.distortion_model,
            self.R,
            S @ self.P,
            self.comment,
        )


def _fmt(values: np.ndarray) -> str:
    return "[" + ", ".join(repr(float(v)) for v in np.asarray(values).reshape(-1)) + "]"


def _check_name(name: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9_.\-/]+", name or ""):
        raise HoposerError(
            f"camera name '{name}' must be letters, digits, '_', '-', '.' or '/' (no spaces)"
        )
    return name


def camera_info_yaml(info: CameraInfo) -> str:
    """The YAML text of `info` in ROS's layout."""
    model = info.distortion_model
    if model not in DISTORTION_LENGTHS:
        raise HoposerError(f"unknown distortion model '{model}'; use {list(DISTORTION_LENGTHS)}")
    if len(info.D) not in DISTORTION_LENGTHS[model]:
        raise HoposerError(
            f"{model} needs {DISTORTION_LENGTHS[model][0]} distortion coefficients, "
            f"got {len(info.D)}"
        )
    lines = [f"# {c}" for c in info.comment]
    lines += [
        f"image_width: {int(info.width)}",
        f"image_height: {int(info.height)}",
        f"camera_name: {_check_name(info.name)}",
    ]

    def matrix(key: str, m: np.ndarray, rows: int, cols: int) -> list[str]:
        return [f"{key}:", f"  rows: {rows}", f"  cols: {cols}", f"  data: {_fmt(m)}"]

    lines += matrix("camera_matrix", info.K, 3, 3)
    lines.append(f"distortion_model: {model}")
    lines += matrix("distortion_coefficients", info.D, 1, len(info.D))
    lines += matrix("rectification_matrix", info.R, 3, 3)
    lines += matrix("projection_matrix", info.P, 3, 4)
    return "\n".join(lines) + "\n"


def write_camera_info(path: str | Path, info: CameraInfo) -> Path:
    """Write `info` as ROS camera_info YAML, atomically."""
    path = Path(path)
    if not path.parent.exists():
        raise HoposerError(f"folder {path.parent} does not exist")
    write_text_atomic(path, camera_info_yaml(info))
    return path


def _matrix(doc: dict, key: str, where: str, shape: tuple[int, int] | None) -> np.ndarray:
    node = doc.get(key)
    if not isinstance(node, dict) or not {"rows", "cols", "data"} <= node.keys():
        raise HoposerError(f"{where}: '{key}' must be a mapping with rows, cols and data")
    rows, cols, data = node["rows"], node["cols"], node["data"]
    if not isinstance(rows, int) or not isinstance(cols, int) or not isinstance(data, list):
        raise HoposerError(f"{where}: '{key}' needs integer rows/cols and a data list")
    if shape is not None and (rows, cols) != shape:
        raise HoposerError(f"{where}: '{key}' must be {shape[0]}x{shape[1]}, got {rows}x{cols}")
    if len(data) != rows * cols:
        raise HoposerError(
            f"{where}: '{key}' has {len(data)} values but rows x cols = {rows * cols}"
        )
    try:
        values = np.array([float(v) for v in data], np.float64)
    except (TypeError, ValueError):
        raise HoposerError(f"{where}: '{key}' data must all be numbers") from None
    if not np.isfinite(values).all():
        raise HoposerError(f"{where}: '{key}' data must be finite numbers")
    return values.reshape(rows, cols)


def read_camera_info(path: str | Path) -> CameraInfo:
    """Read and validate a ROS camera_info YAML file (ours or any ROS tool's).

    Raises:
        HoposerError: missing or unreadable file, bad YAML, missing fields, wrong shapes,
            unknown distortion model or an impossible camera matrix — one line naming the field.
    """
    import yaml

    path = Path(path)
    where = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise HoposerError(f"camera info file {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as err:
        raise HoposerError(f"cannot read camera info {path}: {err}") from None
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as err:
        line = getattr(getattr(err, "problem_mark", None), "line", None)
        at = f" (line {line + 1})" if line is not None else ""
        raise HoposerError(f"{where}: not valid YAML{at}") from None
    if not isinstance(doc, dict):
        raise HoposerError(f"{where}: not a camera_info YAML mapping")
    for key in ("image_width", "image_height", "camera_matrix", "distortion_coefficients"):
        if key not in doc:
            raise HoposerError(f"{where}: missing '{key}' (not a ROS camera_info file?)")
    width, height = doc["image_width"], doc["image_height"]
    if not isinstance(width, int) or not isinstance(height, int) or width <= 0 or height <= 0:
        raise HoposerError(f"{where}: image_width and image_height must be positive integers")
    K = _matrix(doc, "camera_matrix", where, (3, 3))
    if K[0, 0] <= 0 or K[1, 1] <= 0 or not np.allclose(K[2], [0, 0, 1]) or K[1, 0] != 0:
        raise HoposerError(f"{where}: camera_matrix must be [[fx,s,cx],[0,fy,cy],[0,0,1]], fx,fy>0")
    model = str(doc.get("distortion_model") or "plumb_bob")
    if model not in DISTORTION_LENGTHS:
        raise HoposerError(
            f"{where}: distortion_model '{model}' is not supported; use {list(DISTORTION_LENGTHS)}"
        )
    D = _matrix(doc, "distortion_coefficients", where, None).reshape(-1)
    if model == "plumb_bob" and len(D) in (0, 4):
        D = np.concatenate([D, np.zeros(5 - len(D))])  # ROS drivers sometimes write fewer
    if len(D) not in DISTORTION_LENGTHS[model]:
        raise HoposerError(
            f"{where}: {model} needs {DISTORTION_LENGTHS[model][0]} distortion coefficients, "
            f"got {len(D)}"
        )
    R = (
        _matrix(doc, "rectification_matrix", where, (3, 3))
        if "rectification_matrix" in doc
        else None
    )
    P = _matrix(doc, "projection_matrix", where, (3, 4)) if "projection_matrix" in doc else None
    name = doc.get("camera_name") or "camera"
    return CameraInfo(width, height, str(name), K, D, model, np.eye(3) if R is None else R, P)
