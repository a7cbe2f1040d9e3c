"""Fake-quant primitives of the Keras engine: weight fake-quant and the activation quantizer."""


import keras
from keras import ops

from mnv3_layers._registry import register
from mnv3_layers._validation import check_choice

ACTIVATIONS = (
    "linear", "relu", "relu6", "hard_swish", "hard_sigmoid", "softmax", "sigmoid"
)
# Activations whose input must be an int8 tensor of its own (a separate op).
_QUANTIZED_INPUT_ACTIVATIONS = ("hard_swish", "softmax", "sigmoid")
# TFLite's fixed int8 output range of SOFTMAX and LOGISTIC: scale 1/256, zp -128.
_PROBABILITY_RANGE = (0.0, 255.0 / 256.0)
# Smallest weight range, so an all-zero channel still has a valid scale.
_MIN_WEIGHT_RANGE = 1e-8
_ONE_SIXTH = 1.0 / 6.0
# How a hard-swish is written in the int8 graph (`quantize_model_keras`).
HARD_SWISH_FORMS = ("op", "elementwise")
# Fixed ranges of the element-wise hard-swish's intermediate int8 tensors:
# relu6(x + 3) in [0, 6] and (that) / 6 in [0, 1]. Both have zero point -128
# and the same int8 values (scales 6/255 and 1/255), so the MUL by 1/6
# between them is exact.
_RELU6_RANGE = (0.0, 6.0)
_UNIT_RANGE = (0.0, 1.0)


def _check_hard_swish_form(value, argument="hard_swish"):
    """Checks a hard-swish form (both engines)."""
    return check_choice(argument, value, HARD_SWISH_FORMS)


def _check_range_momentum(value):
    """Checks an activation-range momentum in [0, 1) (both engines)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value < 1.0:
        raise ValueError(
            f"`range_momentum` must be a number in [0, 1). Received: range_momentum={value!r}"
        )
    return float(value)


# === Fake-quant primitives ===


def _fake_quant(x, min_value, max_value, narrow_range=False, axis=None):
    x = ops.cast(x, "float32")
    return keras.quantizers.fake_quant_with_min_max_vars(
        x, min_value, max_value, num_bits=8, narrow_range=narrow_range, axis=axis
    )


def fake_quant_weights(kernel, per_channel=True, depthwise=False):
    """Symmetric int8 fake-quant of a kernel (narrow range, zero point 0).

    Args:
        kernel: a `Conv2D`, `DepthwiseConv2D` or `Dense` kernel.
        per_channel: one max-abs range per output channel (depthwise: per
            `channels * multiplier`). Defaults to `True`.
        depthwise: `kernel` is a depthwise kernel. Defaults to `False`.

    Returns:
        The fake-quantized kernel, same shape.
    """
    shape = tuple(kernel.shape)
    k = kernel
    if depthwise:
        # TFLite's depthwise filter is (1, kh, kw, channels * multiplier).
        k = ops.reshape(k, (shape[0], shape[1], 1, shape[2] * shape[3]))
    if per_channel:
        reduce_axes = tuple(range(len(k.shape) - 1))
        bound = ops.max(ops.abs(k), axis=reduce_axes)
    else:
        bound = ops.max(ops.abs(k))
    bound = ops.stop_gradient(ops.maximum(bound, _MIN_WEIGHT_RANGE))
    q = _fake_quant(k, -bound, bound, narrow_range=True, axis=-1 if per_channel else None)
    if depthwise:
        q = ops.reshape(q, shape)
    return q


@register
class ActivationQuantizer(keras.layers.Layer):
    """Per-tensor int8 fake-quant with moving-average min/max ranges.

    Formula (training; `m = momentum`):

    ```
    lo = min(0, min(x)),  hi = max(0, max(x))           # this batch
    range_min = lo if first batch else m * range_min + (1 - m) * lo
    range_max = hi if first batch else m * range_max + (1 - m) * hi
    output = fake_quant(x, range_min, range_max)        # 8 bits, asymmetric
    ```

    Inference uses the stored range, which is `[0, 0]` (zero output) until
    the first training batch.

    Args:
        momentum: moving-average momentum of the range, in [0, 1).
            Defaults to `0.99`.
        fixed_range: `(min, max)` used instead of a learned range, or `None`.
            Defaults to `None`.
        **kwargs: base `keras.layers.Layer` arguments.

    Example:

    >>> import numpy as np
    >>> from mnv3_layers.quantization.keras_engine import ActivationQuantizer
    >>> quantizer = ActivationQuantizer()
    >>> y = quantizer(np.array([[-1.0, 0.0, 2.0]], "float32"), training=True)
    >>> [round(float(v), 4) for v in quantizer.get_range()]
    [-1.0, 2.0]
    """

    def __init__(self, momentum=0.99, fixed_range=None, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(momentum, (int, float)) or not 0.0 <= momentum < 1.0:
            raise ValueError(f"`momentum` must be in [0, 1). Received: momentum={momentum!r}")
        if fixed_range is not None:
            if len(fixed_range) != 2 or not float(fixed_range[0]) <= 0.0 <= float(
                fixed_range[1]
            ) or float(fixed_range[0]) == float(fixed_range[1]):
                raise ValueError(
                    "`fixed_range` must be (min, max) with min <= 0 <= max and "
                    f"min < max. Received: fixed_range={fixed_range!r}"
                )
            fixed_range = (float(fixed_range[0]), float(fixed_range[1]))
        self.momentum = float(momentum)
        self.fixed_range = fixed_range
        self.supports_masking = True

    def build(self, input_shape):
        if self.fixed_range is None:
            self.range_min = self.add_weight(
                name="range_min", shape=(), initializer="zeros", trainable=False
            )
            self.range_max = self.add_weight(
                name="range_max", shape=(), initializer="zeros", trainable=False
            )
            self.initialized = self.add_weight(
                name="initialized", shape=(), initializer="zeros", trainable=False
            )
        super().build(input_shape)

    @property
    def learns_range(self):
        return self.fixed_range is None

    def get_range(self):
        """The current `(min, max)` as Python floats."""
        if self.fixed_range is not None:
            return self.fixed_range
        return (
            float(ops.convert_to_numpy(self.range_min)),
            float(ops.convert_to_numpy(self.range_max)),
        )

    def call(self, inputs, training=None):
        x = ops.cast(inputs, "float32")
        if self.fixed_range is not None:
            return _fake_quant(x, self.fixed_range[0], self.fixed_range[1])
        if training:
            batch_min = ops.stop_gradient(ops.minimum(ops.min(x), 0.0))
            batch_max = ops.stop_gradient(ops.maximum(ops.max(x), 0.0))
            seen = self.initialized > 0.5
            m = self.momentum
            new_min = ops.where(seen, m * self.range_min + (1.0 - m) * batch_min, batch_min)
            new_max = ops.where(seen, m * self.range_max + (1.0 - m) * batch_max, batch_max)
            self.range_min.assign(new_min)
            self.range_max.assign(new_max)
            self.initialized.assign(ops.ones_like(self.initialized))
            return _fake_quant(x, new_min, new_max)
        return _fake_quant(x, self.range_min, self.range_max)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        config = super().get_config()
        config.update({"momentum": self.momentum, "fixed_range": self.fixed_range})
        return config


