"""SSDLite's feature levels (`SSDLevel`), extra layers and box / class predictors."""

import dataclasses
import math
import numbers

import keras

from mnv3_layers.architecture.block_spec import BN_EPSILON

EXTRA_FILTERS = (512, 256, 256, 128)
EXTRA_MIN_FILTERS = 16
C4_STRIDE = 16
C5_STRIDE = 32
CLASS_PRIOR = 0.01


@dataclasses.dataclass(frozen=True)
class SSDLevel:
    """One feature level of an `SSDLite` detector.

    Attributes:
        name: `"P4"`, `"P5"`, ... (`Pn` has nominal stride `2**n`).
        source: a backbone tap key (`"last_stage"`) or an extra layer (`"extra_P6"`).
        stride: nominal stride (16, 32, 64, ...).
        grid: `(rows, columns)` of the feature map for the model's input size.
        channels: channels of the feature map.
        anchor_size: base anchor size in pixels.
        anchors_per_location: `len(anchor_scales) * len(anchor_aspect_ratios)`.
    """

    name: str
    source: str
    stride: int
    grid: tuple
    channels: int
    anchor_size: float
    anchors_per_location: int

    @property
    def num_anchors(self):
        """Anchors of the level: rows * columns * anchors per location."""
        return self.grid[0] * self.grid[1] * self.anchors_per_location


def grid(height, width, stride):
    """`(rows, cols)` at `stride`: stride-2 'same' convolutions give ceil(size / 2)."""
    return (-(-height // stride), -(-width // stride))


def level_strides(num_extra):
    """Strides of C4, C5 and `num_extra` extra levels."""
    return [C4_STRIDE, C5_STRIDE] + [C5_STRIDE * 2 ** (i + 1) for i in range(num_extra)]


def default_extra_filters(alpha, height, width):
    """The extra layers SSDLite adds for an input size.

    The paper's 512, 256, 256, 128 channels times `alpha` (at least 16),
    stopping once a level is 1x1 (at 320x320 all four, as in the paper).

    Args:
        alpha: the backbone's width multiplier.
        height: input height in pixels.
        width: input width in pixels.

    Returns:
        A tuple of ints, one per extra layer.

    Example:

    >>> from mnv3_layers.applications.ssdlite import default_extra_filters
    >>> default_extra_filters(1.0, 320, 320)
    (512, 256, 256, 128)
    >>> default_extra_filters(0.5, 128, 128)
    (256, 128)
    """
    filters = []
    cells = grid(height, width, C5_STRIDE)
    for depth in EXTRA_FILTERS:
        if min(cells) <= 1:
            break
        filters.append(max(int(depth * alpha), EXTRA_MIN_FILTERS))
        cells = (-(-cells[0] // 2), -(-cells[1] // 2))
    return tuple(filters)


def check_extra_filters(extra_filters, alpha, height, width):
    """Checks `extra_filters` (or picks the default) for an input size."""
    if extra_filters is None:
        return default_extra_filters(alpha, height, width)
    if not isinstance(extra_filters, (list, tuple)) or any(
        isinstance(f, bool) or not isinstance(f, numbers.Integral) or f < 2
        for f in extra_filters
    ):
        raise ValueError(
            "`extra_filters` must be None or a list of integers >= 2 (channels of "
            f"each extra layer). Received: extra_filters={extra_filters!r}"
        )
    extra_filters = tuple(int(f) for f in extra_filters)
    strides = level_strides(len(extra_filters))
    # Every level but the deepest must be at least 2x2: a smaller input makes
    # two or more levels 1x1, each a copy of the same image-wide cell.
    for stride in strides[:-1]:
        if min(grid(height, width, stride)) < 2:
            fits = len(default_extra_filters(1.0, height, width))
            raise ValueError(
                f"The input size {height}x{width} is too small for "
                f"{len(extra_filters)} extra layers: the level at stride {stride} is "
                f"already {grid(height, width, stride)}, so the deeper levels (down "
                f"to stride {strides[-1]}) would be 1x1 copies of it. Each input side "
                f"must be larger than half the deepest stride ({strides[-1] // 2}); "
                f"use a larger input or at most {fits} extra layers. Received: "
                f"extra_filters={extra_filters!r}, input_shape=({height}, {width})"
            )
    return extra_filters


def _conv_bn_relu6(x, filters, bn_momentum, name):
    x = keras.layers.Conv2D(filters, 1, padding="same", use_bias=False, name=name)(x)
    x = keras.layers.BatchNormalization(momentum=bn_momentum, epsilon=BN_EPSILON,
                                        name=f"{name}_bn")(x)
    return keras.layers.ReLU(max_value=6.0, name=f"{name}_relu6")(x)


def _depthwise_bn_relu6(x, strides, bn_momentum, name):
    x = keras.layers.DepthwiseConv2D(3, strides=strides, padding="same", use_bias=False,
                                     name=name)(x)
    x = keras.layers.BatchNormalization(momentum=bn_momentum, epsilon=BN_EPSILON,
                                        name=f"{name}_bn")(x)
    return keras.layers.ReLU(max_value=6.0, name=f"{name}_relu6")(x)


def extra_layer(x, filters, bn_momentum, name):
    """TF-OD SSDLite extra layer: 1x1 to filters/2, 3x3 depthwise s2, 1x1 to filters."""
    x = _conv_bn_relu6(x, max(filters // 2, 1), bn_momentum, f"{name}_reduce")
    x = _depthwise_bn_relu6(x, 2, bn_momentum, f"{name}_depthwise")
    return _conv_bn_relu6(x, filters, bn_momentum, f"{name}_project")


def predictor(x, filters, bias_initializer, bn_momentum, name):
    """Depthwise-separable predictor: 3x3 depthwise + BN + ReLU6, 1x1 conv."""
    x = _depthwise_bn_relu6(x, 1, bn_momentum, f"{name}_depthwise")
    return keras.layers.Conv2D(filters, 1, bias_initializer=bias_initializer,
                               name=f"{name}_conv")(x)


def build_levels(taps, extra_filters, anchor_sizes, per_location, image_shape, bn_momentum):
    """Adds the extra layers after C5; returns `(levels, features)`.

    Args:
        taps: `[(C4 key, C4 tensor), (C5 key, C5 tensor)]`.
        extra_filters: channels of each extra layer.
        anchor_sizes: one base anchor size per level.
        per_location: anchors per location.
        image_shape: the detector's `(height, width, ...)`.
        bn_momentum: batch-norm momentum of the new layers.

    Returns:
        A tuple of `SSDLevel` and the list of level feature tensors.
    """
    height, width = image_shape[0], image_shape[1]
    strides = level_strides(len(extra_filters))
    level_names = [f"P{int(math.log2(s))}" for s in strides]
    sources = [key for key, _ in taps]
    features = [tensor for _, tensor in taps]
    x = features[-1]
    for level_name, filters in zip(level_names[2:], extra_filters):
        x = extra_layer(x, filters, bn_momentum, name=f"extra_{level_name}")
        features.append(x)
        sources.append(f"extra_{level_name}")
    levels = []
    for level_name, source, stride, feature, size in zip(
        level_names, sources, strides, features, anchor_sizes
    ):
        cells = grid(height, width, stride)
        if tuple(feature.shape[1:3]) != cells:
            raise ValueError(
                f"`backbone` feature stride mismatch: level {level_name} "
                f"({source!r}) should be {cells} (stride {stride} of a "
                f"{height}x{width} input) but is {tuple(feature.shape[1:3])}. "
                f"Received: backbone.image_shape={tuple(image_shape)!r}"
            )
        levels.append(SSDLevel(level_name, source, stride, cells,
                               int(feature.shape[-1]), size, per_location))
    return tuple(levels), features


def build_predictions(levels, features, num_classes, bn_momentum):
    """Box and class predictors of every level; returns `(box, classification)`.

    `(batch, num_anchors, 4)` deltas and `(batch, num_anchors, num_classes)`
    logits; the class bias starts at the focal-loss prior `p = CLASS_PRIOR`.
    """
    prior = keras.initializers.Constant(-math.log((1 - CLASS_PRIOR) / CLASS_PRIOR))
    box_outputs, class_outputs = [], []
    for level, feature in zip(levels, features):
        per_location = level.anchors_per_location
        box = predictor(feature, per_location * 4, "zeros", bn_momentum,
                        name=f"box_head_{level.name}")
        classes = predictor(feature, per_location * num_classes, prior, bn_momentum,
                            name=f"class_head_{level.name}")
        box_outputs.append(keras.layers.Reshape((-1, 4), name=f"box_{level.name}")(box))
        class_outputs.append(
            keras.layers.Reshape((-1, num_classes), name=f"class_{level.name}")(classes))
    box = keras.layers.Concatenate(axis=1, name="box")(box_outputs)
    classes = keras.layers.Concatenate(axis=1, name="classification")(class_outputs)
    return box, classes
