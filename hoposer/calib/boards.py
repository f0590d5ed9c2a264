"""Calibration targets: checkerboard, ChArUco board, single ArUco marker.

Board frame (checkerboard and ChArUco, OpenCV's ChArUco convention): origin at the top-left outer
corner of the squares, x to the right, y down the printed page, z into the board (away from a
camera that sees its face). Single ArUco marker (OpenCV's `estimatePoseSingleMarkers` convention):
origin at the marker centre, x right, y up, z out of the marker towards the camera.

Sizes: `checker:COLSxROWS` counts *inner corners* (OpenCV's `patternSize`, ROS's `--size`), so
`checker:9x6` is a board of 10×7 squares; `charuco:COLSxROWS` counts *squares* (OpenCV's
`CharucoBoard((COLS, ROWS), ...)`); `aruco:ID` is one marker of side `--marker`.
"""

from __future__ import annotations

import difflib
import re
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np

from hoposer.errors import HoposerError
from hoposer.io import atomic_path

if TYPE_CHECKING:
    import cv2

BoardKind = Literal["checker", "charuco", "aruco"]
BOARD_KINDS: tuple[str, ...] = ("checker", "charuco", "aruco")
METERS_PER_POINT = 0.0254 / 72.0  # PDF user space unit


@dataclass(frozen=True)
class BoardSpec:
    """A calibration target, all lengths in metres.

    Attributes:
        kind: "checker", "charuco" or "aruco" (one marker).
        cols: inner corners across (checker), squares across (charuco); 1 for aruco.
        rows: inner corners down (checker), squares down (charuco); 1 for aruco.
        square: side of one square (checker, charuco); unused for aruco.
        marker: marker side (charuco, aruco); None for checker.
        dictionary: ArUco dictionary name without "DICT_", e.g. "4X4_50" (charuco, aruco).
        marker_id: the marker's id (aruco only).
    """

    kind: BoardKind
    cols: int
    rows: int
    square: float = 0.0
    marker: float | None = None
    dictionary: str | None = None
    marker_id: int = 0

    def __str__(self) -> str:
        if self.kind == "checker":
            return f"checker:{self.cols}x{self.rows} square {self.square * 1000:g} mm"
        if self.kind == "charuco":
            return (
                f"charuco:{self.cols}x{self.rows} square {self.square * 1000:g} mm "
                f"marker {self.marker * 1000:g} mm dict {self.dictionary}"
            )
        return f"aruco:{self.marker_id} marker {self.marker * 1000:g} mm dict {self.dictionary}"

    @property
    def size_m(self) -> tuple[float, float]:
        """Printed width and height of the pattern (without quiet zone), metres."""
        if self.kind == "checker":
            return ((self.cols + 1) * self.square, (self.rows + 1) * self.square)
        if self.kind == "charuco":
            return (self.cols * self.square, self.rows * self.square)
        return (self.marker, self.marker)

    @property
    def quiet_zone_m(self) -> float:
        """White margin needed around the pattern for detection, metres."""
        return self.square if self.kind in ("checker", "charuco") else self.marker / 4

    @property
    def n_corners(self) -> int:
        """Number of corner points the board provides."""
        if self.kind == "checker":
            return self.cols * self.rows
        if self.kind == "charuco":
            return (self.cols - 1) * (self.rows - 1)
        return 4

    def object_points(self) -> np.ndarray:
        """`(n_corners, 3)` float32 corner positions in the board frame, indexed by corner id.

        Checker: row-major over inner corners, as `cv2.findChessboardCorners` orders them.
        ChArUco: as `CharucoBoard.getChessboardCorners()`. ArUco: the marker's four corners
        (top-left, top-right, bottom-right, bottom-left) as `SOLVEPNP_IPPE_SQUARE` expects.
        """
        if self.kind == "checker":
            j, i = np.mgrid[0 : self.rows, 0 : self.cols]
            pts = np.stack([(i + 1) * self.square, (j + 1) * self.square, 0 * i], -1)
            return pts.reshape(-1, 3).astype(np.float32)
        if self.kind == "charuco":
            return np.asarray(self.cv_board().getChessboardCorners(), np.float32).reshape(-1, 3)
        h = self.marker / 2
        return np.array([[-h, h, 0], [h, h, 0], [h, -h, 0], [-h, -h, 0]], np.float32)

    def cv_dictionary(self) -> cv2.aruco.Dictionary:
        """The OpenCV ArUco dictionary (charuco, aruco)."""
        import cv2

        return cv2.aruco.getPredefinedDictionary(getattr(cv2.aruco, f"DICT_{self.dictionary}"))

    def cv_board(self) -> cv2.aruco.CharucoBoard:
        """The OpenCV ChArUco board (charuco only)."""
        import cv2

        if self.kind != "charuco":
            raise ValueError(f"{self} is not a ChArUco board")
        return cv2.aruco.CharucoBoard(
            (self.cols, self.rows), self.square, self.marker, self.cv_dictionary()
        )


def _dictionary_names() -> list[str]:
    import cv2

    return sorted(n[5:] for n in dir(cv2.aruco) if n.startswith("DICT_") and n[5:] == n[5:].upper())


def _check_dictionary(name: str | None) -> str:
    import cv2

    if not name:
        raise HoposerError("an ArUco board needs --dict, e.g. --dict 4X4_50")
    key = name.upper().removeprefix("DICT_")
    if not hasattr(cv2.aruco, f"DICT_{key}"):
        names = _dictionary_names()
        close = difflib.get_close_matches(key, names, n=1)
        hint = f"did you mean '{close[0]}'? " if close else ""
        raise HoposerError(f"unknown ArUco dictionary '{name}'; {hint}choose one of {names}")
    return key


def parse_board(
    text: str,
    square: float | None = None,
    marker: float | None = None,
    dictionary: str | None = None,
) -> BoardSpec:
    """Parse `checker:9x6`, `charuco:5x7` or `aruco:ID` plus sizes in metres into a `BoardSpec`.

    Raises:
        HoposerError: a one-line message naming what is wrong and the expected form.
    """
    kind, sep, size = text.strip().partition(":")
    kind = kind.lower()
    if kind not in BOARD_KINDS or not sep:
        close = difflib.get_close_matches(kind, BOARD_KINDS, n=1)
        hint = f"did you mean '{close[0]}:...'? " if close else ""
        raise HoposerError(
            f"unknown board '{text}'; {hint}use checker:COLSxROWS (inner corners), "
            "charuco:COLSxROWS (squares) or aruco:ID"
        )
    if kind == "aruco":
        if not size.isdigit():
            raise HoposerError(f"bad board '{text}': expected aruco:ID with an integer marker id")
        if not marker or marker <= 0:
            raise HoposerError("an ArUco marker needs its side length: --marker METRES, e.g. 0.1")
        key = _check_dictionary(dictionary)
        spec = BoardSpec("aruco", 1, 1, 0.0, float(marker), key, int(size))
        n_ids = spec.cv_dictionary().bytesList.shape[0]
        if spec.marker_id >= n_ids:
            raise HoposerError(f"marker id {spec.marker_id} is not in {key} (ids 0..{n_ids - 1})")
        return spec
    m = re.fullmatch(r"(\d+)[xX](\d+)", size)
    if not m:
        raise HoposerError(f"bad board size in '{text}': expected {kind}:COLSxROWS, e.g. 9x6")
    cols, rows = int(m[1]), int(m[2])
    if not square or square <= 0:
        raise HoposerError(f"a {kind} board needs its square side: --square METRES, e.g. 0.024")
    if square > 1.0:
        raise HoposerError(f"--square {square} is over 1 m; give it in metres (24 mm = 0.024)")
    if kind == "checker":
        if cols < 3 or rows < 3:
            raise HoposerError(
                f"bad board '{text}': a checkerboard needs at least 3x3 inner corners"
            )
        return BoardSpec("checker", cols, rows, float(square))
    if cols < 3 or rows < 3:
        raise HoposerError(f"bad board '{text}': a ChArUco board needs at least 3x3 squares")
    if not marker or not 0 < marker < square:
        raise HoposerError(
            f"a ChArUco board needs --marker smaller than --square ({square} m), e.g. "
            f"{0.75 * square:.3g}"
        )
    key = _check_dictionary(dictionary)
    spec = BoardSpec("charuco", cols, rows, float(square), float(marker), key)
    n_markers = (cols * rows) // 2
    n_ids = spec.cv_dictionary().bytesList.shape[0]
    if n_markers > n_ids:
        raise HoposerError(
            f"charuco:{cols}x{rows} needs {n_markers} markers but {key} has only {n_ids}; "
            "choose a larger dictionary"
        )
    return spec


def board_texture(spec: BoardSpec, px_per_m: float) -> tuple[np.ndarray, np.ndarray]:
    """Render the board with its quiet zone as an 8-bit grey image at `px_per_m`.

    Returns:
        `(image (H, W) uint8, A (2, 3))` where `A @ [X, Y, 1]` maps a board-frame point to image
        pixel coordinates (integer = pixel centre, as `cv2.remap` reads them).
    """
    import cv2

    margin = round(spec.quiet_zone_m * px_per_m)
    if spec.kind == "checker":
        s = round(spec.square * px_per_m)
        nx, ny = spec.cols + 1, spec.rows + 1
        j, i = np.mgrid[0 : ny * s, 0 : nx * s]
        pattern = np.where(((i // s) + (j // s)) % 2 == 0, 0, 255).astype(np.uint8)
        scale = s / spec.square
    elif spec.kind == "charuco":
        s = round(spec.square * px_per_m)
        size = (spec.cols * s, spec.rows * s)
        pattern = spec.cv_board().generateImage(size, marginSize=0, borderBits=1)
        scale = s / spec.square
    else:
        bits = spec.cv_dictionary().markerSize + 2
        n = max(bits, round(spec.marker * px_per_m / bits) * bits)
        pattern = cv2.aruco.generateImageMarker(spec.cv_dictionary(), spec.marker_id, n, 1)
        scale = n / spec.marker
    image = cv2.copyMakeBorder(
        pattern, margin, margin, margin, margin, cv2.BORDER_CONSTANT, value=255
    )
    if spec.kind == "aruco":
        c = margin + pattern.shape[0] / 2
        A = np.array([[scale, 0, c - 0.5], [0, -scale, c - 0.5]])
    else:
        A = np.array([[scale, 0, margin - 0.5], [0, scale, margin - 0.5]])
    return image, A


def render_board(spec: BoardSpec, px_per_m: float) -> np.ndarray:
    """The printable board (pattern plus white quiet zone) as an 8-bit grey image."""
    return board_texture(spec, px_per_m)[0]


def _png_with_dpi(image: np.ndarray, px_per_m: float) -> bytes:
    """PNG bytes with a pHYs chunk so viewers and printers know the true scale."""
    import cv2

    ok, buf = cv2.imencode(".png", image)
    if not ok:
        raise HoposerError("could not encode the board as PNG")
    data = buf.tobytes()
    ppm = round(px_per_m)
    body = b"pHYs" + struct.pack(">IIB", ppm, ppm, 1)
    chunk = struct.pack(">I", 9) + body + struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF)
    ihdr_end = 8 + 8 + 13 + 4  # signature, IHDR length+type, IHDR data, CRC
    return data[:ihdr_end] + chunk + data[ihdr_end:]


def _pdf_bytes(image: np.ndarray, width_pt: float, height_pt: float, label: str) -> bytes:
    """A one-page PDF showing a grey image at exactly `width_pt` × `height_pt` points."""
    margin = 36.0  # half an inch of paper around the board for the label
    page_w, page_h = width_pt + 2 * margin, height_pt + 2 * margin
    h, w = image.shape
    pixels = zlib.compress(np.ascontiguousarray(image, np.uint8).tobytes(), 9)
    safe = label.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
    content = (
        f"q {width_pt:.4f} 0 0 {height_pt:.4f} {margin:.4f} {margin:.4f} cm /Im0 Do Q\n"
        f"BT /F1 8 Tf {margin:.4f} {margin / 2:.4f} Td ({safe}) Tj ET\n"
    ).encode("latin-1", "replace")
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        (
            f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 {page_w:.4f} {page_h:.4f}] "
            "/Resources << /XObject << /Im0 4 0 R >> /Font << /F1 6 0 R >> >> "
            "/Contents 5 0 R >>"
        ).encode(),
        (
            f"<< /Type /XObject /Subtype /Image /Width {w} /Height {h} /ColorSpace /DeviceGray "
            f"/BitsPerComponent 8 /Interpolate false /Filter /FlateDecode "
            f"/Length {len(pixels)} >>\nstream\n"
        ).encode()
        + pixels
        + b"\nendstream",
        f"<< /Length {len(content)} >>\nstream\n".encode() + content + b"endstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for k, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{k} 0 obj\n".encode() + body + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    for off in offsets:
        out += f"{off:010d} 00000 n \n".encode()
    out += (
        f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n"
    ).encode()
    return bytes(out)


def write_board(spec: BoardSpec, path: str | Path, dpi: float = 300.0) -> Path:
    """Write the board at true scale as PNG (with its DPI recorded) or a one-page PDF.

    Print PDFs at 100 % ("actual size"), then measure one square: the calibration uses the
    `--square` you give, not the printed size.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".png", ".pdf"):
        raise HoposerError(f"board output must end in .png or .pdf, got '{path.name}'")
    if not path.parent.exists():
        raise HoposerError(f"folder {path.parent} does not exist")
    px_per_m = dpi / 0.0254
    image, A = board_texture(spec, px_per_m)
    if suffix == ".png":
        data = _png_with_dpi(image, px_per_m)
    else:
        # The image spans exactly its pixel count / (pixels per metre) on paper.
        scale = A[0, 0]
        w_pt = image.shape[1] / scale / METERS_PER_POINT
        h_pt = image.shape[0] / scale / METERS_PER_POINT
        data = _pdf_bytes(image, w_pt, h_pt, f"hoposer {spec} - print at 100% (actual size)")
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return path
