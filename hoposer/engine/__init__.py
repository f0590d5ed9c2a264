"""Inference engines: ONNX export, TensorRT build, the backends behind one interface, benchmarks.

Modules (imported on demand, so `import hoposer` never pulls in onnx or TensorRT):

    export: `export_onnx` and the TensorRT operator allow-list.
    backends: the `Backend` protocol, input validation and `open_backend`.
    backends.tensorrt: `build_engine`, `check_plan`, `TensorRTBackend` (needs `hoposer[tensorrt]`).
    cuda_path: the torch backend's pinned host staging and batch-1 CUDA-graph replay.
    quantize: the static int8 ONNX Runtime engine and its accuracy gate.
    bench: latency, throughput, memory and parity of backends against torch fp32.
"""
