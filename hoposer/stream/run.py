"""`hoposer live` and `hoposer video`: the consumers of an `Estimator`'s stream.

The frames and their results come from `Estimator.open(source)`, the iteration `Estimator.stream`
gives a library user; here each result is published (ZeroMQ), counted for the summary, recorded
(`--out`: the annotated video and the messages) and shown.

Threads: a live source captures in its own thread (newest frame only); the next frame is read
and its hands detected on a worker thread while this one is estimated (`Stream`); the main
thread runs engine → decode → refine → stabilize → publish for each frame; `--out` is annotated
and encoded on a writer thread (`Recorder`); the view, when on, runs in its own thread at its
own rate on the newest result, so drawing never slows inference. In `video` mode every frame is
processed and written, in order.
"""

import contextlib
import logging
import queue
import signal
import threading
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from hoposer.errors import HoposerError, InterruptedRunError, Terminated
from hoposer.progress import ProgressBar
from hoposer.stream.options import DETECTION_CORES, StreamOptions
from hoposer.threads import configure_threads

log = logging.getLogger(__name__)


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
    from hoposer.frames.sources import open_source
    from hoposer.stream.estimator import Estimator
    from hoposer.stream.outputs import VideoOutputs, check_not_input, check_writable

    if options.out is not None:
        check_writable(Path(options.out))
        check_not_input(Path(options.out), options.source)
    options = replace(options, threads=configure_threads(options.threads, DETECTION_CORES))
    publisher = _publisher(options)  # key files and the endpoint are checked before the camera
    resources: list = [] if publisher is None else [publisher]
    source = None
    if not options.live:  # a file or folder: a bad path fails before the model loads
        source = open_source(options.source, loop=options.loop)
        resources.insert(0, source)
    outputs = recorder = None
    try:
        estimator = Estimator.from_options(options)
        resources.append(estimator)
        viewer = None
        if options.view:
            from hoposer.stream.view import Viewer

            viewer = Viewer(None, None, estimator.hand_faces, estimator.object_spec,
                            estimator.transform, mesh=options.mesh)  # fmt: skip
            resources.append(viewer)
        # A live source opens here, once the model has run and MediaPipe is loaded.
        frames = estimator.open(source or options.source, options.live, options.loop,
                                camera_id=str(options.source))  # fmt: skip
        resources.append(frames)
        K, size = frames.camera_matrix, frames.source.size
        if viewer is not None:  # its windows open in run(), once the frames flow
            viewer.K, viewer.frame_size = K, size
        if options.out is not None:
            outputs = VideoOutputs(options.out, frames.source.fps)
            recorder = Recorder(outputs, K, estimator.object_spec, estimator.hand_faces,
                                options.mesh)  # fmt: skip
            if options.panel:
                from hoposer.stream.scene3d import Panel

                # GLFW (Open3D's windows) is not thread-safe: beside live windows, the CPU draws.
                beside_windows = "Open3D draws the live window" if options.view else None
                recorder.panel = Panel(K, size, estimator.hand_faces, estimator.object_spec,
                                       estimator.transform, beside_windows)  # fmt: skip
                resources.append(recorder.panel)
        args = (options, frames, publisher, recorder, viewer)
        summary = _loop(*args) if viewer is None else _loop_beside_view(viewer, args)
        if recorder is not None:
            recorder.finish()
        summary["threads"] = options.threads
        summary["unreadable_frames"] = frames.source.unreadable
        if summary["interrupted"] and not options.live:
            _stop_interrupted(summary, outputs)
        if outputs is not None:
            outputs.close(summary)
            outputs = None
        _check_gaps(options, frames.source)
        return summary
    finally:
        if outputs is not None:
            if recorder is not None:
                recorder.abort()
            outputs.abort()
        for resource in reversed(resources):
            resource.close()


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


class Recorder:
    """`--out`: each frame annotated (the 3D panel beside it with `--panel`), and its message.

    Annotating and encoding run on a writer thread, in order, through a short queue: the next
    frame is estimated meanwhile (OpenCV's drawing and encoding release the GIL), and a slow
    disk holds the estimator back by at most `depth` frames rather than losing any. An Open3D
    panel is still drawn on the calling thread, which made its OpenGL context.
    """

    def __init__(self, outputs, K, object_spec, hand_faces, mesh: bool, depth: int = 4) -> None:
        self.outputs, self.K, self.object_spec = outputs, K, object_spec
        self.hand_faces = hand_faces if mesh else None
        self.panel = None
        self._queue: queue.Queue = queue.Queue(maxsize=depth)
        self._error: BaseException | None = None
        self._discard = False
        self._thread = threading.Thread(target=self._work, name="recorder", daemon=True)

    def write(self, result, fps: float) -> None:
        """Queue one frame (blocks while `depth` frames wait); raises the writer's error."""
        self._raise_error()
        panel = None
        if self.panel is not None and self.panel.scene is not None:
            panel = self.panel.draw(result)
        if self._thread.ident is None:  # started by the first frame
            self._thread.start()
        self._queue.put((result, fps, panel))

    def finish(self) -> None:
        """Wait until every queued frame is written; raises the writer's error."""
        self._stop()
        self._raise_error()

    def abort(self) -> None:
        """Stop writing: queued frames are dropped (the outputs are being thrown away)."""
        self._discard = True
        self._stop()

    def _stop(self) -> None:
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()

    def _raise_error(self) -> None:
        if self._error is not None:
            raise self._error

    def _work(self) -> None:
        while (item := self._queue.get()) is not None:
            if self._error is None and not self._discard:
                try:
                    self._write(*item)
                except BaseException as err:  # re-raised on the caller's thread  # noqa: BLE001
                    self._error = err

    def _write(self, result, fps: float, panel: np.ndarray | None) -> None:
        from hoposer.stream.annotate import annotate

        spec = self.object_spec
        image = annotate(
            result,
            self.K,
            spec.control_points if spec else None,
            fps,
            hand_faces=self.hand_faces,
            object_mesh=(spec.vertices, spec.faces) if spec is not None else None,
        )
        if self.panel is not None:
            panel = self.panel.draw(result) if panel is None else panel
            image = np.concatenate([image, panel], axis=1)
        self.outputs.write(image, result.message)


class Summary:
    """What a run reports (`<stem>.summary.json`), counted frame by frame."""

    def __init__(self) -> None:
        self.started = time.perf_counter()
        self.frames = self.with_hand = self.stable = 0
        self.startup_skipped = self.hands_followed = 0
        self.timings: dict[str, list[float]] = {}

    def add(self, result) -> None:
        """Count one frame's result."""
        if self.frames == 0:
            self.startup_skipped = result.frame.index  # frames the source delivered before
            if self.startup_skipped:
                log.warning("%d frames arrived before the first could be processed",
                            self.startup_skipped)  # fmt: skip
        self.frames += 1
        self.with_hand += result.detection is not None
        self.hands_followed += result.track is not None and result.track.new_track
        self.stable += result.message["stability"]["stable"]
        for name, value in result.message["latency_ms"].items():
            self.timings.setdefault(name, []).append(value)

    @property
    def fps(self) -> float:
        """Frames per second so far."""
        return self.frames / max(time.perf_counter() - self.started, 1e-9)

    def as_dict(self, name: str, dropped: int, published: int, interrupted: str | None) -> dict:
        """The summary: counts, frames/s and each stage's latency percentiles."""
        elapsed = time.perf_counter() - self.started
        frames = self.frames
        return {
            "source": name,
            "frames": frames,
            "interrupted": interrupted,
            "frames_with_hand": self.with_hand,
            "hands_followed": self.hands_followed,  # 1 when one hand was kept throughout
            "stable_fraction": self.stable / frames if frames else 0.0,
            "fps": frames / elapsed if elapsed > 0 else 0.0,
            "dropped_frames": dropped,
            "startup_skipped_frames": self.startup_skipped,
            "published": published,
            "latency_ms": {
                name: {
                    "p50": float(np.percentile(values, 50)),
                    "p90": float(np.percentile(values, 90)),
                    "p99": float(np.percentile(values, 99)),
                    "mean": float(np.mean(values)),
                    "frames": len(values),
                }
                for name, values in self.timings.items()
            },
        }


def _publish(result, publisher) -> None:
    """Publish the message, timing it: `capture_to_publish` and `publish` join its latencies."""
    latency = result.message["latency_ms"]
    tick = time.perf_counter()
    latency["capture_to_publish"] = round((tick - result.frame.timestamp) * 1e3, 3)
    if publisher is not None:
        publisher.publish(result.message)
    latency["publish"] = round((time.perf_counter() - tick) * 1e3, 3)


def _loop(options: StreamOptions, frames, publisher, recorder, viewer) -> dict:
    """Consume the estimator's results: publish, count, record, show, until the end or a stop."""
    total = frames.source.length if not options.live else None
    if options.max_frames is not None:
        total = min(total, options.max_frames) if total else options.max_frames
    bar = ProgressBar("frames", total, "{fps:.1f} frames/s", enabled=options.progress)
    summary = Summary()
    interrupted = None
    try:
        for result in frames:
            _publish(result, publisher)
            summary.add(result)
            fps = summary.fps
            if recorder is not None:
                recorder.write(result, fps)
            if viewer is not None:
                viewer.offer(result, fps)
                if viewer.quit_requested:
                    interrupted = "quit"
                    break
            bar.update(summary.frames, fps=fps)
            if options.max_frames is not None and summary.frames >= options.max_frames:
                break
    except KeyboardInterrupt as err:  # Ctrl-C, or SIGTERM (Terminated)
        interrupted = "SIGTERM" if isinstance(err, Terminated) else "SIGINT"
        log.warning("interrupted (%s) after %d frames", interrupted, summary.frames)
    finally:
        bar.close()
    published = publisher.sent if publisher is not None else 0
    return summary.as_dict(str(options.source), frames.source.dropped, published, interrupted)
