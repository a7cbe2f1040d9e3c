"""Keras 3 quantization-aware training (QAT): `quantize_model_keras`.

Layers are grouped the way the TFLite converter fuses ops and each group
becomes one QAT layer with fake-quant where the int8 model has an int8 tensor.

Reference: Jacob et al., 2018, arXiv 1712.05877.
"""

import keras

from mnv3_layers.quantization.keras_engine.builder import _Builder
from mnv3_layers.quantization.keras_engine.graph import _Graph
from mnv3_layers.quantization.keras_engine.quantizers import (
    _check_hard_swish_form,
    _check_range_momentum,
)


def quantize_model_keras(model, range_momentum=0.99, name=None, hard_swish="op"):
    """Returns a Keras 3 quantization-aware-training copy of a float model.

    The copy starts from `model`'s float weights (batch norms folded in),
    trains with `fit`, saves as `.keras` and, after one training step or
    more, exports with `export_tflite(qat, path, quantization="int8")`.
    `model` is not modified.

    Args:
        model: a float functional or `Sequential` Keras 3 model of this
            package's layers, `Conv2D`, `DepthwiseConv2D`,
            `BatchNormalization` (after a convolution), `ReLU`, `Activation`,
            `Softmax`, `Dense`, `Add`, `Multiply`, `Concatenate`,
            `GlobalAveragePooling2D`, `Rescaling` and shape ops.
        range_momentum: momentum of the moving-average activation ranges,
            in [0, 1). Defaults to `0.99`.
        name: name of the QAT model. Defaults to `model.name + "_qat"`.
        hard_swish: `"op"` (one int8 `HARD_SWISH` op) or `"elementwise"`
            (int8 `ADD`, `MUL`, `MUL`; see `benchmarks/README.md`).
            Defaults to `"op"`.

    Returns:
        An uncompiled functional `keras.Model` with `model`'s inputs and
        output structure.

    Raises:
        ValueError: an unsupported or shared layer, a batch norm not after a
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
    range_momentum = _check_arguments(model, range_momentum, name, hard_swish)
    graph = _Graph(model)
    output_values = keras.tree.flatten(graph.outputs)
    builder = _Builder(graph, output_values, range_momentum, hard_swish)
    inputs = builder.build_inputs(graph.inputs)
    builder.build()
    outputs = keras.tree.pack_sequence_as(
        graph.outputs, [builder.tensor(v) for v in output_values]
    )
    qat_model = keras.Model(graph.pack_inputs(inputs), outputs,
                            name=name or f"{model.name}_qat")
    builder.copy_weights()
    return qat_model


def _check_arguments(model, range_momentum, name, hard_swish):
    """Validates `quantize_model_keras`'s arguments; returns `range_momentum`."""
    if not isinstance(model, keras.Model):
        raise TypeError(
            "`model` must be a Keras 3 `keras.Model` (functional or Sequential). "
            f"Received: model of type {type(model).__name__}"
        )
    range_momentum = _check_range_momentum(range_momentum)
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
    return range_momentum
