"""One progress bar for every long job: count, ETA and a status line of live numbers."""

from typing import Any


class ProgressBar:
    """A rich bar that starts on its first update and stops when complete or closed.

    `status` is a format string over the keyword values given to `update`, e.g.
    `"{fps:.1f} frames/s"`. A disabled bar does nothing, so callers need no branches.
    """

    def __init__(
        self, label: str, total: int | None = None, status: str = "", enabled: bool = True
    ) -> None:
        self.label, self.total, self.status, self.enabled = label, total, status, enabled
        self._bar: Any = None
        self._task = None

    def update(self, done: int, total: int | None = None, **values: float) -> None:
        """Show `done` of `total` (or the total given at construction) and the status."""
        if not self.enabled:
            return
        if total is not None:
            self.total = total
        if self._bar is None:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeRemainingColumn,
            )

            self._bar = Progress(
                TextColumn(self.label),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[status]}"),
                TimeRemainingColumn(),
            )
            self._task = self._bar.add_task(self.label, total=self.total, status="")
            self._bar.start()
        status = self.status.format(**values) if values else ""
        self._bar.update(self._task, completed=done, total=self.total, status=status)
        if self.total is not None and done >= self.total:
            self.close()

    def close(self) -> None:
        """Stop drawing (idempotent)."""
        if self._bar is not None:
            self._bar.stop()
            self._bar = None
