import dataclasses
import importlib.util
import json

import onnx
import pytest
import torch

from hoposer.engine.backends import open_backend
from hoposer.engine.backends.tensorrt import (
    TORCH_DTYPES,
    TRT_DTYPE_NAMES,
    TensorSpec,
    binding_plan,
    check_specs,
    specs_from_onnx,
)
from hoposer.engine.export import INPUT_NAMES, OUTPUT_NAMES
from hoposer.engine.plan import (
    build_engine,
    check_plan,
    plan_mismatches,
    plan_sidecar_path,
    rebuild_command,
)
from hoposer.errors import HoposerError

HAS_TENSORRT = importlib.util.find_spec("tensorrt") is not None


@pytest.fixture(scope="module")
def specs(small_onnx):
    return specs_from_onnx(onnx.load(str(small_onnx)))


def test_specs_from_the_exported_graph(specs, small_config):
    r = small_config.roi_size
    by_name = {s.name: s for s in specs}
    assert [s.name for s in specs if s.is_input] == list(INPUT_NAMES)
    assert [s.name for s in specs if not s.is_input] == list(OUTPUT_NAMES)
    assert by_name["images"] == TensorSpec("images", (-1, 3, 128, 128), "float32", True)
    assert by_name["object_points"].shape == (-1, r, r, 21, 2)
    assert by_name["theta"] == TensorSpec("theta", (-1, 48), "float32", False)
    check_specs(specs, 128)


@pytest.mark.parametrize("batch", [1, 8])
def test_binding_plan_resolves_the_batch(specs, batch, small_config):
    r = small_config.roi_size
    plan = {a.name: a for a in binding_plan(specs, batch, max_batch=8)}
    assert plan["images"].shape == (batch, 3, 128, 128) and plan["images"].is_input
    assert plan["object_confidence"].shape == (batch, r, r, 21)
    assert plan["beta"].dtype == torch.float32 and not plan["beta"].is_input
    assert plan["joints_2d"].nbytes == batch * 21 * 2 * 4


def test_binding_plan_refusals(specs):
    with pytest.raises(HoposerError, match="outside this engine's range 1..8"):
        binding_plan(specs, 9, max_batch=8)
    with pytest.raises(HoposerError, match="outside"):
        binding_plan(specs, 0)
    with pytest.raises(HoposerError, match="only dim 0 may be dynamic"):
        binding_plan([TensorSpec("x", (-1, -1), "float32", True)], 1)
    with pytest.raises(HoposerError, match="fixed batch of 4"):
        binding_plan([TensorSpec("x", (4, 3), "float32", True)], 2)
    with pytest.raises(HoposerError, match="unsupported dtype"):
        binding_plan([TensorSpec("x", (-1, 3), "complex64", True)], 2)


def test_check_specs_refusals(specs):
    with pytest.raises(HoposerError, match="not hoposer's"):
        check_specs([s for s in specs if s.name != "theta"], 128)
    renamed = [dataclasses.replace(s, name="image") if s.name == "images" else s for s in specs]
    with pytest.raises(HoposerError, match="not hoposer's"):
        check_specs(renamed, 128)
    half = [dataclasses.replace(s, dtype="float16") if s.is_input else s for s in specs]
    with pytest.raises(HoposerError, match="expected float32"):
        check_specs(half, 128)
    with pytest.raises(HoposerError, match=r"expected \(B, 3, 256, 256\)"):
        check_specs(specs, 256)


def test_every_tensorrt_dtype_maps_to_torch():
    assert set(TRT_DTYPE_NAMES.values()) <= set(TORCH_DTYPES)


def test_plan_mismatches_and_rebuild_command(tmp_path):
    here = {"tensorrt_version": "10.3.0", "gpu_name": "NVIDIA H100", "compute_capability": "9.0"}
    recorded = {
        "format": "hoposer-tensorrt-plan",
        **here,
        "onnx_sha256": "abc",
        "onnx_file": "lite.onnx",
        "precision": "fp16",
        "max_batch": 4,
    }
    assert plan_mismatches(recorded, here, "abc") == []
    assert plan_mismatches(recorded, here) == []
    other_trt = plan_mismatches(recorded, {**here, "tensorrt_version": "10.8.0"})
    assert other_trt == ["it was built with TensorRT 10.3.0, this is TensorRT 10.8.0"]
    other_gpu = plan_mismatches(
        recorded, {**here, "gpu_name": "NVIDIA RTX 4090", "compute_capability": "8.9"}
    )
    assert len(other_gpu) == 1 and "RTX 4090" in other_gpu[0] and "9.0" in other_gpu[0]
    assert plan_mismatches(recorded, here, "def") == [
        "it was built from another ONNX file (sha256 differs)"
    ]
    assert len(plan_mismatches({}, here)) == 3
    command = rebuild_command(recorded, tmp_path / "lite.plan")
    assert command == (
        f"hoposer engine build lite.onnx --out {tmp_path / 'lite.plan'} --precision fp16 "
        "--max-batch 4"
    )
    assert plan_sidecar_path(tmp_path / "lite.plan") == tmp_path / "lite.plan.json"


@pytest.mark.skipif(HAS_TENSORRT, reason="checks the message shown when TensorRT is missing")
def test_tensorrt_missing_says_how_to_install(small_onnx, tmp_path):
    plan = tmp_path / "m.plan"
    plan.write_bytes(b"plan")
    plan_sidecar_path(plan).write_text(json.dumps({"format": "hoposer-tensorrt-plan"}))
    for call in (
        lambda: open_backend("tensorrt", plan=plan),
        lambda: check_plan(plan),
        lambda: build_engine(small_onnx, tmp_path / "x.plan"),
    ):
        with pytest.raises(HoposerError) as err:
            call()
        assert 'pip install "hoposer[tensorrt]"' in str(err.value)
        assert "--extra-index-url https://pypi.nvidia.com tensorrt" in str(err.value)


def test_tensorrt_backend_needs_a_plan():
    with pytest.raises(HoposerError, match="needs a plan"):
        open_backend("tensorrt")


def test_missing_plan_and_sidecar_are_clear(tmp_path):
    with pytest.raises(HoposerError, match="does not exist; build it"):
        check_plan(tmp_path / "none.plan")
    plan = tmp_path / "m.plan"
    plan.write_bytes(b"plan")
    with pytest.raises(HoposerError, match="missing or unreadable; rebuild"):
        check_plan(plan)
