"""The interface every hand model implements: θ, β → 21 joints and a mesh, in hoposer's order.

θ `(B, 48)` is MANO's pose: 16 axis-angle triplets in MANO's kinematic order (global rotation of
the wrist first, then index 1-3, middle 1-3, pinky 1-3, ring 1-3, thumb 1-3), each a rotation in
its parent's frame, whose axes at rest are the model's own frame. θ = 0 is the flat open hand
(MANO with ``flat_hand_mean=True``, no PCA). β `(B, 10)` is the shape. The semantics follow the
public Semi-Hand-Object MANO layer: joints and vertices are re-centred on the wrist, the five tips
are mesh vertices, and the 21 joints come out in hoposer's order (`hoposer.geometry.skeleton`).
"""

from typing import NamedTuple

import numpy as np
import torch

from hoposer.geometry.skeleton import HO3D_TO_OURS, MANO_JOINTS_IN_OURS

#: Flexion range in radians of each of MANO's 16 joints (θ's order), about the axis that curls the
#: finger towards the palm; negative values are hyperextension. The wrist has none.
FLEXION_LIMITS: np.ndarray = np.array(
    [[0.0, 0.0]]
    + [[-0.15, 1.4], [0.0, 1.7], [0.0, 1.3]] * 4  # index, middle, pinky, ring: mcp, pip, dip
    + [[-0.2, 0.9], [-0.1, 1.0], [-0.2, 1.3]]  # thumb: cmc, mcp, ip
)

#: Sideways range (abduction, about the palm normal) of each joint; only finger bases have one.
ABDUCTION_LIMITS: np.ndarray = np.array(
    [[0.0, 0.0]]
    + [[-0.25, 0.25], [0.0, 0.0], [0.0, 0.0]] * 4
    + [[-0.2, 0.5], [0.0, 0.0], [0.0, 0.0]]
)


class HandOutput(NamedTuple):
    """A batch of posed hands, metres, in the model's frame rotated by θ's global part."""

    vertices: torch.Tensor  #: (B, V, 3) mesh vertices (faces: the model's `faces`)
    joints: torch.Tensor  #: (B, 21, 3) joints in hoposer's order; joint 0 (wrist) at the origin
    # unless a translation was given, which is then added to vertices and joints alike.


def check_inputs(
    theta: torch.Tensor, beta: torch.Tensor | None, translation: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Validate θ `(B, 48)`, β `(B, 10)` or None (zeros), translation `(B, 3)` or None.

    Returns:
        θ and β (zeros of θ's dtype when None), both floating point.
    """
    if theta.ndim != 2 or theta.shape[1] != 48 or not theta.is_floating_point():
        raise ValueError(f"theta must be a float (B, 48) tensor, got {tuple(theta.shape)}")
    batch = theta.shape[0]
    if beta is None:
        beta = theta.new_zeros(batch, 10)
    if beta.shape != (batch, 10):
        raise ValueError(f"beta must be (B, 10) = ({batch}, 10), got {tuple(beta.shape)}")
    if translation is not None and translation.shape != (batch, 3):
        raise ValueError(
            f"translation must be (B, 3) = ({batch}, 3), got {tuple(translation.shape)}"
        )
    return theta, beta.to(theta.dtype)


def finish(
    joints_ho3d: torch.Tensor, vertices: torch.Tensor, translation: torch.Tensor | None
) -> HandOutput:
    """Reorder HO-3D-ordered joints `(B, 21, 3)` to hoposer's, re-centre on the wrist, translate."""
    joints = joints_ho3d[:, list(HO3D_TO_OURS)]
    wrist = joints[:, :1]
    joints, vertices = joints - wrist, vertices - wrist
    if translation is not None:
        shift = translation.to(joints.dtype)[:, None]
        joints, vertices = joints + shift, vertices + shift
    return HandOutput(vertices=vertices, joints=joints)


class HandModel(torch.nn.Module):
    """θ `(B, 48)`, β `(B, 10)` → `HandOutput`; subclasses: `StandInHand`, `MANOHand`.

    Attributes:
        name: "standin" or "mano"; stored with labels so θ/β are read with the right model.
        faces: `(F, 3)` int64 triangle indices into the vertices, outward (counter-clockwise)
            winding.
        num_vertices: V.
    """

    name: str = ""
    faces: np.ndarray
    num_vertices: int

    def forward(
        self,
        theta: torch.Tensor,
        beta: torch.Tensor | None = None,
        translation: torch.Tensor | None = None,
    ) -> HandOutput:
        """Pose and shape the hand.

        Args:
            theta: `(B, 48)` axis-angle, global rotation first, then MANO's 15 joints.
            beta: `(B, 10)` shape; None means the mean shape.
            translation: `(B, 3)` metres added to joints and vertices; None keeps the wrist at
                the origin.

        Returns:
            `HandOutput` in θ's dtype and device.
        """
        raise NotImplementedError

    @torch.no_grad()
    def rest_joints(self, beta: np.ndarray | None = None) -> np.ndarray:
        """The 21 joints `(21, 3)` float64 of the flat hand (θ = 0), wrist at the origin."""
        ref = next(iter(self.buffers()), None)
        device = ref.device if ref is not None else torch.device("cpu")
        theta = torch.zeros(1, 48, dtype=torch.float64, device=device)
        b = None if beta is None else torch.as_tensor(beta, dtype=torch.float64).reshape(1, 10)
        return self(theta, None if b is None else b.to(device)).joints[0].cpu().numpy()

    def joint_axes(self) -> tuple[np.ndarray, np.ndarray]:
        """Flexion and abduction axes `(16, 3)` of each of θ's joints, in the rest frame.

        A finger segment leaving joint j along `d` (rest pose) flexes about `a = d × n`, where `n`
        is the palm normal (towards the palm side, `(index_mcp − wrist) × (pinky_mcp − wrist)`
        for a right hand), so a positive angle curls the finger towards the palm. Abduction is the
        rotation about `n` made orthogonal to `d`. Row 0 (the wrist) is zero.
        """
        cached = self.__dict__.get("_joint_axes")  # fixed by the model: worth one forward pass
        if cached is not None:
            return cached[0].copy(), cached[1].copy()
        rest = self.rest_joints()
        normal = np.cross(rest[5] - rest[0], rest[17] - rest[0])
        normal /= np.linalg.norm(normal)
        flex, abduct = np.zeros((16, 3)), np.zeros((16, 3))
        for j in range(1, 16):
            ours = MANO_JOINTS_IN_OURS[j]
            d = rest[ours + 1] - rest[ours]  # the child in our order is the next index
            d /= np.linalg.norm(d)
            a = np.cross(d, normal)
            flex[j] = a / np.linalg.norm(a)
            n = normal - (normal @ d) * d
            abduct[j] = n / np.linalg.norm(n)
        self.__dict__["_joint_axes"] = (flex.copy(), abduct.copy())
        return flex, abduct

    def plausible_pose(self, rng: np.random.Generator) -> np.ndarray:
        """A random natural grasp-like θ `(48,)` float64; the global rotation θ[:3] is zero.

        A grip strength in [0.15, 0.95] sets how far the fingers close; each finger and joint
        varies around it. Every joint's rotation is `flex · a + abduct · n` (see `joint_axes`),
        with `flex` inside `FLEXION_LIMITS` and `abduct` inside `ABDUCTION_LIMITS`.
        """
        flex_axes, abduct_axes = self.joint_axes()
        grip = rng.uniform(0.15, 0.95)
        theta = np.zeros((16, 3))
        for finger in range(5):
            closure = np.clip(grip + rng.normal(0.0, 0.12), 0.0, 1.0)
            for k in range(3):
                j = 1 + 3 * finger + k
                lo, hi = FLEXION_LIMITS[j]
                t = np.clip(closure * rng.uniform(0.8, 1.15) + rng.normal(0.0, 0.04), 0.0, 1.0)
                flex = lo + (hi - lo) * t
                alo, ahi = ABDUCTION_LIMITS[j]
                abduct = rng.uniform(alo, ahi) * 0.6 if ahi > alo else 0.0
                theta[j] = flex * flex_axes[j] + abduct * abduct_axes[j]
        return theta.reshape(48)

    def sample_pose(self, rng: np.random.Generator, family: str | None = None) -> np.ndarray:
        """A random θ `(48,)` float64 from one of `POSE_FAMILIES` (drawn by `POSE_WEIGHTS` if None).

        Covers the whole range real hands show: flat and spread open hands, pointing, a fist,
        pinches, precision and power grasps, and `plausible_pose`'s grip ("grasp"). Each finger's
        closure (0 = straight, 1 = fully flexed, mapped onto `FLEXION_LIMITS`, so an open hand
        may hyperextend a little) and abduction (inside `ABDUCTION_LIMITS`) come from the family's
        ranges; the global rotation θ[:3] is zero.
        """
        if family is None:
            family = POSE_FAMILIES[rng.choice(len(POSE_FAMILIES), p=POSE_WEIGHTS)]
        if family == "grasp":
            return self.plausible_pose(rng)
        if family not in _FAMILY_CLOSURE:
            raise ValueError(f"unknown pose family {family!r}: use one of {POSE_FAMILIES}")
        flex_axes, abduct_axes = self.joint_axes()
        closures, spread = _FAMILY_CLOSURE[family], _FAMILY_SPREAD[family]
        theta = np.zeros((16, 3))
        for finger in range(5):
            lo_c, hi_c = closures[finger]
            closure = rng.uniform(lo_c, hi_c)
            # Real fingers curl proximal joints less than distal ones in a loose hand; vary it.
            bias = rng.uniform(-0.15, 0.15)
            for k in range(3):
                j = 1 + 3 * finger + k
                lo, hi = FLEXION_LIMITS[j]
                t = closure * rng.uniform(0.85, 1.15) + bias * (k - 1) + rng.normal(0.0, 0.03)
                t = np.clip(t, 0.0, 1.0)
                # Closure 0 sits at the joint's zero, not its hyperextension limit; below zero
                # only by a little noise, as relaxed open hands do.
                flex = np.clip(hi * t if t > 0.02 else rng.uniform(lo, 0.0) * 0.5, lo, hi)
                alo, ahi = ABDUCTION_LIMITS[j]
                abduct = 0.0
                if ahi > alo:
                    direction = _SPREAD_DIRECTION[finger]
                    if finger == 4 and family in ("open", "spread"):
                        direction = -1.0  # an open hand's thumb splays away from the palm
                    centre = spread * (ahi if direction > 0 else -alo) * direction
                    abduct = np.clip(centre + rng.normal(0.0, 0.06), alo, ahi)
                theta[j] = flex * flex_axes[j] + abduct * abduct_axes[j]
        return theta.reshape(48)


#: Pose families of `HandModel.sample_pose` and how often each is drawn.
POSE_FAMILIES: tuple[str, ...] = (
    "open", "spread", "point", "fist", "pinch", "precision", "power", "grasp",
)  # fmt: skip
POSE_WEIGHTS: np.ndarray = np.array([0.17, 0.08, 0.07, 0.05, 0.12, 0.15, 0.18, 0.18])

# Closure ranges per digit (index, middle, pinky, ring, thumb: θ's order) of each family.
_OPEN = ((0.0, 0.12),) * 4 + ((0.0, 0.2),)
_FAMILY_CLOSURE: dict[str, tuple[tuple[float, float], ...]] = {
    "open": _OPEN,
    "spread": _OPEN,
    "point": ((0.0, 0.1), (0.75, 1.0), (0.75, 1.0), (0.75, 1.0), (0.3, 0.8)),
    "fist": ((0.85, 1.0),) * 4 + ((0.5, 0.9),),
    "pinch": ((0.35, 0.6), (0.0, 0.7), (0.0, 0.8), (0.0, 0.75), (0.3, 0.6)),
    "precision": ((0.25, 0.55),) * 4 + ((0.2, 0.5),),
    "power": ((0.5, 0.85),) * 4 + ((0.35, 0.75),),
}
# Abduction as a fraction of the limit towards spreading the fingers apart.
_FAMILY_SPREAD = {
    "open": 0.15, "spread": 0.9, "point": 0.0, "fist": 0.0, "pinch": 0.1, "precision": 0.2,
    "power": 0.0,
}  # fmt: skip
# Which sign of each digit's abduction spreads it from the middle finger (thumb: opposition).
_SPREAD_DIRECTION = (-1.0, 0.0, 1.0, 0.5, 1.0)
