"""HO-3D (v2 and v3) read from its raw release layout, and our synthetic data in the same layout.

Layout::

    ROOT/train.txt, ROOT/evaluation.txt      lines "SEQUENCE/FRAME"
    ROOT/<split>/<SEQUENCE>/rgb/<FRAME>.png|.jpg
    ROOT/<split>/<SEQUENCE>/meta/<FRAME>.pkl

Meta files are pickles of numpy arrays (read with a restricted unpickler). HO-3D stores poses in
the OpenGL camera frame (y up, z toward the viewer); everything returned here is converted to the
OpenCV frame (x right, y down, z forward) with `GL_TO_CV = diag(1, -1, -1)`, joints are reordered
to hoposer's order, and the MANO global rotation is expressed in the OpenCV frame.

Keys read: `camMat`, `handPose` (48), `handBeta` (10), `handJoints3D` (21×3 train; the root
joint only in v2's evaluation split), `handBoundingBox` (evaluation), `objRot` (axis-angle),
`objTrans`, `objName`. Our synthetic data adds `handModel` ("standin" or "mano") and
`objSpec` (a primitive such as "box:0.06x0.1x0.04", or a mesh path relative to ROOT, either with
an optional "@SYMMETRY" suffix) and `objSymmetry` ("none", "box" or "cylinder": how the frame's
object looks, e.g. "none" for a box painted with a different colour on every face) and
`objVisible` (the share of the object's silhouette the image shows, 0-1). Without
`objSymmetry` the symmetry comes from the spec (`control_points.spec_symmetry`): primitives
their kind, mesh files and YCB names "none" unless their spec has a suffix.
"""

import logging
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from hoposer.errors import HoposerError
from hoposer.geometry.control_points import (
    SYMMETRIES,
    mesh_control_points,
    object_mesh,
    spec_symmetry,
    split_symmetry,
)
from hoposer.geometry.skeleton import HO3D_TO_OURS
from hoposer.safe_pickle import load_pickle

log = logging.getLogger(__name__)

GL_TO_CV = np.diag([1.0, -1.0, -1.0])
SPLITS = ("train", "evaluation")


@dataclass(frozen=True)
class FrameLabel:
    """One frame's annotation in the OpenCV camera frame (metres); None where not annotated."""

    image_path: Path
    camera_matrix: np.ndarray  #: (3, 3)
    hand_model: str  #: which hand model θ/β belong to: "mano" or "standin"
    theta: np.ndarray | None = None  #: (48,) axis-angle, global rotation in the OpenCV frame
    beta: np.ndarray | None = None  #: (10,)
    joints: np.ndarray | None = None  #: (21, 3) hoposer order
    root: np.ndarray | None = None  #: (3,) wrist, when only the root is given (evaluation)
    hand_box: np.ndarray | None = None  #: (4,) pixels, when given (evaluation)
    object_name: str | None = None  #: HO-3D YCB name or the synthetic spec
    object_R: np.ndarray | None = None  #: (3, 3) object → camera
    object_t: np.ndarray | None = None  #: (3,)
    #: One of `control_points.SYMMETRIES` (meta `objSymmetry`; `read_label` always sets it).
    object_symmetry: str | None = None
    #: The share of the object's silhouette the image shows (meta `objVisible`; None: unknown).
    object_visible: float | None = None


@dataclass(frozen=True)
class ObjectModel:
    """An object's points in its own frame and what the network and metrics need of them."""

    name: str
    vertices: np.ndarray  #: (N, 3)
    faces: np.ndarray  #: (F, 3)
    control_points: np.ndarray  #: (21, 3)
    diameter: float  #: bounding-box diagonal (metres), the D of ADD-0.1D
    symmetry: str = "none"  #: the spec's symmetry (a frame's `objSymmetry` may override it)

    @property
    def centre(self) -> np.ndarray:
        """`(3,)` bounding-box centre: the origin of the symmetry axes."""
        return self.control_points[20]

    @property
    def extent(self) -> np.ndarray:
        """`(3,)` bounding-box sides (equal sides widen a box's symmetry group)."""
        return self.control_points[7] - self.control_points[0]


class ObjectLibrary:
    """Object models by HO-3D name (from a YCB models folder) or synthetic spec, cached."""

    def __init__(self, root: Path | None = None, ycb_dir: Path | None = None) -> None:
        self.root = Path(root) if root else None
        self.ycb_dir = Path(ycb_dir) if ycb_dir else None
        self._cache: dict[str, ObjectModel] = {}

    def get(self, name: str) -> ObjectModel:
        """The model for a YCB name like `006_mustard_bottle`, a primitive spec, or a mesh path."""
        if name not in self._cache:
            self._cache[name] = self._load(name)
        return self._cache[name]

    def _load(self, name: str) -> ObjectModel:
        in_root = self.root is not None and (self.root / name).is_file()
        base, declared = (name, None) if in_root else split_symmetry(name)
        if base.startswith(("box:", "cylinder:")):
            mesh = object_mesh(base)
        elif self.root is not None and (self.root / base).is_file():
            mesh = object_mesh(str(self.root / base))
        else:
            mesh = object_mesh(str(self._ycb_file(base)))
        vertices = np.asarray(mesh.vertices, np.float64)
        return ObjectModel(
            name=name,
            vertices=vertices,
            faces=np.asarray(mesh.faces, np.int64),
            control_points=mesh_control_points(vertices),
            # ADD-0.1D's diameter, as the public code: the diagonal of the 3D bounding box
            diameter=float(np.linalg.norm(vertices.max(axis=0) - vertices.min(axis=0))),
            symmetry=declared or mesh.symmetry,
        )

    def _ycb_file(self, name: str) -> Path:
        if self.ycb_dir is None:
            raise HoposerError(
                f"object '{name}' needs the YCB models: pass --ycb-dir pointing at the folder "
                "with <name>/textured_simple.obj (the YCB-Video 'models' folder HO-3D uses)"
            )
        for filename in ("textured_simple.obj", "textured.obj", "points.ply", "mesh.ply"):
            candidate = self.ycb_dir / name / filename
            if candidate.is_file():
                return candidate
        raise HoposerError(f"no mesh for '{name}' under {self.ycb_dir / name}")


def read_split(root: str | Path, split: str = "train") -> list[tuple[str, str]]:
    """The (sequence, frame) ids of a split, from `ROOT/<split>.txt`."""
    root = Path(root)
    if split not in SPLITS:
        raise HoposerError(f"unknown split {split!r}: use one of {SPLITS}")
    if not root.is_dir():
        raise HoposerError(f"dataset folder {root} does not exist")
    listing = root / f"{split}.txt"
    if not listing.is_file():
        raise HoposerError(f"{listing} not found: is {root} an HO-3D-layout dataset folder?")
    ids = []
    for number, line in enumerate(listing.read_text().splitlines(), 1):
        line = line.strip()
        if not line:
            continue
        sequence, _, frame = line.partition("/")
        if not frame:
            raise HoposerError(f"{listing}:{number}: expected SEQUENCE/FRAME, got {line!r}")
        ids.append((sequence, frame))
    return ids


def image_path(root: Path, split: str, sequence: str, frame: str) -> Path:
    """The frame's RGB file (HO-3D v2 uses .png, v3 .jpg)."""
    folder = Path(root) / split / sequence / "rgb"
    for suffix in (".jpg", ".png"):
        path = folder / f"{frame}{suffix}"
        if path.is_file():
            return path
    return folder / f"{frame}.jpg"


def read_label(root: str | Path, split: str, sequence: str, frame: str) -> FrameLabel:
    """Read and convert one frame's meta file.

    Raises:
        HoposerError: missing or unreadable meta file, or one without a camera matrix.
    """
    root = Path(root)
    meta_path = root / split / sequence / "meta" / f"{frame}.pkl"
    meta = load_pickle(meta_path)
    if not isinstance(meta, dict) or meta.get("camMat") is None:
        raise HoposerError(f"{meta_path}: no camMat; not an HO-3D meta file")

    def get(key: str, shape: tuple[int, ...]) -> np.ndarray | None:
        value = meta.get(key)
        if value is None:
            return None
        array = np.asarray(value, np.float64)
        if array.size != int(np.prod(shape)) or not np.isfinite(array).all():
            return None
        return array.reshape(shape)

    theta = get("handPose", (48,))
    if theta is not None:
        global_gl = cv2.Rodrigues(theta[:3])[0]
        theta = theta.copy()
        theta[:3] = cv2.Rodrigues(GL_TO_CV @ global_gl)[0][:, 0]
    joints = get("handJoints3D", (21, 3))
    root_joint = get("handJoints3D", (3,))
    if joints is not None:
        joints = (joints @ GL_TO_CV)[list(HO3D_TO_OURS)]
        root_joint = joints[0]
    elif root_joint is not None:
        root_joint = root_joint @ GL_TO_CV
    object_R = object_t = None
    rot, trans = get("objRot", (3,)), get("objTrans", (3,))
    if rot is not None and trans is not None:
        object_R = GL_TO_CV @ cv2.Rodrigues(rot)[0]
        object_t = GL_TO_CV @ trans
    name = meta.get("objSpec") or meta.get("objName")
    symmetry = meta.get("objSymmetry")
    if symmetry is None:
        symmetry = spec_symmetry(str(name)) if name is not None else "none"
    if symmetry not in SYMMETRIES:
        raise HoposerError(f"{meta_path}: objSymmetry {symmetry!r} is not one of {SYMMETRIES}")
    visible = get("objVisible", (1,))
    return FrameLabel(
        image_path=image_path(root, split, sequence, frame),
        camera_matrix=np.asarray(meta["camMat"], np.float64).reshape(3, 3),
        hand_model=str(meta.get("handModel", "mano")),
        theta=theta,
        beta=get("handBeta", (10,)),
        joints=joints,
        root=root_joint,
        hand_box=get("handBoundingBox", (4,)),
        object_name=str(name) if name is not None else None,
        object_R=object_R,
        object_t=object_t,
        object_symmetry=str(symmetry),
        object_visible=float(visible[0]) if visible is not None else None,
    )


def to_ho3d_meta(label: FrameLabel, object_spec: str | None = None) -> dict:
    """The inverse of `read_label`: an HO-3D meta dict (OpenGL frame, HO-3D joint order)."""
    from hoposer.geometry.skeleton import OURS_TO_HO3D

    meta: dict = {
        "camMat": np.asarray(label.camera_matrix, np.float64),
        "handModel": label.hand_model,
    }
    if label.theta is not None:
        theta = np.asarray(label.theta, np.float64).copy()
        theta[:3] = cv2.Rodrigues(GL_TO_CV @ cv2.Rodrigues(theta[:3])[0])[0][:, 0]
        meta["handPose"] = theta
    if label.beta is not None:
        meta["handBeta"] = np.asarray(label.beta, np.float64)
    if label.joints is not None:
        meta["handJoints3D"] = (np.asarray(label.joints) @ GL_TO_CV)[list(OURS_TO_HO3D)]
    if label.object_R is not None:
        meta["objRot"] = cv2.Rodrigues(GL_TO_CV @ label.object_R)[0]
        meta["objTrans"] = GL_TO_CV @ np.asarray(label.object_t, np.float64)
        meta["objName"] = label.object_name
        if label.object_symmetry is not None:
            meta["objSymmetry"] = label.object_symmetry
        if label.object_visible is not None:
            meta["objVisible"] = float(label.object_visible)
        if object_spec is not None:
            meta["objSpec"] = object_spec
    return meta
