"""A procedurally generated right hand with MANO's parameterisation (no licensed data).

Same interface and semantics as MANO: θ `(B, 48)` axis-angle (global rotation, then MANO's 15
joints in its kinematic order), β `(B, 10)`, 16 kinematic joints + 5 fingertip vertices = 21
joints, linear blend skinning, output re-centred on the wrist and in hoposer's joint order.

Frame (the rest hand, θ = 0, resembling MANO's template layout): the wrist joint at the origin,
fingers pointing along −x, the palm facing −y (the back of the hand faces +y), the thumb on the +z
side, the little finger on −z. Every θ triplet is a rotation about the rest frame's axes, so the
four fingers flex (curl towards the palm) by a *positive* rotation about +z; the thumb, which
points along (−0.62, −0.22, 0.75) at rest, flexes about `d × n` (its direction × the palm
normal −y), see `HandModel.joint_axes`. Sizes at β = 0: wrist→middle_mcp 0.090 m,
wrist→middle fingertip 0.180 m.

β (linear shape blend shapes, like MANO's; meanings per unit, see `BETA_MEANINGS`): β0 overall
size, β1 finger length, β2 palm width, β3 finger thickness, β4 palm length, β5 thumb length,
β6 little-finger length, β7 palm thickness, β8 fingertip (distal segment) length, β9 fingertip
taper.

Limits (documented, not hidden): a low-poly mesh (~1150 vertices) of a palm slab and tapered finger
tubes with rounded tips; no pose-corrective blend shapes, no skin folds; finger tubes start inside
the palm, so strong MCP flexion can show the tube's base through the back of the hand. Its θ and β
are NOT interchangeable with real MANO parameters: labels record which model made them.
"""

import numpy as np
import torch

from hoposer.geometry.rotations import axis_angle_to_matrix
from hoposer.geometry.skeleton import MANO_PARENTS
from hoposer.model.hand.base import HandModel, HandOutput, check_inputs, finish

#: What one unit of each β does to the stand-in hand.
BETA_MEANINGS: tuple[str, ...] = (
    "overall size, +7 % per unit",
    "length of the four fingers, +5 % per unit",
    "palm width (and knuckle spacing), +5 % per unit",
    "finger and thumb thickness, +8 % per unit",
    "palm length (wrist to knuckles), +5 % per unit",
    "thumb length, +6 % per unit",
    "little-finger length, +6 % per unit",
    "palm thickness, +8 % per unit",
    "fingertip (distal segment) length of all five digits, +6 % per unit",
    "fingertip taper (tip radius), +8 % per unit",
)
_BETA_STEP = np.array([0.07, 0.05, 0.05, 0.08, 0.05, 0.06, 0.06, 0.08, 0.06, 0.08])

# The four fingers in MANO's chain order (index, middle, pinky, ring): knuckle (x, z), splay
# angle towards +z (rad), segment lengths mcp→pip, pip→dip, dip→tip (m), radius at base and tip.
_FINGERS: tuple[tuple[float, float, float, tuple[float, float, float], float, float], ...] = (
    (-0.0860, 0.0240, 0.07, (0.0400, 0.0240, 0.0210), 0.0095, 0.0075),  # index
    (-0.0900, 0.0030, 0.00, (0.0430, 0.0260, 0.0210), 0.0098, 0.0078),  # middle
    (-0.0770, -0.0340, -0.16, (0.0320, 0.0190, 0.0190), 0.0082, 0.0065),  # pinky
    (-0.0850, -0.0170, -0.07, (0.0400, 0.0250, 0.0210), 0.0092, 0.0072),  # ring
)
_THUMB_CMC = (-0.0240, -0.0060, 0.0190)
_THUMB_DIR = (-0.62, -0.22, 0.75)
_THUMB_LENGTHS = (0.0380, 0.0320, 0.0270)
_THUMB_RADII = (0.0140, 0.0085)

_RING = 10  # vertices around a finger
_BODY_RINGS, _CAP_RINGS = 14, 3
_PALM_RING, _PALM_RINGS = 24, 10
_BLEND = 0.005  # half-width (m) of the skinning blend across a finger joint
_LEVELS = ((1, 4, 7, 10, 13), (2, 5, 8, 11, 14), (3, 6, 9, 12, 15))  # MANO joints by depth


class _Mesh:
    """Accumulates closed parts: vertices, faces (outward), skinning weights, tip vertices."""

    def __init__(self) -> None:
        self.vertices: list[np.ndarray] = []
        self.faces: list[np.ndarray] = []
        self.weights: list[np.ndarray] = []
        self.count = 0

    def add(self, rings: np.ndarray, weights: np.ndarray, start: np.ndarray, end: np.ndarray):
        """Add a closed tube: `rings (R, K, 3)`, per-ring `weights (R, 16)`, two end points.

        Returns:
            The index of the `end` vertex.
        """
        n_rings, k = rings.shape[:2]
        base = self.count
        ring = lambda i, j: base + 1 + i * k + (j % k)  # noqa: E731
        faces = []
        for i in range(n_rings - 1):
            for j in range(k):
                faces += [(ring(i, j), ring(i + 1, j), ring(i + 1, j + 1))]
                faces += [(ring(i, j), ring(i + 1, j + 1), ring(i, j + 1))]
        last = base + 1 + n_rings * k
        for j in range(k):
            faces += [(base, ring(0, j), ring(0, j + 1))]
            faces += [(last, ring(n_rings - 1, j + 1), ring(n_rings - 1, j))]
        verts = np.concatenate([start[None], rings.reshape(-1, 3), end[None]])
        faces = np.asarray(faces, dtype=np.int64)
        # Outward winding: the signed volume of a closed surface is positive.
        tri = verts[faces - base]
        if np.einsum("ij,ij->i", tri[:, 0], np.cross(tri[:, 1], tri[:, 2])).sum() < 0:
            faces = faces[:, ::-1]
        w = np.concatenate([weights[:1], np.repeat(weights, k, axis=0), weights[-1:]])
        self.vertices.append(verts)
        self.faces.append(faces)
        self.weights.append(w)
        self.count += len(verts)
        return last


def _frame(d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Two unit axes across direction `d`: towards the back of the hand (+y), and sideways."""
    up = np.array([0.0, 1.0, 0.0])
    up = up - (up @ d) * d
    up /= np.linalg.norm(up)
    return up, np.cross(d, up)


def _digit(mesh: _Mesh, base, d, lengths, radii, joints: tuple[int, int, int], back: float):
    """A tapered tube with a rounded tip from `base` along `d`; returns joints (4, 3), tip id."""
    lengths = np.asarray(lengths)
    total = lengths.sum()
    r0, r1 = radii
    u = np.linspace(0.0, 1.0, _BODY_RINGS)
    s = np.concatenate([-back + (total - r1 + back) * u, np.zeros(_CAP_RINGS)])
    r = np.concatenate([r0 + (r1 - r0) * u, np.zeros(_CAP_RINGS)])
    alpha = np.arange(1, _CAP_RINGS + 1) / (_CAP_RINGS + 1) * np.pi / 2
    s[_BODY_RINGS:] = total - r1 + r1 * np.sin(alpha)
    r[_BODY_RINGS:] = r1 * np.cos(alpha)
    up, side = _frame(d)
    phi = np.linspace(0.0, 2 * np.pi, _RING, endpoint=False)
    offsets = 0.85 * np.cos(phi)[:, None] * up + np.sin(phi)[:, None] * side  # (K, 3)
    rings = base + s[:, None, None] * d + r[:, None, None] * offsets
    # Skinning by arc length, blended across the two inner joints (weights fixed at β = 0 below).
    s1, s2 = lengths[0], lengths[0] + lengths[1]
    t1 = np.clip((s - s1) / (2 * _BLEND) + 0.5, 0.0, 1.0)
    t2 = np.clip((s - s2) / (2 * _BLEND) + 0.5, 0.0, 1.0)
    weights = np.zeros((len(s), 16))
    weights[:, joints[0]], weights[:, joints[1]], weights[:, joints[2]] = 1 - t1, t1 - t2, t2
    tip = mesh.add(rings, weights, base - back * d, base + total * d)
    cum = np.concatenate([[0.0], np.cumsum(lengths)])
    return base + cum[:, None] * d, tip


def _palm(mesh: _Mesh, x0: float, x1: float, z0, z1, w0, w1, h0, h1) -> None:
    """The palm: a rounded slab from the wrist (x0) to the knuckles (x1), centred on y = 0."""
    u = np.linspace(0.0, 1.0, _PALM_RINGS)
    x = np.concatenate([[x0 + 0.004], x0 + (x1 - x0) * u, [x1 - 0.004]])
    shrink = np.concatenate([[0.7], np.ones(_PALM_RINGS), [0.7]])
    z = np.concatenate([[z0], z0 + (z1 - z0) * u, [z1]])
    w = np.concatenate([[w0], w0 + (w1 - w0) * u, [w1]]) * shrink
    h = np.concatenate([[h0], h0 + (h1 - h0) * u, [h1]]) * shrink
    phi = np.linspace(0.0, 2 * np.pi, _PALM_RING, endpoint=False)
    c, sn = np.cos(phi), np.sin(phi)
    ey = np.sign(c) * np.abs(c) ** (2 / 3)  # superellipse (exponent 3): a rounded rectangle
    ez = np.sign(sn) * np.abs(sn) ** (2 / 3)
    rings = np.zeros((len(x), _PALM_RING, 3))
    rings[..., 0] = x[:, None]
    rings[..., 1] = h[:, None] * ey
    rings[..., 2] = z[:, None] + w[:, None] * ez
    weights = np.zeros((len(x), 16))
    weights[:, 0] = 1.0
    mesh.add(rings, weights, np.array([x0 + 0.006, 0.0, z0]), np.array([x1 - 0.006, 0.0, z1]))


def _generate(f: np.ndarray) -> dict[str, np.ndarray]:
    """The rest hand for shape factors `f (10,)` (β before linearisation), in MANO's order."""
    size, flen, pw, thick, pl, tl, pk, pt, dl, taper = 1.0 + _BETA_STEP * f
    mesh = _Mesh()
    _palm(
        mesh,
        0.015 * pl,
        -0.084 * pl,
        -0.006 * pw,
        -0.004 * pw,
        0.030 * pw,
        0.043 * pw,
        0.014 * pt,
        0.011 * pt,
    )
    joints = np.zeros((16, 3))
    tips = {}
    for i, (x, z, splay, lengths, r0, r1) in enumerate(_FINGERS):
        d = np.array([-np.cos(splay), 0.0, np.sin(splay)])
        scale = np.array([flen, flen, flen * dl]) * (pk if i == 2 else 1.0)
        ids = (1 + 3 * i, 2 + 3 * i, 3 + 3 * i)
        chain, tips[i] = _digit(
            mesh,
            np.array([x * pl, 0.0, z * pw]),
            d,
            np.asarray(lengths) * scale,
            (r0 * thick, r1 * thick * taper),
            ids,
            back=0.006,
        )
        joints[list(ids)] = chain[:3]
    d = np.asarray(_THUMB_DIR) / np.linalg.norm(_THUMB_DIR)
    cmc = np.array([_THUMB_CMC[0] * pl, _THUMB_CMC[1], _THUMB_CMC[2] * pw])
    chain, tips[4] = _digit(
        mesh,
        cmc,
        d,
        np.asarray(_THUMB_LENGTHS) * np.array([tl, tl, tl * dl]),
        (_THUMB_RADII[0] * thick, _THUMB_RADII[1] * thick * taper),
        (13, 14, 15),
        back=0.012,
    )
    joints[[13, 14, 15]] = chain[:3]
    vertices = np.concatenate(mesh.vertices) * size
    return {
        "vertices": vertices,
        "joints": joints * size,
        "faces": np.concatenate(mesh.faces),
        "weights": np.concatenate(mesh.weights),
        # HO-3D's tip order: thumb, index, middle, ring, pinky.
        "tips": np.array([tips[4], tips[0], tips[1], tips[3], tips[2]], dtype=np.int64),
    }


class StandInHand(HandModel):
    """The procedural stand-in for MANO (see the module docstring for frame, β and limits).

    Built in code at construction (a few milliseconds), deterministic, differentiable in θ and β,
    batched, in θ's dtype (float32 or float64) and device.
    """

    name = "standin"

    def __init__(self) -> None:
        super().__init__()
        rest = _generate(np.zeros(10))
        shapedirs, joint_dirs = [], []
        for k in range(10):
            moved = _generate(np.eye(10)[k])
            shapedirs.append(moved["vertices"] - rest["vertices"])
            joint_dirs.append(moved["joints"] - rest["joints"])
        self.faces = rest["faces"]
        self.num_vertices = len(rest["vertices"])
        self.tip_vertices: tuple[int, ...] = tuple(int(i) for i in rest["tips"])
        buffers = {
            "v_template": rest["vertices"],
            "shapedirs": np.stack(shapedirs, axis=-1),  # (V, 3, 10)
            "j_template": rest["joints"],
            "joint_dirs": np.stack(joint_dirs, axis=-1),  # (16, 3, 10)
            "lbs_weights": rest["weights"],  # (V, 16)
        }
        for key, value in buffers.items():
            self.register_buffer(key, torch.from_numpy(value), persistent=False)

    def forward(
        self,
        theta: torch.Tensor,
        beta: torch.Tensor | None = None,
        translation: torch.Tensor | None = None,
    ) -> HandOutput:
        """Pose and shape the hand; see `HandModel.forward`."""
        theta, beta = check_inputs(theta, beta, translation)
        batch = theta.shape[0]

        def buf(t: torch.Tensor) -> torch.Tensor:
            return t.to(device=theta.device, dtype=theta.dtype)

        v = buf(self.v_template) + torch.einsum("vck,bk->bvc", buf(self.shapedirs), beta)
        J = buf(self.j_template) + torch.einsum("jck,bk->bjc", buf(self.joint_dirs), beta)
        R = axis_angle_to_matrix(theta.reshape(batch, 16, 3))
        rot: list[torch.Tensor] = [R[:, 0]] + [R[:, 0]] * 15
        trans: list[torch.Tensor] = [J[:, 0]] * 16
        for level in _LEVELS:
            idx, par = list(level), [MANO_PARENTS[j] for j in level]
            prot = torch.stack([rot[p] for p in par], 1)  # (B, 5, 3, 3)
            ptrans = torch.stack([trans[p] for p in par], 1)
            lrot = prot @ R[:, idx]
            ltrans = (prot @ (J[:, idx] - J[:, par])[..., None])[..., 0] + ptrans
            for n, j in enumerate(idx):
                rot[j], trans[j] = lrot[:, n], ltrans[:, n]
        G_rot, G_t = torch.stack(rot, 1), torch.stack(trans, 1)  # (B, 16, 3, 3), (B, 16, 3)
        A_t = G_t - (G_rot @ J[..., None])[..., 0]  # the bone transforms applied to rest points
        W = buf(self.lbs_weights)
        T_rot = torch.einsum("vj,bjik->bvik", W, G_rot)
        T_t = torch.einsum("vj,bji->bvi", W, A_t)
        vertices = torch.einsum("bvik,bvk->bvi", T_rot, v) + T_t
        joints = torch.cat([G_t, vertices[:, list(self.tip_vertices)]], 1)
        return finish(joints, vertices, translation)
