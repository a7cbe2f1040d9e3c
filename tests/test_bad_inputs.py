"""Every bad application argument gets a ValueError/TypeError naming it and its value."""

import keras
import numpy as np
import pytest

from mnv3_layers.applications import MobileNetV3Large, MobileNetV3Small

SMALL_INPUT = (32, 32, 3)

# (kwargs, exception type, substrings the message must contain)
BAD_ARGUMENTS = [
    ({"alpha": 0.0, "weights": None}, ValueError, ["alpha", "0.0"]),
    ({"alpha": -1.0, "weights": None}, ValueError, ["alpha", "-1.0"]),
    ({"alpha": "1.0", "weights": None}, TypeError, ["alpha", "'1.0'"]),
    ({"pooling": "mean", "weights": None, "include_top": False}, ValueError,
     ["pooling", "'mean'"]),
    ({"input_shape": (31, 64, 3), "weights": None}, ValueError, ["at least 32x32", "(31, 64, 3)"]),
    ({"input_shape": (64, 64), "weights": None}, ValueError, ["input_shape", "(64, 64)"]),
    ({"input_shape": (64, -2, 3), "weights": None}, ValueError, ["input_shape", "-2"]),
    ({"input_shape": (64, 64, None), "weights": None}, ValueError, ["input_shape", "None"]),
    ({"input_shape": (224, 224, 1), "weights": "imagenet"}, ValueError,
     ["weights='imagenet'", "(224, 224, 1)"]),
    ({"classes": 10, "weights": "imagenet"}, ValueError, ["classes", "10"]),
    ({"classes": 0, "weights": None}, ValueError, ["classes", "0"]),
    ({"classes": 2.5, "weights": None}, ValueError, ["classes", "2.5"]),
    ({"alpha": 0.5, "weights": "imagenet"}, ValueError, ["alpha", "0.5"]),
    ({"weights": "/no/such/file.h5"}, ValueError, ["weights", "/no/such/file.h5"]),
    ({"weights": 3}, ValueError, ["weights", "3"]),
    ({"dropout_rate": 1.5, "weights": None}, ValueError, ["dropout_rate", "1.5"]),
    ({"bn_momentum": 1.0, "weights": None}, ValueError, ["bn_momentum", "1.0"]),
    ({"include_top": "yes", "weights": None}, TypeError, ["include_top", "'yes'"]),
    ({"minimalistic": 1, "weights": None}, TypeError, ["minimalistic", "1"]),
    ({"name": 5, "weights": None}, TypeError, ["name", "5"]),
    ({"classifier_activation": 5, "weights": None}, ValueError,
     ["classifier_activation", "5"]),
    ({"classifier_activation": "sigmoid", "weights": "imagenet"}, ValueError,
     ["classifier_activation", "sigmoid"]),
    ({"input_tensor": np.zeros((1, 64, 64, 3)), "weights": None}, TypeError,
     ["input_tensor", "ndarray"]),
]


@pytest.mark.parametrize("builder", [MobileNetV3Large, MobileNetV3Small])
@pytest.mark.parametrize(
    "kwargs, error, fragments", BAD_ARGUMENTS,
    ids=[f"{i}-{'-'.join(k)}" for i, (k, _, _) in enumerate(BAD_ARGUMENTS)],
)
def test_bad_argument_is_named(builder, kwargs, error, fragments):
    kwargs = dict(kwargs)
    kwargs.setdefault("input_shape", SMALL_INPUT if kwargs.get("weights") is None else None)
    with pytest.raises(error) as info:
        builder(**kwargs)
    message = str(info.value)
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"


def test_input_tensor_shape_mismatch_is_named():
    tensor = keras.Input(shape=(64, 64, 3))
    with pytest.raises(ValueError, match="input_shape"):
        MobileNetV3Small(input_tensor=tensor, input_shape=(96, 96, 3), weights=None)


def test_bad_arguments_build_nothing():
    """A rejected call leaves no half-built layers behind in the session."""
    keras.utils.clear_session()
    with pytest.raises(ValueError):
        MobileNetV3Small(input_shape=SMALL_INPUT, weights=None, pooling="mean", include_top=False)
    # Names restart from scratch: nothing was created by the failed call.
    assert keras.layers.Dense(1).name == "dense"
