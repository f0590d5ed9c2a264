"""`hoposer live`, `hoposer video`, `hoposer listen`, `hoposer keys` (thin; logic in stream/)."""

import logging
from dataclasses import fields
from pathlib import Path
from typing import Annotated

import typer

from hoposer.errors import HoposerError
from hoposer.geometry.consistency import Thresholds
from hoposer.options import options_command
from hoposer.stream.options import StreamOptions

log = logging.getLogger(__name__)
SILENCE_HINT_S = 10.0  #: a listener without --timeout explains its silence after this long


def video(options: StreamOptions) -> None:
    """Estimate hand and object poses in a video file; write an annotated video + poses.

    Writes OUT, OUT.jsonl (one pose message per frame) and OUT.summary.json, each replaced only
    by a complete run. Stopped early (Ctrl-C), it keeps OUT.partial.mp4 (+ .jsonl, .summary.json)
    and exits 130. Damaged frames inside the file are skipped, counted, and exit 2 unless
    --allow-gaps.

    Example: hoposer video clip.mp4 --out result.mp4 --object box:0.06x0.1x0.04
    """
    from hoposer.stream.run import run_stream

    if options.out is None and options.publish is None and not options.view:
        raise HoposerError("nothing to produce: give --out FILE.mp4, --publish ENDPOINT or --view")
    _print_summary(run_stream(options), options.out)


def live(options: StreamOptions) -> None:
    """Run on a live camera: windows, and poses published over ZeroMQ.

    Only the newest frame is processed (stale frames are dropped). Quit with q, Esc or Ctrl-C.

    Example: hoposer live --camera 0 --camera-info cam.yaml --object mug.ply
    """
    from hoposer.stream.run import run_stream

    _print_summary(run_stream(options), options.out)


#: StreamOptions fields that neither command offers, and why.
NEITHER = {
    "progress": "the CLI always shows its progress bar; a library caller may turn it off",
    **dict.fromkeys(
        (*(f"stabilizer.thresholds.{f.name}" for f in fields(Thresholds)),
         "stabilizer.shape_window", "stabilizer.shape_min_frames", "stabilizer.shape_min_sigma",
         "stabilizer.shape_relearn_frames",
         "stabilizer.min_cutoff_hz", "stabilizer.beta_speed", "stabilizer.derivative_cutoff_hz"),
        "tuning of §5.1's checks and of the One-Euro filter: StabilizerOptions, from Python",
    ),
}  # fmt: skip
VIDEO = options_command(
    video,
    renamed={"source": ("clip", typer.Argument(help="video file or image folder"))},
    fixed={"live": False},
    defaults={"view": False},
    omitted={
        **NEITHER,
        "loop": "video reads a file once, every frame; looping is for a file played as a camera",
    },
)
LIVE = options_command(
    live,
    renamed={
        "source": (
            "camera",
            typer.Option(help="camera index, RTSP/HTTP URL, or a video file played live"),
        )
    },
    fixed={"live": True},
    defaults={"source": "0", "publish": "tcp://127.0.0.1:5555"},
    omitted={
        **NEITHER,
        "panel": "the 3D view is a live window; drawing it into the recording would slow each "
        "frame",
        "allow_gaps": "a live source skips no damaged frame: a failed read ends it",
    },
)


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
    app.command("video")(VIDEO)
    app.command("live")(LIVE)
    app.command("listen")(listen)
    app.command("keys")(keys)
