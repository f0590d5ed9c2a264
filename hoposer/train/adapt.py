"""`hoposer train adapt`: the paper's §5 loop on a user's own unlabelled clips.

1. **Label** every `stride`-th frame of each clip (a video file, a folder of frames, or a folder
   with Something-Else box annotations, e.g. `hoposer train synth --videos`): MediaPipe Hands
   (full landmark model, tracking mode) finds the hand unless a box is given; the network
   predicts it under §5.1's 8 test-time augmentations (`TTAPredictor`); the TTA-aggregated hand
   is then fitted to the 2D evidence (`refine_hand`: the network's 2D joints, MediaPipe's 21
   landmarks and its metric landmarks; each frame alone, without the stream's pull toward the
   previous frame's fit), and that fit is the pseudo-label. The §5.1 statistics are
   computed on it: the spatial ones against the main 2D evidence (MediaPipe's landmarks when it
   found the hand, else the network's TTA 2D joints; against the fit's own projection the
   re-projection check would be vacuous), the temporal ones against the previous sampled frame of
   the same clip. A left hand (MediaPipe's handedness) is labelled, trained and measured in the
   mirror image of its frame (saved as JPEG), where it is a right hand, as the stream does.
2. **Split**: the last `holdout` fraction of each clip's sampled frames is held out; the rest
   goes into one pseudo-label shard in `hoposer train pseudo`'s format, where `select` keeps the
   frames passing every §5.1 constraint (spatial, smoothness, shape).
3. **Fine-tune** from the given weights with `hoposer train fit`'s loop (`--pseudo`, filters
   `all`) for `max_steps` steps at a constant lr, cycling the kept frames as often as needed,
   optionally mixed with labelled data (`--data`); pseudo-labelled samples carry no object
   label, so eq. 8's mask B removes the object terms for them.
4. **Measure** the held-out frames before and after with the network alone (one forward, no
   refinement): the §5 pass rate (spatial + smoothness, i.e. what the stream's stabilizer checks)
   and the 2D agreement with MediaPipe's landmarks (mean joint distance over the landmarks' box
   diagonal); write the adapted weights atomically and `report.json` + `report.txt`.

Everything lives in a work folder (default: next to `--out`, `<out stem>.adapt/`): one labelled
file per clip, the shard, the training run and the measures. Each is written atomically and
reused when present, so a rerun continues where a killed one stopped; labelling (float64 fit,
one thread) and training (`fit`'s seeded order and augmentation, `state.pt`) are deterministic,
so the resumed result equals an uninterrupted one.
"""

import json
import logging
import math
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import cv2
import numpy as np
import torch

from hoposer.errors import HoposerError
from hoposer.frames.sources import (
    IMAGE_SUFFIXES,
    VIDEO_SUFFIXES,
    image_files,
    open_source,
    read_frames,
    read_image,
)
from hoposer.geometry.boxes import box_iou
from hoposer.geometry.camera import project
from hoposer.geometry.consistency import (
    Thresholds,
    failed_constraints,
    spatial_statistics,
    temporal_statistics,
)
from hoposer.io import atomic_path, json_text, write_text_atomic
from hoposer.train.options import AdaptOptions

log = logging.getLogger(__name__)

_LABEL_VERSION = 2  #: bump when a clip file's content changes meaning
#: Frames per second of video labelled by default. The network under 8× TTA costs about a second
#: a frame on two CPU cores, so a few minutes of footage label within half an hour; 0.2 s apart,
#: frames are still close enough for §5.1's smoothness checks (Something-Something v2, the
#: paper's video set, is 12 fps).
AUTO_RATE = 5.0


@dataclass(frozen=True)
class Clip:
    """One clip: a name and where its frames come from."""

    name: str
    source: str  #: video file or frame folder
    #: annotated frames (image path, hand box, object box or None) instead of a plain source
    annotated: tuple | None = None

    def sampling_stride(self, requested: int) -> int:
        """The stride: `requested` when ≥ 1, else 1 (frame folders) or `AUTO_RATE` per second."""
        if requested >= 1 or self.annotated is not None or Path(self.source).is_dir():
            return max(requested, 1)
        try:
            source = open_source(self.source)
        except HoposerError:
            return 1  # `frames` says what is wrong with the clip
        source.close()
        return max(1, round(source.fps / AUTO_RATE))

    def frames(self):
        """Yield (index, image ref, BGR image, hand box or None, object box or None).

        Raises:
            HoposerError: the clip's video or folder cannot be read.
        """
        if self.annotated is not None:
            images = read_frames(path for path, _, _ in self.annotated)
            for index, ((path, hand, obj), image) in enumerate(
                zip(self.annotated, images, strict=True)
            ):
                if image is not None:
                    yield index, path, image, hand, obj
            return
        try:
            source = open_source(self.source, skip_unreadable=True)
        except HoposerError as err:
            message = f"clip {self.source}: no frame of it could be read ({err})"
            raise HoposerError(message) from None
        folder = Path(self.source).is_dir()
        try:
            for frame in source:
                # a folder's frame trains from its file; a video's is saved as JPEG (no path)
                ref = source.ref(frame.index) if folder else None
                yield frame.index, ref, frame.image, None, None
        finally:
            source.close()


def find_clips(paths: tuple[str, ...] | list[str]) -> list[Clip]:
    """The clips named on the command line (files, frame folders, annotated folders).

    Raises:
        HoposerError: a path that is none of these.
    """
    from hoposer.train.pseudo.videos import read_annotated_videos

    clips: list[Clip] = []
    for raw in paths:
        # Absolute: the labels name their frames by it, and a resumed run or the training may
        # start from another directory.
        path = Path(raw).resolve()
        if path.is_file() and path.suffix.lower() in VIDEO_SUFFIXES:
            clips.append(Clip(path.stem, str(path)))
        elif path.is_dir() and (path / "annotations.json").is_file():
            for video in read_annotated_videos(path):
                frames = tuple((f.image, f.hand_box, f.object_box) for f in video.frames)
                clips.append(Clip(video.id, str(path), frames))
        elif path.is_dir() and image_files(path):
            clips.append(Clip(path.name, str(path)))
        elif path.exists():
            raise HoposerError(
                f"clip {path} is neither a video ({', '.join(VIDEO_SUFFIXES)}), a folder of "
                f"frames ({', '.join(IMAGE_SUFFIXES)}), nor a folder with annotations.json"
            )
        else:
            raise HoposerError(f"clip {path} does not exist")
    if not clips:
        raise HoposerError("no clips given: name video files or frame folders")
    return [replace(c, name=f"{i:03d}-{_safe(c.name)}") for i, c in enumerate(clips)]


def _safe(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name)[:60]


class _Labeller:
    """The network (TTA and single-view), the hand model, its kinematics and the detector."""

    def __init__(self, weights: str, options: AdaptOptions, device: torch.device) -> None:
        from hoposer.geometry.refine import Kinematics
        from hoposer.model.checkpoint import load_checkpoint, read_checkpoint_info
        from hoposer.model.hand import hand_model_for_weights
        from hoposer.train.pseudo.generate import TTA, TTAPredictor

        model = load_checkpoint(weights)
        trained_with = read_checkpoint_info(weights).metadata.get("hand_model")
        self.hand_model = hand_model_for_weights(trained_with, options.hand_model, options.mano_dir)
        self.tta = TTAPredictor(model, self.hand_model, device, TTA if options.tta else ((1, 0),))
        self.single = TTAPredictor(model, self.hand_model, device, ((1.0, 0.0),))
        self.kinematics = Kinematics.from_model(self.hand_model)
        self.options = options

    def label_clip(self, clip: Clip, frames_dir: Path) -> dict[str, np.ndarray]:
        """Pseudo-labels (refined TTA fits) and §5.1 statistics of a clip's sampled frames."""
        from hoposer.frames.detect import MediaPipeHandDetector, grasp_box
        from hoposer.geometry.camera import default_camera_matrix
        from hoposer.geometry.refine import Evidence, refine_hand
        from hoposer.train.pseudo.generate import STATISTICS

        counts = {"frames_seen": 0, "no_hand": 0, "left_hand": 0, "refine_failed": 0}
        rows: dict[str, list] = {k: [] for k in (
            "frame_index", "image", "hand_box", "object_box", "joints_2d", "joints_3d", "theta",
            "beta", "stats", "landmarks")}  # fmt: skip
        detector = MediaPipeHandDetector(video=True, model_complexity=1)
        stride = clip.sampling_stride(self.options.stride)
        previous = None  # (frame index, label, mirrored) of the last labelled frame
        try:
            for index, ref, bgr, hand_box, object_box in clip.frames():
                if index % stride:
                    continue
                counts["frames_seen"] += 1
                rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
                found = detector.detect(rgb)  # every sampled frame: tracking needs the sequence
                given = None if hand_box is None else np.asarray(hand_box, np.float64)
                if found is not None and given is not None and box_iou(found.box, given) < 0.3:
                    found = None  # MediaPipe's hand is not the annotated one
                if hand_box is None:
                    if found is None:
                        counts["no_hand"] += 1
                        previous = None  # a gap breaks the temporal chain
                        continue
                    hand_box, object_box = found.box, grasp_box(found.box, found.landmarks)
                landmarks = None if found is None else found.landmarks
                world = None if found is None else found.world_landmarks
                mirrored = found is not None and found.side == "left"
                if mirrored:  # as the stream does: a left hand is a right hand in the mirror
                    counts["left_hand"] += 1
                    bgr, hand_box, object_box, landmarks, world = _mirrored(
                        bgr, hand_box, object_box, landmarks, world
                    )
                if ref is None or mirrored:  # training reads the frame back from this JPEG
                    ref = str(frames_dir / f"{index:06d}{'-mirrored' if mirrored else ''}.jpg")
                    frames_dir.mkdir(parents=True, exist_ok=True)
                    with atomic_path(ref) as tmp:
                        ok, jpg = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, 95])
                        if not ok:
                            raise HoposerError(f"cannot encode frame {index} of {clip.source}")
                        tmp.write_bytes(jpg.tobytes())
                    rgb = cv2.cvtColor(read_image(ref), cv2.COLOR_BGR2RGB)  # label what trains
                height, width = rgb.shape[:2]
                K = default_camera_matrix(width, height, self.options.fov)
                net = self.tta.predict(rgb, hand_box, object_box)
                evidence = Evidence(
                    K,
                    network_2d=net["joints_2d"],
                    landmarks_2d=landmarks,
                    landmark_weights=None if found is None else found.landmark_weights,
                    landmarks_3d=world,
                )
                # Each frame is fitted on its own: the stream's temporal prior (`previous`) pulls
                # a fit toward the last one, which would make §5.1.2's smoothness checks below
                # pass by construction instead of judging two independent estimates.
                fit = refine_hand(
                    self.kinematics, net["theta"], net["beta"], np.full(3, np.nan), evidence
                )
                label = self._label(net, fit, K)
                counts["refine_failed"] += fit is None
                main_2d = landmarks if landmarks is not None else net["joints_2d"]
                stats = spatial_statistics(
                    label["joints_3d"], main_2d, label["vertices"], np.asarray(hand_box)
                )
                # the previous sampled frame, seen the same way (a flip of side breaks the chain)
                chained = previous is not None and previous[0] == index - stride
                if chained and previous[2] == mirrored:
                    before = previous[1]
                    stats |= temporal_statistics(
                        label["joints_2d"], label["theta"], before["joints_2d"], before["theta"]
                    )
                previous = (index, label, mirrored)
                rows["frame_index"].append(index)
                rows["image"].append(ref)
                rows["hand_box"].append(np.asarray(hand_box, np.float64))
                rows["object_box"].append(
                    np.full(4, np.nan) if object_box is None else np.asarray(object_box, float)
                )
                for key in ("joints_2d", "joints_3d", "theta", "beta"):
                    rows[key].append(label[key])
                rows["stats"].append([stats.get(name, np.nan) for name in STATISTICS])
                rows["landmarks"].append(
                    np.full((21, 2), np.nan) if landmarks is None else landmarks
                )
        finally:
            detector.close()
        if counts["frames_seen"] == 0:
            raise HoposerError(f"clip {clip.source}: no frame of it could be read")
        n = len(rows["image"])
        out = {
            k: np.asarray(v, np.float64).reshape((n, *_SHAPES[k]))
            for k, v in rows.items()
            if k != "image"
        }
        out["frame_index"] = out["frame_index"].astype(np.int64)
        out["image"] = np.asarray(rows["image"], dtype=str)
        out["video"] = np.asarray([clip.name] * n, dtype=str)
        out["counts"] = np.asarray([counts[k] for k in _COUNTS], np.int64)
        out["version"] = np.int64(_LABEL_VERSION)
        out["stride"] = np.int64(stride)
        return out

    def _label(self, net: dict, fit, K: np.ndarray) -> dict:
        """The pseudo-label: the refined fit (or the TTA hand when no fit was possible)."""
        if fit is None:
            return net
        with torch.no_grad():
            hand = self.hand_model(
                torch.from_numpy(fit.theta[None]), torch.from_numpy(fit.beta[None])
            )
        return {
            "joints_2d": project(fit.joints, K),
            "theta": fit.theta,
            "beta": fit.beta,
            "joints_3d": hand.joints[0].double().numpy(),
            "vertices": hand.vertices[0].double().numpy(),
        }


def _mirrored(bgr, hand_box, object_box, landmarks, world):
    """The frame, boxes and landmarks in the mirror image (x → W − 1 − x, metric X → −X)."""
    from hoposer.model.inputs import mirror_box

    width = bgr.shape[1]
    points = np.array(landmarks, np.float64)
    points[:, 0] = width - 1 - points[:, 0]
    return (
        np.ascontiguousarray(bgr[:, ::-1]),
        mirror_box(hand_box, width),
        None if object_box is None else mirror_box(object_box, width),
        points,
        None if world is None else np.asarray(world, np.float64) * np.array([-1.0, 1.0, 1.0]),
    )


_COUNTS = ("frames_seen", "no_hand", "left_hand", "refine_failed")
_SHAPES = {
    "frame_index": (), "hand_box": (4,), "object_box": (4,), "joints_2d": (21, 2),
    "joints_3d": (21, 3), "theta": (48,), "beta": (10,), "stats": (6,), "landmarks": (21, 2),
}  # fmt: skip


def _save_npz(path: Path, arrays: dict) -> None:
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez(f, **arrays)


def _load_npz(path: Path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as data:
        return {k: data[k] for k in data.files}


def split_heldout(labels: dict[str, np.ndarray], holdout: float) -> np.ndarray:
    """Boolean `(N,)`: the clip's labelled frames in the last `holdout` of its sampled frames."""
    sampled_span = int(labels["counts"][0]) * int(labels["stride"])  # frames the sampling covered
    return labels["frame_index"] >= (1.0 - holdout) * sampled_span


_SHARD_KEYS = ("video", "image", "hand_box", "object_box", "joints_2d", "joints_3d", "theta",
               "beta", "stats")  # fmt: skip


def write_shard(arrays: dict[str, np.ndarray], folder: Path) -> None:
    """Frames as one shard of `hoposer train pseudo`'s format (`load_shards`, `select`)."""
    from hoposer.train.pseudo.generate import STATISTICS

    folder.mkdir(parents=True, exist_ok=True)
    shard = {k: arrays[k] for k in _SHARD_KEYS}
    _save_npz(folder / "shard-00000.npz", shard | {"statistic_names": np.asarray(STATISTICS)})


def training_candidates(clips: list[dict], holdout: float) -> dict[str, np.ndarray]:
    """The frames of every clip before its held-out tail, concatenated."""
    parts = [{k: c[k][~split_heldout(c, holdout)] for k in _SHARD_KEYS} for c in clips]
    return {k: np.concatenate([p[k] for p in parts]) for k in _SHARD_KEYS}


def heldout_measures(predictor, frames: list[dict], thresholds: Thresholds | None = None) -> dict:
    """The network alone on held-out frames: §5 pass rate and 2D agreement with MediaPipe.

    Args:
        predictor: a single-view `TTAPredictor` of the weights to measure.
        frames: per held-out frame: image, hand_box, object_box, landmarks, clip, frame_index,
            stride.
        thresholds: §5.1's thresholds.
    """
    thresholds = thresholds or Thresholds()
    passed, errors, previous = [], [], None
    failures: dict[str, int] = {}
    values: dict[str, list[float]] = {}
    for frame in frames:
        rgb = cv2.cvtColor(read_image(frame["image"]), cv2.COLOR_BGR2RGB)
        box = frame["object_box"]
        p = predictor.predict(rgb, frame["hand_box"], box if np.isfinite(box).all() else None)
        stats = spatial_statistics(p["joints_3d"], p["joints_2d"], p["vertices"], frame["hand_box"])
        key = (frame["clip"], frame["frame_index"] - frame["stride"])
        if previous is not None and previous[0] == key:
            stats |= temporal_statistics(
                p["joints_2d"], p["theta"], previous[1]["joints_2d"], previous[1]["theta"]
            )
        previous = ((frame["clip"], frame["frame_index"]), p)
        for name, value in stats.items():
            values.setdefault(name, []).append(value)
        failed = failed_constraints(stats, thresholds)
        passed.append(not failed)
        for name in failed:
            failures[name] = failures.get(name, 0) + 1
        landmarks = frame["landmarks"]
        if np.isfinite(landmarks).all():
            diagonal = np.linalg.norm(landmarks.max(axis=0) - landmarks.min(axis=0))
            errors.append(np.linalg.norm(p["joints_2d"] - landmarks, axis=1).mean() / diagonal)
    return {
        "frames": len(frames),
        "section5_pass_rate": float(np.mean(passed)) if passed else None,
        "failed_by_constraint": dict(sorted(failures.items())),
        "median_statistics": {k: float(np.nanmedian(v)) for k, v in sorted(values.items())},
        "frames_with_landmarks": len(errors),
        "error_2d_vs_mediapipe": float(np.mean(errors)) if errors else None,
        "error_2d_vs_mediapipe_median": float(np.median(errors)) if errors else None,
    }


def _heldout_frames(clips: list[dict], holdout: float) -> list[dict]:
    frames = []
    for c in clips:
        for i in np.flatnonzero(split_heldout(c, holdout)):
            frames.append({
                "clip": str(c["video"][i]), "frame_index": int(c["frame_index"][i]),
                "stride": int(c["stride"]), "image": str(c["image"][i]),
                "hand_box": c["hand_box"][i], "object_box": c["object_box"][i],
                "landmarks": c["landmarks"][i],
            })  # fmt: skip
    return frames


#: The settings the labels depend on; the rest (the held-out fraction, the selection thresholds,
#: training) only decide what trains and how, so changing them retrains from the labels made.
_LABELLING = ("clips", "weights", "stride", "fov", "tta", "hand_model", "mano_dir")


def _settings(options: AdaptOptions) -> dict:
    """The settings a work folder was made with, by group (not the output path)."""
    every = json.loads(json_text(asdict(options)))
    for key in ("out", "work", "device", "threads"):
        every.pop(key)
    labelling = {k: every.pop(k) for k in _LABELLING}
    return {"labelling": labelling, "training": every}


def _forget_training(work: Path) -> None:
    """Remove the training run and the before-measures (made from other labels or settings)."""
    import shutil

    shutil.rmtree(work / "run", ignore_errors=True)
    (work / "before.json").unlink(missing_ok=True)


def _continue_or_start(work: Path, options: AdaptOptions) -> None:
    """Check the work folder's settings; retrain (keeping the labels) when only training's changed.

    Raises:
        HoposerError: the folder's labels were made with other labelling settings.
    """
    path = work / "adapt.json"
    settings = _settings(options)
    if path.is_file():
        stored = json.loads(path.read_text())
        if stored.get("labelling") != settings["labelling"]:
            raise HoposerError(
                f"{work} holds labels made with other clips or labelling settings: rerun with "
                "the same ones to continue, or pass another --work (or remove that folder)"
            )
        if stored.get("training") == settings["training"]:
            return
        log.info("training settings changed: retraining from the labels in %s", work)
        _forget_training(work)
    write_text_atomic(path, json_text(settings, indent=2) + "\n")


def adapt(options: AdaptOptions, progress=None) -> dict:
    """Run (or continue) the adaptation; returns the report."""
    from hoposer.model.checkpoint import load_checkpoint, save_checkpoint
    from hoposer.threads import configure_threads
    from hoposer.train.fit import FitOptions, fit, resolve_device
    from hoposer.train.pseudo.select import load_shards, select

    _check(options)
    configure_threads(options.threads)
    clips = find_clips(options.clips)
    work = options.work_dir
    work.mkdir(parents=True, exist_ok=True)
    _continue_or_start(work, options)
    device = resolve_device(options.device)
    labeller = _Labeller(options.weights, options, device)

    # 1. label each clip (a finished clip's file is reused)
    clock = {"started": time.perf_counter()}
    labelled, relabelled = [], False
    for number, clip in enumerate(clips):
        path = work / "labels" / f"{clip.name}.npz"
        arrays = _load_npz(path) if path.is_file() else None
        if arrays is not None and int(arrays["version"]) == _LABEL_VERSION:
            labelled.append(arrays)
        else:  # not labelled yet, or by an older version of this code
            if arrays is not None:
                log.info("relabelling %s: its labels are of an older version", clip.name)
            arrays = labeller.label_clip(clip, work / "frames" / clip.name)
            path.parent.mkdir(parents=True, exist_ok=True)
            _save_npz(path, arrays)
            labelled.append(arrays)
            relabelled = True
        if progress:
            progress(number + 1, len(clips))
    if relabelled:  # training and its baseline come after every label: older ones are stale
        _forget_training(work)

    clock["labelled"] = time.perf_counter()

    # 2. split, select
    counts = {k: int(sum(c["counts"][i] for c in labelled)) for i, k in enumerate(_COUNTS)}
    with_hand = int(sum(len(c["image"]) for c in labelled))
    heldout = _heldout_frames(labelled, options.holdout)
    if with_hand - len(heldout) <= 0:
        raise HoposerError(
            f"no hand found in the training part of the clips ({counts['frames_seen']} frames "
            f"seen, {counts['no_hand']} without a hand): give clips where a hand is visible"
        )
    # Every candidate with its statistics (for `hoposer train pseudo`-style inspection), and the
    # kept ones, which train (with the "none" filter: this selection is the one that counts).
    candidates = training_candidates(labelled, options.holdout)
    write_shard(candidates, work / "candidates")
    keep, funnel = select(load_shards([work / "candidates"]), "all", options.thresholds)
    if keep.any():
        write_shard({k: v[keep] for k, v in candidates.items()}, work / "pseudo")
    report: dict = {
        "weights": options.weights,
        "out": options.out,
        "clips": [c.name for c in clips],
        "funnel": {
            "frames_seen": counts["frames_seen"],
            "with_a_hand": with_hand,
            "left_hands_mirrored": counts["left_hand"],
            "refine_failed": counts["refine_failed"],
            "held_out": len(heldout),
            "training_candidates": funnel.pop("frames"),
            **funnel,
        },
    }
    if not keep.any():
        raise HoposerError(
            f"no pseudo-label passed the §5 constraints ({json_text(report['funnel'])}): the "
            "weights cannot label these clips reliably; see the funnel for which check fails"
        )

    # 3. before: the given weights on the held-out frames
    before_path = work / "before.json"
    if before_path.is_file():
        before = json.loads(before_path.read_text())
    else:
        before = heldout_measures(labeller.single, heldout, options.thresholds)
        write_text_atomic(before_path, json_text(before, indent=2) + "\n")

    # 4. fine-tune (fit's loop; resumes from state.pt)
    run = work / "run"
    fit_options = FitOptions(
        data=options.data, out=str(run), epochs=1, batch_size=options.batch_size,
        lr=options.lr, lr_step=1, lr_gamma=1.0, workers=0,
        seed=options.seed, hand_model=labeller.hand_model.name, mano_dir=options.mano_dir,
        init_weights=options.weights, checkpoint_every=options.checkpoint_every,
        max_steps=options.max_steps, device=options.device, threads=options.threads,
        pseudo=[str(work / "pseudo")], pseudo_ratio=options.pseudo_ratio, pseudo_filters="none",
        # the kept frames repeat to make up --pseudo-ratio beside --data, and without it to fill
        # one epoch of --max-steps steps, unless --epochs asks for passes over them
        pseudo_repeat=options.data is not None or options.epochs is None,
    )  # fmt: skip
    # --max-steps ends the run; the epochs only have to cover them (one without --data)
    epochs = options.epochs or _epochs_for(fit_options, labeller.single.model)
    fit_options = replace(fit_options, epochs=epochs)
    clock["measured_before"] = time.perf_counter()
    # A finished run is not resumed: stopped by --max-steps, `fit` would take one more step.
    done = run / "done.json"
    if done.is_file():
        summary = json.loads(done.read_text())
    else:
        resume = (run / "state.pt").is_file()
        summary = fit(fit_options, resume=resume, progress=progress is not None)
        write_text_atomic(done, json_text(summary, indent=2) + "\n")
    clock["trained"] = time.perf_counter()
    adapted = load_checkpoint(run / "model.safetensors")
    metadata = {"hand_model": labeller.hand_model.name, "adapted_from": str(options.weights),
                "adapt_work": str(work)}  # fmt: skip
    save_checkpoint(adapted, options.out, metadata=metadata)

    # 5. after
    from hoposer.train.pseudo.generate import TTAPredictor

    after = heldout_measures(TTAPredictor(adapted, labeller.hand_model, device, ((1.0, 0.0),)),
                             heldout, options.thresholds)  # fmt: skip
    report |= {"before": before, "after": after, "training": _training_summary(run, summary)}
    # this invocation's time per stage (a resumed run counts only what it redid)
    report["seconds"] = {
        "labelling": clock["labelled"] - clock["started"],
        "training": clock["trained"] - clock["measured_before"],
        "total": time.perf_counter() - clock["started"],
    }
    write_text_atomic(work / "report.json", json_text(report, indent=2) + "\n")
    write_text_atomic(work / "report.txt", report_text(report))
    return report


def _epochs_for(options, model) -> int:
    """The passes over the training set that `options.max_steps` steps take (the last cut short)."""
    from hoposer.train.fit import build_datasets

    per_epoch = math.ceil(len(build_datasets(options, model.config)) / options.batch_size)
    return max(1, math.ceil(options.max_steps / per_epoch))


def _training_summary(run: Path, summary: dict) -> dict:
    log_path = run / "metrics.jsonl"
    lines = log_path.read_text().splitlines() if log_path.is_file() else []
    epochs = [json.loads(line) for line in lines if line.strip()]
    return {"epochs_logged": len(epochs), "last_epoch": epochs[-1] if epochs else summary}


def report_text(report: dict) -> str:
    """The short human-readable report."""
    f = report["funnel"]
    lines = [f"adapted {report['weights']} -> {report['out']} on {len(report['clips'])} clip(s)",
             "funnel: " + ", ".join(f"{k} {v}" for k, v in f.items())]  # fmt: skip

    def show(name: str, m: dict) -> str:
        rate = "n/a" if m["section5_pass_rate"] is None else f"{m['section5_pass_rate']:.3f}"
        err = "n/a" if m["error_2d_vs_mediapipe"] is None else f"{m['error_2d_vs_mediapipe']:.4f}"
        return (
            f"{name:<6} held-out frames {m['frames']}: §5 pass rate {rate}, 2D error vs "
            f"MediaPipe (per box diagonal) {err} on {m['frames_with_landmarks']} frames"
        )

    lines += [show("before", report["before"]), show("after", report["after"])]
    return "\n".join(lines) + "\n"


def _check(options: AdaptOptions) -> None:
    if not Path(options.weights).is_file():
        raise HoposerError(f"--weights {options.weights} does not exist: give a hoposer checkpoint")
    if not 0.0 <= options.holdout < 1.0:
        raise HoposerError(f"--holdout must be in [0, 1), not {options.holdout}")
    if options.stride < 0:
        raise HoposerError(f"--stride must be 0 (auto) or a frame count, not {options.stride}")
    counts = {"epochs": options.epochs, "batch-size": options.batch_size,
              "max-steps": options.max_steps, "threads": options.threads}  # fmt: skip
    for name, value in counts.items():
        if value is not None and value < 1:
            raise HoposerError(f"--{name} must be at least 1, not {value}")
    for name, value in (("lr", options.lr), ("pseudo-ratio", options.pseudo_ratio)):
        if not value > 0:
            raise HoposerError(f"--{name} must be positive, not {value}")
    if not 0.0 < options.fov < 180.0:
        raise HoposerError(f"--fov must be in (0, 180) degrees, not {options.fov}")
    if options.data is not None and not Path(options.data).is_dir():
        raise HoposerError(f"--data {options.data} is not a folder (HO-3D layout, e.g. from "
                           "`hoposer train synth`)")  # fmt: skip
    if not str(options.out).endswith(".safetensors"):
        raise HoposerError(f"--out {options.out} must name a .safetensors file")
