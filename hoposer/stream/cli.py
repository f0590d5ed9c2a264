"""`hoposer live`, `hoposer video`, `hoposer listen`, `hoposer keys` (thin; logic in stream/)."""

import logging
from pathlib import Path
from typing import Annotated

import typer

from hoposer.errors import HoposerError

log = logging.getLogger(__name__)
SILENCE_HINT_S = 10.0  #: a listener without --timeout explains its silence after this long

Backend = Annotated[
    str, typer.Option(help="auto | tensorrt | onnxruntime | torch (auto: best available)")
]
Weights = Annotated[
    str | None, typer.Option(help="hoposer checkpoint (default: the shipped lite weights)")
]
Onnx = Annotated[str | None, typer.Option(help="exported .onnx (onnxruntime backend)")]
Plan = Annotated[str | None, typer.Option(help="TensorRT plan (tensorrt backend)")]
ObjectOpt = Annotated[
    str,
    typer.Option(
        "--object",
        help="the held object: a mesh file (.ply/.obj) or box:WxHxD | cylinder:RxH in metres; "
        "append @none|@box|@cylinder to declare its symmetry (e.g. mug.ply@cylinder)",
    ),
]
CameraInfo = Annotated[
    str | None, typer.Option(help="camera_info YAML from `hoposer calib camera`")
]
Fov = Annotated[float, typer.Option(help="horizontal field of view assumed without camera info")]
Extrinsics = Annotated[
    str | None, typer.Option(help="camera→robot YAML from `hoposer calib robot`")
]
Publish = Annotated[str | None, typer.Option(help="ZeroMQ PUB endpoint, e.g. tcp://127.0.0.1:5555")]
AllowRemote = Annotated[bool, typer.Option(help="allow --publish on a non-loopback address")]
CurveSecret = Annotated[
    str | None, typer.Option(help="CURVE: the publisher's server.key_secret (hoposer keys)")
]
CurveClients = Annotated[
    str | None, typer.Option(help="CURVE: folder of client .key files allowed to subscribe")
]
HandModelOpt = Annotated[str, typer.Option(help="auto | mano | standin")]
ManoDir = Annotated[str | None, typer.Option(help="folder with MANO_RIGHT.pkl")]
Detector = Annotated[
    str, typer.Option(help="mediapipe, or onnx:PATH for a YOLO-format object detector")
]
Smooth = Annotated[bool, typer.Option(help="One-Euro smoothing of accepted poses")]
Hands = Annotated[
    str, typer.Option(help="auto (MediaPipe's handedness) | right | left: the hand in view")
]
Refine = Annotated[
    str,
    typer.Option(
        help="fit the hand to 2D evidence after the network: auto (every source: the network's "
        "2D joints, MediaPipe's landmarks and metric landmarks) | network (its 2D joints only) "
        "| off (the network's raw hand)"
    ),
]
Relock = Annotated[int, typer.Option(help="agreeing frames needed to re-lock after a failure")]
Threads = Annotated[
    int | None,
    typer.Option(help="CPU threads for the engine and OpenCV (default: the cores available)"),
]


def _options(**kwargs):
    from hoposer.stream.run import StreamOptions
    from hoposer.stream.stabilizer import StabilizerOptions

    smooth = kwargs.pop("smooth")
    from hoposer.geometry.refine import REFINE_MODES

    relock = kwargs.pop("relock")
    if relock < 1:
        raise HoposerError("--relock must be at least 1")
    if kwargs["refine"] not in REFINE_MODES:
        raise HoposerError(
            f"--refine must be one of {', '.join(REFINE_MODES)}, not {kwargs['refine']!r}"
        )
    return StreamOptions(
        stabilizer=StabilizerOptions(smoothing=smooth, relock_frames=relock), **kwargs
    )


def video(
    clip: Annotated[str, typer.Argument(help="video file or image folder")],
    out: Annotated[
        str | None, typer.Option("--out", "-o", help="annotated video to write (.mp4)")
    ] = None,
    panel: Annotated[bool, typer.Option(help="add the 3D view beside each frame")] = False,
    mesh: Annotated[
        bool, typer.Option(help="draw the estimated hand and object meshes on the video")
    ] = True,
    view: Annotated[bool, typer.Option(help="show windows while processing")] = False,
    backend: Backend = "auto",
    weights: Weights = None,
    onnx: Onnx = None,
    plan: Plan = None,
    device: Annotated[str | None, typer.Option(help="cpu | cuda | cuda:N")] = None,
    object: ObjectOpt = "box:0.06x0.06x0.06",
    camera_info: CameraInfo = None,
    fov: Fov = 60.0,
    extrinsics: Extrinsics = None,
    publish: Publish = None,
    allow_remote: AllowRemote = False,
    curve_secret: CurveSecret = None,
    curve_clients: CurveClients = None,
    hand_model: HandModelOpt = "auto",
    mano_dir: ManoDir = None,
    detector: Detector = "mediapipe",
    hands: Hands = "auto",
    refine: Refine = "auto",
    smooth: Smooth = True,
    relock: Relock = 3,
    threads: Threads = None,
    max_frames: Annotated[int | None, typer.Option(help="stop after this many frames")] = None,
    allow_gaps: Annotated[
        bool, typer.Option(help="accept a file whose damaged frames must be skipped (exit 0)")
    ] = False,
) -> None:
    """Estimate hand and object poses in a video file; write an annotated video + poses.

    Writes OUT, OUT.jsonl (one pose message per frame) and OUT.summary.json, each replaced only
    by a complete run. Stopped early (Ctrl-C), it keeps OUT.partial.mp4 (+ .jsonl, .summary.json)
    and exits 130. Damaged frames inside the file are skipped, counted, and exit 2 unless
    --allow-gaps.

    Example: hoposer video clip.mp4 --out result.mp4 --object box:0.06x0.1x0.04
    """
    from hoposer.stream.run import run_stream

    if out is None and publish is None and not view:
        raise HoposerError("nothing to produce: give --out FILE.mp4, --publish ENDPOINT or --view")
    summary = run_stream(
        _options(
            source=clip, live=False, out=out, panel=panel, mesh=mesh, view=view, backend=backend,
            weights=weights, onnx=onnx, plan=plan, device=device, object=object,
            camera_info=camera_info, fov_deg=fov, extrinsics=extrinsics, publish=publish,
            allow_remote=allow_remote, curve_secret=curve_secret, curve_clients=curve_clients,
            hand_model=hand_model, mano_dir=mano_dir,
            detector=detector, hands=hands, refine=refine, smooth=smooth, relock=relock,
            max_frames=max_frames, threads=threads, allow_gaps=allow_gaps,
        )
    )  # fmt: skip
    _print_summary(summary, out)


def live(
    camera: Annotated[
        str, typer.Option(help="camera index, RTSP/HTTP URL, or a video file played live")
    ] = "0",
    loop: Annotated[
        bool, typer.Option(help="a video file given as --camera plays again from its start")
    ] = False,
    view: Annotated[bool, typer.Option(help="show the Open3D and overlay windows")] = True,
    out: Annotated[str | None, typer.Option("--out", "-o", help="also record to .mp4")] = None,
    mesh: Annotated[
        bool, typer.Option(help="draw the estimated meshes on the frame (key m toggles)")
    ] = True,
    backend: Backend = "auto",
    weights: Weights = None,
    onnx: Onnx = None,
    plan: Plan = None,
    device: Annotated[str | None, typer.Option(help="cpu | cuda | cuda:N")] = None,
    precision: Annotated[str, typer.Option(help="torch on CUDA: fp32 | fp16 | bf16")] = "fp32",
    compile: Annotated[bool, typer.Option(help="torch: torch.compile the model")] = False,
    object: ObjectOpt = "box:0.06x0.06x0.06",
    camera_info: CameraInfo = None,
    fov: Fov = 60.0,
    extrinsics: Extrinsics = None,
    publish: Publish = "tcp://127.0.0.1:5555",
    allow_remote: AllowRemote = False,
    curve_secret: CurveSecret = None,
    curve_clients: CurveClients = None,
    hand_model: HandModelOpt = "auto",
    mano_dir: ManoDir = None,
    detector: Detector = "mediapipe",
    selfie: Annotated[bool, typer.Option(help="the camera image is mirrored")] = False,
    hands: Hands = "auto",
    refine: Refine = "auto",
    smooth: Smooth = True,
    relock: Relock = 3,
    threads: Threads = None,
    max_frames: Annotated[int | None, typer.Option(help="stop after this many frames")] = None,
) -> None:
    """Run on a live camera: windows, and poses published over ZeroMQ.

    Only the newest frame is processed (stale frames are dropped). Quit with q, Esc or Ctrl-C.

    Example: hoposer live --camera 0 --camera-info cam.yaml --object mug.ply
    """
    from hoposer.stream.run import run_stream

    summary = run_stream(
        _options(
            source=camera, live=True, loop=loop, out=out, mesh=mesh, view=view, backend=backend,
            weights=weights, onnx=onnx, plan=plan, device=device, precision=precision,
            compile=compile,
            object=object, camera_info=camera_info, fov_deg=fov, extrinsics=extrinsics,
            publish=publish, allow_remote=allow_remote, curve_secret=curve_secret,
            curve_clients=curve_clients, hand_model=hand_model, mano_dir=mano_dir,
            detector=detector, selfie=selfie, hands=hands, refine=refine, smooth=smooth,
            relock=relock, max_frames=max_frames, threads=threads,
        )
    )  # fmt: skip
    _print_summary(summary, out)


def listen(
    endpoint: Annotated[str, typer.Argument(help="publisher endpoint")] = "tcp://127.0.0.1:5555",
    as_json: Annotated[bool, typer.Option("--json", help="one JSON message per line")] = False,
    count: Annotated[int | None, typer.Option(help="exit after this many messages")] = None,
    timeout: Annotated[
        float | None,
        typer.Option(
            help="exit after this many seconds without a message (exit 2 when none came at all)"
        ),
    ] = None,
    curve_secret: Annotated[
        str | None, typer.Option(help="CURVE: this client's client.key_secret")
    ] = None,
    curve_server: Annotated[
        str | None, typer.Option(help="CURVE: the publisher's server.key")
    ] = None,
) -> None:
    """Print the pose messages a `hoposer live`/`video --publish` sends (reference subscriber).

    Only the newest pose is kept: a slow reader skips to it, never reads a backlog. Each line
    shows the pose's age (seconds since its frame was captured).

    Example: hoposer listen tcp://127.0.0.1:5555 --json | jq .object.pose
    """
    from hoposer.io import json_text
    from hoposer.stream.publish import CurveKeys, PoseSubscriber

    curve = None
    if curve_secret is not None:
        curve = CurveKeys(Path(curve_secret), server_public=Path(curve_server or ""))
    elif curve_server is not None:
        raise HoposerError("--curve-server needs --curve-secret (this client's .key_secret)")
    received = 0
    with PoseSubscriber(endpoint, curve) as subscriber:
        while count is None or received < count:
            wait = SILENCE_HINT_S if timeout is None and not received else timeout
            message = subscriber.receive(timeout_s=wait)
            if message is None and timeout is None and not received:
                log.warning("no pose yet after %.0f s: %s", wait, subscriber.silence_hint())
                continue  # no --timeout: keep waiting
            if message is None and not received:
                raise HoposerError(
                    f"no pose from {endpoint} in {timeout:g} s: {subscriber.silence_hint()}"
                )
            if message is None:
                break
            received += 1
            print(json_text(message) if as_json else format_message(message), flush=True)


def format_message(message: dict) -> str:
    """One readable line per message, with its age (seconds since the frame was captured)."""
    from hoposer.stream.publish import message_age_s

    age = message_age_s(message)
    head = f"#{message['frame_index']:>6} age {age:5.2f} s [{message['reference_frame']}]"
    hand = message["hand"]
    if hand is None:
        text = "no hand"
    else:
        text = f"{hand['side']} wrist {_xyz(hand['wrist']['position'])} m"
    obj = message["object"]
    if obj is not None:
        if obj["found"]:
            position = _xyz(obj["pose"]["position"])
            text += f" | {obj['name']} {position} m, {obj['inliers']} inliers"
        else:
            text += f" | {obj['name']} not found ({obj['reason']})"
    stability = message["stability"]
    if not stability["stable"]:
        state = f"held {stability['age_frames']}" if stability["held"] else "unstable"
        text += f" | {state}: {','.join(stability['flags'])}"
    return f"{head} {text}"


def _xyz(position: list) -> str:
    """(x, y, z) with 3 decimals; a null (a value that was not finite) shows as null."""
    return "(" + ", ".join("null" if v is None else f"{v:+.3f}" for v in position) + ")"


def keys(
    folder: Annotated[Path, typer.Argument(help="where to write the key files")],
    force: Annotated[
        bool, typer.Option(help="replace key pairs already in FOLDER (their clients lose access)")
    ] = False,
) -> None:
    """Make CURVE key pairs for encrypted, authenticated publishing.

    Example: hoposer keys ~/.hoposer/keys  (then: live --curve-secret …/server.key_secret
    --curve-clients DIR_WITH_client.key; listen --curve-secret …/client.key_secret
    --curve-server …/server.key)
    """
    from hoposer.stream.publish import make_keys

    for name, path in make_keys(folder, force=force).items():
        print(f"{name}: {path}")


def _print_summary(summary: dict, out: str | None) -> None:
    latency = summary["latency_ms"]
    engine = latency.get("engine", {})
    end = latency.get("capture_to_publish", {})
    print(
        f"{summary['frames']} frames ({summary['frames_with_hand']} with a hand, "
        f"{100 * summary['stable_fraction']:.0f}% stable), {summary['fps']:.1f} frames/s; "
        f"engine p50 {engine.get('p50', float('nan')):.1f} ms, frame→publish p50 "
        f"{end.get('p50', float('nan')):.1f} ms"
    )
    if summary.get("published"):
        print(f"published {summary['published']} messages")
    if out:
        print(f"wrote {out}, {Path(out).with_suffix('.jsonl')}")


def register(app: typer.Typer) -> None:
    """Add the stream commands to the top-level app."""
    app.command("video")(video)
    app.command("live")(live)
    app.command("listen")(listen)
    app.command("keys")(keys)
