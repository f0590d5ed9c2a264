"""Synthetic hand-object data with exact labels, in HO-3D's layout, made on a CPU.

Each frame: a hand (the stand-in, or MANO when available) with a forearm leaving the frame, in a
pose drawn over the whole range (open, spread, pointing, fist, pinch, precision and power grasps,
see `HandModel.sample_pose`), holds a box, a cylinder or a user mesh placed in the grasp without
interpenetration (or, in open poses and some grasps, lying near the hand). A random camera
(50-90° horizontal field of view, 0.25-0.8 m, egocentric behind the wrist or third-person) looks
at them under an ambient term and one to three Blinn-Phong lights, over a procedural background
(fractal noise, stripes, tiles, gradients, clutter, mixtures) or a random crop of the user's own
photos (`backgrounds`). Distractor objects, occluders, a soft drop shadow, motion and defocus
blur, sensor noise, white-balance shifts and JPEG quality vary per frame. The painter's renderer
of `hoposer.render` draws it (a few ms a frame). Everything is a function of (seed, frame index),
so a data set is reproducible from its command.

Object appearance: part of the objects are painted (six distinct box faces with patterns;
cylinders with distinct caps and a side marking), the rest are plain single-colour primitives.
The paint is drawn anew for every sequence, so it never says which face is which: a box turned
180° or a cylinder turned about its axis shows a painting just as likely. The pose is thus only
learnable up to the shape's symmetry, and each frame's meta records that symmetry:
`objSymmetry` = "box" or "cylinder" for primitives, painted or not (the box's group has the 90°
turns only between equal sides), and the mesh's declared symmetry (`PATH@SYMMETRY`, default
"none") for a user mesh, whose colours are likewise random. `objVisible` records the share of
the object's silhouette the frame shows (`visible_fraction`): the hand, an occluder or the
frame's edge can hide it all, and such a frame teaches nothing about the object.

`frames` mode writes independent frames grouped in sequences that share a hand shape, skin, an
object and its paint (like HO-3D's sequences). `videos` mode writes smooth clips: hand pose,
grasp and camera pose interpolate between random key poses, the object stays in the hand, and
`annotations.json` gives per-frame hand and object boxes in the Something-Else format
(`{video: [{"name": "video/000000.jpg", "labels": [{"category": "hand", "box2d": {...}}, ...]}]}`)
for the semi-supervised stage; the meta files hold the ground truth for measuring it.

Two styles give a controllable domain gap: `default` and `shifted` (other backgrounds, lighting,
skin tones, hand shapes, cameras and object proportions).
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
from hoposer.render import Light, MeshInstance, render, silhouette_pixels
from hoposer.train.data.ho3d import FrameLabel, to_ho3d_meta
from hoposer.train.options import SynthOptions

HAND_LABEL, OBJECT_LABEL, ARM_LABEL, DISTRACTOR_LABEL = 1, 2, 3, 4
BACKGROUND_KINDS = ("noise", "stripes", "tiles", "gradient", "clutter", "mixture")
PHOTO_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")


@dataclass(frozen=True)
class Style:
    """Distributions a data set's frames are drawn from."""

    name: str = "default"
    beta_std: float = 1.0
    #: Fixed skin tones to draw from; empty: a continuous range from very light to very dark.
    skin_tones: tuple[tuple[float, float, float], ...] = ()
    backgrounds: tuple[str, ...] = BACKGROUND_KINDS
    ambient: tuple[float, float] = (0.2, 0.5)
    lights: tuple[int, int] = (1, 3)  #: inclusive range of the number of lights
    objects: tuple[str, ...] = ("box", "cylinder")
    object_scale: tuple[float, float] = (0.8, 1.2)
    depth: tuple[float, float] = (0.25, 0.8)  #: camera to hand, metres
    fov_deg: tuple[float, float] = (50.0, 90.0)  #: horizontal field of view
    egocentric: float = 0.35  #: fraction of frames seen from behind the wrist
    sleeve: float = 0.5  #: fraction of sequences whose forearm wears a sleeve
    painted: float = 0.6  #: fraction of primitive objects painted (random part colours, patterns)
    distractors: float = 1.2  #: mean number of distractor objects per frame
    occluder: float = 0.15  #: fraction of frames with an object between camera and hand


STYLES = {
    "default": Style(),
    "shifted": Style(
        name="shifted",
        beta_std=2.0,
        skin_tones=((0.99, 0.87, 0.78), (0.35, 0.22, 0.15), (0.70, 0.55, 0.85)),
        backgrounds=("stripes",),
        ambient=(0.15, 0.3),
        lights=(1, 1),
        objects=("cylinder", "box"),
        object_scale=(1.1, 1.5),
        depth=(0.45, 0.8),
        fov_deg=(35.0, 50.0),
        egocentric=0.0,
        sleeve=0.0,
        distractors=0.0,
        occluder=0.0,
    ),
}


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


def _rodrigues(axis_angle) -> np.ndarray:
    return cv2.Rodrigues(np.asarray(axis_angle, np.float64).reshape(3, 1))[0]


def _rotation_between(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The smallest rotation taking unit vector `a` to unit vector `b`."""
    axis = np.cross(a, b)
    sin, cos = np.linalg.norm(axis), float(a @ b)
    if sin < 1e-9:
        if cos > 0:
            return np.eye(3)
        other = np.eye(3)[np.argmin(np.abs(a))]
        axis = np.cross(a, other)
        return _rodrigues(axis / np.linalg.norm(axis) * np.pi)
    return _rodrigues(axis / sin * np.arctan2(sin, cos))


# --------------------------------------------------------------------------------------------
# Backgrounds


def _colour(rng: np.random.Generator) -> np.ndarray:
    """A random RGB colour (0-255) spread over hue, saturation and brightness."""
    hsv = np.array([[[rng.uniform(0, 180), rng.uniform(0, 255) ** 1, rng.uniform(20, 255)]]])
    hsv[..., 1] *= rng.uniform(0.2, 1.0)
    return cv2.cvtColor(hsv.astype(np.uint8), cv2.COLOR_HSV2RGB)[0, 0].astype(np.float32)


def _fractal(rng: np.random.Generator, size: int, octaves: int = 5) -> np.ndarray:
    """Fractal (1/f) noise in [0, 1], `(size, size)` float32."""
    field = np.zeros((size, size), np.float32)
    start = int(rng.integers(1, 4))
    weight = 1.0
    persistence = rng.uniform(0.35, 0.7)
    for octave in range(octaves):
        cells = 2 ** (start + octave)
        if cells > size:
            break
        grid = rng.normal(size=(cells + 1, cells + 1)).astype(np.float32)
        field += weight * cv2.resize(grid, (size, size), interpolation=cv2.INTER_CUBIC)
        weight *= persistence
    field -= field.min()
    return field / max(float(field.max()), 1e-6)


def _coordinates(rng: np.random.Generator, size: int) -> np.ndarray:
    """Pixel coordinates along a random direction, `(size, size)` float32 pixels."""
    angle = rng.uniform(0, np.pi)
    ramp = np.arange(size, dtype=np.float32)
    return np.cos(angle) * ramp[None, :] + np.sin(angle) * ramp[:, None]


def _two_colours(t: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    a, b = _colour(rng), _colour(rng)
    return a * (1 - t[..., None]) + b * t[..., None]


def _stripes(rng, size):
    u = _coordinates(rng, size)
    if rng.uniform() < 0.4:  # wavy stripes: fabric, wood grain
        u = u + _fractal(rng, size, 3) * rng.uniform(5, 40)
    period = rng.uniform(5, 60)
    wave = np.sin(2 * np.pi * u / period)
    hard = rng.uniform() < 0.6  # printed stripes; else soft waves
    t = (wave > rng.uniform(-0.5, 0.5)).astype(np.float32) if hard else wave * 0.5 + 0.5
    return _two_colours(t, rng)


def _tiles(rng, size):
    period = rng.uniform(10, 70)
    angle = rng.uniform(0, np.pi / 2)
    y, x = np.mgrid[0:size, 0:size].astype(np.float32)
    u = (np.cos(angle) * x + np.sin(angle) * y) / period
    v = (-np.sin(angle) * x + np.cos(angle) * y) / period
    if rng.uniform() < 0.5:
        t = ((np.floor(u) + np.floor(v)) % 2).astype(np.float32)  # checkers
        image = _two_colours(t, rng)
    else:  # tiles with grout lines, each tile its own shade
        shade = rng.uniform(0.8, 1.2, (64, 64)).astype(np.float32)
        tile = shade[np.floor(u).astype(int) % 64, np.floor(v).astype(int) % 64]
        image = _colour(rng) * tile[..., None]
        grout = (np.minimum(u % 1, v % 1) < rng.uniform(0.04, 0.12))[..., None]
        image = np.where(grout, _colour(rng), image)
    if rng.uniform() < 0.5:  # a table or floor seen at an angle
        s = size
        src = np.float32([[0, 0], [s, 0], [s, s], [0, s]])
        squeeze = rng.uniform(0.1, 0.45) * s
        dst = np.float32([[squeeze, 0], [s - squeeze, 0], [s, s], [0, s]])
        image = cv2.warpPerspective(
            image, cv2.getPerspectiveTransform(src, dst), (s, s), borderMode=cv2.BORDER_REFLECT
        )
    return image


def _gradient(rng, size):
    if rng.uniform() < 0.5:
        t = _coordinates(rng, size) / (size * 1.42)
    else:
        y, x = np.mgrid[0:size, 0:size].astype(np.float32)
        c = rng.uniform(0, size, 2)
        t = np.sqrt((x - c[0]) ** 2 + (y - c[1]) ** 2) / (size * rng.uniform(0.5, 1.5))
    return _two_colours(np.clip(t, 0, 1), rng)


def _noise(rng, size):
    t = _fractal(rng, size)
    image = _two_colours(t, rng)
    if rng.uniform() < 0.5:  # a third colour through a second field: marble, foliage
        image = image * (1 - (m := _fractal(rng, size)[..., None] ** 2)) + _colour(rng) * m
    return image


def _clutter(rng, size, base=None):
    image = np.ascontiguousarray(base if base is not None else _gradient(rng, size))
    for _ in range(int(rng.integers(8, 40))):
        colour = _colour(rng)
        if rng.uniform() < 0.15:  # skin-coloured things (faces, arms) that are not the hand
            colour = _skin_tone(rng, STYLES["default"])[0] * 255 * rng.uniform(0.6, 1.1)
        colour = colour.tolist()
        kind = rng.integers(4)
        centre = rng.uniform(-0.1, 1.1, 2) * size
        extent = size * rng.uniform(0.03, 0.35) * rng.uniform(0.3, 1.0, 2)
        if kind == 0:
            cv2.ellipse(image, tuple(int(v) for v in centre), tuple(int(v) for v in extent),
                        rng.uniform(0, 180), 0, 360, colour, -1)  # fmt: skip
        elif kind == 1:
            box = cv2.boxPoints((tuple(centre), tuple(2 * extent), rng.uniform(0, 180)))
            cv2.fillConvexPoly(image, box.astype(np.int32), colour)
        elif kind == 2:
            points = centre + rng.normal(0, 1, (int(rng.integers(3, 7)), 2)) * extent
            cv2.fillPoly(image, [points.astype(np.int32)], colour)
        else:
            end = centre + rng.normal(0, 1, 2) * size * 0.4
            cv2.line(image, tuple(int(v) for v in centre), tuple(int(v) for v in end), colour,
                     int(rng.integers(1, 8)))  # fmt: skip
    return image


_GENERATORS = {
    "noise": _noise,
    "stripes": _stripes,
    "tiles": _tiles,
    "gradient": _gradient,
    "clutter": _clutter,
}


class PhotoBackgrounds:
    """Random crops of a folder's photos (decoded once per process, kept at ≤ 2× the size)."""

    def __init__(self, folder: str | Path, size: int) -> None:
        root = Path(folder)
        if not root.is_dir():
            raise HoposerError(f"--backgrounds {folder}: not a folder of photos")
        self.paths = sorted(p for p in root.rglob("*") if p.suffix.lower() in PHOTO_SUFFIXES)
        if not self.paths:
            raise HoposerError(
                f"--backgrounds {folder} holds no photos ({', '.join(PHOTO_SUFFIXES)})"
            )
        self.size = size
        self._cache: dict[int, np.ndarray | None] = {}

    def _load(self, index: int) -> np.ndarray | None:
        if index not in self._cache:
            image = cv2.imread(str(self.paths[index]), cv2.IMREAD_COLOR)
            if image is not None:
                scale = 2 * self.size / min(image.shape[:2])
                if scale < 1:
                    image = cv2.resize(image, None, fx=scale, fy=scale,
                                       interpolation=cv2.INTER_AREA)  # fmt: skip
                image = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
            if len(self._cache) > 256:
                self._cache.clear()
            self._cache[index] = image
        return self._cache[index]

    def crop(self, rng: np.random.Generator) -> np.ndarray | None:
        """A random crop resized to `(size, size, 3)` float32, None for an unreadable photo."""
        image = self._load(int(rng.integers(len(self.paths))))
        if image is None:
            return None
        h, w = image.shape[:2]
        side = int(min(h, w) * rng.uniform(0.35, 1.0))
        y, x = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
        patch = image[y : y + side, x : x + side]
        if rng.uniform() < 0.5:
            patch = patch[:, ::-1]
        return cv2.resize(patch, (self.size, self.size), interpolation=cv2.INTER_AREA).astype(
            np.float32
        )


def background(
    rng: np.random.Generator, size: int, style: Style, photos: PhotoBackgrounds | None = None
) -> np.ndarray:
    """A background `(size, size, 3)` uint8 RGB: procedural, or a crop of the user's photos."""
    image = photos.crop(rng) if photos is not None and rng.uniform() < 0.7 else None
    if image is None:
        kind = style.backgrounds[rng.integers(len(style.backgrounds))]
        if kind == "mixture":  # two textures through a soft fractal mask, maybe cluttered
            names = [k for k in _GENERATORS if k != "clutter"]
            a = _GENERATORS[names[rng.integers(len(names))]](rng, size)
            b = _GENERATORS[names[rng.integers(len(names))]](rng, size)
            mask = np.clip((_fractal(rng, size, 3) - 0.5) * rng.uniform(3, 20) + 0.5, 0, 1)
            image = a * (1 - mask[..., None]) + b * mask[..., None]
            if rng.uniform() < 0.5:
                image = _clutter(rng, size, image)
        else:
            image = _GENERATORS[kind](rng, size)
    image = image * rng.uniform(0.35, 1.25)  # dark rooms to bright daylight
    if rng.uniform() < 0.3:  # out of focus behind the hand
        image = cv2.GaussianBlur(image, (0, 0), rng.uniform(0.8, 3.0))
    return np.clip(image, 0, 255).astype(np.uint8)


# --------------------------------------------------------------------------------------------
# Appearance: skin, forearm, painted objects


def _skin_tone(rng: np.random.Generator, style: Style) -> tuple[np.ndarray, float]:
    """A skin colour in [0, 1] and its darkness in [0, 1] (Fitzpatrick I-VI, continuously)."""
    if style.skin_tones:
        tone = np.asarray(style.skin_tones[rng.integers(len(style.skin_tones))])
        darkness = 1.0 - float(tone.mean())
    else:
        darkness = rng.uniform()
        stops = np.array([[0.97, 0.82, 0.72], [0.85, 0.64, 0.50], [0.62, 0.42, 0.30],
                          [0.34, 0.21, 0.14]])  # fmt: skip
        x = darkness * (len(stops) - 1)
        i = min(int(x), len(stops) - 2)
        tone = stops[i] * (1 - (x - i)) + stops[i + 1] * (x - i)
    tone = tone * rng.uniform(0.92, 1.08, 3)  # redder, yellower, paler
    return np.clip(tone, 0, 1), darkness


def _face_normals(vertices: np.ndarray, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    tri = vertices[faces]
    normals = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    normals /= np.maximum(np.linalg.norm(normals, axis=1, keepdims=True), 1e-12)
    return normals, tri.mean(axis=1)


def _skin_colours(rng, skin, darkness, rest_vertices, faces) -> np.ndarray:
    """Per-face skin colours: lighter palm (more so for dark skin), mottling and face noise."""
    normals, centroids = _face_normals(rest_vertices, faces)
    palm = np.clip(-normals[:, 1], 0, 1)  # the rest hand's palm faces −y
    lighter = np.array([0.96, 0.80, 0.72])
    mix = (0.1 + 0.45 * darkness) * palm[:, None] * rng.uniform(0.5, 1.0)
    colours = skin * (1 - mix) + lighter * mix
    frequency = rng.uniform(40, 160, 3)
    phase = rng.uniform(0, 2 * np.pi, 3)
    mottle = np.sin(centroids * frequency + phase).sum(axis=1) / 3
    colours = colours * (1 + rng.uniform(0.02, 0.08) * mottle)[:, None]
    colours = colours * rng.normal(1, rng.uniform(0.01, 0.04), (len(faces), 1))
    return np.clip(colours, 0, 1)


def _tube(length: float, r0: float, r1: float, rings: int = 10, segments: int = 14):
    """A closed tapered elliptic tube along +x from x = −0.01 (inside the palm) to `length`."""
    x = np.linspace(-0.01, length, rings)
    r = np.linspace(r0, r1, rings)
    phi = np.linspace(0, 2 * np.pi, segments, endpoint=False)
    ring = np.stack([np.zeros_like(phi), 0.75 * np.cos(phi), np.sin(phi)], axis=1)
    vertices = (ring[None] * r[:, None, None]).reshape(-1, 3)
    vertices[:, 0] = np.repeat(x, segments)
    k = segments
    faces = []
    for i in range(rings - 1):
        for j in range(k):
            a, b = i * k + j, i * k + (j + 1) % k
            faces += [(a, b + k, b), (a, a + k, b + k)]
    ends = len(vertices)
    vertices = np.concatenate([vertices, [[x[0], 0, 0], [x[-1], 0, 0]]])
    last = (rings - 1) * k
    for j in range(k):
        faces += [(ends, j, (j + 1) % k), (ends + 1, last + (j + 1) % k, last + j)]
    return vertices, _outward(vertices, np.asarray(faces, np.int64), axis=0)


def _outward(vertices: np.ndarray, faces: np.ndarray, axis: int | None = None) -> np.ndarray:
    """Wind each face of a convex(-ish) shape counter-clockwise seen from outside.

    Outside is away from the centre, or from the shape's axis (`axis` = 0, 1, 2) for tubes.
    """
    normals, centroids = _face_normals(vertices, faces)
    centre = centroids.copy()
    if axis is None:
        centre[:] = vertices.mean(axis=0)
    else:
        centre[:, [i for i in range(3) if i != axis]] = 0
        # caps: push their reference inward along the axis
        cap = np.abs(normals[:, axis]) > 0.9
        centre[cap] = 0
        centre[cap, axis] = vertices[:, axis].mean()
    flip = ((centroids - centre) * normals).sum(axis=1) < 0
    faces = faces.copy()
    faces[flip] = faces[flip][:, ::-1]
    return faces


def _grid_box(dims: np.ndarray, cells: int = 4):
    """A box `dims` (x, y, z) centred at 0 with each face split into `cells²` quads.

    Returns vertices, faces (outward), and each face's side (0-5) and cell (row, col).
    """
    vertices, faces, sides, cell_ids = [], [], [], []
    t = np.linspace(-0.5, 0.5, cells + 1)
    for side in range(6):
        axis, sign = side // 2, 1.0 if side % 2 else -1.0
        u_axis, v_axis = [a for a in range(3) if a != axis]
        uu, vv = np.meshgrid(t, t, indexing="ij")
        points = np.zeros((cells + 1, cells + 1, 3))
        points[..., axis] = sign * 0.5
        points[..., u_axis], points[..., v_axis] = uu, vv
        base = sum(len(v) for v in vertices)
        vertices.append(points.reshape(-1, 3) * dims)
        for i in range(cells):
            for j in range(cells):
                a = base + i * (cells + 1) + j
                b, c, d = a + cells + 1, a + cells + 2, a + 1
                faces += [(a, b, c), (a, c, d)]
                sides += [side, side]
                cell_ids += [(i, j), (i, j)]
    vertices = np.concatenate(vertices)
    return vertices, _outward(vertices, np.asarray(faces)), np.array(sides), np.array(cell_ids)


def _banded_cylinder(radius: float, height: float, segments: int = 32, bands: int = 4):
    """A cylinder along y with its side split into `bands` rings: vertices, faces, angle, part.

    `part` is 0 for the side, 1 for the bottom cap, 2 for the top cap; `angle` is each face's
    azimuth about the axis and `band` its ring.
    """
    phi = 2 * np.pi * np.arange(segments) / segments
    y = np.linspace(-height / 2, height / 2, bands + 1)
    ring = np.stack([radius * np.cos(phi), np.zeros(segments), radius * np.sin(phi)], 1)
    vertices = np.concatenate([ring + [0, yy, 0] for yy in y])
    n = segments
    faces, parts, angles, band = [], [], [], []
    for b in range(bands):
        for j in range(n):
            a, c = b * n + j, b * n + (j + 1) % n
            faces += [(a, c, c + n), (a, c + n, a + n)]
            parts += [0, 0]
            angles += [phi[j] + np.pi / n] * 2
            band += [b, b]
    centres = len(vertices)
    vertices = np.concatenate([vertices, [[0, -height / 2, 0], [0, height / 2, 0]]])
    top = bands * n
    for j in range(n):
        faces += [(centres, (j + 1) % n, j), (centres + 1, top + j, top + (j + 1) % n)]
        parts += [1, 2]
        angles += [phi[j]] * 2
        band += [0, bands - 1]
    faces = _outward(vertices, np.asarray(faces, np.int64), axis=1)
    return vertices, faces, np.array(angles), np.array(parts), np.array(band)


def _distinct_colours(rng: np.random.Generator, n: int) -> np.ndarray:
    """`n` colours in [0, 1] with well-separated hues (and a spread of brightness)."""
    hues = (rng.uniform() + np.arange(n) / n) % 1.0
    hues = hues[rng.permutation(n)]
    hsv = np.stack([hues * 180, rng.uniform(120, 255, n), rng.uniform(110, 255, n)], 1)
    return cv2.cvtColor(hsv[None].astype(np.uint8), cv2.COLOR_HSV2RGB)[0] / 255.0


@dataclass(frozen=True)
class PaintedObject:
    """The render mesh of an object (the same surface as its label mesh) and its colours."""

    vertices: np.ndarray
    faces: np.ndarray
    colours: np.ndarray  #: (F, 3) in [0, 1]
    symmetry: str  #: the shape's symmetry, which the random paint does not break (objSymmetry)


def paint_object(rng: np.random.Generator, spec: str, mesh: ObjectMesh, painted: bool):
    """Colour an object: random paint per part, or one plain colour.

    The colours are drawn per call (per sequence), so they do not identify the object's faces:
    the label's symmetry is the shape's (a primitive's kind, a user mesh's declared symmetry).
    """
    kind, _, rest = spec.partition(":")
    primitive = kind in ("box", "cylinder") and not Path(spec).exists()
    if not primitive:  # a user mesh: one random colour per octant
        normals, centroids = _face_normals(mesh.vertices, mesh.faces)
        palette = _distinct_colours(rng, 8)
        octant = ((centroids > np.median(centroids, axis=0)) * [1, 2, 4]).sum(axis=1)
        return PaintedObject(mesh.vertices, mesh.faces, palette[octant], mesh.symmetry)
    dims = np.array([float(d) for d in rest.split("x")])
    if not painted:
        colour = np.clip(rng.uniform(0.1, 1.0, 3), 0, 1)
        return PaintedObject(
            mesh.vertices, mesh.faces, np.broadcast_to(colour, (len(mesh.faces), 3)), kind
        )
    if kind == "box":
        vertices, faces, sides, cells = _grid_box(dims)
        base = _distinct_colours(rng, 6)
        colours = base[sides].copy()
        for side in range(6):  # a pattern per face: checkers, a band, a corner mark or none
            pattern = rng.integers(4)
            on = sides == side
            i, j = cells[:, 0], cells[:, 1]
            if pattern == 0:
                mark = (i + j) % 2 == 0
            elif pattern == 1:
                mark = i == rng.integers(4)
            elif pattern == 2:
                mark = (i == 0) & (j == 0)
            else:
                continue
            colours[on & mark] = colours[on & mark] * rng.uniform(0.35, 0.6)
        return PaintedObject(vertices, faces, colours, "box")
    vertices, faces, angles, parts, band = _banded_cylinder(dims[0], dims[1])
    base = _distinct_colours(rng, 4)  # side, bottom, top, marking
    colours = base[parts].copy()
    start, width = rng.uniform(0, 2 * np.pi), rng.uniform(0.4, 1.4)
    marking = (parts == 0) & (((angles - start) % (2 * np.pi)) < width)
    if rng.uniform() < 0.5:  # a label that does not span the full height
        marking &= band >= rng.integers(1, 3)
    colours[marking] = base[3]
    return PaintedObject(vertices, faces, colours, "cylinder")


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


def _inside(points: np.ndarray, spec: str, mesh: ObjectMesh, margin: float = 0.001) -> np.ndarray:
    """Which object-frame points `(..., 3)` lie inside the object (shrunk by `margin`)."""
    kind, _, rest = spec.partition(":")
    if kind == "cylinder" and not Path(spec).exists():
        radius, height = (float(d) for d in rest.split("x"))
        radial = points[..., 0] ** 2 + points[..., 2] ** 2
        return (radial < (radius - margin) ** 2) & (np.abs(points[..., 1]) < height / 2 - margin)
    # Boxes exactly; user meshes approximately, by 85 % of their bounding box.
    lo, hi = mesh.vertices.min(axis=0), mesh.vertices.max(axis=0)
    centre, half = (lo + hi) / 2, (hi - lo) / 2 * (1.0 if kind == "box" else 0.85) - margin
    return (np.abs(points - centre) < half).all(axis=-1)


def _random_distractor(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A distractor primitive: vertices (own frame), faces, per-face colours."""
    if rng.uniform() < 0.5:
        dims = rng.uniform(0.02, 0.15, 3)
        vertices, faces, sides, _ = _grid_box(dims, cells=1)
        colours = _distinct_colours(rng, 6)[sides] if rng.uniform() < 0.5 else None
    else:
        vertices, faces, _, parts, _ = _banded_cylinder(
            rng.uniform(0.01, 0.06), rng.uniform(0.03, 0.2), segments=16, bands=1
        )
        colours = _distinct_colours(rng, 3)[parts] if rng.uniform() < 0.5 else None
    if colours is None:
        colours = np.broadcast_to(rng.uniform(0.05, 1.0, 3), (len(faces), 3))
    return vertices, faces, colours


# --------------------------------------------------------------------------------------------
# Scenes


@dataclass(frozen=True)
class Grasp:
    """A hand pose (θ with identity global rotation) and the object's pose in the hand's frame."""

    theta: np.ndarray
    object_R: np.ndarray
    object_t: np.ndarray
    contact: bool  #: the object touches the hand (else it lies near it)
    vertices: np.ndarray  #: the posed hand's vertices and joints (θ[:3] = 0, wrist at 0)
    joints: np.ndarray


@dataclass(frozen=True)
class Look:
    """A sequence's appearance: skin per hand face, the painted object, the forearm."""

    hand_colours: np.ndarray  #: (F, 3) in [0, 1]
    paint: PaintedObject
    arm_vertices: np.ndarray  #: forearm in its own frame (+x from the wrist to the elbow)
    arm_faces: np.ndarray
    arm_colours: np.ndarray


@dataclass(frozen=True)
class Scene:
    """Everything that defines one frame (camera frame: OpenCV, metres)."""

    theta: np.ndarray
    beta: np.ndarray
    wrist: np.ndarray  #: (3,) camera-frame wrist position
    object_R: np.ndarray
    object_t: np.ndarray
    camera_matrix: np.ndarray
    lights: tuple[Light, ...]
    arm_bend: np.ndarray  #: (3, 3) forearm frame → hand rest frame (wrist flexion/deviation)
    distractors: tuple[MeshInstance, ...] = ()
    shadow: float = 0.0  #: strength of the soft drop shadow on the background


class SceneSampler:
    """Draws grasps, cameras and looks for one sequence (shared hand shape, skin and object)."""

    def __init__(self, hand: HandModel, style: Style, size: int, rng: np.random.Generator, meshes):
        self.hand, self.style, self.size, self.rng = hand, style, size, rng
        self.beta = np.clip(rng.normal(0, style.beta_std, 10), -3, 3) * np.r_[1, 1, 1, 1, [0.5] * 6]
        self.spec, self.mesh = _object_for_sequence(rng, style, meshes)
        paint = paint_object(rng, self.spec, self.mesh, rng.uniform() < style.painted)
        skin, darkness = _skin_tone(rng, style)
        if style.name == "default" and rng.uniform() < 0.04:  # a glove now and then
            skin, darkness = _colour(rng) / 255.0, 0.0
        rest = self._pose(np.zeros(48))[0]
        hand_colours = _skin_colours(rng, skin, darkness, rest, hand.faces)
        size_factor = 1.0 + 0.07 * self.beta[0]
        self.arm_vertices, self.arm_faces = _tube(
            0.45, 0.026 * size_factor * rng.uniform(0.9, 1.1), 0.04 * size_factor
        )
        arm_skin = _skin_colours(rng, skin, darkness * 0.3, self.arm_vertices, self.arm_faces)
        centroids = self.arm_vertices[self.arm_faces].mean(axis=1)
        if rng.uniform() < style.sleeve:
            cuff = rng.uniform(0.01, 0.15)
            sleeve = _colour(rng) / 255.0 * rng.normal(1, 0.03, (len(self.arm_faces), 1))
            arm_skin = np.where((centroids[:, 0] > cuff)[:, None], np.clip(sleeve, 0, 1), arm_skin)
        self.look = Look(hand_colours, paint, self.arm_vertices, self.arm_faces, arm_skin)

    def _pose(self, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        out = self.hand(
            torch.tensor(theta[None], dtype=torch.float32),
            torch.tensor(self.beta[None], dtype=torch.float32),
        )
        return out.vertices[0].double().numpy(), out.joints[0].double().numpy()

    def grasp(self) -> Grasp:
        """A hand pose over the whole range and the object held in it (or near it)."""
        rng = self.rng
        theta = self.hand.sample_pose(rng)
        theta[:3] = 0.0
        vertices, joints = self._pose(theta)
        palm = joints[[0, 5, 9, 13, 17]].mean(0)
        tips = joints[[4, 8, 12, 16, 20]]
        curl = float(np.linalg.norm(tips[1:].mean(0) - palm))  # small when the fingers close
        holding = rng.uniform() < (0.85 if curl < 0.085 else 0.15)
        R = self._object_rotation()
        if holding:
            # Start between palm and fingertips (pinches: between thumb and index tips), deep
            # in the hand, then slide out of the palm until nothing penetrates: contact.
            pinch = np.linalg.norm(tips[0] - tips[1]) < 0.05 and rng.uniform() < 0.5
            start = 0.5 * (tips[0] + tips[1]) if pinch else 0.5 * (palm + tips.mean(0))
            start = start + rng.normal(0, 0.004, 3)
            directions = [np.array([0.0, -1.0, 0.0]), start - palm, np.array([-0.3, -1.0, 0.0])]
        else:  # near the hand: a few centimetres away, pushed out of the hand if need be
            direction = rng.normal(size=3)
            start = palm + direction / np.linalg.norm(direction) * rng.uniform(0.06, 0.15)
            directions = [start - palm]
        t, touching = self._push_out(vertices, R, start, directions, slide_in=holding)
        return Grasp(theta, R, t, holding and touching, vertices, joints)

    def _object_rotation(self) -> np.ndarray:
        rng = self.rng
        if self.spec.startswith("cylinder") and rng.uniform() < 0.7:
            # A power grasp wraps around the cylinder: its axis (y) across the palm (z).
            spin = _rodrigues([0, rng.uniform(0, 2 * np.pi), 0])
            tilt = _rodrigues(rng.normal(0, 0.3, 3))
            return tilt @ _rotation_between(np.array([0, 1.0, 0]), np.array([0, 0, 1.0])) @ spin
        return _random_rotation(rng)

    def _push_out(self, vertices, R, start, directions, slide_in=True, step=0.004, steps=32):
        """The nearest non-penetrating object position from `start` along `directions`.

        From a penetrating start the object slides out until it just clears the hand (touching
        it, within a step); from a free start it slides in until just before it would
        penetrate (`slide_in`) or stays. Returns the position and whether it touches.
        """
        offsets = np.arange(steps) * step
        best, best_distance, touching = start, np.inf, False
        for direction in directions:
            d = direction / max(np.linalg.norm(direction), 1e-9)
            centres = start + offsets[:, None] * d  # (S, 3)
            local = (vertices[None] - centres[:, None]) @ R  # (S, V, 3) in the object frame
            hits = _inside(local, self.spec, self.mesh).any(axis=1)
            if not hits[0] and not slide_in:
                return start, False
            if not hits[0]:
                back = start - offsets[:, None] * d
                local = (vertices[None] - back[:, None]) @ R
                hits_back = _inside(local, self.spec, self.mesh).any(axis=1)
                first = int(np.argmax(hits_back)) if hits_back.any() else steps
                return back[max(first - 1, 0)], bool(hits_back.any())
            if (~hits).any():
                k = int(np.argmax(~hits))
                if offsets[k] < best_distance:
                    best, best_distance, touching = centres[k], offsets[k], True
        if not np.isfinite(best_distance):  # still inside after the longest slide: move away
            d = directions[0] / max(np.linalg.norm(directions[0]), 1e-9)
            best = start + d * (steps * step + 0.05)
        return best, touching

    def camera(self) -> np.ndarray:
        """Random intrinsics for a square image of `size` pixels."""
        fov = np.deg2rad(self.rng.uniform(*self.style.fov_deg))
        f = self.size / 2 / np.tan(fov / 2)
        c = self.size / 2 + self.rng.normal(0, 0.02 * self.size, 2)
        return np.array([[f, 0, c[0]], [0, f, c[1]], [0, 0, 1.0]])

    def lights(self) -> tuple[Light, ...]:
        """An ambient term and one to three lights, mostly from the camera's side."""
        rng = self.rng
        count = int(rng.integers(self.style.lights[0], self.style.lights[1] + 1))
        total = rng.uniform(0.5, 0.95)
        shares = rng.dirichlet(np.full(count, 2.0)) * total
        lights = []
        for i in range(count):
            direction = rng.normal(size=3) + np.array([0, -0.8, -1.2]) * (1.0 if i == 0 else 0.3)
            lights.append(
                Light(
                    tuple(direction / np.linalg.norm(direction)),
                    rng.uniform(*self.style.ambient),
                    float(shares[i]),
                    specular=rng.uniform(0.0, 0.35) * (rng.uniform() < 0.8),
                    shininess=rng.uniform(6, 40),
                )
            )
        return tuple(lights)

    def place(self, grasp: Grasp, K: np.ndarray) -> Scene:
        """Put the hand-object pair in front of the camera, seen egocentrically or not."""
        rng = self.rng
        bend = _rodrigues([0, rng.normal(0, 0.15), rng.normal(0, 0.3)])
        arm_local = bend @ np.array([1.0, 0, 0])  # wrist → elbow in the hand's rest frame
        if rng.uniform() < self.style.egocentric:
            # Camera behind/above the wrist: the forearm comes from the camera, leaving the
            # image at its bottom.
            arm = np.array([rng.normal(0, 0.3), rng.uniform(0.3, 1.0), -rng.uniform(0.6, 1.2)])
        else:
            arm = rng.normal(size=3) * [1.0, 1.0, 0.6]
        arm /= np.linalg.norm(arm)
        roll = _rodrigues(arm * rng.uniform(0, 2 * np.pi))  # palm, back and side views
        global_R = roll @ _rotation_between(arm_local, arm)
        theta = grasp.theta.copy()
        theta[:3] = cv2.Rodrigues(global_R)[0][:, 0]
        focus = grasp.joints.mean(axis=0)
        if grasp.contact:
            focus = 0.7 * focus + 0.3 * grasp.object_t
        # Depth from the hand's apparent size (a quarter to nine tenths of the image), so wide
        # and narrow lenses alike show the hand large enough to learn from.
        length = 2.1 * np.linalg.norm(grasp.joints[9] - grasp.joints[0])  # wrist to fingertip
        depth = np.clip(length * K[0, 0] / (rng.uniform(0.25, 0.9) * self.size), *self.style.depth)
        offset = rng.uniform(-0.25, 0.25, 2) * depth * self.size / K[0, 0]
        focus_cam = np.array([offset[0], offset[1], depth])
        wrist = focus_cam - global_R @ focus
        object_t = wrist + global_R @ grasp.object_t
        return Scene(
            theta=theta,
            beta=self.beta,
            wrist=wrist,
            object_R=global_R @ grasp.object_R,
            object_t=object_t,
            camera_matrix=K,
            lights=self.lights(),
            arm_bend=bend,
            distractors=self._distractors(K, focus_cam),
            shadow=rng.uniform(0.15, 0.5) if rng.uniform() < 0.6 else 0.0,
        )

    def _distractors(self, K: np.ndarray, focus: np.ndarray) -> tuple[MeshInstance, ...]:
        rng = self.rng
        placed = []
        count = int(rng.poisson(self.style.distractors))
        occluder = rng.uniform() < self.style.occluder
        for i in range(count + occluder):
            vertices, faces, colours = _random_distractor(rng)
            if occluder and i == count:  # between camera and hand, covering part of it
                depth = focus[2] * rng.uniform(0.55, 0.85)
                vertices = vertices * min(1.0, 0.06 / np.ptp(vertices, axis=0).max())
                centre = focus * depth / focus[2] + np.r_[rng.normal(0, 0.06, 2), 0] * depth
            else:
                depth = rng.uniform(0.35, 1.5)
                pixel = rng.uniform(0, self.size, 2)
                centre = np.linalg.solve(K, np.r_[pixel, 1.0]) * depth
            points = vertices @ _random_rotation(rng).T + centre
            placed.append(MeshInstance(points, faces, colours, DISTRACTOR_LABEL))
        return tuple(placed)


def render_scene(scene: Scene, hand: HandModel, look: Look, size: int, bg: np.ndarray, posed=None):
    """The frame's RGB image, label image, and hoposer-order 3D joints (camera frame).

    `posed`: the hand's `(vertices, joints)` for θ with its global rotation zeroed, if known
    (the global rotation turns them about the wrist, which saves a forward pass).
    """
    global_R = _rodrigues(scene.theta[:3])
    if posed is None:
        theta = scene.theta.copy()
        theta[:3] = 0.0
        out = hand(
            torch.tensor(theta[None], dtype=torch.float32),
            torch.tensor(scene.beta[None], dtype=torch.float32),
        )
        posed = out.vertices[0].double().numpy(), out.joints[0].double().numpy()
    vertices = posed[0] @ global_R.T + scene.wrist
    joints = posed[1] @ global_R.T + scene.wrist
    arm = look.arm_vertices @ (global_R @ scene.arm_bend).T + scene.wrist
    paint = look.paint
    meshes = [
        MeshInstance(vertices, hand.faces, look.hand_colours, HAND_LABEL),
        MeshInstance(arm, look.arm_faces, look.arm_colours, ARM_LABEL),
        MeshInstance(
            paint.vertices @ scene.object_R.T + scene.object_t,
            paint.faces,
            paint.colours,
            OBJECT_LABEL,
        ),
        *scene.distractors,
    ]
    image, labels = render(meshes, scene.camera_matrix, (size, size), background=bg,
                           light=scene.lights)  # fmt: skip
    if scene.shadow > 0:
        image = _drop_shadow(image, labels, scene)
    return image, labels, joints


def _drop_shadow(image: np.ndarray, labels: np.ndarray, scene: Scene) -> np.ndarray:
    """Darken the background and distractors under a blurred, light-shifted silhouette."""
    size = image.shape[1]
    mask = ((labels > 0) & (labels < DISTRACTOR_LABEL)).astype(np.float32)
    direction = np.asarray(scene.lights[0].direction)
    shift = -direction[:2] * size * 0.04
    mask = cv2.warpAffine(mask, np.float32([[1, 0, shift[0]], [0, 1, shift[1]]]), (size, size))
    mask = cv2.GaussianBlur(mask, (0, 0), size * 0.02)
    mask[(labels > 0) & (labels < DISTRACTOR_LABEL)] = 0  # shade is already on those
    return (image * (1 - scene.shadow * mask[..., None])).astype(np.uint8)


def degrade(image: np.ndarray, rng: np.random.Generator, gains=None) -> np.ndarray:
    """A camera's imperfections: white balance, motion or defocus blur, sensor noise.

    `gains`: the white balance's RGB gains; drawn here if None (a clip keeps one for all frames).
    """
    gains = rng.uniform(0.88, 1.12, 3) if gains is None else gains
    x = image.astype(np.float32) * np.asarray(gains, np.float32)
    u = rng.uniform()
    if u < 0.15:  # motion blur along a random direction
        length = int(rng.integers(3, 10))
        kernel = np.zeros((length, length), np.float32)
        kernel[length // 2] = 1.0 / length
        turn = cv2.getRotationMatrix2D((length / 2 - 0.5, length / 2 - 0.5), rng.uniform(0, 180), 1)
        kernel = cv2.warpAffine(kernel, turn, (length, length))
        x = cv2.filter2D(x, -1, kernel / max(float(kernel.sum()), 1e-6))
    elif u < 0.35:
        x = cv2.GaussianBlur(x, (0, 0), rng.uniform(0.4, 1.3))
    if rng.uniform() < 0.7:
        x = x + rng.standard_normal(x.shape, dtype=np.float32) * rng.uniform(1, 7)
    return np.clip(x, 0, 255).astype(np.uint8)


def _hand_visible(labels: np.ndarray, joints: np.ndarray, K: np.ndarray) -> bool:
    """Whether most joints are in the image and enough of the hand is unoccluded to learn from."""
    height, width = labels.shape
    points = joints @ K.T
    pixels = (points[:, :2] / points[:, 2:]).astype(np.float32)
    inside = (pixels >= 0).all(axis=1) & (pixels < [width, height]).all(axis=1)
    if inside.mean() < 0.7:
        return False
    hull = cv2.contourArea(cv2.convexHull(pixels[inside]))
    return (labels == HAND_LABEL).sum() >= 0.25 * hull


def visible_fraction(labels: np.ndarray, vertices: np.ndarray, faces, K: np.ndarray) -> float:
    """The share of the object's silhouette (`vertices`, camera frame) the label image shows.

    The hand, an occluder and the frame's edge hide parts alike (`render.silhouette_pixels`).
    """
    height, width = labels.shape
    silhouette = silhouette_pixels(vertices, faces, K, (width, height))
    shown = int((labels == OBJECT_LABEL).sum())
    return min(1.0, shown / silhouette) if silhouette else 0.0


def _frame_label(
    scene: Scene, joints: np.ndarray, hand: HandModel, spec: str, visible: float
) -> FrameLabel:
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
        object_visible=visible,
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


def _write_frame(
    root: Path, split: str, sequence: str, frame: str, image, meta: dict, quality: int = 95
) -> None:
    rgb = root / split / sequence / "rgb"
    meta_dir = root / split / sequence / "meta"
    rgb.mkdir(parents=True, exist_ok=True)
    meta_dir.mkdir(parents=True, exist_ok=True)
    ok, jpg = cv2.imencode(
        ".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, int(quality)]
    )
    if not ok:
        raise HoposerError("JPEG encoding failed")
    # No fsync per frame (it cost more than rendering); the split listing, written last and
    # synced, is what makes a data set complete.
    with atomic_path(rgb / f"{frame}.jpg", sync=False) as tmp:
        tmp.write_bytes(jpg.tobytes())
    with atomic_path(meta_dir / f"{frame}.pkl", sync=False) as tmp:
        tmp.write_bytes(pickle.dumps(meta, protocol=4))


def _make_sequence(args: tuple[SynthOptions, int, int]) -> list[tuple[str, str, dict]]:
    """Render sequence `index` (frames [start, start + n)); returns ids and per-frame boxes."""
    options, index, count = args
    style = STYLES[options.style]
    hand = build_hand_model(options.hand_model, options.mano_dir)
    rng = np.random.default_rng((options.seed, index))
    sampler = SceneSampler(hand, style, options.size, rng, options.object_meshes)
    photos = _photos(options.backgrounds, options.size)
    sequence = f"{style.name[:2].upper()}{options.seed:03d}_{index:05d}"
    written = []
    keys = _key_scenes(sampler, count) if options.videos else None
    # A clip is filmed by a still camera: one background for all its frames.
    clip_background = background(rng, options.size, style, photos) if options.videos else None
    clip_gains = rng.uniform(0.88, 1.12, 3) if options.videos else None
    for i in range(count):
        if options.videos:
            scene = _interpolate(keys, i)
            image, labels, joints = render_scene(
                scene, hand, sampler.look, options.size, clip_background
            )
        else:
            grasp = sampler.grasp()
            posed = grasp.vertices, grasp.joints
            bg = background(rng, options.size, style, photos)
            for _attempt in range(3):  # another view when the hand is hidden or out of frame
                scene = sampler.place(grasp, sampler.camera())
                image, labels, joints = render_scene(
                    scene, hand, sampler.look, options.size, bg, posed
                )
                if _hand_visible(labels, joints, scene.camera_matrix):
                    break
        image = degrade(image, rng, clip_gains)
        frame = f"{i:06d}" if options.videos else f"{i:04d}"
        paint = sampler.look.paint
        visible = visible_fraction(
            labels, paint.vertices @ scene.object_R.T + scene.object_t, paint.faces,
            scene.camera_matrix,
        )  # fmt: skip
        meta = to_ho3d_meta(
            _frame_label(scene, joints, hand, sampler.spec, visible), object_spec=sampler.spec
        )
        meta["objSymmetry"] = sampler.look.paint.symmetry
        quality = int(rng.integers(35, 96))
        _write_frame(Path(options.out), options.split, sequence, frame, image, meta, quality)
        written.append((sequence, frame, _boxes_visible(labels)))
    return written


_PHOTOS: dict[tuple[str, int], PhotoBackgrounds] = {}


def _photos(folder: str | None, size: int) -> PhotoBackgrounds | None:
    """The user's background photos, listed and decoded once per process."""
    if folder is None:
        return None
    if (folder, size) not in _PHOTOS:
        _PHOTOS[(folder, size)] = PhotoBackgrounds(folder, size)
    return _PHOTOS[(folder, size)]


def _key_scenes(sampler: SceneSampler, count: int, every: int = 15) -> dict:
    """Key poses every `every` frames for a smooth clip: the grasp is fixed, the rest moves."""
    grasp = sampler.grasp()
    center = grasp.object_t
    K = sampler.camera()
    keys = [sampler.place(grasp, K) for _ in range(count // every + 2)]
    # Gentle motion: each key rotates little from the previous one.
    for k in range(1, len(keys)):
        prev = keys[k - 1]
        small = axis_angle_to_matrix(torch.from_numpy(sampler.rng.normal(0, 0.25, 3))).numpy()
        g_prev = axis_angle_to_matrix(torch.from_numpy(prev.theta[:3])).numpy()
        grip = g_prev.T @ prev.object_R  # object in the hand frame stays fixed
        g = small @ g_prev
        # Fingers holding an object barely move (it stays put in the hand); free ones wander.
        wander = 0.02 if grasp.contact else 0.08
        finger_theta = np.clip(prev.theta[3:] + sampler.rng.normal(0, wander, 45), -1.6, 1.6)
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
    _photos(options.backgrounds, options.size)  # a bad folder fails before any work
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
