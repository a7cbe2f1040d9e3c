"""Property tests over InvertedResidual configurations (hypothesis)."""

import math

import keras
import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mnv3_layers import InvertedResidual, make_divisible

SETTINGS = settings(
    max_examples=30,
    deadline=None,
    # The autouse conftest fixture only resets Keras' global state; sharing it
    # between examples is harmless.
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@st.composite
def block_configs(draw):
    strides = draw(st.sampled_from([1, 2]))
    config = dict(
        filters=draw(st.integers(1, 32)),
        kernel_size=draw(st.sampled_from([3, 5, 7])),
        strides=strides,
        expansion=draw(st.floats(0.5, 6.0, allow_nan=False, allow_infinity=False)),
        se_ratio=draw(
            st.one_of(st.none(), st.floats(0.0, 1.0, exclude_min=True, allow_nan=False))
        ),
        activation=draw(st.sampled_from(["relu", "hard_swish"])),
        dilation_rate=1 if strides == 2 else draw(st.sampled_from([1, 2])),
    )
    in_channels = draw(st.integers(1, 32))
    height = draw(st.integers(1, 9))
    width = draw(st.integers(1, 9))
    return config, (1, height, width, in_channels)


@SETTINGS
@given(block_configs())
def test_shapes_residual_and_widths(case):
    config, input_shape = case
    _, height, width, in_channels = input_shape
    stride = config["strides"]
    expected_shape = (1, math.ceil(height / stride), math.ceil(width / stride),
                      config["filters"])

    layer = InvertedResidual(**config)
    assert tuple(layer.compute_output_shape(input_shape)) == expected_shape
    x = np.random.default_rng(0).standard_normal(input_shape).astype("float32")
    output = keras.ops.convert_to_numpy(layer(x))
    assert output.shape == expected_shape
    assert np.all(np.isfinite(output))
    symbolic = InvertedResidual(**config)(keras.KerasTensor(input_shape))
    assert tuple(symbolic.shape) == expected_shape

    assert layer.use_residual == (stride == 1 and in_channels == config["filters"])
    expanded = layer.expanded_filters
    assert expanded % 8 == 0
    assert expanded >= 0.9 * in_channels * config["expansion"]
    assert expanded == make_divisible(in_channels * config["expansion"], 8)
    assert (layer.expand is None) == (expanded == in_channels)
    assert layer.depthwise.kernel.shape == (config["kernel_size"], config["kernel_size"],
                                           expanded, 1)
    if config["se_ratio"]:
        squeeze = layer.squeeze_excite.reduce.filters
        assert squeeze % 8 == 0 and squeeze >= 0.9 * expanded * config["se_ratio"]
    else:
        assert layer.squeeze_excite is None


@SETTINGS
@given(block_configs())
def test_config_round_trip(case):
    config, input_shape = case
    layer = InvertedResidual(**config)
    saved = layer.get_config()
    for key, value in config.items():
        assert saved[key] == value, key
    revived = InvertedResidual.from_config(saved)
    assert revived.get_config() == saved
    revived.build(input_shape)
    layer.build(input_shape)
    assert [tuple(w.shape) for w in revived.weights] == [tuple(w.shape) for w in layer.weights]
    assert revived.expanded_filters == layer.expanded_filters
