"""`make_divisible`: exact values, worked by hand from the TF-slim rule.

Rule: r = max(min_value, int(v + d / 2) // d * d); if r < 0.9 * v: r += d.
"""

import numpy as np
import pytest

from mnv3_layers import make_divisible
from mnv3_layers.testing import assert_raises_for_argument

# (value, divisor, expected) -- arithmetic in the comment.
TABLE = [
    (3, 8, 8),            # int(7) // 8 * 8 = 0 -> max(8, 0) = 8
    (16 * 0.75, 8, 16),   # 12.0: int(16) // 8 * 8 = 16
    (88.0, 8, 88),        # int(92) // 8 * 8 = 88
    (18, 8, 24),          # int(22) // 8 * 8 = 16 < 0.9 * 18 = 16.2 -> 24
    (1280 * 1.25, 8, 1600),  # int(1604) // 8 * 8 = 1600
    (72 * 0.75, 8, 56),   # 54.0: int(58) // 8 * 8 = 56 >= 48.6
    (100, 16, 96),        # int(108) // 16 * 16 = 96 >= 90
    (100, 8, 104),        # int(104) // 8 * 8 = 104
    (20, 8, 24),          # int(24) // 8 * 8 = 24 (ties go up)
    (19.9, 8, 24),        # int(23.9) = 23 -> 16 < 17.91 -> 24
    (34, 8, 32),          # int(38) -> 32 >= 30.6
    (35.9, 8, 40),        # int(39.9) = 39 -> 32 < 32.31 -> 40
    (30, 8, 32),          # int(34) -> 32 (squeeze width of 120 * 0.25)
    (16 * 0.35, 8, 8),    # 5.6: int(9.6) = 9 -> 8
    (960 * 0.75, 8, 720),  # int(724) -> 720
    (40, 16, 48),         # int(48) // 16 * 16 = 48
    (7, 1, 7),            # divisor 1: int(7.5) = 7
    (1, 1, 1),            # int(1.5) = 1, min_value = 1
    (240 * 1.25, 8, 304),  # 300.0: int(304) // 8 * 8 = 304
]


@pytest.mark.parametrize("value,divisor,expected", TABLE)
def test_table(value, divisor, expected):
    result = make_divisible(value, divisor)
    assert result == expected
    assert type(result) is int


def test_default_divisor_is_8():
    assert make_divisible(18) == 24
    assert make_divisible(54.0) == 56


@pytest.mark.parametrize(
    "value,divisor,min_value,expected",
    [
        (3, 8, 16, 16),      # max(16, 0) = 16
        (100, 8, 16, 104),   # min_value does not bind
        (20, 8, 32, 32),     # max(32, 24) = 32
        (12.5, 8, 16.7, 16),  # int(16.7) = 16 -> max(16, 16) = 16
        (5, 4, 4, 8),        # int(7) // 4 * 4 = 4 -> max(4, 4) = 4 < 4.5 -> 8
        (8, 8, None, 8),     # None means min_value = divisor
    ],
)
def test_min_value(value, divisor, min_value, expected):
    assert make_divisible(value, divisor, min_value=min_value) == expected


def test_numpy_scalars():
    assert make_divisible(np.float32(54.0)) == 56
    assert make_divisible(np.int64(18)) == 24
    assert type(make_divisible(np.float64(88.0))) is int


def test_properties_on_a_grid():
    for divisor in (1, 4, 8, 16):
        for value in np.arange(0.5, 400, 0.7):
            result = make_divisible(float(value), divisor)
            assert result % divisor == 0
            assert result >= divisor
            assert result >= 0.9 * value
            # Never more than one divisor above the nearest multiple.
            assert result <= max(divisor, value + divisor / 2 + divisor)


@pytest.mark.parametrize(
    "argument,value",
    [("value", 0), ("value", -8), ("value", "16"), ("value", None), ("value", True),
     ("divisor", 0), ("divisor", -8), ("divisor", 2.5), ("divisor", True),
     ("min_value", 0), ("min_value", "8"), ("min_value", True), ("min_value", -1)],
)
def test_bad_inputs(argument, value):
    kwargs = {"value": 16, "divisor": 8}
    assert_raises_for_argument(make_divisible, kwargs, argument, value)
