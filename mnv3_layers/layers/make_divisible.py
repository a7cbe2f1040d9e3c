"""Channel rounding used throughout MobileNetV3."""

import numbers


def make_divisible(value, divisor=8, min_value=None):
    """Rounds a channel count to the nearest multiple of `divisor`.

    The rule of TF-slim's MobileNet code (and `keras.applications`): round to
    the nearest multiple of `divisor`, never below `min_value`, and never more
    than 10% below `value` (if it would be, add one `divisor`).

    Args:
        value: number of channels (int or float), e.g. `in_channels * 4.5`.
        divisor: the multiple to round to. Defaults to `8`.
        min_value: smallest result allowed. Defaults to `divisor`.

    Returns:
        An `int`, a multiple of `divisor` unless a larger `min_value` is not.

    Example:

    >>> from mnv3_layers import make_divisible
    >>> make_divisible(16 * 0.75), make_divisible(88.0), make_divisible(3)
    (16, 88, 8)

    Reference: Sandler et al., "MobileNetV2", CVPR 2018 (TF-slim `_make_divisible`).
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(
            f"`value` must be a number. Received: value={value!r} "
            f"of type {type(value).__name__}"
        )
    if not value > 0:
        raise ValueError(f"`value` must be positive. Received: value={value!r}")
    if isinstance(divisor, bool) or not isinstance(divisor, numbers.Integral) or divisor < 1:
        raise ValueError(
            f"`divisor` must be a positive integer. Received: divisor={divisor!r}"
        )
    if min_value is None:
        min_value = divisor
    elif isinstance(min_value, bool) or not isinstance(min_value, numbers.Real) or min_value < 1:
        raise ValueError(
            f"`min_value` must be a positive number or None. "
            f"Received: min_value={min_value!r}"
        )
    new_value = max(int(min_value), int(value + divisor / 2) // divisor * divisor)
    if new_value < 0.9 * value:
        new_value += divisor
    return int(new_value)
