import numpy as np
import pytest

from hoposer.geometry.boxes import box_area, box_from_points, box_iou, intersection_box


def test_area_and_iou():
    assert box_area([[0, 0, 2, 3], [5, 5, 4, 4]]).tolist() == [6.0, 0.0]
    assert float(box_iou([0, 0, 2, 2], [1, 1, 3, 3])) == pytest.approx(1 / 7)
    assert float(box_iou([0, 0, 2, 2], [0, 0, 2, 2])) == 1.0
    assert float(box_iou([0, 0, 1, 1], [2, 2, 3, 3])) == 0.0
    assert float(box_iou([0, 0, 0, 0], [0, 0, 0, 0])) == 0.0
    many = box_iou(np.zeros((4, 1, 4)) + [0, 0, 2, 2], np.array([[0, 0, 2, 2], [1, 0, 3, 2]]))
    assert many.shape == (4, 2)


def test_intersection_box():
    assert intersection_box([0, 0, 4, 4], [2, 1, 6, 3]).tolist() == [2, 1, 4, 3]
    assert intersection_box([0, 0, 1, 1], [1, 0, 2, 1]) is None


def test_box_from_points():
    pts = np.array([[10.0, 20.0], [30.0, 60.0], [np.nan, 0.0]])
    assert box_from_points(pts).tolist() == [10, 20, 30, 60]
    assert box_from_points(pts, 0.5, image_size=(35, 70)).tolist() == [0, 0, 35, 70]
    with pytest.raises(ValueError):
        box_from_points(np.full((3, 2), np.nan))
