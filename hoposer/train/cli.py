"""`hoposer train …`: synthetic data, supervised and self-training, evaluation (thin)."""

import logging
import shutil
from pathlib import Path
from typing import Annotated

import typer

from hoposer.errors import HoposerError
from hoposer.io import json_text
from hoposer.options import options_command
from hoposer.progress import ProgressBar
from hoposer.train.options import AdaptOptions, EvalOptions, FitOptions, PseudoOptions, SynthOptions

train_app = typer.Typer(
    help="Training: synthetic data, fit, pseudo-labels, HO-3D evaluation.", no_args_is_help=True
)


def synth(options: SynthOptions) -> None:
    """Render a synthetic hand-object data set in HO-3D's layout, with exact labels.

    Example: hoposer train synth --out data/synth --frames 10000 --seed 0
    """
    from hoposer.io import check_writable_folder
    from hoposer.train.synth import generate

    out = Path(options.out)
    check_writable_folder(out)
    if options.split not in ("train", "evaluation"):
        raise HoposerError(f"--split must be train or evaluation, not {options.split!r}")
    info = generate(options, progress=ProgressBar("rendering").update)
    print(f"wrote {info['frames']} frames in {info['sequences']} sequences to {out}")


SYNTH = options_command(synth)
train_app.command("synth")(SYNTH)


def fit(
    options: FitOptions,
    resume: Annotated[bool, typer.Option(help="continue the run in --out")] = False,
) -> None:
    """Train the joint network (DDP with `torchrun`; resumable; checkpoints every epoch).

    Example: hoposer train fit --data data/synth --out runs/lite --config lite --epochs 20
    """
    from hoposer.io import check_writable_folder
    from hoposer.train.fit import fit as run_fit
    from hoposer.train.losses import loss_weights

    loss_weights(options.loss, options.loss_weight)  # a one-line error before any work
    if not Path(options.data).is_dir():
        raise HoposerError(
            f"--data {options.data} does not exist or is not a folder (make one with `hoposer "
            "train synth --out FOLDER`, or give HO-3D's root)"
        )
    out = Path(options.out)
    check_writable_folder(out)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    fresh = not out.exists()
    try:
        summary = run_fit(options, resume=resume)
    except BaseException:
        _remove_if_unstarted(out, fresh)
        raise
    print(json_text(summary, indent=2))


FIT = options_command(fit)
train_app.command("fit")(FIT)


def evaluate(options: EvalOptions) -> None:
    """HO-3D's hand measures and ADD-0.1D/REP-5; writes metrics.json, pck.png, pred.json/zip.

    Example: hoposer train eval --weights runs/lite/model.safetensors --data data/synth-test
    --out runs/lite/eval
    """
    from hoposer.train.evaluate import evaluate as run_eval

    metrics = run_eval(options, progress=ProgressBar("evaluating").update)
    print(json_text(_headline(metrics), indent=2))


EVAL = options_command(evaluate)
train_app.command("eval")(EVAL)


def _headline(metrics: dict) -> dict:
    out = {"frames": metrics["frames"], "skipped_frames": metrics["skipped_frames"]}
    hand = metrics.get("hand")
    if hand:
        for key in ("joint_pa_error_mm", "mesh_pa_error_mm", "f5", "f15", "joint_pa_auc",
                    "joint_error_mm", "mean_pose_pa_error_mm",
                    "joint_pa_vs_mean_pose"):  # fmt: skip
            out[key] = round(hand[key], 4)
    if metrics.get("object"):
        out["object"] = metrics["object"]["average"]
    return out


def pseudo(options: PseudoOptions) -> None:
    """Pseudo-label unlabelled videos; resumable, `torchrun` ranks share the shards.

    Writes shard-*.npz with every frame's prediction and §5.1 statistics, then a filter report
    (report.json, funnel/histogram/example PNGs). Which frames train is chosen by
    `fit --pseudo DIR --pseudo-filters …`.

    Example: hoposer train pseudo --weights runs/lite/model.safetensors --videos data/videos
    --out data/pseudo
    """
    from hoposer.train.pseudo.generate import generate_pseudo_labels
    from hoposer.train.pseudo.report import write_report

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    counts = generate_pseudo_labels(options, progress=ProgressBar("pseudo-labelling").update)
    from hoposer.train.pseudo.generate import _rank_world

    if _rank_world()[0] == 0:
        report = write_report(Path(options.out))
        counts["funnel"] = report["funnel"]["all"]
        if "accuracy" in report:  # clips with ground truth: how good the kept labels are
            counts["accuracy"] = report["accuracy"]["all"]
    print(json_text(counts, indent=2))


PSEUDO = options_command(
    pseudo,
    omitted={
        "batch_frames": "the labelling does not read it (each frame's 8 TTA views are one "
        "batch); it is only recorded in pseudo.json",
    },
)
train_app.command("pseudo")(PSEUDO)


def adapt(options: AdaptOptions) -> None:
    """Adapt weights to your own unlabelled clips (the paper's §5 loop).

    TTA pseudo-labels refined to MediaPipe's landmarks, kept by the spatial and temporal
    constraints, then self-training with eq. 8's mask (pseudo-labels train the hand only).

    Resumable: rerun the same command to continue. Writes OUT and, in the work folder,
    report.json / report.txt (the funnel, and held-out frames before vs after).

    Example: hoposer train adapt my_clip.mp4 --weights hoposer/weights/lite-synthetic.safetensors
    --out adapted.safetensors
    """
    from hoposer.io import check_writable_file
    from hoposer.train.adapt import adapt as run_adapt
    from hoposer.train.adapt import report_text

    check_writable_file(Path(options.out))
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    report = run_adapt(options, progress=ProgressBar("labelling clips").update)
    print(report_text(report), end="")


ADAPT = options_command(
    adapt,
    omitted={
        "checkpoint_every": "adapt's short runs checkpoint every 20 steps, so a rerun continues "
        "where a killed one stopped; from Python only",
        **dict.fromkeys(
            ("thresholds.min_bone_length", "thresholds.max_joint_motion",
             "thresholds.max_pose_change", "thresholds.shape_sigmas"),
            "the other §5.1 thresholds keep the paper's values; retune them from Python "
            "(AdaptOptions.thresholds)",
        ),
    },
)  # fmt: skip
train_app.command("adapt")(ADAPT)


def _remove_if_unstarted(run: Path, fresh: bool) -> None:
    """Remove the run folder this command made if it failed before writing more than options.

    A failed start (bad data, a model that does not fit) must not leave an empty run behind.
    """
    if fresh and run.is_dir() and {p.name for p in run.iterdir()} <= {"options.json"}:
        shutil.rmtree(run, ignore_errors=True)
