"""`StreamOptions`: everything `live`, `video` and `Estimator` take, each option declared once.

A field's help text and flag are here (`hoposer.options.option`); `hoposer/stream/cli.py` turns
them into the commands' options and names the fields a command does not offer, with the reason.
"""

from dataclasses import dataclass
from pathlib import Path

from hoposer.errors import HoposerError
from hoposer.options import option
from hoposer.stream.stabilizer import StabilizerOptions

DEFAULT_WEIGHTS = Path(__file__).resolve().parent.parent / "weights" / "lite-synthetic.safetensors"

MODEL, SUBJECT, CAMERA, PUBLISHING = "Model", "Hand and object", "Camera", "Publishing"


#: Cores a stream leaves to its hand detection, which runs on its own thread beside the engine
#: (`Stream`): on 2 cores a 2-thread engine and MediaPipe took turns on both, at 22 frames/s
#: instead of 29.
DETECTION_CORES = 1


@dataclass(frozen=True)
class StreamOptions:
    """Everything `live` and `video` take; the help of each option is beside its field."""

    source: str  #: a camera index, a URL, a video file or an image folder
    live: bool = False  #: newest frame only (a camera's pace); else every frame in order
    out: str | None = option(
        None, "annotated video to write (.mp4), its poses beside it in .jsonl", short="-o"
    )
    panel: bool = option(False, "add the 3D view beside each frame")
    mesh: bool = option(
        True, "draw the estimated hand and object meshes on the frames (key m toggles them)"
    )
    view: bool = option(True, "show the Open3D and overlay windows while processing")
    loop: bool = option(False, "a video file given as --camera plays again from its start")
    max_frames: int | None = option(None, "stop after this many frames")
    allow_gaps: bool = option(False, "accept a file whose damaged frames must be skipped (exit 0)")
    threads: int | None = option(
        None,
        "CPU threads for the engine and OpenCV (default: the cores available less one, which "
        "the hand detection running beside the engine takes)",
    )
    progress: bool = True  #: show a progress bar
    backend: str = option(
        "auto", "auto | tensorrt | onnxruntime | torch (auto: best available)", panel=MODEL
    )
    weights: str | None = option(
        None, "hoposer checkpoint (default: the shipped lite weights)", panel=MODEL
    )
    onnx: str | None = option(None, "exported .onnx (onnxruntime backend)", panel=MODEL)
    plan: str | None = option(None, "TensorRT plan (tensorrt backend)", panel=MODEL)
    device: str | None = option(None, "cpu | cuda | cuda:N", panel=MODEL)
    precision: str = option("fp32", "torch on CUDA: fp32 | fp16 | bf16", panel=MODEL)
    compile: bool = option(False, "torch: torch.compile the model", panel=MODEL)
    hand_model: str = option("auto", "auto | mano | standin", panel=MODEL)
    mano_dir: str | None = option(None, "folder with MANO_RIGHT.pkl", panel=MODEL)
    object: str | None = option(
        "box:0.06x0.06x0.06",
        "the held object: a mesh file (.ply/.obj) or box:WxHxD | cylinder:RxH in metres; append "
        "@none|@box|@cylinder to declare its symmetry (e.g. mug.ply@cylinder)",
        panel=SUBJECT,
    )
    object_name: str | None = option(
        None,
        "the object's name in the pose messages (default: the mesh file's name, or the "
        "box:/cylinder: spec)",
        panel=SUBJECT,
    )
    detector: str = option(
        "mediapipe", "mediapipe, or onnx:PATH for a YOLO-format object detector", panel=SUBJECT
    )
    hands: str = option(
        "auto", "auto (MediaPipe's handedness) | right | left: the hand in view", panel=SUBJECT
    )
    selfie: bool = option(False, "the camera image is mirrored", panel=SUBJECT)
    refine: str = option(
        "auto",
        "fit the hand to 2D evidence after the network: auto (every source: the network's 2D "
        "joints, MediaPipe's landmarks and metric landmarks) | network (its 2D joints only) | off "
        "(the network's raw hand)",
        panel=SUBJECT,
    )
    stabilizer: StabilizerOptions = option(factory=StabilizerOptions, panel=SUBJECT)
    camera_info: str | None = option(
        None, "camera_info YAML from `hoposer calib camera`", panel=CAMERA
    )
    fov_deg: float = option(
        60.0, "horizontal field of view assumed without camera info", flag="--fov", panel=CAMERA
    )
    extrinsics: str | None = option(
        None, "camera→robot YAML from `hoposer calib robot`", panel=CAMERA
    )
    publish: str | None = option(
        None, "ZeroMQ PUB endpoint, e.g. tcp://127.0.0.1:5555", panel=PUBLISHING
    )
    allow_remote: bool = option(
        False, "allow --publish on a non-loopback address", panel=PUBLISHING
    )
    curve_secret: str | None = option(
        None, "CURVE: the publisher's server.key_secret (hoposer keys)", panel=PUBLISHING
    )
    curve_clients: str | None = option(
        None, "CURVE: folder of client .key files allowed to subscribe", panel=PUBLISHING
    )

    def __post_init__(self) -> None:
        """Refuse values that would run but produce nonsense (checked before anything opens)."""
        from hoposer.geometry.refine import REFINE_MODES

        if not 10.0 <= self.fov_deg <= 170.0:  # also false for NaN
            raise HoposerError(
                f"--fov {self.fov_deg:g} is not a horizontal field of view: give 10 to 170 "
                "degrees (or calibrate the camera and pass --camera-info)"
            )
        if self.max_frames is not None and self.max_frames < 1:
            raise HoposerError(f"--max-frames must be at least 1, not {self.max_frames}")
        if self.refine not in REFINE_MODES:
            raise HoposerError(
                f"--refine must be one of {', '.join(REFINE_MODES)}, not {self.refine!r}"
            )
        if self.publish is not None:
            from hoposer.stream.publish import check_endpoint

            check_endpoint(self.publish, self.allow_remote)
