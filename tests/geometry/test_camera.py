import numpy as np
import pytest

from hoposer.geometry.camera import (
    fit_weak_perspective,
    project,
    solve_translation,
    weak_perspective_project,
)

K = np.array([[610.0, 0.0, 318.0], [0.0, 605.0, 242.0], [0.0, 0.0, 1.0]])


def _hand(seed=0):
    rng = np.random.default_rng(seed)
    return rng.uniform(-0.08, 0.08, size=(21, 3))


def test_project_pinhole():
    p = np.array([[0.1, -0.05, 0.5], [0.0, 0.0, 2.0]])
    assert np.allclose(project(p, K), [[318 + 122, 242 - 60.5], [318, 242]])
    assert project(np.zeros((2, 5, 3)) + [0, 0, 1], K).shape == (2, 5, 2)


def test_solve_translation_exact_without_noise():
    joints = _hand()
    t = np.array([0.05, -0.03, 0.6])
    uv = project(joints + t, K)
    assert np.allclose(solve_translation(joints, uv, K), t, atol=1e-12)
    weights = np.random.default_rng(3).uniform(0.1, 1.0, 21)
    assert np.allclose(solve_translation(joints, uv, K, weights), t, atol=1e-12)


def test_solve_translation_with_pixel_noise():
    joints = _hand(1)
    t = np.array([-0.1, 0.04, 0.7])
    rng = np.random.default_rng(2)
    uv = project(joints + t, K) + rng.normal(scale=1.0, size=(21, 2))
    assert np.linalg.norm(solve_translation(joints, uv, K) - t) < 0.01
    # a zero-weighted wild joint has no influence
    uv_bad = project(joints + t, K)
    uv_bad[5] = [5000.0, -3000.0]
    w = np.ones(21)
    w[5] = 0.0
    assert np.allclose(solve_translation(joints, uv_bad, K, w), t, atol=1e-12)


def test_solve_translation_degenerate():
    joints = _hand()
    uv = project(joints + [0, 0, 0.5], K)
    with pytest.raises(ValueError):
        solve_translation(joints[:1], uv[:1], K)
    uv[3] = np.nan
    with pytest.raises(ValueError):
        solve_translation(joints, uv, K)
    with pytest.raises(ValueError):
        solve_translation(joints, project(joints + [0, 0, 0.5], K), K, np.zeros(21))


def test_weak_perspective_fit_recovers_scale_and_translation():
    points = _hand(4) + [0, 0, 0.5]
    s, t = 1234.5, np.array([300.0, 210.0])
    uv = weak_perspective_project(points, s, t)
    s_fit, t_fit = fit_weak_perspective(points, uv)
    assert s_fit == pytest.approx(s, rel=1e-12)
    assert np.allclose(t_fit, t)
    w = np.random.default_rng(5).uniform(0.0, 1.0, 21)
    s_w, t_w = fit_weak_perspective(points, uv, w)
    assert s_w == pytest.approx(s, rel=1e-12) and np.allclose(t_w, t)
    with pytest.raises(ValueError):
        fit_weak_perspective(np.zeros((21, 3)), uv)
