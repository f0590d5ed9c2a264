"""Pseudo-labels (§5.1): constraint selection, sharded resumable generation, self-training."""

import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from skeletons import K_TEST, project, straight_hand

from hoposer.cli import main
from hoposer.geometry.consistency import spatial_statistics, temporal_statistics
from hoposer.model import get_config
from hoposer.train.pseudo.generate import STATISTICS
from hoposer.train.pseudo.report import label_errors, write_report
from hoposer.train.pseudo.select import PseudoLabels, load_shards, select
from hoposer.train.synth import SynthOptions, generate

SIZE = 96


def constructed_video(n: int = 20) -> tuple[PseudoLabels, dict[str, int]]:
    """A smooth sequence with one known violation of each constraint."""
    rng = np.random.default_rng(0)
    faults = {"iou": 3, "reprojection": 5, "bone_length": 7, "joint_angle": 9,
              "joint_motion": 12, "pose_change": 15, "shape": 18}  # fmt: skip
    rows = {k: [] for k in ("joints_2d", "joints_3d", "theta", "beta", "hand_box", "stats")}
    previous = None
    for t in range(n):
        joints = straight_hand() + np.array([0.001 * t, 0, 0])
        theta = np.full(48, 0.01 * t)
        beta = rng.normal(0, 0.02, 10)
        if t == faults["bone_length"]:
            joints[8] = joints[7] + (joints[8] - joints[7]) * 0.2
        if t == faults["joint_angle"]:  # bend the middle finger's tip backwards by 120°
            a = np.radians(120)
            R = np.array([[1, 0, 0], [0, np.cos(a), -np.sin(a)], [0, np.sin(a), np.cos(a)]])
            joints[12] = (joints[12] - joints[11]) @ R.T + joints[11]
        if t >= faults["joint_motion"]:
            joints[:, 0] += 0.1  # the hand jumps and stays: only frame 12 breaks smoothness
        if t == faults["pose_change"]:
            theta = theta + 0.3  # one frame only: 15 and 16 (on the way back) break smoothness
        if t == faults["shape"]:
            beta = beta + 1.5
        joints_2d = project(joints, K_TEST)
        if t == faults["reprojection"]:
            joints_2d = joints_2d[::-1].copy()
        box = np.r_[joints_2d.min(0), joints_2d.max(0)]
        if t == faults["iou"]:
            box = box + 80.0
        stats = spatial_statistics(joints - joints[0], joints_2d, joints - joints[0], box)
        if previous is not None:
            stats |= temporal_statistics(joints_2d, theta, *previous)
        previous = (joints_2d, theta)
        for key, value in (("joints_2d", joints_2d), ("joints_3d", joints - joints[0]),
                           ("theta", theta), ("beta", beta), ("hand_box", box)):  # fmt: skip
            rows[key].append(value)
        rows["stats"].append([stats.get(s, np.nan) for s in STATISTICS])
    stats = np.asarray(rows["stats"])
    labels = PseudoLabels(
        video=np.array(["v"] * n), image=np.array([f"f{t}" for t in range(n)]),
        hand_box=np.asarray(rows["hand_box"]), object_box=np.full((n, 4), np.nan),
        joints_2d=np.asarray(rows["joints_2d"]), joints_3d=np.asarray(rows["joints_3d"]),
        theta=np.asarray(rows["theta"]), beta=np.asarray(rows["beta"]),
        stats={name: stats[:, i] for i, name in enumerate(STATISTICS)},
    )  # fmt: skip
    return labels, faults


def test_each_constraint_rejects_exactly_its_frames():
    labels, faults = constructed_video()
    # The reversed-joints frame also moves the 2D joints wildly: frames 5 and 6 break
    # smoothness as well, as do 15 and 16 (θ jumps in and out).
    spatial = {faults[k] for k in ("iou", "reprojection", "bone_length", "joint_angle")}
    keep, funnel = select(labels, "no-temporal")
    assert set(np.flatnonzero(~keep)) == spatial
    keep, funnel = select(labels, "no-spatial")
    rejected = set(np.flatnonzero(~keep))
    assert {12, 15, 16, 18} <= rejected
    assert not rejected & {0, 1, 2, 4, 8, 10, 11, 13, 14, 17, 19}
    keep, funnel = select(labels, "all")
    assert set(np.flatnonzero(~keep)) == spatial | rejected
    assert funnel["frames"] == 20 and funnel["kept"] == int(keep.sum())
    # The scrambled frame's camera fit is degenerate, so it fails the IoU check too.
    assert funnel["after_spatial"] == 16 and funnel["passes_iou"] == 18
    assert funnel["passes_bone_length"] == funnel["passes_joint_angle"] == 19
    keep, _ = select(labels, "none")
    assert keep.all()


def test_label_errors_separate_articulation_global_rotation_and_2d():
    truth = np.stack([straight_hand(), straight_hand()])
    quarter_turn = np.array([[0.0, -1, 0], [1, 0, 0], [0, 0, 1]])
    wrist_relative = truth - truth[:, :1]
    joints_2d = np.stack([project(t, K_TEST) for t in truth])
    joints_2d[1] += [3.0, 4.0]  # 5 px off
    box = np.r_[joints_2d[0].min(0), joints_2d[0].max(0)]
    labels = PseudoLabels(
        video=np.array(["v", "v"]), image=np.array(["a", "b"]), hand_box=np.stack([box, box]),
        object_box=np.full((2, 4), np.nan), joints_2d=joints_2d,
        joints_3d=np.stack([wrist_relative[0], wrist_relative[1] @ quarter_turn.T]),
        theta=np.zeros((2, 48)), beta=np.zeros((2, 10)), stats={},
    )  # fmt: skip
    errors = label_errors(labels, truth, np.stack([K_TEST, K_TEST]))
    np.testing.assert_allclose(errors["pa_mpjpe_mm"], 0.0, atol=1e-4)  # same articulation
    turned = np.linalg.norm(wrist_relative[1] @ quarter_turn.T - wrist_relative[1], axis=1)
    np.testing.assert_allclose(errors["wrist_relative_mm"], [0.0, 1000 * turned.mean()])
    assert errors["wrist_relative_mm"][1] > 50
    np.testing.assert_allclose(errors["joints_2d"], [0.0, 5.0 / np.hypot(*(box[2:] - box[:2]))])


def test_pseudo_labelling_is_sharded_resumable_and_reported(clips, weights, tmp_path, monkeypatch):
    out = tmp_path / "pseudo"
    monkeypatch.chdir(clips.parent)  # the clips given by a relative path
    args = ["train", "pseudo", "--weights", str(weights), "--videos", clips.name, "--out",
            str(out), "--videos-per-shard", "1", "--device", "cpu"]  # fmt: skip
    assert main(args) == 0
    shards = sorted(out.glob("shard-*.npz"))
    assert len(shards) == 3  # 12 frames in clips of 4
    # Training and the report read the frames from wherever they run: the labels name them by
    # absolute path, and the report rebuilt from elsewhere still finds their ground truth.
    monkeypatch.chdir(tmp_path)
    labels = load_shards([out])
    assert len(labels) == 12 and labels.joints_3d.shape == (12, 21, 3)
    assert all(Path(ref).is_absolute() and Path(ref).is_file() for ref in labels.image)
    assert np.isnan(labels.stats["joint_motion"][0]) and np.isfinite(labels.stats["iou"]).all()
    report = write_report(out)
    assert report == json.loads((out / "report.json").read_text())
    assert report["funnel"]["none"]["kept"] == 12
    # Synthetic clips carry ground truth, so the report says how accurate each variant's labels
    # are (a random network: far off, but measured on every frame).
    for name, parts in report["accuracy"].items():
        assert parts["kept"]["frames"] + parts["rejected"]["frames"] == 12
        assert parts["kept"]["frames"] == report["funnel"][name]["kept"]
    assert report["accuracy"]["none"]["kept"]["pa_mpjpe_mm"] > 1.0
    assert (out / "examples.png").stat().st_size > 1000 and (out / "histograms.png").is_file()
    # A killed run: one shard missing, a temporary file left behind. The rerun makes only it.
    stamps = {p.name: p.stat().st_mtime_ns for p in shards}
    shards[1].unlink()
    (out / f".{shards[1].name}.xyz.tmp").write_bytes(b"partial")
    monkeypatch.chdir(clips.parent)
    assert main(args) == 0
    assert shards[1].is_file()
    assert np.array_equal(load_shards([out]).image, labels.image)
    for p in (shards[0], shards[2]):
        assert p.stat().st_mtime_ns == stamps[p.name]


def test_self_training_mixes_pseudo_labels_without_object_loss(clips, weights, tmp_path):
    from hoposer.train.pseudo.dataset import PseudoLabelDataset

    out = tmp_path / "pseudo"
    assert main(["train", "pseudo", "--weights", str(weights), "--videos", str(clips), "--out",
                 str(out), "--device", "cpu", "--no-tta"]) == 0  # fmt: skip
    dataset = PseudoLabelDataset([out], SIZE, 16, filters="none")
    sample = dataset[3]
    assert sample["has_object"] == 0 and sample["has_mano"] == 1
    assert sample["image"].shape == (3, SIZE, SIZE)
    labelled = tmp_path / "labelled"
    generate(SynthOptions(out=str(labelled), frames=4, seed=0, size=SIZE, workers=1))
    config = tmp_path / "config.json"
    config.write_text(
        dataclasses.replace(get_config("lite"), input_size=SIZE, roi_size=16).to_json()
    )
    run = tmp_path / "run"
    args = ["train", "fit", "--data", str(labelled), "--out", str(run), "--config", str(config),
            "--epochs", "1", "--batch-size", "4", "--workers", "0", "--hand-model", "standin",
            "--device", "cpu", "--pseudo", str(out), "--pseudo-filters", "none",
            "--pseudo-ratio", "1.0"]  # fmt: skip
    assert main(args) == 0
    summary = json.loads((run / "metrics.jsonl").read_text().splitlines()[-1])
    assert summary["images"] == 8  # 4 labelled + 4 pseudo-labelled
    # Four pseudo-labelled samples per labelled one ask for 16 of the 12 kept: used once each
    # unless --pseudo-repeat makes up the ratio.
    args[args.index("--pseudo-ratio") + 1] = "4"
    for repeat, images in (([], 4 + 12), (["--pseudo-repeat"], 4 + 16)):
        shutil.rmtree(run)
        assert main([*args, *repeat]) == 0
        summary = json.loads((run / "metrics.jsonl").read_text().splitlines()[-1])
        assert summary["images"] == images


def test_a_repeated_pseudo_label_is_augmented_anew(clips, weights, tmp_path):
    from hoposer.train.data.dataset import Augmentation
    from hoposer.train.pseudo.dataset import PseudoLabelDataset

    out = tmp_path / "pseudo"
    assert main(["train", "pseudo", "--weights", str(weights), "--videos", str(clips), "--out",
                 str(out), "--device", "cpu", "--no-tta"]) == 0  # fmt: skip
    plain = PseudoLabelDataset([out], SIZE, 16, Augmentation(), filters="none")
    longer = PseudoLabelDataset([out], SIZE, 16, Augmentation(), filters="none")
    frames = len(plain)
    longer.repeat_to(2 * frames + 1)
    assert len(longer) == 2 * frames + 1
    first, again = longer[3], longer[3 + frames]
    assert int(first["index"]) == int(again["index"]) == 3  # the same frame ...
    assert not np.array_equal(first["image"], again["image"])  # ... drawn anew
    assert np.array_equal(first["image"], plain[3]["image"])  # the first draw is the plain one
    with pytest.raises(IndexError):
        longer[2 * frames + 1]


def test_unannotated_bmp_frames_and_a_video_are_detected_labelled_and_read_back(weights, tmp_path):
    """Without annotations every frame source `hoposer video` plays is labelled: here a folder
    of .bmp frames (once silently empty for `train pseudo`) and an .mp4, each read in one pass."""
    import cv2

    from hoposer.frames.sources import read_frames
    from hoposer.stream.example import render_example

    images, _ = render_example(frames=8)
    root = tmp_path / "videos"
    (root / "take1").mkdir(parents=True)
    for i, image in enumerate(images[:4]):
        assert cv2.imwrite(str(root / "take1" / f"{i:04d}.bmp"), image)
    writer = cv2.VideoWriter(str(root / "take2.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), 30.0,
                             (images[0].shape[1], images[0].shape[0]))  # fmt: skip
    for image in images[4:]:
        writer.write(image)
    writer.release()
    out = tmp_path / "pseudo"
    assert main(["train", "pseudo", "--weights", str(weights), "--videos", str(root), "--out",
                 str(out), "--device", "cpu", "--no-tta"]) == 0  # fmt: skip
    labels = load_shards([out])
    refs = labels.image.tolist()
    assert sorted(set(labels.video.tolist())) == ["take1", "take2"]
    assert [r for r in refs if r.endswith(".bmp")] == [
        str(root / "take1" / f"{i:04d}.bmp") for i in range(4)
    ]  # MediaPipe finds the rendered hand in every frame
    bmps = list(read_frames(r for r in refs if r.endswith(".bmp")))
    assert all(np.array_equal(a, b) for a, b in zip(bmps, images[:4], strict=True))
    in_video = [r for r in refs if ".mp4#" in r]
    assert len(in_video) >= 2 and set(in_video) <= {f"{root / 'take2.mp4'}#{i}" for i in range(4)}
    capture = cv2.VideoCapture(str(root / "take2.mp4"))
    decoded = [capture.read()[1] for _ in range(4)]
    capture.release()
    for ref, image in zip(in_video, read_frames(in_video), strict=True):
        assert np.array_equal(image, decoded[int(ref.rpartition("#")[2])])
    assert (out / "examples.png").stat().st_size > 1000


def test_unknown_filters_and_missing_shards_are_clear_errors(tmp_path, capsys):
    labelled = tmp_path / "l"
    generate(SynthOptions(out=str(labelled), frames=2, seed=0, size=SIZE, workers=1))
    code = main(["train", "fit", "--data", str(labelled), "--out", str(tmp_path / "r"),
                 "--pseudo", str(tmp_path), "--device", "cpu", "--workers", "0"])  # fmt: skip
    assert code == 2 and "no pseudo-label shards" in capsys.readouterr().err
