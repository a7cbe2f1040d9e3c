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


import keras

from mnv3_layers.quantization.keras_engine.builder import _Builder
from mnv3_layers.quantization.keras_engine.graph import _Graph, _Value
from mnv3_layers.quantization.keras_engine.quantizers import (
    ActivationQuantizer,
    _check_hard_swish_form,
)

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
