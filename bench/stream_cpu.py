"""Per-stage latency of `hoposer video` (or `live`) on the rendered 640×480 example clip.

    python bench/stream_cpu.py [--frames 90] [--live] [--backend auto] [--weights W]
        [--object SPEC] [--threads N]

Default: `hoposer video` with `--out` (every frame, in order, annotated and encoded). `--live`:
`hoposer live --camera clip.mp4 --no-view`, the clip played as a 30 frames/s camera (looping,
newest frame only, nothing recorded) for `--frames` frames, so capture → publish is a camera's.
Prints the summary's per-stage p50/p99 table (markdown) and the end-to-end frames/s.
"""

import argparse
import platform
import tempfile
from pathlib import Path

import torch

from hoposer.io import json_text
from hoposer.stream.example import EXAMPLE_OBJECT, write_example
from hoposer.stream.options import StreamOptions
from hoposer.stream.run import run_stream

STAGES = (
    "detect", "preprocess", "engine", "decode", "refine", "stabilize", "publish",
    "capture_to_publish",
)  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=90)
    parser.add_argument("--live", action="store_true", help="play the clip as a 30 fps camera")
    parser.add_argument("--backend", default="auto")
    parser.add_argument("--weights", default=None)
    parser.add_argument("--object", default=EXAMPLE_OBJECT)
    parser.add_argument("--threads", type=int, help="default: the cores this process may use")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        clip = write_example(Path(folder) / "clip.mp4", frames=args.frames)
        out = None if args.live else str(Path(folder) / "out.mp4")
        summary = run_stream(
            StreamOptions(
                source=str(clip), out=out, view=False, live=args.live, loop=args.live,
                max_frames=args.frames, backend=args.backend, weights=args.weights,
                object=args.object, hands="right", progress=False, threads=args.threads,
            )
        )  # fmt: skip
    print(f"{platform.machine()}, {torch.get_num_threads()} torch threads, {args.frames} frames, "
          f"backend {args.backend}, {'live' if args.live else 'video'}")  # fmt: skip
    print("\n| stage | p50 ms | p99 ms |\n| --- | ---: | ---: |")
    for stage in STAGES:
        if stage in summary["latency_ms"]:
            s = summary["latency_ms"][stage]
            print(f"| {stage} | {s['p50']:.1f} | {s['p99']:.1f} |")
    print(f"\nend to end: {summary['fps']:.1f} frames/s, dropped {summary['dropped_frames']}")
    print(json_text({k: summary[k] for k in ("frames", "frames_with_hand", "stable_fraction")}))


if __name__ == "__main__":
    main()
