import numpy as np
import pytest
import trimesh

from hoposer.errors import HoposerError
from hoposer.geometry.control_points import (
    CONTROL_POINT_NAMES,
    ObjectMesh,
    box_control_points,
    load_mesh,
    mesh_control_points,
    object_diameter,
    object_mesh,
    primitive_mesh,
)


def test_control_point_order_matches_semi_hand_object():
    x0, y0, z0, x1, y1, z1 = 1.0, 2.0, 3.0, 5.0, 8.0, 13.0
    p = dict(zip(CONTROL_POINT_NAMES, box_control_points([x0, y0, z0], [x1, y1, z1]), strict=True))
    corners = {
        "blb": (x0, y0, z0), "brb": (x1, y0, z0), "blf": (x0, y1, z0), "brf": (x1, y1, z0),
        "tlb": (x0, y0, z1), "trb": (x1, y0, z1), "tlf": (x0, y1, z1), "trf": (x1, y1, z1),
    }  # fmt: skip
    for name, value in corners.items():
        assert p[name].tolist() == list(value), name
    edges = {
        "ble": ("blb", "blf"), "bre": ("brb", "brf"), "bfe": ("blf", "brf"), "bbe": ("blb", "brb"),
        "tle": ("tlb", "tlf"), "tre": ("trb", "trf"), "tfe": ("tlf", "trf"), "tbe": ("tlb", "trb"),
        "lfe": ("tlf", "blf"), "lbe": ("tlb", "blb"), "rfe": ("trf", "brf"), "rbe": ("trb", "brb"),
    }  # fmt: skip
    for name, (a, b) in edges.items():
        assert np.allclose(p[name], (np.array(corners[a]) + corners[b]) / 2), name
    assert p["centre"].tolist() == [3.0, 5.0, 8.0]
    assert list(p) == list(CONTROL_POINT_NAMES) and len(p) == 21


def test_mesh_control_points_use_the_bounding_box():
    rng = np.random.default_rng(0)
    v = rng.uniform(-1, 1, size=(200, 3)) * [0.1, 0.2, 0.3]
    assert np.allclose(mesh_control_points(v), box_control_points(v.min(0), v.max(0)))


def test_object_diameter_is_the_farthest_pair():
    rng = np.random.default_rng(1)
    v = rng.normal(size=(300, 3))
    d = np.linalg.norm(v[:, None] - v[None], axis=-1).max()
    assert object_diameter(v) == pytest.approx(d, rel=1e-12)
    big = rng.normal(size=(6000, 3))
    big[17] = [10.0, 0, 0]
    big[4000] = [-10.0, 0, 0]
    assert object_diameter(big) == pytest.approx(20.0, rel=1e-12)


def _check_closed_outward(mesh: ObjectMesh):
    tm = trimesh.Trimesh(mesh.vertices, mesh.faces, process=False)
    assert tm.is_watertight and tm.is_winding_consistent
    assert tm.volume > 0  # positive volume: normals point outwards
    return tm


def test_box_primitive():
    mesh = primitive_mesh("box", (0.06, 0.08, 0.1))
    assert mesh.faces.shape == (12, 3) and mesh.vertices.dtype == np.float64
    tm = _check_closed_outward(mesh)
    assert tm.volume == pytest.approx(0.06 * 0.08 * 0.1)
    assert np.allclose(mesh.control_points[:8], mesh.vertices)
    assert np.allclose(mesh.control_points[20], 0.0)
    assert mesh.diameter == pytest.approx(np.linalg.norm([0.06, 0.08, 0.1]))


def test_cylinder_primitive():
    mesh = object_mesh("cylinder:0.03x0.12")
    tm = _check_closed_outward(mesh)
    assert len(mesh.vertices) == 66 and len(mesh.faces) == 128
    assert tm.volume == pytest.approx(0.5 * 32 * np.sin(2 * np.pi / 32) * 0.03**2 * 0.12)
    cp = mesh.control_points
    assert np.allclose(cp[0], [-0.03, -0.06, -0.03]) and np.allclose(cp[7], [0.03, 0.06, 0.03])
    assert mesh.diameter == pytest.approx(np.hypot(0.06, 0.12))


def test_box_spec():
    mesh = object_mesh("box:0.06x0.08x0.1")
    assert np.allclose(mesh.vertices.max(0), [0.03, 0.04, 0.05])
    assert mesh.name == "box:0.06x0.08x0.1"


def test_obj_file_roundtrip(tmp_path):
    box = trimesh.creation.box(extents=(40.0, 60.0, 20.0))  # millimetres
    box.apply_translation([5.0, 0.0, 0.0])
    path = tmp_path / "part.obj"
    box.export(path)
    mesh = object_mesh(str(path), scale=0.001)
    assert mesh.name == "part"
    assert np.allclose(mesh.control_points[0], [-0.015, -0.03, -0.01])
    assert np.allclose(mesh.control_points[7], [0.025, 0.03, 0.01])
    assert len(load_mesh(path).faces) == 12


@pytest.mark.parametrize(
    "spec", ["box:0.1x0.2", "box:axbxc", "cylinder:0.1", "sphere:0.1", "box:0.1x-0.2x0.3", ""]
)
def test_bad_spec_names_the_accepted_forms(spec):
    with pytest.raises(HoposerError) as info:
        object_mesh(spec)
    assert "box" in str(info.value) and "cylinder" in str(info.value)


def test_missing_or_broken_files(tmp_path):
    with pytest.raises(HoposerError, match="does not exist"):
        load_mesh(tmp_path / "nope.ply")
    empty = tmp_path / "empty.obj"
    empty.write_text("# nothing here\n")
    with pytest.raises(HoposerError):
        load_mesh(empty)
    points = tmp_path / "points.obj"
    points.write_text("v 0 0 0\nv 1 0 0\nv 0 1 0\n")
    with pytest.raises(HoposerError, match="no triangles"):
        load_mesh(points)
    garbage = tmp_path / "garbage.ply"
    garbage.write_bytes(b"ply\nformat nonsense\n\x00\x01")
    with pytest.raises(HoposerError):
        load_mesh(garbage)
