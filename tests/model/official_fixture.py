"""A seeded, well-conditioned random checkpoint in the public Semi-Hand-Object format.

The test data `tests/data/official_honet_reference.npz` holds the outputs the public code's
`HONet` produced for these weights and inputs; `official_honet_keys.json` its state-dict layout.
"""

import json
from pathlib import Path

import torch

DATA = Path(__file__).parent.parent / "data"
KEYS_FILE = DATA / "official_honet_keys.json"
REFERENCE_FILE = DATA / "official_honet_reference.npz"
SEED = 1234

#: The MANO layer's buffers as the public training script saves them (shapes of MANO_RIGHT.pkl).
MANO_BUFFERS = {
    "th_betas": (1, 10),
    "th_shapedirs": (778, 3, 10),
    "th_posedirs": (778, 3, 135),
    "th_v_template": (1, 778, 3),
    "th_J_regressor": (16, 778),
    "th_weights": (778, 16),
    "th_faces": (1538, 3),
    "th_hands_mean": (1, 45),
    "th_selected_comps": (45, 45),
}


def official_keys() -> dict[str, list[int]]:
    """The public HONet's state-dict keys (MANO buffers excluded) and shapes."""
    return json.loads(KEYS_FILE.read_text())


def seeded_state_dict(keys: dict[str, list[int]], seed: int = SEED) -> dict[str, torch.Tensor]:
    """Random weights whose activations stay O(1) through the whole network in eval mode."""
    g = torch.Generator().manual_seed(seed)
    state = {}
    for key in sorted(keys):
        shape = tuple(keys[key])
        if key.endswith(("hand_head.uu", "hand_head.vv")):
            # Soft-argmax grids the public code stores as buffers: (i + 0.5) / 32.
            centers = (torch.arange(shape[0], dtype=torch.float32) + 0.5) / shape[0]
            rows, cols = torch.meshgrid(centers, centers, indexing="ij")
            state[key] = cols if key.endswith("uu") else rows
        elif key.endswith("coord_change_mat"):
            state[key] = torch.diag(torch.tensor([1.0, -1.0, -1.0]))
        elif key.endswith("num_batches_tracked"):
            state[key] = torch.zeros((), dtype=torch.int64)
        elif key.endswith("running_var"):
            state[key] = 1.0 + torch.rand(shape, generator=g)
        elif key.endswith("running_mean"):
            state[key] = 0.1 * torch.randn(shape, generator=g)
        elif key.endswith("hand_head.betas"):
            state[key] = 1.0 + 0.1 * torch.randn(shape, generator=g)
        elif key.endswith("weight") and len(shape) == 1:  # BatchNorm / LayerNorm scale
            state[key] = 0.5 + 0.5 * torch.rand(shape, generator=g)
        elif key.endswith("bias"):
            state[key] = 0.05 * torch.randn(shape, generator=g)
        else:
            fan_in = int(torch.tensor(shape[1:]).prod()) if len(shape) > 1 else 1
            # Larger output layers make heatmaps peaky and confidences spread out.
            gain = 8.0 if key.endswith(("hand_head.score.0.weight", "out_conv.weight")) else 0.7
            state[key] = gain * torch.randn(shape, generator=g) / fan_in**0.5
    return state


def seeded_inputs(seed: int = SEED) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Two 128² images; the second pair of boxes does not overlap (zeroed CR context)."""
    g = torch.Generator().manual_seed(seed + 1)
    images = torch.rand((2, 3, 128, 128), generator=g)
    hand_boxes = torch.tensor([[20.0, 30.0, 90.0, 100.0], [5.0, 10.0, 50.0, 60.0]])
    object_boxes = torch.tensor([[50.0, 40.0, 120.0, 118.0], [70.0, 64.0, 125.0, 126.0]])
    return images, hand_boxes, object_boxes
