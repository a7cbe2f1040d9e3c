"""The tf_keras layers, quantizers and QuantizeConfigs of the tfmot engine.

Importing it imports tf_keras and tfmot (extra `qat`).
"""

import tensorflow as tf

from mnv3_layers.quantization.keras_engine.quantizers import _check_hard_swish_form
from mnv3_layers.quantization.tfmot_engine.loader import _import_tfmot

tfk, tfmot = _import_tfmot()

# Not in tfmot's public API: the classes its layout transforms create.
from tensorflow_model_optimization.python.core.quantization.keras import (
    quantize_layer as _quantize_layer,
)
from tensorflow_model_optimization.python.core.quantization.keras.default_8bit import (
    default_8bit_quantize_configs as _default_configs,
)

_tfmot_keras = tfmot.quantization.keras
_quantizers = _tfmot_keras.quantizers
_default_8bit = _tfmot_keras.default_8bit
register = tfk.saving.register_keras_serializable(package="mnv3_layers")
_ONE_SIXTH = 1.0 / 6.0


def _fixed_fake_quant(x, low, high):
    return tf.quantization.fake_quant_with_min_max_args(
        x, min=low, max=high, num_bits=8, narrow_range=False)


# === tf_keras layers ===


@register
class TFKerasHardSwish(tfk.layers.Layer):
    """tf_keras hard-swish layer: `x * relu6(x + 3) * (1/6)`.

    `form="op"` (default) converts to one `HARD_SWISH` op, as
    `mnv3_layers.HardSwish`; `form="elementwise"` adds fixed-range fake
    quants ([0, 6], [0, 1]) so it converts to int8 `ADD`, `MUL`, `MUL`.
    Quantize it with `HardSwishQuantizeConfig` either way.
    """

    def __init__(self, form="op", **kwargs):
        super().__init__(**kwargs)
        _check_hard_swish_form(form, "form")
        self.form = form

    def call(self, inputs):
        if self.form == "elementwise":
            gate = _fixed_fake_quant(tf.nn.relu6(inputs + 3.0), 0.0, 6.0)
            return inputs * _fixed_fake_quant(gate * _ONE_SIXTH, 0.0, 1.0)
        return inputs * tf.nn.relu6(inputs + 3.0) * _ONE_SIXTH

    def get_config(self):
        config = super().get_config()
        config["form"] = self.form
        return config

    def compute_output_shape(self, input_shape):
        return input_shape


@register
class TFKerasHardSigmoid(tfk.layers.Layer):
    """tf_keras hard-sigmoid layer: `relu6(x + 3) * (1/6)`.

    As `mnv3_layers.HardSigmoid` (not tf_keras's `0.2 * x + 0.5`); the
    identity hook `relu6_activation` is where `HardSigmoidQuantizeConfig`
    puts a fake quant.
    """

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.relu6_activation = tfk.activations.linear

    def call(self, inputs):
        return self.relu6_activation(tf.nn.relu6(inputs + 3.0)) * _ONE_SIXTH

    def compute_output_shape(self, input_shape):
        return input_shape


@register
class TFKerasRescaling(tfk.layers.Layer):
    """tf_keras `x * scale + offset` (as `keras.layers.Rescaling`).

    `scale_activation` is the hook for `RescalingQuantizeConfig`.

    Args:
        scale: a float.
        offset: a float. Defaults to `0.0`.
    """

    def __init__(self, scale, offset=0.0, **kwargs):
        super().__init__(**kwargs)
        self.scale = float(scale)
        self.offset = float(offset)
        self.scale_activation = tfk.activations.linear

    def call(self, inputs):
        return self.scale_activation(inputs * self.scale) + self.offset

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update({"scale": self.scale, "offset": self.offset})
        return config


# === Quantizers ===


class FirstBatchMovingAverageQuantizer(_quantizers.MovingAverageQuantizer):
    """8-bit asymmetric activation quantizer; range from the first batch on.

    tfmot's `MovingAverageQuantizer`, but the first training batch sets the
    range instead of averaging into `[-6, 6]` (as `ActivationQuantizer`).

    Args:
        range_momentum: momentum of the moving-average range. Defaults to `0.99`.
    """

    def __init__(self, range_momentum=0.99, **kwargs):
        super().__init__(num_bits=8, per_axis=False, symmetric=False, narrow_range=False)
        self.range_momentum = float(range_momentum)

    def build(self, tensor_shape, name, layer):
        weights = self._add_range_weights(layer, name)
        weights["initialized"] = layer.add_weight(
            name + "_initialized", shape=(), trainable=False,
            initializer=tfk.initializers.Constant(0.0),
        )
        return weights

    def __call__(self, inputs, training, weights, **kwargs):
        min_var, max_var = weights["min_var"], weights["max_var"]
        if training:
            batch_min = tf.minimum(tf.reduce_min(inputs), 0.0)
            batch_max = tf.maximum(tf.reduce_max(inputs), 0.0)
            first = tf.equal(weights["initialized"], 0.0)
            m = self.range_momentum
            new_min = tf.where(first, batch_min, m * min_var + (1.0 - m) * batch_min)
            new_max = tf.where(first, batch_max, m * max_var + (1.0 - m) * batch_max)
            range_min = min_var.assign(new_min)
            range_max = max_var.assign(new_max)
            with tf.control_dependencies([range_min, range_max]):
                weights["initialized"].assign(1.0)
        else:
            range_min, range_max = min_var, max_var
        return tf.quantization.fake_quant_with_min_max_vars(
            inputs, range_min, range_max, num_bits=8, narrow_range=False
        )

    def get_config(self):
        return {"range_momentum": self.range_momentum}

    def __eq__(self, other):
        return (
            type(self) is type(other) and self.range_momentum == other.range_momentum
        )

    def __ne__(self, other):
        return not self.__eq__(other)


def _per_channel_weights():
    return _quantizers.LastValueQuantizer(
        num_bits=8, per_axis=True, symmetric=True, narrow_range=True
    )


def _per_tensor_weights():
    return _quantizers.LastValueQuantizer(
        num_bits=8, per_axis=False, symmetric=True, narrow_range=True
    )


class DepthwisePerChannelQuantizer(_quantizers.LastValueQuantizer):
    """Per-channel symmetric int8 for a `(k, k, C, 1)` depthwise kernel.

    The kernel is transposed to `(k, k, 1, C)` around the fake quant, since
    tfmot's per-channel ranges follow the last axis.
    """

    def __init__(self, **kwargs):
        super().__init__(num_bits=8, per_axis=True, symmetric=True, narrow_range=True)

    def build(self, tensor_shape, name, layer):
        if int(tensor_shape[-1]) != 1:
            raise ValueError(
                "Per-channel depthwise quantization needs depth_multiplier=1. "
                f"Received: kernel shape {tuple(tensor_shape)} in layer {layer.name!r}"
            )
        return self._add_range_weights(
            layer, name, per_axis=True, tensor_shape=(int(tensor_shape[-2]),)
        )

    def __call__(self, inputs, training, weights, **kwargs):
        swapped = tf.transpose(inputs, (0, 1, 3, 2))
        quantized = super().__call__(swapped, training, weights, **kwargs)
        return tf.transpose(quantized, (0, 1, 3, 2))

    def get_config(self):
        return {}


# === QuantizeConfigs ===


class _Config(_tfmot_keras.QuantizeConfig):
    """Base: optional weight, activation-attribute and output _quantizers."""

    weight_attr = None  # e.g. "kernel"
    activation_attr = None  # an identity/activation attribute to quantize after
    quantize_output = False

    def __init__(self, range_momentum=0.99):
        self.range_momentum = float(range_momentum)

    def _activation_quantizer(self):
        return FirstBatchMovingAverageQuantizer(self.range_momentum)

    def _weight_quantizer(self):
        return _per_channel_weights()

    def get_weights_and_quantizers(self, layer):
        if self.weight_attr is None:
            return []
        return [(getattr(layer, self.weight_attr), self._weight_quantizer())]

    def get_activations_and_quantizers(self, layer):
        if self.activation_attr is None:
            return []
        return [(getattr(layer, self.activation_attr), self._activation_quantizer())]

    def set_quantize_weights(self, layer, quantize_weights):
        if self.weight_attr is not None:
            setattr(layer, self.weight_attr, quantize_weights[0])

    def set_quantize_activations(self, layer, quantize_activations):
        if self.activation_attr is not None:
            setattr(layer, self.activation_attr, quantize_activations[0])

    def get_output_quantizers(self, layer):
        return [self._activation_quantizer()] if self.quantize_output else []

    def get_config(self):
        return {"range_momentum": self.range_momentum}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __eq__(self, other):
        return type(self) is type(other) and self.get_config() == other.get_config()

    def __ne__(self, other):
        return not self.__eq__(other)

    def __hash__(self):
        return hash((type(self), self.range_momentum))


class OutputQuantizeConfig(_Config):
    """Quantizes a layer's output only (per tensor, asymmetric int8).

    Range from `FirstBatchMovingAverageQuantizer`.

    Args:
        range_momentum: momentum of the moving-average range. Defaults to `0.99`.
    """

    quantize_output = True


class HardSwishQuantizeConfig(OutputQuantizeConfig):
    """QuantizeConfig for `TFKerasHardSwish`: the output only (one `HARD_SWISH` op)."""


class HardSigmoidQuantizeConfig(_Config):
    """QuantizeConfig for `TFKerasHardSigmoid`.

    Fake quant on `relu6(x + 3)` (the convolution before, whose bias takes
    the `+3`) and on the output (a `MUL`). Pair it with
    `GateConvQuantizeConfig` on that convolution.
    """

    activation_attr = "relu6_activation"
    quantize_output = True


class RescalingQuantizeConfig(_Config):
    """QuantizeConfig for `TFKerasRescaling`: after `x * scale` and after `+ offset`."""

    activation_attr = "scale_activation"
    quantize_output = True


class MultiplyQuantizeConfig(OutputQuantizeConfig):
    """QuantizeConfig for `Multiply` (the SE scaling): output range only."""


class GateConvQuantizeConfig(_Config):
    """QuantizeConfig for a `Conv2D` that feeds a hard-sigmoid (the SE gate).

    Per-channel weights; output not quantized, so the converter folds the
    hard-sigmoid's `+3` into the bias. The activation must be linear.
    """

    weight_attr = "kernel"


class ConvQuantizeConfig(_Config):
    """QuantizeConfig for `Conv2D`: per-channel weights, quantized activation.

    Args:
        range_momentum: momentum of the moving-average range. Defaults to `0.99`.
        quantize_activation: quantize after the layer's activation;
            `False` where the next layer fuses into this one (a ReLU).
            Defaults to `True`.
    """

    weight_attr = "kernel"

    def __init__(self, range_momentum=0.99, quantize_activation=True):
        super().__init__(range_momentum)
        self.quantize_activation = bool(quantize_activation)
        self.activation_attr = "activation" if self.quantize_activation else None

    def get_config(self):
        config = super().get_config()
        config["quantize_activation"] = self.quantize_activation
        return config


class DepthwiseConvQuantizeConfig(ConvQuantizeConfig):
    """QuantizeConfig for `DepthwiseConv2D`: per-channel weights over `C`, as TFLite's."""

    weight_attr = "depthwise_kernel"

    def _weight_quantizer(self):
        return DepthwisePerChannelQuantizer()


class DenseQuantizeConfig(ConvQuantizeConfig):
    """QuantizeConfig for `Dense`: per-tensor weights, quantized activation."""

    def _weight_quantizer(self):
        return _per_tensor_weights()


# === Registry, layout transform, scheme ===


_OUTPUT_LAYERS = (
    tfk.layers.ReLU, tfk.layers.Add, tfk.layers.Concatenate,
    tfk.layers.GlobalAveragePooling2D, tfk.layers.AveragePooling2D,
    tfk.layers.UpSampling2D,
)


class MobileNetV3QuantizeRegistry(_default_8bit.Default8BitQuantizeRegistry):
    """tfmot's default 8-bit registry with this package's configs.

    Layers without a config here keep tfmot's behaviour.

    Args:
        range_momentum: momentum of the moving-average range. Defaults to `0.99`.
    """

    def __init__(self, range_momentum=0.99):
        super().__init__()
        self.range_momentum = float(range_momentum)

    def _config(self, layer):
        m = self.range_momentum
        kind = type(layer)
        if kind is tfk.layers.Conv2D:
            return ConvQuantizeConfig(m)
        if kind is tfk.layers.DepthwiseConv2D:
            if layer.depth_multiplier == 1:
                return DepthwiseConvQuantizeConfig(m)
            return None
        if kind is tfk.layers.Dense:
            return DenseQuantizeConfig(m)
        if kind in _OUTPUT_LAYERS:
            return OutputQuantizeConfig(m)
        if kind is tfk.layers.Multiply:
            return MultiplyQuantizeConfig(m)
        if kind is tfk.layers.Activation and layer.get_config()["activation"] in (
            "relu", "relu6"
        ):
            return OutputQuantizeConfig(m)
        if isinstance(layer, TFKerasHardSwish):
            return HardSwishQuantizeConfig(m)
        if isinstance(layer, TFKerasHardSigmoid):
            return HardSigmoidQuantizeConfig(m)
        if isinstance(layer, TFKerasRescaling):
            return RescalingQuantizeConfig(m)
        return None

    def supports(self, layer):
        return self._config(layer) is not None or super().supports(layer)

    def get_quantize_config(self, layer):
        config = self._config(layer)
        return config if config is not None else super().get_quantize_config(layer)


class MobileNetV3QuantizeLayoutTransform(_default_8bit.Default8BitQuantizeLayoutTransform):
    """tfmot's default 8-bit transforms, creating this package's output configs and ranges."""

    def __init__(self, range_momentum=0.99):
        super().__init__()
        self.range_momentum = float(range_momentum)

    def apply(self, model, layer_quantize_map):
        model, layer_quantize_map = super().apply(model, layer_quantize_map)
        weights_only = {
            tfk.layers.Conv2D: ConvQuantizeConfig,
            tfk.layers.DepthwiseConv2D: DepthwiseConvQuantizeConfig,
            tfk.layers.Dense: DenseQuantizeConfig,
        }
        output_config = _default_configs.Default8BitOutputQuantizeConfig
        noop_config = _default_configs.NoOpQuantizeConfig
        for layer in model.layers:
            entry = layer_quantize_map.get(layer.name)
            if isinstance(layer, _quantize_layer.QuantizeLayer):
                layer_quantize_map[layer.name] = {
                    "quantizer": tfk.utils.serialize_keras_object(
                        FirstBatchMovingAverageQuantizer(self.range_momentum)
                    )
                }
            elif entry and type(entry.get("quantize_config")) is output_config:
                if entry["quantize_config"].quantize_output:
                    entry["quantize_config"] = OutputQuantizeConfig(self.range_momentum)
            elif (
                entry
                and type(entry.get("quantize_config")) is noop_config
                and type(layer) in weights_only
                and not (
                    type(layer) is tfk.layers.DepthwiseConv2D
                    and layer.depth_multiplier != 1
                )
            ):
                # tfmot's Layer+ReLU transform turns the whole layer off
                # (weights too); TFLite still quantizes its weights, so
                # keep the weight fake quant and drop only the output one.
                entry["quantize_config"] = weights_only[type(layer)](
                    self.range_momentum, quantize_activation=False
                )
        return model, layer_quantize_map


class MobileNetV3QuantizeScheme(_default_8bit.Default8BitQuantizeScheme):
    """tfmot's default 8-bit scheme with this package's registry and ranges.

    Pass it to `tfmot.quantization.keras.quantize_apply(model, scheme=...)`
    inside `quantize_scope()` to quantize your own tf_keras models.

    Args:
        range_momentum: momentum of the moving-average range. Defaults to `0.99`.
    """

    def __init__(self, range_momentum=0.99):
        super().__init__()
        self.range_momentum = float(range_momentum)

    def get_layout_transformer(self):
        return MobileNetV3QuantizeLayoutTransform(self.range_momentum)

    def get_quantize_registry(self):
        return MobileNetV3QuantizeRegistry(self.range_momentum)


OBJECTS = {
    cls.__name__: cls
    for cls in (
        TFKerasHardSwish, TFKerasHardSigmoid, TFKerasRescaling,
        FirstBatchMovingAverageQuantizer, DepthwisePerChannelQuantizer,
        OutputQuantizeConfig, HardSwishQuantizeConfig, HardSigmoidQuantizeConfig,
        RescalingQuantizeConfig, MultiplyQuantizeConfig, GateConvQuantizeConfig,
        ConvQuantizeConfig, DepthwiseConvQuantizeConfig, DenseQuantizeConfig,
        MobileNetV3QuantizeRegistry, MobileNetV3QuantizeLayoutTransform,
        MobileNetV3QuantizeScheme,
    )
}
