"""The flat tf_keras twin of a float Keras 3 model (`build_tf_keras_twin`)."""

import keras

from mnv3_layers.layers.efficient_last_stage import EfficientLastStage
from mnv3_layers.layers.hard_sigmoid import HardSigmoid
from mnv3_layers.layers.hard_swish import HardSwish
from mnv3_layers.layers.inverted_residual import InvertedResidual
from mnv3_layers.layers.squeeze_excite import SqueezeExcite
from mnv3_layers.quantization import _graph
from mnv3_layers.quantization.keras_engine.quantizers import _check_hard_swish_form
from mnv3_layers.quantization.tfmot_engine.loader import _import_tfmot, _objects

# The composites the twin opens; LR-ASPP's head (bilinear resizes, broadcast
# gate) has no tf_keras twin and is refused by name.
_COMPOSITES = (InvertedResidual, SqueezeExcite, EfficientLastStage)
_PLAIN_ACTIVATIONS = ("linear", "relu", "relu6")
_SUPPORTED = (
    "It supports this package's layers (InvertedResidual, SqueezeExcite, "
    "EfficientLastStage, HardSwish, HardSigmoid) and Conv2D, DepthwiseConv2D, "
    "BatchNormalization, ReLU, Activation, Add, Multiply, Concatenate, pooling, Dense, "
    "Dropout, Flatten, Reshape, Rescaling, ZeroPadding2D and nested functional models. "
    "Use `engine='keras'`, or build a tf_keras model yourself and annotate it with "
    "`quantize_scope()` and this module's QuantizeConfigs."
)


def _unsupported(layer, why=""):
    why = f" ({why})" if why else ""
    return ValueError(
        f"The tfmot engine cannot translate layer {layer.name!r} of type "
        f"{type(layer).__name__} to tf_keras{why}. {_SUPPORTED}"
    )


def _check_call(layer, kwargs):
    if kwargs:
        raise _unsupported(layer, f"it is called with arguments {sorted(kwargs)}")


def _check_model(model):
    if not isinstance(model, keras.Model):
        raise TypeError(
            "`model` must be a Keras 3 functional `keras.Model` (an application, a "
            "MobileNetV3Backbone-based model or your own functional model). "
            f"Received: model of type {type(model).__name__}"
        )
    if isinstance(model, keras.Sequential) and _graph.functional_graph(model) is None:
        raise ValueError(
            "`model` is an unbuilt Sequential model; build it (call it on "
            f"data or give it an Input) first. Received: model={model.name!r}"
        )
    if _graph.functional_graph(model) is None:
        raise ValueError(
            "`model` must be a functional or Sequential Keras 3 model; a subclassed "
            "model has no graph to translate. Received: model "
            f"{model.name!r} of type {type(model).__name__}"
        )


def build_tf_keras_twin(model, hard_swish="op"):
    """Builds the flat tf_keras twin of a float Keras 3 model, weights copied.

    The twin computes the same float function (with `"elementwise"`, the
    hard-swish gates rounded to steps of 1/255); composite layers become
    top-level layers named `"{block}/{sublayer}"`
    (`"expanded_conv_3/squeeze_excite/expand"`), other layers keep their
    names. It is the model `quantize_model_tfmot` quantizes.

    Args:
        model: a functional (or built Sequential) Keras 3 model of this
            package's layers and common Keras layers.
        hard_swish: `form` of every `TFKerasHardSwish`: `"op"` or
            `"elementwise"`. Defaults to `"op"`.

    Returns:
        A tf_keras functional model with `model`'s weights.

    Raises:
        ValueError: a layer the engine cannot translate, or a subclassed
            model.
        ImportError: tfmot or tf_keras is not installed (extra `qat`).
    """
    _check_model(model)
    _check_hard_swish_form(hard_swish)
    tfk, _ = _import_tfmot()
    graph = _graph.walk(model, _unsupported, composites=_COMPOSITES, check_call=_check_call)
    builder = _TwinBuilder(tfk, hard_swish)
    inputs = [
        tfk.Input(shape=tuple(t.shape[1:]), dtype=t.dtype,
                  name=builder.unique(_graph.input_name(t)))
        for t in graph.input_tensors
    ]
    tensors = {id(value): tensor for value, tensor in zip(graph.inputs, inputs)}
    for op in graph.ops:
        args = [tensors[id(value)] for value in op.inputs]
        tensors[id(op.outputs[0])] = builder.translate(op)(args[0] if len(args) == 1 else args)
    outputs = keras.tree.map_structure(lambda value: tensors[id(value)], graph.outputs)
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


class _TwinBuilder:
    """Creates the tf_keras layer of each op of the walk."""

    def __init__(self, tfk, hard_swish="op"):
        self.tfk = tfk
        self.hard_swish = hard_swish
        self.objects = _objects()
        self.names = set()
        self.copies = []  # (tf_keras layer, Keras 3 layer) whose weights to copy

    def unique(self, name):
        if name in self.names:
            raise ValueError(
                f"The tf_keras twin would have two layers named {name!r} (a nested "
                "model reuses a name of the outer model). Rename one of them."
            )
        self.names.add(name)
        return name

    def translate(self, op):
        """A fresh tf_keras layer for `op` (weights copied after the build)."""
        layer = op.layer
        if op.kind != "layer":  # pragma: no cover - only LR-ASPP's head has these
            raise _unsupported(op.source)
        if not isinstance(layer, keras.layers.Layer):
            raise _unsupported(layer, "an operation, not a layer")
        name = self.unique("/".join(op.path))
        if isinstance(layer, HardSwish):
            return self.objects["TFKerasHardSwish"](form=self.hard_swish, name=name)
        if isinstance(layer, HardSigmoid):
            return self.objects["TFKerasHardSigmoid"](name=name)
        config = layer.get_config()
        if config.get("data_format", "channels_last") != "channels_last":
            raise _unsupported(layer, "channels_first")
        make = _MAKERS.get(type(layer))
        if make is None:
            raise _unsupported(layer)
        new = make(self, layer, config, name)
        if layer.weights:
            self.copies.append((new, layer))
        return new

    def activation(self, layer, config, allow=()):
        activation = config.get("activation", "linear")
        if activation is None:
            return "linear"
        if isinstance(activation, str) and activation in _PLAIN_ACTIVATIONS + allow:
            return activation
        raise _unsupported(
            layer, f"activation={activation!r}; use a separate HardSwish/ReLU layer"
        )


def _conv(builder, layer, config, name):
    if config["groups"] != 1:
        raise _unsupported(layer, "grouped convolution")
    return builder.tfk.layers.Conv2D(
        config["filters"], config["kernel_size"], strides=config["strides"],
        padding=config["padding"], dilation_rate=config["dilation_rate"],
        use_bias=config["use_bias"], activation=builder.activation(layer, config), name=name,
    )


def _depthwise(builder, layer, config, name):
    return builder.tfk.layers.DepthwiseConv2D(
        config["kernel_size"], strides=config["strides"], padding=config["padding"],
        depth_multiplier=config["depth_multiplier"], dilation_rate=config["dilation_rate"],
        use_bias=config["use_bias"], activation=builder.activation(layer, config), name=name,
    )


def _batch_norm(builder, layer, config, name):
    if config["axis"] not in (-1, 3):
        raise _unsupported(layer, f"axis={config['axis']}")
    return builder.tfk.layers.BatchNormalization(
        axis=-1, momentum=config["momentum"], epsilon=config["epsilon"],
        center=config["center"], scale=config["scale"], name=name,
    )


def _activation(builder, layer, config, name):
    activation = config["activation"]
    if activation in ("hard_swish", "hard_silu"):
        return builder.objects["TFKerasHardSwish"](form=builder.hard_swish, name=name)
    if activation == "hard_sigmoid":  # Keras 3's is the paper's relu6(x+3)/6
        return builder.objects["TFKerasHardSigmoid"](name=name)
    allowed = builder.activation(layer, config, allow=("softmax", "sigmoid"))
    return builder.tfk.layers.Activation(allowed, name=name)


def _rescaling(builder, layer, config, name):
    scale, offset = config["scale"], config["offset"]
    if not all(isinstance(v, (int, float)) for v in (scale, offset)):
        raise _unsupported(layer, "per-channel scale or offset")
    return builder.objects["TFKerasRescaling"](scale, offset, name=name)


def _pool(builder, layer, config, name):
    L = builder.tfk.layers
    cls = L.AveragePooling2D if type(layer) is keras.layers.AveragePooling2D else L.MaxPooling2D
    return cls(config["pool_size"], strides=config["strides"], padding=config["padding"],
               name=name)


def _same(tf_name, *keys, **fixed):
    """A maker for a layer whose tf_keras twin takes the same config `keys`."""

    def make(builder, layer, config, name):
        cls = getattr(builder.tfk.layers, tf_name)
        return cls(**{key: config[key] for key in keys}, **fixed, name=name)

    return make


_MAKERS = {
    keras.layers.Conv2D: _conv,
    keras.layers.DepthwiseConv2D: _depthwise,
    keras.layers.BatchNormalization: _batch_norm,
    keras.layers.Activation: _activation,
    keras.layers.Rescaling: _rescaling,
    keras.layers.AveragePooling2D: _pool,
    keras.layers.MaxPooling2D: _pool,
    keras.layers.Dense: lambda b, layer, config, name: b.tfk.layers.Dense(
        config["units"], use_bias=config["use_bias"],
        activation=b.activation(layer, config, allow=("softmax", "sigmoid")), name=name,
    ),
    keras.layers.ReLU: _same("ReLU", "max_value", "negative_slope", "threshold"),
    keras.layers.Softmax: _same("Softmax", "axis"),
    keras.layers.Add: _same("Add"),
    keras.layers.Multiply: _same("Multiply"),
    keras.layers.Concatenate: _same("Concatenate", "axis"),
    keras.layers.GlobalAveragePooling2D: _same("GlobalAveragePooling2D", "keepdims"),
    keras.layers.GlobalMaxPooling2D: _same("GlobalMaxPooling2D", "keepdims"),
    keras.layers.Dropout: _same("Dropout", "rate"),
    keras.layers.Flatten: _same("Flatten"),
    keras.layers.Reshape: _same("Reshape", "target_shape"),
    keras.layers.ZeroPadding2D: _same("ZeroPadding2D", "padding"),
    keras.layers.Identity: lambda b, layer, config, name: b.tfk.layers.Activation(
        "linear", name=name
    ),
}
