"""Latency of `hoposer.decode` for one frame (hand + object), the target being ≤ 2 ms.

    python bench/decode_cpu.py [--iterations 200] [--weights W] [--json PATH]

Three kinds of network output, all `lite`-shaped (32×32 object grid, 21 control points):

- `converged`: outputs of a trained network, made to order: 2D joints and θ, β of a known hand;
  60 % of the grid cells vote for the true control points (1 px noise) with high confidence, the
  rest for random pixels with lower, overlapping confidence. RANSAC stops after a few samples.
- `network`: the raw outputs of the shipped `lite` weights (or --weights) on a random image.
- `scattered`: the converged hand with every vote at a random pixel of the object box and random
  confidences: no pose agrees with the votes, RANSAC runs all its iterations and fails, the
  worst case.

Prints, per kind, wall-clock p50/p90 and CPU-time p50 (`time.process_time`, less sensitive to
other processes on a shared machine) of the whole decode and of its parts: the hand (hand model
and 2D-3D translation), the vote selection (`top_votes`) and the PnP
(`object_pose_from_votes`). One torch thread, as in the stream.
"""

import argparse
import contextlib
import json
import os
import time
from pathlib import Path

import numpy as np
import torch

from hoposer.decode import decode
from hoposer.geometry.camera import project, solve_translation
from hoposer.geometry.control_points import object_mesh
from hoposer.geometry.pnp import object_pose_from_votes, top_votes
from hoposer.model.hand import StandInHand
from hoposer.model.inputs import box_to_pixels
from hoposer.model.network import RawOutputs

K = np.array([[300.0, 0, 128], [0, 300.0, 128], [0, 0, 1]])
GRID = 32
WEIGHTS = Path(__file__).resolve().parents[1] / "hoposer" / "weights" / "lite-synthetic.safetensors"


def _box(points: np.ndarray, margin: float = 1.2) -> np.ndarray:
    lo, hi = points.min(0), points.max(0)
    centre, half = (lo + hi) / 2, (hi - lo) * margin / 2
    return np.r_[centre - half, centre + half]


def converged_outputs(hand, control_points, seed: int = 0):
    """Outputs of a converged network for a known hand and object, with outlier votes."""
    rng = np.random.default_rng(seed)
    theta = hand.plausible_pose(rng)
    beta = rng.normal(0, 0.5, 10)
    rel = hand(torch.tensor(theta[None]), torch.tensor(beta[None])).joints[0].double().numpy()
    joints_2d = project(rel + [0.02, -0.01, 0.45], K)
    hand_box = _box(joints_2d)
    angle = rng.normal(0, 0.6, 3)
    R = torch.linalg.matrix_exp(
        torch.tensor([[0, -angle[2], angle[1]], [angle[2], 0, -angle[0]], [-angle[1], angle[0], 0]])
    ).numpy()
    points_2d = project(control_points @ R.T + [0.0, 0.03, 0.5], K)
    object_box = _box(points_2d)
    size = object_box[2:] - object_box[:2]
    good = rng.uniform(size=(GRID, GRID, 21)) < 0.6
    votes = np.where(
        good[..., None],
        points_2d + rng.normal(0, 1.0, (GRID, GRID, 21, 2)),
        object_box[:2] + rng.uniform(0, 1, (GRID, GRID, 21, 2)) * size,
    )
    confidence = np.where(good, rng.uniform(0.4, 1.0, good.shape), rng.uniform(0, 0.6, good.shape))
    raw = RawOutputs(
        torch.tensor((joints_2d - hand_box[:2]) / (hand_box[2:] - hand_box[:2]))[None].float(),
        torch.tensor(theta[None]).float(),
        torch.tensor(beta[None]).float(),
        torch.tensor((votes - object_box[:2]) / size)[None].float(),
        torch.tensor(confidence[None]).float(),
    )
    return raw, hand_box[None], object_box[None]


def scattered_outputs(hand, control_points, seed: int = 0):
    """`converged_outputs`' hand with votes that agree on nothing."""
    raw, hand_boxes, object_boxes = converged_outputs(hand, control_points, seed)
    rng = np.random.default_rng(seed + 1)
    votes = torch.tensor(rng.uniform(0, 1, raw.object_points.shape), dtype=torch.float32)
    confidence = torch.tensor(rng.uniform(0, 1, raw.object_confidence.shape), dtype=torch.float32)
    return raw._replace(object_points=votes, object_confidence=confidence), hand_boxes, object_boxes


def network_outputs(weights: str):
    """The raw outputs of real weights (ONNX Runtime, the CPU engine) on a random image."""
    from hoposer.engine.backends import BackendOptions, open_backend
    from hoposer.engine.export import example_inputs

    backend = open_backend("onnxruntime", weights=weights, options=BackendOptions(threads=1))
    images, hand_boxes, object_boxes = example_inputs(backend.input_size, 1, seed=0)
    raw = backend.run(images, hand_boxes, object_boxes)
    return raw, hand_boxes.numpy().astype(np.float64), object_boxes.numpy().astype(np.float64)


def _time(fn, iterations: int) -> dict[str, float]:
    for _ in range(5):
        fn()
    wall, cpu = [], []
    for _ in range(iterations):
        w, c = time.perf_counter(), time.process_time()
        fn()
        cpu.append(time.process_time() - c)
        wall.append(time.perf_counter() - w)
    wall_ms, cpu_ms = np.asarray(wall) * 1e3, np.asarray(cpu) * 1e3
    return {
        "wall_p50_ms": float(np.percentile(wall_ms, 50)),
        "wall_p90_ms": float(np.percentile(wall_ms, 90)),
        "cpu_p50_ms": float(np.percentile(cpu_ms, 50)),
    }


def measure(raw, hand_boxes, object_boxes, hand, control_points, iterations: int) -> dict:
    """Whole decode and its parts, for one frame."""
    theta, beta = raw.theta.float(), raw.beta.float()
    joints_2d = box_to_pixels(raw.joints_2d.numpy(), hand_boxes)[0]
    points, confidence = raw.object_points[0].numpy(), raw.object_confidence[0].numpy()

    def hand_part():
        with torch.no_grad():
            rel = hand(theta, beta).joints[0].double().numpy()
        # No placement in front of the camera raises: decode reports NaN there, and so on.
        with contextlib.suppress(ValueError):
            solve_translation(rel, joints_2d, K)

    def vote_selection():
        return top_votes(points, confidence, 10, box=object_boxes[0])

    votes = vote_selection()
    pose = decode(raw, K, hand_boxes, object_boxes, hand, control_points)[0]
    return {
        "decode": _time(
            lambda: decode(raw, K, hand_boxes, object_boxes, hand, control_points), iterations
        ),  # fmt: skip
        "hand": _time(hand_part, iterations),
        "vote_selection": _time(vote_selection, iterations),
        "pnp": _time(lambda: object_pose_from_votes(votes, control_points, K), iterations),
        "object_success": bool(pose.object.success),
        "object_inliers": int(pose.object.inliers),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=200)
    parser.add_argument("--weights", default=str(WEIGHTS))
    parser.add_argument("--json", help="also write the numbers here")
    args = parser.parse_args()
    torch.set_num_threads(1)
    hand = StandInHand()
    control_points = object_mesh("box:0.05x0.08x0.04").control_points
    results = {
        "converged": measure(
            *converged_outputs(hand, control_points), hand, control_points, args.iterations
        ),  # fmt: skip
        "network": measure(
            *network_outputs(args.weights), hand, control_points, args.iterations
        ),  # fmt: skip
        "scattered": measure(
            *scattered_outputs(hand, control_points), hand, control_points, args.iterations
        ),  # fmt: skip
    }
    print(f"load average {os.getloadavg()[0]:.2f}, {args.iterations} iterations, 1 torch thread")
    print("| outputs | part | wall p50 ms | wall p90 ms | CPU p50 ms |")
    print("| --- | --- | ---: | ---: | ---: |")
    for kind, parts in results.items():
        for part in ("decode", "hand", "vote_selection", "pnp"):
            t = parts[part]
            print(f"| {kind} | {part} | {t['wall_p50_ms']:.2f} | {t['wall_p90_ms']:.2f} | "
                  f"{t['cpu_p50_ms']:.2f} |")  # fmt: skip
        print(f"| {kind} | object pose | {'found' if parts['object_success'] else 'none'}, "
              f"{parts['object_inliers']} inliers | | |")  # fmt: skip
    if args.json:
        from hoposer.io import write_text_atomic

        data = {"load_average": os.getloadavg(), "results": results}
        write_text_atomic(args.json, json.dumps(data, indent=2) + "\n")


if __name__ == "__main__":
    main()
