import keras

from mnv3_layers.layers._activation import activation_layer
from mnv3_layers._registry import register
from mnv3_layers._validation import (
    check_activation,
    check_fraction,
    check_positive_int,
    check_positive_number,
)


@register
class EfficientLastStage(keras.layers.Layer):
    """The paper's efficient last stage (MobileNetV3 section 5.1, Figure 5).

    Formula (input `x` at the final resolution, e.g. 7x7 for 224 input):

    ```
    f = act(bn(conv1x1(x, filters)))            # no bias; 960 (Large) / 576 (Small)
    # with last_point_filters set (classification head):
    p = global_average_pool(f)                  # pooling moved before the wide 1x1
    p = act(conv1x1(p, last_point_filters) + b) # 1280 / 1024, bias, no batch norm
    output = dropout(p, dropout_rate)           # (batch, 1, 1, last_point_filters)
    # with last_point_filters=None: output = f  (the feature map)
    ```

    Args:
        filters: channels of the 1x1 convolution at full resolution.
        last_point_filters: channels of the pooled 1x1 convolution, or `None`
            to stop after the full-resolution convolution (a feature
            extractor, `include_top=False`). Defaults to `1280`.
        activation: `"hard_swish"` or `"relu"`. Defaults to `"hard_swish"`.
        dropout_rate: dropout after the pooled convolution, in [0, 1).
            Defaults to `0.2`.
        bn_momentum: batch-norm momentum. Defaults to `0.99`.
        bn_epsilon: batch-norm epsilon. Defaults to `1e-3`.
        **kwargs: base `keras.layers.Layer` arguments.

    Input shape: 4D `(batch, height, width, channels)`.
    Output shape: `(batch, 1, 1, last_point_filters)`, or
    `(batch, height, width, filters)` when `last_point_filters` is `None`.

    Example:

    >>> import numpy as np
    >>> from mnv3_layers import EfficientLastStage
    >>> stage = EfficientLastStage(960, last_point_filters=1280)
    >>> tuple(stage(np.zeros((2, 7, 7, 160), "float32")).shape)
    (2, 1, 1, 1280)

    Reference: Howard et al., "Searching for MobileNetV3", ICCV 2019, section 5.1.
    """

    def __init__(
        self,
        filters,
        last_point_filters=1280,
        activation="hard_swish",
        dropout_rate=0.2,
        bn_momentum=0.99,
        bn_epsilon=1e-3,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.filters = check_positive_int("filters", filters)
        if last_point_filters is not None:
            last_point_filters = check_positive_int("last_point_filters", last_point_filters)
        self.last_point_filters = last_point_filters
        self.activation = check_activation("activation", activation)
        self.dropout_rate = check_fraction("dropout_rate", dropout_rate)
        self.bn_momentum = check_fraction("bn_momentum", bn_momentum)
        self.bn_epsilon = check_positive_number("bn_epsilon", bn_epsilon)

        # === Layers ===
        policy = self.dtype_policy
        self.conv = keras.layers.Conv2D(
            self.filters, 1, padding="same", use_bias=False, dtype=policy, name="conv"
        )
        self.conv_bn = keras.layers.BatchNormalization(
            momentum=self.bn_momentum, epsilon=self.bn_epsilon, dtype=policy, name="conv_bn"
        )
        self.conv_activation = activation_layer(self.activation, "conv_activation", dtype=policy)
        if self.last_point_filters is None:
            self.pool = self.head_conv = self.head_activation = self.dropout = None
        else:
            self.pool = keras.layers.GlobalAveragePooling2D(
                keepdims=True, dtype=policy, name="pool"
            )
            self.head_conv = keras.layers.Conv2D(
                self.last_point_filters, 1, padding="same", use_bias=True,
                dtype=policy, name="head_conv",
            )
            self.head_activation = activation_layer(
                self.activation, "head_activation", dtype=policy
            )
            self.dropout = keras.layers.Dropout(self.dropout_rate, dtype=policy, name="dropout")

    def build(self, input_shape):
        if len(input_shape) != 4 or input_shape[-1] is None:
            raise ValueError(
                "`EfficientLastStage` expects a 4D input with a known channel "
                f"dimension. Received: input_shape={tuple(input_shape)}"
            )
        shape = tuple(input_shape)
        self.conv.build(shape)
        shape = self.conv.compute_output_shape(shape)
        self.conv_bn.build(shape)
        self.conv_activation.build(shape)
        if self.last_point_filters is not None:
            self.pool.build(shape)
            pooled = (shape[0], 1, 1, self.filters)
            self.head_conv.build(pooled)
            head_shape = self.head_conv.compute_output_shape(pooled)
            self.head_activation.build(head_shape)
            self.dropout.build(head_shape)
        super().build(input_shape)

    def call(self, inputs, training=None):
        x = self.conv(inputs)
        x = self.conv_bn(x, training=training)
        x = self.conv_activation(x)
        if self.last_point_filters is None:
            return x
        x = self.pool(x)
        x = self.head_activation(self.head_conv(x))
        return self.dropout(x, training=training)

    def compute_output_shape(self, input_shape):
        if self.last_point_filters is None:
            return tuple(input_shape[:-1]) + (self.filters,)
        return (input_shape[0], 1, 1, self.last_point_filters)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "filters": self.filters,
                "last_point_filters": self.last_point_filters,
                "activation": self.activation,
                "dropout_rate": self.dropout_rate,
                "bn_momentum": self.bn_momentum,
                "bn_epsilon": self.bn_epsilon,
            }
        )
        return config
