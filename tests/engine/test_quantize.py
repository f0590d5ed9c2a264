"""Static int8 quantisation: calibration on real crops, the accuracy gate, the CLI and the bench."""

import dataclasses
import json

import numpy as np
import onnx
import pytest

from hoposer.cli import main
from hoposer.engine.backends import OnnxRuntimeBackend, random_model
from hoposer.engine.bench import backend_label, max_abs_diff
from hoposer.engine.export import example_inputs, export_onnx, read_onnx_info
from hoposer.engine.quantize import (
    QUANTIZATION_KEY,
    QUANTIZED_OPS,
    CropReader,
    Tolerance,
    check_accuracy,
    float_head_nodes,
    quantization_record,
    quantize_onnx,
)
from hoposer.errors import HoposerError
from hoposer.model import get_config
from hoposer.model.checkpoint import save_checkpoint
from hoposer.model.hand import build_hand_model
from hoposer.train.data.dataset import HandObjectDataset
from hoposer.train.synth import SynthOptions, generate

SIZE = 96


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("quant-synth")
    generate(SynthOptions(out=str(root), frames=6, seed=0, size=SIZE, workers=1))
    generate(SynthOptions(out=str(root), frames=4, seed=1, size=SIZE, split="evaluation",
                          workers=1))  # fmt: skip
    return root


@pytest.fixture(scope="module")
def model():
    return random_model(dataclasses.replace(get_config("lite"), input_size=SIZE))


@pytest.fixture(scope="module")
def fp32_onnx(model, tmp_path_factory):
    return export_onnx(model, tmp_path_factory.mktemp("fp32") / "lite96.onnx")


@pytest.fixture(scope="module")
def int8_onnx(fp32_onnx, data, tmp_path_factory):
    reader = CropReader(HandObjectDataset(data, "train", input_size=SIZE), count=4)
    out = tmp_path_factory.mktemp("int8") / "lite96.int8.onnx"
    return quantize_onnx(fp32_onnx, out, reader, extra_metadata={"calibration": "test"})


def test_crop_reader_feeds_network_inputs_spread_over_the_split(data):
    dataset = HandObjectDataset(data, "train", input_size=SIZE)
    reader = CropReader(dataset, count=3)
    assert reader.indices == [0, 2, 5] or reader.indices == [0, 3, 5]
    feeds = list(iter(reader.get_next, None))
    assert len(feeds) == 3 and reader.used == 3
    for feed in feeds:
        assert feed["images"].shape == (1, 3, SIZE, SIZE) and feed["images"].dtype == np.float32
        assert feed["images"].min() >= 0.0 and feed["images"].max() <= 1.0
        assert feed["hand_boxes"].shape == (1, 4) and feed["object_boxes"].shape == (1, 4)
    reader.rewind()
    np.testing.assert_array_equal(reader.get_next()["images"], feeds[0]["images"])
    with pytest.raises(HoposerError, match="at least 1"):
        CropReader(dataset, count=0)


def test_float_head_nodes_are_the_last_compute_node_before_each_output(fp32_onnx):
    proto = onnx.load(str(fp32_onnx))
    heads = float_head_nodes(proto)
    by_name = {n.name: n for n in proto.graph.node}
    assert heads and all(by_name[name].op_type in QUANTIZED_OPS for name in heads)
    # Every output is reached from some head without passing another compute node.
    assert len(heads) < sum(n.op_type in QUANTIZED_OPS for n in proto.graph.node)


@pytest.mark.slow
def test_int8_file_keeps_the_contract_and_stays_close_to_fp32(fp32_onnx, int8_onnx):
    info, proto = read_onnx_info(int8_onnx)  # hoposer's metadata and I/O names survive
    record = quantization_record(info)
    assert record["format"] == "qdq-int8" and record["calibration_frames"] == 4
    assert record["float_nodes"] == float_head_nodes(onnx.load(str(fp32_onnx)))
    ops = {n.op_type for n in proto.graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    fp32, int8 = OnnxRuntimeBackend(fp32_onnx, "cpu"), OnnxRuntimeBackend(int8_onnx, "cpu")
    assert backend_label(int8) == "onnxruntime-int8" and backend_label(fp32) == "onnxruntime"
    inputs = example_inputs(SIZE, batch=2)
    diff = max_abs_diff(int8.run(*inputs), fp32.run(*inputs))
    assert all(np.isfinite(v) for v in diff.values())
    assert 0 < max(diff.values()) < 1.0  # really quantised, not wildly off (random weights)
    with pytest.raises(HoposerError, match="already quantised"):
        quantize_onnx(int8_onnx, int8_onnx.parent / "again.onnx", CropReader([None], 1))


@pytest.mark.slow
def test_accuracy_gate_accepts_within_and_rejects_beyond_the_tolerance(fp32_onnx, data):
    fp32 = OnnxRuntimeBackend(fp32_onnx, "cpu")
    held_out = HandObjectDataset(data, "evaluation", input_size=SIZE)
    hand = build_hand_model("standin")
    same = check_accuracy(fp32, fp32, held_out, hand)
    assert same.accepted and same.frames == 4
    # The object is judged as `train eval` scores it: ADD-S for the symmetric synthetic objects.
    assert set(same.delta) >= {"pa_mpjpe_mm", "joint_2d_px", "pose_0.1d"}
    assert all(v == 0 for v in same.delta.values()) and same.pose_gap["joint_3d_mm"] == 0
    strict = check_accuracy(fp32, fp32, held_out, hand, Tolerance(pa_mpjpe_mm=-1.0))
    assert not strict.accepted and strict.reasons[0].startswith("pa_mpjpe_mm")


@pytest.mark.slow
def test_engine_quantize_cli_writes_only_accepted_files_and_bench_reports_them(
    model, data, tmp_path, capsys
):
    weights = save_checkpoint(model, tmp_path / "lite96.safetensors", {"hand_model": "standin"})
    out = tmp_path / "lite96.int8.onnx"
    base = [
        "engine", "quantize", "--weights", str(weights), "--calib", str(data), "--out", str(out),
        "--calib-frames", "3", "--holdout-frames", "3", "--threads", "1",
    ]  # fmt: skip
    assert main([*base, "--max-pa-mpjpe-mm", "-1000"]) == 2
    err = capsys.readouterr().err
    assert "breaks the tolerance" in err and "nothing written" in err and not out.exists()
    assert main([*base, "--holdout-split", "train"]) == 2
    assert "same frames" in capsys.readouterr().err
    assert main(base) == 0
    printed = capsys.readouterr().out
    assert "accepted" in printed and out.is_file()
    accuracy = quantization_record(read_onnx_info(out)[0])["accuracy"]
    assert accuracy["accepted"] and accuracy["frames"] == 3

    bench_json = tmp_path / "bench.json"
    code = main(["engine", "bench", "--weights", str(weights), "--backend", "onnxruntime",
                 "--quantized", str(out), "--batch", "1", "--iterations", "2", "--warmup", "1",
                 "--threads", "1", "--out", str(bench_json)])  # fmt: skip
    assert code == 0
    printed = capsys.readouterr().out
    assert "| onnxruntime-int8 |" in printed and "accuracy on 3 held-out frames" in printed
    rows = json.loads(bench_json.read_text())["rows"]
    assert [r["backend"] for r in rows] == ["onnxruntime", "onnxruntime-int8"]
    assert "--quantized" in json.loads(bench_json.read_text())["command"]
    assert QUANTIZATION_KEY in {p.key for p in onnx.load(str(out)).metadata_props}
