"""What `fit` does around the training steps, each a `HookBase` of `hoposer.train.loop`.

    ProgressBar: the epoch's bar on the terminal.
    Checkpointer: `model.safetensors` and `state.pt`, atomically, every N steps and each epoch.
    MetricsWriter: per-step losses to TensorBoard; each epoch's summary to `metrics.jsonl`,
        TensorBoard and the log.
    Budget: ends the run after `--max-steps` steps or `--max-minutes` minutes.

Checkpoints and metrics are written by rank 0 alone: `fit` registers those hooks there only.
"""

import logging
import time
from pathlib import Path

import torch

from hoposer.io import atomic_path, json_text
from hoposer.model.checkpoint import save_checkpoint
from hoposer.progress import ProgressBar
from hoposer.train.loop import HookBase
from hoposer.train.tensorboard import ScalarWriter

log = logging.getLogger(__name__)


class EpochProgress(HookBase):
    """A progress bar per epoch: steps, the last loss and images per second."""

    def __init__(self) -> None:
        self._bar: ProgressBar | None = None

    def before_epoch(self) -> None:  # noqa: D102
        t = self.trainer
        self._bar = ProgressBar(
            f"epoch {t.epoch + 1}/{t.epochs}", t.epoch_steps, "loss {loss:.4f}  {rate:.1f} img/s"
        )

    def after_step(self) -> None:  # noqa: D102
        t = self.trainer
        rate = t.stats.seen / max(time.perf_counter() - t.epoch_started, 1e-9)
        self._bar.update(t.step, loss=t.loss, rate=rate)

    def after_epoch(self) -> None:  # noqa: D102
        self._bar.close()


class Checkpointer(HookBase):
    """Saves the run every `every` steps (0: never) and at each epoch's end (see `fit`).

    `state.pt` is written in one atomic step with everything `Trainer.load_state_dict` reads, so
    a run killed at any moment resumes from a consistent state; `model.safetensors` is the same
    weights for every backend.
    """

    def __init__(self, run: Path, every: int) -> None:
        self.run, self.every = run, every

    def after_step(self) -> None:  # noqa: D102
        t = self.trainer
        if self.every and t.step % self.every == 0:
            self.save(t.epoch, t.step)

    def after_epoch(self) -> None:  # noqa: D102
        t = self.trainer
        self.save(*((t.epoch + 1, 0) if t.epoch_finished else (t.epoch, t.step)))

    def save(self, epoch: int, step: int) -> None:
        """Write the weights and the state a run resumed at (`epoch`, `step`) starts from."""
        t = self.trainer
        metadata = {"epoch": str(epoch), "hand_model": t.hand_model.name, "run": str(self.run)}
        save_checkpoint(t.model, self.run / "model.safetensors", metadata=metadata)
        with atomic_path(self.run / "state.pt") as tmp:
            torch.save(t.state_dict(epoch, step), tmp)


class MetricsWriter(HookBase):
    """Losses to TensorBoard every step; each epoch's summary to `metrics.jsonl` and the log."""

    def __init__(self, run: Path) -> None:
        self.run = run
        self._writer: ScalarWriter | None = None

    def before_train(self) -> None:  # noqa: D102
        self._writer = ScalarWriter(self.run / "tensorboard")

    def after_step(self) -> None:  # noqa: D102
        t = self.trainer
        self._writer.add_scalar("train/loss", t.loss, t.global_step)
        for name, value in t.terms.items():
            self._writer.add_scalar(f"train/{name}", value, t.global_step)

    def after_epoch(self) -> None:  # noqa: D102
        t, summary = self.trainer, self.trainer.summary
        with open(self.run / "metrics.jsonl", "a") as f:
            f.write(json_text(summary) + "\n")
        self._writer.add_scalar("train/images_per_s", summary["images_per_s"], t.global_step)
        self._writer.add_scalar("train/skipped_samples", summary["skipped_samples"], t.global_step)
        self._writer.flush()
        log.info("epoch %d: %s", summary["epoch"], summary)
        if summary["skipped_samples"]:
            log.warning(
                "epoch %d skipped %d unreadable samples",
                summary["epoch"],
                summary["skipped_samples"],
            )

    def after_train(self) -> None:  # noqa: D102
        if self._writer is not None:
            self._writer.close()


class Budget(HookBase):
    """Stops the run after `max_steps` steps or `max_minutes` minutes (None: no limit).

    Steps count the whole run (a resumed run's earlier ones too); minutes, this process's
    training. The checkpoint hook saves where it stopped.
    """

    def __init__(self, max_steps: int | None, max_minutes: float | None) -> None:
        self.max_steps, self.max_minutes = max_steps, max_minutes
        self._started = 0.0

    def before_train(self) -> None:  # noqa: D102
        self._started = time.perf_counter()
        if self._steps_spent():
            # A resumed run that already took its --max-steps: one more step per rerun otherwise.
            log.info(
                "nothing to train: the run already took %d steps (--max-steps)",
                self.trainer.global_step,
            )
            self.trainer.stop = True

    def after_step(self) -> None:  # noqa: D102
        self._check()

    def after_epoch(self) -> None:  # noqa: D102
        self._check()

    def _steps_spent(self) -> bool:
        return self.max_steps is not None and self.trainer.global_step >= self.max_steps

    def _check(self) -> None:
        limit = self.max_minutes
        out_of_time = limit is not None and time.perf_counter() - self._started > 60 * limit
        if self._steps_spent() or out_of_time:
            self.trainer.stop = True
