"""hoposer as a library: `Estimator` gives the poses `hoposer video` and `live` publish.

    from hoposer import Estimator

    with Estimator(object="box:0.05x0.05x0.05") as estimator:
        for estimate in estimator.stream("clip.mp4"):  # or 0 (a camera), a URL, a folder
            if estimate.stable and estimate.object_found:
                print(estimate.object_pose)  # 4×4, object → reference frame
        one = estimator(cv2.imread("photo.jpg"))  # one image, on its own

`hoposer video` and `live` are built on it (`hoposer.stream.run`): they iterate the same
`Estimator.open(source)` as `stream()` does, and write, publish, show and summarise what it
gives, so an `Estimate.message` is exactly the JSON `hoposer video` writes for that frame.
"""

import logging
import queue
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

import cv2
import numpy as np

from hoposer.errors import HoposerError
from hoposer.frames.sources import Frame, Source, open_source
from hoposer.stream.options import DEFAULT_WEIGHTS, DETECTION_CORES, StreamOptions
from hoposer.threads import configure_threads

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Estimate:
    """One frame's result: the published message, and its main fields as arrays.

    Positions are in metres in the message's `reference_frame` (the camera's optical frame, or
    the robot base's with `extrinsics`); `vertices` stay in the camera frame.
    """

    frame_index: int
    message: dict  #: the strict-JSON pose message (`hoposer/stream/pose.schema.json`)
    stable: bool  #: every §5.1 check passed this frame (else the pose is held or missing)
    joints: np.ndarray | None  #: (21, 3) MediaPipe's joint order, or None without a hand
    joints_2d: np.ndarray | None  #: (21, 2) pixels
    vertices: np.ndarray | None  #: the hand mesh (camera frame), faces: `Estimator.hand_faces`
    object_found: bool  #: the object's pose passed the gate
    object_pose: np.ndarray | None  #: (4, 4) object → reference frame, when found
    object_reason: str  #: why the object was not found ('' when it was)

    @classmethod
    def from_result(cls, result) -> "Estimate":  # noqa: D102
        message = result.message
        hand, obj = message["hand"], message["object"]
        pose = None
        if obj is not None and obj["found"]:
            pose = np.eye(4)
            pose[:3, :3] = np.asarray(obj["pose"]["rotation"], np.float64)
            pose[:3, 3] = np.asarray(obj["pose"]["position"], np.float64)
        vertices = None
        if hand is not None and result.verdict is not None and result.verdict.hand is not None:
            vertices = np.asarray(result.verdict.hand.vertices, np.float64)
        return cls(
            frame_index=message["frame_index"],
            message=message,
            stable=bool(message["stability"]["stable"]),
            joints=None if hand is None else np.asarray(hand["joints"], np.float64),
            joints_2d=None if hand is None else np.asarray(hand["joints_2d"], np.float64),
            vertices=vertices,
            object_found=pose is not None,
            object_pose=pose,
            object_reason="" if obj is None else obj.get("reason", ""),
        )


class Estimator:
    """Hand and object poses from images, video files, folders, cameras or URLs.

    Args:
        weights: a hoposer checkpoint (default: the shipped weights).
        object: the held object, as `--object` (`box:WxHxD`, `cylinder:RxH`, a mesh file), or
            None for hands only.
        **options: any other `StreamOptions` field, named as the CLI's options: `hands`,
            `refine`, `camera_info`, `fov_deg`, `extrinsics`, `backend`, `device`, `threads`,
            `hand_model`, `mano_dir`, `selfie`, `stabilizer`, ...

    Raises:
        HoposerError: a bad option or file (the same one-line messages as the CLI).
    """

    _NOT_HERE = ("source", "live", "loop", "out", "panel", "view", "publish", "max_frames")

    def __init__(
        self, weights: str | None = None, object: str | None = "box:0.06x0.06x0.06", **options
    ) -> None:
        unknown = set(options) - set(StreamOptions.__dataclass_fields__)
        misplaced = set(options) & set(self._NOT_HERE)
        if unknown or misplaced:
            raise HoposerError(
                f"Estimator does not take {', '.join(sorted(unknown | misplaced))}: give the "
                "source to stream(), write outputs yourself; see StreamOptions for the rest"
            )
        self._load(
            StreamOptions(
                source="", view=False, progress=False, weights=weights, object=object, **options
            )
        )

    @classmethod
    def from_options(cls, options: StreamOptions) -> "Estimator":
        """The estimator of a `hoposer video`/`live` run; the outputs' options are the caller's."""
        estimator = cls.__new__(cls)
        estimator._load(options)
        return estimator

    def _load(self, options: StreamOptions) -> None:
        from hoposer.model.hand import hand_model_for_weights

        self.options = replace(options, threads=configure_threads(options.threads, DETECTION_CORES))
        self.object_spec = _object_spec(self.options)
        self.object_detector = _object_detector(self.options)
        self.transform = _transform(self.options)
        self.backend, trained_with = _backend(self.options)
        self.hand_model = hand_model_for_weights(
            trained_with, self.options.hand_model, self.options.mano_dir
        )
        self._warm = False
        self._image_detector = None
        self._image_processors: dict[tuple[int, int], object] = {}

    @property
    def hand_faces(self) -> np.ndarray:
        """`(F, 3)` triangles of `Estimate.vertices`."""
        return self.hand_model.faces

    def _processor(self, size: tuple[int, int], detector, camera_id: str):
        from hoposer.stream.pipeline import FrameProcessor

        K, maps = _camera(self.options, size)
        return FrameProcessor(
            self.backend, self.hand_model, detector, K, object_spec=self.object_spec,
            object_detector=self.object_detector, stabilizer=self.options.stabilizer,
            transform=self.transform, camera_id=camera_id, undistort=maps,
            hands=self.options.hands, refine=self.options.refine,
        )  # fmt: skip

    def __call__(self, image: np.ndarray) -> Estimate:
        """One BGR image (as `cv2.imread` gives), on its own: no tracking or smoothing."""
        import time

        image = np.asarray(image)
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise HoposerError(
                f"expected an (H, W, 3) uint8 BGR image, got {image.shape} {image.dtype}"
            )
        if self._image_detector is None:
            self._image_detector = _hand_detector(self.options, video=False)
        size = (image.shape[1], image.shape[0])
        if size not in self._image_processors:
            self._image_processors[size] = self._processor(size, self._image_detector, "image")
        processor = self._image_processors[size]
        # Every image starts afresh: no track, no previous fit, no smoothing.
        processor.reset()
        return Estimate.from_result(processor.process(Frame(0, time.perf_counter(), image, 0.0)))

    def open(
        self,
        source: str | int | Source,
        live: bool | None = None,
        loop: bool = False,
        camera_id: str | None = None,
    ) -> "Stream":
        """Open `source` for `Stream`: every frame's full `FrameResult`, in order.

        What `stream()` and `hoposer video`/`live` iterate. Before it opens a source itself, the
        model has run once and the hand detector is loaded, so a camera's first frames are not
        skipped while they initialise.

        Args:
            source: a camera index, a URL, a video file, an image folder, or a `Source` already
                open (it stays the caller's to close).
            live: newest frame only (a camera's pace); default: cameras and URLs are live,
                files and folders give every frame.
            loop: a video file opened `live` plays again from its start.
            camera_id: the messages' `camera_id` (default: `source` as text).
        """
        opened = source if isinstance(source, Source) else None
        if opened is None:
            self.warm_up()
        detector = _hand_detector(self.options)
        try:
            if opened is None:
                opened = open_source(source, live=bool(live), loop=loop)
            camera_id = str(source) if camera_id is None else camera_id
            processor = self._processor(opened.size, detector, camera_id)
        except BaseException:
            detector.close()
            if opened is not None and opened is not source:
                opened.close()
            raise
        return Stream(opened, processor, owns_source=opened is not source)

    def stream(
        self, source: str | int, live: bool | None = None, loop: bool = False
    ) -> Iterator[Estimate]:
        """The estimates of every frame of `source`, in order, as `hoposer video`/`live`.

        Args:
            source: a camera index, a URL, a video file or an image folder.
            live: newest frame only (a camera's pace); default: cameras and URLs are live,
                files and folders give every frame.
            loop: a video file opened `live` plays again from its start.
        """
        with self.open(source, live, loop) as frames:
            for result in frames:
                yield Estimate.from_result(result)

    def warm_up(self) -> None:
        """Run the model once on a blank image: its first inference is the slowest."""
        if self._warm:
            return
        size = self.backend.input_size
        box = np.array([[0.25 * size, 0.25 * size, 0.75 * size, 0.75 * size]], np.float32)
        self.backend.run(np.zeros((1, 3, size, size), np.float32), box, box)
        self._warm = True

    def close(self) -> None:
        """Release the detector and the backend's resources."""
        if self._image_detector is not None:
            self._image_detector.close()
            self._image_detector = None
        close = getattr(self.backend, "close", None)
        if close is not None:
            close()

    def __enter__(self) -> "Estimator":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class Stream:
    """An open source and its per-stream state; iterate it (once) for each `FrameResult`.

    The next frame's hands are detected on a worker thread while this frame is estimated
    (MediaPipe and the engine release the GIL), and the results are those of running the
    stages one after the other:

    - a file's or folder's frames come every one, in order: frame t+1 is read and detected
      while frame t is estimated;
    - a live source gives its newest frame only: the worker takes the newest frame when this
      one is taken (`DetectAhead`), so frames come out at the pace of the slower stage, not of
      both, and none waits for more than the frame before it.

    Close it (or use `with`) to stop: the worker, the hand detector and a source it opened are
    released.
    """

    def __init__(self, source: Source, processor, owns_source: bool) -> None:
        self.source = source
        self.processor = processor
        self.camera_matrix: np.ndarray = processor.K  #: (3, 3) of the processed image
        self._owns_source = owns_source
        self._results = self._run()

    def __iter__(self) -> Iterator:
        return self._results

    def _run(self) -> Iterator:
        process, detect = self.processor.process, self.processor.detect
        if self.source.live:
            with DetectAhead(self.source, detect) as ahead:
                for frame, detected in ahead:
                    yield process(frame, detected)
            return
        with ThreadPoolExecutor(1, thread_name_prefix="detect") as pool:
            pending = None
            for frame in self.source:
                ahead = pool.submit(detect, frame)
                if pending is not None:
                    yield process(pending[0], pending[1].result())
                pending = (frame, ahead)
            if pending is not None:
                yield process(pending[0], pending[1].result())

    def close(self) -> None:
        """Stop reading (a pending read-ahead finishes first), release detector and source."""
        self._results.close()
        self.processor.detector.close()
        if self._owns_source:
            self.source.close()

    def __enter__(self) -> "Stream":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class DetectAhead:
    """A live source's newest frames, each with its detection, run on a worker thread.

    Iterating gives `(frame, detected)`. When the consumer takes a frame, the worker takes the
    newest one and detects it while the consumer estimates (its engine releases the GIL), so
    frames come out at the pace of the slower stage, not of both. At most one detected frame
    waits and the worker takes no frame before the previous one was taken, so it never runs
    ahead of the consumer with frames growing old. An error on the worker is raised to the
    consumer.
    """

    def __init__(self, source: Source, detect) -> None:
        self._frames = iter(source)
        self._detect = detect
        self._ready: queue.Queue = queue.Queue(maxsize=1)
        self._stop = threading.Event()
        self._taken = threading.Event()  # the consumer took the last frame handed over
        self._thread = threading.Thread(target=self._work, name="detect ahead", daemon=True)
        self._thread.start()

    def __iter__(self) -> Iterator:
        while (item := self._ready.get()) is not None:
            if isinstance(item, BaseException):
                raise item
            self._taken.set()
            yield item

    def _work(self) -> None:
        try:
            for frame in self._frames:
                if self._stop.is_set():
                    return
                detected = self._detect(frame)
                self._taken.clear()
                if not self._hand_over((frame, detected)):
                    return
                while not self._taken.wait(0.1):  # the next frame is taken once this one is
                    if self._stop.is_set():
                        return
            self._hand_over(None)
        except BaseException as err:  # raised on the consumer's thread  # noqa: BLE001
            self._hand_over(err)

    def _hand_over(self, item) -> bool:
        while not self._stop.is_set():
            try:
                self._ready.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def close(self) -> None:
        """Stop the worker (a detection under way finishes first)."""
        self._stop.set()
        self._thread.join(timeout=5.0)

    def __enter__(self) -> "DetectAhead":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _camera(options: StreamOptions, size: tuple[int, int]):
    """Intrinsics of the processed image and undistortion maps (None when not needed)."""
    width, height = size
    if options.camera_info is None:
        from hoposer.geometry.camera import default_camera_matrix

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
    from hoposer.frames.detect import OnnxObjectDetector

    if options.detector.startswith("onnx:"):
        return OnnxObjectDetector(options.detector.removeprefix("onnx:"), threads=options.threads)
    if options.detector != "mediapipe":
        raise HoposerError(
            f"unknown --detector {options.detector!r}: use mediapipe or onnx:PATH (a YOLO-format "
            "object detector; hands always come from MediaPipe)"
        )
    return None


def _hand_detector(options: StreamOptions, video: bool = True):
    from hoposer.frames.detect import MediaPipeHandDetector

    return MediaPipeHandDetector(video=video, selfie=options.selfie, side=options.hands)
