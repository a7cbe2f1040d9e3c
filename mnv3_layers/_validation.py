"""Small argument checks shared by the layers and applications.

Every check raises `ValueError`/`TypeError` whose message names the argument
and the received value, in the Keras style:
"`se_ratio` must be in (0, 1]. Received: se_ratio=1.5".
"""

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
