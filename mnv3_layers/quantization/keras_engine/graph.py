"""The ops the Keras engine quantizes, classified from the shared graph walk."""

import dataclasses

import keras

from mnv3_layers.layers.hard_sigmoid import HardSigmoid
from mnv3_layers.layers.hard_swish import HardSwish
from mnv3_layers.layers.ops import hard_swish
from mnv3_layers.quantization import _graph
from mnv3_layers.quantization.keras_engine.quantizers import ACTIVATIONS


@dataclasses.dataclass(eq=False)
class _Value:
    """A tensor of the flattened graph."""

    producer: object = None  # _Op, or None for a model input
    consumers: list = dataclasses.field(default_factory=list)
    input_tensor: object = None  # the original keras.Input for model inputs


@dataclasses.dataclass(eq=False)
class _Op:
    """A primitive op the engine quantizes (`kind`: conv, bn, activation, ...)."""

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
    """The walk's ops (`quantization._graph.walk`) as the ops this engine quantizes."""

    def __init__(self, model):
        walked = _graph.walk(model, _unsupported)
        self.ops = []
        self.inputs = [_Value(input_tensor=t) for t in walked.input_tensors]
        values = {id(w): v for w, v in zip(walked.inputs, self.inputs)}
        for op in walked.ops:
            inputs = [values[id(v)] for v in op.inputs]
            values[id(op.outputs[0])] = self.classify(op, inputs, "_".join(op.output_path))
        self.outputs = keras.tree.map_structure(lambda v: values[id(v)], walked.outputs)
        self.pack_inputs = walked.pack_inputs

    def op(self, kind, name, layer, inputs, **attrs):
        op = _Op(kind, name, layer, list(inputs), [], attrs)
        op.outputs = [_Value(producer=op)]
        for value in op.inputs:
            value.consumers.append(op)
        self.ops.append(op)
        return op.outputs[0]

    def classify(self, op, values, name):
        if op.kind == "gap":
            return self.op("gap", name, None, values, keepdims=True)
        if op.kind != "layer":  # multiply, add, resize_like
            return self.op(op.kind, name, None, values)
        lraspp = _lraspp_classes()
        if lraspp is not None and type(op.layer) is lraspp[1]:
            return self.op("resize_like", name, op.layer, values)
        return self.leaf(op.layer, values, name)

    def leaf(self, layer, values, name):
        cls = type(layer)
        if not values:
            raise _unsupported(layer, "it has no tensor input")
        x = values[0]
        if cls in (keras.layers.Conv2D, keras.layers.DepthwiseConv2D):
            return self.conv(layer, x, name)
        if cls is keras.layers.BatchNormalization:
            if layer.axis not in (-1, 3) and list(getattr(layer, "axis", [])) not in ([-1], [3]):
                raise _unsupported(layer, "only batch norm over the last axis is supported")
            return self.op("bn", name, layer, [x])
        if cls is keras.layers.Dense:
            return self.op("dense", name, layer, [x],
                           activation=_activation_name(layer.activation, layer))
        activation = _standalone_activation(layer)
        if activation == "linear":
            return x
        if activation is not None:
            return self.op("activation", name, layer, [x], activation=activation)
        if cls in _MERGE_KINDS:
            return self.op(_MERGE_KINDS[cls], name, layer, values)
        if cls is keras.layers.GlobalAveragePooling2D:
            if layer.data_format != "channels_last":
                raise _unsupported(layer, "only channels_last pooling is supported")
            return self.op("gap", name, layer, [x])
        if cls is keras.layers.Rescaling:
            return self.op("rescaling", name, layer, [x])
        if cls in _PASS_THROUGH:
            return self.op("pass", name, layer, [x])
        raise _unsupported(layer)

    def conv(self, layer, x, name):
        if layer.data_format != "channels_last":
            raise _unsupported(layer, "only channels_last convolutions are supported")
        if type(layer) is keras.layers.DepthwiseConv2D:
            kind = "depthwise"
        elif layer.groups != 1:
            raise _unsupported(layer, "grouped convolutions (groups > 1) are not supported")
        else:
            kind = "conv"
        return self.op(kind, name, layer, [x],
                       activation=_activation_name(layer.activation, layer))


_MERGE_KINDS = {
    keras.layers.Add: "add",
    keras.layers.Multiply: "multiply",
    keras.layers.Concatenate: "concat",
}


def _standalone_activation(layer):
    """The activation a ReLU/HardSwish/HardSigmoid/Activation/Softmax layer runs, or None."""
    cls = type(layer)
    if cls is keras.layers.ReLU:
        max_value = None if layer.max_value is None else float(layer.max_value)
        if float(layer.negative_slope) != 0.0 or float(layer.threshold) != 0.0 or (
            max_value not in (None, 6.0)
        ):
            raise _unsupported(
                layer, "only ReLU and ReLU6 (negative_slope=0, threshold=0) are supported"
            )
        return "relu" if max_value is None else "relu6"
    if cls is HardSwish:
        return "hard_swish"
    if cls is HardSigmoid:
        return "hard_sigmoid"
    if cls is keras.layers.Activation:
        return _activation_name(layer.activation, layer)
    if cls is keras.layers.Softmax:
        if layer.axis not in (-1, [-1], (-1,)):
            raise _unsupported(layer, "only softmax over the last axis is supported")
        return "softmax"
    return None


def _lraspp_classes():
    """`(LRASPPHead, ResizeLike)`, or None if the applications are not importable."""
    try:
        from mnv3_layers.applications.lraspp import LRASPPHead, ResizeLike
    except ImportError:  # pragma: no cover - the applications ship with the package
        return None
    return LRASPPHead, ResizeLike
