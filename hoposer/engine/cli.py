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
    from hoposer.engine.tensorrt import build_engine

    if precision not in ("fp16", "fp32"):
        raise HoposerError(f"--precision must be fp16 or fp32, not {precision!r}")
    build_engine(onnx, out, precision, max_batch, workspace_gb, timing_cache)  # type: ignore[arg-type]
    print(f"wrote {out} and {out.name}.json ({precision}, batch 1..{max_batch})")


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
    batch: Annotated[str, typer.Option(help="comma-separated batch sizes")] = "1,8",
    iterations: Annotated[int, typer.Option(help="timed calls per backend and batch")] = 20,
    warmup: Annotated[int, typer.Option(help="untimed calls first")] = 3,
    device: Annotated[str | None, typer.Option(help="cpu or cuda (default: cuda if any)")] = None,
    precision: Annotated[str, typer.Option(help="torch on CUDA: fp32, fp16 or bf16")] = "fp32",
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
    options = BackendOptions(precision=precision, threads=threads)  # type: ignore[arg-type]
    batches = _ints(batch, "--batch")
    rows = run_benchmark(
        [b.strip() for b in backend.split(",") if b.strip()],
        model,
        onnx=onnx,
        plan=plan,
        batches=batches,
        iterations=iterations,
        warmup=warmup,
        device=device,
        options=options,
    )
    print(format_table(rows))
    if out is not None:
        source = f"--weights {weights}" if weights is not None else f"--config {config}"
        size = f" --input-size {input_size}" if input_size is not None else ""
        command = (
            f"hoposer engine bench {source}{size} --backend {backend} --batch {batch} "
            f"--iterations {iterations} --warmup {warmup} --threads {threads}"
        )
        save_rows(rows, out, command=command)
        print(f"wrote {out}")
