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


def _random_rotation(rng) -> np.ndarray:
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))
    return q * np.linalg.det(q)


@pytest.mark.parametrize("spec", ["box:0.05x0.08x0.03", "cylinder:0.03x0.12"])
def test_a_symmetric_object_looks_the_same_in_every_member_of_its_family(spec):
    from hoposer.geometry.control_points import symmetric_pose, symmetry_rotations

    mesh = object_mesh(spec)
    rng = np.random.default_rng(1)
    R, t, centre = _random_rotation(rng), np.array([0.0, 0.0, 0.5]), np.zeros(3)
    seen = mesh.vertices @ R.T + t
    for S in symmetry_rotations(mesh.symmetry, steps=32):  # the mesh's own 32 segments
        R2, t2 = symmetric_pose(R, t, S, centre)
        moved = mesh.vertices @ R2.T + t2
        # the same point set (vertices permuted), so the same image
        assert np.abs(moved[:, None] - seen[None]).sum(-1).min(1).max() < 1e-9


@pytest.mark.parametrize(
    "symmetry, extent, members",
    [("box", None, 4), ("box", [0.05, 0.05, 0.08], 8), ("box", [0.06] * 3, 24),
     ("box", [0.05, 0.1, 0.056], 8), ("box", [0.05, 0.1, 0.06], 4),
     ("box", [0.05, 0.057, 0.064], 24), ("cylinder", None, 720)],
)  # fmt: skip
def test_canonical_pose_is_the_same_for_every_symmetric_pose_and_the_closest_to_the_view(
    symmetry, extent, members
):
    from hoposer.geometry.control_points import (
        canonical_pose,
        symmetric_pose,
        symmetry_rotations,
        view_rotation,
    )

    rng = np.random.default_rng(2)
    group = symmetry_rotations(symmetry, extent=extent)
    assert len(group) == members and np.allclose(group[0], np.eye(3))
    if extent is not None:  # every member maps the box's corners onto its corners, up to the
        # difference between the sides it exchanges (sides within 15 % count as equal)
        corners = box_control_points(-np.asarray(extent) / 2, np.asarray(extent) / 2)[:8]
        slack = np.ptp(extent) + 1e-12
        for S in group:
            assert np.abs((corners @ S.T)[:, None] - corners[None]).sum(-1).min(1).max() < slack
    for _ in range(50):
        R, t = _random_rotation(rng), rng.normal(size=3)
        centre = rng.normal(size=3) * 0.02  # a mesh's box centre need not be its origin
        R_c, t_c = canonical_pose(R, t, symmetry, centre, extent)
        # a member of the family: (R_c, t_c) = (R S, ...) for a symmetry S about the centre
        S = R.T @ R_c
        np.testing.assert_allclose(symmetric_pose(R, t, S, centre)[1], t_c, atol=1e-12)
        view = view_rotation(R @ centre + t)
        assert np.trace(view.T @ R_c) >= max(np.trace(view.T @ R @ G) for G in group) - 1e-9
        R2, t2 = symmetric_pose(R, t, group[rng.integers(len(group))], centre)
        R2_c, t2_c = canonical_pose(R2, t2, symmetry, centre, extent)
        np.testing.assert_allclose(R2_c, R_c, atol=1e-9)
        np.testing.assert_allclose(t2_c, t_c, atol=1e-9)
    R = _random_rotation(rng)
    assert canonical_pose(R, np.zeros(3), "none", np.zeros(3))[0] is not None
    np.testing.assert_array_equal(canonical_pose(R, np.zeros(3), "none", np.zeros(3))[0], R)


@pytest.mark.parametrize("symmetry, extent", [("box", [0.05, 0.1, 0.07]), ("cylinder", None)])
def test_canonical_pose_depends_on_the_pose_relative_to_the_ray_not_on_the_place_in_the_image(
    symmetry, extent
):
    # A crop shows the object's pose relative to the ray through it: the same relative pose
    # anywhere in the image must get the same canonical member (the same targets in the crop).
    from hoposer.geometry.control_points import canonical_pose, view_rotation

    rng = np.random.default_rng(3)
    centre = np.array([0.0, 0.01, 0.0])
    differ = 0
    for _ in range(200):
        seen = _random_rotation(rng)  # the pose relative to the viewing frame
        canonical_seen = []
        for ray in ([0.0, 0.0, 0.5], [0.25, -0.15, 0.4]):  # centre, and 37° off the axis
            view = view_rotation(ray)
            np.testing.assert_allclose(view @ [0.0, 0.0, 1.0], ray / np.linalg.norm(ray))
            R = view @ seen
            t = np.asarray(ray) - R @ centre  # the object's centre on the ray
            R_c, _ = canonical_pose(R, t, symmetry, centre, extent)
            canonical_seen.append(view.T @ R_c)
        np.testing.assert_allclose(canonical_seen[0], canonical_seen[1], atol=1e-9)
        # the camera's own axes would have chosen differently for some of these poses
        rays = ([0, 0, 1.0], [0.25, -0.15, 0.4])
        camera_pick = [canonical_pose(view_rotation(r) @ seen, np.zeros(3), symmetry, np.zeros(3),
                                      extent)[0] for r in rays]  # fmt: skip
        differ += not np.allclose(view_rotation([0.25, -0.15, 0.4]).T @ camera_pick[1],
                                  camera_pick[0], atol=1e-6)  # fmt: skip
    assert differ > 0


def test_symmetry_is_declared_by_primitive_kind_or_spec_suffix(tmp_path):
    from hoposer.geometry.control_points import spec_symmetry

    assert object_mesh("box:0.1x0.2x0.3").symmetry == "box"
    assert object_mesh("cylinder:0.03x0.1").symmetry == "cylinder"
    assert object_mesh("box:0.1x0.2x0.3@none").symmetry == "none"
    path = tmp_path / "can.ply"
    trimesh.creation.cylinder(radius=0.03, height=0.1).export(path)
    assert object_mesh(str(path)).symmetry == "none"
    assert object_mesh(f"{path}@cylinder").symmetry == "cylinder"
    assert spec_symmetry("006_mustard_bottle") == "none"
    assert spec_symmetry("cylinder:0.03x0.1@box") == "box"
    with pytest.raises(HoposerError, match="@none, @box, @cylinder"):
        object_mesh("box:0.1x0.2x0.3@sphere")
