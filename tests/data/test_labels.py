"""Label conventions and OCT boundaries -> class maps."""
import numpy as np
import pytest

from cenet_jax.data.errors import DataError
from cenet_jax.data.labels import LabelSpec, boundaries_to_class_map, to_class_map, valid_boundary_columns


def test_binary_threshold_foreground_value_and_invert():
    raw = np.array([[0, 3, 127, 128, 255]], np.uint8)  # 3: JPEG noise stays background
    np.testing.assert_array_equal(to_class_map(raw, LabelSpec(), 'x'), [[0, 0, 0, 1, 1]])
    np.testing.assert_array_equal(to_class_map(raw, LabelSpec(foreground_value=0), 'x'), [[1, 0, 0, 0, 0]])
    np.testing.assert_array_equal(to_class_map(raw, LabelSpec(invert=True), 'x'), [[1, 1, 1, 0, 0]])
    assert to_class_map(raw, LabelSpec(), 'x').dtype == np.int32


def test_zero_one_mask_under_default_threshold_says_which_flag_to_set():
    with pytest.raises(DataError, match=r'mask\.png.*label_threshold=1'):
        to_class_map(np.array([[0, 1]], np.uint8), LabelSpec(), 'mask.png')
    np.testing.assert_array_equal(to_class_map(np.array([[0, 1]], np.uint8), LabelSpec(threshold=1), 'm'), [[0, 1]])


def test_multiclass_ids_range_and_class_values():
    spec = LabelSpec(num_classes=3)
    np.testing.assert_array_equal(to_class_map(np.array([[0, 1, 2]], np.uint8), spec, 'x'), [[0, 1, 2]])
    with pytest.raises(DataError, match=r'layers\.png.*\[0, 7\].*\[0, 2\]'):
        to_class_map(np.array([[0, 7]], np.uint8), spec, 'layers.png')
    spread = LabelSpec(num_classes=3, class_values=(0, 128, 255))
    np.testing.assert_array_equal(to_class_map(np.array([[255, 0, 128]], np.uint8), spread, 'x'), [[2, 0, 1]])
    with pytest.raises(DataError, match=r'\[5\].*class_values'):
        to_class_map(np.array([[5]], np.uint8), spread, 'x')
    with pytest.raises(DataError, match='exactly num_classes'):
        LabelSpec(num_classes=3, class_values=(0, 1))


def test_boundaries_to_class_map_orders_layers_top_to_bottom():
    height, width = 30, 4
    boundaries = np.stack([np.full(width, 2.0 + 2.5 * k, np.float32) for k in range(10)])
    classes = boundaries_to_class_map(boundaries, height)
    assert classes.shape == (height, width) and classes.dtype == np.int32
    column = classes[:, 0]
    assert column[0] == 0 and column[-1] == 10           # above boundary 1 / below boundary 10
    assert np.all(np.diff(column) >= 0)                   # monotone down the column
    assert set(column.tolist()) == set(range(11))
    rows = np.arange(height)
    for k in range(1, 10):                                # class k between boundary k and k+1
        assert np.all(column[(rows >= boundaries[k - 1, 0]) & (rows < boundaries[k, 0])] == k)


def test_nan_boundaries_are_left_out_of_the_fov():
    boundaries = np.tile(np.linspace(5, 20, 10, dtype=np.float32)[:, None], (1, 3))
    boundaries[4, 1] = np.nan
    np.testing.assert_array_equal(valid_boundary_columns(boundaries), [True, False, True])
