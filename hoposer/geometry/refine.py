"""Fit the hand model to 2D evidence: a few Levenberg–Marquardt steps on θ, translation and β.

The network's hand is a good starting point but its 2D joints and its articulation can be far
off on real images. `refine_hand` moves the hand model's global rotation, articulation θ,
camera-space translation t and shape β so that the model agrees with whatever evidence there is:

- the network's own 2D joints (the model's joints, projected),
- a detector's 21 landmarks (MediaPipe Hands) with per-landmark weights (its visibility/presence
  when it reports them),
- the detector's metric "world" landmarks as a root-relative 3D prior (mean-centred, camera
  orientation),

with priors that keep the result a hand: joint-angle limits (`FLEXION_LIMITS`,
`ABDUCTION_LIMITS`, `TWIST_LIMITS`; PIPs and DIPs are hinges), a pose prior toward the network's θ
(and, in a stream, toward the previous frame's fit of the same hand), and β regularised toward the
network's β, moved toward the mean shape as far as needed to be a plausible hand
(`plausible_shape`: weak networks predict shapes that shrink hands to half their size). The
metric landmarks are turned from the detector's crop view onto the ray through the hand
(`ray_rotation`), and the global rotation starts from their palm (Kabsch), the translation from
the 2D evidence (`solve_translation`). The 2D residuals are the paper's §5 re-projection
residuals (`hoposer.geometry.consistency.reprojection_residuals`, normalised by the longer side of
the evidence's 2D box), with the pinhole camera instead of eq. 7's weak perspective.

Parameterisation. Each finger joint's rotation is θ_j = B_j c_j, where the columns of B_j are its
flexion, abduction and twist axes (`HandModel.joint_axes`, twist = the bone direction), so the
limits are bounds on c. The global rotation is updated multiplicatively (R ← exp(δ)·R). The
Jacobian is written by hand: a rotation at joint j moves a descendant point q by
(W_j·J_r(θ_j)·B_j·dc) × (q − o_j) (W_j: the joint's world rotation, J_r: the right Jacobian of
SO(3), o_j: the joint's position); β moves joints linearly along the kinematic chain. Bounds are
enforced by projection, with parameters held at an active bound left out of the step.

Landmark definitions. MediaPipe's landmarks are not the hand model's joints: its MCP row is more
slanted and cupped and its thumb CMC sits further palm-ward. Each landmark is the model joint plus
a fixed offset in the frame of the bone that carries it (`Kinematics.landmark_offsets`, data
fitted once per hand model, `LANDMARK_OFFSETS`), so β does not have to absorb the difference.

Only the 21 joints are needed (16 kinematic joints and 5 fingertips rigidly attached to the
distal joints), so the forward kinematics is a few small numpy products; everything is float64
and deterministic.
"""

import json
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from hoposer.geometry.camera import solve_translation
from hoposer.geometry.consistency import reprojection_residuals, reprojection_scale
from hoposer.geometry.skeleton import MANO_JOINTS_IN_OURS, NUM_JOINTS, PARENTS

#: Twist range (about the bone) of each of θ's 16 joints; the fingers have none (hinges and
#: two-axis MCPs), the thumb's CMC turns to oppose and its MCP rolls a little.
TWIST_LIMITS: np.ndarray = np.array(
    [[0.0, 0.0]] + [[0.0, 0.0]] * 12 + [[-0.6, 0.6], [-0.15, 0.15], [0.0, 0.0]]
)

#: Which evidence a refinement may use: `auto` every source available, `network` the network's
#: 2D joints only, `off` none (the network's raw hand).
REFINE_MODES: tuple[str, ...] = ("auto", "network", "off")

#: Names of the evidence sources, as recorded in the pose message.
EVIDENCE_NETWORK_2D = "network_2d"
EVIDENCE_LANDMARKS_2D = "landmarks_2d"
EVIDENCE_LANDMARKS_3D = "landmarks_3d"

#: MediaPipe landmark = model joint + offset (metres, in the rest frame of the bone carrying the
#: joint), per hand model, read from this file; fitted by `fit_landmark_offsets` on a real clip
#: (bench/fit_landmark_offsets.py). Models without an entry use zero offsets.
LANDMARK_OFFSETS_FILE = (
    Path(__file__).resolve().parent.parent / "model" / "hand" / "landmark_offsets.json"
)


def landmark_offsets(model_name: str) -> np.ndarray:
    """The stored `(21, 3)` landmark offsets of a hand model (zeros when none are stored)."""
    if LANDMARK_OFFSETS_FILE.is_file():
        stored = json.loads(LANDMARK_OFFSETS_FILE.read_text())
        if model_name in stored:
            return np.asarray(stored[model_name]["offsets"], np.float64).reshape(NUM_JOINTS, 3)
    return np.zeros((NUM_JOINTS, 3))


# Our joints grouped by depth (wrist = 0): each level's parents are in the level before.
_LEVELS: tuple[tuple[int, ...], ...] = (
    (1, 5, 9, 13, 17),
    (2, 6, 10, 14, 18),
    (3, 7, 11, 15, 19),
    (4, 8, 12, 16, 20),
)
# θ index (MANO joint) of each of our joints, −1 for the tips (they carry no rotation).
_MANO_OF_OURS = np.full(NUM_JOINTS, -1)
_MANO_OF_OURS[list(MANO_JOINTS_IN_OURS)] = np.arange(16)
# ancestors[k, m]: θ joint m rotates our joint k (m is a strict ancestor of k in the chain).
_ANCESTORS = np.zeros((NUM_JOINTS, 16), bool)
for _k in range(1, NUM_JOINTS):
    _p = PARENTS[_k]
    while _p >= 0:
        _ANCESTORS[_k, _MANO_OF_OURS[_p]] = True
        _p = PARENTS[_p]
_ANCESTORS[:, 0] = True  # the global rotation turns every point about the wrist
_PARENT_ARRAY = np.array(PARENTS)

# Parameter layout: global rotation increment (3), translation (3), then (`_Problem`) the free
# articulation coordinates and β.
_ROT, _TRANS = slice(0, 3), slice(3, 6)


@dataclass(frozen=True)
class Kinematics:
    """What the fit needs of a hand model: its joints at rest, shape directions and joint axes.

    Built once per model by `Kinematics.from_model`; pure data afterwards.
    """

    name: str
    rest: np.ndarray  #: (21, 3) joints of the flat hand at β = 0, wrist at the origin
    shape_dirs: np.ndarray  #: (21, 3, 10) joint motion per unit β (the models are linear in β)
    axes: np.ndarray  #: (16, 3, 3) columns: flexion, abduction, twist axis of each θ joint
    lower: np.ndarray  #: (16, 3) lower bounds of c (flexion, abduction, twist)
    upper: np.ndarray  #: (16, 3) upper bounds
    landmark_offsets: np.ndarray  #: (21, 3) detector landmark − model joint, bone frame
    bone_shape_dirs: np.ndarray  #: (20, 3, 10) bone vector motion per unit β

    @classmethod
    def from_model(cls, hand_model) -> "Kinematics":
        """Read a `HandModel`'s skeleton (a few forward passes; cache the result)."""
        from hoposer.model.hand.base import ABDUCTION_LIMITS, FLEXION_LIMITS

        rest = hand_model.rest_joints()
        shape_dirs = np.stack(
            [hand_model.rest_joints(np.eye(10)[k]) - rest for k in range(10)], axis=-1
        )
        flex, abduct = hand_model.joint_axes()
        twist = np.cross(flex, abduct)  # the bone direction: flex = d × n, abduct ⟂ d
        axes = np.stack([flex, abduct, twist], axis=-1)
        axes[0] = np.eye(3)
        limits = np.stack([FLEXION_LIMITS, ABDUCTION_LIMITS, TWIST_LIMITS], axis=1)  # (16, 3, 2)
        offsets = landmark_offsets(hand_model.name)
        return cls(
            name=hand_model.name,
            rest=rest,
            shape_dirs=shape_dirs,
            axes=axes,
            lower=limits[..., 0],
            upper=limits[..., 1],
            landmark_offsets=np.asarray(offsets, np.float64),
            bone_shape_dirs=shape_dirs[1:] - shape_dirs[list(PARENTS[1:])],
        )

    def theta_to_coords(self, theta: np.ndarray) -> np.ndarray:
        """θ `(48,)` → joint coordinates c `(16, 3)` (row 0: the global axis-angle)."""
        theta = np.asarray(theta, np.float64).reshape(16, 3)
        return np.einsum("jab,ja->jb", self.axes, theta)

    def coords_to_theta(self, coords: np.ndarray) -> np.ndarray:
        """Joint coordinates c `(16, 3)` → θ `(48,)`."""
        return np.einsum("jab,jb->ja", self.axes, coords).reshape(48)

    def limit_violation(self, theta: np.ndarray) -> np.ndarray:
        """How far (rad, ≥ 0) each joint's flexion, abduction and twist lie outside the limits.

        Returns:
            `(15, 3)` for θ joints 1..15 (the global rotation has no limits).
        """
        c = self.theta_to_coords(theta)[1:]
        return np.maximum(0.0, np.maximum(self.lower[1:] - c, c - self.upper[1:]))


@dataclass(frozen=True)
class Evidence:
    """The 2D/3D evidence for one hand, in the image the camera matrix describes.

    Attributes:
        camera_matrix: `(3, 3)` intrinsics.
        network_2d: `(21, 2)` the network's 2D joints (pixels), or None.
        landmarks_2d: `(21, 2)` the detector's landmarks (pixels, hoposer's order), or None.
        landmark_weights: `(21,)` per-landmark confidence in [0, 1] (visibility × presence), or
            None for all ones.
        landmarks_3d: `(21, 3)` the detector's metric landmarks (any origin, camera orientation),
            or None.
    """

    camera_matrix: np.ndarray
    network_2d: np.ndarray | None = None
    landmarks_2d: np.ndarray | None = None
    landmark_weights: np.ndarray | None = None
    landmarks_3d: np.ndarray | None = None

    def sources(self) -> tuple[str, ...]:
        """The evidence present, by name."""
        names = []
        if _usable(self.network_2d):
            names.append(EVIDENCE_NETWORK_2D)
        if _usable(self.landmarks_2d):
            names.append(EVIDENCE_LANDMARKS_2D)
            if _usable(self.landmarks_3d):
                names.append(EVIDENCE_LANDMARKS_3D)
        return tuple(names)

    def restricted(self, mode: str) -> "Evidence":
        """The evidence a refinement `mode` (`REFINE_MODES`) may use."""
        if mode not in REFINE_MODES:
            raise ValueError(f"refine mode must be one of {REFINE_MODES}, got {mode!r}")
        if mode == "auto":
            return self
        if mode == "network":
            return Evidence(self.camera_matrix, network_2d=self.network_2d)
        return Evidence(self.camera_matrix)


@dataclass(frozen=True)
class RefineOptions:
    """Weights and iteration count of the fit (defaults tuned on a real clip, not the bench)."""

    iterations: int = 3
    network_2d_weight: float = 1.0  #: weight of the network's 2D joints alone
    network_2d_weight_with_landmarks: float = 0.1  #: ... when the detector's landmarks exist
    landmarks_2d_weight: float = 1.0
    landmarks_3d_weight: float = 3.0  #: per metre
    pose_prior_weight: float = 0.05  #: per radian, toward the network's articulation
    #: per radian, toward the previous frame's fit of the same hand (when given)
    temporal_pose_weight: float = 0.3
    #: per unit β, toward the previous frame's β. Off: chained over frames, this prior lets β
    #: drift with the view, and the stabilizer's shape check compares β with its own past.
    temporal_shape_weight: float = 0.0
    #: per unit β, toward the network's (clipped) β; a float, or one weight per β component
    shape_prior_weight: float | tuple[float, ...] = 0.3
    shape_bound: float = 3.0  #: |β_k| is kept within this
    #: the network's β is trusted as the shape prior only as far as every bone of its rest hand
    #: stays within this factor of the mean shape's (see `plausible_shape`)
    shape_trust: tuple[float, float] = (0.9, 1.1)
    damping: float = 1e-3  #: Levenberg–Marquardt's initial λ
    #: turn the metric landmarks from the detector's crop (seen along the optical axis) to the
    #: ray through the hand (see `ray_rotation`)
    align_landmarks_3d_to_ray: bool = True


@dataclass(frozen=True)
class RefinedHand:
    """The fitted hand."""

    theta: np.ndarray  #: (48,) axis-angle, global rotation first (camera orientation)
    beta: np.ndarray  #: (10,)
    translation: np.ndarray  #: (3,) wrist position, camera frame
    joints: np.ndarray  #: (21, 3) model joints, camera frame
    evidence: tuple[str, ...]  #: the sources used
    reprojection: float  #: §5 re-projection distance to the main 2D evidence after the fit
    reprojection_px: float  #: mean pixel distance to the main 2D evidence after the fit
    iterations: int  #: accepted LM steps


def _usable(points) -> bool:
    return points is not None and bool(np.isfinite(np.asarray(points, np.float64)).all())


def rotation_matrices(vectors: np.ndarray) -> np.ndarray:
    """Rodrigues: axis-angle `(N, 3)` → rotation matrices `(N, 3, 3)`, float64.

    Example:
        >>> rotation_matrices(np.array([[0.0, 0.0, np.pi / 2]])).round(6)[0, 0].tolist()
        [0.0, -1.0, 0.0]
    """
    vectors = np.asarray(vectors, np.float64)
    angle_sq = (vectors**2).sum(-1)
    angle = np.sqrt(angle_sq)
    small = angle_sq < 1e-12
    safe = np.where(small, 1.0, angle)
    a = np.where(small, 1.0 - angle_sq / 6.0, np.sin(safe) / safe)
    b = np.where(small, 0.5 - angle_sq / 24.0, (1.0 - np.cos(safe)) / safe**2)
    K = _skew(vectors)
    return np.eye(3) + a[:, None, None] * K + b[:, None, None] * (K @ K)


def right_jacobians(vectors: np.ndarray) -> np.ndarray:
    """SO(3)'s right Jacobian `(N, 3, 3)`: exp(ω + dω) ≈ exp(ω)·exp(J_r(ω)·dω)."""
    angle_sq = (vectors**2).sum(-1)
    angle = np.sqrt(angle_sq)
    small = angle_sq < 1e-10
    safe = np.where(small, 1.0, angle)
    a = np.where(small, 0.5 - angle_sq / 24.0, (1.0 - np.cos(safe)) / safe**2)
    b = np.where(small, 1.0 / 6.0 - angle_sq / 120.0, (safe - np.sin(safe)) / safe**3)
    K = _skew(vectors)
    return np.eye(3) - a[:, None, None] * K + b[:, None, None] * (K @ K)


def _rotations_and_jacobians(vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """`rotation_matrices` and `right_jacobians` of the same vectors, sharing the work.

    The coefficients are evaluated at max(angle, 1e-4): below that their Taylor series differ
    from the value there by < 1e-8, and they multiply vanishing skew terms.
    """
    angle = np.maximum(np.sqrt((vectors**2).sum(-1)), 1e-4)
    sin, cos = np.sin(angle), np.cos(angle)
    a = (sin / angle)[:, None, None]
    b = ((1.0 - cos) / angle**2)[:, None, None]
    c = ((angle - sin) / angle**3)[:, None, None]
    K = _skew(vectors)
    K2 = K @ K
    eye = np.eye(3)
    return eye + a * K + b * K2, eye - b * K + c * K2


def rotation_vector(R: np.ndarray) -> np.ndarray:
    """A rotation matrix `(3, 3)` → axis-angle `(3,)` with angle in [0, π]."""
    cos = np.clip((np.trace(R) - 1.0) / 2.0, -1.0, 1.0)
    angle = np.arccos(cos)
    w = np.array([R[2, 1] - R[1, 2], R[0, 2] - R[2, 0], R[1, 0] - R[0, 1]])
    if angle < 1e-6:
        return 0.5 * w
    if np.pi - angle < 1e-4:  # near π: the axis from the symmetric part
        S = (R + np.eye(3)) / 2.0
        axis = S[np.argmax(np.diag(S))]
        axis = axis / np.linalg.norm(axis)
        if axis @ w < 0:
            axis = -axis
        return axis * angle
    return w * (angle / (2.0 * np.sin(angle)))


def _skew(v: np.ndarray) -> np.ndarray:
    K = np.zeros((*v.shape[:-1], 3, 3))
    K[..., 0, 1], K[..., 0, 2] = -v[..., 2], v[..., 1]
    K[..., 1, 0], K[..., 1, 2] = v[..., 2], -v[..., 0]
    K[..., 2, 0], K[..., 2, 1] = -v[..., 1], v[..., 0]
    return K


@dataclass
class _State:
    R0: np.ndarray  # (3, 3) global rotation
    t: np.ndarray  # (3,)
    c: np.ndarray  # (16, 3), row 0 unused
    beta: np.ndarray  # (10,)


class _Problem:
    """The fit's fixed data (evidence, weights, priors) and its residual/Jacobian evaluation.

    Parameters: the global rotation increment (3), translation (3), the articulation coordinates
    whose limits leave them any range (`free`, about 22 of 45), β (10).
    """

    def __init__(
        self, kin: Kinematics, evidence: Evidence, weights: dict, prior_c, prior_beta, opts
    ) -> None:
        self.kin, self.evidence, self.weights, self.opts = kin, evidence, weights, opts
        self.prior_c, self.prior_beta = prior_c, prior_beta
        span = (kin.upper[1:] - kin.lower[1:]).reshape(-1)
        self.free = np.flatnonzero(span > 1e-9)  # into c[1:].reshape(-1)
        self.free_joint = 1 + self.free // 3  # θ joint of each free coordinate
        self.free_axis = self.free % 3
        n = len(self.free)
        self.art = slice(6, 6 + n)
        self.beta_slice = slice(6 + n, 16 + n)
        self.size = 16 + n
        self.lower = kin.lower[1:].reshape(-1)[self.free]
        self.upper = kin.upper[1:].reshape(-1)[self.free]
        # Which parameters move each of our joints: the global ones always, a free coordinate
        # when its θ joint is an ancestor.
        self.moves = _ANCESTORS[:, self.free_joint]  # (21, n)
        self.pivot_rows = np.array(MANO_JOINTS_IN_OURS)[self.free_joint]  # our joint o_j
        prior_rows = np.zeros((n + 10, self.size))
        prior_rows[:n, self.art] = np.eye(n) * opts.pose_prior_weight
        self.shape_weights = np.broadcast_to(np.asarray(opts.shape_prior_weight, float), (10,))
        prior_rows[n:, self.beta_slice] = np.diag(self.shape_weights)
        self.prior_rows = prior_rows
        self.K = evidence.camera_matrix

    def step(self, s: _State, dx: np.ndarray) -> _State:
        R0 = rotation_matrices(dx[None, _ROT])[0] @ s.R0
        c = s.c.copy()
        flat = c[1:].reshape(-1)
        flat[self.free] = np.clip(flat[self.free] + dx[self.art], self.lower, self.upper)
        c[1:] = flat.reshape(15, 3)
        bound = self.opts.shape_bound
        beta = np.clip(s.beta + dx[self.beta_slice], -bound, bound)
        return _State(R0=R0, t=s.t + dx[_TRANS], c=c, beta=beta)

    def jacobian(self, points: np.ndarray, owners: np.ndarray, fk) -> np.ndarray:
        """∂points/∂params `(P, 3, size)` for points carried by the bones ending at `owners`."""
        joints, factors = fk[0], fk[3]
        P = len(points)
        J = np.empty((P, 3, self.size))
        # Global increment δ: q moves by δ × (q − t).
        lever = points - joints[0]
        J[:, :, _ROT] = -_skew(lever)
        J[:, :, _TRANS] = np.eye(3)
        # Free coordinate (j, e): q moves by f × (q − o_j), f = factors_j[:, e], where j moves q.
        f = factors[self.free_joint, :, self.free_axis]  # (n, 3)
        S = _skew(f)  # (n, 3, 3)
        cross = np.einsum("nab,pb->pan", S, points)
        cross -= np.einsum("nab,nb->an", S, joints[self.pivot_rows])[None]
        cross *= self.moves[owners][:, None, :]
        J[:, :, self.art] = cross
        # β: each bone's rest vector rotated by its parent's world rotation, along the chain.
        J[:, :, self.beta_slice] = fk[5][owners]
        return J

    def evaluate(self, s: _State):
        """Stacked residuals `(N,)`, Jacobian `(N, size)`, the joints and landmarks `(21, 3)`."""
        fk = _forward(self.kin, s)
        joints, landmarks = fk[0], fk[1]
        w, ev = self.weights, self.evidence
        res, jac = [], []
        use_network, use_landmarks = w["network_2d"] > 0, w["landmarks_2d"] is not None
        points = np.concatenate(
            ([joints] if use_network else []) + ([landmarks] if use_landmarks else [])
        )
        owners = _OWNERS[: len(points)]
        Jall = self.jacobian(points, owners, fk)
        pixels, Jpix = _project(points, self.K, Jall)
        if use_network:
            res.append(
                w["network_2d"] * reprojection_residuals(pixels[:21], ev.network_2d, w["scale"])
            )
            jac.append(w["network_2d"] / w["scale"] * Jpix[:21])
        if use_landmarks:
            Jl, Jpix = Jall[-21:], Jpix[-21:]
            lw = w["landmarks_2d"][:, None]
            res.append(lw * reprojection_residuals(pixels[-21:], ev.landmarks_2d, w["scale"]))
            jac.append(lw[:, :, None] / w["scale"] * Jpix)
            if w["landmarks_3d"] > 0:
                w3 = w["landmarks_3d"]
                centred = landmarks - landmarks.sum(axis=0) / NUM_JOINTS
                res.append(w3 * (centred - ev.landmarks_3d))
                jac.append(w3 * (Jl - Jl.sum(axis=0) / NUM_JOINTS))
        flat = s.c[1:].reshape(-1)[self.free]
        prior_c = self.prior_c[1:].reshape(-1)[self.free]
        res.append(self.opts.pose_prior_weight * (flat - prior_c))
        res.append(self.shape_weights * (s.beta - self.prior_beta))
        residual = np.concatenate([r.reshape(-1) for r in res])
        jacobian = np.concatenate([j.reshape(-1, self.size) for j in jac] + [self.prior_rows])
        return residual, jacobian, (joints, landmarks)


_ROTATION_LEVELS = tuple(
    (np.array(level), _PARENT_ARRAY[list(level)], _MANO_OF_OURS[list(level)])
    for level in _LEVELS[:3]  # the tips carry no rotation
)
_BONE_PARENTS = _PARENT_ARRAY[1:]  # bone b ends at joint b + 1
# _CHAIN[k, b]: bone b lies on the path from the wrist to joint k.
_CHAIN = np.zeros((NUM_JOINTS, NUM_JOINTS - 1))
for _k in range(1, NUM_JOINTS):
    _j = _k
    while _j > 0:
        _CHAIN[_k, _j - 1] = 1.0
        _j = PARENTS[_j]
_ROTATING = np.array(MANO_JOINTS_IN_OURS)
_OWNERS = np.concatenate([np.arange(NUM_JOINTS)] * 2)
_BONE_FRAME = np.maximum(_PARENT_ARRAY, 0)


def _forward(kin: Kinematics, s: _State):
    """Forward kinematics of state `s`.

    Returns:
        joints `(21, 3)`, landmark points `(21, 3)`, the world rotation of the bone leaving each
        joint `(21, 3, 3)` (rows of the tips unused), each θ joint's Jacobian factor W_j·J_r·B_j
        `(16, 3, 3)`, the rest joints `(21, 3)` and ∂joints/∂β `(21, 3, 10)`.
    """
    theta = (kin.axes @ s.c[:, :, None])[..., 0]
    theta[0] = 0.0
    local, right = _rotations_and_jacobians(theta)
    world = np.empty((NUM_JOINTS, 3, 3))
    world[0] = s.R0
    for idx, par, mano in _ROTATION_LEVELS:
        world[idx] = world[par] @ local[mano]
    parent_world = world[_BONE_PARENTS]  # (20, 3, 3): the rotation of each bone
    rest = kin.rest + kin.shape_dirs @ s.beta
    bones = (parent_world @ (rest[1:] - rest[_BONE_PARENTS])[:, :, None])[..., 0]
    joints = s.t + _CHAIN @ bones
    dbeta = (_CHAIN @ (parent_world @ kin.bone_shape_dirs).reshape(20, 30)).reshape(21, 3, 10)
    factors = world[_ROTATING] @ right @ kin.axes
    landmarks = joints + (world[_BONE_FRAME] @ kin.landmark_offsets[:, :, None])[..., 0]
    return joints, landmarks, world, factors, rest, dbeta


def _project(points: np.ndarray, K: np.ndarray, J: np.ndarray):
    """Pixels `(P, 2)` and their Jacobian `(P, 2, N)` from camera points and theirs."""
    uvw = points @ K.T
    z = np.maximum(uvw[:, 2:3], 1e-6)
    pixels = uvw[:, :2] / z
    # d(uvw_i / z)/dP = (K[i] − pixel_i · e_z) / z
    dp = K[None, :2, :] / z[:, :, None]
    dp[:, :, 2] -= pixels / z
    return pixels, dp @ J


def ray_rotation(pixel: np.ndarray, camera_matrix: np.ndarray) -> np.ndarray:
    """The smallest rotation `(3, 3)` taking the optical axis to the ray through `pixel`.

    A landmark model sees the hand in a crop, as if on the optical axis; its metric landmarks
    are in that view's orientation. Off-centre, the camera sees the hand along its own ray, so
    the landmarks are turned by this rotation to be in the camera's orientation.

    Example:
        >>> K = np.array([[500.0, 0, 320], [0, 500, 240], [0, 0, 1]])
        >>> ray_rotation(np.array([320.0, 240.0]), K).round(6).tolist() == np.eye(3).tolist()
        True
    """
    ray = np.linalg.solve(camera_matrix, np.array([pixel[0], pixel[1], 1.0]))
    ray /= np.linalg.norm(ray)
    axis = np.cross([0.0, 0.0, 1.0], ray)
    sine = np.linalg.norm(axis)
    if sine < 1e-12:
        return np.eye(3)
    return rotation_matrices((axis / sine * np.arctan2(sine, ray[2]))[None])[0]


def plausible_shape(kin: Kinematics, beta: np.ndarray, band=(0.9, 1.1)) -> np.ndarray:
    """The network's β moved toward the mean shape (β = 0) just far enough to be a plausible hand.

    Returns `s·β` with the largest s in {0, 1/32, ..., 1} for which every bone of the rest hand is
    within `band` times the mean shape's bone. An untrained or off-domain network predicts
    shapes that shrink hands to half their size; this keeps such a β from dragging the fit, while
    a plausible β passes unchanged.
    """
    beta = np.asarray(beta, np.float64)
    scales = _SHAPE_SCALES[:, None] * beta  # (S, 10)
    joints = kin.rest + np.einsum("jck,sk->sjc", kin.shape_dirs, scales)
    parents = _PARENT_ARRAY[1:]
    rest_bones = np.linalg.norm(kin.rest[1:] - kin.rest[parents], axis=1)
    ratio = np.linalg.norm(joints[:, 1:] - joints[:, parents], axis=2) / rest_bones
    ok = np.all((ratio >= band[0]) & (ratio <= band[1]), axis=1)
    # The band holds at s = 0; the largest s from which every smaller one holds too.
    first_bad = np.flatnonzero(~ok)
    last = len(_SHAPE_SCALES) - 1 if len(first_bad) == 0 else max(first_bad[0] - 1, 0)
    return _SHAPE_SCALES[last] * beta


_SHAPE_SCALES = np.linspace(0.0, 1.0, 33)


def _kabsch(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """The rotation R minimising ‖R·(source − mean) − (target − mean)‖."""
    a, b = source - source.mean(0), target - target.mean(0)
    U, _, Vt = np.linalg.svd(b.T @ a)
    d = np.sign(np.linalg.det(U @ Vt))
    return U @ np.diag([1.0, 1.0, d]) @ Vt


def refine_hand(
    kin: Kinematics,
    theta: np.ndarray,
    beta: np.ndarray,
    translation: np.ndarray,
    evidence: Evidence,
    options: RefineOptions | None = None,
    previous: RefinedHand | None = None,
) -> RefinedHand | None:
    """Fit the hand to the evidence, starting from (and regularised toward) the network's hand.

    With `previous` (the last frame's fit of the same hand) the fit starts from its articulation
    and shape and is also drawn toward them (`temporal_*_weight`): a hand moves little between
    frames, and a single frame's evidence does not pin every joint.

    Args:
        kin: the hand model's `Kinematics`.
        theta: `(48,)` the network's θ (camera orientation).
        beta: `(10,)` the network's β.
        translation: `(3,)` the network's wrist position (NaN when it could not be placed).
        evidence: what to fit to (`Evidence.restricted` selects by refine mode).
        options: weights and iterations.
        previous: the previous frame's fit of this hand, or None.

    Returns:
        The refined hand, or None when there is no evidence or no way to place the hand (also
        when the network's θ or β is not finite: a broken network is reported, not disguised).
    """
    opts = options or RefineOptions()
    sources = evidence.sources()
    if not sources or not (_usable(theta) and _usable(beta)):
        return None
    K = np.asarray(evidence.camera_matrix, np.float64)
    has_landmarks = EVIDENCE_LANDMARKS_2D in sources
    weights: dict = {"network_2d": 0.0, "landmarks_2d": None, "landmarks_3d": 0.0}
    if EVIDENCE_NETWORK_2D in sources:
        weights["network_2d"] = (
            opts.network_2d_weight_with_landmarks if has_landmarks else opts.network_2d_weight
        )
    main_2d = evidence.landmarks_2d if has_landmarks else evidence.network_2d
    main_2d = np.asarray(main_2d, np.float64)
    weights["scale"] = reprojection_scale(main_2d)
    if has_landmarks:
        lw = evidence.landmark_weights
        lw = np.ones(NUM_JOINTS) if lw is None else np.clip(np.asarray(lw, np.float64), 0, 1)
        weights["landmarks_2d"] = opts.landmarks_2d_weight * np.sqrt(lw)
        if EVIDENCE_LANDMARKS_3D in sources:
            weights["landmarks_3d"] = opts.landmarks_3d_weight
    landmarks_3d = None
    if weights["landmarks_3d"] > 0:
        landmarks_3d = np.asarray(evidence.landmarks_3d, np.float64)
        landmarks_3d = landmarks_3d - landmarks_3d.mean(axis=0)
        if opts.align_landmarks_3d_to_ray:
            centre = (main_2d.min(axis=0) + main_2d.max(axis=0)) / 2
            landmarks_3d = landmarks_3d @ ray_rotation(centre, K).T
    network_2d = evidence.network_2d
    evidence = Evidence(
        K,
        network_2d=None if network_2d is None else np.asarray(network_2d, np.float64),
        landmarks_2d=main_2d if has_landmarks else None,
        landmarks_3d=landmarks_3d,
    )

    # Start: the network's articulation inside the limits, β clipped.
    prior_c = kin.theta_to_coords(theta)
    prior_c[1:] = np.clip(prior_c[1:], kin.lower[1:], kin.upper[1:])
    prior_beta = plausible_shape(kin, beta, opts.shape_trust)
    prior_beta = np.clip(prior_beta, -opts.shape_bound, opts.shape_bound)
    start_c, start_beta = prior_c.copy(), prior_beta.copy()
    if previous is not None:
        # Two quadratic priors on the same variables are one, toward their weighted mean.
        start_c = kin.theta_to_coords(previous.theta)
        if opts.temporal_shape_weight > 0:
            start_beta = previous.beta.copy()
        w_net, w_prev = opts.pose_prior_weight**2, opts.temporal_pose_weight**2
        prior_c = (w_net * prior_c + w_prev * start_c) / (w_net + w_prev)
        s_net = np.broadcast_to(np.asarray(opts.shape_prior_weight, float), (10,)) ** 2
        s_prev = opts.temporal_shape_weight**2
        prior_beta = (s_net * prior_beta + s_prev * start_beta) / (s_net + s_prev)
        opts = replace(
            opts,
            pose_prior_weight=float(np.sqrt(w_net + w_prev)),
            shape_prior_weight=tuple(np.sqrt(s_net + s_prev)),
        )
    R0 = rotation_matrices(np.asarray(theta, np.float64)[None, :3])[0]
    s = _State(R0=R0, t=np.zeros(3), c=start_c, beta=start_beta)
    # Orientation from the metric landmarks' palm when they exist (the network's is often off),
    # then the translation that best explains the main 2D evidence.
    fk = _forward(kin, s)
    points = fk[1] if has_landmarks else fk[0]  # about the wrist at the origin
    if landmarks_3d is not None:
        palm = [0, 1, 5, 9, 13, 17]
        turn = _kabsch(fk[1][palm], landmarks_3d[palm])
        s.R0 = turn @ s.R0
        points = points @ turn.T
    try:
        point_weights = weights["landmarks_2d"] ** 2 if has_landmarks else None
        s.t = solve_translation(points, main_2d, K, point_weights)
    except ValueError:
        start_t = np.asarray(translation, np.float64)
        if not np.isfinite(start_t).all() or start_t[2] <= 0:
            return None
        s.t = start_t.copy()

    problem = _Problem(kin, evidence, weights, prior_c, prior_beta, opts)
    residual, jac, points = problem.evaluate(s)
    cost = residual @ residual
    lam = opts.damping
    accepted = 0
    art, bslice = problem.art, problem.beta_slice
    for _ in range(opts.iterations):
        g = jac.T @ residual
        H = jac.T @ jac
        # Parameters at an active bound whose gradient pushes outward stay where they are.
        c_free = s.c[1:].reshape(-1)[problem.free]
        moving = np.ones(problem.size, bool)
        moving[art] = ~(
            ((c_free <= problem.lower + 1e-9) & (g[art] > 0))
            | ((c_free >= problem.upper - 1e-9) & (g[art] < 0))
        )
        at_bound = np.abs(s.beta) >= opts.shape_bound - 1e-9
        moving[bslice] = ~(at_bound & (np.sign(s.beta) * g[bslice] < 0))
        Hm = H[np.ix_(moving, moving)]
        A = Hm + lam * np.diag(np.diag(Hm) + 1e-6)
        dx = np.zeros(problem.size)
        dx[moving] = np.linalg.solve(A, -g[moving])
        candidate = problem.step(s, dx)
        new_res, new_jac, new_points = problem.evaluate(candidate)
        new_cost = new_res @ new_res
        if new_cost < cost:
            s, residual, jac, points, cost = candidate, new_res, new_jac, new_points, new_cost
            lam = max(lam / 10.0, 1e-7)
            accepted += 1
        else:
            lam *= 10.0

    theta_out = kin.coords_to_theta(s.c)
    theta_out[:3] = rotation_vector(s.R0)
    joints = points[0]
    projected = points[1 if has_landmarks else 0] @ K.T
    projected = projected[:, :2] / projected[:, 2:3]
    residuals = reprojection_residuals(projected, main_2d, weights["scale"])
    reprojection = float(np.linalg.norm(residuals))
    reprojection_px = float(np.linalg.norm(residuals, axis=1).mean() * weights["scale"])
    return RefinedHand(
        theta=theta_out,
        beta=s.beta.copy(),
        translation=s.t.copy(),
        joints=joints,
        evidence=sources,
        reprojection=reprojection,
        reprojection_px=reprojection_px,
        iterations=accepted,
    )


def _state_of(kin: Kinematics, theta: np.ndarray, beta: np.ndarray, translation) -> _State:
    return _State(
        R0=rotation_matrices(np.asarray(theta, np.float64)[None, :3])[0],
        t=np.asarray(translation, np.float64),
        c=kin.theta_to_coords(theta),
        beta=np.asarray(beta, np.float64),
    )


def posed_joints(
    kin: Kinematics, theta: np.ndarray, beta: np.ndarray, translation: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The model's joints and the detector-landmark points `(21, 3)` each, for θ, β, t.

    The joints equal the hand model's own (`HandModel.forward(...).joints`; the tips are taken
    as rigid on the distal bone, exact for the stand-in, MANO's pose blend shapes aside).

    Example:
        >>> from hoposer.model.hand.standin import StandInHand
        >>> kin = Kinematics.from_model(StandInHand())
        >>> joints, _ = posed_joints(kin, np.zeros(48), np.zeros(10), np.zeros(3))
        >>> bool(np.allclose(joints, kin.rest))
        True
    """
    fk = _forward(kin, _state_of(kin, theta, beta, translation))
    return fk[0], fk[1]


#: The landmarks whose definitions differ most (the MCP row and the thumb's CMC, in the palm).
PALM_LANDMARKS: tuple[int, ...] = (1, 5, 9, 13, 17)


def fit_landmark_offsets(
    kin: Kinematics,
    samples: list[Evidence],
    rounds: int = 5,
    landmarks: tuple[int, ...] = PALM_LANDMARKS,
) -> tuple[np.ndarray, float]:
    """The detector-landmark offsets (`Kinematics.landmark_offsets`) that best explain `samples`.

    Alternates: fit every sample (articulation free within the limits, β restricted to overall
    size, so the definition difference cannot hide in the shape), then move each landmark's
    offset by the mean, in its bone's frame, of what the metric landmarks still disagree by.

    Args:
        kin: the hand model's kinematics (its current offsets are the start).
        samples: evidence with `landmarks_2d` and `landmarks_3d` (right-hand image).
        rounds: alternations.
        landmarks: which landmarks get an offset (the rest keep theirs).

    Returns:
        The offsets `(21, 3)` and the final mean 3D disagreement (metres).
    """
    opts = RefineOptions(
        iterations=8,
        pose_prior_weight=0.01,
        shape_prior_weight=(0.01,) + (10.0,) * 9,
        network_2d_weight_with_landmarks=0.0,
    )
    offsets = kin.landmark_offsets.copy()
    chosen = list(landmarks)
    error = float("nan")
    for _ in range(rounds):
        current = replace(kin, landmark_offsets=offsets)
        updates, errors = [], []
        for evidence in samples:
            world = evidence.landmarks_3d - evidence.landmarks_3d.mean(axis=0)
            start = np.zeros(48)
            fit = refine_hand(current, start, np.zeros(10), np.full(3, np.nan), evidence, opts)
            if fit is None:
                continue
            fk = _forward(current, _state_of(current, fit.theta, fit.beta, fit.translation))
            points, frames = fk[1], fk[2][_BONE_FRAME]
            miss = world - (points - points.mean(axis=0))
            updates.append(np.einsum("kba,kb->ka", frames, miss))  # into each bone's frame
            errors.append(np.linalg.norm(miss, axis=1).mean())
        update = np.mean(updates, axis=0)
        # A shift shared by every landmark is not observable from centred landmarks (at rest all
        # bone frames coincide, so the mean update is that shift).
        update -= update.mean(axis=0)
        offsets[chosen] += update[chosen]
        error = float(np.mean(errors))
    return offsets, error
