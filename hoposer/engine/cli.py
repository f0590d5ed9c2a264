"""`hoposer engine …`: export, build and benchmark inference engines (thin; logic lives beside)."""

from pathlib import Path
from typing import Annotated

import typer

from hoposer.errors import HoposerError

engine_app = typer.Typer(
    help="Inference engines: ONNX export, TensorRT build, benchmarks.", no_args_is_help=True
)


def _ints(text: str, what: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise HoposerError(f"{what} must be comma-separated integers, not {text!r}") from None
    if not values or any(v < 1 for v in values):
        raise HoposerError(f"{what} must be positive integers, not {text!r}")
    return values


def _load_model(weights: Path | None, config: str | None, input_size: int | None):
    import dataclasses

    from hoposer.engine.backends import random_model
    from hoposer.model.checkpoint import load_checkpoint
    from hoposer.model.config import get_config

    if (weights is None) == (config is None):
        raise HoposerError("give exactly one of --weights (a checkpoint) or --config (random init)")
    if weights is not None:
        model = load_checkpoint(weights)
        if input_size is not None and input_size != model.config.input_size:
            model.config = dataclasses.replace(model.config, input_size=input_size)
        return model
    base = get_config(config)
    if input_size is not None:
        base = dataclasses.replace(base, input_size=input_size)
    return random_model(base)


@engine_app.command("export")
def export(
    out: Annotated[Path, typer.Option("--out", "-o", help=".onnx file to write")],
    weights: Annotated[
        Path | None, typer.Option(help="hoposer checkpoint (.safetensors) to export")
    ] = None,
    config: Annotated[
        str | None,
        typer.Option(help="preset or config .json: export random weights (for testing only)"),
    ] = None,
    input_size: Annotated[
        int | None, typer.Option(help="override the input side (a multiple of 32)")
    ] = None,
    opset: Annotated[int, typer.Option(help="ONNX opset (TensorRT 10 parses 9..20)")] = 17,
    max_batch: Annotated[
        int | None, typer.Option(help="largest batch intended (recorded for 'build')")
    ] = None,
) -> None:
    """Export the whole network (image + boxes → raw outputs) to ONNX with a dynamic batch.

    Examples:
        hoposer engine export --weights official.safetensors --out official.onnx

        hoposer engine export --config lite --out lite.onnx
    """
    from hoposer.engine.export import export_onnx
    from hoposer.io import check_writable_file

    check_writable_file(out)
    model = _load_model(weights, config, input_size)
    digest = None
    if weights is not None:
        from hoposer.model.checkpoint import read_checkpoint_info

        digest = read_checkpoint_info(weights).metadata.get("tensors_sha256")
    export_onnx(model, out, opset=opset, max_batch=max_batch, weights_sha256=digest)
    source = weights.name if weights is not None else f"random '{model.config.name}'"
    print(f"wrote {out} ({source}, {model.config.input_size}² input, opset {opset})")


@engine_app.command("build")
def build(
    onnx: Annotated[Path, typer.Argument(help=".onnx file from 'hoposer engine export'")],
    out: Annotated[Path, typer.Option("--out", "-o", help="TensorRT plan to write")],
    precision: Annotated[str, typer.Option(help="fp16 or fp32")] = "fp16",
    max_batch: Annotated[int, typer.Option(help="largest batch the plan accepts")] = 8,
    workspace_gb: Annotated[float, typer.Option(help="builder workspace limit (GiB)")] = 2.0,
    timing_cache: Annotated[
        Path | None, typer.Option(help="timing cache to load and update (faster rebuilds)")
    ] = None,
) -> None:
    """Build a TensorRT plan for this GPU (needs TensorRT: the tensorrt extra of hoposer).

    Example: hoposer engine build official.onnx --out official.plan --precision fp16
    """
    from hoposer.engine.plan import build_engine

    if precision not in ("fp16", "fp32"):
        raise HoposerError(f"--precision must be fp16 or fp32, not {precision!r}")
    build_engine(onnx, out, precision, max_batch, workspace_gb, timing_cache)  # type: ignore[arg-type]
    print(f"wrote {out} and {out.name}.json ({precision}, batch 1..{max_batch})")


@engine_app.command("quantize")
def quantize(
    weights: Annotated[Path, typer.Option(help="hoposer checkpoint (.safetensors) to quantise")],
    calib: Annotated[
        Path, typer.Option(help="HO-3D-layout folder of calibration frames (train synth, HO-3D)")
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="int8 .onnx file to write")],
    holdout: Annotated[
        Path | None,
        typer.Option(help="labelled folder for the accuracy check (default: --calib)"),
    ] = None,
    calib_split: Annotated[str, typer.Option(help="split of --calib that calibrates")] = "train",
    holdout_split: Annotated[
        str, typer.Option(help="split of --holdout that judges accuracy")
    ] = "evaluation",
    calib_frames: Annotated[int, typer.Option(help="calibration frames")] = 100,
    holdout_frames: Annotated[int, typer.Option(help="held-out frames checked")] = 200,
    onnx: Annotated[
        Path | None, typer.Option(help="the fp32 export of --weights (default: cached export)")
    ] = None,
    max_pa_mpjpe_mm: Annotated[
        float, typer.Option(help="PA-MPJPE may grow by at most this (mm)")
    ] = 0.5,
    max_add_drop: Annotated[
        float,
        typer.Option(
            help="the object's pose-0.1D (ADD-0.1D; ADD-S for symmetric objects) may drop by "
            "at most this (percentage points)"
        ),
    ] = 2.0,
    max_joint_2d_px: Annotated[
        float, typer.Option(help="2D joint error may grow by at most this (pixels)")
    ] = 1.0,
    hand_model: Annotated[str, typer.Option(help="auto | mano | standin")] = "auto",
    mano_dir: Annotated[str | None, typer.Option(help="folder with MANO_RIGHT.pkl")] = None,
    threads: Annotated[
        int | None, typer.Option(help="CPU threads (default: the cores this process may use)")
    ] = None,
) -> None:
    """Static int8 ONNX Runtime engine for CPUs, written only if held-out poses stay close.

    Calibrates on --calib frames, then decodes --holdout frames through the fp32 and the int8
    engine and refuses to write --out when PA-MPJPE, ADD-0.1D or the 2D joint error get worse
    than the tolerance. The file runs wherever an .onnx does (--onnx, backend onnxruntime).

    Examples:
        hoposer train synth --out calib --frames 400 --seed 7

        hoposer train synth --out calib --frames 200 --seed 8 --split evaluation

        hoposer engine quantize --weights lite.safetensors --calib calib --out lite.int8.onnx

        hoposer engine bench --weights lite.safetensors --quantized lite.int8.onnx --batch 1
    """
    from hoposer.engine.quantize import Tolerance, format_report, quantize_engine
    from hoposer.progress import ProgressBar
    from hoposer.threads import configure_threads

    threads = configure_threads(threads)
    report = quantize_engine(
        weights,
        calib,
        out,
        holdout=holdout,
        calib_split=calib_split,
        holdout_split=holdout_split,
        calib_frames=calib_frames,
        holdout_frames=holdout_frames,
        onnx=onnx,
        tolerance=Tolerance(max_pa_mpjpe_mm, max_add_drop, max_joint_2d_px),
        threads=threads,
        hand_model=hand_model,
        mano_dir=mano_dir,
        progress=ProgressBar("checking fp32 vs int8").update,
    )
    print(format_report(report))
    print(f"wrote {out}")


@engine_app.command("bench")
def bench(
    backend: Annotated[
        str, typer.Option(help="comma-separated: torch, onnxruntime, tensorrt")
    ] = "onnxruntime,torch",
    config: Annotated[
        str | None, typer.Option(help="preset or config .json (random weights)")
    ] = None,
    weights: Annotated[Path | None, typer.Option(help="hoposer checkpoint")] = None,
    input_size: Annotated[int | None, typer.Option(help="override the input side")] = None,
    onnx: Annotated[
        Path | None, typer.Option(help="use this export (default: export anew)")
    ] = None,
    plan: Annotated[Path | None, typer.Option(help="use this TensorRT plan")] = None,
    quantized: Annotated[
        Path | None,
        typer.Option(help="also bench this int8 file from 'engine quantize' (ONNX Runtime)"),
    ] = None,
    batch: Annotated[str, typer.Option(help="comma-separated batch sizes")] = "1,8",
    iterations: Annotated[int, typer.Option(help="timed calls per backend and batch")] = 20,
    warmup: Annotated[int, typer.Option(help="untimed calls first")] = 3,
    device: Annotated[str | None, typer.Option(help="cpu or cuda (default: cuda if any)")] = None,
    precision: Annotated[str, typer.Option(help="torch on CUDA: fp32, fp16 or bf16")] = "fp32",
    compile: Annotated[
        bool, typer.Option("--compile", help="torch: torch.compile the model")
    ] = False,
    channels_last: Annotated[
        bool, typer.Option("--channels-last", help="torch: channels-last memory format")
    ] = False,
    cuda_graph: Annotated[
        bool,
        typer.Option("--cuda-graph", help="torch/TensorRT on CUDA: replay batch 1 as a CUDA graph"),
    ] = False,
    threads: Annotated[
        int | None, typer.Option(help="CPU threads (default: the cores this process may use)")
    ] = None,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="also save rows as JSON")] = None,
) -> None:
    """Latency (p50/p90/p99), throughput, peak memory and max |diff| vs torch fp32.

    Examples:
        hoposer engine bench --config lite --backend onnxruntime,torch --batch 1,8

        hoposer engine bench --weights official.safetensors --backend tensorrt,torch --out b.json
    """
    from hoposer.engine.backends import BackendOptions
    from hoposer.engine.bench import format_table, run_benchmark, save_rows
    from hoposer.threads import configure_threads

    if precision not in ("fp32", "fp16", "bf16"):
        raise HoposerError(f"--precision must be fp32, fp16 or bf16, not {precision!r}")
    threads = configure_threads(threads)
    model = _load_model(weights, config, input_size)
    options = BackendOptions(
        precision=precision,  # type: ignore[arg-type]
        compile=compile,
        channels_last=channels_last,
        threads=threads,
        cuda_graph=cuda_graph,
    )
    batches = _ints(batch, "--batch")
    rows = run_benchmark(
        [b.strip() for b in backend.split(",") if b.strip()],
        model,
        onnx=onnx,
        plan=plan,
        quantized=quantized,
        batches=batches,
        iterations=iterations,
        warmup=warmup,
        device=device,
        options=options,
    )
    print(format_table(rows))
    if quantized is not None:
        from hoposer.engine.quantize import quantization_summary

        print(quantization_summary(quantized))
    if out is not None:
        source = f"--weights {weights}" if weights is not None else f"--config {config}"
        size = f" --input-size {input_size}" if input_size is not None else ""
        size += f" --quantized {quantized}" if quantized is not None else ""
        command = (
            f"hoposer engine bench {source}{size} --backend {backend} --batch {batch} "
            f"--iterations {iterations} --warmup {warmup} --threads {threads}"
        )
        for flag, on in (("--compile", compile), ("--channels-last", channels_last),
                         ("--cuda-graph", cuda_graph)):  # fmt: skip
            command += f" {flag}" if on else ""
        if precision != "fp32":
            command += f" --precision {precision}"
        save_rows(rows, out, command=command)
        print(f"wrote {out}")
