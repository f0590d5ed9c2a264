"""The shape of the paper's Tables 3-4 on synthetic data with a real domain gap.

    python bench/semi_supervised.py --out runs/semi [--labelled 1000] [--videos 60] ...

Labelled set: the `default` synthetic style. Unlabelled videos and the test split: the `shifted`
style (other backgrounds, lighting, skin tones, hand shapes, object proportions). Compared on the
shifted test split, all starting from the same supervised model and given the same number of
extra training steps:

    supervised        the labelled set only (continued for the same extra steps)
    self-train none   labelled ∪ all pseudo-labels (no filtering)
    self-train -S     without the spatial constraints
    self-train -T     without the temporal constraints (smoothness and shape)
    self-train all    with every constraint of §5.1

Prints a markdown table (and writes `results.json`): PA-MPJPE / PA-MPVPE (mm), F@5 / F@15,
the object's pose-0.1D (ADD-S for the symmetric synthetic primitives), and the number of
pseudo-labels each variant trained on. Every step is a `hoposer` command; finished steps are
skipped when the script is run again.

`--base WEIGHTS` starts from given weights (e.g. the shipped ones, trained on the `default`
style) instead of training a supervised base on the labelled set; `--seeds N` repeats the two
rows that matter (supervised, all constraints) with N training seeds, so that their difference
can be read against the seed spread (the table gives mean and min-max).
"""

import argparse
import dataclasses
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

VARIANTS = (
    ("supervised", None),
    ("self-train none", "none"),
    ("self-train -S", "no-spatial"),
    ("self-train -T", "no-temporal"),
    ("self-train all", "all"),
)


def hoposer(*args: str) -> None:
    command = [sys.executable, "-m", "hoposer.cli", *args]
    print("$ hoposer " + " ".join(args), flush=True)
    subprocess.run(command, check=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/semi")
    parser.add_argument("--labelled", type=int, default=1000)
    parser.add_argument("--videos", type=int, default=60, help="unlabelled clips")
    parser.add_argument("--clip-length", type=int, default=20)
    parser.add_argument("--test", type=int, default=300)
    parser.add_argument("--size", type=int, default=128, help="image and network input side")
    parser.add_argument("--epochs", type=int, default=8, help="supervised epochs")
    parser.add_argument("--extra-epochs", type=int, default=2, help="self-training epochs")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--lr", type=float, default=5e-4)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--base", help="supervised base weights (default: train one)")
    parser.add_argument("--seeds", type=int, default=1, help="seeds for supervised and all")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per command")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()

    from hoposer.model import get_config

    config = out / "config.json"
    config.write_text(dataclasses.replace(get_config("lite"), input_size=args.size).to_json())
    labelled, videos, test = out / "labelled", out / "videos", out / "test"
    if not (labelled / "train.txt").is_file():
        hoposer("train", "synth", "--out", str(labelled), "--frames", str(args.labelled),
                "--seed", "10", "--size", str(args.size),
                "--workers", str(args.workers))  # fmt: skip
    if not (videos / "annotations.json").is_file():
        hoposer("train", "synth", "--out", str(videos), "--videos", "--style", "shifted",
                "--frames", str(args.videos * args.clip_length), "--sequence-length",
                str(args.clip_length), "--seed", "11", "--size", str(args.size), "--workers",
                str(args.workers))  # fmt: skip
    if not (test / "evaluation.txt").is_file():
        hoposer("train", "synth", "--out", str(test), "--split", "evaluation", "--style",
                "shifted", "--frames", str(args.test), "--seed", "12", "--size", str(args.size),
                "--workers", str(args.workers))  # fmt: skip

    common = ["--config", str(config), "--batch-size", str(args.batch), "--lr", str(args.lr),
              "--workers", str(args.workers), "--hand-model", "standin", "--device", "cpu",
              "--checkpoint-every", "0", "--lr-step", "1000",
              "--threads", str(args.threads)]  # fmt: skip
    if args.base:
        base_weights = Path(args.base)
    else:
        base = out / "supervised-base"
        base_weights = base / "model.safetensors"
        if not (base / "done").is_file():
            resume = ["--resume"] if (base / "state.pt").is_file() else []
            hoposer("train", "fit", "--data", str(labelled), "--out", str(base), "--epochs",
                    str(args.epochs), *common, *resume)  # fmt: skip
            (base / "done").touch()
    pseudo = out / "pseudo"
    if not (pseudo / "report.json").is_file():
        hoposer("train", "pseudo", "--weights", str(base_weights), "--videos", str(videos),
                "--out", str(pseudo), "--device", "cpu")  # fmt: skip
    report = json.loads((pseudo / "report.json").read_text())
    base_eval = out / "base-eval"
    if not (base_eval / "metrics.json").is_file():
        evaluate(base_weights, test, base_eval, args)

    results = {"base (no extra training)": {"pseudo_labels": 0, "seeds": [0],
                                             **_row(base_eval)}}  # fmt: skip
    for name, filters in VARIANTS:
        kept = report["funnel"][filters]["kept"] if filters else 0
        if filters and kept == 0:  # nothing passes: this variant is the supervised model
            results[name] = {**results["supervised"], "pseudo_labels": 0}
            continue
        seeds = range(args.seeds) if filters in (None, "all") else range(1)
        rows = []
        for seed in seeds:
            run = out / (name.replace(" ", "_") + (f"-seed{seed}" if seed else ""))
            if not (run / "done").is_file():
                extra = ["--pseudo", str(pseudo), "--pseudo-filters", filters] if filters else []
                resume = ["--resume"] if (run / "state.pt").is_file() else []
                hoposer("train", "fit", "--data", str(labelled), "--out", str(run), "--epochs",
                        str(args.extra_epochs), "--init-weights", str(base_weights), "--seed",
                        str(seed), *common, *extra, *resume)  # fmt: skip
                (run / "done").touch()
            if not (run / "eval" / "metrics.json").is_file():
                evaluate(run / "model.safetensors", test, run / "eval", args)
            rows.append(_row(run / "eval"))
        results[name] = {
            "pseudo_labels": min(kept, args.labelled),  # --pseudo-ratio 1.0
            "seeds": list(seeds),
            **{key: float(np.mean([r[key] for r in rows])) for key in rows[0]},
            "spread": {key: [min(r[key] for r in rows), max(r[key] for r in rows)]
                       for key in rows[0]},
        }  # fmt: skip
    (out / "results.json").write_text(json.dumps({"funnel": report["funnel"], "results": results,
                                                  "accuracy": report.get("accuracy"),
                                                  "args": vars(args)}, indent=2))  # fmt: skip
    print(f"\nshifted test split, {args.test} frames; {time.perf_counter() - started:.0f} s\n")
    print("| variant | pseudo-labels | seeds | PA-MPJPE mm | PA-MPVPE mm | F@5 | F@15 | "
          "pose-0.1D % |\n| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")  # fmt: skip
    for name, r in results.items():
        cells = " | ".join(_cell(r, key, digits) for key, digits in
                           (("pa_mpjpe_mm", 2), ("pa_mpvpe_mm", 2), ("f5", 3), ("f15", 3),
                            ("pose_0.1d", 1)))  # fmt: skip
        print(f"| {name} | {r['pseudo_labels']} | {len(r['seeds'])} | {cells} |")
    for filters in ("none", "no-spatial", "no-temporal", "all"):
        print(f"funnel ({filters}):", json.dumps(report["funnel"][filters]))
    if "accuracy" in report:  # the clips' ground truth (a report of an older release lacks it)
        print("\npseudo-labels against the clips' ground truth (kept / rejected):\n\n"
              "| variant | kept | PA-MPJPE mm | wrist-relative MPJPE mm | 2D / box diagonal |\n"
              "| --- | ---: | ---: | ---: | ---: |")  # fmt: skip
        for name, filters in VARIANTS[1:]:
            parts = report["accuracy"][filters]
            cells = " | ".join(
                _kept_rejected(parts, key, digits)
                for key, digits in (("pa_mpjpe_mm", 2), ("wrist_relative_mm", 1), ("joints_2d", 3))
            )
            print(f"| {name} | {parts['kept']['frames']} | {cells} |")


def _kept_rejected(parts: dict, key: str, digits: int) -> str:
    return " / ".join(f"{parts[p][key]:.{digits}f}" if parts[p]["frames"] else "-"
                      for p in ("kept", "rejected"))  # fmt: skip


def _cell(row: dict, key: str, digits: int) -> str:
    """The mean, and the min-max over seeds when there are several."""
    if len(row["seeds"]) == 1:
        return f"{row[key]:.{digits}f}"
    low, high = row["spread"][key]
    return f"{row[key]:.{digits}f} ({low:.{digits}f}-{high:.{digits}f})"


def evaluate(weights: Path, test: Path, out: Path, args) -> None:
    hoposer("train", "eval", "--weights", str(weights), "--data", str(test), "--out", str(out),
            "--device", "cpu", "--hand-model", "standin",
            "--workers", str(args.workers))  # fmt: skip


def _row(evaluation: Path) -> dict:
    metrics = json.loads((evaluation / "metrics.json").read_text())
    return {
        "pa_mpjpe_mm": metrics["hand"]["joint_pa_error_mm"],
        "pa_mpvpe_mm": metrics["hand"]["mesh_pa_error_mm"],
        "f5": metrics["hand"]["f5"],
        "f15": metrics["hand"]["f15"],
        "pose_0.1d": metrics.get("object", {}).get("average", {}).get("pose_0.1d", 0.0),
    }


if __name__ == "__main__":
    main()
