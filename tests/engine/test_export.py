import dataclasses
import json

import numpy as np
import onnx
import pytest
import torch

from hoposer import __version__
from hoposer.engine.backends import OnnxRuntimeBackend, TorchBackend, random_model
from hoposer.engine.export import (
    INPUT_NAMES,
    OUTPUT_NAMES,
    TENSORRT_SUPPORTED_OPS,
    example_inputs,
    export_onnx,
    read_onnx_info,
    unsupported_ops,
)
from hoposer.errors import HoposerError
from hoposer.model import get_config
from hoposer.model.checkpoint import tensors_digest


def test_export_is_valid_named_and_described(small_model, small_onnx):
    proto = onnx.load(str(small_onnx))
    onnx.checker.check_model(proto, full_check=True)
    assert tuple(i.name for i in proto.graph.input) == INPUT_NAMES
    assert tuple(o.name for o in proto.graph.output) == OUTPUT_NAMES
    for value in (*proto.graph.input, *proto.graph.output):
        assert value.type.tensor_type.shape.dim[0].dim_param == "batch"
    meta = {p.key: p.value for p in proto.metadata_props}
    assert json.loads(meta["hoposer_config"]) == json.loads(small_model.config.to_json())
    assert meta["hoposer_weights_sha256"] == tensors_digest(small_model.state_dict())
    assert meta["hoposer_version"] == __version__
    assert meta["hoposer_input_size"] == "128"
    assert meta["hoposer_max_batch"] == "8"
    info, _ = read_onnx_info(small_onnx)
    assert info.config == small_model.config and info.opset == 17


@pytest.mark.parametrize("name", ["lite", "official"])
def test_exported_ops_are_tensorrt_parsable(name, tmp_path):
    config = dataclasses.replace(get_config(name), input_size=128)
    path = export_onnx(random_model(config), tmp_path / f"{name}.onnx", check_tensorrt=False)
    proto = onnx.load(str(path))
    ops = {n.op_type for n in proto.graph.node}
    assert {"RoiAlign", "Conv"} <= ops
    assert unsupported_ops(proto) == set()
    assert ops <= TENSORRT_SUPPORTED_OPS


def test_unsupported_ops_flags_foreign_and_unknown_ops():
    nodes = [
        onnx.helper.make_node("Relu", ["x"], ["a"]),
        onnx.helper.make_node("Unique", ["a"], ["b"]),
        onnx.helper.make_node("Foo", ["b"], ["y"], domain="com.example"),
    ]
    value = onnx.helper.make_tensor_value_info
    graph = onnx.helper.make_graph(
        nodes,
        "g",
        [value("x", onnx.TensorProto.FLOAT, [1])],
        [value("y", onnx.TensorProto.FLOAT, [1])],
    )
    assert unsupported_ops(onnx.helper.make_model(graph)) == {"Unique", "com.example::Foo"}


@pytest.mark.parametrize("batch", [1, 3])
def test_onnxruntime_matches_torch_fp32(small_model, small_onnx, batch):
    torch_backend = TorchBackend(small_model, "cpu")
    ort_backend = OnnxRuntimeBackend(small_onnx, "cpu")
    inputs = example_inputs(128, batch, seed=batch)
    expected = torch_backend.run(*inputs)
    got = ort_backend.run(*(t.numpy() for t in inputs))  # numpy in works as well
    for name, a, b in zip(OUTPUT_NAMES, got, expected, strict=True):
        assert isinstance(a, torch.Tensor) and a.dtype == torch.float32
        assert a.shape == b.shape, name
        np.testing.assert_allclose(a.numpy(), b.numpy(), atol=1e-4, rtol=0, err_msg=name)


def test_export_restores_training_mode_and_refuses_bad_arguments(small_config, tmp_path):
    model = random_model(small_config).train()
    with pytest.raises(HoposerError, match="opset"):
        export_onnx(model, tmp_path / "m.onnx", opset=7)
    with pytest.raises(HoposerError, match="does not exist"):
        export_onnx(model, tmp_path / "missing" / "m.onnx")
    export_onnx(model, tmp_path / "m.onnx")
    assert model.training


def test_missing_corrupt_and_foreign_onnx_files_are_clear_errors(small_onnx, tmp_path):
    with pytest.raises(HoposerError, match="does not exist"):
        OnnxRuntimeBackend(tmp_path / "nope.onnx")
    with pytest.raises(HoposerError, match="directory"):
        OnnxRuntimeBackend(tmp_path)
    truncated = tmp_path / "truncated.onnx"
    truncated.write_bytes(small_onnx.read_bytes()[:5000])
    with pytest.raises(HoposerError, match="export it again"):
        OnnxRuntimeBackend(truncated)
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"\xff\x00not an onnx file" * 10)
    with pytest.raises(HoposerError, match="export it again"):
        OnnxRuntimeBackend(garbage)
    empty = tmp_path / "empty.onnx"
    empty.write_bytes(b"")
    with pytest.raises(HoposerError, match="export it again"):
        OnnxRuntimeBackend(empty)
    proto = onnx.load(str(small_onnx))
    del proto.metadata_props[:]
    foreign = tmp_path / "foreign.onnx"
    onnx.save(proto, str(foreign))
    with pytest.raises(HoposerError, match="not a hoposer export"):
        OnnxRuntimeBackend(foreign)
