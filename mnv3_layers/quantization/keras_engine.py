"""Keras 3 quantization-aware training (QAT) engine.

`quantize_model_keras(model)` returns a new functional Keras 3 model that
computes what the int8 TFLite model will compute: the float model's layers
are flattened (composite layers such as `InvertedResidual` are opened into
their convolutions, batch norms, activations, ...), grouped the way the TFLite
converter fuses them, and every group becomes one QAT layer with fake-quant
(`keras.quantizers.fake_quant_with_min_max_vars`, which on the TensorFlow
backend emits the `FakeQuantWithMinMaxVars*` ops the converter turns into a
real int8 graph) exactly where the int8 model has an int8 tensor.

Placement rules
---------------

Weights (symmetric, narrow range [-127, 127], zero point 0, as TFLite wants):

- `Conv2D`: per output channel. `DepthwiseConv2D`: per channel (of
  `channels * depth_multiplier`, TFLite's quantized dimension 3).
- `Dense`: per tensor.
- The range is the weights' current max-abs (recomputed on every call, so it
  always matches the weights; no range variables, nothing to go stale).

Batch norm after a convolution is folded into it *before* the weights are
fake-quantized: `w' = w * gamma / sqrt(var + eps)`,
`b' = beta + (b - mean) * gamma / sqrt(var + eps)`, using the moving
statistics. These are exactly the int8 weights the converter will write
(per-channel quantization of the folded kernel), so the QAT model trains
against the real deployed weights. The moving statistics are frozen during
QAT (a common choice for QAT fine-tuning of a trained float model: Jacob et
al. 2018 and Krishnamoorthi 2018 freeze them after a few epochs); `gamma`
and `beta` stay trainable. Start QAT from a float model whose moving
statistics have settled (check its accuracy in inference mode first).

Activations (per tensor, asymmetric, range from a moving average of batch
min/max, momentum `range_momentum`, initialized from the first training batch;
ranges always include 0):

- The model inputs are fake-quantized (their range is the int8 input's scale
  and zero point with `int8_io=True`).
- No fake-quant inside `Conv -> BN -> ReLU/ReLU6` or `Add -> ReLU/ReLU6`:
  the converter folds BN into the convolution and fuses the ReLU into the
  convolution/add, so only the group's output is an int8 tensor.
- `Conv -> BN -> hard-swish`: fake-quant after BN *and* after hard-swish
  (`HARD_SWISH` is its own int8 op; hard-swish is written as
  `x * relu6(x + 3) * (1/6)` so it converts to one `HARD_SWISH` op).
  With `hard_swish="elementwise"` it is written as three int8 ops instead,
  `g = relu6(x + 3)` (an `ADD` with fused ReLU6), `g * (1/6)` (`MUL`) and
  `x * that` (`MUL`), with fake-quant after each: fixed ranges [0, 6] and
  [0, 1] for the first two (same int8 values, so the `MUL` by 1/6 loses
  nothing), the learned output range for the last. LiteRT's XNNPACK
  delegate runs these three; it does not take an int8 `HARD_SWISH`.
- `Conv -> hard-sigmoid` (the SE gate): no fake-quant between the conv and
  `+ 3` (the converter folds `+ 3` into the bias and fuses ReLU6), then
  fake-quant after `relu6(x + 3)` and after `* (1/6)` (a `MUL` op).
- After `Add`, `Multiply` (the SE scaling), global average pooling
  (`MEAN`), `Dense`, `Concatenate`, each standalone activation, and each
  step of `Rescaling` (`x * scale`, then `+ offset`: `MUL` and `ADD` ops).
- Softmax and sigmoid outputs use TFLite's fixed output range [0, 255/256]
  (scale 1/256, zero point -128); their inputs are fake-quantized.
- Shape and selection ops keep their input's quantization and get no
  fake-quant: `Flatten`, `Reshape`, `Dropout`, `MaxPooling2D`,
  `AveragePooling2D`, `GlobalMaxPooling2D`, `ZeroPadding2D`, `Identity`,
  linear `Activation`.

Supported layers: this package's `InvertedResidual`, `SqueezeExcite`,
`HardSwish`, `HardSigmoid`, `EfficientLastStage`, nested functional models
(e.g. `MobileNetV3Backbone`, `SSDLite`, `LRASPPSegmenter`) and `Sequential`
models, the LR-ASPP `LRASPPHead` (global pooling: its 1x1 gate multiplies by
broadcasting) and `ResizeLike` (bilinear resizes keep their input's scale, no
fake-quant), and Keras' `Conv2D`,
`DepthwiseConv2D`, `BatchNormalization` (directly after a convolution),
`ReLU` (max_value `None` or 6), `Activation`/`Softmax` (linear, relu, relu6,
hard_swish, hard_sigmoid, softmax, sigmoid), `Dense`, `Add`, `Multiply`,
`Concatenate`, `GlobalAveragePooling2D`, `Rescaling` and the shape ops above.
Any other layer raises a `ValueError` naming it.

The QAT layers compute in float32 whatever the dtype policy (fake-quant is
a float32 op); export needs the TensorFlow backend.

Naming: each QAT layer is named after the original layer whose output it
produces (layers inside a composite get `"<composite>_<sublayer>"`, and the
layer producing a composite's output gets the composite's name), so layer
names used as feature taps (`"expanded_conv_2"`, `"conv_activation"`) still
name the same tensors in the QAT model.
"""

import dataclasses

import keras
from keras import ops

from mnv3_layers._registry import register
from mnv3_layers.activations import hard_swish
from mnv3_layers.efficient_last_stage import EfficientLastStage
from mnv3_layers.hard_sigmoid import HardSigmoid
from mnv3_layers.hard_swish import HardSwish
from mnv3_layers.inverted_residual import InvertedResidual
from mnv3_layers.squeeze_excite import SqueezeExcite

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


def _check_hard_swish_form(hard_swish):
    if not isinstance(hard_swish, str) or hard_swish not in HARD_SWISH_FORMS:
        raise ValueError(
            f"`hard_swish` must be one of {HARD_SWISH_FORMS}. Received: hard_swish={hard_swish!r}"
        )


# === Fake-quant primitives ===


def _fake_quant(x, min_value, max_value, narrow_range=False, axis=None):
    x = ops.cast(x, "float32")
    return keras.quantizers.fake_quant_with_min_max_vars(
        x, min_value, max_value, num_bits=8, narrow_range=narrow_range, axis=axis
    )


def fake_quant_weights(kernel, per_channel=True, depthwise=False):
    """Symmetric int8 fake-quant of a kernel (narrow range, zero point 0).

    Args:
        kernel: a `Conv2D` kernel `(kh, kw, in, out)`, a `DepthwiseConv2D`
            kernel `(kh, kw, channels, multiplier)` or a `Dense` kernel.
        per_channel: one range per output channel (the last axis; for a
            depthwise kernel, per `channels * multiplier`). Defaults to `True`.
        depthwise: `kernel` is a depthwise kernel. Defaults to `False`.

    Returns:
        The fake-quantized kernel, same shape. The range is the current
        max-abs (no gradient flows through it: straight-through estimator).
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

    At inference the stored range is used. Until the first training batch
    the range is empty (`[0, 0]`) and the output is zero: a QAT model must be
    trained (at least one step) before it is used or exported.

    Args:
        momentum: moving-average momentum of the range. Defaults to `0.99`.
        fixed_range: `(min, max)` to use instead of a learned range (e.g.
            TFLite's fixed softmax output range), or `None`.
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


def is_qat_layer(layer):
    """Whether `layer` is one of this engine's QAT layers."""
    return isinstance(layer, (ActivationQuantizer, _QuantLayer))


def _quantizers(layer):
    if isinstance(layer, ActivationQuantizer):
        return [layer]
    return [q for q in layer.quantizers if q is not None]


def ranges_initialized(layer):
    """Whether every learned range of a QAT layer was set by training."""
    for quantizer in _quantizers(layer):
        if quantizer.learns_range and (
            not quantizer.built or float(ops.convert_to_numpy(quantizer.initialized)) < 0.5
        ):
            return False
    return True


# === QAT layers ===


class _QuantLayer(keras.layers.Layer):
    """Base of the QAT layers: an activation and its fake-quant points.

    `activation` is applied to the layer's (float) result and fake-quant
    is placed as the module docstring describes; `quantize_input` adds a
    fake-quant before activations that are ops of their own (hard-swish,
    softmax, sigmoid) when the result is not yet an int8 tensor.
    """

    def __init__(self, activation="linear", quantize_input=False, range_momentum=0.99,
                 hard_swish="op", **kwargs):
        super().__init__(**kwargs)
        if activation not in ACTIVATIONS:
            raise ValueError(
                f"`activation` must be one of {ACTIVATIONS}. Received: activation={activation!r}"
            )
        _check_hard_swish_form(hard_swish)
        self.activation = activation
        self.hard_swish = hard_swish
        self.quantize_input = bool(quantize_input)
        self.range_momentum = float(range_momentum)
        # === Layers ===
        self.input_quantizer = None
        self.mid_quantizer = None
        if self.quantize_input and activation in _QUANTIZED_INPUT_ACTIVATIONS:
            self.input_quantizer = ActivationQuantizer(
                self.range_momentum, name="input_quantizer"
            )
        if activation == "hard_sigmoid":
            self.mid_quantizer = ActivationQuantizer(self.range_momentum, name="relu6_quantizer")
        fixed = _PROBABILITY_RANGE if activation in ("softmax", "sigmoid") else None
        self.output_quantizer = ActivationQuantizer(
            self.range_momentum, fixed_range=fixed, name="output_quantizer"
        )

    @property
    def quantizers(self):
        return [self.input_quantizer, self.mid_quantizer, self.output_quantizer]

    def _build_quantizers(self, shape):
        for quantizer in self.quantizers:
            if quantizer is not None:
                quantizer.build(shape)

    def _activate(self, x, training):
        a = self.activation
        if self.input_quantizer is not None:
            x = self.input_quantizer(x, training=training)
        if a == "relu":
            x = ops.relu(x)
        elif a == "relu6":
            x = ops.relu6(x)
        elif a == "hard_swish" and self.hard_swish == "elementwise":
            # ADD (+3, fused ReLU6) -> MUL (x 1/6) -> MUL (x), each an int8
            # tensor with a fixed range except the last (output_quantizer).
            gate = _fake_quant(ops.relu6(ops.add(x, 3.0)), *_RELU6_RANGE)
            gate = _fake_quant(gate * _ONE_SIXTH, *_UNIT_RANGE)
            x = x * gate
        elif a == "hard_swish":
            x = hard_swish(x)
        elif a == "hard_sigmoid":
            x = self.mid_quantizer(ops.relu6(ops.add(x, 3.0)), training=training)
            x = x * _ONE_SIXTH
        elif a == "softmax":
            x = ops.softmax(x, axis=-1)
        elif a == "sigmoid":
            x = ops.sigmoid(x)
        return self.output_quantizer(x, training=training)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "activation": self.activation,
                "quantize_input": self.quantize_input,
                "range_momentum": self.range_momentum,
                "hard_swish": self.hard_swish,
            }
        )
        return config


@register
class QuantConv(_QuantLayer):
    """QAT `Conv2D`/`DepthwiseConv2D` with folded batch norm and an activation.

    Formula:

    ```
    s = gamma / sqrt(moving_variance + epsilon)          # with batch_norm
    w = kernel * s,  b = beta + (bias - moving_mean) * s # (else w, b = kernel, bias)
    y = conv(x, fake_quant_per_channel(w)) + b
    output = fake-quant placement for `activation` (module docstring)
    ```

    Args:
        filters: output channels (`Conv2D`); `None` for depthwise.
        kernel_size, strides, padding, dilation_rate: as for `Conv2D`.
        depthwise: a depthwise convolution. Defaults to `False`.
        depth_multiplier: depthwise multiplier. Defaults to `1`.
        use_bias: the convolution has a bias. Defaults to `True`.
        batch_norm: a batch norm after the convolution is folded in.
            Defaults to `False`.
        bn_epsilon, bn_center, bn_scale: the batch norm's settings.
        activation: one of `ACTIVATIONS`. Defaults to `"linear"`.
        quantize_input, range_momentum: see `ActivationQuantizer` and the
            module docstring.
        **kwargs: base layer arguments.
    """

    def __init__(
        self,
        filters=None,
        kernel_size=1,
        strides=1,
        padding="valid",
        dilation_rate=1,
        depthwise=False,
        depth_multiplier=1,
        use_bias=True,
        batch_norm=False,
        bn_epsilon=1e-3,
        bn_center=True,
        bn_scale=True,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.filters = None if filters is None else int(filters)
        self.kernel_size = _pair(kernel_size)
        self.strides = _pair(strides)
        self.padding = padding
        self.dilation_rate = _pair(dilation_rate)
        self.depthwise = bool(depthwise)
        self.depth_multiplier = int(depth_multiplier)
        self.use_bias = bool(use_bias)
        self.batch_norm = bool(batch_norm)
        self.bn_epsilon = float(bn_epsilon)
        self.bn_center = bool(bn_center)
        self.bn_scale = bool(bn_scale)
        if not self.depthwise and self.filters is None:
            raise ValueError("`filters` is required for a non-depthwise QuantConv.")

    def build(self, input_shape):
        channels = int(input_shape[-1])
        kh, kw = self.kernel_size
        if self.depthwise:
            kernel_shape = (kh, kw, channels, self.depth_multiplier)
            out_channels = channels * self.depth_multiplier
        else:
            kernel_shape = (kh, kw, channels, self.filters)
            out_channels = self.filters
        self.out_channels = out_channels
        self.kernel = self.add_weight(name="kernel", shape=kernel_shape,
                                      initializer="glorot_uniform")
        self.bias = (
            self.add_weight(name="bias", shape=(out_channels,), initializer="zeros")
            if self.use_bias else None
        )
        self.gamma = self.beta = self.moving_mean = self.moving_variance = None
        if self.batch_norm:
            if self.bn_scale:
                self.gamma = self.add_weight(name="gamma", shape=(out_channels,),
                                             initializer="ones")
            if self.bn_center:
                self.beta = self.add_weight(name="beta", shape=(out_channels,),
                                            initializer="zeros")
            self.moving_mean = self.add_weight(
                name="moving_mean", shape=(out_channels,), initializer="zeros",
                trainable=False,
            )
            self.moving_variance = self.add_weight(
                name="moving_variance", shape=(out_channels,), initializer="ones",
                trainable=False,
            )
        self._build_quantizers(self.compute_output_shape(input_shape))
        super().build(input_shape)

    def folded_kernel_and_bias(self):
        """The kernel and bias with the batch norm folded in (float)."""
        kernel, bias = self.kernel, self.bias
        if not self.batch_norm:
            return kernel, bias
        scale = ops.rsqrt(self.moving_variance + self.bn_epsilon)
        if self.gamma is not None:
            scale = scale * self.gamma
        if self.depthwise:
            shape = tuple(kernel.shape)
            kernel = kernel * ops.reshape(scale, (1, 1, shape[2], shape[3]))
        else:
            kernel = kernel * scale
        shift = -self.moving_mean if bias is None else bias - self.moving_mean
        bias = shift * scale
        if self.beta is not None:
            bias = bias + self.beta
        return kernel, bias

    def call(self, inputs, training=None):
        kernel, bias = self.folded_kernel_and_bias()
        kernel = fake_quant_weights(kernel, per_channel=True, depthwise=self.depthwise)
        x = ops.cast(inputs, "float32")
        conv = ops.depthwise_conv if self.depthwise else ops.conv
        y = conv(x, kernel, strides=self.strides, padding=self.padding,
                 dilation_rate=self.dilation_rate)
        if bias is not None:
            y = ops.add(y, bias)
        return self._activate(y, training)

    def compute_output_shape(self, input_shape):
        spatial = []
        for size, k, s, d in zip(input_shape[1:3], self.kernel_size, self.strides,
                                 self.dilation_rate):
            if size is None:
                spatial.append(None)
            elif self.padding == "same":
                spatial.append(-(-int(size) // s))
            else:
                spatial.append((int(size) - d * (k - 1) - 1) // s + 1)
        channels = (
            None if input_shape[-1] is None else int(input_shape[-1]) * self.depth_multiplier
        ) if self.depthwise else self.filters
        return (input_shape[0], *spatial, channels)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "filters": self.filters,
                "kernel_size": self.kernel_size,
                "strides": self.strides,
                "padding": self.padding,
                "dilation_rate": self.dilation_rate,
                "depthwise": self.depthwise,
                "depth_multiplier": self.depth_multiplier,
                "use_bias": self.use_bias,
                "batch_norm": self.batch_norm,
                "bn_epsilon": self.bn_epsilon,
                "bn_center": self.bn_center,
                "bn_scale": self.bn_scale,
            }
        )
        return config


@register
class QuantDense(_QuantLayer):
    """QAT `Dense`: per-tensor symmetric int8 kernel, bias, activation.

    Formula: `output = activation(x @ fake_quant_per_tensor(kernel) + bias)`
    with fake-quant placed as the module docstring describes.

    Args:
        units: output units.
        use_bias: add a bias. Defaults to `True`.
        activation, quantize_input, range_momentum: see `QuantConv`.
        **kwargs: base layer arguments.
    """

    def __init__(self, units, use_bias=True, **kwargs):
        super().__init__(**kwargs)
        self.units = int(units)
        self.use_bias = bool(use_bias)

    def build(self, input_shape):
        self.kernel = self.add_weight(name="kernel", shape=(int(input_shape[-1]), self.units),
                                      initializer="glorot_uniform")
        self.bias = (
            self.add_weight(name="bias", shape=(self.units,), initializer="zeros")
            if self.use_bias else None
        )
        self._build_quantizers(self.compute_output_shape(input_shape))
        super().build(input_shape)

    def call(self, inputs, training=None):
        kernel = fake_quant_weights(self.kernel, per_channel=False)
        y = ops.matmul(ops.cast(inputs, "float32"), kernel)
        if self.bias is not None:
            y = ops.add(y, self.bias)
        return self._activate(y, training)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.units,)

    def get_config(self):
        config = super().get_config()
        config.update({"units": self.units, "use_bias": self.use_bias})
        return config


@register
class QuantActivation(_QuantLayer):
    """QAT standalone activation (its input is already an int8 tensor).

    Args:
        activation, range_momentum: see `QuantConv`.
        **kwargs: base layer arguments.
    """

    def build(self, input_shape):
        self._build_quantizers(tuple(input_shape))
        super().build(input_shape)

    def call(self, inputs, training=None):
        return self._activate(ops.cast(inputs, "float32"), training)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)


class _QuantElementwise(_QuantLayer):
    """Element-wise merge of its inputs (`_combine`), then the output quantizer."""

    _combine = None  # ops.add or ops.multiply

    def build(self, input_shape):
        self._build_quantizers(_broadcast_shape(input_shape))
        super().build(input_shape)

    def call(self, inputs, training=None):
        y = ops.cast(inputs[0], "float32")
        for x in inputs[1:]:
            y = type(self)._combine(y, ops.cast(x, "float32"))
        return self._activate(y, training)

    def compute_output_shape(self, input_shape):
        return _broadcast_shape(input_shape)


@register
class QuantAdd(_QuantElementwise):
    """QAT element-wise sum of its inputs, with an optional fused activation.

    Args:
        activation, quantize_input, range_momentum: see `QuantConv`.
        **kwargs: base layer arguments.
    """

    _combine = ops.add


@register
class QuantMultiply(_QuantElementwise):
    """QAT element-wise product of its inputs (e.g. the SE scaling).

    Args:
        activation, quantize_input, range_momentum: see `QuantConv`.
        **kwargs: base layer arguments.
    """

    _combine = ops.multiply


@register
class QuantConcatenate(_QuantLayer):
    """QAT concatenation (one output range; TFLite rescales the inputs).

    Args:
        axis: concatenation axis. Defaults to `-1`.
        range_momentum: see `QuantConv`.
        **kwargs: base layer arguments.
    """

    def __init__(self, axis=-1, **kwargs):
        super().__init__(**kwargs)
        self.axis = int(axis)

    def build(self, input_shape):
        self._build_quantizers(self.compute_output_shape(input_shape))
        super().build(input_shape)

    def call(self, inputs, training=None):
        y = ops.concatenate([ops.cast(x, "float32") for x in inputs], axis=self.axis)
        return self._activate(y, training)

    def compute_output_shape(self, input_shape):
        shapes = [tuple(shape) for shape in input_shape]
        axis = self.axis % len(shapes[0])
        sizes = [shape[axis] for shape in shapes]
        total = None if any(size is None for size in sizes) else sum(sizes)
        return shapes[0][:axis] + (total,) + shapes[0][axis + 1:]

    def get_config(self):
        config = super().get_config()
        config["axis"] = self.axis
        return config


@register
class QuantGlobalAveragePooling(_QuantLayer):
    """QAT global average pooling over height and width (a `MEAN` op).

    Args:
        keepdims: keep the pooled axes with size 1. Defaults to `False`.
        activation, range_momentum: see `QuantConv`.
        **kwargs: base layer arguments.
    """

    def __init__(self, keepdims=False, **kwargs):
        super().__init__(**kwargs)
        self.keepdims = bool(keepdims)

    def build(self, input_shape):
        self._build_quantizers(self.compute_output_shape(input_shape))
        super().build(input_shape)

    def call(self, inputs, training=None):
        y = ops.mean(ops.cast(inputs, "float32"), axis=(1, 2), keepdims=self.keepdims)
        return self._activate(y, training)

    def compute_output_shape(self, input_shape):
        if self.keepdims:
            return (input_shape[0], 1, 1, input_shape[-1])
        return (input_shape[0], input_shape[-1])

    def get_config(self):
        config = super().get_config()
        config["keepdims"] = self.keepdims
        return config


@register
class QuantRescaling(_QuantLayer):
    """QAT `Rescaling`: `x * scale` (fake-quant), then `+ offset` (fake-quant).

    Both steps are int8 ops in TFLite (`MUL`, `ADD`), so both outputs get a
    range; an offset of 0 is left out.

    Args:
        scale: the multiplier (a number or a per-channel list).
        offset: the offset (a number or a per-channel list). Defaults to `0.0`.
        range_momentum: see `QuantConv`.
        **kwargs: base layer arguments.
    """

    def __init__(self, scale, offset=0.0, **kwargs):
        super().__init__(**kwargs)
        self.scale = scale
        self.offset = offset
        self.scale_quantizer = (
            ActivationQuantizer(self.range_momentum, name="scale_quantizer")
            if _nonzero(offset) else None
        )

    @property
    def quantizers(self):
        return super().quantizers + [self.scale_quantizer]

    def build(self, input_shape):
        self._build_quantizers(tuple(input_shape))
        super().build(input_shape)

    def call(self, inputs, training=None):
        y = ops.multiply(ops.cast(inputs, "float32"), ops.convert_to_tensor(self.scale,
                                                                           "float32"))
        if self.scale_quantizer is not None:
            y = self.scale_quantizer(y, training=training)
            y = ops.add(y, ops.convert_to_tensor(self.offset, "float32"))
        return self._activate(y, training)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        config = super().get_config()
        config.update({"scale": self.scale, "offset": self.offset})
        return config


def _nonzero(value):
    try:
        return any(float(v) != 0.0 for v in value)
    except TypeError:
        return float(value) != 0.0


def _pair(value):
    if isinstance(value, (list, tuple)):
        return tuple(int(v) for v in value)
    return (int(value), int(value))


def _broadcast_shape(shapes):
    shapes = [tuple(s) for s in shapes]
    rank = max(len(s) for s in shapes)
    result = []
    for dims in zip(*[(1,) * (rank - len(s)) + s for s in shapes]):
        known = [d for d in dims if d is not None and d != 1]
        if any(d is None for d in dims) and not known:
            result.append(None)
        else:
            result.append(known[0] if known else 1)
    return tuple(result)


# === Graph flattening ===


@dataclasses.dataclass(eq=False)
class _Value:
    """A tensor of the flattened graph."""

    producer: object = None  # _Op, or None for a model input
    consumers: list = dataclasses.field(default_factory=list)
    input_tensor: object = None  # the original keras.Input for model inputs


@dataclasses.dataclass(eq=False)
class _Op:
    """A primitive op of the flattened graph (one original layer call)."""

    kind: str
    name: str
    layer: object
    inputs: list
    outputs: list
    attrs: dict = dataclasses.field(default_factory=dict)


# Layers kept as they are: they keep their input's int8 scale (no fake-quant).
_PASS_THROUGH = (
    keras.layers.Dropout,
    keras.layers.SpatialDropout2D,
    keras.layers.Flatten,
    keras.layers.Reshape,
    keras.layers.MaxPooling2D,
    keras.layers.AveragePooling2D,
    keras.layers.GlobalMaxPooling2D,
    keras.layers.ZeroPadding2D,
    keras.layers.Identity,
)
_SUPPORTED_TEXT = (
    "InvertedResidual, SqueezeExcite, HardSwish, HardSigmoid, EfficientLastStage, "
    "nested functional/Sequential models (SSDLite, LRASPPSegmenter), LRASPPHead (global "
    "pooling), ResizeLike, Conv2D, DepthwiseConv2D, "
    "BatchNormalization (directly after a convolution), ReLU, Activation, Softmax, "
    "Dense, Add, Multiply, Concatenate, GlobalAveragePooling2D, Rescaling, "
    + ", ".join(cls.__name__ for cls in _PASS_THROUGH)
)


def _unsupported(layer, why=None):
    reason = why or f"layers of type {type(layer).__name__} are not supported"
    return ValueError(
        f"Cannot quantize layer {layer.name!r} ({type(layer).__name__}) with the Keras QAT "
        f"engine: {reason}. Supported layers: {_SUPPORTED_TEXT}. Rebuild the model with "
        "supported layers, or quantize the part of the model before this layer and "
        "apply the rest in float."
    )


def _activation_name(activation, layer):
    """Canonical name of a Keras activation function, or raise."""
    if activation is None:
        return "linear"
    if isinstance(activation, str):
        name = activation
    else:
        if activation is hard_swish:
            return "hard_swish"
        try:
            name = keras.activations.serialize(activation)
        except (ValueError, TypeError):
            name = getattr(activation, "__name__", repr(activation))
        if isinstance(name, dict):
            name = name.get("config", name.get("class_name", ""))
    name = {"hard_silu": "hard_swish", "silu_hard": "hard_swish"}.get(name, name)
    if name not in ACTIVATIONS:
        raise _unsupported(
            layer,
            f"activation {name!r} has no int8 TFLite equivalent here (supported: "
            f"{ACTIVATIONS})",
        )
    return name


class _Graph:
    """Flattens a Keras model into primitive `_Op`s."""

    def __init__(self):
        self.ops = []
        self.names = set()
        self.calls = {}

    def op(self, kind, name, layer, inputs, num_outputs=1, **attrs):
        inputs = list(inputs)
        op = _Op(kind, name, layer, inputs, [], attrs)
        op.outputs = [_Value(producer=op) for _ in range(num_outputs)]
        for value in inputs:
            value.consumers.append(op)
        self.ops.append(op)
        return op.outputs[0] if num_outputs == 1 else op.outputs

    # --- models ---

    def model(self, model, inputs, prefix=""):
        """Flattens `model` called on `inputs` (a structure of `_Value`)."""
        if isinstance(model, keras.Sequential):
            x = keras.tree.flatten(inputs)[0]
            for layer in model.layers:
                x = self.layer(layer, (x,), {}, prefix)
            return x
        if not hasattr(model, "_run_through_graph"):
            raise _unsupported(
                model,
                "only functional and Sequential models can be quantized (a subclassed "
                "model's call cannot be read)",
            )

        def call_fn(op, *args, **kwargs):
            return self.layer(op, args, kwargs, prefix)

        return model._run_through_graph(inputs, operation_fn=lambda op: op, call_fn=call_fn)

    # --- layers ---

    def layer(self, layer, args, kwargs, prefix):
        key = id(layer)
        self.calls[key] = self.calls.get(key, 0) + 1
        if self.calls[key] > 1 and not isinstance(layer, keras.layers.InputLayer):
            raise _unsupported(
                layer,
                "the layer is called more than once (shared weights), which the "
                "flattened QAT model cannot share",
            )
        values = [v for v in keras.tree.flatten(args) if isinstance(v, _Value)]
        name = prefix + layer.name
        cls = type(layer)
        if isinstance(layer, keras.Model):
            inputs = args[0] if len(args) == 1 else list(args)
            return self.model(layer, inputs, prefix=prefix)
        if cls is InvertedResidual:
            return self.inverted_residual(layer, values[0], name)
        if cls is SqueezeExcite:
            return self.squeeze_excite(layer, values[0], name)
        if cls is EfficientLastStage:
            return self.last_stage(layer, values[0], name)
        lraspp = _lraspp_classes()
        if lraspp is not None and cls is lraspp[0]:
            return self.lraspp_head(layer, values, name)
        if lraspp is not None and cls is lraspp[1]:
            return self.op("resize_like", name, layer, values)
        return self.leaf(layer, values, name)

    def leaf(self, layer, values, name):
        cls = type(layer)
        if cls is keras.layers.InputLayer:
            return values[0]
        if not values:
            raise _unsupported(layer, "it has no tensor input")
        x = values[0]
        if cls is keras.layers.Conv2D:
            if layer.groups != 1:
                raise _unsupported(layer, "grouped convolutions (groups > 1) are not supported")
            if layer.data_format != "channels_last":
                raise _unsupported(layer, "only channels_last convolutions are supported")
            return self.op("conv", name, layer, [x],
                           activation=_activation_name(layer.activation, layer))
        if cls is keras.layers.DepthwiseConv2D:
            if layer.data_format != "channels_last":
                raise _unsupported(layer, "only channels_last convolutions are supported")
            return self.op("depthwise", name, layer, [x],
                           activation=_activation_name(layer.activation, layer))
        if cls is keras.layers.BatchNormalization:
            if layer.axis not in (-1, 3) and list(getattr(layer, "axis", [])) not in ([-1], [3]):
                raise _unsupported(layer, "only batch norm over the last axis is supported")
            return self.op("bn", name, layer, [x])
        if cls is keras.layers.Dense:
            return self.op("dense", name, layer, [x],
                           activation=_activation_name(layer.activation, layer))
        if cls is keras.layers.ReLU:
            max_value = None if layer.max_value is None else float(layer.max_value)
            if float(layer.negative_slope) != 0.0 or float(layer.threshold) != 0.0 or (
                max_value not in (None, 6.0)
            ):
                raise _unsupported(
                    layer, "only ReLU and ReLU6 (negative_slope=0, threshold=0) are supported"
                )
            return self.op("activation", name, layer, [x],
                           activation="relu" if max_value is None else "relu6")
        if cls is HardSwish:
            return self.op("activation", name, layer, [x], activation="hard_swish")
        if cls is HardSigmoid:
            return self.op("activation", name, layer, [x], activation="hard_sigmoid")
        if cls is keras.layers.Activation:
            activation = _activation_name(layer.activation, layer)
            if activation == "linear":
                return x
            return self.op("activation", name, layer, [x], activation=activation)
        if cls is keras.layers.Softmax:
            if layer.axis not in (-1, [-1], (-1,)):
                raise _unsupported(layer, "only softmax over the last axis is supported")
            return self.op("activation", name, layer, [x], activation="softmax")
        if cls is keras.layers.Add:
            return self.op("add", name, layer, values)
        if cls is keras.layers.Multiply:
            return self.op("multiply", name, layer, values)
        if cls is keras.layers.Concatenate:
            return self.op("concat", name, layer, values)
        if cls is keras.layers.GlobalAveragePooling2D:
            if layer.data_format != "channels_last":
                raise _unsupported(layer, "only channels_last pooling is supported")
            return self.op("gap", name, layer, [x])
        if cls is keras.layers.Rescaling:
            return self.op("rescaling", name, layer, [x])
        if cls in _PASS_THROUGH:
            return self.op("pass", name, layer, [x])
        raise _unsupported(layer)

    def _activation(self, layer, x, name):
        return self.leaf(layer, [x], name)

    def squeeze_excite(self, se, x, name):
        s = self.op("gap", f"{name}_{se.pool.name}", se.pool, [x])
        s = self.op("conv", f"{name}_{se.reduce.name}", se.reduce, [s], activation="linear")
        s = self._activation(se.reduce_activation, s, f"{name}_{se.reduce_activation.name}")
        s = self.op("conv", f"{name}_{se.expand.name}", se.expand, [s], activation="linear")
        s = self._activation(se.gate, s, f"{name}_{se.gate.name}")
        out = self.op("multiply", name, se.multiply, [x, s])
        return out

    def inverted_residual(self, block, x, name):
        h = x
        if block.expand is not None:
            h = self.op("conv", f"{name}_{block.expand.name}", block.expand, [h],
                        activation="linear")
            h = self.op("bn", f"{name}_{block.expand_bn.name}", block.expand_bn, [h])
            h = self._activation(block.expand_activation, h,
                                 f"{name}_{block.expand_activation.name}")
        expanded = h
        h = self.op("depthwise", f"{name}_{block.depthwise.name}", block.depthwise, [h],
                    activation="linear")
        h = self.op("bn", f"{name}_{block.depthwise_bn.name}", block.depthwise_bn, [h])
        h = self._activation(block.depthwise_activation, h,
                             f"{name}_{block.depthwise_activation.name}")
        if block.squeeze_excite is not None:
            h = self.squeeze_excite(block.squeeze_excite, h,
                                    f"{name}_{block.squeeze_excite.name}")
        h = self.op("conv", f"{name}_{block.project.name}", block.project, [h],
                    activation="linear")
        h = self.op("bn", f"{name}_{block.project_bn.name}", block.project_bn, [h])
        if block.use_residual:
            h = self.op("add", f"{name}_{block.add.name}", block.add, [x, h])
        h.producer.name = name  # The block's output keeps the block's name.
        if block.expansion_output:
            return h, expanded
        return h

    def lraspp_head(self, head, values, name):
        """`LRASPPHead` with global pooling, as the ops its `call` runs."""
        if head.pool_size is not None:
            raise _unsupported(
                head,
                "only global pooling of the gate branch is supported (LRASPPSegmenter "
                f"pooling='global'); its windowed average has no int8 op here. Received: "
                f"pool_size={head.pool_size!r}",
            )
        low, high = values
        main = self.op("conv", f"{name}_{head.main_conv.name}", head.main_conv, [high],
                       activation="linear")
        main = self.op("bn", f"{name}_{head.main_bn.name}", head.main_bn, [main])
        main = self._activation(head.main_activation, main,
                                f"{name}_{head.main_activation.name}")
        pooled = self.op("gap", f"{name}_gate_pool", None, [high], keepdims=True)
        gate = self.op("conv", f"{name}_{head.gate_conv.name}", head.gate_conv, [pooled],
                       activation="linear")
        gate = self._activation(head.gate_activation, gate,
                                f"{name}_{head.gate_activation.name}")
        # The 1x1 gate broadcasts over the map (TFLite MUL broadcasts int8).
        scaled = self.op("multiply", f"{name}_gate_multiply", None, [main, gate])
        high_logits = self.op("conv", f"{name}_{head.high_classifier.name}",
                              head.high_classifier, [scaled], activation="linear")
        high_logits = self.op("resize_like", f"{name}_high_resize", None, [high_logits, low])
        low_logits = self.op("conv", f"{name}_{head.low_classifier.name}",
                             head.low_classifier, [low], activation="linear")
        return self.op("add", name, None, [high_logits, low_logits])

    def last_stage(self, stage, x, name):
        h = self.op("conv", f"{name}_{stage.conv.name}", stage.conv, [x], activation="linear")
        h = self.op("bn", f"{name}_{stage.conv_bn.name}", stage.conv_bn, [h])
        h = self._activation(stage.conv_activation, h, f"{name}_{stage.conv_activation.name}")
        if stage.last_point_filters is not None:
            h = self.op("gap", f"{name}_{stage.pool.name}", stage.pool, [h])
            h = self.op("conv", f"{name}_{stage.head_conv.name}", stage.head_conv, [h],
                        activation="linear")
            h = self._activation(stage.head_activation, h,
                                 f"{name}_{stage.head_activation.name}")
            h = self.op("pass", f"{name}_{stage.dropout.name}", stage.dropout, [h])
        h.producer.name = name
        return h


# === Fusion and rebuild ===


def _lraspp_classes():
    """`(LRASPPHead, ResizeLike)`, or None if the applications are not importable."""
    try:
        from mnv3_layers.applications.lraspp import LRASPPHead, ResizeLike
    except ImportError:  # pragma: no cover - the applications ship with the package
        return None
    return LRASPPHead, ResizeLike


def _single_consumer(value, outputs):
    """The only consumer of `value`, or None (also None for model outputs)."""
    if len(value.consumers) != 1 or id(value) in outputs:
        return None
    return value.consumers[0]


def _fusable_activation(value, outputs, allow_hard_sigmoid):
    consumer = _single_consumer(value, outputs)
    if consumer is None or consumer.kind != "activation":
        return None
    activation = consumer.attrs["activation"]
    if activation in ("relu", "relu6") or (allow_hard_sigmoid and activation == "hard_sigmoid"):
        return consumer
    return None


class _Builder:
    """Builds the QAT functional model from a flattened graph."""

    def __init__(self, graph, output_values, range_momentum, hard_swish="op"):
        self.graph = graph
        self.outputs = {id(v) for v in output_values}
        self.range_momentum = range_momentum
        self.hard_swish = hard_swish
        self.tensors = {}
        self.used_names = set()
        self.weight_copies = []
        self.fused = set()

    def unique(self, name):
        candidate, i = name, 1
        while candidate in self.used_names:
            candidate = f"{name}_{i}"
            i += 1
        self.used_names.add(candidate)
        return candidate

    def build(self):
        for op in self.graph.ops:
            if id(op) in self.fused:
                continue
            getattr(self, "build_" + op.kind)(op)

    def tensor(self, value):
        return self.tensors[id(value)]

    def common(self, activation, name):
        return {
            "activation": activation,
            "quantize_input": activation in _QUANTIZED_INPUT_ACTIVATIONS,
            "range_momentum": self.range_momentum,
            "hard_swish": self.hard_swish if activation == "hard_swish" else "op",
            "name": self.unique(name),
        }

    # --- groups ---

    def build_conv(self, op):
        layer = op.layer
        group = [op]
        value = op.outputs[0]
        bn = None
        activation = op.attrs["activation"]
        if activation == "linear":
            consumer = _single_consumer(value, self.outputs)
            if consumer is not None and consumer.kind == "bn":
                bn = consumer
                group.append(bn)
                value = bn.outputs[0]
            act = _fusable_activation(value, self.outputs, allow_hard_sigmoid=True)
            if act is not None:
                group.append(act)
                value = act.outputs[0]
                activation = act.attrs["activation"]
        for fused in group[1:]:
            self.fused.add(id(fused))
        depthwise = op.kind == "depthwise"
        bn_layer = None if bn is None else bn.layer
        qlayer = QuantConv(
            filters=None if depthwise else layer.filters,
            kernel_size=layer.kernel_size,
            strides=layer.strides,
            padding=layer.padding,
            dilation_rate=layer.dilation_rate,
            depthwise=depthwise,
            depth_multiplier=layer.depth_multiplier if depthwise else 1,
            use_bias=layer.use_bias,
            batch_norm=bn is not None,
            bn_epsilon=bn_layer.epsilon if bn_layer is not None else 1e-3,
            bn_center=bn_layer.center if bn_layer is not None else True,
            bn_scale=bn_layer.scale if bn_layer is not None else True,
            trainable=layer.trainable,
            **self.common(activation, group[-1].name),
        )
        self.tensors[id(value)] = qlayer(self.tensor(op.inputs[0]))
        self.weight_copies.append((qlayer, layer, bn_layer))

    build_depthwise = build_conv

    def build_bn(self, op):
        source = op.inputs[0].producer
        after = "a model input" if source is None else f"{source.name!r} ({source.kind})"
        raise _unsupported(
            op.layer,
            f"a BatchNormalization must directly follow a Conv2D/DepthwiseConv2D (with a "
            f"linear activation and no other consumer) to be folded into it; it follows "
            f"{after}",
        )

    def build_dense(self, op):
        layer = op.layer
        value = op.outputs[0]
        activation = op.attrs["activation"]
        name = op.name
        if activation == "linear":
            act = _fusable_activation(value, self.outputs, allow_hard_sigmoid=False)
            if act is not None:
                self.fused.add(id(act))
                value, activation, name = act.outputs[0], act.attrs["activation"], act.name
        qlayer = QuantDense(layer.units, use_bias=layer.use_bias, trainable=layer.trainable,
                            **self.common(activation, name))
        self.tensors[id(value)] = qlayer(self.tensor(op.inputs[0]))
        self.weight_copies.append((qlayer, layer, None))

    def build_add(self, op):
        value, activation, name = op.outputs[0], "linear", op.name
        act = _fusable_activation(value, self.outputs, allow_hard_sigmoid=False)
        if act is not None:
            self.fused.add(id(act))
            value, activation, name = act.outputs[0], act.attrs["activation"], act.name
        qlayer = QuantAdd(**self.common(activation, name))
        self.tensors[id(value)] = qlayer([self.tensor(v) for v in op.inputs])

    def build_multiply(self, op):
        qlayer = QuantMultiply(**self.common("linear", op.name))
        self.tensors[id(op.outputs[0])] = qlayer([self.tensor(v) for v in op.inputs])

    def build_concat(self, op):
        qlayer = QuantConcatenate(axis=op.layer.axis, **self.common("linear", op.name))
        self.tensors[id(op.outputs[0])] = qlayer([self.tensor(v) for v in op.inputs])

    def build_activation(self, op):
        options = self.common(op.attrs["activation"], op.name)
        options["quantize_input"] = False  # The input is already an int8 tensor.
        qlayer = QuantActivation(**options)
        self.tensors[id(op.outputs[0])] = qlayer(self.tensor(op.inputs[0]))

    def build_gap(self, op):
        keepdims = op.attrs.get("keepdims", getattr(op.layer, "keepdims", False))
        qlayer = QuantGlobalAveragePooling(
            keepdims=bool(keepdims), **self.common("linear", op.name)
        )
        self.tensors[id(op.outputs[0])] = qlayer(self.tensor(op.inputs[0]))

    def build_rescaling(self, op):
        qlayer = QuantRescaling(
            scale=_plain(op.layer.scale), offset=_plain(op.layer.offset),
            **self.common("linear", op.name),
        )
        self.tensors[id(op.outputs[0])] = qlayer(self.tensor(op.inputs[0]))

    def build_resize_like(self, op):
        # A bilinear resize keeps its input's int8 scale (no fake-quant).
        resize_like = _lraspp_classes()[1]
        min_size = getattr(op.layer, "min_size", 1)
        resize = resize_like(min_size=min_size, name=self.unique(op.name))
        self.tensors[id(op.outputs[0])] = resize([self.tensor(v) for v in op.inputs])

    def build_pass(self, op):
        config = op.layer.get_config()
        config["name"] = self.unique(op.name)
        clone = type(op.layer).from_config(config)
        self.tensors[id(op.outputs[0])] = clone(self.tensor(op.inputs[0]))

    def copy_weights(self):
        for qlayer, layer, bn in self.weight_copies:
            qlayer.kernel.assign(layer.kernel)
            if qlayer.bias is not None:
                qlayer.bias.assign(layer.bias)
            if bn is not None:
                if qlayer.gamma is not None:
                    qlayer.gamma.assign(bn.gamma)
                if qlayer.beta is not None:
                    qlayer.beta.assign(bn.beta)
                qlayer.moving_mean.assign(bn.moving_mean)
                qlayer.moving_variance.assign(bn.moving_variance)
                for variable in (qlayer.gamma, qlayer.beta):
                    if variable is not None and not bn.trainable:
                        variable.trainable = False


def _plain(value):
    """A JSON-friendly number or list from a Rescaling scale/offset."""
    try:
        return float(value)
    except TypeError:
        return [float(v) for v in keras.ops.convert_to_numpy(value).reshape(-1)]


# === Public API ===


def quantize_model_keras(model, range_momentum=0.99, name=None, hard_swish="op"):
    """Returns a Keras 3 quantization-aware-training copy of a float model.

    The QAT model starts from `model`'s float weights (batch norms folded
    into the convolutions, see the module docstring for every rule), trains
    with `fit` like any Keras model, saves and loads as `.keras` (all its
    layers are registered), and exports to a fully-int8 TFLite model with
    `export_tflite(qat_model, path, quantization="int8")` once it has trained
    for at least one step (the activation ranges are set by training).
    `model` is not modified.

    Args:
        model: a float functional or `Sequential` Keras 3 model built from
            the supported layers (module docstring): this package's
            applications, `MobileNetV3Backbone`-based models, or your own.
        range_momentum: momentum of the moving-average activation ranges,
            in [0, 1). Defaults to `0.99`.
        name: name of the QAT model. Defaults to `model.name + "_qat"`.
        hard_swish: how each hard-swish is written in the int8 file:
            `"op"`, one `HARD_SWISH` op (the paper's and keras.applications'
            graph, what phone runtimes and accelerators expect), or
            `"elementwise"`, `ADD` (+3, fused ReLU6), `MUL` (x 1/6) and
            `MUL` (x), three int8 ops that LiteRT's XNNPACK delegate runs.
            XNNPACK does not take an int8 `HARD_SWISH`, so with `"op"` every
            hard-swish runs on TFLite's own scalar kernel between XNNPACK
            partitions; on the x86 CPUs measured that kernel dominates the
            int8 latency (`benchmarks/bench_quantization.py`). Choose
            `"elementwise"` for an int8 model that runs on an x86 CPU with
            XNNPACK. (XNNPACK also refuses an int8 `ADD` whose input scale is
            under 1/1024 of its output's: a hard-swish whose input range is
            below about 0.006, e.g. in an untrained model, then runs its
            `ADD` on TFLite's kernel; the result is the same.)
            Defaults to `"op"`.

    Returns:
        An uncompiled functional `keras.Model` with the same inputs and
        output structure as `model`.

    Raises:
        ValueError: an unsupported layer (the message names it and says
            what to do), a shared layer, a batch norm not after a
            convolution, or a bad `range_momentum`.
        TypeError: `model` is not a Keras 3 model.

    Example:

    >>> import keras
    >>> from mnv3_layers import InvertedResidual
    >>> from mnv3_layers.quantization import quantize_model
    >>> inputs = keras.Input((32, 32, 3), name="image")
    >>> x = keras.layers.Conv2D(16, 3, strides=2, padding="same", use_bias=False)(inputs)
    >>> x = keras.layers.BatchNormalization()(x)
    >>> x = keras.layers.ReLU(name="stem")(x)
    >>> x = InvertedResidual(16, se_ratio=0.25, name="block")(x)
    >>> qat = quantize_model(keras.Model(inputs, x), engine="keras")
    >>> for layer in qat.layers[1:]:
    ...     print(type(layer).__name__, layer.name, getattr(layer, "activation", ""))
    ActivationQuantizer image_quantizer
    QuantConv stem relu
    QuantConv block_depthwise_activation relu
    QuantGlobalAveragePooling block_squeeze_excite_pool linear
    QuantConv block_squeeze_excite_relu relu
    QuantConv block_squeeze_excite_hard_sigmoid hard_sigmoid
    QuantMultiply block_squeeze_excite linear
    QuantConv block_project_bn linear
    QuantAdd block linear
    """
    if not isinstance(model, keras.Model):
        raise TypeError(
            "`model` must be a Keras 3 `keras.Model` (functional or Sequential). "
            f"Received: model of type {type(model).__name__}"
        )
    if isinstance(range_momentum, bool) or not isinstance(range_momentum, (int, float)) or (
        not 0.0 <= range_momentum < 1.0
    ):
        raise ValueError(
            f"`range_momentum` must be in [0, 1). Received: range_momentum={range_momentum!r}"
        )
    if name is not None and not isinstance(name, str):
        raise TypeError(f"`name` must be a string. Received: name={name!r}")
    _check_hard_swish_form(hard_swish)
    if isinstance(model, keras.Sequential) and not model.built:
        raise ValueError(
            "The Sequential `model` is not built: give it an `Input` or call it once "
            "before quantizing."
        )
    try:
        model_inputs = model.inputs
    except (AttributeError, ValueError):
        model_inputs = None
    if not model_inputs:
        raise ValueError(
            f"Cannot quantize model {model.name!r}: it has no symbolic inputs (only "
            "functional and Sequential models with an `Input` can be quantized)."
        )

    graph = _Graph()
    input_values = [_Value(input_tensor=t) for t in model_inputs]
    input_struct = keras.tree.pack_sequence_as(
        getattr(model, "_inputs_struct", model_inputs), input_values
    ) if not isinstance(model, keras.Sequential) else input_values
    output_struct = graph.model(model, input_struct)
    output_values = keras.tree.flatten(output_struct)

    builder = _Builder(graph, output_values, float(range_momentum), hard_swish)
    new_inputs = []
    for value, tensor in zip(input_values, model_inputs):
        history = getattr(tensor, "_keras_history", None)
        input_name = getattr(getattr(history, "operation", None), "name", None)
        new_input = keras.Input(
            shape=tuple(tensor.shape[1:]), dtype=tensor.dtype, name=input_name
        )
        builder.used_names.add(new_input.name)
        new_inputs.append(new_input)
        quantizer = ActivationQuantizer(
            float(range_momentum), name=builder.unique(f"{input_name or 'input'}_quantizer")
        )
        builder.tensors[id(value)] = quantizer(new_input)
    builder.build()
    outputs = keras.tree.pack_sequence_as(
        output_struct, [builder.tensor(v) for v in output_values]
    )
    if isinstance(model, keras.Sequential) or len(new_inputs) == 1:
        inputs = new_inputs[0] if len(new_inputs) == 1 else new_inputs
    else:
        inputs = keras.tree.pack_sequence_as(model._inputs_struct, new_inputs)
    qat_model = keras.Model(inputs, outputs, name=name or f"{model.name}_qat")
    builder.copy_weights()
    return qat_model
