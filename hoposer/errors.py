"""The one exception type for user-facing mistakes."""


class HoposerError(Exception):
    """A problem the user can fix: the message names it and says what to do.

    The CLI prints it as one line and exits non-zero, without a traceback.
    """


class InterruptedRunError(HoposerError):
    """The user (Ctrl-C, SIGTERM or the view's quit key) stopped a run before its end.

    The CLI prints the message (what was kept, where) and exits with `exit_code`, the shell's
    128 + signal number: 130 for SIGINT, 143 for SIGTERM.
    """

    def __init__(self, message: str, exit_code: int = 130) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class Terminated(KeyboardInterrupt):
    """Raised in the main thread on SIGTERM, so a terminated run unwinds like a Ctrl-C one."""
