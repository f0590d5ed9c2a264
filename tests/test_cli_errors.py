"""Every case that once ended in a traceback is one line on stderr with exit code 2 (issue 13).

Each case is a real invocation of the `hoposer` command (`hoposer.cli.main`). The process runs as
root here, where folder permissions do not stop writes, so "an unwritable folder" is one inside
`/proc` (no file can be created there) or below a regular file.
"""

import pytest

from hoposer.cli import main


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    a_file = root / "a_file"
    a_file.write_text("not a folder")
    garbage_key = root / "garbage.key_secret"
    garbage_key.write_text("this is not a CURVE key\n")
    keys = root / "keys"
    assert main(["keys", str(keys)]) == 0
    views = root / "views"
    assert main(["calib", "synth", "--out", str(views), "--views", "3", "--seed", "1"]) == 0
    return {
        "root": root,
        "file": a_file,
        "garbage": garbage_key,
        "keys": keys,
        "views": views,
        "unwritable": "/proc/hoposer-unwritable",
        "under_file": a_file / "sub",
    }


CASES = {
    # (arguments, words the one-line error must contain)
    "export into /proc": (
        ["engine", "export", "--config", "lite", "--out", "{unwritable}/m.onnx"],
        "cannot write",
    ),
    "export into /proc itself": (
        ["engine", "export", "--config", "lite", "--out", "/proc/m.onnx"],
        "cannot write",
    ),
    "export below a file": (
        ["engine", "export", "--config", "lite", "--out", "{under_file}/m.onnx"],
        "cannot write",
    ),
    "train fit into /proc": (
        ["train", "fit", "--data", "{views}", "--out", "{unwritable}/run"],
        "cannot write",
    ),
    "train fit on a missing data folder": (
        ["train", "fit", "--data", "{root}/missing", "--out", "{root}/run_missing"],
        "does not exist",
    ),
    "train fit with an unknown loss term": (
        [
            "train",
            "fit",
            "--data",
            "{views}",
            "--out",
            "{root}/run_term",
            "--loss-weight",
            "heatmap=300",
        ],
        "'heatmap' is not a loss term",
    ),  # fmt: skip
    "train fit with a negative loss weight": (
        [
            "train",
            "fit",
            "--data",
            "{views}",
            "--out",
            "{root}/run_weight",
            "--loss-weight",
            "heatmaps=-1",
        ],
        "must be a number ≥ 0",
    ),  # fmt: skip
    "train synth into /proc": (
        ["train", "synth", "--out", "{unwritable}/synth", "--frames", "1"],
        "cannot write",
    ),
    "calib camera into /proc": (
        [
            "calib",
            "camera",
            "--images",
            "{views}",
            "--board",
            "checker:9x6",
            "--square",
            "0.024",
            "--out",
            "{unwritable}/cam.yaml",
        ],
        "cannot write",
    ),  # fmt: skip
    "calib board into /proc": (["calib", "board", "--out", "{unwritable}/b.pdf"], "cannot write"),
    "keys into /proc": (["keys", "{unwritable}/keys"], "cannot write"),
    "keys onto a file": (["keys", "{file}"], "not a folder"),
    "keys over existing keys": (["keys", "{keys}"], "--force"),
    "live with a garbage CURVE key": (
        [
            "live",
            "--camera",
            "0",
            "--no-view",
            "--curve-secret",
            "{garbage}",
            "--curve-clients",
            "{keys}",
            "--publish",
            "tcp://127.0.0.1:5999",
        ],
        "CURVE key",
    ),  # fmt: skip
    "listen with a garbage CURVE key": (
        [
            "listen",
            "--curve-secret",
            "{garbage}",
            "--curve-server",
            "{keys}/server.key",
            "--timeout",
            "0.1",
        ],
        "CURVE key",
    ),  # fmt: skip
    "listen with a garbage server key": (
        [
            "listen",
            "--curve-secret",
            "{keys}/client.key_secret",
            "--curve-server",
            "{garbage}",
            "--timeout",
            "0.1",
        ],
        "CURVE key",
    ),  # fmt: skip
    "publish on port abc": (
        ["live", "--camera", "0", "--no-view", "--publish", "tcp://127.0.0.1:abc"],
        "port",
    ),
    "publish on port 99999": (
        ["live", "--camera", "0", "--no-view", "--publish", "tcp://127.0.0.1:99999"],
        "port",
    ),
    "listen on port abc": (["listen", "tcp://127.0.0.1:abc", "--timeout", "0.1"], "port"),
    "listen on port 0": (["listen", "tcp://127.0.0.1:0", "--timeout", "0.1"], "port"),
    "fov 500": (["video", "{root}/missing.mp4", "--out", "{root}/o.mp4", "--fov", "500"], "--fov"),
    "fov 0": (["video", "{root}/missing.mp4", "--out", "{root}/o.mp4", "--fov", "0"], "--fov"),
    "fov nan": (["live", "--camera", "0", "--no-view", "--fov", "nan"], "--fov"),
    "max-frames 0": (
        ["video", "{root}/missing.mp4", "--out", "{root}/o.mp4", "--max-frames", "0"],
        "--max-frames",
    ),
    "max-frames -1": (["live", "--camera", "0", "--no-view", "--max-frames", "-1"], "--max-frames"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_each_case_is_one_line_and_exit_2(case, files, capsys):
    args, expected = CASES[case]
    code = main([a.format(**files) for a in args])
    captured = capsys.readouterr()
    err = captured.err.strip().splitlines()
    assert code == 2, (code, captured.err[-2000:])
    assert err and err[-1].startswith("hoposer: error:"), captured.err[-2000:]
    assert "Traceback" not in captured.err
    assert expected in err[-1], err[-1]


def test_a_failed_training_start_leaves_no_empty_run_folder(files):
    assert main(["train", "fit", "--data", str(files["root"] / "missing"),
                 "--out", str(files["root"] / "empty_run")]) == 2  # fmt: skip
    assert not (files["root"] / "empty_run").exists()
