"""Synthetic hand-object data with exact labels, in HO-3D's layout, made on a CPU.

Each frame: a hand (the stand-in, or MANO when available) in a natural grasping pose holds a box,
a cylinder or a user mesh; a random camera looks at them under a random directional light, over
a procedural background. The painter's renderer of `hoposer.render` draws it (a few ms a frame).
Everything is a function of (seed, frame index), so a data set is reproducible from its command.

`frames` mode writes independent frames grouped in sequences that share a hand shape and an
object (like HO-3D's sequences). `videos` mode writes smooth clips: hand pose, grasp and camera
pose interpolate between random key poses, the object stays in the hand, and
`annotations.json` gives per-frame hand and object boxes in the Something-Else format
(`{video: [{"name": "video/000000.jpg", "labels": [{"category": "hand", "box2d": {...}}, ...]}]}`)
for the semi-supervised stage; the meta files hold the ground truth for measuring it.

Two styles give a controllable domain gap: `default` and `shifted` (other backgrounds, lighting,
skin tones, hand shapes and object proportions).
"""

import pickle
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

import cv2
import numpy as np
import torch

from hoposer.errors import HoposerError
from hoposer.geometry.control_points import ObjectMesh, object_mesh
from hoposer.geometry.rotations import axis_angle_to_matrix, matrix_to_axis_angle
from hoposer.io import atomic_path, json_text, write_text_atomic
from hoposer.model.hand import HandModel, build_hand_model
from hoposer.render import Light, MeshInstance, render
from hoposer.train.data.ho3d import FrameLabel, to_ho3d_meta

HAND_LABEL, OBJECT_LABEL = 1, 2


@dataclass(frozen=True)
class Style:
    """Distributions a data set's frames are drawn from."""

    name: str = "default"
    beta_std: float = 1.0
    skin_tones: tuple[tuple[float, float, float], ...] = (
        (0.96, 0.80, 0.69),
        (0.90, 0.72, 0.58),
        (0.78, 0.57, 0.44),
        (0.60, 0.42, 0.30),
        (0.42, 0.28, 0.20),
    )
    background: str = "shapes"  #: "shapes" (blobs over a gradient) or "stripes"
    ambient: tuple[float, float] = (0.3, 0.5)
    objects: tuple[str, ...] = ("box", "cylinder")
    object_scale: tuple[float, float] = (0.8, 1.2)
    depth: tuple[float, float] = (0.35, 0.65)
    focal: tuple[float, float] = (1.1, 1.6)  #: focal length in units of the image width


STYLES = {
    "default": Style(),
    "shifted": Style(
        name="shifted",
        beta_std=2.0,
        skin_tones=((0.99, 0.87, 0.78), (0.35, 0.22, 0.15), (0.70, 0.55, 0.85)),
        background="stripes",
        ambient=(0.15, 0.3),
        objects=("cylinder", "box"),
        object_scale=(1.1, 1.5),
        depth=(0.45, 0.8),
        focal=(0.9, 1.3),
    ),
}


@dataclass(frozen=True)
class SynthOptions:
    """What `hoposer train synth` makes."""

    out: str
    frames: int = 1000
    seed: int = 0
    size: int = 256
    split: str = "train"
    style: str = "default"
    sequence_length: int = 100
    videos: bool = False
    hand_model: str = "standin"
    mano_dir: str | None = None
    object_meshes: tuple[str, ...] = ()
    workers: int = 2


def _random_rotation(rng: np.random.Generator) -> np.ndarray:
    q = rng.normal(size=4)
    q /= np.linalg.norm(q)
    w, x, y, z = q
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
        ]
    )


def background(rng: np.random.Generator, size: int, style: Style) -> np.ndarray:
    """A procedural RGB background `(size, size, 3)` uint8."""
    colors = rng.uniform(0, 255, size=(2, 3))
    ramp = np.linspace(0, 1, size)
    angle = rng.uniform(0, np.pi)
    t = np.clip(np.cos(angle) * ramp[None, :] + np.sin(angle) * ramp[:, None], 0, None) / max(
        abs(np.cos(angle)) + abs(np.sin(angle)), 1e-6
    )
    image = colors[0] * (1 - t[..., None]) + colors[1] * t[..., None]
    if style.background == "stripes":
        period = rng.uniform(8, 40)
        phase = (
            np.cos(rng.uniform(0, np.pi)) * ramp[None, :] * size
            + np.sin(rng.uniform(0, np.pi)) * ramp[:, None] * size
        )
        stripes = (np.sin(2 * np.pi * phase / period) > 0)[..., None]
        image = np.where(stripes, image, image * 0.4 + rng.uniform(0, 255, 3) * 0.6)
    else:
        for _ in range(rng.integers(3, 9)):
            center = tuple(int(v) for v in rng.uniform(0, size, 2))
            axes = tuple(int(v) for v in rng.uniform(size * 0.05, size * 0.4, 2))
            cv2.ellipse(
                image,
                center,
                axes,
                rng.uniform(0, 180),
                0,
                360,
                rng.uniform(0, 255, 3).tolist(),
                -1,
            )
    noise = cv2.resize(rng.normal(0, 25, (8, 8, 3)), (size, size), interpolation=cv2.INTER_CUBIC)
    image = image + noise + rng.normal(0, 4, image.shape)
    return np.clip(image, 0, 255).astype(np.uint8)


def _object_for_sequence(rng: np.random.Generator, style: Style, meshes: tuple[str, ...]):
    """An object spec (primitive or mesh path) and its mesh."""
    if meshes and rng.uniform() < 0.5:
        spec = str(meshes[rng.integers(len(meshes))])
        return spec, object_mesh(spec)
    kind = (
        style.objects[rng.integers(len(style.objects))]
        if rng.uniform() < 0.75
        else style.objects[0]
    )
    s = rng.uniform(*style.object_scale)
    if kind == "box":
        dims = rng.uniform([0.03, 0.05, 0.025], [0.07, 0.14, 0.06]) * s
        spec = "box:" + "x".join(f"{d:.4f}" for d in dims)
    else:
        spec = f"cylinder:{rng.uniform(0.018, 0.04) * s:.4f}x{rng.uniform(0.06, 0.16) * s:.4f}"
    return spec, object_mesh(spec)


@dataclass(frozen=True)
class Scene:
    """Everything that defines one frame (camera frame: OpenCV, metres)."""

    theta: np.ndarray
    beta: np.ndarray
    wrist: np.ndarray  #: (3,) camera-frame wrist position
    object_R: np.ndarray
    object_t: np.ndarray
    camera_matrix: np.ndarray
    light: Light
    skin: np.ndarray
    object_color: np.ndarray


class SceneSampler:
    """Draws grasps, cameras and looks for one sequence (shared hand shape and object)."""

    def __init__(self, hand: HandModel, style: Style, size: int, rng: np.random.Generator, meshes):
        self.hand, self.style, self.size, self.rng = hand, style, size, rng
        self.beta = np.clip(rng.normal(0, style.beta_std, 10), -3, 3) * np.r_[1, 1, 1, 1, [0.5] * 6]
        self.spec, self.mesh = _object_for_sequence(rng, style, meshes)
        self.skin = np.asarray(style.skin_tones[rng.integers(len(style.skin_tones))])
        self.skin = np.clip(self.skin * rng.uniform(0.9, 1.1, 3), 0, 1)
        self.object_color = rng.uniform(0.1, 1.0, 3)

    def grasp(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """A hand pose (θ with identity global rotation) and the object's pose in its frame."""
        theta = self.hand.plausible_pose(self.rng)
        theta[:3] = 0.0
        out = self.hand(
            torch.tensor(theta[None], dtype=torch.float32),
            torch.tensor(self.beta[None], dtype=torch.float32),
        )
        joints = out.joints[0].double().numpy()
        palm = joints[[0, 5, 9, 13, 17]].mean(0)
        tips = joints[[4, 8, 12, 16, 20]].mean(0)
        # Flexed fingers curl around the grasped object: it sits between palm and fingertips.
        center = 0.5 * (palm + tips) + self.rng.normal(0, 0.005, 3)
        return theta, _random_rotation(self.rng), center

    def camera(self) -> np.ndarray:
        """Random intrinsics for a square image of `size` pixels."""
        f = self.rng.uniform(*self.style.focal) * self.size
        c = self.size / 2 + self.rng.normal(0, 0.02 * self.size, 2)
        return np.array([[f, 0, c[0]], [0, f, c[1]], [0, 0, 1.0]])

    def place(self, theta, object_R, object_center, K) -> Scene:
        """Put the hand-object pair in front of the camera at a random pose."""
        rng = self.rng
        global_R = _random_rotation(rng)
        theta = theta.copy()
        theta[:3] = matrix_to_axis_angle(torch.from_numpy(global_R)).numpy()
        depth = rng.uniform(*self.style.depth)
        # Keep the pair inside the image: aim the grasp centre near the principal point.
        offset = rng.uniform(-0.15, 0.15, 2) * depth * self.size / K[0, 0]
        grasp_cam = np.array([offset[0], offset[1], depth])
        wrist = grasp_cam - global_R @ object_center
        direction = rng.normal(size=3) + np.array([0, -1.0, -1.5])
        light = Light(
            tuple(direction / np.linalg.norm(direction)), rng.uniform(*self.style.ambient), 0.7
        )
        return Scene(
            theta=theta,
            beta=self.beta,
            wrist=wrist,
            object_R=global_R @ object_R,
            object_t=grasp_cam,
            camera_matrix=K,
            light=light,
            skin=self.skin,
            object_color=self.object_color,
        )


def render_scene(scene: Scene, hand: HandModel, mesh: ObjectMesh, size: int, bg: np.ndarray):
    """The frame's RGB image, label image, and hoposer-order 3D joints (camera frame)."""
    out = hand(
        torch.tensor(scene.theta[None], dtype=torch.float32),
        torch.tensor(scene.beta[None], dtype=torch.float32),
    )
    vertices = out.vertices[0].double().numpy() + scene.wrist
    joints = out.joints[0].double().numpy() + scene.wrist
    object_vertices = mesh.vertices @ scene.object_R.T + scene.object_t
    image, labels = render(
        [
            MeshInstance(vertices, hand.faces, scene.skin, HAND_LABEL),
            MeshInstance(object_vertices, mesh.faces, scene.object_color, OBJECT_LABEL),
        ],
        scene.camera_matrix,
        (size, size),
        background=bg,
        light=scene.light,
    )
    return image, labels, joints


def _frame_label(scene: Scene, joints: np.ndarray, hand: HandModel, spec: str) -> FrameLabel:
    return FrameLabel(
        image_path=Path(),
        camera_matrix=scene.camera_matrix,
        hand_model=hand.name,
        theta=scene.theta,
        beta=scene.beta,
        joints=joints,
        object_name=spec,
        object_R=scene.object_R,
        object_t=scene.object_t,
    )


def _boxes_visible(labels: np.ndarray) -> dict[str, list[float] | None]:
    out = {}
    for name, value in (("hand", HAND_LABEL), ("object", OBJECT_LABEL)):
        ys, xs = np.nonzero(labels == value)
        out[name] = (
            None
            if len(xs) < 20
            else [float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1)]
        )
    return out


def _write_frame(root: Path, split: str, sequence: str, frame: str, image, meta: dict) -> None:
    rgb = root / split / sequence / "rgb"
    meta_dir = root / split / sequence / "meta"
    rgb.mkdir(parents=True, exist_ok=True)
    meta_dir.mkdir(parents=True, exist_ok=True)
    ok, jpg = cv2.imencode(
        ".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 95]
    )
    if not ok:
        raise HoposerError("JPEG encoding failed")
    with atomic_path(rgb / f"{frame}.jpg") as tmp:
        tmp.write_bytes(jpg.tobytes())
    with atomic_path(meta_dir / f"{frame}.pkl") as tmp:
        tmp.write_bytes(pickle.dumps(meta, protocol=4))


def _make_sequence(args: tuple[SynthOptions, int, int]) -> list[tuple[str, str, dict]]:
    """Render sequence `index` (frames [start, start + n)); returns ids and per-frame boxes."""
    options, index, count = args
    style = STYLES[options.style]
    hand = build_hand_model(options.hand_model, options.mano_dir)
    rng = np.random.default_rng((options.seed, index))
    sampler = SceneSampler(hand, style, options.size, rng, options.object_meshes)
    sequence = f"{style.name[:2].upper()}{options.seed:03d}_{index:05d}"
    written = []
    keys = _key_scenes(sampler, count) if options.videos else None
    # A clip is filmed by a still camera: one background for all its frames.
    clip_background = background(rng, options.size, style) if options.videos else None
    for i in range(count):
        if options.videos:
            scene = _interpolate(keys, i)
            bg = clip_background
        else:
            theta, object_R, center = sampler.grasp()
            scene = sampler.place(theta, object_R, center, sampler.camera())
            bg = background(rng, options.size, style)
        image, labels, joints = render_scene(scene, hand, sampler.mesh, options.size, bg)
        frame = f"{i:06d}" if options.videos else f"{i:04d}"
        meta = to_ho3d_meta(
            _frame_label(scene, joints, hand, sampler.spec), object_spec=sampler.spec
        )
        _write_frame(Path(options.out), options.split, sequence, frame, image, meta)
        written.append((sequence, frame, _boxes_visible(labels)))
    return written


def _key_scenes(sampler: SceneSampler, count: int, every: int = 15) -> dict:
    """Key poses every `every` frames for a smooth clip: the grasp is fixed, the rest moves."""
    theta, object_R, center = sampler.grasp()
    K = sampler.camera()
    keys = [sampler.place(theta, object_R, center, K) for _ in range(count // every + 2)]
    # Gentle motion: each key rotates little from the previous one.
    for k in range(1, len(keys)):
        prev = keys[k - 1]
        small = axis_angle_to_matrix(torch.from_numpy(sampler.rng.normal(0, 0.25, 3))).numpy()
        g_prev = axis_angle_to_matrix(torch.from_numpy(prev.theta[:3])).numpy()
        grip = g_prev.T @ prev.object_R  # object in the hand frame stays fixed
        g = small @ g_prev
        finger_theta = np.clip(prev.theta[3:] + sampler.rng.normal(0, 0.08, 45), -1.6, 1.6)
        new_theta = np.concatenate(
            [matrix_to_axis_angle(torch.from_numpy(g)).numpy(), finger_theta]
        )
        shift = sampler.rng.normal(0, 0.02, 3)
        grasp_cam = prev.object_t + shift
        keys[k] = replace(
            prev,
            theta=new_theta,
            wrist=grasp_cam - g @ center,
            object_R=g @ grip,
            object_t=grasp_cam,
        )
    return {"scenes": keys, "every": every, "center": center}


def _interpolate(keys: dict, i: int) -> Scene:
    every = keys["every"]
    k, frac = divmod(i, every)
    a, b = keys["scenes"][k], keys["scenes"][k + 1]
    s = frac / every
    s = s * s * (3 - 2 * s)  # smoothstep: no velocity jumps at key poses
    g_a = axis_angle_to_matrix(torch.from_numpy(a.theta[:3])).numpy()
    g_b = axis_angle_to_matrix(torch.from_numpy(b.theta[:3])).numpy()
    delta = matrix_to_axis_angle(torch.from_numpy(g_b @ g_a.T)).numpy()
    g = axis_angle_to_matrix(torch.from_numpy(delta * s)).numpy() @ g_a
    grip = g_a.T @ a.object_R
    grasp_cam = (1 - s) * a.object_t + s * b.object_t
    theta = np.concatenate(
        [matrix_to_axis_angle(torch.from_numpy(g)).numpy(), (1 - s) * a.theta[3:] + s * b.theta[3:]]
    )
    return replace(
        a, theta=theta, wrist=grasp_cam - g @ keys["center"], object_R=g @ grip, object_t=grasp_cam
    )


def generate(options: SynthOptions, progress=None) -> dict:
    """Write the data set; returns a summary (frames, sequences, files)."""
    if options.style not in STYLES:
        raise HoposerError(f"unknown style {options.style!r}: use one of {sorted(STYLES)}")
    if options.frames < 1:
        raise HoposerError("--frames must be at least 1")
    root = Path(options.out)
    root.mkdir(parents=True, exist_ok=True)
    length = max(1, options.sequence_length)
    jobs = [
        (options, i, min(length, options.frames - i * length))
        for i in range((options.frames + length - 1) // length)
    ]
    results: list[tuple[str, str, dict]] = []
    for chunk in _map(jobs, options.workers):
        results.extend(chunk)
        if progress:
            progress(len(results), options.frames)
    listing = [f"{seq}/{frame}" for seq, frame, _ in results]
    write_text_atomic(root / f"{options.split}.txt", "\n".join(listing) + "\n")
    if options.videos:
        annotations: dict[str, list] = {}
        for seq, frame, boxes in results:
            labels = []
            if boxes["hand"]:
                labels.append(
                    {
                        "category": "hand",
                        "standard_category": "hand",
                        "box2d": _box2d(boxes["hand"]),
                    }
                )
            if boxes["object"]:
                labels.append(
                    {
                        "category": "object",
                        "standard_category": "0000",
                        "box2d": _box2d(boxes["object"]),
                    }
                )
            annotations.setdefault(seq, []).append(
                {"name": f"{seq}/{frame}.jpg", "labels": labels, "nr_instances": len(labels)}
            )
        write_text_atomic(root / "annotations.json", json_text(annotations) + "\n")
    info = {
        "frames": len(results),
        "sequences": len(jobs),
        "options": {k: v for k, v in options.__dict__.items()},
    }
    write_text_atomic(
        root / f"synth_{options.split}.json", json_text(info, indent=2, default=str) + "\n"
    )
    return info


def _box2d(box: list[float]) -> dict[str, float]:
    return {"x1": box[0], "y1": box[1], "x2": box[2], "y2": box[3]}


def _map(jobs: list, workers: int) -> Iterator[list]:
    if workers <= 1 or len(jobs) == 1:
        yield from map(_make_sequence, jobs)
        return
    # One thread per worker process: the processes already use every core.
    with ProcessPoolExecutor(workers, initializer=torch.set_num_threads, initargs=(1,)) as pool:
        yield from pool.map(_make_sequence, jobs)
