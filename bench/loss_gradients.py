"""How much of the shared backbone's gradient each loss term gives: is one task starving another?

    python bench/loss_gradients.py --data DATA [--weights W] [--loss heatmaps] [--batch 32]
        [--loss-weight heatmaps=3e4 ...]

One augmented batch of the training split of DATA (an HO-3D-layout folder, e.g. `hoposer train
synth` output) through the network in training mode; each weighted term of `hand_object_loss` is
back-propagated alone and the gradient norm is printed per part (backbone + FPN, hand decoder,
object decoder, context). Adam divides each parameter's step by its gradient's running scale,
so on the shared backbone a term whose gradient is a hundredth of another's moves the features
a hundredth as fast, whatever its weight looks like in the logs. `--loss-weight TERM=VALUE`
changes a preset's weight as `hoposer train fit --loss-weight` does: try a balance first.
"""

import argparse
import dataclasses

import torch

from hoposer.errors import HoposerError
from hoposer.model.checkpoint import load_checkpoint, read_checkpoint_info
from hoposer.model.hand import hand_model_for_weights
from hoposer.stream.options import DEFAULT_WEIGHTS
from hoposer.train.data.dataset import Augmentation, HandObjectDataset, collate
from hoposer.train.losses import LOSS_PRESETS, TERMS, hand_object_loss, loss_weights


def parts(model) -> dict[str, torch.nn.Module]:
    named = {"backbone": model.backbone, "hand decoder": model.hand_decoder,
             "object decoder": model.object_decoder}  # fmt: skip
    for name in ("hand_context", "object_context"):
        if getattr(model, name) is not None:
            named[name.replace("_", " ")] = getattr(model, name)
    return named


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", required=True, help="HO-3D-layout folder with a train split")
    parser.add_argument("--weights", default=str(DEFAULT_WEIGHTS))
    parser.add_argument("--loss", default="heatmaps", choices=sorted(LOSS_PRESETS))
    parser.add_argument("--loss-weight", action="append", default=[], metavar="TERM=VALUE")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    try:
        weights = loss_weights(args.loss, args.loss_weight)
    except HoposerError as err:
        parser.error(str(err))

    model = load_checkpoint(args.weights).train()
    hand_model = hand_model_for_weights(
        read_checkpoint_info(args.weights).metadata.get("hand_model")
    )
    config = model.config
    dataset = HandObjectDataset(
        args.data, "train", config.input_size, config.roi_size, Augmentation(), seed=0
    )
    step = max(1, len(dataset) // args.batch)
    batch, _ = collate([dataset[i * step] for i in range(min(args.batch, len(dataset)))])

    terms = {name: getattr(weights, name) for name in TERMS if getattr(weights, name)}
    print(f"{args.weights}, --loss {args.loss}, {len(batch['image'])} samples")
    print(
        f"{'term':18s} {'weight':>8s} {'value':>10s}  "
        + "  ".join(f"{p:>14s}" for p in parts(model))
    )
    for name, weight in terms.items():
        alone = dataclasses.replace(
            weights, **{t: (w if t == name else 0.0) for t, w in terms.items()}
        )
        outputs = model(batch["image"], batch["hand_box"], batch["object_box"], True)
        loss, values = hand_object_loss(outputs, batch, hand_model, alone)
        model.zero_grad(set_to_none=True)
        loss.backward()
        norms = [
            sum(float(p.grad.norm()) ** 2 for p in part.parameters() if p.grad is not None) ** 0.5
            for part in parts(model).values()
        ]
        print(
            f"{name:18s} {weight:8.3g} {values[name]:10.4g}  "
            + "  ".join(f"{n:14.3g}" for n in norms)
        )


if __name__ == "__main__":
    main()
