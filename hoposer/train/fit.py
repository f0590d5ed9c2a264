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

`build_trainer` sets a run up (process group, run folder, model, optimizer, data);
`hoposer.train.loop.Trainer` takes the steps; the hooks of `hoposer.train.hooks` (progress,
checkpoints, metrics, the step and time budget) do the rest.
"""

import gc
import logging
import os
from collections.abc import Sequence
from dataclasses import asdict, replace
from pathlib import Path

import torch
import torch.distributed as dist

from hoposer.errors import HoposerError
from hoposer.io import json_text, write_text_atomic
from hoposer.model import ModelConfig, get_config
from hoposer.model.backbone import load_pretrained
from hoposer.model.checkpoint import load_checkpoint
from hoposer.model.hand import build_hand_model
from hoposer.model.network import LEARN, HandObjectNet
from hoposer.threads import configure_threads
from hoposer.train import mesh_cache
from hoposer.train.data.dataset import Augmentation, HandObjectDataset
from hoposer.train.hooks import Budget, Checkpointer, EpochProgress, MetricsWriter
from hoposer.train.loop import HookBase, Trainer
from hoposer.train.losses import TERMS, loss_weights
from hoposer.train.options import FitOptions

log = logging.getLogger(__name__)


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
        if options.pseudo_repeat and options.max_steps:
            # One epoch of --max-steps batches, each kept frame newly augmented whenever it comes
            # round, instead of hundreds of one-batch epochs when a short clip kept a few frames.
            pseudo.repeat_to(options.max_steps * options.batch_size)
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


def _check_start(options: FitOptions, resume: bool) -> None:
    if options.learn not in LEARN:
        choices = f"{', '.join(LEARN[:-1])} or {LEARN[-1]}"
        raise HoposerError(f"--learn {options.learn}: choose {choices}")
    if options.cache_draws and options.learn != "mesh":
        raise HoposerError(
            "--cache-draws stores what the mesh regressor reads while the rest is held: it needs "
            "--learn mesh"
        )
    if options.cache_draws < 0:
        raise HoposerError(f"--cache-draws {options.cache_draws}: give a count ≥ 1, or 0 for off")
    if options.mesh_regressor and options.learn == "object":
        raise HoposerError(
            "--mesh-regressor starts the mesh regressor fresh, and --learn object would hold it "
            "untrained: use --learn mesh or all"
        )
    if resume or options.init_weights:
        return
    if options.add_object_trunk:
        raise HoposerError(
            "--add-object-trunk grows the network of --init-weights: give one (a fresh run of "
            "--config lite has the trunk already)"
        )
    if options.learn != "all":
        raise HoposerError(
            f"--learn {options.learn} keeps the rest of --init-weights: give the checkpoint to "
            "start from"
        )


def _with_object_trunk(model: HandObjectNet, weights: str | None) -> HandObjectNet:
    """`model`'s network with its own object trunk, started from `weights`; other weights kept."""
    grown = HandObjectNet(replace(model.config, object_trunk=True))
    missing, unexpected = grown.load_state_dict(model.state_dict(), strict=False)
    assert not unexpected and all(key.startswith("object_backbone.") for key in missing)
    if load_pretrained(grown.object_backbone, weights):
        log.info("the new object trunk starts from ImageNet weights (%s)", weights)
    return grown


def _with_new_mesh_regressor(model: HandObjectNet, changes: Sequence[str]) -> HandObjectNet:
    """`model`'s network with a fresh mesh regressor shaped by `changes`; other weights kept."""
    grown = HandObjectNet(model.config.with_mesh_regressor(changes))
    regressor = ("hand_decoder.encoder.", "hand_decoder.mano.")
    kept = {key: v for key, v in model.state_dict().items() if not key.startswith(regressor)}
    missing, unexpected = grown.load_state_dict(kept, strict=False)
    assert not unexpected and all(key.startswith(regressor) for key in missing)
    return grown


def fit(options: FitOptions, resume: bool = False, progress: bool = True) -> dict:
    """Train; returns the last epoch's summary."""
    joins_process_group = not dist.is_initialized()
    try:
        return _train(options, resume, progress)
    finally:
        if joins_process_group and dist.is_initialized():
            # Leave the group while Python is whole: left to the interpreter's exit, gloo's
            # threads outlive it and a rank can abort ("terminate called without an active
            # exception") after training. The trainer and its hooks hold each other, and the
            # data-parallel wrapper in the trainer holds the group: collect them first.
            gc.collect()
            dist.destroy_process_group()


def _train(options: FitOptions, resume: bool, progress: bool) -> dict:
    trainer = build_trainer(options, resume, progress)
    run = Path(options.out)
    hooks: list[HookBase] = []
    if progress and trainer.rank == 0:
        hooks.append(EpochProgress())
    if trainer.rank == 0:
        hooks += [Checkpointer(run, options.checkpoint_every), MetricsWriter(run)]
    hooks.append(Budget(options.max_steps, options.max_minutes))
    trainer.register_hooks(hooks)
    return trainer.train()


def build_trainer(options: FitOptions, resume: bool = False, progress: bool = False) -> Trainer:
    """A trainer with everything a run needs on this rank, and no hooks yet.

    Joins the process group under `torchrun`, prepares the run folder (rank 0), builds the model
    (from `state.pt` when resuming, else from --init-weights or the config and its backbone
    weights), the optimizer and schedule, and the data set sharded for this rank.
    """
    _check_start(options, resume)
    rank, local_rank, world = _distributed()
    configure_threads(options.threads)
    device = resolve_device(options.device)
    if device.type == "cuda" and world > 1:
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    run = Path(options.out)
    state_path = run / "state.pt"
    if not resume and state_path.exists():  # every rank stops, not rank 0 alone
        raise HoposerError(
            f"{run} already holds a training run: pass --resume to continue it, or choose "
            "another --out"
        )
    if rank == 0:
        run.mkdir(parents=True, exist_ok=True)
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
        if options.add_object_trunk and not model.config.object_trunk:
            model = _with_object_trunk(model, options.backbone_weights)
        if options.mesh_regressor:
            model = _with_new_mesh_regressor(model, options.mesh_regressor)
    else:
        config = get_config(options.config).with_mesh_regressor(options.mesh_regressor)
        model = HandObjectNet(config)
        trunks = [model.backbone] + ([model.object_backbone] if model.object_backbone else [])
        if all([load_pretrained(trunk, options.backbone_weights) for trunk in trunks]):
            log.info("backbone starts from ImageNet weights (%s)", options.backbone_weights)
    model = model.to(device).train()
    model.hold(options.learn)
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    hand_model = build_hand_model(options.hand_model, options.mano_dir).to(device)
    optimizer = torch.optim.Adam(
        model.parameters(), lr=options.lr, weight_decay=options.weight_decay
    )
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, options.lr_step, options.lr_gamma)
    dataset = build_datasets(options, model.config)
    weights = loss_weights(options.loss, options.loss_weight)
    if options.cache_draws:
        if world > 1:
            raise HoposerError("--cache-draws trains in one process: run it without torchrun")
        dataset = mesh_cache.build(
            model, dataset, run / "mesh-inputs", options.cache_draws, options.batch_size,
            options.workers, device, progress,
        )  # fmt: skip
        weights = replace(weights, **{t: 0.0 for t in TERMS if t not in mesh_cache.MESH_TERMS})
    trainer = Trainer(
        model,
        hand_model,
        optimizer,
        scheduler,
        dataset,
        seed=options.seed,
        epochs=options.epochs,
        batch_size=options.batch_size,
        workers=options.workers,
        loss_weights=weights,
        amp=options.amp,
        device=device,
        rank=rank,
        world=world,
    )
    if state is not None:
        trainer.load_state_dict(state)
        log.info("resuming at epoch %d step %d", trainer.epoch, trainer.step)
    return trainer
