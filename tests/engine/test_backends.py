import numpy as np
import pytest
import torch

from hoposer.engine.backends import (
    Backend,
    BackendOptions,
    OnnxRuntimeBackend,
    TorchBackend,
    open_backend,
    random_model,
    resolve_backend,
    validate_inputs,
)
from hoposer.engine.export import example_inputs
from hoposer.errors import HoposerError
from hoposer.model.checkpoint import save_checkpoint
from hoposer.threads import resolve_threads

S = 128


def good():
    return example_inputs(S, 2)


@pytest.fixture(scope="module")
def backends(small_model, small_onnx):
    return [TorchBackend(small_model, "cpu"), OnnxRuntimeBackend(small_onnx, "cpu")]


def test_backends_follow_the_protocol(backends, small_config):
    r = small_config.roi_size
    for backend in backends:
        assert isinstance(backend, Backend)
        assert backend.input_size == S
        out = backend.run(*good())
        assert out.object_points.shape == (2, r, r, 21, 2)
        assert all(isinstance(t, torch.Tensor) for t in out)


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda i, h, o: (i[:, :2], h, o), r"shape \(B, 3, 128, 128\)"),
        (lambda i, h, o: (i[..., :64, :64], h, o), r"shape \(B, 3, 128, 128\)"),
        (lambda i, h, o: (i.double(), h, o), "float32"),
        (lambda i, h, o: ((i * 255).to(torch.uint8), h, o), "float32"),
        (lambda i, h, o: (i * 255, h, o), r"\[0, 1\]"),
        (lambda i, h, o: (i.index_fill(0, torch.tensor([0]), float("nan")), h, o), r"\[0, 1\]"),
        (lambda i, h, o: (i[:0], h[:0], o[:0]), "empty batch"),
        (lambda i, h, o: (i, h[:1], o), r"hand_boxes must have shape \(2, 4\)"),
        (lambda i, h, o: (i, h, o[:, :3]), r"object_boxes must have shape \(2, 4\)"),
        (lambda i, h, o: (i, h.long(), o), "floating point"),
        (lambda i, h, o: (i, h, o.index_fill(0, torch.tensor([1]), float("inf"))), "finite"),
        (lambda i, h, o: (i, "boxes", o), "numpy array or a torch tensor"),
        (lambda i, h, o: (i.tolist(), h, o), "numpy array or a torch tensor"),
    ],
)
def test_bad_inputs_are_hoposer_errors_in_every_backend(backends, mutate, message):
    for backend in backends:
        with pytest.raises(HoposerError, match=message):
            backend.run(*mutate(*good()))


@pytest.mark.parametrize(
    ("box", "message"),
    [
        ([10.0, 10.0, 10.0, 50.0], r"hand_boxes\[1\] = \[10, 10, 10, 50\] is 0 × 40 px"),
        ([50.0, 10.0, 10.0, 50.0], "empty or inverted"),
        ([10.0, 10.0, 10.5, 50.0], "0.5 × 40 px"),
        ([-50.0, -50.0, -10.0, -10.0], "outside the image"),
        ([200.0, 10.0, 260.0, 50.0], "outside the image"),
        ([127.5, 127.5, 140.0, 140.0], "outside the image"),  # 0.25 px² inside
    ],
)
def test_degenerate_and_outside_boxes_are_named(backends, box, message):
    images, hand, obj = good()
    hand[1] = torch.tensor(box)
    for backend in backends:
        with pytest.raises(HoposerError, match=message):
            backend.run(images, hand, obj)


def test_boxes_past_the_edge_are_legal_and_unchanged(backends):
    images, hand, obj = good()
    hand[0] = torch.tensor([-20.0, -10.0, 60.0, 70.0])  # partly outside: kept as is
    _, checked, _ = validate_inputs(images, hand, obj, S)
    assert torch.equal(checked, hand)
    torch_out, ort_out = (b.run(images, hand, obj) for b in backends)
    np.testing.assert_allclose(ort_out.joints_2d, torch_out.joints_2d, atol=1e-4)


def test_numpy_inputs_and_float64_boxes_are_accepted():
    images, hand, obj = good()
    out = validate_inputs(images.numpy(), hand.double().numpy(), obj.numpy(), S)
    assert [t.dtype for t in out] == [torch.float32] * 3


def test_open_backend_by_name_and_auto(small_model, small_onnx, tmp_path):
    weights = save_checkpoint(small_model, tmp_path / "w.safetensors")
    assert open_backend("torch", weights=weights, device="cpu").name == "torch"
    ort = open_backend("onnxruntime", onnx=small_onnx, weights=weights)
    assert ort.name == "onnxruntime" and ort.device.type == "cpu"
    assert open_backend("auto", onnx=small_onnx).name == "onnxruntime"
    # On a CPU, weights alone go to ONNX Runtime through a cached export.
    expected = "torch" if torch.cuda.is_available() else "onnxruntime"
    assert resolve_backend("auto", weights=weights) == expected
    # auto never picks tensorrt without a plan
    assert resolve_backend("auto", weights=weights, onnx=small_onnx) == "onnxruntime"


def test_weights_alone_are_exported_once_into_the_cache(small_model, tmp_path, monkeypatch):
    monkeypatch.setenv("HOPOSER_CACHE_DIR", str(tmp_path / "cache"))
    weights = save_checkpoint(small_model, tmp_path / "w.safetensors")
    first = open_backend("onnxruntime", weights=weights)
    (cached,) = (tmp_path / "cache" / "onnx").glob("*.onnx")
    stamp = cached.stat().st_mtime_ns
    second = open_backend("onnxruntime", weights=weights)
    assert cached.stat().st_mtime_ns == stamp  # reused, not exported again
    images, hand, obj = good()
    np.testing.assert_allclose(
        first.run(images, hand, obj).theta, second.run(images, hand, obj).theta, atol=0
    )


def test_open_backend_errors(small_onnx, small_config, tmp_path):
    with pytest.raises(HoposerError, match="did you mean 'onnxruntime'"):
        open_backend("onnxruntme", onnx=small_onnx)
    with pytest.raises(HoposerError, match="no backend can run"):
        open_backend("auto")
    with pytest.raises(HoposerError, match="needs an .onnx file"):
        open_backend("onnxruntime", config="lite")
    with pytest.raises(HoposerError, match="needs a CUDA device"):
        open_backend("torch", config="lite", device="cpu", options=BackendOptions("fp16"))
    other = save_checkpoint(random_model(small_config, seed=1), tmp_path / "other.safetensors")
    with pytest.raises(HoposerError, match="other weights"):
        open_backend("onnxruntime", onnx=small_onnx, weights=other)
    with pytest.raises(HoposerError, match="'cpu' or 'cuda'"):
        OnnxRuntimeBackend(small_onnx, device="tpu")


def test_onnxruntime_session_settings(small_onnx):
    import onnxruntime as ort

    backend = OnnxRuntimeBackend(small_onnx, "cpu", BackendOptions(threads=1))
    opts = backend.session_options
    assert opts.graph_optimization_level == ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    assert opts.execution_mode == ort.ExecutionMode.ORT_SEQUENTIAL
    assert opts.intra_op_num_threads == 1
    assert backend.session.get_providers() == ["CPUExecutionProvider"]
    default = OnnxRuntimeBackend(small_onnx, "cpu").session_options
    assert default.intra_op_num_threads == resolve_threads()  # the machine's, not ORT's guess


def test_threads_option_sizes_the_torch_pool(small_model):
    before = torch.get_num_threads()
    try:
        TorchBackend(small_model, "cpu", BackendOptions(threads=2))
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_torch_paths_match_cpu(small_model):
    import copy

    cpu = TorchBackend(copy.deepcopy(small_model), "cpu")
    inputs = example_inputs(S, 2)
    expected = cpu.run(*inputs)
    # fp32 on CUDA follows torch's defaults (TF32 convolutions); exact fp32 without TF32.
    with torch.backends.cudnn.flags(enabled=True, allow_tf32=False):
        gpu = TorchBackend(copy.deepcopy(small_model), "cuda")
        _assert_close(gpu.run(*inputs), expected, 1e-3)
    for options, atol in (
        (BackendOptions(), 3e-2),
        (BackendOptions(channels_last=True), 3e-2),
        (BackendOptions(precision="fp16"), 1e-1),
        (BackendOptions(precision="bf16"), 2.5e-1),
    ):
        gpu = TorchBackend(copy.deepcopy(small_model), "cuda", options)
        _assert_close(gpu.run(*inputs), expected, atol)
    with pytest.raises(HoposerError, match="images must be"):
        gpu.run(inputs[0].cuda() * 2, inputs[1].cuda(), inputs[2].cuda())


def _assert_close(got, expected, atol):
    for name, a, b in zip(got._fields, got, expected, strict=True):
        assert a.device.type == "cuda" and a.dtype == torch.float32
        np.testing.assert_allclose(a.cpu().numpy(), b.numpy(), atol=atol, rtol=0, err_msg=name)
