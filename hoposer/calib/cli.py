"""`hoposer calib`: print boards, calibrate intrinsics and camera→robot extrinsics, synthesize data.

Thin: options are parsed here, the work is done by the tested functions of `hoposer.calib`.
OpenCV is imported inside the commands so that `hoposer --help` stays fast.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

import numpy as np
import typer

from hoposer.errors import HoposerError

calib_app = typer.Typer(
    help="Camera calibration: intrinsics (checkerboard/ChArUco) and camera→robot extrinsics.",
    no_args_is_help=True,
)

BoardOpt = Annotated[
    str,
    typer.Option(
        "--board",
        help="checker:COLSxROWS (inner corners), charuco:COLSxROWS (squares) or aruco:ID",
    ),
]
SquareOpt = Annotated[float | None, typer.Option(help="square side, metres (checker, charuco)")]
MarkerOpt = Annotated[float | None, typer.Option(help="marker side, metres (charuco, aruco)")]
DictOpt = Annotated[str | None, typer.Option("--dict", help="ArUco dictionary, e.g. 4X4_50")]
ImagesOpt = Annotated[Path | None, typer.Option(help="folder of images")]
VideoOpt = Annotated[Path | None, typer.Option(help="video file")]
CameraOpt = Annotated[int | None, typer.Option("--camera", help="live camera index")]


def _board(board: str, square: float | None, marker: float | None, dictionary: str | None):
    from hoposer.calib.boards import parse_board

    return parse_board(board, square, marker, dictionary)


def _one_source(images: Path | None, video: Path | None, camera: int | None) -> None:
    given = [x is not None for x in (images, video, camera)]
    if sum(given) != 1:
        raise HoposerError("give exactly one source: --images DIR, --video FILE or --camera N")


def _video_frames(video: Path) -> Iterator[tuple[str, np.ndarray]]:
    """(name, image) of every frame of a video file, read as `hoposer video` reads it."""
    from hoposer.frames.sources import open_source

    if not video.is_file():
        raise HoposerError(f"video {video} does not exist or is not a file")
    source = open_source(video)
    try:
        for frame in source:
            yield f"{video.name}#{frame.index}", frame.image
    finally:
        source.close()


def _camera_frames(index: int, n: int) -> Iterator[tuple[str, np.ndarray]]:
    """(name, image) of `n` of the camera's frames, each the newest when asked for.

    Raises:
        HoposerError: the camera cannot be opened or stops delivering frames.
    """
    from hoposer.frames.sources import open_source

    source = open_source(index)
    count = 0
    try:
        for frame in source:
            yield f"camera{index}#{count}", frame.image
            count += 1
            if count == n:
                return
    finally:
        source.close()
    raise HoposerError(f"camera {index} stopped delivering frames")


def _has_display() -> bool:
    import cv2

    try:
        cv2.namedWindow("hoposer calib")
    except cv2.error:
        return False
    return True


@calib_app.command("board")
def board_cmd(
    out: Annotated[Path, typer.Option("--out", "-o", help="board.png or board.pdf")],
    board: BoardOpt = "checker:9x6",
    square: SquareOpt = 0.024,
    marker: MarkerOpt = None,
    dictionary: DictOpt = None,
    dpi: Annotated[float, typer.Option(help="resolution of the rendered board")] = 300.0,
) -> None:
    """Write a printable board at true scale (PDF: print at 100 % / actual size).

    Examples:
      hoposer calib board --board checker:9x6 --square 0.024 --out board.pdf
      hoposer calib board --board charuco:5x7 --square 0.04 --marker 0.03 --dict 4X4_50 --out b.pdf
    """
    from hoposer.calib.boards import write_board
    from hoposer.io import check_writable_file

    check_writable_file(out)
    spec = _board(board, square, marker, dictionary)
    write_board(spec, out, dpi=dpi)
    w, h = spec.size_m
    print(f"wrote {out}: {spec}, pattern {w * 1000:.0f} x {h * 1000:.0f} mm")


@calib_app.command("camera")
def camera_cmd(
    board: BoardOpt,
    square: SquareOpt = None,
    marker: MarkerOpt = None,
    dictionary: DictOpt = None,
    images: ImagesOpt = None,
    video: VideoOpt = None,
    camera: CameraOpt = None,
    out: Annotated[Path, typer.Option("--out", "-o", help="camera_info YAML to write")] = Path(
        "camera.yaml"
    ),
    report: Annotated[
        Path | None, typer.Option(help="PNG report (default: <out>_report.png)")
    ] = None,
    fisheye: Annotated[bool, typer.Option(help="fisheye (equidistant) model")] = False,
    k_coefficients: Annotated[
        int, typer.Option(help="radial terms: 2 (k3=0), 3, or 6 (rational_polynomial)")
    ] = 2,
    min_views: Annotated[int, typer.Option(help="refuse with fewer good views")] = 8,
    max_views: Annotated[int, typer.Option(help="stop collecting at this many (video/live)")] = 40,
    min_sharpness: Annotated[
        float, typer.Option(help="variance of Laplacian a video/live view needs")
    ] = 30.0,
    name: Annotated[str, typer.Option(help="camera_name in the YAML")] = "camera",
) -> None:
    """Calibrate camera intrinsics; write ROS camera_info YAML and a PNG report.

    Examples:
      hoposer calib camera --images shots/ --board checker:9x6 --square 0.024 --out cam.yaml
      hoposer calib camera --camera 0 --board charuco:5x7 --square 0.04 --marker 0.03 --dict 4X4_50
    """
    from hoposer.calib.camera_info import write_camera_info
    from hoposer.calib.detect import (
        BoardDetector,
        detect_in_files,
        list_images,
        no_board_error,
        read_image,
    )
    from hoposer.calib.intrinsics import CalibrationOptions, ViewSelector, calibrate
    from hoposer.calib.report import render_report, write_png
    from hoposer.io import check_writable_file

    check_writable_file(out)  # before calibrating, not after
    if report is not None:
        check_writable_file(report, "--report")

    _one_source(images, video, camera)
    spec = _board(board, square, marker, dictionary)
    if spec.kind == "aruco":
        raise HoposerError("calibrate intrinsics with a checker or charuco board, not one marker")
    if not out.parent.exists():
        raise HoposerError(f"folder {out.parent} does not exist")
    options = CalibrationOptions(
        fisheye=fisheye, k_coefficients=k_coefficients, min_views=min_views, name=name
    )
    sample = None
    if images is not None:
        files = list_images(images)
        detections, size = detect_in_files(spec, files, strict=True)
        sample = read_image(images / detections[0].name)
        print(f"board found in {len(detections)} of {len(files)} images")
    else:
        detector = BoardDetector(spec)
        selector = ViewSelector(min_sharpness=min_sharpness)
        if video is not None:
            n = 0
            for frame_name, frame in _video_frames(video):
                n += 1
                if selector.consider(detector.detect(frame, frame_name)) and sample is None:
                    sample = frame
                if len(selector.kept) >= max_views:
                    break
            if not selector.kept:
                raise no_board_error(spec, n)
        else:
            sample = _live_capture(camera, detector, selector, max_views)
        detections = selector.kept
        size = detections[0].image_size
        print(f"kept {len(detections)} views")
    result = calibrate(detections, size, options)
    write_camera_info(out, result.info)
    report = report or out.with_name(f"{out.stem}_report.png")
    write_png(report, render_report(result, sample))
    print(result.summary())
    print(f"wrote {out} and {report}")


def _live_capture(index: int, detector, selector, max_views: int) -> np.ndarray:
    """Collect views from a live camera until max_views, or 'q'/Esc in the window."""
    import cv2

    from hoposer.calib.intrinsics import Coverage
    from hoposer.frames.sources import open_source

    source = open_source(index)  # before any window: a missing camera fails first, plainly
    window = False
    coverage = None
    sample = None
    print("move the board around (tilt it, near and far); 'q' or Esc to finish")
    try:
        window = _has_display()
        for captured in source:  # the newest frame each time: detection may be slower
            if len(selector.kept) >= max_views:
                break
            frame = captured.image
            if coverage is None:
                coverage = Coverage((frame.shape[1], frame.shape[0]))
            det = detector.detect(frame, f"camera{index}#{len(selector.kept)}")
            if selector.consider(det):
                coverage.add(det, selector.features[-1])
                sample = frame if sample is None else sample
                print(f"view {len(selector.kept)}; missing: {', '.join(coverage.missing()) or '-'}")
            if window:
                view = coverage.draw(frame, len(selector.kept))
                if det is not None:
                    for x, y in det.image_points:
                        cv2.circle(view, (round(x), round(y)), 2, (0, 0, 255), -1)
                cv2.imshow("hoposer calib", view)
                if cv2.waitKey(1) & 0xFF in (ord("q"), 27):
                    break
        else:
            raise HoposerError(f"camera {index} stopped delivering frames")
    except KeyboardInterrupt:
        pass
    finally:
        source.close()
        if window:
            cv2.destroyAllWindows()
    if not selector.kept:
        raise HoposerError("no view of the board was captured")
    return sample


@calib_app.command("robot")
def robot_cmd(
    camera_info: Annotated[Path, typer.Option(help="camera_info YAML from `calib camera`")],
    board: BoardOpt,
    square: SquareOpt = None,
    marker: MarkerOpt = None,
    dictionary: DictOpt = None,
    marker_pose: Annotated[
        str | None,
        typer.Option(help="board/marker pose in the robot base: x,y,z,qx,qy,qz,qw (m)"),
    ] = None,
    hand_eye: Annotated[
        Path | None, typer.Option(help="CSV image,x,y,z,qx,qy,qz,qw of gripper poses in base")
    ] = None,
    setup: Annotated[str, typer.Option(help="eye-in-hand or eye-to-hand")] = "eye-in-hand",
    method: Annotated[str, typer.Option(help="tsai, park, horaud, andreff, daniilidis")] = "park",
    images: ImagesOpt = None,
    video: VideoOpt = None,
    camera: CameraOpt = None,
    frames: Annotated[int, typer.Option(help="frames to average (--camera)")] = 30,
    out: Annotated[Path, typer.Option("--out", "-o", help="transform YAML to write")] = Path(
        "extrinsics.yaml"
    ),
    base_frame: Annotated[str, typer.Option(help="robot base frame name")] = "base",
    gripper_frame: Annotated[str, typer.Option(help="gripper/tool frame name")] = "tool0",
    camera_frame: Annotated[str, typer.Option(help="camera (optical) frame name")] = (
        "camera_optical"
    ),
) -> None:
    """Camera→robot extrinsics from a marker at a known pose, or hand-eye calibration.

    The camera frame is OpenCV's optical frame (x right, y down, z forward). Eye-in-hand writes
    the camera's pose in the gripper frame; marker and eye-to-hand write it in the base frame.

    Examples:
      hoposer calib robot --camera-info cam.yaml --board aruco:7 --marker 0.1 --dict 4X4_50
          --marker-pose 0.5,0.1,0,0,0,0.7071068,0.7071068 --images marker/ --out extr.yaml
      hoposer calib robot --camera-info cam.yaml --hand-eye poses.csv --setup eye-in-hand
          --board charuco:5x7 --square 0.04 --marker 0.03 --dict 4X4_50 --out extr.yaml
    """
    from hoposer.calib import extrinsics as ex
    from hoposer.calib.camera_info import read_camera_info
    from hoposer.calib.detect import list_images, read_image
    from hoposer.io import check_writable_file

    check_writable_file(out)

    info = read_camera_info(camera_info)
    spec = _board(board, square, marker, dictionary)
    if (marker_pose is None) == (hand_eye is None):
        raise HoposerError("give exactly one of --marker-pose (marker) or --hand-eye CSV")
    if not out.parent.exists():
        raise HoposerError(f"folder {out.parent} does not exist")

    if hand_eye is not None:
        rows = ex.read_robot_poses(hand_eye)
        views = ((name, read_image(hand_eye.parent / name), T) for name, T in rows)
        transform = ex.hand_eye_extrinsics(
            views,
            spec,
            info,
            setup=setup,
            method=method,
            base=base_frame,
            gripper=gripper_frame,
            camera=camera_frame,
            info_source=str(camera_info),
            skipped=lambda name: print(f"board not found in {name}; skipped"),
        )
    else:
        _one_source(images, video, camera)
        T_base_board = ex.parse_pose(marker_pose)
        if images is not None:
            source = ((p.name, read_image(p)) for p in list_images(images))
        elif video is not None:
            source = _video_frames(video)
        else:
            source = _camera_frames(camera, frames)
        transform = ex.marker_extrinsics(
            source,
            spec,
            info,
            T_base_board,
            parent=base_frame,
            child=camera_frame,
            info_source=str(camera_info),
        )
    ex.write_transform(out, transform)
    print(transform.summary())
    print(f"wrote {out}")


@calib_app.command("synth")
def synth_cmd(
    out: Annotated[Path, typer.Option("--out", "-o", help="folder to create and fill")],
    scene: Annotated[str, typer.Option(help="camera, marker, eye-in-hand or eye-to-hand")] = (
        "camera"
    ),
    board: BoardOpt = "checker:9x6",
    square: SquareOpt = 0.024,
    marker: MarkerOpt = None,
    dictionary: DictOpt = None,
    views: Annotated[int, typer.Option(help="images to render")] = 20,
    seed: Annotated[int, typer.Option(help="random seed")] = 0,
) -> None:
    """Render a synthetic data set with known truth, to try the tools without a camera.

    Examples:
      hoposer calib synth --out synth/ && hoposer calib camera --images synth/ --board checker:9x6
          --square 0.024 --out cam.yaml   (compare with synth/truth_camera_info.yaml)
      hoposer calib synth --out m/ --scene marker --board aruco:7 --marker 0.1 --dict 4X4_50
    """
    from hoposer.calib.synthetic import write_synthetic_set
    from hoposer.io import check_writable_folder

    check_writable_folder(out)
    spec = _board(board, square, marker, dictionary)
    n_images, hint = write_synthetic_set(out, spec, scene, views, seed)
    print(f"wrote {n_images} images of {spec} to {out}; {hint}")
