"""A static int8 CPU engine: ONNX Runtime QDQ quantisation, accepted only if the poses hold.

`quantize_onnx` turns a hoposer export into an int8 one: ONNX Runtime's `quantize_static` in QDQ
format (int8 weights per output channel, uint8 activations), calibrated on real network inputs
(`CropReader`: frames of an HO-3D-layout folder cropped and scaled exactly as for training and
evaluation, the input contract of `hoposer.model.inputs`). Only the heavy operators (`Conv`,
`MatMul`, `Gemm`) are quantised; the last compute node before each output (the heads that write
2D joints, θ, β, object proposals and confidences) stays float (`float_head_nodes`), as does
everything else (RoIAlign, soft-argmax, softmax, layer norm). The MANO layer is not in the graph:
`decode` runs it in float on the CPU.

`check_accuracy` decodes held-out labelled frames through the fp32 and the int8 engine with the
same `decode` and measures of `hoposer train eval`, and accepts the int8 engine only when PA-MPJPE
grows by at most `Tolerance.pa_mpjpe_mm`, the object's pose-0.1D (ADD-0.1D, or ADD-S-0.1D for a
symmetric object, as `train eval` scores it) drops by at most `Tolerance.add_points` and the 2D
joint error grows by at most `Tolerance.joint_2d_px`. `quantize_engine` does both and writes the
file only when accepted, with the measurements in its metadata (`hoposer_quantization`), where
`hoposer engine bench` reads them back.
"""

import json
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from hoposer.errors import HoposerError
from hoposer.io import atomic_path

#: Operators quantised to int8 (the convolutions and matrix products hold nearly all the time).
QUANTIZED_OPS: tuple[str, ...] = ("Conv", "MatMul", "Gemm")

#: Metadata key of a quantised file: JSON of the calibration, float nodes and accuracy check.
QUANTIZATION_KEY = "hoposer_quantization"

#: The measures compared, as (metrics path, larger is better).
_MEASURES = {
    "pa_mpjpe_mm": (("hand", "joint_pa_error_mm"), False),
    "joint_2d_px": (("hand", "joint_2d_error_px"), False),
    # ADD-S for symmetric objects: plain ADD scores their right poses wrong, so it would not move.
    "pose_0.1d": (("object", "average", "pose_0.1d"), True),
}


@dataclass(frozen=True)
class Tolerance:
    """How much worse than fp32 the int8 engine may decode (held-out frames, vs ground truth)."""

    pa_mpjpe_mm: float = 0.5  #: PA-MPJPE may grow by this many mm
    add_points: float = 2.0  #: pose-0.1D (ADD, ADD-S if symmetric) may drop by this many points
    joint_2d_px: float = 1.0  #: mean 2D joint error may grow by this many input pixels


@dataclass(frozen=True)
class AccuracyReport:
    """The fp32 and int8 measures on the same frames, and the verdict."""

    frames: int
    fp32: dict[str, float]  #: pa_mpjpe_mm, joint_2d_px, pose_0.1d (absent: not measured)
    int8: dict[str, float]
    delta: dict[str, float]  #: int8 − fp32
    pose_gap: dict[str, float]  #: int8 vs fp32 directly: mean 3D joint and 2D joint distances
    tolerance: Tolerance
    accepted: bool
    reasons: tuple[str, ...]  #: what broke the tolerance (empty when accepted)

    def to_json(self) -> dict:
        """Plain JSON types."""
        data = asdict(self)
        data["reasons"] = list(self.reasons)
        return data


class CropReader:
    """ONNX Runtime calibration data: `count` frames of an HO-3D-layout folder, as network inputs.

    Each frame goes through `HandObjectDataset` without augmentation: the crop around hand and
    object, `network_image` scaling and the boxes, exactly what training and evaluation feed the
    network. Frames are spread evenly over the split; unreadable ones are skipped.
    """

    def __init__(self, dataset, count: int) -> None:
        if count < 1:
            raise HoposerError(f"--calib-frames must be at least 1, not {count}")
        picks = np.linspace(0, len(dataset) - 1, min(count, len(dataset)))
        self.dataset = dataset
        self.indices = sorted({int(round(i)) for i in picks})
        self._next = 0
        self.used = 0

    def get_next(self) -> dict[str, np.ndarray] | None:
        """The next batch-1 feed, or None when done (ONNX Runtime's `CalibrationDataReader`)."""
        while self._next < len(self.indices):
            sample = self.dataset[self.indices[self._next]]
            self._next += 1
            if sample is None:
                continue
            self.used += 1
            return {
                "images": sample["image"][None].astype(np.float32),
                "hand_boxes": sample["hand_box"][None].astype(np.float32),
                "object_boxes": sample["object_box"][None].astype(np.float32),
            }
        return None

    def rewind(self) -> None:
        """Start again from the first frame."""
        self._next = 0
        self.used = 0


def float_head_nodes(proto) -> list[str]:
    """Names of the last compute node (`QUANTIZED_OPS`) on each path to a graph output.

    These write the raw outputs directly (through reshapes, activations and the soft-argmax), so
    an int8 rounding there lands unfiltered in the joints, θ, β and the object proposals.
    """
    producer = {out: node for node in proto.graph.node for out in node.output}
    initializers = {t.name for t in proto.graph.initializer}
    found: list[str] = []
    seen: set[str] = set()
    stack = [o.name for o in proto.graph.output]
    while stack:
        name = stack.pop()
        node = producer.get(name)
        if node is None or name in initializers or node.name in seen:
            continue
        seen.add(node.name)
        if node.op_type in QUANTIZED_OPS:
            found.append(node.name)
            continue
        stack.extend(node.input)
    return sorted(found)


def quantize_onnx(
    onnx_path: str | Path,
    out: str | Path,
    reader: CropReader,
    exclude: list[str] | None = None,
    extra_metadata: dict | None = None,
) -> Path:
    """Quantise a hoposer export to static int8 QDQ and write it (with hoposer's metadata).

    Args:
        onnx_path: an fp32 file from `export_onnx`.
        out: the int8 `.onnx` to write (its folder must exist).
        reader: calibration inputs.
        exclude: nodes to keep float; default `float_head_nodes` of the graph.
        extra_metadata: recorded as JSON under `QUANTIZATION_KEY` with the calibration details.

    Returns:
        `out`.
    """
    import onnx
    from onnxruntime.quantization import (
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from hoposer.engine.export import read_onnx_info

    info, proto = read_onnx_info(onnx_path)
    out = Path(out)
    if not out.parent.is_dir():
        raise HoposerError(f"cannot write {out}: directory {out.parent} does not exist")
    if QUANTIZATION_KEY in info.metadata:
        raise HoposerError(f"{onnx_path} is already quantised; give the fp32 export")
    exclude = float_head_nodes(proto) if exclude is None else list(exclude)
    reader.rewind()
    with tempfile.TemporaryDirectory(prefix="hoposer-quant-") as tmp:
        prepared = Path(tmp) / "prepared.onnx"
        quantized = Path(tmp) / "int8.onnx"
        # Shape inference and graph folding first, as ONNX Runtime recommends (better scales).
        quant_pre_process(str(onnx_path), str(prepared), skip_symbolic_shape=True)
        quantize_static(
            str(prepared),
            str(quantized),
            reader,
            quant_format=QuantFormat.QDQ,
            op_types_to_quantize=list(QUANTIZED_OPS),
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            nodes_to_exclude=exclude,
            calibrate_method=CalibrationMethod.MinMax,
        )
        if reader.used == 0:
            raise HoposerError("no calibration frame could be read; check --calib")
        result = onnx.load(str(quantized))
    record = {
        "format": "qdq-int8",
        "weights": "int8 per channel",
        "activations": "uint8 per tensor",
        "ops": list(QUANTIZED_OPS),
        "float_nodes": exclude,
        "calibration_frames": reader.used,
        **(extra_metadata or {}),
    }
    metadata = dict(info.metadata)
    metadata[QUANTIZATION_KEY] = json.dumps(record)
    onnx.helper.set_model_props(result, metadata)
    result.producer_name = "hoposer"
    with atomic_path(out) as tmp_path:
        onnx.save(result, str(tmp_path))
    return out


def quantization_record(info) -> dict | None:
    """The `QUANTIZATION_KEY` record of an `OnnxInfo`, or None for an fp32 file."""
    text = info.metadata.get(QUANTIZATION_KEY)
    return json.loads(text) if text else None


def quantization_summary(path: str | Path) -> str:
    """One paragraph on an int8 file: how it was calibrated and its accepted accuracy check."""
    from hoposer.engine.export import read_onnx_info

    info, _ = read_onnx_info(path)
    record = quantization_record(info)
    if record is None:
        return f"{path} is not quantised (fp32)"
    text = (
        f"{Path(path).name}: {record['format']}, {len(record['float_nodes'])} head nodes float, "
        f"calibrated on {record['calibration_frames']} frames of {record.get('calibration', '?')}"
    )
    accuracy = record.get("accuracy")
    if not accuracy:
        return text + "; no accuracy check recorded"
    changes = ", ".join(
        f"{name} {accuracy['fp32'][name]:.2f} → {accuracy['int8'][name]:.2f}"
        for name in accuracy["delta"]
    )
    verdict = "accepted" if accuracy["accepted"] else "rejected"
    return (
        f"{text}; accuracy on {accuracy['frames']} held-out frames of {accuracy['holdout']} "
        f"(fp32 → int8): {changes}; {verdict} within {accuracy['tolerance']}"
    )


def _pick(metrics: dict, path: tuple[str, ...]) -> float | None:
    for key in path:
        if not isinstance(metrics, dict) or key not in metrics:
            return None
        metrics = metrics[key]
    return float(metrics)


def check_accuracy(
    fp32,
    int8,
    dataset,
    hand_model,
    tolerance: Tolerance = Tolerance(),
    workers: int = 0,
    progress=None,
) -> AccuracyReport:
    """Decode `dataset` (labelled, held out) through both engines and compare with the tolerance.

    Both engines see the same crops; the measures are those of `hoposer train eval`
    (`score_split`). Also reports how far the int8 poses lie from the fp32 poses themselves.
    """
    from hoposer.train.evaluate import score_split

    outputs: dict[str, list] = {"fp32": [], "int8": []}

    def recording(backend, key):
        def run(images, hand_boxes, object_boxes):
            raw = backend.run(images, hand_boxes, object_boxes)
            outputs[key].append(raw)
            return raw

        return run

    def overall(part):  # one bar over both passes
        return (
            None
            if progress is None
            else lambda done, total: progress(done + part * total, 2 * total)
        )

    metrics = {}
    for part, (key, backend) in enumerate((("fp32", fp32), ("int8", int8))):
        scores = score_split(
            recording(backend, key), dataset, hand_model, batch_size=1, workers=workers,
            progress=overall(part),
        )  # fmt: skip
        if not scores.hands.f_scores:
            raise HoposerError(
                "the held-out frames have no 3D hand labels; use a labelled split (e.g. "
                "'hoposer train synth --split evaluation')"
            )
        metrics[key] = scores.metrics()
    values = {
        key: {name: _pick(metrics[key], path) for name, (path, _) in _MEASURES.items()}
        for key in metrics
    }
    fp32_values = {k: v for k, v in values["fp32"].items() if v is not None}
    int8_values = {k: v for k, v in values["int8"].items() if v is not None}
    delta = {k: int8_values[k] - fp32_values[k] for k in fp32_values if k in int8_values}
    limits = {
        "pa_mpjpe_mm": tolerance.pa_mpjpe_mm,
        "joint_2d_px": tolerance.joint_2d_px,
        "pose_0.1d": tolerance.add_points,
    }
    reasons = []
    for name, change in delta.items():
        larger_is_better = _MEASURES[name][1]
        worse = -change if larger_is_better else change
        if not worse <= limits[name]:  # NaN fails too
            reasons.append(f"{name} {fp32_values[name]:.2f} → {int8_values[name]:.2f}")
    return AccuracyReport(
        frames=int(metrics["fp32"]["frames"]),
        fp32=fp32_values,
        int8=int8_values,
        delta=delta,
        pose_gap=_pose_gap(outputs["fp32"], outputs["int8"], hand_model),
        tolerance=tolerance,
        accepted=not reasons,
        reasons=tuple(reasons),
    )


def _pose_gap(fp32: list, int8: list, hand_model) -> dict[str, float]:
    """Mean wrist-relative 3D joint distance (mm) and normalised 2D joint distance between them."""
    import torch

    def stack(raws, field):
        return torch.cat([torch.as_tensor(getattr(r, field)).float().cpu() for r in raws])

    with torch.no_grad():
        joints = [
            hand_model(stack(raws, "theta"), stack(raws, "beta")).joints.double().numpy()
            for raws in (fp32, int8)
        ]
    joints_2d = [stack(raws, "joints_2d").double().numpy() for raws in (fp32, int8)]
    return {
        "joint_3d_mm": float(1000 * np.linalg.norm(joints[0] - joints[1], axis=-1).mean()),
        "joint_2d_box_fraction": float(np.linalg.norm(joints_2d[0] - joints_2d[1], axis=-1).mean()),
    }


def quantize_engine(
    weights: str | Path,
    calib: str | Path,
    out: str | Path,
    *,
    holdout: str | Path | None = None,
    calib_split: str = "train",
    holdout_split: str = "evaluation",
    calib_frames: int = 100,
    holdout_frames: int = 200,
    onnx: str | Path | None = None,
    tolerance: Tolerance = Tolerance(),
    threads: int | None = None,
    hand_model: str = "auto",
    mano_dir: str | None = None,
    progress=None,
) -> AccuracyReport:
    """Calibrate, quantise, check on held-out frames, and write `out` only if accepted.

    Args:
        weights: the checkpoint (its fp32 export is `onnx`, else the cached export).
        calib: HO-3D-layout folder whose `calib_split` calibrates.
        out: the int8 `.onnx` to write.
        holdout: labelled folder whose `holdout_split` judges accuracy (default: `calib`).
        calib_split: the split of `calib` that calibrates.
        holdout_split: the split of `holdout` that judges.
        calib_frames: how many calibration frames (spread over the split).
        holdout_frames: how many held-out frames (the first ones of the split).
        onnx: the fp32 export of `weights` (checked against them).
        tolerance: the acceptance limits.
        threads: CPU threads for both engines.
        hand_model: the hand model that decodes θ, β, as for `hoposer train eval`.
        mano_dir: the folder with MANO_RIGHT.pkl when the hand model is MANO.
        progress: `progress(done, total)` during the held-out check.

    Returns:
        The accuracy report of the accepted engine (a rejected one raises, see below).

    Raises:
        HoposerError: bad input, or the int8 engine breaks the tolerance (nothing is written; the
            message gives the measures).
    """
    from hoposer.engine.backends import BackendOptions, OnnxRuntimeBackend, open_backend
    from hoposer.model.checkpoint import read_checkpoint_info
    from hoposer.model.hand import hand_model_for_weights
    from hoposer.train.data.dataset import HandObjectDataset

    holdout = calib if holdout is None else holdout
    if Path(holdout).resolve() == Path(calib).resolve() and holdout_split == calib_split:
        raise HoposerError(
            f"calibration and accuracy check would use the same frames ({calib}, split "
            f"{calib_split}); give --holdout or another --holdout-split"
        )
    if holdout_frames < 1:
        raise HoposerError(f"--holdout-frames must be at least 1, not {holdout_frames}")
    out = Path(out)
    if not out.parent.is_dir():
        raise HoposerError(f"cannot write {out}: directory {out.parent} does not exist")
    options = BackendOptions(threads=threads)
    fp32 = open_backend("onnxruntime", weights=weights, onnx=onnx, device="cpu", options=options)
    config = fp32.config

    def dataset(root, split, count):
        return HandObjectDataset(
            root, split, input_size=config.input_size, grid_size=config.roi_size,
            max_samples=count,
        )  # fmt: skip

    calib_set = dataset(calib, calib_split, None)
    reader = CropReader(calib_set, calib_frames)
    trained_with = read_checkpoint_info(weights).metadata.get("hand_model")
    hands = hand_model_for_weights(trained_with, hand_model, mano_dir)
    with tempfile.TemporaryDirectory(prefix="hoposer-int8-") as tmp:
        candidate = quantize_onnx(
            fp32.info.path,
            Path(tmp) / out.name,
            reader,
            extra_metadata={"calibration": f"{calib} split {calib_split}"},
        )
        int8 = OnnxRuntimeBackend(candidate, "cpu", options)
        held_out = dataset(holdout, holdout_split, holdout_frames)
        report = check_accuracy(fp32, int8, held_out, hands, tolerance, progress=progress)
        if not report.accepted:
            raise HoposerError(
                f"the int8 engine breaks the tolerance on {report.frames} held-out frames ("
                + "; ".join(report.reasons)
                + f", tolerance {asdict(tolerance)}); nothing written: calibrate on more or "
                "more varied frames (--calib-frames), or keep the fp32 engine"
            )
        _add_report(candidate, out, report, f"{holdout} split {holdout_split}")
    return report


def _add_report(candidate: Path, out: Path, report: AccuracyReport, holdout: str) -> None:
    import onnx

    proto = onnx.load(str(candidate))
    metadata = {p.key: p.value for p in proto.metadata_props}
    record = json.loads(metadata[QUANTIZATION_KEY])
    record["accuracy"] = {**report.to_json(), "holdout": holdout}
    metadata[QUANTIZATION_KEY] = json.dumps(record)
    del proto.metadata_props[:]
    onnx.helper.set_model_props(proto, metadata)
    with atomic_path(out) as tmp_path:
        onnx.save(proto, str(tmp_path))


def format_report(report: AccuracyReport) -> str:
    """A Markdown table of fp32 vs int8 and the verdict."""
    lines = [
        "| measure | fp32 | int8 | int8 − fp32 | allowed |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    allowed = {
        "pa_mpjpe_mm": f"≤ +{report.tolerance.pa_mpjpe_mm:g}",
        "joint_2d_px": f"≤ +{report.tolerance.joint_2d_px:g}",
        "pose_0.1d": f"≥ −{report.tolerance.add_points:g}",
    }
    for name in report.delta:
        lines.append(
            f"| {name} | {report.fp32[name]:.2f} | {report.int8[name]:.2f} | "
            f"{report.delta[name]:+.2f} | {allowed[name]} |"
        )
    verdict = "accepted" if report.accepted else "rejected: " + "; ".join(report.reasons)
    gap = report.pose_gap
    lines.append(
        f"\n{report.frames} held-out frames; int8 vs fp32 poses: 3D joints "
        f"{gap['joint_3d_mm']:.2f} mm apart (wrist-relative), 2D joints "
        f"{gap['joint_2d_box_fraction']:.4f} box widths; {verdict}"
    )
    return "\n".join(lines)
