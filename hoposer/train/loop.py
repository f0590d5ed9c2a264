"""The training loop: epochs of one optimisation step each batch, and hooks around them.

`Trainer.train` runs, on each rank,

    before_train
    for each epoch:   (its sample order fixed by (seed, epoch); a resumed epoch skips ahead)
        before_epoch
        for each batch:   before_step, run_step, after_step   (until a hook asks to stop)
        the LR schedule steps if the epoch finished; the epoch's summary, summed over ranks
        after_epoch
    after_train

and everything else is a hook (`hoposer.train.hooks`): checkpoints, the metrics log, the progress
bar, the step and time budget. `state_dict`/`load_state_dict` are the one description of what a
resumed run needs, written to `state.pt` by the checkpoint hook and read back by `fit`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

import torch
import torch.distributed as dist

from hoposer.model.hand import HandModel
from hoposer.model.network import HandObjectNet
from hoposer.train.data.dataset import collate
from hoposer.train.losses import hand_object_loss
from hoposer.train.mesh_cache import CACHED, cached_outputs


class HookBase:
    """Something done around the training steps; override the moments that matter to it.

    `trainer` is set when the hook is registered. Hooks run in the order they were registered,
    at every moment; one asks the run to end with `trainer.stop = True`.
    """

    trainer: Trainer

    def before_train(self) -> None:
        """Before the first epoch."""

    def before_epoch(self) -> None:
        """When the epoch's batches are known (`trainer.epoch_steps`), before its first step."""

    def before_step(self) -> None:
        """Before each optimisation step."""

    def after_step(self) -> None:
        """After each step: `trainer.loss`, `trainer.terms` and the counters are its."""

    def after_epoch(self) -> None:
        """After the epoch's last step, the LR schedule and `trainer.summary`."""

    def after_train(self) -> None:
        """After the last epoch, or when training stops early (also on an error)."""


@dataclass
class EpochStats:
    """What one rank saw in the epoch so far: images, unreadable samples, image-weighted sums."""

    seen: int = 0
    skipped: int = 0
    sums: dict[str, float] = field(default_factory=dict)

    def add(self, images: int, values: dict[str, float]) -> None:
        """Count a step over `images` images whose mean losses were `values`."""
        self.seen += images
        for name, value in values.items():
            self.sums[name] = self.sums.get(name, 0.0) + value * images

    def summed_over_ranks(self, device: torch.device) -> EpochStats:
        """The totals of every rank (all ranks must call this together)."""
        names = sorted(self.sums)
        totals = torch.tensor(
            [self.seen, self.skipped, *(self.sums[n] for n in names)], dtype=torch.float64
        )
        totals = totals.to(device)  # NCCL reduces CUDA tensors only
        dist.all_reduce(totals)
        totals = totals.cpu()
        sums = {n: float(v) for n, v in zip(names, totals[2:], strict=True)}
        return EpochStats(int(totals[0]), int(totals[1]), sums)


class EpochSampler(torch.utils.data.Sampler[int]):
    """A permutation of the dataset fixed by (seed, epoch), sharded over ranks, resumable."""

    def __init__(self, size: int, seed: int, rank: int = 0, world: int = 1) -> None:
        self.size, self.seed, self.rank, self.world = size, seed, rank, world
        self.epoch, self.skip = 0, 0

    def set_epoch(self, epoch: int, skip: int = 0) -> None:
        """Use epoch `epoch`'s order, starting after the first `skip` indices of this rank."""
        self.epoch, self.skip = epoch, skip

    def _indices(self) -> list[int]:
        g = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        order = torch.randperm(self.size, generator=g).tolist()
        per_rank = math.ceil(self.size / self.world)
        order += order[: per_rank * self.world - self.size]  # equal shards for DDP
        return order[self.rank :: self.world]

    def __iter__(self) -> Iterator[int]:  # noqa: D105
        return iter(self._indices()[self.skip :])

    def __len__(self) -> int:  # noqa: D105
        return len(self._indices()) - self.skip


class Trainer:
    """Trains `model` on `dataset` for `epochs` epochs on this rank (see the module docstring).

    Attributes (what hooks read):
        rank, world: this process's rank among `world` data-parallel ones.
        epoch: the current epoch (0-based).
        step: steps taken in this epoch, a resumed run's earlier ones included.
        epoch_steps: `step` once this epoch is complete.
        global_step: steps taken by the whole run.
        loss, terms: the last step's loss and its terms.
        stats: this epoch's `EpochStats` on this rank.
        epoch_started: `time.perf_counter()` when this epoch's first step began (or was about to).
        summary: the last finished (or stopped) epoch's summary, the ranks summed.
        stop: set by a hook to end training after the current step (or before the first epoch).
    """

    def __init__(
        self,
        model: HandObjectNet,
        hand_model: HandModel,
        optimizer: torch.optim.Optimizer,
        scheduler: torch.optim.lr_scheduler.LRScheduler,
        dataset: torch.utils.data.Dataset,
        *,
        seed: int,
        epochs: int,
        batch_size: int,
        workers: int,
        loss_weights: dict[str, float],
        amp: bool,
        device: torch.device,
        rank: int = 0,
        world: int = 1,
    ) -> None:
        self.model, self.hand_model = model, hand_model
        self.optimizer, self.scheduler = optimizer, scheduler
        self.dataset = dataset
        self.sampler = EpochSampler(len(dataset), seed, rank, world)
        self.epochs, self.batch_size, self.workers = epochs, batch_size, workers
        self.loss_weights = loss_weights
        self.device, self.rank, self.world = device, rank, world
        self.trainable: torch.nn.Module = model
        if world > 1:
            self.trainable = torch.nn.parallel.DistributedDataParallel(
                model, device_ids=[device.index] if device.type == "cuda" else None
            )
        self._autocast = (
            torch.autocast("cuda", dtype=torch.bfloat16)
            if amp and device.type == "cuda"
            else torch.autocast("cpu", enabled=False)
        )
        self.hooks: list[HookBase] = []
        self.epoch = self.step = self.epoch_steps = self.global_step = 0
        self.loss, self.terms = float("nan"), {}
        self.stats = EpochStats()
        self.epoch_started = 0.0
        self.summary: dict = {}
        self.stop = False

    def register_hooks(self, hooks: Iterable[HookBase]) -> None:
        """Add hooks, run after those already registered."""
        for hook in hooks:
            hook.trainer = self
            self.hooks.append(hook)

    # --- resume -------------------------------------------------------------------------------

    def state_dict(self, epoch: int, step: int) -> dict:
        """What a run resumed at step `step` of epoch `epoch` needs, as `state.pt` holds it.

        Tensors, numbers and strings only, so it loads with `weights_only=True`.
        """
        return {
            "config": self.model.config.to_json(),
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "torch_rng": torch.get_rng_state(),
            "epoch": epoch,
            "step": step,
            "global_step": self.global_step,
        }

    def load_state_dict(self, state: dict) -> None:
        """Continue where `state` was saved (the model itself is built from it before)."""
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["torch_rng"])
        self.epoch, self.step = int(state["epoch"]), int(state["step"])
        self.global_step = int(state["global_step"])

    # --- the loop -----------------------------------------------------------------------------

    def train(self) -> dict:
        """Run the epochs left; returns the last epoch's summary ({} when none ran)."""
        try:
            self._call("before_train")
            while not self.stop and self.epoch < self.epochs:
                self._run_epoch()
        finally:
            self._call("after_train")
        return self.summary

    def _run_epoch(self) -> None:
        # Resumed mid-epoch: the same order, after the batches already taken.
        self.sampler.set_epoch(self.epoch, self.step * self.batch_size)
        if hasattr(self.dataset, "set_epoch"):
            self.dataset.set_epoch(self.epoch)
        loader = torch.utils.data.DataLoader(
            self.dataset,
            batch_size=self.batch_size,
            sampler=self.sampler,
            num_workers=self.workers,
            collate_fn=collate,
            pin_memory=self.device.type == "cuda",
            drop_last=False,
        )
        self.stats = EpochStats()
        self.epoch_started = time.perf_counter()
        self.epoch_steps = self.step + len(loader)
        self._call("before_epoch")
        for batch, unreadable in loader:
            self.stats.skipped += unreadable
            if not batch:
                continue
            self._call("before_step")
            self.run_step(batch)
            self._call("after_step")
            if self.stop:
                break
        elapsed = time.perf_counter() - self.epoch_started
        finished = self.step >= self.epoch_steps
        if finished:
            self.scheduler.step()
        stats = self.stats.summed_over_ranks(self.device) if self.world > 1 else self.stats
        self.summary = {
            "epoch": self.epoch + 1,
            "images": stats.seen,
            "skipped_samples": stats.skipped,
            "images_per_s": stats.seen / max(elapsed, 1e-9),
            "lr": self.optimizer.param_groups[0]["lr"],
            **{name: total / max(stats.seen, 1) for name, total in stats.sums.items()},
        }
        self._call("after_epoch")
        if finished:
            self.epoch, self.step = self.epoch + 1, 0
        else:  # stopped by a hook, or a batch with no readable sample: resume from here
            self.stop = True

    def run_step(self, batch: dict[str, torch.Tensor]) -> None:
        """One optimisation step on `batch`; sets `loss`, `terms` and the counters."""
        batch = {k: v.to(self.device, non_blocking=True) for k, v in batch.items()}
        with self._autocast:
            if CACHED in batch:  # the held part's outputs, stored by `--cache-draws`
                outputs = cached_outputs(self.model, batch)
            else:
                images = batch["image"]
                if self.device.type == "cuda":
                    images = images.contiguous(memory_format=torch.channels_last)
                outputs = self.trainable(images, batch["hand_box"], batch["object_box"], True)
        loss, terms = hand_object_loss(_float(outputs), batch, self.hand_model, self.loss_weights)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.step += 1
        self.global_step += 1
        self.loss, self.terms = float(loss.detach()), terms
        self.stats.add(len(batch["has_mano"]), {"loss": self.loss, **terms})

    @property
    def epoch_finished(self) -> bool:
        """Whether this epoch has taken all its steps."""
        return self.step >= self.epoch_steps

    def _call(self, moment: str) -> None:
        for hook in self.hooks:
            getattr(hook, moment)()


def _float(outputs):
    """Losses in fp32 whatever the autocast dtype of the forward pass."""
    return type(outputs)(
        *(type(x)(*(t.float() for t in x)) if isinstance(x, tuple) else x.float() for x in outputs)
    )
