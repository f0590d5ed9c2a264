"""Camera intrinsics from board views: view selection, calibration, outlier views, sanity checks."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from hoposer.calib.camera_info import CameraInfo
from hoposer.calib.detect import Detection
from hoposer.errors import HoposerError

# Names of OpenCV's stdDeviationsIntrinsics entries, in order.
_STD_NAMES = ("fx", "fy", "cx", "cy", "k1", "k2", "p1", "p2", "k3", "k4", "k5", "k6")
_FISHEYE_STD_NAMES = ("fx", "fy", "cx", "cy", "k1", "k2", "k3", "k4")


@dataclass(frozen=True)
class CalibrationOptions:
    """How to calibrate.

    Attributes:
        fisheye: OpenCV's fisheye model (ROS "equidistant") instead of pinhole + rad-tan.
        k_coefficients: radial terms of the pinhole model: 2 (k3 fixed at 0, ROS's default),
            3, or 6 (rational model, ROS "rational_polynomial").
        min_views: refuse with fewer good views than this.
        outlier_factor: a view is an outlier when its RMS error exceeds this × the median...
        outlier_min_px: ...and this many pixels.
        max_rms: refuse when the overall RMS error stays above this (pixels).
        min_tilt_deg: at least `min_tilted_views` views must tilt the board this much.
        min_tilted_views: see `min_tilt_deg`.
        name: camera name written into the camera_info.
    """

    fisheye: bool = False
    k_coefficients: int = 2
    min_views: int = 8
    outlier_factor: float = 3.0
    outlier_min_px: float = 1.0
    max_rms: float = 2.0
    min_tilt_deg: float = 15.0
    min_tilted_views: int = 2
    name: str = "camera"


@dataclass(frozen=True, eq=False)
class CalibrationResult:
    """A calibration and what it is worth.

    Attributes:
        info: the camera (write it with `write_camera_info`).
        rms: RMS reprojection error over all corners of the kept views, pixels.
        view_errors: `(n_views,)` RMS error of every view given, pixels (outliers measured with
            the final calibration).
        kept: `(n_views,)` bool, the views the calibration used.
        std: one-sigma uncertainty of each parameter (name → value, pixels or unitless); empty
            for fisheye.
        tilts_deg: `(n_views,)` angle between board normal and optical axis per view.
        detections: the views given, in order.
    """

    info: CameraInfo
    rms: float
    view_errors: np.ndarray
    kept: np.ndarray
    std: dict[str, float]
    tilts_deg: np.ndarray
    detections: list[Detection] = field(repr=False)

    def summary(self) -> str:
        """A few lines for the terminal."""
        K = self.info.K
        s = self.std
        pm = {k: f" ± {s[k]:.2f}" if k in s else "" for k in ("fx", "fy", "cx", "cy")}
        lines = [
            f"RMS reprojection error {self.rms:.3f} px over {int(self.kept.sum())} of "
            f"{len(self.kept)} views ({self.info.distortion_model})",
            f"fx {K[0, 0]:.2f}{pm['fx']}  fy {K[1, 1]:.2f}{pm['fy']}  "
            f"cx {K[0, 2]:.2f}{pm['cx']}  cy {K[1, 2]:.2f}{pm['cy']}  (pixels, 1 sigma)",
            "distortion " + ", ".join(f"{d:.5f}" for d in self.info.D),
        ]
        dropped = [d.name or str(i) for i, d in enumerate(self.detections) if not self.kept[i]]
        if dropped:
            lines.append(f"dropped outlier views: {', '.join(dropped)}")
        return "\n".join(lines)


def _flags(options: CalibrationOptions) -> tuple[int, str, int]:
    import cv2

    if options.fisheye:
        flags = cv2.fisheye.CALIB_RECOMPUTE_EXTRINSIC | cv2.fisheye.CALIB_FIX_SKEW
        return flags, "equidistant", 4
    if options.k_coefficients == 2:
        return cv2.CALIB_FIX_K3, "plumb_bob", 5
    if options.k_coefficients == 3:
        return 0, "plumb_bob", 5
    if options.k_coefficients == 6:
        return cv2.CALIB_RATIONAL_MODEL, "rational_polynomial", 8
    raise HoposerError(f"--k-coefficients must be 2, 3 or 6, got {options.k_coefficients}")


def _solve(
    dets: list[Detection], size: tuple[int, int], options: CalibrationOptions
) -> tuple[float, np.ndarray, np.ndarray, list, list, np.ndarray | None]:
    """One OpenCV calibration: (rms, K, D, rvecs, tvecs, std of intrinsics or None)."""
    import cv2

    flags, _, n_d = _flags(options)
    obj = [d.object_points.astype(np.float64).reshape(-1, 1, 3) for d in dets]
    img = [d.image_points.astype(np.float64).reshape(-1, 1, 2) for d in dets]
    criteria = (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 100, 1e-12)
    try:
        if options.fisheye:
            K, D = np.eye(3), np.zeros((4, 1))
            rms, K, D, rvecs, tvecs = cv2.fisheye.calibrate(
                obj, img, size, K, D, flags=flags, criteria=criteria
            )
            return rms, K, D.reshape(-1)[:n_d], list(rvecs), list(tvecs), None
        rms, K, D, rvecs, tvecs, std, _, _ = cv2.calibrateCameraExtended(
            [o.astype(np.float32) for o in obj],
            [i.astype(np.float32) for i in img],
            size,
            None,
            None,
            flags=flags,
            criteria=criteria,
        )
    except cv2.error as err:
        msg = str(err).strip().splitlines()[-1] if str(err).strip() else "unknown error"
        raise HoposerError(f"OpenCV could not calibrate these views ({msg})") from None
    D = np.asarray(D).reshape(-1)
    D = np.concatenate([D, np.zeros(max(0, n_d - len(D)))])[:n_d]
    return rms, K, D, list(rvecs), list(tvecs), np.asarray(std).reshape(-1)


def _view_errors(
    dets: list[Detection], K: np.ndarray, D: np.ndarray, rvecs: list, tvecs: list, fisheye: bool
) -> np.ndarray:
    import cv2

    out = []
    for d, r, t in zip(dets, rvecs, tvecs, strict=True):
        obj = d.object_points.astype(np.float64).reshape(-1, 1, 3)
        if fisheye:
            uv, _ = cv2.fisheye.projectPoints(obj, r, t, K, D.reshape(4, 1))
        else:
            uv, _ = cv2.projectPoints(obj, r, t, K, D)
        out.append(np.sqrt(np.mean(np.sum((uv.reshape(-1, 2) - d.image_points) ** 2, 1))))
    return np.array(out)


def _pose_for(
    d: Detection, K: np.ndarray, D: np.ndarray, fisheye: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Board pose of one view under a given calibration (for measuring outlier views)."""
    import cv2

    obj = d.object_points.astype(np.float64)
    img = d.image_points.astype(np.float64).reshape(-1, 1, 2)
    if fisheye:
        img = cv2.fisheye.undistortPoints(img, K, D.reshape(4, 1), P=K)
        D = np.zeros(5)
    _, r, t = cv2.solvePnP(obj, img, K, None if fisheye else D, flags=cv2.SOLVEPNP_ITERATIVE)
    return r, t


def tilt_deg(rvec: np.ndarray) -> float:
    """Angle between the board's normal and the camera's optical axis, degrees."""
    import cv2

    R = cv2.Rodrigues(np.asarray(rvec, np.float64))[0]
    return float(np.degrees(np.arccos(np.clip(abs(R[2, 2]), 0.0, 1.0))))


def calibrate(
    detections: list[Detection],
    image_size: tuple[int, int],
    options: CalibrationOptions | None = None,
) -> CalibrationResult:
    """Calibrate from board views, dropping outlier views one at a time.

    Raises:
        HoposerError: too few views (before or after dropping outliers), a degenerate set (all
            views nearly fronto-parallel), or an RMS error too large to trust (wrong board size
            or square length, rolling shutter, motion blur).
    """
    options = options or CalibrationOptions()
    _, model, _ = _flags(options)
    n = len(detections)
    if n < options.min_views:
        raise HoposerError(
            f"board found in only {n} views; at least {options.min_views} are needed "
            "(more, varied in position, distance and tilt, give a better calibration)"
        )
    kept = np.ones(n, bool)
    while True:
        idx = np.flatnonzero(kept)
        used = [detections[i] for i in idx]
        rms, K, D, rvecs, tvecs, std = _solve(used, image_size, options)
        errors = _view_errors(used, K, D, rvecs, tvecs, options.fisheye)
        limit = max(options.outlier_factor * float(np.median(errors)), options.outlier_min_px)
        worst = int(np.argmax(errors))
        if errors[worst] <= limit or len(idx) <= options.min_views:
            break
        kept[idx[worst]] = False
    if errors.max() > limit:
        raise HoposerError(
            f"only {len(idx)} views left and some still reproject badly ({errors.max():.2f} px); "
            "take more sharp views, or check --board and --square"
        )
    if rms > options.max_rms:
        raise HoposerError(
            f"RMS reprojection error {rms:.2f} px is too large to trust (limit {options.max_rms});"
            " check --board (size, square, marker) and that the board is flat and sharp"
        )
    all_errors = np.zeros(n)
    all_errors[idx] = errors
    tilts = np.zeros(n)
    for j, i in enumerate(idx):
        tilts[i] = tilt_deg(rvecs[j])
    for i in np.flatnonzero(~kept):
        r, t = _pose_for(detections[i], K, D, options.fisheye)
        all_errors[i] = _view_errors([detections[i]], K, D, [r], [t], options.fisheye)[0]
        tilts[i] = tilt_deg(r)
    n_tilted = int((tilts[kept] >= options.min_tilt_deg).sum())
    if n_tilted < options.min_tilted_views:
        raise HoposerError(
            f"degenerate views: only {n_tilted} of {len(idx)} views tilt the board by "
            f"{options.min_tilt_deg:g}° or more (largest {tilts[kept].max():.1f}°), so the focal "
            "length cannot be told from the distance; add views tilted 20-45° left/right/up/down"
        )
    std_names = _FISHEYE_STD_NAMES if options.fisheye else _STD_NAMES
    stds = {} if std is None else {k: float(v) for k, v in zip(std_names, std, strict=False)}
    if not options.fisheye:
        n_d = len(D)
        keep_names = set(std_names[:4]) | {"k1", "k2", "p1", "p2"}
        if n_d >= 5 and options.k_coefficients >= 3:
            keep_names |= {"k3"}
        if n_d == 8:
            keep_names |= {"k4", "k5", "k6"}
        stds = {k: v for k, v in stds.items() if k in keep_names}
    info = CameraInfo(
        width=image_size[0],
        height=image_size[1],
        name=options.name,
        K=K,
        D=D,
        distortion_model=model,
        P=_projection(K, D, image_size, options.fisheye),
        comment=(
            f"hoposer calib camera: RMS {rms:.4f} px, {len(idx)} views",
            "uncertainty (1 sigma): " + ", ".join(f"{k} {v:.4g}" for k, v in stds.items())
            if stds
            else "uncertainty: not available for the fisheye model",
        ),
    )
    return CalibrationResult(info, float(rms), all_errors, kept, stds, tilts, list(detections))


def _projection(K: np.ndarray, D: np.ndarray, size: tuple[int, int], fisheye: bool) -> np.ndarray:
    """ROS's P for a monocular camera: the undistorted image's matrix (alpha 0: no black edges)."""
    import cv2

    if fisheye:
        newK = cv2.fisheye.estimateNewCameraMatrixForUndistortRectify(
            K, D.reshape(4, 1), size, np.eye(3), balance=0.0
        )
    else:
        newK, _ = cv2.getOptimalNewCameraMatrix(K, D, size, 0.0, size)
    return np.concatenate([newK, np.zeros((3, 1))], 1)


# --- choosing views from a live camera or a video -------------------------------------------


@dataclass(frozen=True)
class ViewFeatures:
    """Where and how the board sits in one view, for novelty and coverage.

    Attributes:
        x: board centre across the image, 0..1.
        y: board centre down the image, 0..1.
        size: sqrt(board area / image area), 0..1.
        tilt_x: board tilt about the image x axis (up/down), degrees (approximate).
        tilt_y: board tilt about the image y axis (left/right), degrees (approximate).
    """

    x: float
    y: float
    size: float
    tilt_x: float
    tilt_y: float

    def distance(self, other: ViewFeatures) -> float:
        """Novelty metric: 1.0 ≈ moved 15 % of the image, 40 % in scale, or tilted 15°."""
        return float(
            np.sqrt(
                ((self.x - other.x) / 0.15) ** 2
                + ((self.y - other.y) / 0.15) ** 2
                + (np.log(self.size / other.size) / np.log(1.4)) ** 2
                + ((self.tilt_x - other.tilt_x) / 15.0) ** 2
                + ((self.tilt_y - other.tilt_y) / 15.0) ** 2
            )
        )


def view_features(d: Detection) -> ViewFeatures:
    """Features of a view, tilt from a PnP with a guessed camera (f ≈ image width)."""
    import cv2

    w, h = d.image_size
    pts = d.image_points
    hull = cv2.convexHull(pts.reshape(-1, 1, 2).astype(np.float32))
    area = float(cv2.contourArea(hull))
    K = np.array([[w, 0, (w - 1) / 2], [0, w, (h - 1) / 2], [0, 0, 1.0]])
    ok, rvec, _ = cv2.solvePnP(
        d.object_points.astype(np.float64),
        pts.astype(np.float64),
        K,
        None,
        flags=cv2.SOLVEPNP_IPPE,
    )
    tx = ty = 0.0
    if ok:
        n = cv2.Rodrigues(rvec)[0][:, 2]  # board normal in the camera
        tx = float(np.degrees(np.arctan2(n[1], n[2])))
        ty = float(np.degrees(np.arctan2(n[0], n[2])))
    c = pts.mean(0)
    return ViewFeatures(c[0] / w, c[1] / h, float(np.sqrt(max(area, 1.0) / (w * h))), tx, ty)


class ViewSelector:
    """Keeps a view when it is sharp, still and far enough from every view kept so far.

    Used by live capture (`--camera`) and by video input (`--video`).
    """

    def __init__(
        self, min_novelty: float = 1.0, min_sharpness: float = 30.0, max_motion_px: float = 2.0
    ) -> None:
        """Thresholds: novelty (see `ViewFeatures.distance`), Laplacian variance, corner motion."""
        self.min_novelty = min_novelty
        self.min_sharpness = min_sharpness
        self.max_motion_px = max_motion_px
        self.kept: list[Detection] = []
        self.features: list[ViewFeatures] = []
        self._previous: Detection | None = None

    def consider(self, d: Detection | None) -> bool:
        """Keep `d` if it is new enough; returns whether it was kept."""
        previous, self._previous = self._previous, d
        if d is None or d.sharpness < self.min_sharpness:
            return False
        if self.max_motion_px > 0:  # compare with the previous frame: a moving board smears
            if previous is None or not np.array_equal(previous.ids, d.ids):
                return False
            motion = np.abs(previous.image_points - d.image_points).max()
            if motion > self.max_motion_px:
                return False
        f = view_features(d)
        if self.features and min(f.distance(g) for g in self.features) < self.min_novelty:
            return False
        self.kept.append(d)
        self.features.append(f)
        return True


class Coverage:
    """Which image regions, tilts and distances the kept views cover (the live indicator)."""

    def __init__(self, image_size: tuple[int, int], grid: tuple[int, int] = (4, 3)) -> None:
        """Track coverage of a `grid` (columns, rows) of image cells."""
        self.image_size = image_size
        self.grid = grid
        self.cells = np.zeros(grid[::-1], bool)
        self.tilts: set[str] = set()
        self.scales: set[str] = set()

    def add(self, d: Detection, f: ViewFeatures | None = None) -> None:
        """Count a kept view."""
        f = f or view_features(d)
        w, h = self.image_size
        cx = np.clip((d.image_points[:, 0] / w * self.grid[0]).astype(int), 0, self.grid[0] - 1)
        cy = np.clip((d.image_points[:, 1] / h * self.grid[1]).astype(int), 0, self.grid[1] - 1)
        self.cells[cy, cx] = True
        for name, on in (
            ("left", f.tilt_y < -15),
            ("right", f.tilt_y > 15),
            ("up", f.tilt_x < -15),
            ("down", f.tilt_x > 15),
        ):
            if on:
                self.tilts.add(name)
        self.scales.add("near" if f.size > 0.45 else "far" if f.size < 0.3 else "mid")

    def missing(self) -> list[str]:
        """What is still missing, in words (empty when covered)."""
        out = []
        if not self.cells.all():
            out.append(f"{int((~self.cells).sum())} image regions")
        out += [f"tilt {t}" for t in ("left", "right", "up", "down") if t not in self.tilts]
        out += [f"{s} board" for s in ("near", "far") if s not in self.scales]
        return out

    def draw(self, frame: np.ndarray, n_views: int) -> np.ndarray:
        """Overlay the coverage grid (covered cells green) and what is missing on `frame`."""
        import cv2

        out = frame.copy() if frame.ndim == 3 else cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)
        h, w = out.shape[:2]
        gx, gy = self.grid
        overlay = out.copy()
        for r in range(gy):
            for c in range(gx):
                p0 = (c * w // gx, r * h // gy)
                p1 = ((c + 1) * w // gx - 1, (r + 1) * h // gy - 1)
                if self.cells[r, c]:
                    cv2.rectangle(overlay, p0, p1, (0, 200, 0), -1)
                cv2.rectangle(out, p0, p1, (200, 200, 200), 1)
        out = cv2.addWeighted(overlay, 0.25, out, 0.75, 0)
        missing = self.missing()
        text = f"{n_views} views; missing: {', '.join(missing)}" if missing else f"{n_views} views"
        cv2.putText(out, text, (8, 22), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (0, 0, 0), 3)
        cv2.putText(out, text, (8, 22), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (0, 255, 255), 1)
        return out
