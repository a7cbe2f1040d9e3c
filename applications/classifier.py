"""The one MobileNetV3 image-classifier builder of the package (training and search)."""

import keras

from mnv3_layers._validation import check_choice, check_positive_int
from mnv3_layers.applications.backbone import MobileNetV3Backbone
from mnv3_layers.applications.mobilenet_v3 import MobileNetV3Large, MobileNetV3Small
from mnv3_layers.architecture.block_spec import get_architecture
from mnv3_layers.layers.efficient_last_stage import EfficientLastStage

HEADS = ("applications", "dense")
APPLICATION_VARIANTS = {"small": MobileNetV3Small, "large": MobileNetV3Large}


def build_classifier(variant, input_shape, num_classes, *, head="applications", alpha=1.0,
                     minimalistic=False, weights=None, dropout_rate=0.2, bn_momentum=0.99,
                     name=None):
    """A MobileNetV3 classifier for `num_classes` (inputs in [0, 255], softmax output).

    `head="applications"`: `MobileNetV3Small/Large(include_top=True)`;
    `head="dense"`: `"backbone"` (any block table), `"avg_pool"`, `"dropout"`
    and a softmax `Dense` `"classifier"`.

    Args:
        variant: `"small"` or `"large"`; with `head="dense"` also an
            `ArchitectureSpec` or its dict form.
        input_shape: `(height, width, channels)`.
        num_classes: classes, >= 2.
        head: `"applications"` or `"dense"`. Defaults to `"applications"`.
        alpha: width multiplier. Defaults to `1.0`.
        minimalistic: the paper's minimalistic variant. Defaults to `False`.
        weights: `None`, `"imagenet"` or a no-top weights file path, copied
            up to the last-stage conv (`head="applications"` only). Defaults to `None`.
        dropout_rate: dropout before the classifier. Defaults to `0.2`.
        bn_momentum: batch-norm momentum. Defaults to `0.99`.
        name: model name. Defaults to `None` (the application's name, or
            `"mobilenet_v3_classifier"`).

    Returns:
        An uncompiled functional `keras.Model`.

    Example:

    >>> from mnv3_layers.applications import build_classifier
    >>> model = build_classifier("small", (64, 64, 3), 5, head="dense", alpha=0.35)
    >>> model.output_shape, model.get_layer("classifier").units
    ((None, 5), 5)
    """
    check_choice("head", head, HEADS)
    if head == "applications":
        check_choice("variant", variant, tuple(APPLICATION_VARIANTS))
    num_classes = check_positive_int("num_classes", num_classes)
    if num_classes < 2:
        raise ValueError(f"`num_classes` must be >= 2. Received: num_classes={num_classes!r}")
    input_shape = tuple(input_shape)
    if head == "dense":
        if weights is not None:
            raise ValueError(
                "`weights` loads a no-top application and needs head='applications'. "
                f"Received: weights={weights!r}, head={head!r}"
            )
        return _dense_classifier(variant, input_shape, num_classes, alpha, minimalistic,
                                 dropout_rate, bn_momentum, name or "mobilenet_v3_classifier")
    application = APPLICATION_VARIANTS[variant]
    options = dict(alpha=alpha, minimalistic=minimalistic, bn_momentum=bn_momentum)
    if name is not None:
        options["name"] = name
    model = application(input_shape=input_shape, include_top=True, weights=None,
                        classes=num_classes, dropout_rate=dropout_rate, **options)
    if weights is not None:
        options.pop("name", None)
        source = application(input_shape=(224, 224, 3), include_top=False, weights=weights,
                             **options)
        copy_backbone_weights(source, model)
        del source
    return model


def _dense_classifier(variant, input_shape, num_classes, alpha, minimalistic, dropout_rate,
                      bn_momentum, name):
    inputs = keras.Input(input_shape)
    backbone = MobileNetV3Backbone(
        variant=get_architecture(variant), alpha=alpha, minimalistic=minimalistic,
        input_shape=input_shape, bn_momentum=bn_momentum, name="backbone",
    )
    x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(backbone(inputs))
    if dropout_rate:
        x = keras.layers.Dropout(dropout_rate, name="dropout")(x)
    outputs = keras.layers.Dense(num_classes, activation="softmax", name="classifier")(x)
    return keras.Model(inputs, outputs, name=name)


def copy_backbone_weights(source, target):
    """Copies `source`'s (no-top application) weights into `target` by name; last stage: conv + BN."""
    for layer in source.layers:
        if not layer.weights:
            continue
        target_layer = target.get_layer(layer.name)
        if isinstance(layer, EfficientLastStage):
            target_layer.conv.set_weights(layer.conv.get_weights())
            target_layer.conv_bn.set_weights(layer.conv_bn.get_weights())
        else:
            target_layer.set_weights(layer.get_weights())
