"""The whole training path can fit 32 frames: losses, targets, decoder and PnP agree end to end.

A wrong sign, a mislabelled target or a decoder that reads cells the loss never trained shows up
here as an object that training cannot place, even on the frames it trained on. Measured at 200
steps (about 4 minutes on 2 cores): ADD-S-0.1D and REP-5 100 %, 2D joints 0.75 px, PA-MPJPE
0.33 mm.
"""

import pytest

from hoposer.stream.options import DEFAULT_WEIGHTS
from hoposer.train.evaluate import evaluate
from hoposer.train.fit import FitOptions, fit
from hoposer.train.options import EvalOptions
from hoposer.train.synth import SynthOptions, generate


@pytest.mark.slow
def test_training_fits_32_synthetic_frames(tmp_path):
    data = tmp_path / "data"
    generate(SynthOptions(out=str(data), frames=32, seed=5, size=128, sequence_length=1,
                          workers=1))  # fmt: skip
    run = tmp_path / "run"
    # One batch holds every frame; no augmentation and a flat learning rate: pure fitting.
    fit(FitOptions(data=str(data), out=str(run), config="lite", init_weights=str(DEFAULT_WEIGHTS),
                   batch_size=32, lr=2e-3, lr_step=10**6, epochs=10**6, max_steps=200,
                   augment=False, hand_model="standin", workers=0, device="cpu"),
        progress=False)  # fmt: skip
    metrics = evaluate(EvalOptions(weights=str(run / "model.safetensors"), data=str(data),
                                   split="train", out=str(tmp_path / "eval"), workers=0,
                                   hand_model="standin", device="cpu"))  # fmt: skip

    objects = metrics["object"]["average"]
    assert objects["pose_0.1d"] >= 90.0  # ADD-S for symmetric objects, ADD otherwise
    assert objects["rep_5"] >= 90.0
    hand = metrics["hand"]
    assert hand["joint_2d_error_px"] <= 3.0
    assert hand["joint_pa_error_mm"] <= 2.0
