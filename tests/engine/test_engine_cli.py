import json

import onnx

from hoposer.cli import main


def test_engine_export_writes_an_onnx_file(tmp_path, capsys):
    out = tmp_path / "lite.onnx"
    code = main(["engine", "export", "--config", "lite", "--input-size", "128", "--out", str(out)])
    assert code == 0
    assert "wrote" in capsys.readouterr().out
    meta = {p.key: p.value for p in onnx.load(str(out)).metadata_props}
    assert meta["hoposer_input_size"] == "128"


def test_engine_export_user_errors_are_one_line(tmp_path, capsys):
    assert main(["engine", "export", "--out", str(tmp_path / "x.onnx")]) == 2
    assert "exactly one of --weights" in capsys.readouterr().err
    code = main(["engine", "export", "--weights", str(tmp_path / "no.safetensors"), "-o", "x"])
    assert code == 2
    assert "does not exist" in capsys.readouterr().err


def test_engine_bench_prints_a_table_and_saves_json(tmp_path, capsys):
    out = tmp_path / "bench.json"
    code = main(
        [
            "engine", "bench", "--config", "lite", "--input-size", "64",
            "--backend", "onnxruntime,torch", "--batch", "1,2", "--iterations", "2",
            "--warmup", "1", "--device", "cpu", "--out", str(out),
        ]
    )  # fmt: skip
    assert code == 0
    table = capsys.readouterr().out
    assert "| onnxruntime |" in table and "| torch |" in table
    data = json.loads(out.read_text())
    assert len(data["rows"]) == 4 and data["command"].startswith("hoposer engine bench")
    for row in data["rows"]:
        assert row["p50_ms"] > 0 and row["peak_memory_mb"] > 0
        assert max(row["max_abs_diff"].values()) < 1e-4


def test_engine_bench_rejects_unknown_backend(capsys):
    code = main(["engine", "bench", "--config", "lite", "--backend", "tensorrtt"])
    assert code == 2
    assert "did you mean 'tensorrt'" in capsys.readouterr().err


def test_engine_build_without_tensorrt_is_one_line(tmp_path, capsys):
    import importlib.util

    if importlib.util.find_spec("tensorrt") is not None:
        return
    assert main(["engine", "build", str(tmp_path / "m.onnx"), "--out", str(tmp_path / "p")]) == 2
    assert 'pip install "hoposer[tensorrt]"' in capsys.readouterr().err
