"""The 21-joint hand skeleton every part of hoposer speaks.

hoposer's joint order (the order the network predicts 2D joints in and the hand models return 3D
joints in; identical to MediaPipe Hands' 21 landmarks and to the order the public Semi-Hand-Object
code trains with)::

     0 wrist
     1 thumb_cmc   2 thumb_mcp   3 thumb_ip    4 thumb_tip
     5 index_mcp   6 index_pip   7 index_dip   8 index_tip
     9 middle_mcp 10 middle_pip 11 middle_dip 12 middle_tip
    13 ring_mcp   14 ring_pip   15 ring_dip   16 ring_tip
    17 pinky_mcp  18 pinky_pip  19 pinky_dip  20 pinky_tip

MANO's own kinematic order (16 joints: wrist, index 1-3, middle 1-3, pinky 1-3, ring 1-3,
thumb 1-3) is the order of θ's 16 axis-angle triplets. HO-3D's `handJoints3D` and its codalab
submission use MANO's 16 joints followed by the 5 tips (thumb, index, middle, ring, pinky).
"""

import numpy as np

JOINT_NAMES: tuple[str, ...] = (
    "wrist",
    "thumb_cmc", "thumb_mcp", "thumb_ip", "thumb_tip",
    "index_mcp", "index_pip", "index_dip", "index_tip",
    "middle_mcp", "middle_pip", "middle_dip", "middle_tip",
    "ring_mcp", "ring_pip", "ring_dip", "ring_tip",
    "pinky_mcp", "pinky_pip", "pinky_dip", "pinky_tip",
)  # fmt: skip
NUM_JOINTS = 21

#: Parent of each joint in hoposer's order (-1 for the wrist).
PARENTS: tuple[int, ...] = (-1, 0, 1, 2, 3, 0, 5, 6, 7, 0, 9, 10, 11, 0, 13, 14, 15, 0, 17, 18, 19)

#: Indices of the five fingertips in hoposer's order.
TIPS: tuple[int, ...] = (4, 8, 12, 16, 20)

#: ``ours = ho3d[HO3D_TO_OURS]``: HO-3D / MANO-with-tips order to hoposer's order.
HO3D_TO_OURS: tuple[int, ...] = (
    0, 13, 14, 15, 16, 1, 2, 3, 17, 4, 5, 6, 18, 10, 11, 12, 19, 7, 8, 9, 20,
)  # fmt: skip

#: ``ho3d = ours[OURS_TO_HO3D]``: hoposer's order to HO-3D's (for codalab submissions).
OURS_TO_HO3D: tuple[int, ...] = tuple(int(i) for i in np.argsort(HO3D_TO_OURS))

#: ``ours = mediapipe[MEDIAPIPE_TO_OURS]``: MediaPipe Hands' landmark order is hoposer's order.
MEDIAPIPE_TO_OURS: tuple[int, ...] = tuple(range(NUM_JOINTS))

#: Where each of MANO's 16 kinematic joints (θ's order) sits in hoposer's order.
MANO_JOINTS_IN_OURS: tuple[int, ...] = OURS_TO_HO3D[:16]

#: Parent of each of MANO's 16 kinematic joints, in MANO's order (the kintree of MANO_RIGHT.pkl).
MANO_PARENTS: tuple[int, ...] = (-1, 0, 1, 2, 0, 4, 5, 0, 7, 8, 0, 10, 11, 0, 13, 14)
