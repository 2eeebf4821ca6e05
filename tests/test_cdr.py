"""The cup-to-disc ratio from masks (metrics/cdr.py): the largest region's vertical diameter, the
conventions for empty masks, and the experts' spread."""
import math

import numpy as np
import pytest

from cenet_jax.metrics import expert_spread, largest_region, vertical_cdr, vertical_diameter


def box(shape, top, left, bottom, right):
    mask = np.zeros(shape, bool)
    mask[top:bottom, left:right] = True
    return mask


def test_largest_region_keeps_the_biggest_8_connected_part():
    big, speck = box((20, 20), 2, 2, 8, 8), box((20, 20), 15, 15, 17, 17)
    diagonal = np.zeros((20, 20), bool)
    diagonal[8, 8] = True                                    # touches `big` at a corner only
    np.testing.assert_array_equal(largest_region(big | speck | diagonal), big | diagonal)
    np.testing.assert_array_equal(largest_region(np.zeros((4, 4))), np.zeros((4, 4), bool))
    np.testing.assert_array_equal(largest_region(speck), speck)


def test_vertical_diameter_is_the_row_extent_of_the_largest_region():
    wide = box((40, 40), 10, 2, 16, 38)                     # 6 rows, 36 columns
    tall_speck = box((40, 40), 20, 5, 39, 6)                 # 19 rows but 19 pixels: smaller
    assert vertical_diameter(wide) == 6
    assert vertical_diameter(wide | tall_speck) == 6         # a stray region does not stretch it
    assert vertical_diameter(np.zeros((5, 5), bool)) == 0


def test_vertical_cdr_and_its_empty_mask_conventions():
    disc = box((60, 60), 10, 10, 50, 40)                     # 40 rows
    cup = box((60, 60), 20, 18, 36, 30)                      # 16 rows
    assert vertical_cdr(disc, cup) == pytest.approx(0.4)
    assert vertical_cdr(disc, cup | box((60, 60), 55, 0, 56, 1)) == pytest.approx(0.4)   # stray cup pixel
    assert vertical_cdr(disc, np.zeros_like(cup)) == 0.0     # a disc without a cup
    assert math.isnan(vertical_cdr(np.zeros_like(disc), cup))   # no disc: no ratio


def test_expert_spread_is_each_experts_distance_to_the_others_mean():
    values = np.array([0.76, 0.77, 0.79, 0.75])
    by_hand = np.mean([abs(v - np.delete(values, i).mean()) for i, v in enumerate(values)])
    assert expert_spread(values) == pytest.approx(by_hand)
    assert expert_spread([0.4, 0.6]) == pytest.approx(0.2)
    assert expert_spread([0.5, 0.5, 0.5]) == 0.0
    assert math.isnan(expert_spread([0.5])) and math.isnan(expert_spread([]))
