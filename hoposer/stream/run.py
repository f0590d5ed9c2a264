"""`hoposer live` and `hoposer video`: the pipeline around `FrameProcessor`.

Threads: a live source captures in its own thread (newest frame only); the main thread runs
detect → engine → decode → stabilize → publish for each frame; the view, when on, runs in its own
thread at its own rate on the newest result, so drawing never slows inference. In `video` mode
every frame is processed and written, in order.
"""

import contextlib
import logging
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np

from hoposer.errors import HoposerError, InterruptedRunError, Terminated
from hoposer.progress import ProgressBar
from hoposer.stream.options import DEFAULT_WEIGHTS, StreamOptions
from hoposer.threads import configure_threads

log = logging.getLogger(__name__)


def _camera(options: StreamOptions, size: tuple[int, int]):
    """Intrinsics of the processed image and undistortion maps (None when not needed)."""
    width, height = size
    if options.camera_info is None:
        from hoposer.stream.pipeline import default_camera_matrix

        log.warning(
            "no --camera-info: assuming a %.0f° horizontal field of view and no distortion; "
            "metric positions will be off by the error in that guess (run `hoposer calib camera`)",
            options.fov_deg,
        )
        return default_camera_matrix(width, height, options.fov_deg), None
    from hoposer.calib.camera_info import read_camera_info

    info = read_camera_info(options.camera_info).scaled_to(width, height)
    if not np.any(info.D):
        return info.K, None
    new_K = info.P[:, :3]
    if info.fisheye:
        maps = cv2.fisheye.initUndistortRectifyMap(
            info.K, info.D[:4], np.eye(3), new_K, (width, height), cv2.CV_16SC2
        )
    else:
        maps = cv2.initUndistortRectifyMap(
            info.K, info.D, np.eye(3), new_K, (width, height), cv2.CV_16SC2
        )
    return new_K, maps


def _transform(options: StreamOptions):
    from hoposer.calib.extrinsics import read_transform
    from hoposer.stream.messages import camera_frame

    if options.extrinsics is None:
        return camera_frame()
    return read_transform(options.extrinsics)


def _object_spec(options: StreamOptions):
    if options.object is None:
        return None
    from hoposer.geometry.control_points import object_mesh
    from hoposer.stream.pipeline import ObjectSpec

    mesh = object_mesh(options.object)
    name = options.object_name or (
        Path(options.object).stem
        if not options.object.startswith(("box:", "cylinder:"))
        else options.object
    )
    return ObjectSpec(name, mesh.control_points, mesh.vertices, mesh.faces)


def _backend(options: StreamOptions):
    from hoposer.engine.backends import BackendOptions, open_backend

    weights = options.weights
    if weights is None and options.onnx is None and options.plan is None:
        if not DEFAULT_WEIGHTS.is_file():
            raise HoposerError(
                f"the default weights {DEFAULT_WEIGHTS} are missing from this install: pass "
                "--weights FILE"
            )
        weights = str(DEFAULT_WEIGHTS)
    trained_with = None
    if weights is not None:
        from hoposer.model.checkpoint import read_checkpoint_info

        trained_with = read_checkpoint_info(weights).metadata.get("hand_model")
    backend = open_backend(
        options.backend,
        weights=weights,
        onnx=options.onnx,
        plan=options.plan,
        device=options.device,
        options=BackendOptions(
            precision=options.precision, compile=options.compile, threads=options.threads
        ),
    )
    return backend, trained_with


def _object_detector(options: StreamOptions):
    """The `--detector onnx:PATH` object detector, or None (hands always come from MediaPipe)."""
    from hoposer.stream.detect import OnnxObjectDetector

    if options.detector.startswith("onnx:"):
        return OnnxObjectDetector(options.detector.removeprefix("onnx:"), threads=options.threads)
    if options.detector != "mediapipe":
        raise HoposerError(
            f"unknown --detector {options.detector!r}: use mediapipe or onnx:PATH (a YOLO-format "
            "object detector; hands always come from MediaPipe)"
        )
    return None


def _hand_detector(options: StreamOptions, video: bool = True):
    from hoposer.stream.detect import MediaPipeHandDetector

    return MediaPipeHandDetector(video=video, selfie=options.selfie, side=options.hands)


class LatestResult:
    """A one-slot mailbox: writers replace, the reader takes the newest (drop-oldest)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._item = None
        self._version = 0
        self.closed = False

    def put(self, item) -> None:  # noqa: D102
        with self._cond:
            self._item, self._version = item, self._version + 1
            self._cond.notify_all()

    def take(self, after: int, timeout: float = 0.1):
        """The newest item newer than version `after`, as (version, item), or None on timeout."""
        with self._cond:
            self._cond.wait_for(lambda: self._version > after or self.closed, timeout)
            if self._version > after:
                return self._version, self._item
            return None

    def close(self) -> None:  # noqa: D102
        with self._cond:
            self.closed = True
            self._cond.notify_all()


def run_stream(options: StreamOptions) -> dict:
    """Run `live` or `video`; returns the summary (also written beside `--out`).

    A file or folder is opened first, so that a bad path fails before the model loads. A live
    source is opened last, after the model, MediaPipe and the windows are loaded and the model
    has run once: frames a camera delivers while those load (seconds) would otherwise be
    skipped. The frames skipped before the first processed one are still counted and reported
    (`startup_skipped_frames`).

    A file run stopped early (Ctrl-C, SIGTERM, the view's quit key) raises `InterruptedRunError`
    after keeping its partial outputs under `<stem>.partial.*`; an existing result at `--out` is
    only ever replaced by a complete one. SIGTERM unwinds like Ctrl-C, so no hidden temporary
    file is left behind.
    """
    with _sigterm_as_interrupt():
        return _run_stream(options)


def _run_stream(options: StreamOptions) -> dict:
    from hoposer.model.hand import hand_model_for_weights
    from hoposer.stream.capture import open_source
    from hoposer.stream.outputs import VideoOutputs, check_not_input, check_writable
    from hoposer.stream.pipeline import FrameProcessor

    if options.out is not None:
        check_writable(Path(options.out))
        check_not_input(Path(options.out), options.source)
    options = replace(options, threads=configure_threads(options.threads))
    publisher = _publisher(options)  # key files and the endpoint are checked before the camera
    resources: list = [] if publisher is None else [publisher]
    source = None
    if not options.live:  # a file or folder: a bad path fails before the model loads
        source = open_source(options.source, loop=options.loop)
        resources.insert(0, source)
    outputs = None
    try:
        object_spec = _object_spec(options)
        transform = _transform(options)
        backend, trained_with = _backend(options)
        hand_model = hand_model_for_weights(trained_with, options.hand_model, options.mano_dir)
        object_detector = _object_detector(options)
        detector = _hand_detector(options)
        resources.append(detector)
        viewer = None
        if options.view:
            from hoposer.stream.view import Viewer

            viewer = Viewer(None, None, hand_model.faces, object_spec, transform, mesh=options.mesh)
            resources.append(viewer)
        if source is None:
            _warm_up(backend)  # the first inference is the slowest: not on a camera frame
            source = open_source(options.source, live=True, loop=options.loop)
            resources.insert(0, source)
        K, maps = _camera(options, source.size)
        if viewer is not None:  # its windows open in run(), once the frames flow
            viewer.K, viewer.frame_size = K, source.size
        processor = FrameProcessor(
            backend,
            hand_model,
            detector,
            K,
            object_spec=object_spec,
            object_detector=object_detector,
            stabilizer=options.stabilizer,
            transform=transform,
            camera_id=str(options.source),
            undistort=maps,
            hands=options.hands,
            refine=options.refine,
        )
        if options.out is not None:
            outputs = VideoOutputs(options.out, source.fps)
        panel = None
        if options.panel and outputs is not None:
            from hoposer.stream.scene3d import Panel

            # GLFW (Open3D's windows) is not thread-safe: beside the live windows, the CPU draws.
            beside_windows = "Open3D draws the live window" if options.view else None
            panel = Panel(K, source.size, hand_model.faces, object_spec, transform, beside_windows)
            resources.append(panel)
        args = (options, source, processor, publisher, outputs, viewer, panel, K, object_spec)
        summary = _loop(*args) if viewer is None else _loop_beside_view(viewer, args)
        summary["threads"] = options.threads
        summary["unreadable_frames"] = source.unreadable
        if summary["interrupted"] and not options.live:
            _stop_interrupted(summary, outputs)
        if outputs is not None:
            outputs.close(summary)
            outputs = None
        _check_gaps(options, source)
        return summary
    finally:
        if outputs is not None:
            outputs.abort()
        for resource in reversed(resources):
            resource.close()


def _warm_up(backend) -> None:
    """One inference on a blank image, so that lazy initialisation happens before capture."""
    size = backend.input_size
    box = np.array([[0.25 * size, 0.25 * size, 0.75 * size, 0.75 * size]], np.float32)
    backend.run(np.zeros((1, 3, size, size), np.float32), box, box)


@contextlib.contextmanager
def _sigterm_as_interrupt():
    """SIGTERM unwinds the run like Ctrl-C (outputs finished or kept, no hidden partial files)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def terminate(signum, frame):
        raise Terminated()

    previous = signal.signal(signal.SIGTERM, terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _stop_interrupted(summary: dict, outputs) -> None:
    """A file run stopped before its end: never let the partial result replace a complete one."""
    how = summary["interrupted"]
    code = 143 if how == "SIGTERM" else 130
    done = f"stopped ({how}) after {summary['frames']} frames"
    if outputs is None:
        raise InterruptedRunError(done, code)
    partial = outputs.keep_partial(summary)
    raise InterruptedRunError(
        f"{done}; the partial result is in {partial} (+ .jsonl, .summary.json), and "
        f"{outputs.out} was left as it was",
        code,
    )


def _check_gaps(options: StreamOptions, source) -> None:
    if not source.unreadable:
        return
    text = (
        f"{source.unreadable} frame(s) of {options.source} could not be decoded and were skipped "
        "(the outputs lack them; frame_index shows where)"
    )
    if options.allow_gaps:
        log.warning(text)
        return
    raise HoposerError(f"{text}: re-encode or repair the file, or pass --allow-gaps to accept")


def _publisher(options: StreamOptions):
    if options.publish is None:
        return None
    from hoposer.stream.publish import CurveKeys, PosePublisher

    curve = None
    if options.curve_clients is not None and options.curve_secret is None:
        raise HoposerError(
            "--curve-clients needs --curve-secret (the publisher's server.key_secret from "
            "`hoposer keys DIR`)"
        )
    if options.curve_secret is not None:
        curve = CurveKeys(
            Path(options.curve_secret),
            authorized=Path(options.curve_clients) if options.curve_clients else None,
        )
    return PosePublisher(options.publish, options.allow_remote, curve)


def _loop_beside_view(viewer, args) -> dict:
    """Process frames in a worker thread; GUI toolkits want their windows on the main thread."""
    outcome: dict = {}

    def work() -> None:
        try:
            outcome["summary"] = _loop(*args)
        except BaseException as err:  # re-raised on the main thread  # noqa: BLE001
            outcome["error"] = err
        finally:
            viewer.mailbox.close()

    worker = threading.Thread(target=work, name="pipeline", daemon=True)
    worker.start()
    try:
        viewer.run()  # until the worker is done or the user quits
    except KeyboardInterrupt:
        viewer.quit_requested = True
    worker.join()
    if "error" in outcome:
        raise outcome["error"]
    return outcome["summary"]


def _detected_ahead(source, processor, ahead: bool):
    """The source's frames with their detect stage; with `ahead`, one frame ahead.

    A file's frame t+1 is read and its hands detected on a worker thread while frame t is
    estimated (MediaPipe and the engine release the GIL), in order, so the results are those of
    running the stages one after the other. A live source is not read ahead: waiting for the
    next frame would delay this one.
    """
    if not ahead:
        for frame in source:
            yield frame, None
        return
    with ThreadPoolExecutor(1, thread_name_prefix="detect") as pool:
        pending = None
        for frame in source:
            future = pool.submit(processor.detect, frame)
            if pending is not None:
                yield pending[0], pending[1].result()
            pending = (frame, future)
        if pending is not None:
            yield pending[0], pending[1].result()


def _loop(options, source, processor, publisher, outputs, viewer, panel, K, object_spec) -> dict:
    from hoposer.stream.annotate import annotate

    timings: dict[str, list[float]] = {}
    frames = with_hand = stable = 0
    startup_skipped = hands_followed = 0
    started = time.perf_counter()
    total = source.length if not options.live else None
    if options.max_frames is not None:
        total = min(total, options.max_frames) if total else options.max_frames
    bar = ProgressBar("frames", total, "{fps:.1f} frames/s", enabled=options.progress)
    faces = processor.hand_model.faces
    mesh = (object_spec.vertices, object_spec.faces) if object_spec is not None else None
    interrupted = None
    try:
        for frame, detected in _detected_ahead(source, processor, ahead=not options.live):
            if frames == 0:
                startup_skipped = frame.index  # frames the source delivered before the first
                if startup_skipped:
                    log.warning("%d frames arrived before the first could be processed",
                                startup_skipped)  # fmt: skip
            result = processor.process(frame, detected)
            latency = result.message["latency_ms"]
            latency["capture_to_publish"] = round((time.perf_counter() - frame.timestamp) * 1e3, 3)
            tick = time.perf_counter()
            if publisher is not None:
                publisher.publish(result.message)
            latency["publish"] = round((time.perf_counter() - tick) * 1e3, 3)
            frames += 1
            with_hand += result.detection is not None
            hands_followed += result.track is not None and result.track.new_track
            stable += result.message["stability"]["stable"]
            for name, value in result.message["latency_ms"].items():
                timings.setdefault(name, []).append(value)
            fps = frames / max(time.perf_counter() - started, 1e-9)
            if outputs is not None:
                image = annotate(
                    result,
                    K,
                    object_spec.control_points if object_spec else None,
                    fps,
                    hand_faces=faces if options.mesh else None,
                    object_mesh=mesh,
                )
                if panel is not None:
                    image = np.concatenate([image, panel.draw(result)], axis=1)
                outputs.write(image, result.message)
            if viewer is not None:
                viewer.offer(result, fps)
                if viewer.quit_requested:
                    interrupted = "quit"
                    break
            bar.update(frames, fps=fps)
            if options.max_frames is not None and frames >= options.max_frames:
                break
    except KeyboardInterrupt as err:  # Ctrl-C, or SIGTERM (Terminated)
        interrupted = "SIGTERM" if isinstance(err, Terminated) else "SIGINT"
        log.warning("interrupted (%s) after %d frames", interrupted, frames)
    finally:
        bar.close()
    elapsed = time.perf_counter() - started
    return {
        "source": str(options.source),
        "frames": frames,
        "interrupted": interrupted,
        "frames_with_hand": with_hand,
        "hands_followed": hands_followed,  # 1 when one hand was kept throughout
        "stable_fraction": stable / frames if frames else 0.0,
        "fps": frames / elapsed if elapsed > 0 else 0.0,
        "dropped_frames": source.dropped,
        "startup_skipped_frames": startup_skipped,
        "published": publisher.sent if publisher is not None else 0,
        "latency_ms": {
            name: {
                "p50": float(np.percentile(values, 50)),
                "p90": float(np.percentile(values, 90)),
                "p99": float(np.percentile(values, 99)),
                "mean": float(np.mean(values)),
                "frames": len(values),
            }
            for name, values in timings.items()
        },
    }
