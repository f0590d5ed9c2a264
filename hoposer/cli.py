"""The `hoposer` command line: thin, parses and delegates."""

import sys

import typer

from hoposer.errors import HoposerError

app = typer.Typer(
    name="hoposer",
    help="Real-time 3D hand + object pose estimation.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; user mistakes become one line on stderr and exit code 2, never a traceback."""
    try:
        app(args=argv, standalone_mode=False)
    except HoposerError as err:
        print(f"hoposer: error: {err}", file=sys.stderr)
        return 2
    except typer.Abort:
        print("hoposer: aborted", file=sys.stderr)
        return 130
    except KeyboardInterrupt:
        print("hoposer: interrupted", file=sys.stderr)
        return 130
    except Exception as err:  # click usage errors carry their own exit code and message
        import click

        if isinstance(err, click.ClickException):
            err.show()
            return err.exit_code
        raise
    return 0


if __name__ == "__main__":
    sys.exit(main())
