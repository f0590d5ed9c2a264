import numpy as np
import trimesh

from hoposer.render import MeshInstance, render

K = np.array([[200.0, 0, 64], [0, 200.0, 48], [0, 0, 1]])


def box(size, center, label, color=(0.8, 0.2, 0.2)):
    mesh = trimesh.creation.box(size)
    return MeshInstance(mesh.vertices + np.asarray(center), mesh.faces, np.array(color), label)


def test_nearer_mesh_occludes_farther_and_labels_are_exact():
    far = box((0.2, 0.2, 0.05), (0, 0, 1.0), label=1)
    near = box((0.05, 0.05, 0.05), (0, 0, 0.5), label=2)
    image, labels = render([near, far], K, (128, 96), supersample=1)
    assert image.shape == (96, 128, 3) and labels.shape == (96, 128)
    # The near cube covers the image centre; the far plate surrounds it.
    assert labels[48, 64] == 2
    assert labels[48, 64 + 15] == 1  # plate half-width: 200 * 0.1 / 0.975 ≈ 20 px
    assert labels[0, 0] == 0
    # Near cube: front face half-width 0.025 m at depth 0.475 m → 200 * 0.025 / 0.475 ≈ 10.5 px.
    columns = np.flatnonzero(labels[48] == 2)
    assert 19 <= len(columns) <= 23


def test_backfaces_are_culled_and_meshes_behind_the_camera_skipped():
    behind = box((0.1, 0.1, 0.1), (0, 0, -1.0), label=3)
    image, labels = render([behind], K, (128, 96))
    assert labels.max() == 0 and image.max() == 0


def test_background_shows_where_nothing_is_drawn_and_shading_depends_on_the_normal():
    background = np.full((96, 128, 3), 17, np.uint8)
    cube = box((0.1, 0.1, 0.1), (0, 0, 0.6), label=1, color=(1, 1, 1))
    image, labels = render([cube], K, (128, 96), background=background)
    assert (image[labels == 0] == 17).all()
    assert len(np.unique(image[labels == 1].reshape(-1, 3), axis=0)) >= 1


def test_more_lights_brighten_and_a_specular_highlight_appears_in_the_mirror_direction():
    from hoposer.render import Light

    cube = box((0.1, 0.1, 0.1), (0, 0, 0.6), label=1, color=(0.5, 0.2, 0.2))
    front = Light((0.0, 0.0, -1.0), ambient=0.2, diffuse=0.4)
    one, _ = render([cube], K, (128, 96), light=front, supersample=1)
    two, _ = render([cube], K, (128, 96), light=[front, Light((0, 0, -1.0), 0.0, 0.3)],
                    supersample=1)  # fmt: skip
    assert two[48, 64].astype(int).sum() > one[48, 64].astype(int).sum()
    # The front face's normal points at the camera, which looks along +z: a light behind the
    # camera mirrors into the eye, a white highlight that lifts every channel, green included.
    shiny = Light((0.0, 0.0, -1.0), ambient=0.2, diffuse=0.4, specular=0.5, shininess=10)
    lit, _ = render([cube], K, (128, 96), light=shiny, supersample=1)
    assert lit[48, 64, 1] > one[48, 64, 1] + 100
    grazing = Light((1.0, 0.0, -0.05), ambient=0.2, diffuse=0.4, specular=0.5, shininess=10)
    side, _ = render([cube], K, (128, 96), light=grazing, supersample=1)
    assert side[48, 64, 1] < lit[48, 64, 1]
