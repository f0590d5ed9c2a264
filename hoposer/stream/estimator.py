"""hoposer as a library: `Estimator` gives the poses `hoposer video` and `live` publish.

    from hoposer import Estimator

    with Estimator(object="box:0.05x0.05x0.05") as estimator:
        for estimate in estimator.stream("clip.mp4"):  # or 0 (a camera), a URL, a folder
            if estimate.stable and estimate.object_found:
                print(estimate.object_pose)  # 4×4, object → reference frame
        one = estimator(cv2.imread("photo.jpg"))  # one image, on its own

It is built from the same parts as the CLI (`hoposer.stream.run`): the same options, backend,
detector, `FrameProcessor` and read-ahead, so an `Estimate.message` is exactly the JSON that
`hoposer video` writes for that frame.
"""

from collections.abc import Iterator
from dataclasses import dataclass, replace

import numpy as np

from hoposer.errors import HoposerError
from hoposer.stream.options import StreamOptions
from hoposer.stream.run import (
    _backend,
    _camera,
    _detected_ahead,
    _hand_detector,
    _object_detector,
    _object_spec,
    _transform,
)
from hoposer.threads import configure_threads


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
        from hoposer.model.hand import hand_model_for_weights

        self.options = StreamOptions(
            source="", view=False, progress=False, weights=weights, object=object, **options
        )
        self.options = replace(self.options, threads=configure_threads(self.options.threads))
        self.object_spec = _object_spec(self.options)
        self.object_detector = _object_detector(self.options)
        self.transform = _transform(self.options)
        self.backend, trained_with = _backend(self.options)
        self.hand_model = hand_model_for_weights(
            trained_with, self.options.hand_model, self.options.mano_dir
        )
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

        from hoposer.stream.capture import Frame

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

    def stream(self, source, live: bool | None = None) -> Iterator[Estimate]:
        """The estimates of every frame of `source`, in order, as `hoposer video`/`live`.

        Args:
            source: a camera index, a URL, a video file or an image folder.
            live: newest frame only (a camera's pace); default: cameras and URLs are live,
                files and folders give every frame.
        """
        from hoposer.stream.capture import open_source

        opened = open_source(source, live=bool(live))
        detector = None
        try:
            detector = _hand_detector(self.options)
            processor = self._processor(opened.size, detector, str(source))
            for frame, detected in _detected_ahead(opened, processor, ahead=not opened.live):
                yield Estimate.from_result(processor.process(frame, detected))
        finally:
            if detector is not None:
                detector.close()
            opened.close()

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
