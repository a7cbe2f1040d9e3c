"""Exact values of hard-sigmoid / hard-swish and their TFLite lowering."""

import collections

import keras
import numpy as np
import pytest

import mnv3_layers
from mnv3_layers import HardSigmoid, HardSwish
from mnv3_layers.layers.ops import hard_sigmoid, hard_swish

X = np.array([-3.5, -3.0, 0.0, 3.0, 3.5], "float32")
HARD_SIGMOID_AT_X = [0.0, 0.0, 0.5, 1.0, 1.0]
HARD_SWISH_AT_X = [0.0, 0.0, 0.0, 3.0, 3.5]


def _np(x):
    return keras.ops.convert_to_numpy(x)


def test_package_exports_the_functions():
    """`from mnv3_layers import hard_sigmoid` must give the function (public API).

    The submodules `hard_sigmoid.py` / `hard_swish.py` share the functions'
    names; importing them after the functions rebinds the package attribute
    to the module.
    """
    assert mnv3_layers.layers.hard_sigmoid is hard_sigmoid
    assert mnv3_layers.layers.hard_swish is hard_swish
    from mnv3_layers import hard_sigmoid as imported

    assert callable(imported)


@pytest.mark.parametrize(
    "fn",
    [hard_sigmoid, lambda x: HardSigmoid()(x)],
    ids=["function", "layer"],
)
def test_hard_sigmoid_exact_values(fn):
    np.testing.assert_array_equal(_np(fn(X)), HARD_SIGMOID_AT_X)


@pytest.mark.parametrize(
    "fn",
    [hard_swish, lambda x: HardSwish()(x)],
    ids=["function", "layer"],
)
def test_hard_swish_exact_values(fn):
    np.testing.assert_array_equal(_np(fn(X)), HARD_SWISH_AT_X)


def test_formulas_on_a_grid():
    x = np.linspace(-6, 6, 241).astype("float32")
    relu6 = np.clip(x + 3, 0, 6)
    np.testing.assert_allclose(_np(hard_sigmoid(x)), relu6 / 6, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(_np(hard_swish(x)), x * relu6 / 6, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(_np(HardSwish()(x)), _np(hard_swish(x)), rtol=0, atol=0)
    np.testing.assert_allclose(_np(HardSigmoid()(x)), _np(hard_sigmoid(x)), rtol=0, atol=0)


def test_linear_region_is_x_over_6_plus_half():
    # hard_sigmoid(1) = 1/6 + 1/2 = 0.6667; hard_swish(1) = 0.6667; hard_swish(-1) = -1/3.
    x = np.array([1.0, -1.0, 1.5], "float32")
    np.testing.assert_allclose(_np(hard_sigmoid(x)), [2 / 3, 1 / 3, 0.75], rtol=1e-6)
    np.testing.assert_allclose(_np(hard_swish(x)), [2 / 3, -1 / 3, 1.125], rtol=1e-6)


def test_not_tf_keras_hard_sigmoid():
    """tf_keras's hard_sigmoid is 0.2 x + 0.5 (0.7 at x = 1): a different function."""
    x = np.array([1.0, -2.0, 2.6], "float32")
    ours = _np(hard_sigmoid(x))
    tf_keras_style = np.clip(0.2 * x + 0.5, 0, 1)
    assert ours[0] == pytest.approx(1 / 6 + 0.5, abs=1e-6)
    assert tf_keras_style[0] == pytest.approx(0.7, abs=1e-6)
    assert not np.allclose(ours, tf_keras_style, atol=1e-3)
    # At 2.6 the tf_keras form already saturates at 1, ours is still 0.9333.
    assert ours[2] == pytest.approx(5.6 / 6, abs=1e-6)


def test_dtype_preserved():
    for dtype in ("float16", "float32", "float64"):
        x = X.astype(dtype)
        assert keras.backend.standardize_dtype(hard_swish(x).dtype) == dtype
        assert keras.backend.standardize_dtype(hard_sigmoid(x).dtype) == dtype
        np.testing.assert_array_equal(_np(hard_swish(x)).astype("float32"), HARD_SWISH_AT_X)


def test_gradients_of_hard_swish():
    import tensorflow as tf

    # d/dx x*relu6(x+3)/6 = (2x + 3)/6 on (-3, 3), 0 below -3, 1 above 3.
    x = tf.constant([-4.0, -1.5, 0.0, 1.5, 4.0])
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = hard_swish(x)
    grad = tape.gradient(y, x).numpy()
    np.testing.assert_allclose(grad, [0.0, 0.0, 0.5, 1.0, 1.0], atol=1e-6)


# --- TFLite lowering --------------------------------------------------------


def _tflite_op_counts(model):
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    content = converter.convert()
    interpreter = tf.lite.Interpreter(model_content=content)
    # `_get_ops_details` is the interpreter's (private) per-op listing; the
    # op names are the flatbuffer builtin op codes.
    return collections.Counter(op["op_name"] for op in interpreter._get_ops_details())


def test_tflite_fuses_hard_swish_into_one_op():
    inputs = keras.Input((8, 8, 3), batch_size=1)
    x = keras.layers.Conv2D(8, 3, padding="same")(inputs)
    x = HardSwish()(x)
    x = keras.layers.DepthwiseConv2D(3, padding="same")(x)
    x = HardSwish()(x)
    model = keras.Model(inputs, x)
    ops = _tflite_op_counts(model)
    assert ops["HARD_SWISH"] == 2, dict(ops)
    # Nothing left over from x * relu6(x + 3) * (1/6).
    for leftover in ("MUL", "ADD", "RELU6", "RELU_0_TO_1", "MINIMUM", "MAXIMUM"):
        assert ops[leftover] == 0, dict(ops)


def test_tflite_hard_swish_values_match_keras():
    import tensorflow as tf

    inputs = keras.Input((16,), batch_size=1)
    model = keras.Model(inputs, HardSwish()(inputs))
    content = tf.lite.TFLiteConverter.from_keras_model(model).convert()
    interpreter = tf.lite.Interpreter(model_content=content)
    interpreter.allocate_tensors()
    x = np.linspace(-5, 5, 16, dtype="float32")[None]
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], x)
    interpreter.invoke()
    out = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
    np.testing.assert_allclose(out, _np(model(x)), rtol=1e-6, atol=1e-6)
