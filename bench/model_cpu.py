"""Parameter counts, GFLOPs and CPU forward latency of each model preset.

    python bench/model_cpu.py [--configs official,paper,lite] [--iterations 20] [--threads N]

Prints a Markdown table (the one in the README) and writes it as JSON with --json PATH.
"""

import argparse
import json
import platform
import statistics
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from hoposer.model import build_model, get_config
from hoposer.threads import configure_threads


def measure(name: str, iterations: int, warmup: int = 3) -> dict:
    config = get_config(name)
    model = build_model(config).eval()
    s = config.input_size
    images = torch.rand(1, 3, s, s)
    hand = torch.tensor([[0.20 * s, 0.25 * s, 0.60 * s, 0.75 * s]])
    obj = torch.tensor([[0.45 * s, 0.30 * s, 0.85 * s, 0.80 * s]])
    with torch.inference_mode():
        counter = FlopCounterMode(display=False)
        with counter:
            model(images, hand, obj)
        for _ in range(warmup):
            model(images, hand, obj)
        times = []
        for _ in range(iterations):
            start = time.perf_counter()
            model(images, hand, obj)
            times.append(time.perf_counter() - start)
    times.sort()
    return {
        "config": name,
        "input": f"{s}x{s}",
        "backbone": config.backbone,
        "parameters_m": sum(p.numel() for p in model.parameters()) / 1e6,
        "gmacs": counter.get_total_flops() / 2e9,  # FlopCounterMode counts 2 FLOPs per MAC
        "median_ms": 1000 * statistics.median(times),
        "p90_ms": 1000 * times[int(0.9 * (len(times) - 1))],
        "fps": 1.0 / statistics.median(times),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", default="official,paper,lite")
    parser.add_argument("--iterations", type=int, default=20)
    parser.add_argument("--threads", type=int, help="default: the cores this process may use")
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()
    args.threads = configure_threads(args.threads)
    rows = [measure(name, args.iterations) for name in args.configs.split(",")]
    machine = f"{platform.processor() or platform.machine()}, {args.threads} threads"
    print(f"CPU forward, batch 1, torch {torch.__version__} fp32 eager, {machine}\n")
    print("| config | backbone | input | params (M) | GMACs | median ms | p90 ms | FPS |")
    print("| --- | --- | --- | ---: | ---: | ---: | ---: | ---: |")
    for r in rows:
        print(
            f"| {r['config']} | {r['backbone']} | {r['input']} | {r['parameters_m']:.1f} | "
            f"{r['gmacs']:.1f} | {r['median_ms']:.0f} | {r['p90_ms']:.0f} | {r['fps']:.1f} |"
        )
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"machine": machine, "torch": torch.__version__, "rows": rows}, f, indent=2)


if __name__ == "__main__":
    main()
