import re
import zlib

import numpy as np
import pytest
import yaml

from hoposer.calib.boards import parse_board, render_board, write_board
from hoposer.calib.camera_info import CameraInfo, read_camera_info, write_camera_info
from hoposer.calib.extrinsics import Transform, parse_pose, read_transform, write_transform
from hoposer.errors import HoposerError

ROS_KEYS = [
    "image_width",
    "image_height",
    "camera_name",
    "camera_matrix",
    "distortion_model",
    "distortion_coefficients",
    "rectification_matrix",
    "projection_matrix",
]


def _info(model="plumb_bob", n=5):
    K = [[600.5, 0, 320.25], [0, 601.0, 240.75], [0, 0, 1]]
    return CameraInfo(640, 480, "cam_1", K, np.linspace(-0.2, 0.1, n), model)


@pytest.mark.parametrize(
    "model,n", [("plumb_bob", 5), ("rational_polynomial", 8), ("equidistant", 4)]
)
def test_camera_info_round_trip_and_ros_layout(tmp_path, model, n):
    info = _info(model, n)
    path = write_camera_info(tmp_path / "c.yaml", info)
    doc = yaml.safe_load(path.read_text())
    assert list(doc) == ROS_KEYS  # the order camera_calibration_parsers writes
    shapes = {
        "camera_matrix": (3, 3),
        "distortion_coefficients": (1, n),
        "rectification_matrix": (3, 3),
        "projection_matrix": (3, 4),
    }
    for key, (rows, cols) in shapes.items():
        assert doc[key]["rows"] == rows and doc[key]["cols"] == cols
        assert len(doc[key]["data"]) == rows * cols
    assert doc["distortion_model"] == model and doc["camera_name"] == "cam_1"
    back = read_camera_info(path)
    np.testing.assert_array_equal(back.K, info.K)
    np.testing.assert_array_equal(back.D, info.D)
    np.testing.assert_array_equal(back.P, info.P)
    assert (back.width, back.height, back.distortion_model) == (640, 480, model)


def test_reads_a_ros_written_file(tmp_path):
    # As written by ROS camera_calibration (block style, 5 coefficients).
    text = """image_width: 1280
image_height: 720
camera_name: narrow_stereo
camera_matrix:
  rows: 3
  cols: 3
  data: [910.1, 0., 640.2, 0., 911.3, 360.5, 0., 0., 1.]
distortion_model: plumb_bob
distortion_coefficients:
  rows: 1
  cols: 5
  data: [0.1, -0.2, 0.001, 0.002, 0.]
rectification_matrix:
  rows: 3
  cols: 3
  data: [1., 0., 0., 0., 1., 0., 0., 0., 1.]
projection_matrix:
  rows: 3
  cols: 4
  data: [900., 0., 640., 0., 0., 905., 360., 0., 0., 0., 1., 0.]
"""
    (tmp_path / "ros.yaml").write_text(text)
    info = read_camera_info(tmp_path / "ros.yaml")
    assert info.K[0, 0] == 910.1 and info.P[1, 1] == 905.0
    half = info.scaled_to(640, 360)
    assert half.K[0, 0] == pytest.approx(455.05)
    with pytest.raises(HoposerError, match="aspect ratio"):
        info.scaled_to(640, 480)


@pytest.mark.parametrize(
    "mutate,match",
    [
        (lambda d: d.pop("camera_matrix"), "missing 'camera_matrix'"),
        (lambda d: d["camera_matrix"].update(rows=2), "must be 3x3"),
        (lambda d: d["distortion_coefficients"]["data"].pop(), "has 4 values"),
        (lambda d: d.update(distortion_model="weird"), "not supported"),
        (lambda d: d["camera_matrix"]["data"].__setitem__(0, "x"), "must all be numbers"),
        (lambda d: d["camera_matrix"]["data"].__setitem__(0, -5.0), "fx,fy>0"),
        (lambda d: d.update(image_width=0), "positive integers"),
    ],
)
def test_bad_camera_info_is_one_line(tmp_path, mutate, match):
    path = write_camera_info(tmp_path / "c.yaml", _info())
    doc = yaml.safe_load(path.read_text())
    mutate(doc)
    path.write_text(yaml.safe_dump(doc))
    with pytest.raises(HoposerError, match=match) as err:
        read_camera_info(path)
    assert "\n" not in str(err.value)


def test_camera_info_unreadable(tmp_path):
    with pytest.raises(HoposerError, match="does not exist"):
        read_camera_info(tmp_path / "nope.yaml")
    (tmp_path / "bad.yaml").write_text("a: [1, 2\n")
    with pytest.raises(HoposerError, match="not valid YAML"):
        read_camera_info(tmp_path / "bad.yaml")


def test_transform_round_trip(tmp_path):
    T = parse_pose("0.1,-0.2,0.3,0,0,0.7071068,0.7071068")
    tf = Transform.from_matrix(T, "base", "camera_optical", {"method": "marker", "n": np.int64(3)})
    path = write_transform(tmp_path / "e.yaml", tf)
    doc = yaml.safe_load(path.read_text())
    assert doc["header"]["frame_id"] == "base" and doc["child_frame_id"] == "camera_optical"
    assert set(doc["transform"]["rotation"]) == {"x", "y", "z", "w"}
    back = read_transform(path)
    np.testing.assert_allclose(back.as_matrix(), T, atol=1e-12)
    np.testing.assert_allclose(back.apply([1.0, 0, 0]), [0.1, 0.8, 0.3], atol=1e-7)
    np.testing.assert_allclose(back.inverse().as_matrix() @ T, np.eye(4), atol=1e-12)
    assert back.quality["n"] == 3


def test_bad_transform_files(tmp_path):
    p = tmp_path / "e.yaml"
    p.write_text(
        "header: {frame_id: base}\nchild_frame_id: cam\ntransform:\n"
        "  translation: {x: 0, y: 0, z: 0}\n  rotation: {x: 0, y: 0, z: 0, w: 2}\n"
    )
    with pytest.raises(HoposerError, match="unit quaternion"):
        read_transform(p)
    p.write_text("transform: {}\n")
    with pytest.raises(HoposerError, match="frame_id"):
        read_transform(p)
    with pytest.raises(HoposerError, match="7 numbers"):
        parse_pose("1,2,3")
    with pytest.raises(HoposerError, match="unit length"):
        parse_pose("0,0,0,0,0,0,2")


@pytest.mark.parametrize(
    "args,match",
    [
        (("checkr:9x6", 0.02), "did you mean 'checker"),
        (("checker:9by6", 0.02), "expected checker:COLSxROWS"),
        (("checker:9x6", None), "needs its square side"),
        (("checker:9x6", 24.0), "give it in metres"),
        (("charuco:5x7", 0.04, 0.05, "4X4_50"), "--marker smaller"),
        (("charuco:5x7", 0.04, 0.03, "4X4_5O"), "did you mean '4X4_50'"),
        (("charuco:20x20", 0.04, 0.03, "4X4_50"), "larger dictionary"),
        (("aruco:x", None, 0.1, "4X4_50"), "integer marker id"),
        (("aruco:60", None, 0.1, "4X4_50"), "not in 4X4_50"),
    ],
)
def test_board_spec_errors(args, match):
    with pytest.raises(HoposerError, match=match) as err:
        parse_board(*args)
    assert "\n" not in str(err.value)


def test_board_files_are_true_scale(tmp_path):
    spec = parse_board("checker:9x6", 0.025)
    image = render_board(spec, 4000)  # 100 px per square, one square of quiet zone
    assert image.shape == (9 * 100, 12 * 100)
    png = write_board(spec, tmp_path / "b.png", dpi=254).read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and b"pHYs" in png[:64]
    pdf = write_board(spec, tmp_path / "b.pdf").read_bytes()
    assert pdf.startswith(b"%PDF-1.4") and pdf.rstrip().endswith(b"%%EOF")
    # The image is drawn 12 squares x 25 mm wide (with quiet zone) = 300 mm, in points.
    m = re.search(rb"q ([\d.]+) 0 0 ([\d.]+) [\d.]+ [\d.]+ cm /Im0 Do Q", pdf)
    assert float(m[1]) * 0.0254 / 72 == pytest.approx(0.300, abs=1e-4)
    assert float(m[2]) * 0.0254 / 72 == pytest.approx(0.225, abs=1e-4)
    # The xref offsets point at the objects.
    start = int(pdf.rsplit(b"startxref\n", 1)[1].split()[0])
    offsets = [int(x.split()[0]) for x in pdf[start:].split(b"\n")[3:9]]
    for k, off in enumerate(offsets, start=1):
        assert pdf[off:].startswith(f"{k} 0 obj".encode())
    stream = pdf.split(b"stream\n", 1)[1]
    assert len(zlib.decompressobj().decompress(stream)) > 0
    with pytest.raises(HoposerError, match=".png or .pdf"):
        write_board(spec, tmp_path / "b.svg")
