"""The whole network to one ONNX file that ONNX Runtime runs and TensorRT's parser accepts.

The graph takes `images (B, 3, S, S)` float32 RGB in [0, 1], `hand_boxes (B, 4)` and
`object_boxes (B, 4)` float32 xyxy in input pixels, and returns the `RawOutputs` fields under
their own names (`joints_2d`, `theta`, `beta`, `object_points`, `object_confidence`); the batch
axis is dynamic. The file describes itself in `metadata_props` (see `METADATA_KEYS`), read back
by `read_onnx_info` before any backend trusts it.
"""

import hashlib
import io
import json
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from hoposer import __version__
from hoposer.errors import HoposerError
from hoposer.io import atomic_path
from hoposer.model.config import ModelConfig
from hoposer.model.network import HandObjectNet, RawOutputs

INPUT_NAMES: tuple[str, ...] = ("images", "hand_boxes", "object_boxes")
OUTPUT_NAMES: tuple[str, ...] = RawOutputs._fields
FORMAT = "hoposer-onnx"
DEFAULT_OPSET = 17

#: metadata_props keys written by `export_onnx`.
METADATA_KEYS = (
    "hoposer_format",
    "hoposer_version",
    "hoposer_config",
    "hoposer_weights_sha256",
    "hoposer_input_size",
    "hoposer_inputs",
    "hoposer_outputs",
    "hoposer_max_batch",
)

#: ONNX operators (default domain) that TensorRT 10's ONNX parser supports: the "Y" rows of
#: onnx-tensorrt `docs/operators.md` for TensorRT 10.0 (opset 9 to 20), commit 96e7811, 2024-06.
#: Some carry restrictions (e.g. OneHot's depth and ReduceL2's axes must be build-time constants;
#: Resize without antialiasing) that the exporter's graphs satisfy; a build checks them for real.
TENSORRT_SUPPORTED_OPS: frozenset[str] = frozenset(
    """
    Abs Acos Acosh Add And ArgMax ArgMin Asin Asinh Atan Atanh AveragePool BatchNormalization
    Cast CastLike Ceil Celu Clip Concat Constant ConstantOfShape Conv ConvTranspose Cos Cosh
    CumSum DeformConv DepthToSpace DequantizeLinear Div Dropout Einsum Elu Equal Erf Exp Expand
    EyeLike Flatten Floor Gather GatherElements GatherND Gelu Gemm GlobalAveragePool GlobalLpPool
    GlobalMaxPool Greater GreaterOrEqual GridSample GroupNormalization GRU HardSigmoid HardSwish
    Hardmax Identity If ImageScaler InstanceNormalization IsInf IsNaN LayerNormalization LeakyRelu
    Less LessOrEqual Log LogSoftmax Loop LRN LSTM LpNormalization LpPool MatMul Max MaxPool Mean
    MeanVarianceNormalization Min Mish Mod Mul Neg NonMaxSuppression NonZero Not OneHot Or Pad
    ParametricSoftplus Pow PRelu QuantizeLinear RandomNormal RandomNormalLike RandomUniform
    RandomUniformLike Range Reciprocal ReduceL1 ReduceL2 ReduceLogSum ReduceLogSumExp ReduceMax
    ReduceMean ReduceMin ReduceProd ReduceSum ReduceSumSquare Relu Reshape Resize ReverseSequence
    RNN RoiAlign Round ScaledTanh Scan Scatter ScatterElements ScatterND Selu Shape Shrink Sigmoid
    Sign Sin Sinh Size Slice Softmax Softplus Softsign SpaceToDepth Split Sqrt Squeeze Sub Sum Tan
    Tanh ThresholdedRelu Tile TopK Transpose Trilu Unsqueeze Upsample Where Xor
    """.split()  # noqa: SIM905 - one source-like block, easy to diff against the docs
)


@dataclass(frozen=True)
class OnnxInfo:
    """What an exported file's metadata says about it."""

    path: Path
    config: ModelConfig
    input_size: int
    weights_sha256: str
    hoposer_version: str
    opset: int
    metadata: dict[str, str]


class _Flat(nn.Module):
    """The network with a plain tuple output in `OUTPUT_NAMES` order (what the tracer wants)."""

    def __init__(self, model: HandObjectNet) -> None:
        super().__init__()
        self.model = model

    def forward(self, images, hand_boxes, object_boxes):  # noqa: D102
        return tuple(self.model(images, hand_boxes, object_boxes))


def _declare_output_shapes(proto, config: ModelConfig) -> None:
    """Write the outputs' shapes after the batch dimension (`RawOutputs`) into the graph.

    The exporter infers them from the traced graph, which loses them where sizes are computed
    at run time (the object trunk's "same" padding); engines bind them as the contract says.
    """
    r, j, c = config.roi_size, config.num_joints, config.num_control_points
    shapes = {"joints_2d": (j, 2), "theta": (48,), "beta": (10,),
              "object_points": (r, r, c, 2), "object_confidence": (r, r, c)}  # fmt: skip
    for output in proto.graph.output:
        dims = output.type.tensor_type.shape.dim
        for dim, size in zip(dims[1:], shapes[output.name], strict=True):
            dim.Clear()
            dim.dim_value = size


def example_inputs(
    input_size: int, batch: int = 1, seed: int = 0, device: str | torch.device = "cpu"
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Deterministic valid inputs: random images and overlapping hand/object boxes `(B, 4)`.

    Boxes vary a little per batch item so that batch items are not identical.
    """
    gen = torch.Generator().manual_seed(seed)
    s = float(input_size)
    images = torch.rand(batch, 3, input_size, input_size, generator=gen)
    jitter = (torch.rand(batch, 4, generator=gen) - 0.5) * 0.05 * s
    hand = torch.tensor([0.20 * s, 0.25 * s, 0.60 * s, 0.75 * s]) + jitter
    obj = torch.tensor([0.45 * s, 0.30 * s, 0.85 * s, 0.80 * s]) - jitter
    return images.to(device), hand.to(device), obj.to(device)


def export_onnx(
    model: HandObjectNet,
    path: str | Path,
    opset: int = DEFAULT_OPSET,
    max_batch: int | None = None,
    weights_sha256: str | None = None,
    check_tensorrt: bool = True,
) -> Path:
    """Export `model` (in eval mode, on its device) to `path`, atomically.

    Args:
        model: the network; its train/eval mode is restored afterwards.
        path: the `.onnx` file to write; its directory must exist.
        opset: ONNX opset (TensorRT 10 parses 9 to 20; 17 is tested).
        max_batch: largest batch the file is meant for, recorded as a hint for `build_engine`;
            the graph itself accepts any batch.
        weights_sha256: the checkpoint's `tensors_sha256`; computed from the model when omitted
            (both use `hoposer.model.checkpoint.tensors_digest`, so they agree).
        check_tensorrt: refuse to write a graph with operators TensorRT cannot parse.

    Returns:
        The path written.
    """
    import onnx

    from hoposer.model.checkpoint import tensors_digest

    path = Path(path)
    if not path.parent.is_dir():
        raise HoposerError(f"cannot write {path}: directory {path.parent} does not exist")
    if not 9 <= opset <= 20:
        raise HoposerError(f"opset {opset} is outside 9..20, the range TensorRT 10 parses")
    if max_batch is not None and max_batch < 1:
        raise HoposerError(f"max_batch must be at least 1, not {max_batch}")
    config = model.config
    device = next(model.parameters()).device
    if weights_sha256 is None:
        weights_sha256 = tensors_digest(model.state_dict())
    # Batch 2, not 1: a traced batch of 1 can be baked into reshapes as a constant.
    example = example_inputs(config.input_size, batch=2, device=device)
    dynamic = {name: {0: "batch"} for name in INPUT_NAMES + OUTPUT_NAMES}
    buffer = io.BytesIO()
    was_training = model.training
    model.eval()
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")  # tracer warnings about Python-side shape checks
            torch.onnx.export(
                _Flat(model),
                example,
                buffer,
                dynamo=False,
                opset_version=opset,
                input_names=list(INPUT_NAMES),
                output_names=list(OUTPUT_NAMES),
                dynamic_axes=dynamic,
                do_constant_folding=True,
            )
    finally:
        model.train(was_training)
    proto = onnx.load_from_string(buffer.getvalue())
    _declare_output_shapes(proto, config)
    metadata = {
        "hoposer_format": FORMAT,
        "hoposer_version": __version__,
        "hoposer_config": config.to_json(),
        "hoposer_weights_sha256": weights_sha256,
        "hoposer_input_size": str(config.input_size),
        "hoposer_inputs": json.dumps(list(INPUT_NAMES)),
        "hoposer_outputs": json.dumps(list(OUTPUT_NAMES)),
        "hoposer_max_batch": str(max_batch or ""),
    }
    onnx.helper.set_model_props(proto, metadata)
    proto.producer_name = "hoposer"
    proto.producer_version = __version__
    onnx.checker.check_model(proto, full_check=True)
    if check_tensorrt:
        missing = unsupported_ops(proto)
        if missing:
            raise HoposerError(
                f"the exported graph uses operators TensorRT cannot parse: {sorted(missing)}; "
                "pass check_tensorrt=False to export for ONNX Runtime only"
            )
    with atomic_path(path) as tmp:
        onnx.save(proto, str(tmp))
    return path


def unsupported_ops(onnx_model) -> set[str]:
    """Operator types in the graph (subgraphs included) that TensorRT 10 cannot parse.

    Operators of other domains are reported as `domain::Op` (TensorRT parses them only through
    plugins, which hoposer does not ship).
    """
    found: set[str] = set()
    for node in _all_nodes(onnx_model.graph):
        if node.domain in ("", "ai.onnx"):
            if node.op_type not in TENSORRT_SUPPORTED_OPS:
                found.add(node.op_type)
        else:
            found.add(f"{node.domain}::{node.op_type}")
    return found


def _all_nodes(graph):
    for node in graph.node:
        yield node
        for attr in node.attribute:
            if attr.HasField("g"):
                yield from _all_nodes(attr.g)
            for sub in attr.graphs:
                yield from _all_nodes(sub)


def file_sha256(path: str | Path) -> str:
    """SHA-256 of a file's bytes (identifies the ONNX file a TensorRT plan was built from)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_onnx_info(path: str | Path):
    """Load and validate an exported file; returns `(OnnxInfo, onnx.ModelProto)`.

    Raises HoposerError, naming the file and what to do, when it is missing, unreadable,
    corrupt, not written by `export_onnx`, or declares other inputs/outputs than hoposer's.
    """
    import onnx
    from google.protobuf.message import DecodeError

    path = Path(path)
    redo = "export it again with 'hoposer engine export'"
    if path.is_dir():
        raise HoposerError(f"{path} is a directory; give the .onnx file")
    if not path.is_file():
        raise HoposerError(f"ONNX file {path} does not exist; {redo}")
    try:
        proto = onnx.load(str(path))
    except (DecodeError, OSError, ValueError, RuntimeError) as err:
        first = str(err).splitlines()[0][:160] if str(err) else type(err).__name__
        raise HoposerError(f"{path} is not a readable ONNX file ({first}); {redo}") from None
    if not proto.graph.node:
        raise HoposerError(f"{path} holds no ONNX graph (empty or truncated file); {redo}")
    meta = {p.key: p.value for p in proto.metadata_props}
    if meta.get("hoposer_format") != FORMAT:
        raise HoposerError(
            f"{path} is an ONNX file but not a hoposer export (no '{FORMAT}' metadata); {redo}"
        )
    config = ModelConfig.from_json(meta.get("hoposer_config", ""))
    inputs = tuple(i.name for i in proto.graph.input)
    outputs = tuple(o.name for o in proto.graph.output)
    if inputs != INPUT_NAMES or outputs != OUTPUT_NAMES:
        raise HoposerError(
            f"{path} has inputs {list(inputs)} and outputs {list(outputs)}, not hoposer's "
            f"{list(INPUT_NAMES)} → {list(OUTPUT_NAMES)}; {redo}"
        )
    try:
        input_size = int(meta.get("hoposer_input_size", ""))
    except ValueError:
        raise HoposerError(
            f"{path}: metadata hoposer_input_size is not an integer; {redo}"
        ) from None
    if input_size != config.input_size:
        raise HoposerError(
            f"{path}: metadata input size {input_size} contradicts its config "
            f"({config.input_size}); {redo}"
        )
    opset = next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), 0)
    info = OnnxInfo(
        path=path,
        config=config,
        input_size=input_size,
        weights_sha256=meta.get("hoposer_weights_sha256", ""),
        hoposer_version=meta.get("hoposer_version", "?"),
        opset=opset,
        metadata=meta,
    )
    return info, proto
