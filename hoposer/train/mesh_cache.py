"""`--learn mesh --cache-draws N`: the held part of the network run once per augmented pass.

With `--learn mesh` everything upstream of the mesh regressor is held (eval mode, no
gradients), so what the regressor reads (the heatmaps, the hourglass features and the 2D joints)
is a function of the augmented image alone. `build` runs the held part over `N` augmented passes
of the data (pass `d` augmented as epoch `d` of an uncached run) and stores those inputs with the
labels of the mesh terms; epoch `e` then trains on pass `e mod N`. On 2 CPU cores a 0.9 M-parameter
regressor trains at about 890 images/s from the passes against 80 with the trunk run for every
image; building a pass costs about what one uncached epoch does. The price is augmentation: `N`
draws instead of one per epoch.

Each pass is a folder of `.npy` arrays (the large ones float16), written under a temporary name
and renamed when complete, so a killed build resumes at the first missing pass.
"""

from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path

import numpy as np
import torch

from hoposer.errors import HoposerError
from hoposer.model.network import HandObjectNet, RawOutputs, TrainingOutputs
from hoposer.progress import ProgressBar
from hoposer.train.data.dataset import collate

log = logging.getLogger(__name__)

#: Labels the mesh terms read (`hoposer.train.losses`), stored beside the regressor's inputs.
LABELS = ("theta", "beta", "joints_3d", "has_mano", "has_object")
#: The regressor's inputs, as the heatmap head gives them.
INPUTS = ("heatmaps", "hand_features", "joints_2d_predicted")
#: The loss terms that reach the mesh regressor; `--cache-draws` turns the others off (the parts
#: they train are held, and their outputs are not cached).
MESH_TERMS = ("vertices", "joints_3d", "pose", "shape")
#: A batch key that only cached batches have.
CACHED = "hand_features"


class MeshInputCache(torch.utils.data.Dataset):
    """The cached passes in `folder`; `set_epoch(e)` reads pass `e mod draws`."""

    def __init__(self, folder: Path, draws: int) -> None:
        self.folder, self.draws = Path(folder), draws
        self.pass_index = 0
        self._arrays: dict[int, dict[str, np.ndarray]] = {}
        sizes = {len(self._pass(d)["has_mano"]) for d in range(draws)}
        if len(sizes) != 1:
            raise HoposerError(
                f"the cached passes in {self.folder} hold different frame counts {sorted(sizes)}: "
                "delete the folder to rebuild it"
            )
        self.size = sizes.pop()

    def set_epoch(self, epoch: int) -> None:
        """Read the pass augmented as epoch `epoch mod draws`."""
        self.pass_index = epoch % self.draws

    def __len__(self) -> int:  # noqa: D105
        return self.size

    def __getitem__(self, index: int) -> dict[str, np.ndarray]:  # noqa: D105
        arrays = self._pass(self.pass_index)
        return {key: np.asarray(values[index], dtype=np.float32) for key, values in arrays.items()}

    def _pass(self, draw: int) -> dict[str, np.ndarray]:
        if draw not in self._arrays:  # memory-mapped on first use, in whichever process reads
            folder = pass_folder(self.folder, draw)
            self._arrays[draw] = {
                key: np.load(folder / f"{key}.npy", mmap_mode="r") for key in (*INPUTS, *LABELS)
            }
        return self._arrays[draw]


def pass_folder(folder: Path, draw: int) -> Path:
    """Where pass `draw` is stored once complete."""
    return Path(folder) / f"pass-{draw:03d}"


@torch.no_grad()
def build(
    model: HandObjectNet,
    dataset: torch.utils.data.Dataset,
    folder: Path,
    draws: int,
    batch_size: int,
    workers: int,
    device: torch.device,
    progress: bool = False,
) -> MeshInputCache:
    """Run `model`'s held part over `draws` augmented passes of `dataset` (those not yet stored).

    The model is used as `--learn mesh` leaves it: everything before the mesh regressor in eval
    mode, so its outputs do not depend on the batch.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    captured: list[tuple] = []
    hook = model.hand_decoder.heatmaps.register_forward_hook(
        lambda module, inputs, outputs: captured.append(outputs)
    )
    training = model.training
    model.eval()  # the regressor's BatchNorm statistics too: they are for training to move
    try:
        for draw in range(draws):
            if pass_folder(folder, draw).is_dir():
                continue
            log.info("caching the mesh regressor's inputs: pass %d of %d", draw + 1, draws)
            bar = ProgressBar(
                f"caching pass {draw + 1}/{draws}", len(dataset), "{rate:.0f} images/s", progress
            )
            _build_pass(model, dataset, folder, draw, batch_size, workers, device, captured, bar)
    finally:
        hook.remove()
        model.train(training)
    return MeshInputCache(folder, draws)


def _build_pass(model, dataset, folder, draw, batch_size, workers, device, captured, bar) -> None:
    if hasattr(dataset, "set_epoch"):
        dataset.set_epoch(draw)  # the augmentation of an uncached run's epoch `draw`
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=batch_size, num_workers=workers, collate_fn=collate, shuffle=False
    )
    chunks: dict[str, list[np.ndarray]] = {key: [] for key in (*INPUTS, *LABELS)}
    done, started = 0, time.perf_counter()
    for batch, unreadable in loader:
        done += len(batch.get("image", ())) + unreadable
        bar.update(done, rate=done / (time.perf_counter() - started))
        if not batch:
            continue
        captured.clear()
        model(
            batch["image"].to(device), batch["hand_box"].to(device), batch["object_box"].to(device)
        )
        heatmaps, joints, features = captured[-1]
        if isinstance(features, tuple):
            raise HoposerError(
                "--cache-draws caches a single hourglass stack's features; this network has "
                f"{model.config.hourglass_stacks}: train it without --cache-draws"
            )
        chunks["heatmaps"].append(heatmaps.half().cpu().numpy())
        chunks["hand_features"].append(features.half().cpu().numpy())
        chunks["joints_2d_predicted"].append(joints.float().cpu().numpy())
        for key in LABELS:
            chunks[key].append(batch[key].float().numpy())
    partial = folder / f".pass-{draw:03d}.partial"
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir()
    for key, parts in chunks.items():
        np.save(partial / f"{key}.npy", np.concatenate(parts))
    partial.rename(pass_folder(folder, draw))


def cached_outputs(model: HandObjectNet, batch: dict[str, torch.Tensor]) -> TrainingOutputs:
    """The training outputs of a cached batch: the mesh regressor run on its stored inputs.

    Only the mesh terms are computed on them (`MESH_TERMS`); the object's outputs are empty.
    """
    heatmaps, joints = batch["heatmaps"], batch["joints_2d_predicted"]
    mano = model.hand_decoder.regress(heatmaps, joints, batch["hand_features"])
    nothing = heatmaps.new_zeros(0)
    raw = RawOutputs(joints, mano.theta, mano.beta, nothing, nothing)
    return TrainingOutputs(raw, heatmaps, mano.rotations)
