"""The one walk of a Keras 3 model's graph, for both QAT engines.

`walk(model)` returns the `Op`s of a functional (or built `Sequential`) model
in call order, one per primitive layer call, with this package's composite
layers and nested models opened. It is the one place that reads private Keras
graph internals.

Example:

>>> import keras
>>> from mnv3_layers import InvertedResidual
>>> from mnv3_layers.quantization import _graph
>>> inputs = keras.Input((8, 8, 16))
>>> model = keras.Model(inputs, InvertedResidual(16, name="block")(inputs))
>>> ["/".join(op.path) for op in _graph.walk(model).ops][:3]
['block/depthwise', 'block/depthwise_bn', 'block/depthwise_activation']
"""

import dataclasses

import keras

from mnv3_layers.layers.efficient_last_stage import EfficientLastStage
from mnv3_layers.layers.inverted_residual import InvertedResidual
from mnv3_layers.layers.squeeze_excite import SqueezeExcite


@dataclasses.dataclass(eq=False)
class Value:
    """A tensor of the flat graph (`producer` is None for a model input)."""

    producer: object = None
    consumers: list = dataclasses.field(default_factory=list)


@dataclasses.dataclass(eq=False)
class Op:
    """One primitive op of the flat graph, in call order.

    `kind` is `"layer"` (call `layer`) or, for what a composite computes
    without a layer of its own (LR-ASPP), `"gap"` (keep-dims global average
    pool), `"multiply"`, `"resize_like"` or `"add"` (`layer` is None).
    `path` names it (`("expanded_conv_3", "squeeze_excite", "relu")`);
    `output_path` is the outermost composite whose output it computes (else
    `path`); `source` is the layer called in the model's graph.
    """

    kind: str
    layer: object
    inputs: list
    outputs: list
    path: tuple
    source: object
    output_path: tuple = None


@dataclasses.dataclass
class Graph:
    """The walk of a model: its input tensors and `Value`s, ops and outputs."""

    input_tensors: list
    inputs: list
    ops: list
    outputs: object  # the model's output structure, of `Value`s
    input_struct: object = None  # the model's input structure (None: Sequential)

    def pack_inputs(self, tensors):
        """`tensors` (one per input) in the model's input structure."""
        if self.input_struct is None or len(tensors) == 1:
            return tensors[0] if len(tensors) == 1 else list(tensors)
        return keras.tree.pack_sequence_as(self.input_struct, list(tensors))


def input_name(tensor):
    """Name of the `InputLayer` of a model input tensor (or None)."""
    history = getattr(tensor, "_keras_history", None)
    return getattr(getattr(history, "operation", None), "name", None)


def functional_graph(model):
    """The functional graph of a functional or built Sequential model, or None."""
    if isinstance(model, keras.Sequential):
        return getattr(model, "_functional", None)
    if hasattr(model, "_nodes_by_depth") and getattr(model, "inputs", None):
        return model
    return None


def all_layers(model):
    """Every layer of `model`, nested models and wrapped layers included."""
    seen = set()
    stack = list(getattr(model, "layers", []))
    while stack:
        layer = stack.pop()
        if id(layer) in seen:
            continue
        seen.add(id(layer))
        yield layer
        stack.extend(getattr(layer, "layers", None) or [])
        inner = getattr(layer, "layer", None)
        if inner is not None and not isinstance(inner, (list, tuple)):
            stack.append(inner)


def _default_unsupported(layer, why):
    return ValueError(f"Cannot walk layer {layer.name!r} ({type(layer).__name__}): {why}.")


def walk(model, unsupported=_default_unsupported, composites=None, check_call=None):
    """Flattens a functional or built Sequential Keras 3 model into `Op`s.

    Args:
        model: the model (the caller checks it is functional).
        unsupported: `unsupported(layer, why)` returns the error to raise for
            what cannot be walked. Defaults to a plain `ValueError`.
        composites: the composite classes to open (others become one
            `"layer"` op). Defaults to all of them.
        check_call: optional `check_call(layer, kwargs)` run on every call in
            a model's graph (kwargs without `training` and None values).

    Returns:
        A `Graph`.
    """
    walker = _Walker(unsupported, composites, check_call)
    graph = functional_graph(model)
    if graph is None:
        raise walker.unsupported(model, _NOT_FUNCTIONAL)
    inputs = [Value() for _ in graph.inputs]
    outputs = walker.model(model, inputs)
    struct = None if isinstance(model, keras.Sequential) else model._inputs_struct
    return Graph(list(graph.inputs), inputs, walker.ops, outputs, struct)


_NOT_FUNCTIONAL = (
    "only functional and Sequential models can be quantized (a subclassed model's call "
    "cannot be read, an unbuilt Sequential model has no graph)"
)


class _Walker:
    def __init__(self, unsupported, composites, check_call):
        self.unsupported = unsupported
        self.openers = _openers()
        if composites is not None:
            self.openers = {k: v for k, v in self.openers.items() if k in composites}
        self.check_call = check_call
        self.ops = []
        self.calls = set()

    def op(self, layer, inputs, path, source, kind="layer", num_outputs=1):
        op = Op(kind, layer, list(inputs), [], tuple(path), source)
        op.output_path = op.path
        op.outputs = [Value(producer=op) for _ in range(num_outputs)]
        for value in op.inputs:
            value.consumers.append(op)
        self.ops.append(op)
        return op.outputs[0] if num_outputs == 1 else tuple(op.outputs)

    def model(self, model, inputs):
        graph = functional_graph(model)
        if graph is None:
            raise self.unsupported(model, _NOT_FUNCTIONAL)

        def call_fn(layer, *args, **kwargs):
            return self.call(layer, args, kwargs)

        return graph._run_through_graph(inputs, operation_fn=lambda op: op, call_fn=call_fn)

    def call(self, layer, args, kwargs):
        """One call in a model's graph."""
        if self.check_call is not None:
            extra = {k: v for k, v in kwargs.items() if k != "training" and v is not None}
            self.check_call(layer, extra)
        if id(layer) in self.calls:
            raise self.unsupported(
                layer,
                "the layer is called more than once (shared weights), which the "
                "flattened QAT model cannot share",
            )
        self.calls.add(id(layer))
        values = [v for v in keras.tree.flatten(args) if isinstance(v, Value)]
        if isinstance(layer, keras.Model):
            return self.model(layer, values)
        opener = self.openers.get(type(layer))
        if opener is not None:
            return opener(self, layer, values, (layer.name,), layer)
        return self.op(layer, values, (layer.name,), layer)

    def sub(self, layer, x, path, source):
        """A sublayer call inside a composite."""
        if type(layer) is SqueezeExcite:
            return self.squeeze_excite(layer, [x], path + (layer.name,), source)
        return self.op(layer, [x], path + (layer.name,), source)

    # === Composites: the call order of their `call` ===

    def inverted_residual(self, block, values, path, source):
        inputs = x = values[0]
        if block.expand is not None:
            for layer in (block.expand, block.expand_bn, block.expand_activation):
                x = self.sub(layer, x, path, source)
        expanded = x
        for layer in (block.depthwise, block.depthwise_bn, block.depthwise_activation,
                      block.squeeze_excite, block.project, block.project_bn):
            if layer is not None:
                x = self.sub(layer, x, path, source)
        if block.use_residual:
            x = self.op(block.add, [inputs, x], path + (block.add.name,), source)
        x.producer.output_path = path  # The block's output keeps the block's name.
        if block.expansion_output:
            return x, expanded
        return x

    def squeeze_excite(self, se, values, path, source):
        x = values[0]
        s = x
        for layer in (se.pool, se.reduce, se.reduce_activation, se.expand, se.gate):
            s = self.sub(layer, s, path, source)
        out = self.op(se.multiply, [x, s], path + (se.multiply.name,), source)
        out.producer.output_path = path
        return out

    def last_stage(self, stage, values, path, source):
        x = values[0]
        layers = [stage.conv, stage.conv_bn, stage.conv_activation]
        if stage.last_point_filters is not None:
            layers += [stage.pool, stage.head_conv, stage.head_activation, stage.dropout]
        for layer in layers:
            x = self.sub(layer, x, path, source)
        x.producer.output_path = path
        return x

    def lraspp_head(self, head, values, path, source):
        """`LRASPPHead` with global pooling (its 1x1 gate broadcasts)."""
        if head.pool_size is not None:
            raise self.unsupported(
                head,
                "only global pooling of the gate branch is supported (LRASPPSegmenter "
                f"pooling='global'); its windowed average has no int8 op here. Received: "
                f"pool_size={head.pool_size!r}",
            )
        low, high = values
        main = high
        for layer in (head.main_conv, head.main_bn, head.main_activation):
            main = self.sub(layer, main, path, source)
        gate = self.op(None, [high], path + ("gate_pool",), source, kind="gap")
        for layer in (head.gate_conv, head.gate_activation):
            gate = self.sub(layer, gate, path, source)
        scaled = self.op(None, [main, gate], path + ("gate_multiply",), source, "multiply")
        high_logits = self.sub(head.high_classifier, scaled, path, source)
        high_logits = self.op(None, [high_logits, low], path + ("high_resize",), source,
                              "resize_like")
        low_logits = self.sub(head.low_classifier, low, path, source)
        out = self.op(None, [high_logits, low_logits], path + ("add",), source, "add")
        out.producer.output_path = path
        return out


def _openers():
    """Composite class -> the `_Walker` method that opens it."""
    openers = {
        InvertedResidual: _Walker.inverted_residual,
        SqueezeExcite: _Walker.squeeze_excite,
        EfficientLastStage: _Walker.last_stage,
    }
    try:
        from mnv3_layers.applications.lraspp import LRASPPHead
    except ImportError:  # pragma: no cover - the applications ship with the package
        return openers
    openers[LRASPPHead] = _Walker.lraspp_head
    return openers


# === tf_keras graphs (the tfmot engine's twin) ===


def tf_keras_consumers(model):
    """Layer name -> names of the layers that take its output (tf_keras model)."""
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
