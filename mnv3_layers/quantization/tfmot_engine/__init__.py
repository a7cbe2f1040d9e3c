"""The tensorflow-model-optimization (tfmot) QAT engine: a flat tf_keras twin.

tfmot 0.8 quantizes Keras 2 (`tf_keras`) models only, so this engine

1. builds a *twin* of a float Keras 3 model in tf_keras (`build_tf_keras_twin`)
   by walking the Keras 3 functional graph layer by layer and flattening this
   package's composite layers (`InvertedResidual`, `SqueezeExcite`,
   `EfficientLastStage`) into their sublayers, so every convolution and batch
   norm is a top-level tf_keras layer that tfmot's Conv+BN(+ReLU) folding
   sees; hard-swish and hard-sigmoid become the small tf_keras layers
   `TFKerasHardSwish` / `TFKerasHardSigmoid`;
2. copies the weights (the twin's float outputs equal the Keras 3 model's);
3. annotates every layer with its `QuantizeConfig` (tfmot's defaults, or
   this package's configs below) and applies
   `tfmot.quantization.keras.quantize_apply` (`quantize_model_tfmot`).

Placement rules (the same as the Keras engine's, so the two engines' int8
exports have the same op graph):

- convolution and depthwise weights: per-channel symmetric int8
  (`DepthwiseConvQuantizeConfig` adds per-channel to depthwise, which
  tfmot's default quantizes per tensor); dense weights per tensor;
- no fake quant inside Conv->BN(->ReLU) or Add->ReLU (tfmot's transforms);
- no fake quant between the SE expand convolution and the `+3` of its
  hard-sigmoid (`GateConvQuantizeConfig`), so the converter folds `+3` into
  the bias;
- one fake quant after each hard-swish, hard-sigmoid and SE multiply
  (`HardSwishQuantizeConfig`, `HardSigmoidQuantizeConfig`,
  `MultiplyQuantizeConfig`), so hard-swish converts to one `HARD_SWISH` op;
- with `hard_swish="elementwise"`, `TFKerasHardSwish(form="elementwise")`
  computes `x * fq[0,1](fq[0,6](relu6(x + 3)) * (1/6))` with fixed-range
  fake quants inside the layer (no variables) and keeps its output fake
  quant: it converts to `ADD` (fused ReLU6), `MUL`, `MUL`, as the Keras
  engine's option of the same name (ops LiteRT's XNNPACK delegate runs in
  int8; it does not take an int8 `HARD_SWISH`).

Why walk the graph instead of rebuilding from the block tables: the walk
also covers `MobileNetV3Backbone`-based models and users' own functional
models built from this package's layers and common Keras layers, and it
reproduces whatever the model really contains (custom heads, dropped SE,
changed BN epsilon) instead of what a table says it should contain. A layer
it cannot translate raises a `ValueError` naming it.

Saving and restoring a tfmot QAT model: it does not round-trip through
`.keras` or `.h5` files (tfmot wrappers and quantizer variables are not
restored faithfully); use a TensorFlow checkpoint of the weights and rebuild
the same QAT model from the same float model structure:

```python
qat = quantize_model_tfmot(float_model)
qat.fit(...)
qat.save_weights("ckpt/qat")          # a TF checkpoint (no .h5 suffix)
# or: tf.train.Checkpoint(model=qat).write("ckpt/qat")

restored = quantize_model_tfmot(float_model)   # same structure
restored.load_weights("ckpt/qat")             # or Checkpoint(...).read(...)
```

Importing this module does not import tf_keras or tfmot; the first call
that needs them does, without changing how `keras` (Keras 3) or `tf.keras`
behave in the process (tfmot sets `TF_USE_LEGACY_KERAS=1` when imported;
the engine restores the variable and resolves `tf.keras` beforehand).
"""

import contextlib
import importlib
import os
import threading

import keras

from mnv3_layers.layers.efficient_last_stage import EfficientLastStage
from mnv3_layers.layers.hard_sigmoid import HardSigmoid
from mnv3_layers.layers.hard_swish import HardSwish
from mnv3_layers.layers.inverted_residual import InvertedResidual
from mnv3_layers.layers.squeeze_excite import SqueezeExcite

QAT_EXTRA = 'pip install "mnv3-layers[qat]"'

# Public names created on first use (they subclass tf_keras / tfmot classes).
_LAZY_NAMES = (
    "TFKerasHardSwish",
    "TFKerasHardSigmoid",
    "TFKerasRescaling",
    "FirstBatchMovingAverageQuantizer",
    "DepthwisePerChannelQuantizer",
    "OutputQuantizeConfig",
    "HardSwishQuantizeConfig",
    "HardSigmoidQuantizeConfig",
    "RescalingQuantizeConfig",
    "MultiplyQuantizeConfig",
    "GateConvQuantizeConfig",
    "ConvQuantizeConfig",
    "DepthwiseConvQuantizeConfig",
    "DenseQuantizeConfig",
    "MobileNetV3QuantizeRegistry",
    "MobileNetV3QuantizeLayoutTransform",
    "MobileNetV3QuantizeScheme",
)

_LOCK = threading.Lock()
_CACHE = {}


def _import_tfmot():
    """Imports tf_keras and tfmot once; returns `(tf_keras, tfmot)`.

    tfmot's `compat` module sets `TF_USE_LEGACY_KERAS=1` in `os.environ` and
    reads `tf.keras.version()`. Left alone that would (a) route a still
    unresolved `tf.keras` to tf_keras for the whole process and (b) leave the
    variable set for later imports. So `tf.keras` is resolved first, under
    the user's own setting, and the variable is restored afterwards.
    """
    if "modules" in _CACHE:
        return _CACHE["modules"]
    with _LOCK:
        if "modules" in _CACHE:
            return _CACHE["modules"]
        import tensorflow as tf

        saved = os.environ.get("TF_USE_LEGACY_KERAS")
        try:
            # Attribute access resolves tf.keras's lazy loader now.
            getattr(tf.keras, "version", None)
            importlib.import_module("tf_keras")  # an ImportError if it is missing
            import tensorflow_model_optimization as tfmot
            from tensorflow_model_optimization.python.core.keras.compat import (
                keras as tfmot_keras,
            )
        except ImportError as error:
            raise ImportError(
                "The tfmot QAT engine needs tensorflow-model-optimization and "
                f"tf_keras. Install them with: {QAT_EXTRA}"
            ) from error
        finally:
            if saved is None:
                os.environ.pop("TF_USE_LEGACY_KERAS", None)
            else:
                os.environ["TF_USE_LEGACY_KERAS"] = saved
        _CACHE["modules"] = (tfmot_keras, tfmot)
        return _CACHE["modules"]


def _objects():
    """Creates (once) the tf_keras layers and QuantizeConfigs of this engine."""
    if "objects" in _CACHE:
        return _CACHE["objects"]
    tfk, tfmot = _import_tfmot()
    with _LOCK:
        if "objects" in _CACHE:
            return _CACHE["objects"]
        _CACHE["objects"] = _define_objects(tfk, tfmot)
        return _CACHE["objects"]


def _define_objects(tfk, tfmot):
    import tensorflow as tf

    tfmot_keras = tfmot.quantization.keras
    quantizers = tfmot_keras.quantizers
    default_8bit = tfmot_keras.default_8bit
    register = tfk.saving.register_keras_serializable(package="mnv3_layers")
    one_sixth = 1.0 / 6.0
    linear = tfk.activations.linear

    def fixed_fake_quant(x, low, high):
        return tf.quantization.fake_quant_with_min_max_args(
            x, min=low, max=high, num_bits=8, narrow_range=False)

    # === tf_keras layers ===

    @register
    class TFKerasHardSwish(tfk.layers.Layer):
        """tf_keras hard-swish layer: `x * relu6(x + 3) * (1/6)`.

        With `form="op"` (default) the same function and form as
        `mnv3_layers.HardSwish` (the form the TFLite converter fuses into one
        `HARD_SWISH` op), for tf_keras models. With `form="elementwise"`
        the gate `relu6(x + 3)` and the gate times 1/6 get fixed-range fake
        quants ([0, 6] and [0, 1], no variables), so the layer converts to
        int8 `ADD` (fused ReLU6), `MUL`, `MUL`, which LiteRT's XNNPACK
        delegate runs. Quantize it with `HardSwishQuantizeConfig` either way.
        """

        def __init__(self, form="op", **kwargs):
            super().__init__(**kwargs)
            _check_hard_swish_form(form, "form")
            self.form = form

        def call(self, inputs):
            if self.form == "elementwise":
                gate = fixed_fake_quant(tf.nn.relu6(inputs + 3.0), 0.0, 6.0)
                return inputs * fixed_fake_quant(gate * one_sixth, 0.0, 1.0)
            return inputs * tf.nn.relu6(inputs + 3.0) * one_sixth

        def get_config(self):
            config = super().get_config()
            config["form"] = self.form
            return config

        def compute_output_shape(self, input_shape):
            return input_shape

    @register
    class TFKerasHardSigmoid(tfk.layers.Layer):
        """tf_keras hard-sigmoid layer: `relu6(x + 3) * (1/6)`.

        The paper's hard sigmoid, as `mnv3_layers.HardSigmoid` (tf_keras's
        own `hard_sigmoid` activation is `0.2 * x + 0.5`, a different
        function). `relu6_activation` is an identity hook applied to
        `relu6(x + 3)`, where `HardSigmoidQuantizeConfig` puts a fake quant.
        """

        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.relu6_activation = linear

        def call(self, inputs):
            return self.relu6_activation(tf.nn.relu6(inputs + 3.0)) * one_sixth

        def compute_output_shape(self, input_shape):
            return input_shape

    @register
    class TFKerasRescaling(tfk.layers.Layer):
        """tf_keras `x * scale + offset` (as `keras.layers.Rescaling`).

        `scale_activation` is an identity hook applied to `x * scale`, where
        `RescalingQuantizeConfig` puts a fake quant.

        Args:
            scale: a float.
            offset: a float. Defaults to `0.0`.
        """

        def __init__(self, scale, offset=0.0, **kwargs):
            super().__init__(**kwargs)
            self.scale = float(scale)
            self.offset = float(offset)
            self.scale_activation = linear

        def call(self, inputs):
            return self.scale_activation(inputs * self.scale) + self.offset

        def compute_output_shape(self, input_shape):
            return input_shape

        def get_config(self):
            config = super().get_config()
            config.update({"scale": self.scale, "offset": self.offset})
            return config

    # === Quantizers ===

    class FirstBatchMovingAverageQuantizer(quantizers.MovingAverageQuantizer):
        """8-bit asymmetric activation quantizer; range from the first batch on.

        Like tfmot's `MovingAverageQuantizer` (per tensor, range always
        contains 0, exponential moving average of the batch min/max), but the
        first training batch sets the range directly instead of averaging
        into tfmot's initial `[-6, 6]` (with tfmot's decay 0.999 that start
        takes thousands of steps to fade and clips hard-swish outputs above 6
        meanwhile). The Keras engine's `ActivationQuantizer` follows the same
        rule, so both engines' short QAT runs give comparable ranges.

        Args:
            range_momentum: moving-average momentum of the range.
                Defaults to `0.99`.
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

    def per_channel_weights():
        return quantizers.LastValueQuantizer(
            num_bits=8, per_axis=True, symmetric=True, narrow_range=True
        )

    def per_tensor_weights():
        return quantizers.LastValueQuantizer(
            num_bits=8, per_axis=False, symmetric=True, narrow_range=True
        )

    class DepthwisePerChannelQuantizer(quantizers.LastValueQuantizer):
        """Per-channel symmetric int8 for a `(k, k, C, 1)` depthwise kernel.

        tfmot's per-channel ranges follow the last axis (size 1 here, so its
        default is per tensor); this transposes the kernel to `(k, k, 1, C)`
        around the fake quant (the TFLite converter folds both transposes into
        the constant) to get TFLite's per-channel depthwise weights.
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

    class _Config(tfmot_keras.QuantizeConfig):
        """Base: optional weight, activation-attribute and output quantizers."""

        weight_attr = None  # e.g. "kernel"
        activation_attr = None  # an identity/activation attribute to quantize after
        quantize_output = False

        def __init__(self, range_momentum=0.99):
            self.range_momentum = float(range_momentum)

        def _activation_quantizer(self):
            return FirstBatchMovingAverageQuantizer(self.range_momentum)

        def _weight_quantizer(self):
            return per_channel_weights()

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

        The range follows `FirstBatchMovingAverageQuantizer`. Used for ReLU,
        `Add`, pooling, a batch norm that ends a Conv+BN group, and as the
        base of the hard-swish and multiply configs.

        Args:
            range_momentum: moving-average momentum of the range.
                Defaults to `0.99`.
        """

        quantize_output = True

    class HardSwishQuantizeConfig(OutputQuantizeConfig):
        """QuantizeConfig for a hard-swish layer (`TFKerasHardSwish`).

        One fake quant on the output and none inside, so the converter
        fuses `x * relu6(x + 3) * (1/6)` into a single `HARD_SWISH` op whose
        input is the (int8) output of the layer before.
        """

    class HardSigmoidQuantizeConfig(_Config):
        """QuantizeConfig for `TFKerasHardSigmoid`.

        Fake quant on `relu6(x + 3)` (the `relu6_activation` hook) and on the
        output (after `* (1/6)`): in TFLite the `+3` folds into the bias of
        the convolution before it and ReLU6 fuses into it, so `relu6(x + 3)`
        is that convolution's int8 output and `* (1/6)` is a `MUL`. Pair it
        with `GateConvQuantizeConfig` on that convolution.
        """

        activation_attr = "relu6_activation"
        quantize_output = True

    class RescalingQuantizeConfig(_Config):
        """QuantizeConfig for `TFKerasRescaling`: after `x * scale` and after `+ offset`.

        TFLite runs rescaling as an int8 `MUL` then an int8 `ADD`; both
        outputs need a range.
        """

        activation_attr = "scale_activation"
        quantize_output = True

    class MultiplyQuantizeConfig(OutputQuantizeConfig):
        """QuantizeConfig for `Multiply` (the squeeze-and-excite scaling).

        tfmot has no default for `Multiply`; TFLite's int8 `MUL` needs its
        output range.
        """

    class GateConvQuantizeConfig(_Config):
        """QuantizeConfig for a `Conv2D` that feeds a hard-sigmoid (the SE gate).

        Weights per-channel symmetric int8; output *not* quantized: a fake
        quant between the convolution and the `+3` of the hard-sigmoid would
        stop the converter from folding `+3` into the bias and leave extra
        `ADD` ops. The convolution must have a linear activation.
        """

        weight_attr = "kernel"

    class ConvQuantizeConfig(_Config):
        """QuantizeConfig for `Conv2D`: per-channel weights, quantized activation.

        As tfmot's default (weights per output channel, symmetric, narrow
        range; the output quantized after the layer's activation unless
        tfmot's Conv+BN(+ReLU) transforms turn it off), with this package's
        activation range rule.

        Args:
            range_momentum: moving-average momentum of the activation range.
                Defaults to `0.99`.
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
        """QuantizeConfig for `DepthwiseConv2D`: per-channel weights.

        tfmot's default quantizes a `(k, k, C, 1)` depthwise kernel per its
        last axis, i.e. per tensor; TFLite's int8 `DEPTHWISE_CONV_2D` (and
        the Keras engine) is per channel over `C`.
        """

        weight_attr = "depthwise_kernel"

        def _weight_quantizer(self):
            return DepthwisePerChannelQuantizer()

    class DenseQuantizeConfig(ConvQuantizeConfig):
        """QuantizeConfig for `Dense`: per-tensor weights, quantized activation."""

        def _weight_quantizer(self):
            return per_tensor_weights()

    # === Registry, layout transform, scheme ===

    output_layers = (
        tfk.layers.ReLU, tfk.layers.Add, tfk.layers.Concatenate,
        tfk.layers.GlobalAveragePooling2D, tfk.layers.AveragePooling2D,
        tfk.layers.UpSampling2D,
    )

    class MobileNetV3QuantizeRegistry(default_8bit.Default8BitQuantizeRegistry):
        """tfmot's default 8-bit registry with this package's configs.

        Conv2D, DepthwiseConv2D (per-channel), Dense, ReLU, Add, Concatenate,
        pooling, ReLU activations, hard-swish, hard-sigmoid, multiply and
        rescaling get this package's configs (first-batch activation ranges);
        layers tfmot leaves unquantized (Dropout, Flatten, Reshape, ...) keep
        tfmot's behaviour.

        Args:
            range_momentum: moving-average momentum of activation ranges.
                Defaults to `0.99`.
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
            if kind in output_layers:
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

    class MobileNetV3QuantizeLayoutTransform(default_8bit.Default8BitQuantizeLayoutTransform):
        """tfmot's default 8-bit transforms with this package's range rule.

        The transforms (Conv+BN(+ReLU) and Add+ReLU without fake quant
        between them, a quantize layer after each input) are tfmot's; the
        output configs and input quantizers they create are replaced by
        this package's (`OutputQuantizeConfig`, first-batch ranges).
        """

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
            # Not in tfmot's public API: the classes the transforms create.
            from tensorflow_model_optimization.python.core.quantization.keras import (
                quantize_layer,
            )
            from tensorflow_model_optimization.python.core.quantization.keras.default_8bit import (  # noqa: E501
                default_8bit_quantize_configs,
            )

            output_config = default_8bit_quantize_configs.Default8BitOutputQuantizeConfig
            noop_config = default_8bit_quantize_configs.NoOpQuantizeConfig
            for layer in model.layers:
                entry = layer_quantize_map.get(layer.name)
                if isinstance(layer, quantize_layer.QuantizeLayer):
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

    class MobileNetV3QuantizeScheme(default_8bit.Default8BitQuantizeScheme):
        """tfmot's default 8-bit scheme with this package's registry and ranges.

        Pass it to `tfmot.quantization.keras.quantize_apply(model, scheme=...)`
        (inside `quantize_scope()`) to quantize your own tf_keras models the
        way `quantize_model_tfmot` does.

        Args:
            range_momentum: moving-average momentum of activation ranges.
                Defaults to `0.99`.
        """

        def __init__(self, range_momentum=0.99):
            super().__init__()
            self.range_momentum = float(range_momentum)

        def get_layout_transformer(self):
            return MobileNetV3QuantizeLayoutTransform(self.range_momentum)

        def get_quantize_registry(self):
            return MobileNetV3QuantizeRegistry(self.range_momentum)

    objects = {
        "TFKerasHardSwish": TFKerasHardSwish,
        "TFKerasHardSigmoid": TFKerasHardSigmoid,
        "TFKerasRescaling": TFKerasRescaling,
        "FirstBatchMovingAverageQuantizer": FirstBatchMovingAverageQuantizer,
        "DepthwisePerChannelQuantizer": DepthwisePerChannelQuantizer,
        "OutputQuantizeConfig": OutputQuantizeConfig,
        "HardSwishQuantizeConfig": HardSwishQuantizeConfig,
        "HardSigmoidQuantizeConfig": HardSigmoidQuantizeConfig,
        "RescalingQuantizeConfig": RescalingQuantizeConfig,
        "MultiplyQuantizeConfig": MultiplyQuantizeConfig,
        "GateConvQuantizeConfig": GateConvQuantizeConfig,
        "ConvQuantizeConfig": ConvQuantizeConfig,
        "DepthwiseConvQuantizeConfig": DepthwiseConvQuantizeConfig,
        "DenseQuantizeConfig": DenseQuantizeConfig,
        "MobileNetV3QuantizeRegistry": MobileNetV3QuantizeRegistry,
        "MobileNetV3QuantizeLayoutTransform": MobileNetV3QuantizeLayoutTransform,
        "MobileNetV3QuantizeScheme": MobileNetV3QuantizeScheme,
    }
    for name, obj in objects.items():
        obj.__module__ = __name__
        obj.__qualname__ = name
    return objects


def _check_hard_swish_form(value, argument="hard_swish"):
    from mnv3_layers.quantization.keras_engine import HARD_SWISH_FORMS as forms

    if not isinstance(value, str) or value not in forms:
        raise ValueError(
            f"`{argument}` must be one of {forms}. Received: {argument}={value!r}"
        )


def __getattr__(name):
    if name in _LAZY_NAMES:
        return _objects()[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def quantize_scope(*custom_objects):
    """tfmot's `quantize_scope` plus this package's tf_keras layers and configs.

    Use it to clone, `quantize_apply` or deserialize tf_keras models that
    use `TFKerasHardSwish`, `TFKerasHardSigmoid` or this package's
    `QuantizeConfig`s.

    Args:
        *custom_objects: more `{name: class}` dicts for the scope.

    Returns:
        A context manager (tf_keras `CustomObjectScope`).

    Example:

    ```python
    import tf_keras
    import tensorflow_model_optimization as tfmot
    from mnv3_layers.quantization import tfmot_engine as te

    annotate = tfmot.quantization.keras.quantize_annotate_layer
    inputs = tf_keras.Input((32, 32, 3))
    x = tf_keras.layers.Conv2D(8, 3, padding="same", use_bias=False)(inputs)
    x = tf_keras.layers.BatchNormalization()(x)
    x = annotate(te.TFKerasHardSwish(), te.HardSwishQuantizeConfig())(x)
    model = tfmot.quantization.keras.quantize_annotate_model(
        tf_keras.Model(inputs, x))
    with te.quantize_scope():
        qat = tfmot.quantization.keras.quantize_apply(model)
    ```
    """
    _, tfmot = _import_tfmot()
    objects = dict(_objects())
    for extra in custom_objects:
        objects.update(extra)
    return tfmot.quantization.keras.quantize_scope(objects)


# === Twin: Keras 3 functional graph -> flat tf_keras graph ===

_COMPOSITES = (InvertedResidual, SqueezeExcite, EfficientLastStage)
_PLAIN_ACTIVATIONS = ("linear", "relu", "relu6")


class _TwinBuilder:
    """Replays a Keras 3 functional graph with tf_keras layers."""

    def __init__(self, tfk, hard_swish="op"):
        self.tfk = tfk
        self.hard_swish = hard_swish
        self.objects = _objects()
        self.names = set()
        self.copies = []  # (tf_keras layer, Keras 3 layer) whose weights to copy

    # --- graph walk ---
    @staticmethod
    def graph_of(model):
        """The functional graph of a functional or built Sequential model."""
        if isinstance(model, keras.Sequential):
            graph = getattr(model, "_functional", None)
            if graph is None:
                raise ValueError(
                    "`model` is an unbuilt Sequential model; build it (call it on "
                    f"data or give it an Input) first. Received: model={model.name!r}"
                )
            return graph
        return model

    def run_graph(self, graph, inputs, prefix=""):
        """Replays `graph` on tf_keras `inputs`; returns `{id(KerasTensor): tensor}`."""
        tensors = {id(k): v for k, v in zip(graph.inputs, inputs)}
        for depth in sorted(graph._nodes_by_depth, reverse=True):
            for node in graph._nodes_by_depth[depth]:
                if node.operation is None or node.is_input:
                    continue
                if any(id(x) not in tensors for x in node.input_tensors):
                    continue
                args, kwargs = node.arguments.fill_in(tensors)
                outputs = self.convert(node.operation, args, kwargs, prefix)
                flat = outputs if isinstance(outputs, (list, tuple)) else [outputs]
                for k3, tk in zip(node.outputs, flat):
                    tensors[id(k3)] = tk
        return tensors

    def unique(self, name):
        if name in self.names:
            raise ValueError(
                f"The tf_keras twin would have two layers named {name!r} (a nested "
                "model reuses a name of the outer model). Rename one of them."
            )
        self.names.add(name)
        return name

    def unsupported(self, layer, why=""):
        raise ValueError(
            f"The tfmot engine cannot translate layer {layer.name!r} of type "
            f"{type(layer).__name__} to tf_keras{why}. It supports this package's "
            "layers (InvertedResidual, SqueezeExcite, EfficientLastStage, HardSwish, "
            "HardSigmoid) and Conv2D, DepthwiseConv2D, BatchNormalization, ReLU, "
            "Activation, Add, Multiply, Concatenate, pooling, Dense, Dropout, "
            "Flatten, Reshape, Rescaling, ZeroPadding2D and nested functional "
            "models. Use `engine='keras'`, or build a tf_keras model yourself and "
            "annotate it with `quantize_scope()` and this module's QuantizeConfigs."
        )

    # --- one layer ---
    def convert(self, layer, args, kwargs, prefix=""):
        name = prefix + layer.name
        extra = {k: v for k, v in kwargs.items() if k != "training" and v is not None}
        if extra:
            self.unsupported(layer, f" (it is called with arguments {sorted(extra)})")
        x = args[0] if len(args) == 1 else list(args)
        if isinstance(layer, keras.Model):
            _check_model(layer)
            graph = self.graph_of(layer)
            inputs = x if isinstance(x, (list, tuple)) else [x]
            tensors = self.run_graph(graph, inputs, prefix)
            outputs = [tensors[id(t)] for t in graph.outputs]
            return outputs if len(outputs) > 1 else outputs[0]
        if isinstance(layer, InvertedResidual):
            return self.inverted_residual(layer, x, name)
        if isinstance(layer, SqueezeExcite):
            return self.squeeze_excite(layer, x, name)
        if isinstance(layer, EfficientLastStage):
            return self.last_stage(layer, x, name)
        if not isinstance(layer, keras.layers.Layer):
            self.unsupported(layer, " (an operation, not a layer)")
        return self.simple(layer, name)(x)

    def simple(self, layer, name):
        """A fresh tf_keras layer equal to the Keras 3 `layer` (weights copied later)."""
        L = self.tfk.layers
        config = layer.get_config()
        name = self.unique(name)
        if isinstance(layer, HardSwish):
            return self.objects["TFKerasHardSwish"](form=self.hard_swish, name=name)
        if isinstance(layer, HardSigmoid):
            return self.objects["TFKerasHardSigmoid"](name=name)
        if config.get("data_format", "channels_last") != "channels_last":
            self.unsupported(layer, " (channels_first)")
        kind = type(layer)
        if kind is keras.layers.Conv2D:
            if config["groups"] != 1:
                self.unsupported(layer, " (grouped convolution)")
            new = L.Conv2D(
                config["filters"], config["kernel_size"], strides=config["strides"],
                padding=config["padding"], dilation_rate=config["dilation_rate"],
                use_bias=config["use_bias"], activation=self.activation(layer, config),
                name=name,
            )
        elif kind is keras.layers.DepthwiseConv2D:
            new = L.DepthwiseConv2D(
                config["kernel_size"], strides=config["strides"],
                padding=config["padding"], depth_multiplier=config["depth_multiplier"],
                dilation_rate=config["dilation_rate"], use_bias=config["use_bias"],
                activation=self.activation(layer, config), name=name,
            )
        elif kind is keras.layers.Dense:
            new = L.Dense(
                config["units"], use_bias=config["use_bias"],
                activation=self.activation(layer, config, allow=("softmax", "sigmoid")),
                name=name,
            )
        elif kind is keras.layers.BatchNormalization:
            if config["axis"] not in (-1, 3):
                self.unsupported(layer, f" (axis={config['axis']})")
            new = L.BatchNormalization(
                axis=-1, momentum=config["momentum"], epsilon=config["epsilon"],
                center=config["center"], scale=config["scale"], name=name,
            )
        elif kind is keras.layers.ReLU:
            new = L.ReLU(
                max_value=config["max_value"], negative_slope=config["negative_slope"],
                threshold=config["threshold"], name=name,
            )
        elif kind is keras.layers.Activation:
            activation = config["activation"]
            if activation in ("hard_swish", "hard_silu"):
                return self.objects["TFKerasHardSwish"](form=self.hard_swish, name=name)
            if activation == "hard_sigmoid":  # Keras 3's is the paper's relu6(x+3)/6
                return self.objects["TFKerasHardSigmoid"](name=name)
            new = L.Activation(
                self.activation(layer, config, allow=("softmax", "sigmoid")), name=name
            )
        elif kind is keras.layers.Softmax:
            new = L.Softmax(axis=config["axis"], name=name)
        elif kind is keras.layers.Add:
            new = L.Add(name=name)
        elif kind is keras.layers.Multiply:
            new = L.Multiply(name=name)
        elif kind is keras.layers.Concatenate:
            new = L.Concatenate(axis=config["axis"], name=name)
        elif kind is keras.layers.GlobalAveragePooling2D:
            new = L.GlobalAveragePooling2D(keepdims=config["keepdims"], name=name)
        elif kind is keras.layers.GlobalMaxPooling2D:
            new = L.GlobalMaxPooling2D(keepdims=config["keepdims"], name=name)
        elif kind in (keras.layers.AveragePooling2D, keras.layers.MaxPooling2D):
            cls = L.AveragePooling2D if kind is keras.layers.AveragePooling2D else L.MaxPooling2D
            new = cls(config["pool_size"], strides=config["strides"],
                      padding=config["padding"], name=name)
        elif kind is keras.layers.Dropout:
            new = L.Dropout(config["rate"], name=name)
        elif kind is keras.layers.Flatten:
            new = L.Flatten(name=name)
        elif kind is keras.layers.Reshape:
            new = L.Reshape(config["target_shape"], name=name)
        elif kind is keras.layers.Rescaling:
            scale, offset = config["scale"], config["offset"]
            if not all(isinstance(v, (int, float)) for v in (scale, offset)):
                self.unsupported(layer, " (per-channel scale or offset)")
            new = self.objects["TFKerasRescaling"](scale, offset, name=name)
        elif kind is keras.layers.ZeroPadding2D:
            new = L.ZeroPadding2D(config["padding"], name=name)
        elif kind is keras.layers.Identity:
            new = L.Activation("linear", name=name)
        else:
            self.unsupported(layer)
        if layer.weights:
            self.copies.append((new, layer))
        return new

    def activation(self, layer, config, allow=()):
        activation = config.get("activation", "linear")
        if activation is None:
            return "linear"
        if isinstance(activation, str) and activation in _PLAIN_ACTIVATIONS + allow:
            return activation
        self.unsupported(
            layer,
            f" (activation={activation!r}; use a separate HardSwish/ReLU layer)",
        )

    # --- composites: the same call order as their `call` ---
    def sub(self, layer, x, name):
        if isinstance(layer, SqueezeExcite):
            return self.squeeze_excite(layer, x, name)
        return self.simple(layer, name)(x)

    def inverted_residual(self, block, inputs, name):
        x = inputs
        if block.expand is not None:
            x = self.sub(block.expand, x, f"{name}/expand")
            x = self.sub(block.expand_bn, x, f"{name}/expand_bn")
            x = self.sub(block.expand_activation, x, f"{name}/expand_activation")
        expanded = x
        x = self.sub(block.depthwise, x, f"{name}/depthwise")
        x = self.sub(block.depthwise_bn, x, f"{name}/depthwise_bn")
        x = self.sub(block.depthwise_activation, x, f"{name}/depthwise_activation")
        if block.squeeze_excite is not None:
            x = self.squeeze_excite(block.squeeze_excite, x, f"{name}/squeeze_excite")
        x = self.sub(block.project, x, f"{name}/project")
        x = self.sub(block.project_bn, x, f"{name}/project_bn")
        if block.use_residual:
            x = self.simple(block.add, f"{name}/add")([inputs, x])
        if block.expansion_output:
            return x, expanded
        return x

    def squeeze_excite(self, se, inputs, name):
        s = self.sub(se.pool, inputs, f"{name}/pool")
        s = self.sub(se.reduce, s, f"{name}/reduce")
        s = self.sub(se.reduce_activation, s, f"{name}/relu")
        s = self.sub(se.expand, s, f"{name}/expand")
        s = self.sub(se.gate, s, f"{name}/hard_sigmoid")
        return self.simple(se.multiply, f"{name}/multiply")([inputs, s])

    def last_stage(self, stage, inputs, name):
        x = self.sub(stage.conv, inputs, f"{name}/conv")
        x = self.sub(stage.conv_bn, x, f"{name}/conv_bn")
        x = self.sub(stage.conv_activation, x, f"{name}/conv_activation")
        if stage.last_point_filters is None:
            return x
        x = self.sub(stage.pool, x, f"{name}/pool")
        x = self.sub(stage.head_conv, x, f"{name}/head_conv")
        x = self.sub(stage.head_activation, x, f"{name}/head_activation")
        return self.sub(stage.dropout, x, f"{name}/dropout")


def _check_model(model):
    if not isinstance(model, keras.Model):
        raise TypeError(
            "`model` must be a Keras 3 functional `keras.Model` (an application, a "
            "MobileNetV3Backbone-based model or your own functional model). "
            f"Received: model of type {type(model).__name__}"
        )
    is_functional = isinstance(model, keras.Sequential) or (
        hasattr(model, "_nodes_by_depth") and getattr(model, "inputs", None)
    )
    if not is_functional:
        raise ValueError(
            "`model` must be a functional or Sequential Keras 3 model; a subclassed "
            "model has no graph to translate. Received: model "
            f"{model.name!r} of type {type(model).__name__}"
        )


def build_tf_keras_twin(model, hard_swish="op"):
    """Builds the flat tf_keras twin of a float Keras 3 model, weights copied.

    The twin computes the same function in float (max abs difference ~1e-6;
    with `hard_swish="elementwise"` each hard-swish's gate is also rounded to
    steps of 1/255, as in the int8 file):
    this package's composite layers are flattened into top-level tf_keras
    layers named `"{block}/{sublayer}"` (`"expanded_conv_3/depthwise_bn"`,
    `"expanded_conv_3/squeeze_excite/expand"`), hard-swish and hard-sigmoid
    become `TFKerasHardSwish` / `TFKerasHardSigmoid`, other layers keep
    their names. It is the model `quantize_model_tfmot` quantizes.

    Args:
        model: a functional (or built Sequential) Keras 3 model built from
            this package's layers and common Keras layers.
        hard_swish: `form` of every `TFKerasHardSwish`: `"op"` or
            `"elementwise"` (see `quantize_model_tfmot`). Defaults to `"op"`.

    Returns:
        A tf_keras functional model with `model`'s weights.

    Raises:
        ValueError: `model` contains a layer the engine cannot translate
            (the message names it) or is a subclassed model.
        ImportError: tfmot or tf_keras is not installed (extra `qat`).
    """
    _check_model(model)
    _check_hard_swish_form(hard_swish)
    tfk, _ = _import_tfmot()
    builder = _TwinBuilder(tfk, hard_swish)
    graph = builder.graph_of(model)
    inputs = []
    for tensor in graph.inputs:
        input_layer = tensor._keras_history.operation
        inputs.append(
            tfk.Input(
                shape=tuple(tensor.shape[1:]),
                dtype=tensor.dtype,
                name=builder.unique(input_layer.name),
            )
        )
    tensors = builder.run_graph(graph, inputs)
    outputs = keras.tree.map_structure(lambda t: tensors[id(t)], graph.output)
    twin = tfk.Model(inputs if len(inputs) > 1 else inputs[0], outputs, name=model.name)
    for new, old in builder.copies:
        _copy_weights(old, new)
    return twin


def _copy_weights(source, target):
    """Copies a Keras 3 layer's weights into its tf_keras twin, by name."""
    values = {}
    for weight in source.weights:
        short = weight.path.split("/")[-1]
        if short == "kernel" and isinstance(source, keras.layers.DepthwiseConv2D):
            short = "depthwise_kernel"
        values[short] = keras.ops.convert_to_numpy(weight)
    for weight in target.weights:
        short = weight.name.split("/")[-1].split(":")[0]
        if short not in values or tuple(weight.shape) != values[short].shape:
            raise ValueError(
                f"Cannot copy the weights of layer {source.name!r} into its tf_keras "
                f"twin: no match for {short!r} {tuple(weight.shape)} among "
                f"{ {k: v.shape for k, v in values.items()} }."
            )
        weight.assign(values.pop(short))
    if values:
        raise ValueError(
            f"Layer {source.name!r} has weights its tf_keras twin lacks: {sorted(values)}"
        )


# === QAT ===


def _consumers(model):
    """Layer name -> names of the layers that take its output (from the config)."""
    consumers = {}
    for layer_config in model.get_config()["layers"]:
        for node in layer_config.get("inbound_nodes", []):
            for inbound in _inbound_names(node):
                consumers.setdefault(inbound, []).append(layer_config["name"])
    return consumers


def _inbound_names(node):
    # tf_keras serializes a node as [[name, node_index, tensor_index, kwargs], ...]
    # or, for the new format, as {"args": ..., "kwargs": ...} with keras_history.
    names = []

    def visit(item):
        if isinstance(item, dict):
            history = item.get("config", {}).get("keras_history") if "config" in item else None
            if history:
                names.append(history[0])
            for value in item.values():
                visit(value)
        elif isinstance(item, (list, tuple)):
            if len(item) >= 3 and isinstance(item[0], str) and isinstance(item[1], int):
                names.append(item[0])
            else:
                for value in item:
                    visit(value)

    visit(node)
    return names


def _annotate(twin, range_momentum):
    tfk, tfmot = _import_tfmot()
    objects = _objects()
    registry = objects["MobileNetV3QuantizeRegistry"](range_momentum)
    consumers = _consumers(twin)
    producers = {}
    for source, users in consumers.items():
        for user in users:
            producers.setdefault(user, []).append(source)
    by_name = {layer.name: layer for layer in twin.layers}
    annotate = tfmot.quantization.keras.quantize_annotate_layer

    def gate_conv(layer):
        users = consumers.get(layer.name, [])
        return (
            type(layer) is tfk.layers.Conv2D
            and layer.get_config()["activation"] == "linear"
            and len(users) == 1
            and isinstance(by_name[users[0]], objects["TFKerasHardSigmoid"])
        )

    def clone(layer):
        if isinstance(layer, tfk.layers.InputLayer):
            return layer
        if gate_conv(layer):
            return annotate(layer, objects["GateConvQuantizeConfig"](range_momentum))
        if isinstance(layer, tfk.layers.BatchNormalization):
            # tfmot folds a batch norm into the convolution before it.
            sources = [by_name[n] for n in producers.get(layer.name, [])]
            if len(sources) != 1 or type(sources[0]) not in (
                tfk.layers.Conv2D, tfk.layers.DepthwiseConv2D
            ):
                raise ValueError(
                    f"Batch norm layer {layer.name!r} does not follow a Conv2D or "
                    "DepthwiseConv2D, so tfmot cannot fold it; the tfmot engine "
                    "supports batch norms only right after a convolution."
                )
            return annotate(layer)
        if not registry.supports(layer):
            raise ValueError(
                f"The tfmot engine has no QuantizeConfig for layer {layer.name!r} of "
                f"type {type(layer).__name__}."
            )
        return annotate(layer)

    with quantize_scope():
        return tfk.models.clone_model(twin, clone_function=clone)


def quantize_model_tfmot(model, range_momentum=0.99, freeze_batch_norm=True, hard_swish="op"):
    """Returns a tfmot QAT tf_keras model of a float Keras 3 model.

    Builds the flat tf_keras twin (`build_tf_keras_twin`, weights copied),
    annotates every layer, the SE gate convolutions with
    `GateConvQuantizeConfig`, and applies
    `tfmot.quantization.keras.quantize_apply` with
    `MobileNetV3QuantizeScheme` (tfmot's transforms, this package's
    QuantizeConfigs). See the module docstring for the placement rules and
    for saving/restoring (TF checkpoints).

    Train it like any tf_keras model (a tf_keras optimizer,
    `jit_compile=False` on CPU), then export it with
    `mnv3_layers.quantization.export_tflite(qat, path, quantization="int8")`.
    Its activation ranges are set by the first training batch: train at
    least one step before exporting.

    Args:
        model: a float Keras 3 functional model (an application, a
            `MobileNetV3Backbone`-based model or a functional model built
            from this package's layers and common Keras layers), or a
            tf_keras model (e.g. from `build_tf_keras_twin`).
        range_momentum: moving-average momentum of the activation ranges
            (`FirstBatchMovingAverageQuantizer`), in [0, 1).
            Defaults to `0.99`, as the Keras engine.
        freeze_batch_norm: run the batch norms in inference mode during QAT
            (moving statistics, gamma and beta frozen: `trainable=False` on
            each batch norm), the usual choice when fine-tuning a trained
            float model and the Keras engine's behaviour (it folds batch
            norms into the convolutions with frozen statistics). With
            `False`, tfmot's default: batch statistics in training, moving
            statistics updated. Defaults to `True`.
        hard_swish: `"op"` (one int8 `HARD_SWISH` op per hard-swish) or
            `"elementwise"` (int8 `ADD`, `MUL`, `MUL`, which LiteRT's XNNPACK
            delegate runs; it does not take an int8 `HARD_SWISH`), as the
            Keras engine's option. For a tf_keras `model`, its own
            `TFKerasHardSwish` layers' `form` decides and this must stay
            `"op"`. Defaults to `"op"`.

    Returns:
        A tf_keras `Model` of tfmot `QuantizeWrapperV2` layers, starting
        from `model`'s float weights (`model` itself is not changed).

    Raises:
        ValueError: `model` contains a layer the engine cannot translate
            (the message names it), or a bad `range_momentum`.
        TypeError: `model` is not a Keras model.
        ImportError: tfmot or tf_keras is missing
            (`pip install "mnv3-layers[qat]"`).

    Example:

    ```python
    import tf_keras
    from mnv3_layers.applications import MobileNetV3Small
    from mnv3_layers.quantization import export_tflite, quantize_model

    float_model = MobileNetV3Small(input_shape=(224, 224, 3), classes=1000)
    qat = quantize_model(float_model, engine="tfmot")
    qat.compile(tf_keras.optimizers.Adam(1e-5),
                "sparse_categorical_crossentropy", jit_compile=False)
    qat.fit(images, labels, epochs=1)
    export_tflite(qat, "model_int8.tflite", quantization="int8", int8_io=True)
    ```
    """
    if (
        isinstance(range_momentum, bool)
        or not isinstance(range_momentum, (int, float))
        or not 0.0 <= range_momentum < 1.0
    ):
        raise ValueError(
            "`range_momentum` must be a number in [0, 1). "
            f"Received: range_momentum={range_momentum!r}"
        )
    if not isinstance(freeze_batch_norm, bool):
        raise TypeError(
            "`freeze_batch_norm` must be a bool. "
            f"Received: freeze_batch_norm={freeze_batch_norm!r}"
        )
    _check_hard_swish_form(hard_swish)
    tfk, tfmot = _import_tfmot()
    if isinstance(model, tfk.Model):
        if hard_swish != "op":
            raise ValueError(
                "`hard_swish` applies when the twin is built from a Keras 3 model; for a "
                "tf_keras model, set `form=\"elementwise\"` on its TFKerasHardSwish layers "
                "(or build it with `build_tf_keras_twin(model, hard_swish=...)`). "
                f"Received: hard_swish={hard_swish!r} with tf_keras model {model.name!r}"
            )
        if not model._is_graph_network:
            raise ValueError(
                "`model` must be a functional tf_keras model; a subclassed model has "
                f"no graph to annotate. Received: model {model.name!r}"
            )
        twin = model
    else:
        twin = build_tf_keras_twin(model, hard_swish)
    annotated = _annotate(twin, range_momentum)
    annotated.set_weights(twin.get_weights())
    scheme = _objects()["MobileNetV3QuantizeScheme"](range_momentum)
    with quantize_scope(), _autograph_off():
        qat = tfmot.quantization.keras.quantize_apply(annotated, scheme=scheme)
    if freeze_batch_norm:
        for layer in qat.layers:
            if isinstance(getattr(layer, "layer", None), tfk.layers.BatchNormalization):
                layer.layer.trainable = False
    return qat


@contextlib.contextmanager
def _autograph_off():
    """Builds layers without AutoGraph conversion (about a third faster here).

    tf_keras converts every custom layer's `call` with AutoGraph when it is
    first called on symbolic inputs; tfmot's wrappers and this module's
    layers have no tensor-dependent Python control flow, so plain tracing
    builds the same graph. Training and export still run under AutoGraph.
    """
    try:
        from tensorflow.python.autograph.core import ag_ctx
    except ImportError:  # internal module moved: build with AutoGraph
        yield
        return
    with ag_ctx.ControlStatusCtx(status=ag_ctx.Status.DISABLED):
        yield
