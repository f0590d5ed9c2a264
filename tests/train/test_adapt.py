"""`hoposer train adapt`: §5 on unlabelled clips, resumable to the same weights; eq. 8's mask."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from hoposer.cli import main
from hoposer.model.hand import StandInHand
from hoposer.model.network import RawOutputs, TrainingOutputs
from hoposer.train.losses import LOSS_PRESETS, hand_object_loss

SIZE = 96
REPO = Path(__file__).resolve().parents[2]
# A random network's pseudo-labels fail the paper's thresholds; loose ones let frames through
# so the whole loop runs (what is kept is then decided by smoothness and shape).
LOOSE = ["--min-iou", "0", "--max-reprojection", "100", "--max-flexion-deg", "180"]


def _args(clips, weights, out: Path) -> list[str]:
    return ["train", "adapt", str(clips), "--weights", str(weights), "--out", str(out),
            "--max-steps", "24", "--batch-size", "2", "--holdout", "0.34", "--device", "cpu",
            "--threads", "1", *LOOSE]  # fmt: skip


@pytest.mark.slow
def test_adapt_end_to_end_and_a_killed_run_resumes_to_the_same_weights(
    clips, weights, tmp_path, capsys
):
    whole = tmp_path / "whole" / "w2.safetensors"
    whole.parent.mkdir()
    assert main(_args(clips, weights, whole)) == 0
    work = whole.with_name("w2.adapt")
    report = json.loads((work / "report.json").read_text())
    funnel = report["funnel"]
    assert funnel["frames_seen"] == 12 and len(report["clips"]) == 3
    assert funnel["with_a_hand"] == 12  # every annotated frame has a hand box
    assert 0 < funnel["kept"] <= funnel["after_spatial"] <= funnel["training_candidates"]
    assert funnel["held_out"] + funnel["training_candidates"] == funnel["with_a_hand"]
    for side in ("before", "after"):
        assert report[side]["frames"] == funnel["held_out"]
        assert 0.0 <= report[side]["section5_pass_rate"] <= 1.0
    assert "§5 pass rate" in (work / "report.txt").read_text()
    trained = load_file(str(whole))
    start = load_file(str(weights))
    assert any(not torch.equal(trained[k], start[k]) for k in start)  # it did train
    # The few kept frames come round again and again in one epoch of --max-steps batches.
    (epoch,) = (work / "run" / "metrics.jsonl").read_text().splitlines()
    assert json.loads(epoch)["images"] == 24 * 2 > funnel["kept"]

    # Kill a run once it is checkpointed (every 20 steps), then rerun the same command.
    again = tmp_path / "again" / "w2.safetensors"
    again.parent.mkdir()
    env = os.environ | {"PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "hoposer.cli", *_args(clips, weights, again)]
    process = subprocess.Popen(
        command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    state = again.with_name("w2.adapt") / "run" / "state.pt"
    deadline = time.monotonic() + 300
    while not state.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    killed_mid_way = process.poll() is None and not again.exists()
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert killed_mid_way, "the run finished before it could be killed"
    assert main(_args(clips, weights, again)) == 0
    resumed = load_file(str(again))
    assert resumed.keys() == trained.keys()
    for key in trained:
        assert torch.equal(resumed[key], trained[key]), key
    assert json.loads((again.with_name("w2.adapt") / "report.json").read_text())["funnel"] == funnel

    # Other training settings retrain from the labels already made; other labelling ones refuse.
    labels = sorted((work / "labels").glob("*.npz"))
    stamps = [p.stat().st_mtime_ns for p in labels]
    # --epochs counts passes over the kept frames instead (within --max-steps).
    assert main([*_args(clips, weights, whole), "--epochs", "2"]) == 0
    epochs = (work / "run" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["images"] for line in epochs] == [funnel["kept"]] * 2
    args = [*_args(clips, weights, whole), "--max-steps", "1"]
    assert main(args) == 0
    assert [p.stat().st_mtime_ns for p in labels] == stamps
    one_step = load_file(str(whole))
    assert any(not torch.equal(one_step[k], trained[k]) for k in trained)
    assert json.loads((work / "run" / "metrics.jsonl").read_text().splitlines()[-1])["images"] == 2
    # Rerunning a finished run changes nothing (resumed, `fit` would take a step past the limit).
    assert main(args) == 0
    assert all(torch.equal(v, one_step[k]) for k, v in load_file(str(whole)).items())
    # The held-out fraction only splits the labels: a new split retrains from them.
    args[args.index("--holdout") + 1] = "0.5"
    assert main(args) == 0
    assert [p.stat().st_mtime_ns for p in labels] == stamps
    assert json.loads((work / "report.json").read_text())["funnel"]["held_out"] > funnel["held_out"]
    assert main([*args, "--fov", "50"]) == 2
    assert "labelling settings" in capsys.readouterr().err

    # Labels written by an older version of the labelling are made again, and training with them.
    with np.load(labels[0]) as data:
        old = {k: data[k] for k in data.files}
    np.savez(labels[0], **(old | {"version": np.int64(0)}))
    assert main(args) == 0
    assert int(np.load(labels[0])["version"]) > 0
    assert labels[1].stat().st_mtime_ns == stamps[1]  # the current one is reused


def test_bad_clips_and_weights_are_one_line_errors(clips, weights, tmp_path, capsys):
    out = str(tmp_path / "w2.safetensors")
    assert main(["train", "adapt", str(tmp_path / "nope.mp4"), "--weights", str(weights),
                 "--out", out]) == 2  # fmt: skip
    assert "does not exist" in capsys.readouterr().err
    text = tmp_path / "notes.txt"
    text.write_text("x")
    assert main(["train", "adapt", str(text), "--weights", str(weights), "--out", out]) == 2
    assert "neither a video" in capsys.readouterr().err
    assert main(["train", "adapt", str(clips), "--weights", str(tmp_path / "w.safetensors"),
                 "--out", out]) == 2  # fmt: skip
    assert "--weights" in capsys.readouterr().err
    assert main(["train", "adapt", str(clips), "--weights", str(weights), "--out",
                 str(tmp_path / "w2.pt")]) == 2  # fmt: skip
    assert ".safetensors" in capsys.readouterr().err
    for option, value in (("--batch-size", "0"), ("--lr", "-1"), ("--fov", "180")):
        assert main(["train", "adapt", str(clips), "--weights", str(weights), "--out", out,
                     option, value]) == 2  # fmt: skip
        assert option in capsys.readouterr().err
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"not a video")
    assert main(["train", "adapt", str(broken), "--weights", str(weights), "--out", out,
                 "--device", "cpu"]) == 2  # fmt: skip
    err = capsys.readouterr().err
    assert "no frame of it could be read" in err and len(err.strip().splitlines()) == 1


def test_the_mask_removes_object_terms_for_frames_without_a_reliable_object_label():
    """Eq. 8: a sample with has_object 0 adds nothing to, and gets no gradient from, L_object."""
    rng = np.random.default_rng(0)
    r = 4
    object_points = torch.tensor(rng.normal(0, 1, (2, r, r, 21, 2)), requires_grad=True)
    object_confidence = torch.tensor(rng.uniform(0, 1, (2, r, r, 21)), requires_grad=True)
    raw = RawOutputs(torch.tensor(rng.uniform(0.2, 0.8, (2, 21, 2))),
                     torch.zeros(2, 48, dtype=torch.float64),
                     torch.zeros(2, 10, dtype=torch.float64), object_points,
                     object_confidence)  # fmt: skip
    outputs = TrainingOutputs(raw, torch.full((2, 21, r, r), 1.0 / r**2, dtype=torch.float64),
                              torch.eye(3, dtype=torch.float64).expand(2, 16, 3, 3))  # fmt: skip
    batch = {
        "joints_2d": torch.tensor(rng.uniform(0.2, 0.8, (2, 21, 2))),
        "theta": torch.zeros(2, 48, dtype=torch.float64),
        "beta": torch.zeros(2, 10, dtype=torch.float64),
        "joints_3d": torch.zeros(2, 21, 3, dtype=torch.float64),
        "has_mano": torch.ones(2),
        "has_object": torch.tensor([1.0, 0.0]),  # sample 1: a pseudo-label (no object label)
        "object_mask": torch.ones(2, r, r),
        "object_points_2d": torch.tensor(rng.normal(0, 1, (2, 21, 2))),
    }
    hand = StandInHand()
    weights = LOSS_PRESETS["official"]
    _, terms = hand_object_loss(outputs, batch, hand, weights)
    total, _ = hand_object_loss(outputs, batch, hand, weights)
    total.backward()
    assert terms["object_points"] > 0 and terms["object_confidence"] > 0
    assert object_points.grad[1].abs().max() == 0 and object_confidence.grad[1].abs().max() == 0
    assert object_points.grad[0].abs().max() > 0
    # Sample 1's object outputs do not enter the object terms at all.
    with torch.no_grad():
        object_points[1] += 100.0
    _, moved = hand_object_loss(outputs, batch, hand, weights)
    assert moved["object_points"] == pytest.approx(terms["object_points"])
    # With no reliable object label in the batch, the object terms vanish; the hand's remain.
    _, none = hand_object_loss(outputs, batch | {"has_object": torch.zeros(2)}, hand, weights)
    assert none["object_points"] == 0 and none["object_confidence"] == 0 and none["joints_2d"] > 0


def test_the_automatic_stride_samples_about_five_frames_a_second(tmp_path, monkeypatch):
    from hoposer.train.adapt import find_clips

    video = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 30.0, (32, 32))
    for i in range(4):
        writer.write(np.full((32, 32, 3), 40 * i, np.uint8))
    writer.release()
    folder = tmp_path / "frames"
    folder.mkdir()
    cv2.imwrite(str(folder / "000.jpg"), np.zeros((8, 8, 3), np.uint8))
    monkeypatch.chdir(tmp_path)
    from_video, from_folder = find_clips(["clip.avi", "frames"])
    # Named absolutely, so that a resumed run or training from elsewhere still finds the frames.
    assert from_video.source == str(video) and from_folder.source == str(folder)
    assert from_video.sampling_stride(0) == 6 and from_video.sampling_stride(2) == 2
    assert from_folder.sampling_stride(0) == 1
    assert [index for index, *_ in from_video.frames()] == [0, 1, 2, 3]


@pytest.mark.slow
def test_labels_of_a_real_clip_are_fits_to_mediapipe_closer_than_the_network_alone(tmp_path):
    """On the example clip the pseudo-label is the refined fit, not the network's raw hand."""
    from hoposer.train.adapt import _COUNTS, AdaptOptions, _Labeller, find_clips

    weights = str(REPO / "hoposer" / "weights" / "lite-synthetic.safetensors")
    (clip,) = find_clips([str(REPO / "examples" / "hand_box.mp4")])
    options = AdaptOptions(clips=(clip.source,), weights=weights, out="unused.safetensors",
                           tta=False, stride=10)  # fmt: skip
    labeller = _Labeller(weights, options, torch.device("cpu"))
    labels = labeller.label_clip(clip, tmp_path / "frames")
    counts = dict(zip(_COUNTS, labels["counts"].tolist(), strict=True))
    assert counts["frames_seen"] == 9 and counts["refine_failed"] == 0
    found = np.isfinite(labels["landmarks"]).all(axis=(1, 2))
    assert found.sum() >= 6  # MediaPipe sees the hand in most frames

    def error(joints, landmarks):
        diagonal = np.linalg.norm(landmarks.max(axis=0) - landmarks.min(axis=0))
        return np.linalg.norm(joints - landmarks, axis=1).mean() / diagonal

    fitted, network = [], []
    for i in np.flatnonzero(found):
        rgb = cv2.cvtColor(cv2.imread(str(labels["image"][i])), cv2.COLOR_BGR2RGB)
        box = labels["object_box"][i]
        alone = labeller.single.predict(rgb, labels["hand_box"][i], box)["joints_2d"]
        fitted.append(error(labels["joints_2d"][i], labels["landmarks"][i]))
        network.append(error(alone, labels["landmarks"][i]))
    assert np.median(fitted) < 0.5 * np.median(network)
    # Consecutive sampled frames carry §5.1.2's smoothness statistics, the first frame none.
    stats = labels["stats"]
    assert np.isnan(stats[0, 4:]).all() and np.isfinite(stats[1:, 4:][found[1:]]).any()
