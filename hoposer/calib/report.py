"""The PNG report of a camera calibration: coverage, per-view errors, an undistorted sample."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from hoposer.calib.intrinsics import CalibrationResult
from hoposer.errors import HoposerError
from hoposer.io import atomic_path

_PANEL_H = 360


def _fit(image: np.ndarray, height: int = _PANEL_H) -> np.ndarray:
    import cv2

    if image.ndim == 2:
        image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    w = round(image.shape[1] * height / image.shape[0])
    return cv2.resize(image, (w, height), interpolation=cv2.INTER_AREA)


def _title(panel: np.ndarray, text: str) -> np.ndarray:
    import cv2

    out = cv2.copyMakeBorder(panel, 28, 0, 0, 0, cv2.BORDER_CONSTANT, value=(255, 255, 255))
    cv2.putText(out, text, (6, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (0, 0, 0), 1, cv2.LINE_AA)
    return out


def coverage_panel(result: CalibrationResult) -> np.ndarray:
    """Every detected corner on an image-sized canvas: kept views green, dropped ones red."""
    import cv2

    w, h = result.info.width, result.info.height
    canvas = np.full((h, w, 3), 255, np.uint8)
    for gx in range(1, 4):
        cv2.line(canvas, (gx * w // 4, 0), (gx * w // 4, h), (220, 220, 220), 1)
    for gy in range(1, 3):
        cv2.line(canvas, (0, gy * h // 3), (w, gy * h // 3), (220, 220, 220), 1)
    r = max(2, round(w / 320))
    for d, kept in zip(result.detections, result.kept, strict=True):
        color = (40, 160, 40) if kept else (40, 40, 220)
        for x, y in d.image_points:
            cv2.circle(canvas, (round(x), round(y)), r, color, -1, cv2.LINE_AA)
    cv2.rectangle(canvas, (0, 0), (w - 1, h - 1), (0, 0, 0), 1)
    return canvas


def error_panel(result: CalibrationResult, width: int = 480) -> np.ndarray:
    """Bar chart of per-view RMS error (pixels); dropped views red; overall RMS dashed."""
    import cv2

    h = _PANEL_H
    img = np.full((h, width, 3), 255, np.uint8)
    errs = result.view_errors
    top = max(float(errs.max()) * 1.15, result.rms * 2, 0.1)
    x0, y0, y1 = 40, 10, h - 30
    n = len(errs)
    bw = max(1.0, (width - x0 - 10) / max(n, 1))
    for i, (e, kept) in enumerate(zip(errs, result.kept, strict=True)):
        color = (200, 140, 60) if kept else (40, 40, 220)
        xa, xb = round(x0 + i * bw + 1), round(x0 + (i + 1) * bw - 1)
        ya = round(y1 - (y1 - y0) * e / top)
        cv2.rectangle(img, (xa, ya), (max(xa, xb), y1), color, -1)
    yr = round(y1 - (y1 - y0) * result.rms / top)
    for x in range(x0, width - 10, 12):
        cv2.line(img, (x, yr), (x + 6, yr), (0, 0, 0), 1)
    cv2.line(img, (x0, y0), (x0, y1), (0, 0, 0), 1)
    cv2.line(img, (x0, y1), (width - 10, y1), (0, 0, 0), 1)
    for frac in (0.0, 0.5, 1.0):
        y = round(y1 - (y1 - y0) * frac)
        cv2.putText(img, f"{top * frac:.2f}", (2, y + 4), cv2.FONT_HERSHEY_SIMPLEX, 0.35, (0, 0, 0))
    cv2.putText(
        img,
        f"views (n={n}); dashed: RMS {result.rms:.3f} px",
        (x0, h - 10),
        cv2.FONT_HERSHEY_SIMPLEX,
        0.4,
        (0, 0, 0),
    )
    return img


def undistorted(result: CalibrationResult, image: np.ndarray) -> np.ndarray:
    """`image` undistorted to the camera_info's projection matrix P."""
    import cv2

    info = result.info
    size = (info.width, info.height)
    P = info.P[:, :3]
    if info.fisheye:
        m1, m2 = cv2.fisheye.initUndistortRectifyMap(
            info.K, info.D.reshape(4, 1), np.eye(3), P, size, cv2.CV_16SC2
        )
    else:
        m1, m2 = cv2.initUndistortRectifyMap(info.K, info.D, np.eye(3), P, size, cv2.CV_16SC2)
    return cv2.remap(image, m1, m2, cv2.INTER_LINEAR)


def render_report(result: CalibrationResult, sample: np.ndarray | None = None) -> np.ndarray:
    """The report image (BGR): coverage | per-view errors | sample undistorted, and a summary."""
    import cv2

    panels = [
        _title(_fit(coverage_panel(result)), "coverage (green kept, red dropped)"),
        _title(error_panel(result), "per-view RMS reprojection error (px)"),
    ]
    if sample is not None:
        panels.append(_title(_fit(undistorted(result, sample)), "undistorted sample"))
    body = np.concatenate(panels, axis=1)
    lines = result.summary().replace("±", "+/-").splitlines()  # Hershey fonts are ASCII
    if result.std:
        lines.append("1 sigma: " + ", ".join(f"{k} {v:.3g}" for k, v in result.std.items()))
    header = np.full((18 * len(lines) + 10, body.shape[1], 3), 255, np.uint8)
    for i, line in enumerate(lines):
        cv2.putText(
            header,
            line,
            (6, 18 * (i + 1)),
            cv2.FONT_HERSHEY_SIMPLEX,
            0.5,
            (0, 0, 0),
            1,
            cv2.LINE_AA,
        )
    return np.concatenate([header, body], axis=0)


def write_png(path: str | Path, image: np.ndarray) -> Path:
    """Encode `image` as PNG and write it atomically."""
    import cv2

    path = Path(path)
    if not path.parent.exists():
        raise HoposerError(f"folder {path.parent} does not exist")
    ok, buf = cv2.imencode(".png", image)
    if not ok:
        raise HoposerError(f"could not encode {path.name} as PNG")
    with atomic_path(path) as tmp:
        tmp.write_bytes(buf.tobytes())
    return path
