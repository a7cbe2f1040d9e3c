"""Argument checks: the one module every level uses for its argument checks.

Every check raises `ValueError`/`TypeError` whose message names the argument
and the received value, in the Keras style:
"`se_ratio` must be in (0, 1]. Received: se_ratio=1.5".
"""

import math
import numbers

ACTIVATIONS = ("relu", "hard_swish")


def check_positive_int(name, value):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(
            f"`{name}` must be a positive integer. "
            f"Received: {name}={value!r} of type {type(value).__name__}"
        )
    if value < 1:
        raise ValueError(
            f"`{name}` must be a positive integer. Received: {name}={value!r}"
        )
    return int(value)


def check_positive_number(name, value):
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(
            f"`{name}` must be a positive number. "
            f"Received: {name}={value!r} of type {type(value).__name__}"
        )
    if not value > 0:
        raise ValueError(
            f"`{name}` must be a positive number. Received: {name}={value!r}"
        )
    return value


def check_fraction(name, value, allow_zero=True, allow_one=False):
    """Checks `value` is a real number in [0, 1) (bounds configurable)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(
            f"`{name}` must be a number. "
            f"Received: {name}={value!r} of type {type(value).__name__}"
        )
    low_ok = value >= 0 if allow_zero else value > 0
    high_ok = value <= 1 if allow_one else value < 1
    if not (low_ok and high_ok):
        interval = ("[0" if allow_zero else "(0") + (", 1]" if allow_one else ", 1)")
        raise ValueError(
            f"`{name}` must be in {interval}. Received: {name}={value!r}"
        )
    return float(value)


def check_activation(name, value):
    if value not in ACTIVATIONS:
        raise ValueError(
            f"`{name}` must be one of {ACTIVATIONS}. Received: {name}={value!r}"
        )
    return value


def check_kernel_size(name, value):
    value = check_positive_int(name, value)
    if value % 2 != 1:
        raise ValueError(
            f"`{name}` must be an odd positive integer. Received: {name}={value!r}"
        )
    return value


def check_strides(name, value):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value not in (1, 2):
        raise ValueError(f"`{name}` must be 1 or 2. Received: {name}={value!r}")
    return int(value)


def check_non_negative_int(name, value):
    """Checks `value` is an int >= 0 (not a bool); returns it as an int."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0:
        raise ValueError(
            f"`{name}` must be a non-negative integer. Received: {name}={value!r}"
        )
    return int(value)


def check_finite_positive(name, value, allow_none=False):
    """Checks `value` is a finite real number > 0 (or None if `allow_none`)."""
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not (
        math.isfinite(value) and value > 0
    ):
        raise ValueError(f"`{name}` must be a positive number. Received: {name}={value!r}")
    return value


def check_bool(name, value):
    """Checks `value` is a bool (not 0/1 or a string)."""
    if not isinstance(value, bool):
        raise TypeError(f"`{name}` must be a bool. Received: {name}={value!r}")
    return value


def check_choice(name, value, choices):
    """Checks `value` is one of `choices` (compared with ==, strings only by value)."""
    if not any(value is c or (isinstance(value, str) and value == c) for c in choices):
        raise ValueError(f"`{name}` must be one of {tuple(choices)}. Received: {name}={value!r}")
    return value


def check_int(name, value):
    """Checks `value` is an integer (not a bool); returns it as an int."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"`{name}` must be an integer. Received: {name}={value!r}")
    return int(value)


def check_optional_name(name, value):
    """Checks a layer/model `name` argument is a string or None."""
    if value is not None and not isinstance(value, str):
        raise TypeError(f"`{name}` must be a string. Received: {name}={value!r}")
    return value


def check_min_int(name, value, low):
    """Checks `value` is an int >= `low` (not a bool); returns it as an int."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
        raise ValueError(f"`{name}` must be an int >= {low}. Received: {name}={value!r}")
    return int(value)


def check_number_in(name, value, low, high):
    """Checks `value` is a real number in [`low`, `high`] (not a bool)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not low <= value <= high:
        raise ValueError(f"`{name}` must be in [{low}, {high}]. Received: {name}={value!r}")
    return value
