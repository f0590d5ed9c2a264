"""Synthetic data → dataset → losses → fit (with resume) → eval, on a tiny set."""

import dataclasses
import json
import multiprocessing
import struct

import numpy as np
import pytest
import torch

from hoposer.cli import main
from hoposer.geometry.camera import project
from hoposer.geometry.control_points import canonical_pose
from hoposer.io import loads_strict
from hoposer.model import get_config
from hoposer.train.data.dataset import Augmentation, HandObjectDataset, collate
from hoposer.train.data.ho3d import read_label, to_ho3d_meta
from hoposer.train.fit import FitOptions, fit
from hoposer.train.synth import SynthOptions, generate
from hoposer.train.tensorboard import crc32c

SIZE = 96  # small images keep the suite fast; the lite net takes any multiple of 32


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth")
    generate(
        SynthOptions(out=str(root), frames=12, seed=0, size=SIZE, sequence_length=6, workers=1)
    )
    generate(SynthOptions(out=str(root), frames=4, seed=1, size=SIZE, split="evaluation",
                          workers=1))  # fmt: skip
    return root


def test_synthetic_data_is_deterministic_and_in_ho3d_layout(data, tmp_path):
    ids = (data / "train.txt").read_text().split()
    assert len(ids) == 12 and (data / "evaluation.txt").is_file()
    again = tmp_path / "again"
    generate(SynthOptions(out=str(again), frames=12, seed=0, size=SIZE, sequence_length=6,
                          workers=1))  # fmt: skip
    sequence, frame = ids[3].split("/")
    a = read_label(data, "train", sequence, frame)
    b = read_label(again, "train", sequence, frame)
    np.testing.assert_array_equal(a.joints, b.joints)
    assert a.image_path.read_bytes() == b.image_path.read_bytes()


def test_meta_round_trip_through_ho3d_conventions(data, tmp_path):
    sequence, frame = (data / "train.txt").read_text().split()[0].split("/")
    label = read_label(data, "train", sequence, frame)
    meta = to_ho3d_meta(label, object_spec=label.object_name)
    # HO-3D stores OpenGL coordinates: the hand is in front of the camera at negative z.
    assert meta["handJoints3D"][:, 2].max() < 0
    import pickle

    folder = tmp_path / "train" / sequence / "meta"
    folder.mkdir(parents=True)
    (folder / f"{frame}.pkl").write_bytes(pickle.dumps(meta))
    back = read_label(tmp_path, "train", sequence, frame)
    np.testing.assert_allclose(back.joints, label.joints, atol=1e-12)
    np.testing.assert_allclose(back.theta, label.theta, atol=1e-12)
    np.testing.assert_allclose(back.object_R, label.object_R, atol=1e-12)


def test_augmented_samples_keep_2d_and_3d_labels_consistent(data):
    dataset = HandObjectDataset(data, input_size=SIZE, grid_size=16, augmentation=Augmentation())
    for epoch in range(2):
        dataset.set_epoch(epoch)
        sample = dataset[5]
        K = sample["camera_matrix"].astype(np.float64)
        joints = sample["joints_3d"] + sample["wrist"]
        box = sample["hand_box"]
        pixels = sample["joints_2d"] * (box[2:] - box[:2]) + box[:2]
        np.testing.assert_allclose(project(joints, K), pixels, atol=1e-2)
        label = dataset.label(5)
        model = dataset.objects.get(label.object_name)
        R, t = canonical_pose(sample["object_R"], sample["object_t"], label.object_symmetry,
                              model.centre, model.extent)  # fmt: skip
        points = project(model.control_points @ R.T + t, K)
        obox = sample["object_box"]
        np.testing.assert_allclose(
            sample["object_points_2d"] * (obox[2:] - obox[:2]) + obox[:2], points, atol=1e-2
        )
    # Same (seed, epoch, index) → same sample; another epoch → another draw.
    dataset.set_epoch(0)
    first = dataset[5]["image"]
    assert np.array_equal(first, dataset[5]["image"])
    dataset.set_epoch(1)
    assert not np.array_equal(first, dataset[5]["image"])


def test_corrupt_files_are_skipped_and_counted(data, tmp_path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(data, copy)
    sequence, frame = (copy / "train.txt").read_text().split()[2].split("/")
    (copy / "train" / sequence / "rgb" / f"{frame}.jpg").write_bytes(b"garbage")
    dataset = HandObjectDataset(copy, input_size=SIZE, grid_size=16)
    batch, skipped = collate([dataset[i] for i in range(4)])
    assert skipped == 1 and len(batch["image"]) == 3


def test_the_object_loss_is_masked_on_samples_without_object_labels(data):
    from hoposer.model import build_model
    from hoposer.model.hand import StandInHand
    from hoposer.train.losses import LOSS_PRESETS, hand_object_loss

    dataset = HandObjectDataset(data, input_size=SIZE, grid_size=16)
    batch, _ = collate([dataset[i] for i in range(2)])
    model = build_model(_small_lite())
    outputs = model(batch["image"], batch["hand_box"], batch["object_box"], True)
    batch["has_object"] = torch.zeros(2)
    _, terms = hand_object_loss(outputs, batch, StandInHand(), LOSS_PRESETS["official"])
    assert terms["object_points"] == 0 and terms["object_confidence"] == 0
    assert terms["joints_3d"] > 0


def _options(data, out, **extra):
    settings = {"epochs": 2, **extra}
    return FitOptions(
        data=str(data), out=str(out), config=str(_tiny_config(out)), batch_size=4,
        workers=0, hand_model="standin", checkpoint_every=1, device="cpu", **settings,
    )  # fmt: skip


def _small_lite(**changes):
    """The lite preset at this suite's image size."""
    return dataclasses.replace(get_config("lite"), input_size=SIZE, roi_size=16, **changes)


def _tiny_config(folder):
    folder.mkdir(parents=True, exist_ok=True)
    path = folder.parent / f"{folder.name}-config.json"
    path.write_text(_small_lite().to_json())
    return path


def _train(options):
    fit(options, progress=False)


def test_training_resumes_exactly_after_a_kill(data, tmp_path):
    import os
    import signal
    import time

    reference = fit(_options(data, tmp_path / "straight", epochs=3), progress=False)
    killed = tmp_path / "killed"
    context = multiprocessing.get_context("spawn")
    child = context.Process(target=_train, args=(_options(data, killed, epochs=3),))
    child.start()
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and child.is_alive():
        try:
            if torch.load(killed / "state.pt", weights_only=True)["global_step"] >= 4:
                break
        except (FileNotFoundError, RuntimeError, EOFError):
            pass
        time.sleep(0.05)
    os.kill(child.pid, signal.SIGKILL)  # no clean-up: as a crash or a pulled plug
    child.join()
    state = torch.load(killed / "state.pt", weights_only=True)
    assert 4 <= state["global_step"] < 9, "killed too late to test a resume"
    resumed = fit(_options(data, killed, epochs=3), resume=True, progress=False)
    assert resumed["epoch"] == reference["epoch"] == 3
    from hoposer.model.checkpoint import load_checkpoint

    a = load_checkpoint(tmp_path / "straight" / "model.safetensors").state_dict()
    b = load_checkpoint(killed / "model.safetensors").state_dict()
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=1e-4, atol=1e-5)
    lines = (tmp_path / "straight" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == [1, 2, 3]


def test_eval_writes_metrics_and_a_codalab_submission(data, tmp_path):
    run = tmp_path / "run"
    fit(_options(data, run, max_steps=1), progress=False)
    out = tmp_path / "eval"
    args = ["train", "eval", "--weights", str(run / "model.safetensors"), "--data", str(data),
            "--out", str(out), "--workers", "0", "--device", "cpu"]  # fmt: skip
    assert main(args) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["frames"] == 4
    assert {"joint_pa_error_mm", "mesh_pa_error_mm", "f5", "f15"} <= set(metrics["hand"])
    assert metrics["hand"]["mean_pose_pa_error_mm"] > 0  # 4 frames, 4 different grips
    assert np.isfinite(metrics["hand"]["joint_pa_vs_mean_pose"])
    assert "add_0.1d" in metrics["object"]["average"]
    submission = json.loads((out / "pred.json").read_text())
    assert len(submission) == 4 and np.asarray(submission[0][0]).shape == (21, 3)
    assert (out / "pred.zip").is_file() and (out / "pck.png").stat().st_size > 1000

    # One hand is its own mean articulation: no baseline, so the ratio is null, not a division.
    one = tmp_path / "one"
    assert main([*args[:-6], "--out", str(one), "--max-samples", "1", *args[-4:]]) == 0
    hand = loads_strict((one / "metrics.json").read_text())["hand"]
    assert hand["mean_pose_pa_error_mm"] < 1e-3 and hand["joint_pa_vs_mean_pose"] is None


def test_a_second_fit_into_the_same_folder_needs_resume(data, tmp_path):
    run = tmp_path / "run"
    fit(_options(data, run, max_steps=1), progress=False)
    from hoposer.errors import HoposerError

    with pytest.raises(HoposerError, match="--resume"):
        fit(_options(data, run, max_steps=1), progress=False)


def test_resuming_a_run_that_took_its_max_steps_trains_no_further(data, tmp_path):
    run = tmp_path / "run"
    fit(_options(data, run, max_steps=2), progress=False)
    before = (run / "model.safetensors").read_bytes()
    fit(_options(data, run, max_steps=2), resume=True, progress=False)
    assert torch.load(run / "state.pt", weights_only=True)["global_step"] == 2
    assert (run / "model.safetensors").read_bytes() == before


def test_max_minutes_stops_after_the_step_that_spent_them_and_the_run_resumes(data, tmp_path):
    run = tmp_path / "run"
    summary = fit(_options(data, run, max_minutes=1e-9), progress=False)
    assert summary["images"] == 4 and torch.load(run / "state.pt")["global_step"] == 1
    resumed = fit(_options(data, run), resume=True, progress=False)
    assert resumed["epoch"] == 2 and torch.load(run / "state.pt")["global_step"] == 6
    lines = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [(m["epoch"], m["images"]) for m in lines] == [(1, 4), (1, 8), (2, 12)]


def _start_checkpoint(tmp_path, **changes):
    """A freshly initialised small lite network saved as a checkpoint to start runs from."""
    from hoposer.model.checkpoint import save_checkpoint
    from hoposer.model.network import HandObjectNet

    torch.manual_seed(0)
    return save_checkpoint(HandObjectNet(_small_lite(**changes)), tmp_path / "start.safetensors",
                           metadata={"hand_model": "standin"})  # fmt: skip


def test_an_object_trunk_added_to_a_checkpoint_learns_while_the_hand_stays_as_it_was(
    data, tmp_path
):
    from hoposer.model.backbone import build_backbone, load_pretrained
    from hoposer.model.checkpoint import load_checkpoint

    start = _start_checkpoint(tmp_path, object_trunk=False)
    run = tmp_path / "run"
    grow = {"init_weights": str(start), "add_object_trunk": True, "learn": "object", "lr": 1e-3}
    fit(_options(data, run, max_steps=1, **grow), progress=False)
    fit(_options(data, run, max_steps=3, **grow), resume=True, progress=False)  # held on resume
    assert torch.load(run / "state.pt", weights_only=True)["global_step"] == 3

    before = load_checkpoint(start).state_dict()
    trained = load_checkpoint(run / "model.safetensors")
    after = trained.state_dict()
    assert trained.config.object_trunk and not load_checkpoint(start).config.object_trunk
    object_branch = ("object_backbone.", "object_context.", "object_decoder.")
    hand = [name for name in after if not name.startswith(object_branch)]
    added = {name for name in after if name.startswith("object_backbone.")}
    assert hand and set(after) - set(before) == added
    for name in hand:  # weights and BatchNorm statistics alike
        assert torch.equal(before[name], after[name]), name
    assert any(not torch.equal(before[name], after[name]) for name in before
               if name.startswith(object_branch[1:]))  # fmt: skip
    imagenet = build_backbone(trained.config)
    assert load_pretrained(imagenet, "auto")
    frozen = [name for name in imagenet.state_dict() if name.startswith("stem.")]
    assert frozen
    for name in frozen:  # frozen stages keep the ImageNet start the trunk was given
        torch.testing.assert_close(after[f"object_backbone.{name}"], imagenet.state_dict()[name])


def test_learning_the_mesh_alone_keeps_the_2d_joints_and_the_object(data, tmp_path):
    from hoposer.model.checkpoint import load_checkpoint

    start = _start_checkpoint(tmp_path)
    run = tmp_path / "run"
    mesh = {"init_weights": str(start), "learn": "mesh", "lr": 1e-3}
    fit(_options(data, run, max_steps=1, **mesh), progress=False)
    fit(_options(data, run, max_steps=3, **mesh), resume=True, progress=False)  # held on resume

    before = load_checkpoint(start).state_dict()
    after = load_checkpoint(run / "model.safetensors").state_dict()
    regressor = ("hand_decoder.encoder.", "hand_decoder.mano.")
    held = [name for name in after if not name.startswith(regressor)]
    assert set(after) == set(before) and len(held) < len(after)
    for name in held:  # trunks, heatmaps and object alike, BatchNorm statistics too
        assert torch.equal(before[name], after[name]), name
    for prefix in regressor:
        assert any(not torch.equal(before[name], after[name]) for name in after
                   if name.startswith(prefix)), prefix  # fmt: skip


def test_a_mesh_regressor_of_another_shape_starts_fresh_and_the_rest_is_kept(data, tmp_path):
    from hoposer.errors import HoposerError
    from hoposer.model.checkpoint import load_checkpoint

    start = _start_checkpoint(tmp_path)
    run = tmp_path / "run"
    shape = ("encoder_channels=48", "mano_hidden=64,32", "mano_joint_input=true")
    mesh = {"init_weights": str(start), "learn": "mesh", "mesh_regressor": shape}
    fit(_options(data, run, max_steps=1, **mesh), progress=False)
    fit(_options(data, run, max_steps=2, **mesh), resume=True, progress=False)

    before, after = load_checkpoint(start), load_checkpoint(run / "model.safetensors")
    assert after.config == before.config.with_mesh_regressor(shape)
    assert after.hand_decoder.mano.hidden[0].in_features == after.config.mano_input_size
    regressor = ("hand_decoder.encoder.", "hand_decoder.mano.")
    old, new = before.state_dict(), after.state_dict()
    held = [name for name in new if not name.startswith(regressor)]
    assert set(held) == {name for name in old if not name.startswith(regressor)}
    for name in held:
        assert torch.equal(old[name], new[name]), name
    with pytest.raises(HoposerError, match="--learn object would hold it untrained"):
        fit(_options(data, tmp_path / "o", **{**mesh, "learn": "object"}), progress=False)


def test_cached_mesh_inputs_train_as_the_uncached_run_does_and_resume(data, tmp_path):
    from hoposer.errors import HoposerError
    from hoposer.model.checkpoint import load_checkpoint

    # The terms that reach the regressor; the cached run turns the others off itself.
    mesh_terms_only = ("joints_2d=0", "heatmaps=0", "object_points=0", "object_confidence=0")
    start = _start_checkpoint(tmp_path)
    crawl = {"init_weights": str(start), "learn": "mesh", "lr": 1e-7, "epochs": 3}
    plain, cached = tmp_path / "plain", tmp_path / "cached"
    fit(_options(data, plain, loss_weight=mesh_terms_only, **crawl), progress=False)
    fit(_options(data, cached, cache_draws=3, **crawl), progress=False)
    passes = sorted(p.name for p in (cached / "mesh-inputs").iterdir())
    assert passes == ["pass-000", "pass-001", "pass-002"]

    # Pass d holds what the held part gives for the frames augmented as epoch d, in order. A pass
    # misaligned with its epoch, or a batch-dependent held part, would fail here.
    model = load_checkpoint(start).eval()
    frames = HandObjectDataset(str(data), "train", input_size=SIZE, grid_size=16,
                               augmentation=Augmentation(), seed=0)  # fmt: skip
    captured = []
    model.hand_decoder.heatmaps.register_forward_hook(lambda m, i, out: captured.append(out))
    for draw in range(3):
        frames.set_epoch(draw)
        batch, _ = collate([frames[i] for i in range(len(frames))])
        with torch.no_grad():
            model(batch["image"], batch["hand_box"], batch["object_box"])
        heatmaps, joints, features = captured[-1]
        folder = cached / "mesh-inputs" / passes[draw]
        keys = ("heatmaps", "hand_features", "joints_2d_predicted", "joints_3d")
        stored = {key: torch.from_numpy(np.load(folder / f"{key}.npy")) for key in keys}
        torch.testing.assert_close(stored["heatmaps"].float(), heatmaps, rtol=2e-3, atol=1e-4)
        torch.testing.assert_close(stored["hand_features"].float(), features, rtol=2e-3, atol=2e-3)
        torch.testing.assert_close(stored["joints_2d_predicted"], joints)
        assert torch.equal(stored["joints_3d"], batch["joints_3d"])

    # And training on them is training on those inputs: the losses of the uncached run, but for
    # the float16 storage (a tiny lr, as Adam would turn rounding into full-lr steps).
    def losses(run):
        return [json.loads(line)["loss"] for line in (run / "metrics.jsonl").read_text().split("\n")
                if line]  # fmt: skip

    assert losses(cached) == pytest.approx(losses(plain), rel=1e-2)

    # Stopped after a step and resumed: the stored passes are read again, not rebuilt, and the
    # run ends where the uninterrupted one did.
    mesh = {**crawl, "lr": 1e-3, "cache_draws": 2}
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    fit(_options(data, straight, **mesh), progress=False)
    fit(_options(data, resumed, max_steps=1, **mesh), progress=False)
    arrays = sorted((resumed / "mesh-inputs").glob("pass-*/*.npy"))
    stored = [path.stat().st_ino for path in arrays]
    fit(_options(data, resumed, **mesh), resume=True, progress=False)
    assert stored == [path.stat().st_ino for path in arrays]
    a = load_checkpoint(straight / "model.safetensors").state_dict()
    b = load_checkpoint(resumed / "model.safetensors").state_dict()
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=1e-4, atol=1e-5)
    before = load_checkpoint(start).state_dict()
    held = [
        name for name in a if not name.startswith(("hand_decoder.encoder.", "hand_decoder.mano."))
    ]
    assert all(torch.equal(before[name], a[name]) for name in held)

    with pytest.raises(HoposerError, match="--cache-draws stores .* it needs --learn mesh"):
        fit(_options(data, tmp_path / "all", cache_draws=2), progress=False)


def test_learning_one_part_alone_or_growing_a_trunk_needs_a_checkpoint(data, tmp_path):
    from hoposer.errors import HoposerError

    for part in ("object", "mesh"):
        with pytest.raises(HoposerError, match=f"--learn {part} keeps the rest of --init-weights"):
            fit(_options(data, tmp_path / part, learn=part), progress=False)
    with pytest.raises(HoposerError, match="--add-object-trunk grows the network"):
        fit(_options(data, tmp_path / "b", add_object_trunk=True), progress=False)
    with pytest.raises(HoposerError, match="--learn hand: choose all, object or mesh"):
        fit(_options(data, tmp_path / "c", learn="hand"), progress=False)


def test_hooks_run_around_every_step_and_epoch_in_order(data, tmp_path):
    from hoposer.train.fit import build_trainer
    from hoposer.train.loop import HookBase

    moments = ["before_train", "before_epoch", "before_step", "after_step", "after_epoch",
               "after_train"]  # fmt: skip
    recorder = HookBase()
    recorder.moments = []
    for moment in moments:
        setattr(recorder, moment, lambda moment=moment: recorder.moments.append(moment))
    trainer = build_trainer(_options(data, tmp_path / "run", epochs=2))
    trainer.register_hooks([recorder])
    summary = trainer.train()
    epoch = ["before_epoch", *["before_step", "after_step"] * 3, "after_epoch"]
    assert recorder.moments == ["before_train", *epoch, *epoch, "after_train"]
    assert trainer.rank == 0 and summary["epoch"] == 2 and trainer.global_step == 6
    assert not (tmp_path / "run" / "state.pt").exists()  # checkpoints are a hook of `fit`'s


def test_tensorboard_records_use_crc32c():
    assert crc32c(b"123456789") == 0xE3069283  # the standard check value
    assert struct.pack("<I", crc32c(b"")) == b"\x00\x00\x00\x00"
