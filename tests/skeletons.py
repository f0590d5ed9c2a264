"""Hand-made 21-joint skeletons (hoposer order) for tests that need plausible hands."""

import numpy as np

# Metacarpal end (MCP) directions and finger segment lengths (metres), a right hand, palm facing
# the camera, fingers pointing up the image (−y in the camera frame).
_MCP = {
    "thumb": (np.array([-0.025, -0.02, 0.0]), (0.035, 0.032, 0.028, 0.024)),
    "index": (np.array([-0.022, -0.085, 0.0]), (0.040, 0.024, 0.020)),
    "middle": (np.array([0.0, -0.09, 0.0]), (0.045, 0.028, 0.022)),
    "ring": (np.array([0.02, -0.085, 0.0]), (0.042, 0.026, 0.021)),
    "pinky": (np.array([0.038, -0.075, 0.0]), (0.032, 0.020, 0.018)),
}


def straight_hand(wrist=(0.0, 0.0, 0.5)) -> np.ndarray:
    """`(21, 3)` joints of an open right hand with straight fingers, wrist at `wrist`."""
    joints = np.zeros((21, 3))
    wrist = np.asarray(wrist, np.float64)
    joints[0] = wrist
    for f, (name, (base, lengths)) in enumerate(_MCP.items()):
        start = 1 + 4 * f
        if name == "thumb":
            direction = np.array([-0.7, -0.7, 0.0])
            direction /= np.linalg.norm(direction)
            point = wrist + base
            joints[start] = point
            for i, length in enumerate(lengths[1:]):
                point = point + direction * length
                joints[start + 1 + i] = point
        else:
            point = wrist + base
            joints[start] = point
            direction = base / np.linalg.norm(base)
            for i, length in enumerate(lengths):
                point = point + direction * length
                joints[start + 1 + i] = point
    return joints


def project(points: np.ndarray, K: np.ndarray) -> np.ndarray:
    uvw = points @ K.T
    return uvw[:, :2] / uvw[:, 2:]


K_TEST = np.array([[600.0, 0, 320], [0, 600.0, 240], [0, 0, 1]])
