"""What Open3D draws: the live view's scene and the headless `video --panel`, on a known pose.

A known hand pose and box go through the same scene code as the live window; Open3D's frame
buffer (`capture_screen_float_buffer`) must show skin where the hand projects and the object's
colour where the box projects (IoU ≥ 0.5 with the 2D projection, drawn by hoposer's renderer).
Skipped only when Open3D or an OpenGL context (a display, Xvfb or EGL) is missing.
"""

import os
import shutil
import subprocess

import numpy as np
import pytest
import torch

from hoposer.decode import FramePose, HandPose, ObjectPose
from hoposer.frames.sources import Frame
from hoposer.geometry.camera import default_camera_matrix
from hoposer.geometry.control_points import object_mesh
from hoposer.geometry.rotations import axis_angle_to_matrix, matrix_to_axis_angle
from hoposer.model.hand import StandInHand
from hoposer.render import MeshInstance, render
from hoposer.stream.pipeline import FrameResult, ObjectSpec
from hoposer.stream.stabilizer import HandEstimate, Verdict

SIZE = (640, 480)
BOX = "box:0.05x0.05x0.05"
#: The stand-in's frame (fingers −x, palm −y) turned so fingers point up, palm to the camera.
FACING = np.array([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])


def known_result(stable: bool = True, object_accepted: bool = True, image=None) -> FrameResult:
    """A right hand 0.45 m away, palm to the camera, and a box beside it (camera frame)."""
    hand_model = StandInHand()
    theta = np.zeros(48)
    turn = axis_angle_to_matrix(torch.tensor([0.1, 0.3, 0.0], dtype=torch.float64)).numpy()
    theta[:3] = matrix_to_axis_angle(torch.tensor(turn @ FACING)).numpy()
    out = hand_model(torch.tensor(theta[None]), torch.zeros(1, 10, dtype=torch.float64))
    wrist = np.array([-0.05, 0.08, 0.45])
    joints = out.joints[0].numpy() + wrist
    vertices = out.vertices[0].numpy() + wrist
    K = default_camera_matrix(*SIZE)
    joints_2d = joints @ K.T
    joints_2d = joints_2d[:, :2] / joints_2d[:, 2:]
    box_R = axis_angle_to_matrix(torch.tensor([0.4, 0.5, 0.2], dtype=torch.float64)).numpy()
    box_t = np.array([0.1, 0.02, 0.5])
    nan = np.full(3, np.nan)
    obj = (
        ObjectPose(True, box_R, box_t, 12, 0.8, "")
        if object_accepted
        else ObjectPose(False, np.full((3, 3), np.nan), nan, 0, np.nan, "too few inliers")
    )
    hand = HandPose(joints_2d, joints, vertices, theta, np.zeros(10), wrist, 0.5)
    estimate = HandEstimate(joints_2d, joints, theta, np.zeros(10), vertices, np.zeros(4))
    flags = () if stable else ("reprojection",)
    verdict = Verdict(stable, not stable, 0 if stable else 3, flags, estimate, {})
    if image is None:
        image = np.full((SIZE[1], SIZE[0], 3), 128, np.uint8)  # grey: no skin, no blue
    frame = Frame(0, 1.0, image)
    return FrameResult(frame, {}, None, None, FramePose(hand, obj), verdict)


def object_spec() -> ObjectSpec:
    mesh = object_mesh(BOX)
    return ObjectSpec(BOX, mesh.control_points, mesh.vertices, mesh.faces)


def projected_masks(result: FrameResult):
    """The hand's and the box's 2D projections (visible pixels) by hoposer's renderer."""
    spec = object_spec()
    K = default_camera_matrix(*SIZE)
    o = result.pose.object
    meshes = [
        MeshInstance(result.pose.hand.vertices, StandInHand().faces, np.ones(3), 1),
        MeshInstance(spec.vertices @ o.R.T + o.t, spec.faces, np.ones(3), 2),
    ]
    _, labels = render(meshes, K, SIZE, supersample=1)
    return labels == 1, labels == 2


def skin_pixels(bgr: np.ndarray) -> np.ndarray:
    b, g, r = (bgr[..., i].astype(int) for i in range(3))
    return (r > b + 40) & (r > g + 10) & (r > 60)


def object_pixels(bgr: np.ndarray) -> np.ndarray:
    b, g, r = (bgr[..., i].astype(int) for i in range(3))
    return (b > r + 40) & (b > g + 15)


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max((a | b).sum(), 1))


@pytest.fixture(scope="module")
def display():
    """An X display: the user's, or a private Xvfb; None when neither exists (EGL only)."""
    # ImportError too: an installed Open3D whose system libraries (libusb, libEGL) are missing
    pytest.importorskip("open3d", exc_type=ImportError)
    if os.environ.get("DISPLAY"):
        yield os.environ["DISPLAY"]
        return
    if shutil.which("Xvfb") is None:
        yield None
        return
    read, write = os.pipe()
    server = subprocess.Popen(
        ["Xvfb", "-displayfd", str(write), "-screen", "0", "1600x900x24", "-nolisten", "tcp"],
        pass_fds=(write,),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    os.close(write)
    with os.fdopen(read) as pipe:
        number = pipe.readline().strip()
    if not number:
        server.kill()
        yield None
        return
    os.environ["DISPLAY"] = f":{number}"
    try:
        yield os.environ["DISPLAY"]
    finally:
        del os.environ["DISPLAY"]
        server.terminate()
        server.wait(timeout=10)


def open_scene(visible: bool, **kwargs):
    from hoposer.stream.scene3d import Open3DScene, Open3DUnavailableError

    try:
        return Open3DScene(
            default_camera_matrix(*SIZE), SIZE, StandInHand().faces, object_spec(),
            visible=visible, **kwargs,
        )  # fmt: skip
    except Open3DUnavailableError as err:
        pytest.skip(str(err))


def assert_draws_known_pose(bgr: np.ndarray, result: FrameResult) -> None:
    hand, box = projected_masks(result)
    assert iou(skin_pixels(bgr), hand) >= 0.5
    assert iou(object_pixels(bgr), box) >= 0.5


def test_live_view_shows_the_hand_and_the_box_where_the_camera_sees_them(display):
    if display is None:
        pytest.skip("no X display and no Xvfb")
    from hoposer.stream.scene3d import scene_content

    scene = open_scene(visible=True)
    try:
        result = known_result()
        scene.update(scene_content(result, StandInHand().faces))
        assert scene.poll()
        image = scene.capture()
        assert image.shape == (SIZE[1], SIZE[0], 3)
        assert_draws_known_pose(image, result)
        assert scene.hand.has_vertex_colors()  # the colours survive the vertex update
    finally:
        scene.close()


def test_headless_panel_shows_the_same_camera_true_scene(display):
    from hoposer.stream.scene3d import Panel

    panel = Panel(default_camera_matrix(*SIZE), SIZE, StandInHand().faces, object_spec())
    try:
        if panel.scene is None:
            pytest.skip("Open3D cannot open an offscreen OpenGL context here")
        result = known_result()
        image = panel.draw(result)
        assert image.shape == (SIZE[1], SIZE[0], 3)
        assert_draws_known_pose(image, result)
    finally:
        panel.close()


def test_cpu_panel_draws_the_same_camera_view_without_open3d():
    from hoposer.stream.scene3d import Panel

    K = default_camera_matrix(*SIZE)
    panel = Panel(K, SIZE, StandInHand().faces, object_spec(), cpu_reason="tested without Open3D")
    result = known_result()
    assert_draws_known_pose(panel.draw(result), result)


def test_held_hand_is_amber_and_a_rejected_object_is_hidden(display):
    from hoposer.stream.scene3d import scene_content

    scene = open_scene(visible=False)
    try:
        result = known_result(stable=False, object_accepted=False)
        scene.update(scene_content(result, StandInHand().faces))
        image = scene.capture()
        hand, box = projected_masks(known_result())
        b, g, r = (image[..., i].astype(int) for i in range(3))
        amber = (r > 80) & (r > g + 15) & (g > b + 40)
        assert iou(amber, hand) >= 0.5
        assert object_pixels(image).sum() == 0
    finally:
        scene.close()


def test_side_view_follows_the_hand(display):
    from dataclasses import replace

    from hoposer.stream.scene3d import scene_content

    scene = open_scene(visible=False)
    try:
        scene.set_view("side")
        content = scene_content(known_result(object_accepted=False), StandInHand().faces)
        scene.update(content)
        before = np.argwhere(skin_pixels(scene.capture())).mean(axis=0)
        moved = replace(content, hand_vertices=content.hand_vertices + [0.1, 0.0, 0.05])
        for second in range(2, 8):  # seconds apart: the smoothing has caught up
            scene.update(replace(moved, time=float(second)))
        after = np.argwhere(skin_pixels(scene.capture())).mean(axis=0)
        assert np.abs(after - before).max() < 15  # pixels: re-centred on the moved hand
        scene.set_view("camera")
        scene.update(replace(moved, time=9.0))
        in_camera = np.argwhere(skin_pixels(scene.capture())).mean(axis=0)
        assert in_camera[1] - before[1] > 50  # the camera view does not move: the hand does
    finally:
        scene.close()


def test_dragging_the_view_switches_to_orbit_which_follows_the_hand(display):
    from dataclasses import replace

    from hoposer.stream.scene3d import scene_content

    scene = open_scene(visible=False)
    try:
        content = scene_content(known_result(object_accepted=False), StandInHand().faces)
        scene.update(content)
        scene.vis.get_view_control().rotate(150.0, 40.0)  # what a mouse drag does
        scene.update(replace(content, time=2.0))
        assert scene.view == "orbit"
        before = np.argwhere(skin_pixels(scene.capture())).mean(axis=0)
        moved = replace(content, hand_vertices=content.hand_vertices + [0.08, -0.05, 0.1])
        for second in range(3, 9):
            scene.update(replace(moved, time=float(second)))
        after = np.argwhere(skin_pixels(scene.capture())).mean(axis=0)
        assert np.abs(after - before).max() < 15  # the orbit's centre moved with the hand
    finally:
        scene.close()


def test_with_extrinsics_the_floor_is_the_robot_bases_and_the_side_view_looks_down_on_it():
    from hoposer.calib.extrinsics import Transform
    from hoposer.stream.scene3d import _Frame

    # A camera 0.5 m above the base, looking along the base's x (base: x forward, z up).
    T = np.eye(4)
    T[:3, :3] = [[0, 0, 1], [-1, 0, 0], [0, -1, 0]]
    T[:3, 3] = [0.2, 0.0, 0.5]
    to_base = Transform.from_matrix(T, "base", "camera")
    frame = _Frame(to_base)
    points, _ = frame.ground_grid()
    in_base = to_base.apply(points.reshape(-1, 3))
    np.testing.assert_allclose(in_base[:, 2], 0.0, atol=1e-9)  # on the base's floor
    np.testing.assert_allclose(frame.up, [0.0, -1.0, 0.0], atol=1e-9)  # base z is camera −y
    target = np.array([0.0, 0.1, 0.5])
    view = frame.side_view(target)
    eye = -view[:3, :3].T @ view[:3, 3]
    assert to_base.apply(eye[None])[0, 2] > to_base.apply(target[None])[0, 2]  # from above
    assert eye[0] > target[0]  # from the camera's right
    np.testing.assert_allclose(np.linalg.norm(eye - target), 0.6)
    projected = view[:3, :3] @ target + view[:3, 3]
    np.testing.assert_allclose(projected[:2], 0.0, atol=1e-9)  # looking at the target
