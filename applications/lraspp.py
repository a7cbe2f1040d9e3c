"""LR-ASPP, the paper's Lite Reduced Atrous Spatial Pyramid Pooling head.

`LRASPPHead` (a layer on `[low, high]` feature maps) and `LRASPPSegmenter`
(the head on a `MobileNetV3Backbone`, upsampled to the input size).
"""

import numbers

import keras
from keras import ops

from mnv3_layers._registry import register
from mnv3_layers._validation import (
    check_choice,
    check_finite_positive,
    check_fraction,
    check_optional_name,
    check_positive_int,
)
from mnv3_layers.layers.hard_sigmoid import HardSigmoid

GATES = ("sigmoid", "hard_sigmoid")
POOLINGS = ("global", "crop")
ACTIVATIONS = (None, "softmax")
LOW_LEVEL = "P3"
LOW_LEVEL_STRIDE = 8
OUTPUT_STRIDES = (8, 16)


def _pair(name, value, allow_none=False):
    """A positive int or a pair of them -> `(int, int)` (or `None`)."""
    if value is None and allow_none:
        return None
    pair = value
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        pair = (value, value)
    if (
        not isinstance(pair, (tuple, list))
        or len(pair) != 2
        or any(isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < 1
               for v in pair)
    ):
        none = "None, " if allow_none else ""
        raise ValueError(
            f"`{name}` must be {none}a positive int or a pair (height, width) of positive "
            f"ints. Received: {name}={value!r}"
        )
    return (int(pair[0]), int(pair[1]))


def _resize_bilinear(x, height, width):
    """Bilinear resize (half-pixel centers, as `tf.image.resize`) to a static or dynamic size."""
    static_h, static_w = x.shape[1], x.shape[2]
    if isinstance(height, int) and isinstance(width, int):
        if (static_h, static_w) == (height, width):
            return x
        if (static_h, static_w) == (1, 1):
            # Resizing one pixel is a broadcast; avoid the resize op.
            return ops.broadcast_to(x, (ops.shape(x)[0], height, width, ops.shape(x)[3]))
        return ops.cast(
            ops.image.resize(x, (height, width), interpolation="bilinear"), x.dtype
        )
    # A size only known at run time exists only in TensorFlow graphs (the
    # other backends trace with concrete shapes), and `ops.image.resize`
    # needs Python ints, so use `tf.image.resize`, the op it wraps.
    import tensorflow as tf

    return ops.cast(tf.image.resize(x, tf.stack([height, width]), method="bilinear"), x.dtype)


def _window_mean_dynamic(x, axis, size, stride):
    """Mean over windows of `min(size, length)` along `axis`, for a run-time `length`."""
    length = ops.shape(x)[axis]
    window = ops.minimum(length, size)
    count = (length - window) // stride + 1
    pad = [[0, 0]] * 4
    pad[axis] = [1, 0]
    totals = ops.pad(ops.cumsum(x, axis=axis), pad)
    starts = ops.arange(0, count, dtype="int32") * stride
    sums = ops.take(totals, starts + window, axis=axis) - ops.take(totals, starts, axis=axis)
    return sums / ops.cast(window, x.dtype)


def window_mean(x, pool_size, pool_strides):
    """Average pooling of `x` (NHWC) with `VALID` windows clipped to the map size.

    A map smaller than the window is averaged whole along that axis.
    """
    height, width = ops.shape(x)[1], ops.shape(x)[2]
    if isinstance(height, int) and isinstance(width, int):
        window = (min(pool_size[0], height), min(pool_size[1], width))
        return ops.average_pool(x, window, strides=pool_strides, padding="valid")
    x32 = ops.cast(x, "float32")
    x32 = _window_mean_dynamic(x32, 1, pool_size[0], pool_strides[0])
    x32 = _window_mean_dynamic(x32, 2, pool_size[1], pool_strides[1])
    return ops.cast(x32, x.dtype)


@register
class LRASPPHead(keras.layers.Layer):
    """The LR-ASPP segmentation head of MobileNetV3 on two feature maps.

    Formula (`high`: the deep feature map, stride 16 in the paper; `low`: a
    shallower, finer feature map, stride 8):

    ```
    main = relu(batch_norm(conv1x1(high, filters, no bias)))
    gate = gate_fn(conv1x1(pool(high), filters, with bias))
    x    = main * resize_bilinear(gate, size(high))
    out  = conv1x1(resize_bilinear(x, size(low)), num_classes)
           + conv1x1(low, num_classes)
    ```

    `pool` is a global average (torchvision) or an average over `VALID`
    `pool_size` windows (TF DeepLab), clipped to the feature map. The high
    branch is classified before its resize (the two commute exactly).

    Args:
        num_classes: number of classes (output channels), >= 1.
        filters: channels of the main and gate branches. Defaults to `128`
            (the paper's value).
        pool_size: `None` for global pooling, or the window in feature-map
            pixels (an int or `(height, width)`). Defaults to `None`.
        pool_strides: window strides (int or pair), only with `pool_size`;
            `None` means `pool_size`. Defaults to `None`.
        gate: `"sigmoid"` (torchvision) or `"hard_sigmoid"`
            (`relu6(x + 3) / 6`, TF DeepLab's `image_se_uses_qsigmoid`).
            Defaults to `"sigmoid"`.
        bn_momentum: main-branch batch-norm momentum, in [0, 1). Defaults to `0.99`.
        bn_epsilon: epsilon of that batch norm. Defaults to `1e-3`.
        **kwargs: base `keras.layers.Layer` arguments (`name`, `dtype`, ...).

    Input: a list `[low, high]` of `(batch, h_low, w_low, c_low)` and
    `(batch, h_high, w_high, c_high)` tensors.
    Output: logits `(batch, h_low, w_low, num_classes)`.

    Example:

    >>> import numpy as np
    >>> from mnv3_layers.applications.lraspp import LRASPPHead
    >>> head = LRASPPHead(num_classes=4, filters=16)
    >>> low, high = np.ones((2, 16, 12, 24), "float32"), np.ones((2, 8, 6, 48), "float32")
    >>> tuple(head([low, high]).shape)
    (2, 16, 12, 4)

    Reference: Howard et al., "Searching for MobileNetV3", ICCV 2019, section 6.4.
    """

    def __init__(
        self,
        num_classes,
        filters=128,
        pool_size=None,
        pool_strides=None,
        gate="sigmoid",
        bn_momentum=0.99,
        bn_epsilon=1e-3,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.num_classes = check_positive_int("num_classes", num_classes)
        self.filters = check_positive_int("filters", filters)
        self.pool_size = _pair("pool_size", pool_size, allow_none=True)
        if self.pool_size is None and pool_strides is not None:
            raise ValueError(
                "`pool_strides` needs a `pool_size` (global pooling has no stride). "
                f"Received: pool_strides={pool_strides!r} with pool_size=None"
            )
        self.pool_strides = (
            None if pool_strides is None else _pair("pool_strides", pool_strides)
        )
        self.gate = check_choice("gate", gate, GATES)
        self.bn_momentum = check_fraction("bn_momentum", bn_momentum)
        self.bn_epsilon = check_finite_positive("bn_epsilon", bn_epsilon)

        # === Layers ===
        self.main_conv = keras.layers.Conv2D(
            self.filters, 1, use_bias=False, dtype=self.dtype_policy, name="main_conv"
        )
        self.main_bn = keras.layers.BatchNormalization(
            momentum=self.bn_momentum, epsilon=self.bn_epsilon, dtype=self.dtype_policy,
            name="main_bn",
        )
        self.main_activation = keras.layers.ReLU(dtype=self.dtype_policy, name="main_relu")
        self.gate_conv = keras.layers.Conv2D(
            self.filters, 1, use_bias=True, dtype=self.dtype_policy, name="gate_conv"
        )
        if self.gate == "hard_sigmoid":
            self.gate_activation = HardSigmoid(dtype=self.dtype_policy, name="gate_activation")
        else:
            self.gate_activation = keras.layers.Activation(
                "sigmoid", dtype=self.dtype_policy, name="gate_activation"
            )
        self.high_classifier = keras.layers.Conv2D(
            self.num_classes, 1, dtype=self.dtype_policy, name="high_classifier"
        )
        self.low_classifier = keras.layers.Conv2D(
            self.num_classes, 1, dtype=self.dtype_policy, name="low_classifier"
        )

    @property
    def effective_pool_strides(self):
        """The pooling strides in use (`pool_size` when `pool_strides` is None)."""
        if self.pool_size is None:
            return None
        return self.pool_strides or self.pool_size

    def _split(self, inputs):
        if (
            not isinstance(inputs, (list, tuple))
            or len(inputs) != 2
            or not all(isinstance(item, (list, tuple)) for item in inputs)
        ):
            raise ValueError(
                "`inputs` must be a list [low, high] of two feature maps. "
                f"Received: inputs of shape {inputs!r}"
            )
        low, high = inputs
        for name, shape in (("low", tuple(low)), ("high", tuple(high))):
            if len(shape) != 4:
                raise ValueError(
                    f"`inputs` must be 4D (batch, height, width, channels) feature maps; "
                    f"the {name} one has shape {shape}. Received: inputs of shapes "
                    f"{[tuple(low), tuple(high)]}"
                )
        return tuple(low), tuple(high)

    def build(self, input_shape):
        low_shape, high_shape = self._split(input_shape)
        batch, height, width = high_shape[:3]
        self.main_conv.build(high_shape)
        main_shape = (batch, height, width, self.filters)
        self.main_bn.build(main_shape)
        self.gate_conv.build((batch, None, None, high_shape[3]))
        self.high_classifier.build(main_shape)
        self.low_classifier.build(low_shape)
        self.built = True

    def call(self, inputs, training=None):
        low, high = inputs
        main = self.main_activation(self.main_bn(self.main_conv(high), training=training))
        high_shape = ops.shape(high)
        if self.pool_size is None:
            pooled = ops.mean(high, axis=(1, 2), keepdims=True)
        else:
            pooled = window_mean(high, self.pool_size, self.effective_pool_strides)
        gate = self.gate_activation(self.gate_conv(pooled))
        gate = _resize_bilinear(gate, high_shape[1], high_shape[2])
        high_logits = self.high_classifier(main * gate)
        low_shape = ops.shape(low)
        high_logits = _resize_bilinear(high_logits, low_shape[1], low_shape[2])
        return high_logits + self.low_classifier(low)

    def compute_output_shape(self, input_shape):
        low_shape, _ = self._split(input_shape)
        return low_shape[:3] + (self.num_classes,)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "num_classes": self.num_classes,
                "filters": self.filters,
                "pool_size": self.pool_size,
                "pool_strides": self.pool_strides,
                "gate": self.gate,
                "bn_momentum": self.bn_momentum,
                "bn_epsilon": self.bn_epsilon,
            }
        )
        return config


@register
class ResizeLike(keras.layers.Layer):
    """Bilinear resize of `x` to the height and width of `reference`.

    `LRASPPSegmenter`'s upsampling; also for sizes known only at run time.

    Args:
        min_size: smallest height and width of `reference` (checked when
            known; else `ValueError`). Defaults to `1`.
        **kwargs: base `keras.layers.Layer` arguments.

    Input: `[x, reference]`. Output: `x` at `reference`'s height and width.

    Example:

    >>> import numpy as np
    >>> from mnv3_layers.applications.lraspp import ResizeLike
    >>> x, reference = np.ones((1, 4, 4, 2), "float32"), np.ones((1, 16, 16, 3), "float32")
    >>> tuple(ResizeLike()([x, reference]).shape)
    (1, 16, 16, 2)
    """

    def __init__(self, min_size=1, **kwargs):
        super().__init__(**kwargs)
        self.min_size = check_positive_int("min_size", min_size)

    def call(self, inputs):
        x, reference = inputs
        shape = ops.shape(reference)
        for dim in shape[1:3]:
            if isinstance(dim, int) and dim < self.min_size:
                raise ValueError(
                    f"`inputs` must be at least {self.min_size}x{self.min_size} pixels "
                    "(the backbone's output stride). Received: inputs with shape "
                    f"{tuple(reference.shape)}"
                )
        return _resize_bilinear(x, shape[1], shape[2])

    def compute_output_shape(self, input_shape):
        x_shape, reference_shape = input_shape
        return tuple(reference_shape[:3]) + (x_shape[3],)

    def get_config(self):
        config = super().get_config()
        config["min_size"] = self.min_size
        return config


def _check_backbone(backbone):
    """`"large"` / `"small"` / a `MobileNetV3Backbone` -> a checked backbone."""
    from mnv3_layers.applications.backbone import MobileNetV3Backbone

    if isinstance(backbone, str):
        variant = backbone.lower()
        if variant not in ("large", "small"):
            raise ValueError(
                "`backbone` must be 'large', 'small' or a MobileNetV3Backbone. "
                f"Received: backbone={backbone!r}"
            )
        return MobileNetV3Backbone(variant, output_stride=16, reduced_tail=True)
    if not isinstance(backbone, MobileNetV3Backbone):
        raise TypeError(
            "`backbone` must be 'large', 'small' or a MobileNetV3Backbone (for other "
            "backbones, put `LRASPPHead` on two of their feature maps). "
            f"Received: backbone={backbone!r}"
        )
    high_stride = backbone.feature_info[-1].stride
    if high_stride not in OUTPUT_STRIDES:
        raise ValueError(
            "`backbone` must end at stride 16 (the paper's LR-ASPP: build it with "
            "MobileNetV3Backbone(..., output_stride=16)) or 8: its last feature map is "
            "the head's deep input and the skip branch comes from stride 8. Received: "
            f"backbone with output_stride={backbone.output_stride!r} (last feature "
            f"map at stride {high_stride})"
        )
    low = next((t for t in backbone.feature_info if t.level == LOW_LEVEL), None)
    if low is None or low.stride != LOW_LEVEL_STRIDE:
        raise ValueError(
            f"`backbone` must have a stride-{LOW_LEVEL_STRIDE} pyramid level "
            f"{LOW_LEVEL!r} for the head's skip branch. Received: backbone with "
            f"pyramid levels {[(t.level, t.stride) for t in backbone.feature_info if t.level]}"
        )
    return backbone


@register
class LRASPPSegmenter(keras.Model):
    """MobileNetV3 with the LR-ASPP segmentation head (paper section 6.4).

    `LRASPPHead` on the backbone's last feature map (stride 16) and `"P3"`
    tap (stride 8), resized to the input size. Output: float32
    `(batch, H, W, num_classes)` logits (probabilities with `"softmax"`).
    Gate pooling `"crop"` (TF DeepLab) averages windows of
    `crop_size / output_stride` feature pixels (the paper's 49x49 window:
    a 768 crop); `"global"` (torchvision) the whole map.

    Args:
        num_classes: number of classes, including background, >= 1.
        backbone: a `MobileNetV3Backbone` with `output_stride` 16 or 8 and a
            stride-8 `"P3"` tap, or `"large"` / `"small"` for
            `MobileNetV3Backbone(variant, output_stride=16, reduced_tail=True)`.
            Defaults to `"large"`.
        filters: channels of the head's main and gate branches. Defaults to `128`.
        pooling: `"global"` or `"crop"`. Defaults to `"global"`.
        crop_size: training crop `(height, width)` or an int, a multiple of
            the output stride; `pooling="crop"` only. Defaults to `None`.
        pool_strides: pooling strides in feature pixels (int or pair),
            `pooling="crop"` only; `None` means the window. Defaults to `None`.
        gate: `"sigmoid"` or `"hard_sigmoid"` (DeepLab's quantization-friendly
            choice). Defaults to `"sigmoid"`.
        activation: `None` (logits) or `"softmax"`. Defaults to `None`.
        name: model name. Defaults to `None`.
        **kwargs: `keras.Model` arguments (`trainable`, `dtype`).

    Train with `SparseCategoricalCrossentropy(from_logits=True)` on integer
    masks; measure with `MeanIoU(num_classes, sparse_y_pred=False)`.

    Example:

    >>> import keras
    >>> import numpy as np
    >>> from mnv3_layers.applications import MobileNetV3Backbone
    >>> from mnv3_layers.applications.lraspp import LRASPPSegmenter
    >>> backbone = MobileNetV3Backbone(
    ...     "small", alpha=0.35, input_shape=(64, 96, 3), output_stride=16, reduced_tail=True)
    >>> model = LRASPPSegmenter(num_classes=4, backbone=backbone, filters=32,
    ...                         pooling="crop", crop_size=(64, 96), gate="hard_sigmoid")
    >>> model.output_shape
    (None, 64, 96, 4)
    >>> model.compile(
    ...     optimizer="adam",
    ...     loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    ...     metrics=[keras.metrics.MeanIoU(num_classes=4, sparse_y_pred=False)])
    >>> images = np.zeros((2, 64, 96, 3), "float32")
    >>> masks = np.zeros((2, 64, 96), "int32")
    >>> logits = model(images, training=False)
    >>> tuple(logits.shape)
    (2, 64, 96, 4)
    >>> miou = keras.metrics.MeanIoU(num_classes=4, sparse_y_pred=False)
    >>> 0.0 <= float(miou(masks, logits)) <= 1.0
    True

    Reference: Howard et al., "Searching for MobileNetV3", ICCV 2019, section 6.4.
    """

    def __init__(
        self,
        num_classes,
        backbone="large",
        filters=128,
        pooling="global",
        crop_size=None,
        pool_strides=None,
        gate="sigmoid",
        activation=None,
        name=None,
        **kwargs,
    ):
        # === Argument checks (all before anything is built) ===
        num_classes = check_positive_int("num_classes", num_classes)
        filters = check_positive_int("filters", filters)
        check_choice("pooling", pooling, POOLINGS)
        check_choice("gate", gate, GATES)
        check_choice("activation", activation, ACTIVATIONS)
        check_optional_name("name", name)
        if pooling == "global":
            for arg_name, value in (("crop_size", crop_size), ("pool_strides", pool_strides)):
                if value is not None:
                    raise ValueError(
                        f"`{arg_name}` is only used with pooling='crop'. "
                        f"Received: {arg_name}={value!r} with pooling='global'"
                    )
        else:
            if crop_size is None:
                raise ValueError(
                    "`crop_size` (the training crop, height and width) is needed with "
                    "pooling='crop'. Received: crop_size=None"
                )
            crop_size_argument = crop_size
            crop_size = _pair("crop_size", crop_size)
            pool_strides = _pair("pool_strides", pool_strides, allow_none=True)
        backbone = _check_backbone(backbone)
        stride = backbone.feature_info[-1].stride
        pool_size = None
        if pooling == "crop":
            if any(c < stride or c % stride for c in crop_size):
                raise ValueError(
                    f"`crop_size` must be a multiple of the backbone's output stride "
                    f"({stride}), at least {stride}: the pooling window is "
                    f"crop_size / {stride} feature pixels. Received: "
                    f"crop_size={crop_size_argument!r}"
                )
            pool_size = (crop_size[0] // stride, crop_size[1] // stride)

        # === Layers ===
        # The backbone's P3 tap and last feature map (P5), as one nested model.
        extractor = keras.Model(
            backbone.input,
            {LOW_LEVEL: backbone.pyramid_outputs[LOW_LEVEL], "P5": backbone.output},
            name="features",
        )
        head = LRASPPHead(
            num_classes,
            filters=filters,
            pool_size=pool_size,
            pool_strides=pool_strides,
            gate=gate,
            bn_momentum=backbone.bn_momentum,
            name="lraspp_head",
        )
        # float32 output, also under a mixed-precision policy.
        upsample = ResizeLike(min_size=stride, dtype="float32", name="upsample")

        # === Functional Model ===
        inputs = keras.Input(shape=backbone.input_shape[1:], name="images")
        features = extractor(inputs)
        logits = head([features[LOW_LEVEL], features["P5"]])
        outputs = upsample([logits, inputs])
        if activation == "softmax":
            outputs = keras.layers.Softmax(dtype="float32", name="softmax")(outputs)
        super().__init__(inputs=inputs, outputs=outputs, name=name, **kwargs)

        # === Config ===
        self.backbone = backbone
        self.num_classes = num_classes
        self.filters = filters
        self.pooling = pooling
        self.crop_size = crop_size
        self.pool_strides = pool_strides
        self.gate = gate
        self.activation = activation
        self.head = head

    def get_config(self):
        return {
            "name": self.name,
            "trainable": self.trainable,
            "num_classes": self.num_classes,
            "backbone": keras.saving.serialize_keras_object(self.backbone),
            "filters": self.filters,
            "pooling": self.pooling,
            "crop_size": self.crop_size,
            "pool_strides": self.pool_strides,
            "gate": self.gate,
            "activation": self.activation,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        if isinstance(config.get("backbone"), dict):
            config["backbone"] = keras.saving.deserialize_keras_object(config["backbone"])
        return cls(**config)
