"""Finding a calibration target in an image: sub-pixel corners, their ids and board points."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hoposer.calib.boards import BoardSpec
from hoposer.errors import HoposerError


@dataclass(frozen=True, eq=False)
class Detection:
    """One view of the board.

    Attributes:
        image_points: `(N, 2)` float32 sub-pixel corner positions (integer = pixel centre).
        object_points: `(N, 3)` float32 the same corners in the board frame, metres.
        ids: `(N,)` int32 corner ids (index into `BoardSpec.object_points()`).
        image_size: `(width, height)` of the image.
        sharpness: variance of the Laplacian over the board's bounding box (higher = sharper).
        name: where the view came from (file name, frame number).
    """

    image_points: np.ndarray
    object_points: np.ndarray
    ids: np.ndarray
    image_size: tuple[int, int]
    sharpness: float
    name: str = ""


def to_gray(image: np.ndarray) -> np.ndarray:
    """An 8-bit single-channel copy of a grey, BGR or BGRA image."""
    import cv2

    if image.ndim == 2:
        gray = image
    elif image.shape[2] == 4:
        gray = cv2.cvtColor(image, cv2.COLOR_BGRA2GRAY)
    else:
        gray = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    if gray.dtype != np.uint8:
        gray = cv2.normalize(gray, None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)
    return gray


def sharpness(gray: np.ndarray, points: np.ndarray | None = None) -> float:
    """Variance of the Laplacian, over the bounding box of `points` when given."""
    import cv2

    if points is not None and len(points):
        x0, y0 = np.maximum(np.floor(points.min(0)).astype(int), 0)
        x1, y1 = np.ceil(points.max(0)).astype(int) + 1
        roi = gray[y0:y1, x0:x1]
        if roi.size >= 16:
            gray = roi
    return float(cv2.Laplacian(gray, cv2.CV_64F).var())


def _refine(gray: np.ndarray, pts: np.ndarray, spacing: float) -> np.ndarray:
    """Sub-pixel saddle points, searching a bit under half the corner spacing around each."""
    import cv2

    win = int(np.clip(spacing * 0.4, 2, 11))
    criteria = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 100, 1e-4)
    corners = np.ascontiguousarray(pts, np.float32).reshape(-1, 1, 2)
    return cv2.cornerSubPix(gray, corners, (win, win), (-1, -1), criteria).reshape(-1, 2)


class BoardDetector:
    """Detects one `BoardSpec` in images; build once, call `detect` per frame."""

    def __init__(self, spec: BoardSpec) -> None:
        """Prepare OpenCV's detectors for `spec`."""
        import cv2

        self.spec = spec
        self._object_points = spec.object_points()
        if spec.kind == "charuco":
            params = cv2.aruco.DetectorParameters()
            charuco_params = cv2.aruco.CharucoParameters()
            charuco_params.minMarkers = 2
            self._charuco = cv2.aruco.CharucoDetector(spec.cv_board(), charuco_params, params)
        elif spec.kind == "aruco":
            params = cv2.aruco.DetectorParameters()
            params.cornerRefinementMethod = cv2.aruco.CORNER_REFINE_SUBPIX
            params.cornerRefinementWinSize = 5
            params.cornerRefinementMinAccuracy = 0.01
            params.cornerRefinementMaxIterations = 100
            self._aruco = cv2.aruco.ArucoDetector(spec.cv_dictionary(), params)

    def detect(self, image: np.ndarray, name: str = "") -> Detection | None:
        """Find the board in `image`; None when it is not (fully enough) visible."""
        gray = to_gray(image)
        size = (gray.shape[1], gray.shape[0])
        if self.spec.kind == "checker":
            found = self._checker(gray)
        elif self.spec.kind == "charuco":
            found = self._charuco_corners(gray)
        else:
            found = self._marker(gray)
        if found is None:
            return None
        pts, ids = found
        return Detection(
            image_points=pts.astype(np.float32),
            object_points=self._object_points[ids],
            ids=ids.astype(np.int32),
            image_size=size,
            sharpness=sharpness(gray, pts),
            name=name,
        )

    def _checker(self, gray: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
        import cv2

        pattern = (self.spec.cols, self.spec.rows)
        flags = cv2.CALIB_CB_ADAPTIVE_THRESH | cv2.CALIB_CB_NORMALIZE_IMAGE
        ok, corners = cv2.findChessboardCorners(
            gray, pattern, flags=flags | cv2.CALIB_CB_FAST_CHECK
        )
        if not ok:
            return None
        pts = corners.reshape(-1, 2)
        # Search window: a bit under half the smallest spacing between neighbouring corners.
        grid = pts.reshape(self.spec.rows, self.spec.cols, 2)
        spacing = min(
            np.linalg.norm(np.diff(grid, axis=0), axis=-1).min(),
            np.linalg.norm(np.diff(grid, axis=1), axis=-1).min(),
        )
        return _refine(gray, pts, spacing), np.arange(len(pts))

    def _charuco_corners(self, gray: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
        corners, ids, _, _ = self._charuco.detectBoard(gray)
        if ids is None or len(ids) < 6:
            return None
        pts, ids = corners.reshape(-1, 2), ids.reshape(-1)
        # CharucoDetector (OpenCV 4.11) reports corners about half a pixel off towards +x, +y;
        # refining them again with cornerSubPix lands on the saddle point.
        dist = np.linalg.norm(pts[:, None] - pts[None], axis=-1)
        spacing = dist[dist > 0].min() if (dist > 0).any() else 10.0
        gap = (self.spec.square - self.spec.marker) / (2 * self.spec.square)  # corner→marker
        pts = _refine(gray, pts, spacing * min(1.0, 2.2 * gap))
        # Corners on one line cannot pin down a homography, let alone a calibration.
        obj = self._object_points[ids][:, :2]
        if np.linalg.matrix_rank(obj - obj.mean(0), tol=1e-6) < 2:
            return None
        return pts, ids

    def _marker(self, gray: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
        corners, ids, _ = self._aruco.detectMarkers(gray)
        if ids is None:
            return None
        hits = [
            c for c, i in zip(corners, ids.reshape(-1), strict=True) if i == self.spec.marker_id
        ]
        if len(hits) != 1:
            return None  # absent, or ambiguous (the same id twice)
        return hits[0].reshape(4, 2), np.arange(4)


def read_image(path: Path) -> np.ndarray:
    """An image file as stored: grey stays grey and 16 bits stay 16 (`to_gray` scales them).

    Raises:
        HoposerError: one line, when the file cannot be read.
    """
    import cv2

    from hoposer.frames import sources

    return sources.read_image(path, cv2.IMREAD_UNCHANGED)


def list_images(folder: Path) -> list[Path]:
    """Image files directly in `folder`, sorted by name (the suffixes every command reads)."""
    from hoposer.frames.sources import IMAGE_SUFFIXES, image_files

    if not folder.is_dir():
        raise HoposerError(f"image folder {folder} does not exist or is not a folder")
    files = image_files(folder)
    if not files:
        raise HoposerError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in {folder}")
    return files


def detect_in_files(
    spec: BoardSpec, files: list[Path], strict: bool = False
) -> tuple[list[Detection], tuple[int, int]]:
    """Detect the board in every file; unreadable files are skipped unless `strict`.

    Returns:
        The detections and the common image size.

    Raises:
        HoposerError: images of different sizes, no readable image, or the board found nowhere.
    """
    detector = BoardDetector(spec)
    detections: list[Detection] = []
    size: tuple[int, int] | None = None
    unreadable: list[str] = []
    for path in files:
        try:
            image = read_image(path)
        except HoposerError:
            if strict:
                raise
            unreadable.append(path.name)
            continue
        this = (image.shape[1], image.shape[0])
        if size is None:
            size = this
        elif this != size:
            raise HoposerError(
                f"{path.name} is {this[0]}x{this[1]} but earlier images are {size[0]}x{size[1]};"
                " calibrate one camera resolution at a time"
            )
        det = detector.detect(image, name=path.name)
        if det is not None:
            detections.append(det)
    if size is None:
        raise HoposerError(f"none of the {len(files)} image files could be read")
    if not detections:
        raise no_board_error(spec, len(files) - len(unreadable))
    return detections, size


def no_board_error(spec: BoardSpec, n_images: int) -> HoposerError:
    """The message for 'board found in no image', with what to check."""
    hint = {
        "checker": "checker:COLSxROWS counts inner corners (a 10x7-square board is checker:9x6)",
        "charuco": "charuco:COLSxROWS counts squares; check --dict",
        "aruco": "check the marker id and --dict",
    }[spec.kind]
    return HoposerError(
        f"board {spec} not found in any of {n_images} images; check --board ({hint}), "
        "lighting and focus"
    )
