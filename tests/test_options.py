"""Options are declared once (issue 14): a command's options are its dataclass's fields.

`video`, `live` and `train fit`, `synth`, `eval`, `pseudo`, `adapt` are generated from
`StreamOptions` and the dataclasses of `hoposer/train/options.py`; every field is an option of each
command or named, with the reason, where the command is declared.
"""

from dataclasses import dataclass
from pathlib import Path

import pytest
import typer
from typer.main import get_command
from typer.testing import CliRunner

from hoposer.cli import app, main
from hoposer.options import cli_fields, option, options_command
from hoposer.stream.cli import LIVE, VIDEO
from hoposer.train.cli import ADAPT, EVAL, FIT, PSEUDO, SYNTH

COMMANDS = {"video": VIDEO, "live": LIVE, "train fit": FIT, "train synth": SYNTH,
            "train eval": EVAL, "train pseudo": PSEUDO, "train adapt": ADAPT}  # fmt: skip
OWN_PARAMETERS = {name: set() for name in COMMANDS} | {"train fit": {"resume"}}

# Every flag and default of the hand-written commands before issue 14 (they must keep working).
BEFORE = {
    "video": {
        "clip": None, "--out/-o": None, "--panel/--no-panel": False, "--mesh/--no-mesh": True,
        "--view/--no-view": False, "--backend": "auto", "--weights": None, "--onnx": None,
        "--plan": None, "--device": None, "--object": "box:0.06x0.06x0.06", "--camera-info": None,
        "--fov": 60.0, "--extrinsics": None, "--publish": None,
        "--allow-remote/--no-allow-remote": False, "--curve-secret": None,
        "--curve-clients": None, "--hand-model": "auto", "--mano-dir": None,
        "--detector": "mediapipe", "--hands": "auto", "--refine": "auto",
        "--smooth/--no-smooth": True, "--relock": 3, "--threads": None, "--max-frames": None,
        "--allow-gaps/--no-allow-gaps": False,
    },
    "live": {
        "--camera": "0", "--loop/--no-loop": False, "--view/--no-view": True, "--out/-o": None,
        "--mesh/--no-mesh": True, "--backend": "auto", "--weights": None, "--onnx": None,
        "--plan": None, "--device": None, "--precision": "fp32",
        "--compile/--no-compile": False, "--object": "box:0.06x0.06x0.06", "--camera-info": None,
        "--fov": 60.0, "--extrinsics": None, "--publish": "tcp://127.0.0.1:5555",
        "--allow-remote/--no-allow-remote": False, "--curve-secret": None,
        "--curve-clients": None, "--hand-model": "auto", "--mano-dir": None,
        "--detector": "mediapipe", "--selfie/--no-selfie": False, "--hands": "auto",
        "--refine": "auto", "--smooth/--no-smooth": True, "--relock": 3, "--threads": None,
        "--max-frames": None,
    },
    "train fit": {
        "--data": None, "--out/-o": None, "--config": "lite", "--epochs": 60,
        "--batch-size": 24, "--lr": 0.0001, "--lr-step": 10, "--lr-gamma": 0.7,
        "--loss": "heatmaps", "--workers": 2, "--seed": 0, "--amp/--no-amp": True,
        "--hand-model": "auto", "--mano-dir": None, "--ycb-dir": None,
        "--backbone-weights": "auto", "--init-weights": None, "--pseudo": None,
        "--pseudo-ratio": 1.0, "--pseudo-filters": "all", "--checkpoint-every": 500,
        "--max-steps": None, "--max-minutes": None, "--max-samples": None,
        "--augment/--no-augment": True, "--device": "auto", "--threads": None,
        "--resume/--no-resume": False,
    },
    "train synth": {
        "--out/-o": None, "--frames": 1000, "--seed": 0, "--size": 256, "--split": "train",
        "--style": "default", "--sequence-length": 100, "--videos/--no-videos": False,
        "--hand-model": "standin", "--mano-dir": None, "--object-mesh": None, "--workers": 2,
        "--backgrounds": None,
    },
    "train eval": {
        "--weights": None, "--data": None, "--out/-o": None, "--split": "evaluation",
        "--batch-size": 16, "--workers": 2, "--hand-model": "auto", "--mano-dir": None,
        "--ycb-dir": None, "--max-samples": None, "--device": "auto",
    },
    "train pseudo": {
        "--weights": None, "--videos": None, "--out/-o": None, "--annotations": None,
        "--videos-per-shard": 8, "--tta/--no-tta": True, "--hand-model": "auto",
        "--mano-dir": None, "--device": "auto",
    },
    "train adapt": {
        "clips": None, "--weights": None, "--out/-o": None, "--work": None, "--data": None,
        # training is counted in steps since (3 epochs were 6 batches on a short clip, README)
        "--stride": 0, "--holdout": 0.2, "--fov": 60.0, "--tta/--no-tta": True, "--epochs": None,
        "--batch-size": 16, "--lr": 2e-04, "--pseudo-ratio": 1.0, "--max-steps": 300,
        "--seed": 0, "--device": "auto", "--threads": None, "--min-iou": 0.6,
        "--max-reprojection": 0.65, "--max-flexion-deg": 90.0, "--hand-model": "auto",
        "--mano-dir": None,
    },
}  # fmt: skip

# The train commands' parameters that were typer Paths (a file or folder) before issue 14: they
# still are (`<path>` in --help), while their dataclasses keep str.
PATHS = {
    "train synth": {"out", "backgrounds"},
    "train eval": {"weights", "data", "out"},
    "train pseudo": {"weights", "videos", "out", "annotations"},
    "train adapt": {"clips", "weights", "out", "work", "data"},
}
# A command line giving each of them.
GIVING_PATHS = {
    "train synth": ["-o", "o", "--backgrounds", "bg"],
    "train eval": ["--weights", "w", "--data", "d", "-o", "o"],
    "train pseudo": ["--weights", "w", "--videos", "v", "-o", "o", "--annotations", "a.json"],
    "train adapt": ["a.mp4", "b", "--weights", "w", "-o", "o.safetensors", "--work", "wk",
                    "--data", "d"],
}  # fmt: skip


def click_command(name: str):
    """The Click command behind `hoposer NAME` (Typer 0.29 and later bring their own Click)."""
    command = get_command(app)
    for word in name.split():
        command = command.get_command(command.context_class(command), word)
    return command


def parse(name: str, args: list[str]):
    """The options (and the command's own values) a command line gives, as the command builds."""
    params = click_command(name).make_context(name, args).params
    return COMMANDS[name].build(params)


@pytest.mark.parametrize("name", list(COMMANDS))
def test_every_field_is_an_option_or_named_with_the_reason(name):
    command = COMMANDS[name]
    params = {p.name: p for p in click_command(name).params if p.name != "help"}
    assert set(params) == set(command.fields) | OWN_PARAMETERS[name]
    for path in (f.path for f in cli_fields(command.options_type)):
        reached = path in command.fields.values()
        set_by_command = path in command.fixed
        reason = command.omitted.get(path, "")
        assert reached + set_by_command + bool(reason) == 1, path
        assert not reason or len(reason) > 20, f"{path}: say why {name} leaves it out"
    # The help text is the field's own, written once.
    helps = {f.path: f.field.metadata.get("help") for f in cli_fields(command.options_type)}
    for param_name, path in command.fields.items():
        if helps[path]:
            assert params[param_name].help == helps[path]


@pytest.mark.parametrize("name", list(COMMANDS))
def test_every_flag_and_default_from_before_still_works(name):
    now = {"/".join(p.opts + p.secondary_opts): p.default or None if p.multiple else p.default
           for p in click_command(name).params}  # fmt: skip
    for flags, default in BEFORE[name].items():
        assert flags in now, f"{name} lost {flags}"
        assert now[flags] == default, f"{name} {flags}: default {now[flags]!r}, was {default!r}"


def test_a_command_line_reaches_the_options():
    options, own = parse("video", [
        "clip.mp4", "-o", "o.mp4", "--fov", "70", "--no-smooth", "--relock", "5",
        "--precision", "fp16", "--compile", "--selfie", "--object-name", "mug", "--threads", "2",
    ])  # fmt: skip
    assert own == {}
    assert (options.source, options.out, options.fov_deg) == ("clip.mp4", "o.mp4", 70.0)
    assert not options.stabilizer.smoothing and options.stabilizer.relock_frames == 5
    assert (options.precision, options.compile, options.selfie) == ("fp16", True, True)
    assert (options.object_name, options.threads) == ("mug", 2)
    assert not options.live and not options.view and options.publish is None
    # live: its own defaults
    options, _ = parse("live", [])
    assert (options.source, options.live, options.view) == ("0", True, True)
    assert options.publish == "tcp://127.0.0.1:5555"
    options, _ = parse("live", ["--camera", "clip.mp4", "--loop", "--no-view"])
    assert (options.source, options.loop, options.view) == ("clip.mp4", True, False)
    options, own = parse("train fit", ["--data", "d", "-o", "o", "--weight-decay", "0.01",
                                       "--pseudo", "a", "--pseudo", "b", "--resume"])  # fmt: skip
    assert (options.data, options.out, options.weight_decay) == ("d", "o", 0.01)
    assert list(options.pseudo) == ["a", "b"] and own == {"resume": True}


@pytest.mark.parametrize("name", list(PATHS))
def test_train_paths_are_parsed_as_paths_and_given_as_str(name):
    params = click_command(name).make_context(name, list(GIVING_PATHS[name])).params
    as_paths = {k for k, v in params.items() if isinstance(v, Path)
                or isinstance(v, list) and v and all(isinstance(x, Path) for x in v)}  # fmt: skip
    assert as_paths == PATHS[name]
    options, own = COMMANDS[name].build(params)
    assert own == {}
    for path in PATHS[name]:
        value = getattr(options, path)
        assert type(value) is str or type(value) is tuple and {type(x) for x in value} == {str}


def test_train_command_lines_reach_their_options():
    options, _ = parse("train synth", ["-o", "d/", "--object-mesh", "a.ply", "--object-mesh",
                                       "b.obj", "--videos", "--backgrounds", "bg"])  # fmt: skip
    assert (options.out, options.object_meshes, options.videos) == ("d", ("a.ply", "b.obj"), True)
    assert options.backgrounds == "bg" and options.hand_model == "standin"
    options, _ = parse("train synth", ["-o", "d"])
    assert (options.object_meshes, options.backgrounds) == ((), None)
    options, _ = parse("train eval", ["--weights", "w", "--data", "d", "-o", "o",
                                      "--batch-size", "4", "--max-samples", "3"])  # fmt: skip
    assert (options.weights, options.data, options.out) == ("w", "d", "o")
    assert (options.batch_size, options.max_samples, options.split) == (4, 3, "evaluation")
    options, _ = parse("train pseudo", ["--weights", "w", "--videos", "v", "-o", "o", "--no-tta",
                                        "--videos-per-shard", "2"])  # fmt: skip
    assert (options.videos, options.tta, options.videos_per_shard) == ("v", False, 2)
    assert options.annotations is None and options.batch_frames == 4
    options, _ = parse("train adapt", ["a.mp4", "b", "--weights", "w", "-o", "o.safetensors",
                                       "--min-iou", "0.5", "--max-flexion-deg", "80",
                                       "--lr", "1e-4", "--work", "wk"])  # fmt: skip
    assert (options.clips, options.out, options.work) == (("a.mp4", "b"), "o.safetensors", "wk")
    assert (options.thresholds.min_iou, options.thresholds.max_flexion_deg) == (0.5, 80.0)
    assert options.thresholds.max_reprojection == 0.65 and options.lr == 1e-4
    assert options.thresholds.min_bone_length == 0.1 and options.checkpoint_every == 20


def test_help_lists_every_option_with_its_help_in_sections(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "250")
    assert main(["video", "--help"]) == 0
    text = capsys.readouterr().out
    flat = " ".join(text.replace("│", " ").split())
    for section in ("Arguments", "Options", "Model", "Hand and object", "Camera", "Publishing"):
        assert f"─ {section} ─" in text
    for f in cli_fields(VIDEO.options_type):
        if f.path in VIDEO.fields.values() and f.field.metadata.get("help"):
            assert " ".join(f.field.metadata["help"].split()) in flat, f.path


def test_bad_values_are_one_line_errors_naming_the_option(capsys):
    assert main(["video", "clip.mp4", "--out", "o.mp4", "--relock", "0"]) == 2
    assert capsys.readouterr().err.strip() == "hoposer: error: --relock must be at least 1"


@dataclass(frozen=True)
class Inner:
    smoothing: bool = option(True, "smooth it", flag="--smooth")
    tuning: float = 0.5


@dataclass(frozen=True)
class Outer:
    name: str = option("x", "a name", short="-n")
    inner: Inner = option(factory=Inner, panel="Inner")
    internal: int = 3


def test_a_field_nobody_accounts_for_is_refused():
    def run(options: Outer) -> None:
        pass

    with pytest.raises(TypeError, match=r"\['inner.tuning', 'internal'\]"):
        options_command(run)
    with pytest.raises(TypeError, match="no field"):
        options_command(run, omitted={"nothing": "no such field", "inner.tuning": "t",
                                      "internal": "i"})  # fmt: skip
    options_command(run, omitted={"inner.tuning": "library only", "internal": "library only"})


def test_a_generated_command_runs_through_typer():
    received = []

    def run(options: Outer, count: int = 1) -> None:
        """Record what arrives."""
        received.append((options, count))

    command = options_command(run, omitted={"inner.tuning": "t", "internal": "i"})
    tiny = typer.Typer()
    tiny.command()(command)
    tiny.command("other")(lambda: None)  # two commands: typer keeps the names
    runner = CliRunner()
    result = runner.invoke(tiny, ["run", "-n", "y", "--no-smooth", "--count", "2"])
    assert result.exit_code == 0, result.output
    assert received == [(Outer(name="y", inner=Inner(smoothing=False)), 2)]
    result = runner.invoke(tiny, ["run", "--help"], env={"COLUMNS": "200"})
    assert "Record what arrives." in result.output and "smooth it" in result.output
    assert "─ Inner ─" in result.output and "--no-smooth" in result.output


@dataclass(frozen=True)
class Files:
    inputs: tuple[str, ...] = option(help="the inputs", path=True, argument=True)
    out: str = option(help="where to write", short="-o", path=True)
    tags: tuple[str, ...] = option((), "a tag (repeatable)", flag="--tag")
    count: int = option(2)  # no help text: an option all the same


def test_paths_arguments_and_tuples_reach_the_dataclass_as_declared():
    received = []

    def run(options: Files) -> None:
        """Record what arrives."""
        received.append(options)

    tiny = typer.Typer()
    tiny.command()(options_command(run))
    tiny.command("other")(lambda: None)
    runner = CliRunner()
    args = ["run", "a", "b/", "-o", "o/", "--tag", "x", "--tag", "y", "--count", "3"]
    result = runner.invoke(tiny, args)
    assert result.exit_code == 0, result.output
    assert received == [Files(inputs=("a", "b"), out="o", tags=("x", "y"), count=3)]
    assert runner.invoke(tiny, ["run", "a", "-o", "o"]).exit_code == 0
    assert received[-1] == Files(inputs=("a",), out="o", tags=(), count=2)
    assert runner.invoke(tiny, ["run", "-o", "o"]).exit_code == 2  # the argument is required
    result = runner.invoke(tiny, ["run", "--help"], env={"COLUMNS": "200"})
    assert "─ Arguments ─" in result.output and "the inputs" in result.output
    assert "<path>" in result.output and "--count" in result.output
