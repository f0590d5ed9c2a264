"""The one exception type for user-facing mistakes."""


class HoposerError(Exception):
    """A problem the user can fix: the message names it and says what to do.

    The CLI prints it as one line and exits non-zero, without a traceback.
    """
