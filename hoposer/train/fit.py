"""Supervised (and, with pseudo-labels, self-) training of the joint network.

One command for one CPU, one GPU or many (`torchrun --nproc_per_node N -m hoposer.cli train fit
...` runs DDP: each rank takes a disjoint shard of every epoch). Every `checkpoint_every` steps
and at each epoch's end the run directory gets, atomically:

    model.safetensors (+ model.json)   the weights, loadable by every backend
    state.pt                           weights, optimizer, scheduler, RNG, epoch and step in one
                                       file (tensors, numbers and strings only: loaded with
                                       `weights_only=True`), so a kill at any moment resumes
                                       from a consistent state

`--resume` continues from `state.pt` exactly: the epoch's sample order and every augmentation
draw are functions of (seed, epoch, index), so a resumed run sees the same batches an
uninterrupted run would. Scalars go to TensorBoard event files and to `metrics.jsonl`.
"""

import logging
import math
import os
import time
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path

import torch
import torch.distributed as dist

from hoposer.errors import HoposerError
from hoposer.io import atomic_path, json_text, write_text_atomic
from hoposer.model import ModelConfig, get_config
from hoposer.model.backbone import load_pretrained
from hoposer.model.checkpoint import load_checkpoint, save_checkpoint
from hoposer.model.hand import build_hand_model
from hoposer.model.network import HandObjectNet
from hoposer.progress import ProgressBar
from hoposer.threads import configure_threads
from hoposer.train.data.dataset import Augmentation, HandObjectDataset, collate
from hoposer.train.losses import LOSS_PRESETS, hand_object_loss
from hoposer.train.options import FitOptions
from hoposer.train.tensorboard import ScalarWriter

log = logging.getLogger(__name__)


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


def resolve_device(name: str) -> torch.device:
    """`auto` is the GPU when there is one, else the CPU; other names as torch reads them."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def _distributed() -> tuple[int, int, int]:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    rank = dist.get_rank() if world > 1 else 0
    local = int(os.environ.get("LOCAL_RANK", "0"))
    return rank, local, world


def build_datasets(options: FitOptions, config: ModelConfig) -> torch.utils.data.Dataset:
    """The labelled training set, joined by pseudo-labelled sets when given."""
    augmentation = Augmentation() if options.augment else Augmentation.none()
    if options.data is None:  # self-training on pseudo-labels alone (`hoposer train adapt`)
        from hoposer.train.pseudo.dataset import PseudoLabelDataset

        if not options.pseudo:
            raise HoposerError("nothing to train on: give labelled data or pseudo-labels")
        pseudo = PseudoLabelDataset(
            options.pseudo, config.input_size, config.roi_size, augmentation, options.seed,
            options.pseudo_filters,
        )  # fmt: skip
        log.info("pseudo-labels: %s", pseudo.funnel)
        return pseudo
    labelled = HandObjectDataset(
        options.data,
        "train",
        input_size=config.input_size,
        grid_size=config.roi_size,
        augmentation=augmentation,
        seed=options.seed,
        ycb_dir=options.ycb_dir,
        max_samples=options.max_samples,
    )
    if not options.pseudo:
        return labelled
    from hoposer.train.pseudo.dataset import mixed_dataset

    return mixed_dataset(labelled, options, config, augmentation)


def fit(options: FitOptions, resume: bool = False, progress: bool = True) -> dict:
    """Train; returns the last epoch's summary."""
    rank, local_rank, world = _distributed()
    configure_threads(options.threads)
    device = resolve_device(options.device)
    if device.type == "cuda" and world > 1:
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    run = Path(options.out)
    state_path = run / "state.pt"
    if rank == 0:
        run.mkdir(parents=True, exist_ok=True)
        if not resume and state_path.exists():
            raise HoposerError(
                f"{run} already holds a training run: pass --resume to continue it, or choose "
                "another --out"
            )
        write_text_atomic(run / "options.json", json_text(asdict(options), indent=2) + "\n")

    torch.manual_seed(options.seed)
    state = None
    if resume:
        if not state_path.is_file():
            raise HoposerError(f"nothing to resume: {state_path} does not exist")
        state = torch.load(state_path, map_location="cpu", weights_only=True)
    if state is not None:
        # The model comes from state.pt, written in one atomic step with the optimizer: a run
        # killed at any moment resumes from a consistent pair.
        model = HandObjectNet(ModelConfig.from_json(state["config"]))
        model.load_state_dict(state["model"])
    elif options.init_weights:
        model = load_checkpoint(options.init_weights)
    else:
        model = HandObjectNet(get_config(options.config))
        if load_pretrained(model.backbone, options.backbone_weights):
            log.info("backbone starts from ImageNet weights (%s)", options.backbone_weights)
    config = model.config
    model = model.to(device).train()
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    hand_model = build_hand_model(options.hand_model, options.mano_dir).to(device)
    trainable = model
    if world > 1:
        trainable = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None
        )
    optimizer = torch.optim.Adam(
        model.parameters(), lr=options.lr, weight_decay=options.weight_decay
    )
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, options.lr_step, options.lr_gamma)
    start_epoch, start_step, global_step = 0, 0, 0
    if state is not None:
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["torch_rng"])
        start_epoch, start_step = int(state["epoch"]), int(state["step"])
        global_step = int(state["global_step"])
        log.info("resuming at epoch %d step %d", start_epoch, start_step)

    dataset = build_datasets(options, config)
    sampler = EpochSampler(len(dataset), options.seed, rank, world)
    loader_kwargs = {
        "batch_size": options.batch_size,
        "sampler": sampler,
        "num_workers": options.workers,
        "collate_fn": collate,
        "pin_memory": device.type == "cuda",
        "drop_last": False,
    }
    weights = LOSS_PRESETS[options.loss]
    autocast = (
        torch.autocast("cuda", dtype=torch.bfloat16)
        if options.amp and device.type == "cuda"
        else torch.autocast("cpu", enabled=False)
    )
    writer = ScalarWriter(run / "tensorboard") if rank == 0 else None

    def save(epoch: int, step: int) -> None:
        if rank != 0:
            return
        metadata = {"epoch": str(epoch), "hand_model": hand_model.name, "run": str(run)}
        save_checkpoint(model, run / "model.safetensors", metadata=metadata)
        state = {
            "config": model.config.to_json(),
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "torch_rng": torch.get_rng_state(),
            "epoch": epoch,
            "step": step,
            "global_step": global_step,
        }
        with atomic_path(state_path) as tmp:
            torch.save(state, tmp)

    summary: dict = {}
    run_started = time.perf_counter()

    def out_of_budget() -> bool:
        if options.max_steps is not None and global_step >= options.max_steps:
            return True
        limit = options.max_minutes
        return limit is not None and time.perf_counter() - run_started > 60 * limit

    if options.max_steps is not None and global_step >= options.max_steps:
        # A resumed run that already took its --max-steps: one more step per rerun otherwise.
        log.info("nothing to train: the run already took %d steps (--max-steps)", global_step)
        return summary
    for epoch in range(start_epoch, options.epochs):
        skip = start_step * options.batch_size if epoch == start_epoch else 0
        step = start_step if epoch == start_epoch else 0
        sampler.set_epoch(epoch, skip)
        _set_epoch(dataset, epoch)
        loader = torch.utils.data.DataLoader(dataset, **loader_kwargs)
        sums: dict[str, float] = {}
        seen = skipped = 0
        started = time.perf_counter()
        epoch_steps = step + len(loader)
        bar = ProgressBar(
            f"epoch {epoch + 1}/{options.epochs}",
            epoch_steps,
            "loss {loss:.4f}  {rate:.1f} img/s",
            enabled=progress and rank == 0,
        )
        for batch, bad in loader:
            skipped += bad
            if not batch:
                continue
            batch = {k: v.to(device, non_blocking=True) for k, v in batch.items()}
            images = batch["image"]
            if device.type == "cuda":
                images = images.contiguous(memory_format=torch.channels_last)
            with autocast:
                outputs = trainable(images, batch["hand_box"], batch["object_box"], True)
            loss, terms = hand_object_loss(_float(outputs), batch, hand_model, weights)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            step += 1
            global_step += 1
            seen += len(images)
            for name, value in {"loss": float(loss.detach()), **terms}.items():
                sums[name] = sums.get(name, 0.0) + value * len(images)
            if writer is not None:
                writer.add_scalar("train/loss", float(loss.detach()), global_step)
                for name, value in terms.items():
                    writer.add_scalar(f"train/{name}", value, global_step)
            rate = seen / max(time.perf_counter() - started, 1e-9)
            bar.update(step, loss=float(loss.detach()), rate=rate)
            if options.checkpoint_every and step % options.checkpoint_every == 0:
                save(epoch, step)
            if out_of_budget():
                break
        bar.close()
        finished_epoch = step >= epoch_steps
        if finished_epoch:
            scheduler.step()
        elapsed = time.perf_counter() - started
        if world > 1:  # the summary speaks for every rank
            names = sorted(sums)
            totals = torch.tensor([seen, skipped, *(sums[n] for n in names)], dtype=torch.float64)
            totals = totals.to(device)  # NCCL reduces CUDA tensors only
            dist.all_reduce(totals)
            totals = totals.cpu()
            seen, skipped = int(totals[0]), int(totals[1])
            sums = {n: float(v) for n, v in zip(names, totals[2:], strict=True)}
        summary = {
            "epoch": epoch + 1,
            "images": seen,
            "skipped_samples": skipped,
            "images_per_s": seen / max(elapsed, 1e-9),
            "lr": optimizer.param_groups[0]["lr"],
            **{name: total / max(seen, 1) for name, total in sums.items()},
        }
        save(epoch + 1 if finished_epoch else epoch, 0 if finished_epoch else step)
        if rank == 0:
            with open(run / "metrics.jsonl", "a") as f:
                f.write(json_text(summary) + "\n")
            if writer is not None:
                writer.add_scalar("train/images_per_s", summary["images_per_s"], global_step)
                writer.add_scalar("train/skipped_samples", skipped, global_step)
                writer.flush()
            log.info("epoch %d: %s", epoch + 1, summary)
            if skipped:
                log.warning("epoch %d skipped %d unreadable samples", epoch + 1, skipped)
        if not finished_epoch or out_of_budget():
            break
    if writer is not None:
        writer.close()
    return summary


def _set_epoch(dataset, epoch: int) -> None:
    if hasattr(dataset, "set_epoch"):
        dataset.set_epoch(epoch)


def _float(outputs):
    """Losses in fp32 whatever the autocast dtype of the forward pass."""
    return type(outputs)(
        *(type(x)(*(t.float() for t in x)) if isinstance(x, tuple) else x.float() for x in outputs)
    )
