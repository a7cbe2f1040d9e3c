"""Fusing the flattened ops and rebuilding them as a QAT functional model."""


import keras

from mnv3_layers.quantization import _graph
from mnv3_layers.quantization.keras_engine.graph import _lraspp_classes, _unsupported
from mnv3_layers.quantization.keras_engine.layers import (
    QuantActivation,
    QuantAdd,
    QuantConcatenate,
    QuantConv,
    QuantDense,
    QuantGlobalAveragePooling,
    QuantMultiply,
    QuantRescaling,
)
from mnv3_layers.quantization.keras_engine.quantizers import (
    _QUANTIZED_INPUT_ACTIVATIONS,
    ActivationQuantizer,
)


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

    def build_inputs(self, values):
        """The QAT model's inputs, each followed by an `ActivationQuantizer`."""
        new_inputs = []
        for value in values:
            tensor = value.input_tensor
            input_name = _graph.input_name(tensor)
            new_input = keras.Input(shape=tuple(tensor.shape[1:]), dtype=tensor.dtype,
                                    name=input_name)
            self.used_names.add(new_input.name)
            new_inputs.append(new_input)
            quantizer = ActivationQuantizer(
                self.range_momentum, name=self.unique(f"{input_name or 'input'}_quantizer")
            )
            self.tensors[id(value)] = quantizer(new_input)
        return new_inputs

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
