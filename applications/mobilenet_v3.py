"""MobileNetV3-Large and -Small, drop-in for `keras.applications`.

Also the stem / block / head builders shared with the backbone and the latency
components. Reference: Howard et al., "Searching for MobileNetV3", ICCV 2019.
"""

import numbers
import warnings

import keras

from mnv3_layers.layers._activation import activation_layer
from mnv3_layers._validation import check_bool, check_fraction, check_optional_name
from mnv3_layers.applications import weights as weights_lib
from mnv3_layers.architecture.block_spec import BN_EPSILON, block_name, resolve_architecture
from mnv3_layers.layers.efficient_last_stage import EfficientLastStage
from mnv3_layers.layers.inverted_residual import InvertedResidual

MIN_INPUT_SIZE = 32


def expansion_output_key(index):
    """Key of block `index`'s expansion-output tap (TF-slim's `expansion_output`)."""
    return f"{block_name(index)}/expansion_output"


def build_stem(x, filters, kernel_size, strides, activation, bn_momentum=0.99,
               include_preprocessing=False):
    """Applies the stem: optional `Rescaling`, then Conv2D + BN + activation.

    Layer names: `"rescaling"`, `"conv"`, `"conv_bn"`, `"conv_activation"`.

    Args:
        x: the input tensor (images in [0, 255] when `include_preprocessing`).
        filters: stem output channels.
        kernel_size: stem kernel size.
        strides: stem strides.
        activation: `"relu"` or `"hard_swish"`.
        bn_momentum: batch-norm momentum. Defaults to `0.99`.
        include_preprocessing: rescale from [0, 255] to [-1, 1] first.
            Defaults to `False`.

    Returns:
        The stem activation's output tensor.
    """
    if include_preprocessing:
        x = keras.layers.Rescaling(scale=1.0 / 127.5, offset=-1.0, name="rescaling")(x)
    x = keras.layers.Conv2D(
        filters, kernel_size, strides=strides, padding="same", use_bias=False, name="conv",
    )(x)
    x = keras.layers.BatchNormalization(
        momentum=bn_momentum, epsilon=BN_EPSILON, name="conv_bn"
    )(x)
    return activation_layer(activation, name="conv_activation")(x)


def build_stem_and_blocks(x, arch, bn_momentum=0.99, expansion_output_block=None,
                          include_preprocessing=False):
    """Applies the stem and every bneck block of a `ResolvedArchitecture` to `x`.

    Args:
        x: the input tensor.
        arch: a `ResolvedArchitecture`.
        bn_momentum: batch-norm momentum. Defaults to `0.99`.
        expansion_output_block: index of a block whose expansion output is
            also returned, or `None`. Defaults to `None`.
        include_preprocessing: see `build_stem`. Defaults to `False`.

    Returns:
        A dict, in call order, from layer name (`"conv_activation"`,
        `"expanded_conv"`, `"expanded_conv_1"`, ...) to its output tensor,
        plus `expansion_output_key(i)` for `expansion_output_block=i`.
    """
    stem = arch.stem
    x = build_stem(x, stem.filters, stem.kernel_size, stem.strides, arch.stem_activation,
                   bn_momentum, include_preprocessing)
    outputs = {"conv_activation": x}
    for block in arch.blocks:
        tap = block.index == expansion_output_block
        layer = InvertedResidual(
            block.filters,
            kernel_size=block.kernel_size,
            strides=block.strides,
            expansion=block.expansion,
            se_ratio=block.se_ratio,
            activation=block.activation,
            dilation_rate=block.dilation_rate,
            bn_momentum=bn_momentum,
            bn_epsilon=BN_EPSILON,
            expansion_output=tap,
            name=block_name(block.index),
        )
        if tap:
            x, outputs[expansion_output_key(block.index)] = layer(x)
        else:
            x = layer(x)
        outputs[layer.name] = x
    return outputs


def build_top(x, include_top=True, classes=1000, classifier_activation="softmax", pooling=None):
    """Applies the applications' top to the last stage's output.

    Layers (keras.applications' names): `"logits"`, `"flatten"`,
    `"predictions"` with `include_top`, else `"avg_pool"` or `"max_pool"`.

    Args:
        x: the last stage's output, `(batch, 1, 1, last_point_filters)` with
            `include_top`, else `(batch, rows, cols, channels)`.
        include_top: add the classifier. Defaults to `True`.
        classes: classifier width. Defaults to `1000`.
        classifier_activation: activation of `"predictions"`.
            Defaults to `"softmax"`.
        pooling: `None`, `"avg"` or `"max"`, used when not `include_top`.
            Defaults to `None`.

    Returns:
        The output tensor.
    """
    if include_top:
        x = keras.layers.Conv2D(classes, 1, padding="same", name="logits")(x)
        x = keras.layers.Flatten(name="flatten")(x)
        return keras.layers.Activation(classifier_activation, name="predictions")(x)
    if pooling == "avg":
        return keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
    if pooling == "max":
        return keras.layers.GlobalMaxPooling2D(name="max_pool")(x)
    return x


def build_head(x, filters, last_point_filters, activation, include_top=True, classes=1000,
               classifier_activation="softmax", pooling=None, dropout_rate=0.2,
               bn_momentum=0.99, name="last_stage"):
    """Applies `EfficientLastStage` (named `name`) and then `build_top`.

    `last_point_filters` is used only with `include_top`; other arguments are
    those of `EfficientLastStage` and `build_top`.

    Returns:
        The output tensor.
    """
    x = EfficientLastStage(
        filters,
        last_point_filters=last_point_filters if include_top else None,
        activation=activation,
        dropout_rate=dropout_rate,
        bn_momentum=bn_momentum,
        bn_epsilon=BN_EPSILON,
        name=name,
    )(x)
    return build_top(x, include_top, classes, classifier_activation, pooling)


def check_input_shape(input_shape, weights):
    """Validates an application/backbone `input_shape`; returns it as a tuple."""
    if input_shape is None:
        return None
    if not isinstance(input_shape, (tuple, list)) or len(input_shape) != 3:
        raise ValueError(
            "`input_shape` must be a tuple (height, width, channels). "
            f"Received: input_shape={input_shape!r}"
        )
    for dim in input_shape:
        if dim is not None and (
            isinstance(dim, bool) or not isinstance(dim, numbers.Integral) or dim < 1
        ):
            raise ValueError(
                "`input_shape` entries must be positive ints or None. "
                f"Received: input_shape={input_shape!r}"
            )
    rows, cols, channels = input_shape
    if channels is None:
        raise ValueError(
            "`input_shape` must have a known channel dimension. "
            f"Received: input_shape={input_shape!r}"
        )
    if (rows is not None and rows < MIN_INPUT_SIZE) or (
        cols is not None and cols < MIN_INPUT_SIZE
    ):
        raise ValueError(
            f"Input size must be at least {MIN_INPUT_SIZE}x{MIN_INPUT_SIZE}. "
            f"Received: input_shape={tuple(input_shape)}"
        )
    if weights == "imagenet" and channels != 3:
        raise ValueError(
            "`weights='imagenet'` needs 3 input channels. "
            f"Received: input_shape={tuple(input_shape)}"
        )
    return tuple(input_shape)


def _check_flags_and_head(include_top, minimalistic, include_preprocessing, pooling,
                          classes, dropout_rate, bn_momentum, name, classifier_activation):
    if keras.config.image_data_format() != "channels_last":
        raise ValueError(
            "mnv3_layers builds channels_last models only. Received: "
            f"keras.config.image_data_format()={keras.config.image_data_format()!r}"
        )
    check_bool("include_top", include_top)
    check_bool("minimalistic", minimalistic)
    check_bool("include_preprocessing", include_preprocessing)
    if pooling not in (None, "avg", "max"):
        raise ValueError(
            f"`pooling` must be None, 'avg' or 'max'. Received: pooling={pooling!r}"
        )
    if include_top and (
        isinstance(classes, bool) or not isinstance(classes, numbers.Integral) or classes < 1
    ):
        raise ValueError(f"`classes` must be a positive int. Received: classes={classes!r}")
    check_fraction("dropout_rate", dropout_rate)
    check_fraction("bn_momentum", bn_momentum)
    check_optional_name("name", name)
    if include_top and classifier_activation is not None and not isinstance(
        classifier_activation, str
    ) and not callable(classifier_activation):
        raise ValueError(
            "`classifier_activation` must be a string, a callable or None. "
            f"Received: classifier_activation={classifier_activation!r}"
        )


def _resolve_input_shape(input_shape, input_tensor, weights):
    """The model's input shape from `input_shape` and/or `input_tensor`, checked."""
    if input_tensor is not None:
        if not isinstance(input_tensor, keras.KerasTensor):
            raise TypeError(
                "`input_tensor` must be a Keras tensor (from `keras.Input` or a "
                f"layer). Received: input_tensor of type {type(input_tensor).__name__}"
            )
        tensor_shape = tuple(input_tensor.shape[1:])
        if input_shape is not None and tuple(input_shape) != tensor_shape:
            raise ValueError(
                "`input_shape` must match `input_tensor.shape[1:]`. Received: "
                f"input_shape={tuple(input_shape)}, input_tensor.shape={input_tensor.shape}"
            )
        input_shape = tensor_shape
    if input_shape is None:
        input_shape = (None, None, 3)
    input_shape = check_input_shape(input_shape, weights)
    if weights == "imagenet" and (input_shape[0] != 224 or input_shape[1] != 224):
        warnings.warn(
            "`input_shape` is undefined or not 224x224: weights for input shape "
            "(224, 224) will be loaded as the default.",
            stacklevel=4,
        )
    return input_shape


def _mobilenet_v3(variant, input_shape, alpha, minimalistic, include_top, weights,
                  input_tensor, classes, pooling, dropout_rate, classifier_activation,
                  include_preprocessing, name, bn_momentum):
    # === Argument checks (all before anything is built) ===
    _check_flags_and_head(include_top, minimalistic, include_preprocessing, pooling,
                          classes, dropout_rate, bn_momentum, name, classifier_activation)
    arch = resolve_architecture(variant, alpha=alpha, minimalistic=minimalistic)
    weight_args = dict(model_type=arch.name, alpha=alpha, minimalistic=minimalistic,
                       include_top=include_top)
    weights_lib.check_weights_argument(
        weights, classes=classes, classifier_activation=classifier_activation, **weight_args
    )
    input_shape = _resolve_input_shape(input_shape, input_tensor, weights)

    # === Functional Model ===
    img_input = input_tensor if input_tensor is not None else keras.Input(shape=input_shape)
    x = list(build_stem_and_blocks(img_input, arch, bn_momentum,
                                   include_preprocessing=include_preprocessing).values())[-1]
    x = build_head(x, arch.last_stage_filters, arch.last_point_filters,
                   arch.last_stage_activation, include_top, classes, classifier_activation,
                   pooling, dropout_rate, bn_momentum)
    if input_tensor is not None:
        inputs = keras.utils.get_source_inputs(input_tensor)
    else:
        inputs = img_input
    model = keras.Model(inputs, x, name=name)
    weights_lib.load_weights(model, weights, **weight_args)
    return model


_DOC = """Instantiates MobileNetV3-{Variant}, drop-in for `keras.applications.MobileNetV3{Variant}`.

    One `InvertedResidual` per bneck row of the paper's Table {table}, then
    `EfficientLastStage`; outputs equal keras.applications' for the same
    weights, whose files are converted on load.

    Args:
        input_shape: `(height, width, channels)`; spatial dims may be `None`
            and must be >= 32. Defaults to `(None, None, 3)`.
        alpha: width multiplier (paper section 6.1.1). Defaults to `1.0`.
        minimalistic: 3x3 kernels, ReLU, no SE (the paper's minimalistic
            models). Defaults to `False`.
        include_top: include the pooled 1x1 head and classifier.
            Defaults to `True`.
        weights: `None`, `"imagenet"` (the Keras Applications files,
            downloaded and hash-checked), or a path to such a legacy `.h5`
            or to this package's `.weights.h5`. Defaults to `"imagenet"`.
        input_tensor: optional Keras tensor to use as the model input.
        classes: number of classes when `include_top`. Defaults to `1000`.
        pooling: `None`, `"avg"` or `"max"` for `include_top=False`.
        dropout_rate: dropout before the classifier. Defaults to `0.2`.
        classifier_activation: activation of the `predictions` layer.
            Defaults to `"softmax"`.
        include_preprocessing: rescale inputs from [0, 255] to [-1, 1].
            Defaults to `True`.
        name: model name. Defaults to `"MobileNetV3{Variant}"`.
        bn_momentum: batch-norm momentum, the paper's (keras.applications:
            0.999); short runs from scratch should pass 0.9. Defaults to `0.99`.

    Returns:
        A `keras.Model`.

    Example:

    >>> from mnv3_layers.applications import MobileNetV3{Variant}
    >>> model = MobileNetV3{Variant}(input_shape=(224, 224, 3), weights=None)
    >>> model.output_shape
    (None, 1000)
    """


def _application(variant, table):
    """`MobileNetV3Large` or `MobileNetV3Small`: one signature, one body."""
    title = f"MobileNetV3{variant.capitalize()}"

    def application(
        input_shape=None,
        alpha=1.0,
        minimalistic=False,
        include_top=True,
        weights="imagenet",
        input_tensor=None,
        classes=1000,
        pooling=None,
        dropout_rate=0.2,
        classifier_activation="softmax",
        include_preprocessing=True,
        name=title,
        bn_momentum=0.99,
    ):
        return _mobilenet_v3(
            variant, input_shape, alpha, minimalistic, include_top, weights, input_tensor,
            classes, pooling, dropout_rate, classifier_activation, include_preprocessing,
            name, bn_momentum,
        )

    application.__name__ = application.__qualname__ = title
    application.__doc__ = _DOC.format(Variant=variant.capitalize(), table=table)
    return application


MobileNetV3Large = _application("large", table=1)
MobileNetV3Small = _application("small", table=2)


def preprocess_input(x, data_format=None):
    """No-op, as in keras.applications: preprocessing is part of the model."""
    return x


def decode_predictions(preds, top=5):
    """ImageNet class names for `preds` (delegates to keras.applications)."""
    return keras.applications.imagenet_utils.decode_predictions(preds, top=top)
