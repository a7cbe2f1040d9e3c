"""Flattening a functional model into ops the Keras engine quantizes."""

import dataclasses

import keras

from mnv3_layers.layers.efficient_last_stage import EfficientLastStage
from mnv3_layers.layers.hard_sigmoid import HardSigmoid
from mnv3_layers.layers.hard_swish import HardSwish
from mnv3_layers.layers.inverted_residual import InvertedResidual
from mnv3_layers.layers.ops import hard_swish
from mnv3_layers.layers.squeeze_excite import SqueezeExcite
from mnv3_layers.quantization.keras_engine.quantizers import ACTIVATIONS

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


def _lraspp_classes():
    """`(LRASPPHead, ResizeLike)`, or None if the applications are not importable."""
    try:
        from mnv3_layers.applications.lraspp import LRASPPHead, ResizeLike
    except ImportError:  # pragma: no cover - the applications ship with the package
        return None
    return LRASPPHead, ResizeLike
