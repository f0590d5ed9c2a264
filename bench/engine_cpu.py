"""ONNX Runtime vs PyTorch eager fp32 on the CPU, for the `lite` and `official` configs.

    python bench/engine_cpu.py [--configs lite,official] [--batch 1,8] [--iterations 30,5]
        [--threads N] [--json PATH]

Random weights (speed does not depend on their values). Each config is exported to ONNX, both
backends run the same inputs, timed in alternation (see `hoposer.engine.bench`). Prints the
Markdown table of the README and the ONNX Runtime speed-up at batch 1. The same measurement for
one config: `hoposer engine bench --config lite --backend onnxruntime,torch --device cpu`.
"""

import argparse

from hoposer.engine.backends import BackendOptions, random_model
from hoposer.engine.bench import format_table, machine_description, run_benchmark


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", default="lite,official")
    parser.add_argument("--batch", default="1,8")
    parser.add_argument("--iterations", default="30,5", help="per config, comma-separated")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--threads", type=int, help="CPU threads per backend (default: all)")
    parser.add_argument("--json", help="also write rows and machine description here")
    args = parser.parse_args()
    configs = args.configs.split(",")
    iterations = [int(i) for i in args.iterations.split(",")]
    iterations += [iterations[-1]] * (len(configs) - len(iterations))
    batches = [int(b) for b in args.batch.split(",")]
    rows = []
    for name, its in zip(configs, iterations, strict=False):
        rows += run_benchmark(
            ["onnxruntime", "torch"],
            random_model(name),
            batches=batches,
            iterations=its,
            warmup=args.warmup,
            device="cpu",
            options=BackendOptions(threads=args.threads),
        )
    machine = machine_description()
    print(f"CPU ({machine['cpu']}, {machine['cores']} cores), no GPU; {machine}\n")
    print(format_table(rows))
    for r in rows:
        if r.backend == "onnxruntime" and r.batch == 1:
            torch_row = next(
                t for t in rows if t.backend == "torch" and t.config == r.config and t.batch == 1
            )
            print(f"{r.config}: onnxruntime is {torch_row.p50_ms / r.p50_ms:.2f}× torch at batch 1")
    if args.json:
        from hoposer.io import json_text, write_text_atomic

        data = {"machine": machine, "rows": [r.__dict__ for r in rows]}
        write_text_atomic(args.json, json_text(data, indent=2) + "\n")


if __name__ == "__main__":
    main()
