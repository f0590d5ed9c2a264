"""Inference engines: ONNX export, TensorRT build, the backends behind one interface, benchmarks.

Modules (imported on demand, so `import hoposer` never pulls in onnx or TensorRT):

    export: `export_onnx` and the TensorRT operator allow-list.
    plan: TensorRT plans: `build_engine` and `check_plan` (needs `hoposer[tensorrt]`).
    backends: `open_backend` over one module per backend (`pytorch`, `onnxruntime`,
        `tensorrt`), each keeping the contract of `backends.base`.
    cache: checkpoints verified once and ONNX exports made once, under `$HOPOSER_CACHE_DIR`.
    cuda_path: the torch backend's pinned host staging and batch-1 CUDA-graph replay.
    quantize: the static int8 ONNX Runtime engine and its accuracy gate.
    bench: latency, throughput, memory and parity of backends against torch fp32.
"""
