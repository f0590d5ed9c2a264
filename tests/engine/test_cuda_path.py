"""The torch backend's GPU path: option planning and host staging on any machine, the CUDA graph
and pinned transfers on a GPU (marked `gpu`, skipped without one)."""

import numpy as np
import pytest
import torch

from hoposer.engine.backends import BackendOptions, TorchBackend
from hoposer.engine.cuda_path import GraphRunner, HostStaging, plan_gpu_path, to_device
from hoposer.engine.export import example_inputs
from hoposer.errors import HoposerError

CPU, CUDA = torch.device("cpu"), torch.device("cuda")


def test_cpu_path_uses_none_of_the_gpu_machinery():
    path = plan_gpu_path(CPU)
    assert not path.pinned_staging and not path.cuda_graph and path.autocast is None
    assert plan_gpu_path(CPU, channels_last=True).channels_last


def test_gpu_path_plans_pinned_staging_autocast_and_graphs():
    # Planning is pure: a CUDA device object needs no GPU.
    path = plan_gpu_path(CUDA, "fp16", channels_last=True, cuda_graph=True)
    assert path.pinned_staging and path.cuda_graph and path.channels_last
    assert path.autocast is torch.float16
    assert plan_gpu_path(CUDA, "bf16").autocast is torch.bfloat16
    assert not plan_gpu_path(CUDA).cuda_graph


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"precision": "fp16"}, "needs a CUDA device"),
        ({"cuda_graph": True}, "CUDA graphs need a CUDA device"),
        ({"precision": "int4"}, "fp32, fp16 or bf16"),
    ],
)
def test_impossible_options_are_one_line_errors(kwargs, message):
    with pytest.raises(HoposerError, match=message):
        plan_gpu_path(CPU, **kwargs)


def test_torch_backend_on_cpu_refuses_cuda_graphs(small_model):
    with pytest.raises(HoposerError, match="CUDA graphs"):
        TorchBackend(small_model, "cpu", BackendOptions(cuda_graph=True))
    with pytest.raises(HoposerError, match="CUDA graphs need a CUDA device"):
        GraphRunner(small_model, CPU)


def test_host_staging_reuses_one_buffer_per_slot_and_shape():
    staging = HostStaging(pin=False)
    a = torch.arange(12.0).reshape(3, 4)
    first = staging.stage("images", a)
    again = staging.stage("images", a + 1)
    assert again.data_ptr() == first.data_ptr() and staging.allocations == 1
    torch.testing.assert_close(again, a + 1)  # the buffer holds the newest frame
    staging.stage("boxes", torch.zeros(1, 4))
    staging.stage("images", torch.zeros(2, 3, 4))  # a new shape: a new buffer
    staging.stage("images", torch.zeros(2, 3, 4, dtype=torch.float64))  # a new dtype too
    assert staging.allocations == 4
    on_device = torch.empty(2, 2, device="meta")  # not on the CPU: passed through untouched
    assert staging.stage("images", on_device) is on_device


def test_to_device_on_the_cpu_is_a_plain_move(small_config):
    names = ("images", "hand", "object")
    inputs = dict(zip(names, example_inputs(small_config.input_size), strict=True))
    staging = HostStaging(pin=False)
    moved = to_device(staging, inputs, CPU)
    assert staging.allocations == 0
    for name, tensor in inputs.items():
        assert torch.equal(moved[name], tensor)


def test_cpu_results_are_unchanged_by_the_gpu_path(small_model, small_config):
    inputs = example_inputs(small_config.input_size, batch=2)
    backend = TorchBackend(small_model, "cpu", BackendOptions(channels_last=True))
    with torch.inference_mode():
        expected = small_model(*inputs)
    for got, want in zip(backend.run(*inputs), expected, strict=True):
        torch.testing.assert_close(got, want.float(), rtol=1e-4, atol=1e-5)


@pytest.mark.gpu
def test_cuda_graph_replays_batch_one_like_eager(small_model, small_config):
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    eager = TorchBackend(small_model, "cuda")
    graphed = TorchBackend(small_model, "cuda", BackendOptions(cuda_graph=True))
    for seed in (0, 1, 2):  # later calls replay the captured graph on new inputs
        inputs = example_inputs(small_config.input_size, batch=1, seed=seed)
        for got, want in zip(graphed.run(*inputs), eager.run(*inputs), strict=True):
            torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)
    assert graphed._graph.shapes()[0] == (1, 3, small_config.input_size, small_config.input_size)
    assert graphed._staging.allocations == 3  # one pinned buffer per input, reused
    assert all(b.is_pinned() for b in graphed._staging.buffers.values())
    batch = example_inputs(small_config.input_size, batch=2)  # other batches: ordinary forward
    for got, want in zip(graphed.run(*batch), eager.run(*batch), strict=True):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)


@pytest.mark.gpu
def test_fp16_channels_last_graph_stays_close_to_fp32(small_model, small_config):
    inputs = example_inputs(small_config.input_size, batch=1)
    reference = TorchBackend(small_model, "cpu").run(*inputs)
    fast = TorchBackend(
        small_model,
        "cuda",
        BackendOptions(precision="fp16", channels_last=True, cuda_graph=True),
    )
    for got, want in zip(fast.run(*inputs), reference, strict=True):
        assert np.abs(got.cpu().numpy() - want.numpy()).max() < 5e-2
