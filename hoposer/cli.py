"""The `hoposer` command line: thin, parses and delegates."""

import json
import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from hoposer.calib.cli import calib_app
from hoposer.engine.cli import engine_app
from hoposer.errors import HoposerError, InterruptedRunError, Terminated
from hoposer.io import json_text
from hoposer.stream.cli import register as register_stream_commands
from hoposer.train.cli import train_app

app = typer.Typer(
    name="hoposer",
    help="Real-time 3D hand + object pose estimation.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
weights_app = typer.Typer(help="Model weights: import and inspect.", no_args_is_help=True)
app.add_typer(weights_app, name="weights")
app.add_typer(engine_app, name="engine")
app.add_typer(calib_app, name="calib")
register_stream_commands(app)
app.add_typer(train_app, name="train")


@weights_app.command("import-official")
def weights_import_official(
    checkpoint: Annotated[
        Path, typer.Argument(help="HONet checkpoint (.pth/.pth.tar) of stevenlsw/Semi-Hand-Object")
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="hoposer checkpoint to write")],
    context_heads: Annotated[
        int, typer.Option(help="CR attention heads it was trained with (traineval.py: 1)")
    ] = 1,
) -> None:
    """Convert a public Semi-Hand-Object checkpoint into a hoposer checkpoint, outputs unchanged.

    The MANO layer's buffers in the file (licensed MANO data) are dropped, never copied.

    Example: hoposer weights import-official checkpoint_60.pth.tar --out official.safetensors
    """
    from hoposer.model.checkpoint import save_checkpoint
    from hoposer.model.official import import_official

    model = import_official(checkpoint, context_heads=context_heads)
    save_checkpoint(model, out, metadata={"source": f"import-official {checkpoint.name}"})
    params = sum(p.numel() for p in model.parameters()) / 1e6
    print(f"wrote {out} ({params:.1f}M parameters, config '{model.config.name}')")


@weights_app.command("info")
def weights_info(
    checkpoint: Annotated[Path, typer.Argument(help="a hoposer .safetensors checkpoint")],
) -> None:
    """Print a checkpoint's config and provenance without loading its weights.

    Example: hoposer weights info official.safetensors
    """
    from hoposer.model.checkpoint import read_checkpoint_info

    info = read_checkpoint_info(checkpoint)
    meta = {k: v for k, v in info.metadata.items() if k not in ("config", "tensors_sha256")}
    print(json_text({"config": json.loads(info.config.to_json()), **meta}, indent=2))


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; user mistakes become one line on stderr and exit code 2, never a traceback."""
    # Native libraries' own chatter (FFmpeg, TF Lite in MediaPipe) would bury our one-line errors.
    for variable, value in (
        ("OPENCV_FFMPEG_LOGLEVEL", "-8"),
        ("GLOG_minloglevel", "2"),
        ("TF_CPP_MIN_LOG_LEVEL", "2"),
    ):
        os.environ.setdefault(variable, value)
    try:
        app(args=argv, prog_name="hoposer")
    except SystemExit as done:  # click exits on its own for --help and usage errors
        return done.code if isinstance(done.code, int) else int(done.code is not None)
    except InterruptedRunError as err:
        print(f"hoposer: interrupted: {err}", file=sys.stderr)
        return err.exit_code
    except HoposerError as err:
        print(f"hoposer: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as err:  # Ctrl-C (or SIGTERM) outside a stream's frame loop
        print("hoposer: interrupted", file=sys.stderr)
        return 143 if isinstance(err, Terminated) else 130
    except OSError as err:  # a file system refusal no check foresaw: still one line, no traceback
        where = f"{err.filename}: " if err.filename else ""
        print(f"hoposer: error: {where}{err.strerror or err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
