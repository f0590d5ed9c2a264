"""CPU training-step throughput (forward + loss + backward + Adam) of each model preset.

    python bench/train_step_cpu.py [--configs lite] [--input-size 128] [--batch 16]
        [--threads 2] [--steps 6] [--loss official] [--breakdown]

The real training loss (`hand_object_loss`, with the stand-in hand model unless MANO is found)
on a random batch; the time of data loading is not included. `--breakdown` also times the
forward + backward of the backbone alone, of the hand decoder and of the object decoder on the
same batch, to show where the step's time goes. Prints images/s; report `uptime` beside it.

On a shared machine the wall clock measures the neighbours too, so the step is also timed in
process CPU time: `cpu images/s` = batch / (CPU seconds / threads) is what the threads would do
on cores of their own (an upper bound: it assumes they never wait for each other). Run it with
`OMP_WAIT_POLICY=PASSIVE` on a loaded machine: spinning OpenMP threads otherwise burn CPU time
waiting for a descheduled sibling (measured: 20 s wall per 2-thread step at load 12, 2.7 s with
one thread).
"""

import argparse
import dataclasses
import json
import os
import statistics
import time

import torch

from hoposer.model import build_model, get_config
from hoposer.model.hand import build_hand_model
from hoposer.train.losses import LOSS_PRESETS, hand_object_loss


def random_batch(batch: int, size: int, roi: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    hand = torch.tensor([[0.20 * size, 0.25 * size, 0.60 * size, 0.75 * size]])
    obj = torch.tensor([[0.45 * size, 0.30 * size, 0.85 * size, 0.80 * size]])
    return {
        "image": torch.rand((batch, 3, size, size), generator=g),
        "hand_box": hand.repeat(batch, 1),
        "object_box": obj.repeat(batch, 1),
        "has_mano": torch.ones(batch),
        "has_object": torch.ones(batch),
        "joints_2d": torch.rand((batch, 21, 2), generator=g),
        "theta": 0.3 * torch.randn((batch, 48), generator=g),
        "beta": torch.randn((batch, 10), generator=g),
        "joints_3d": 0.05 * torch.randn((batch, 21, 3), generator=g),
        "object_mask": (torch.rand((batch, roi, roi), generator=g) > 0.5).float(),
        "object_points_2d": torch.rand((batch, 21, 2), generator=g),
    }


def time_steps(step, steps: int, warmup: int = 2) -> tuple[float, float]:
    """Median wall-clock and median process-CPU seconds of one call."""
    for _ in range(warmup):
        step()
    wall, cpu = [], []
    for _ in range(steps):
        start, start_cpu = time.perf_counter(), time.process_time()
        step()
        wall.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return statistics.median(wall), statistics.median(cpu)


def measure(
    name: str, size: int, batch: int, steps: int, loss: str, breakdown: bool, overrides=()
) -> dict:
    config = get_config(name)
    if size:
        config = dataclasses.replace(config, input_size=size)
    for item in overrides:
        field, _, value = item.partition("=")
        config = dataclasses.replace(config, **{field: json.loads(value)})
    torch.manual_seed(0)
    model = build_model(config).train()
    hand_model = build_hand_model("auto")
    data = random_batch(batch, config.input_size, config.roi_size)
    optimizer = torch.optim.Adam(p for p in model.parameters() if p.requires_grad)
    weights = LOSS_PRESETS[loss]

    def step() -> None:
        outputs = model(data["image"], data["hand_box"], data["object_box"], True)
        total, _ = hand_object_loss(outputs, data, hand_model, weights)
        optimizer.zero_grad(set_to_none=True)
        total.backward()
        optimizer.step()

    seconds, cpu_seconds = time_steps(step, steps)
    threads = torch.get_num_threads()
    row = {
        "config": name,
        "backbone": config.backbone,
        "overrides": list(overrides),
        "input": config.input_size,
        "batch": batch,
        "trainable_m": sum(p.numel() for p in model.parameters() if p.requires_grad) / 1e6,
        "step_ms": 1000 * seconds,
        "images_per_s": batch / seconds,
        "cpu_images_per_s": batch * threads / cpu_seconds,
    }
    if breakdown:
        images = (data["image"] - model.pixel_mean) / model.pixel_std
        p2 = model.backbone(images).detach().requires_grad_()
        hand_roi = model._roi(p2, data["hand_box"]).detach().requires_grad_()
        parts = {
            "backbone": lambda: model.backbone(images).square().mean().backward(),
            "roi_align_x3": lambda: sum(
                model._roi(p2, data[k]).square().mean()
                for k in ("hand_box", "object_box", "hand_box")
            ).backward(),
            "hand_decoder": lambda: sum(
                t.square().mean() for t in model.hand_decoder(hand_roi)[:2]
            ).backward(),
            "mano_and_loss": lambda: (
                hand_model(torch.zeros(batch, 48, requires_grad=True), data["beta"])
                .vertices.square()
                .mean()
                .backward()
            ),
            "object_decoder": lambda: (
                model.object_decoder(hand_roi).points.square().mean().backward()
            ),
        }
        row["breakdown_cpu_ms"] = {
            k: 1000 * time_steps(f, steps)[1] / threads for k, f in parts.items()
        }
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", default="lite")
    parser.add_argument("--input-size", type=int, default=128, help="0: the preset's own")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--loss", default="official", choices=sorted(LOSS_PRESETS))
    parser.add_argument("--breakdown", action="store_true")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="FIELD=JSON",
        help="override a config field, e.g. --set roi_size=16 --set 'mano_hidden=[256]'",
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} threads, load {os.getloadavg()}")
    for name in args.configs.split(","):
        r = measure(
            name, args.input_size, args.batch, args.steps, args.loss, args.breakdown, args.set
        )
        print(
            f"{r['config']} {' '.join(r['overrides'])} ({r['backbone']}, {r['input']}², "
            f"batch {r['batch']}, "
            f"{r['trainable_m']:.2f} M trainable): {r['step_ms']:.0f} ms/step, "
            f"{r['images_per_s']:.1f} images/s; CPU time: {r['cpu_images_per_s']:.1f} images/s"
        )
        for part, ms in r.get("breakdown_cpu_ms", {}).items():
            print(f"    {part}: {ms:.0f} ms CPU / thread (forward + backward)")


if __name__ == "__main__":
    main()
