"""The Keras engine's QAT layers: quantized conv, dense, activations and element-wise ops."""


import keras
from keras import ops

from mnv3_layers._registry import register
from mnv3_layers.layers.ops import hard_swish
from mnv3_layers.quantization.keras_engine.quantizers import (
    _ONE_SIXTH,
    _PROBABILITY_RANGE,
    _QUANTIZED_INPUT_ACTIVATIONS,
    _RELU6_RANGE,
    _UNIT_RANGE,
    ACTIVATIONS,
    ActivationQuantizer,
    _check_hard_swish_form,
    _fake_quant,
    fake_quant_weights,
)

# === QAT layers ===


class _QuantLayer(keras.layers.Layer):
    """Base of the QAT layers: an activation and its fake-quant points.

    `activation` is applied to the layer's float result, fake-quantized
    where the int8 model has an int8 tensor; `quantize_input` adds a
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
    output = activation with fake-quant (`_QuantLayer`)
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
        quantize_input, range_momentum: see `ActivationQuantizer` and
            `_QuantLayer`.
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
    with fake-quant placed as in `_QuantLayer`.

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
