import keras

from mnv3_layers.layers._activation import activation_layer
from mnv3_layers._registry import register
from mnv3_layers._validation import (
    check_activation,
    check_fraction,
    check_kernel_size,
    check_positive_int,
    check_positive_number,
    check_strides,
)
from mnv3_layers.layers.make_divisible import make_divisible
from mnv3_layers.layers.squeeze_excite import SqueezeExcite


@register
class InvertedResidual(keras.layers.Layer):
    """MobileNetV3 inverted-residual bottleneck ("bneck") block.

    Formula (input `x` with `C_in` channels, `E = make_divisible(C_in * expansion, divisor)`):

    ```
    h = act(bn(conv1x1(x, E)))          # skipped when E == C_in
    h = act(bn(depthwise_kxk(h, strides, dilation_rate)))
    h = squeeze_excite(h)               # only when se_ratio is set
    h = bn(conv1x1(h, filters))         # linear bottleneck, no activation
    output = x + h                      # only when strides == 1 and C_in == filters
    ```

    Convolutions have no bias; `"same"` padding equals `keras.applications`' `correct_pad`.

    Args:
        filters: output channels (the bottleneck width).
        kernel_size: depthwise kernel size, an odd int (3 or 5 in the paper).
            Defaults to `3`.
        strides: depthwise stride, 1 or 2. Defaults to `1`.
        expansion: expanded width as a ratio of the *input* channels, as in
            `keras.applications` and keras-cv (`72 / 16` for the paper's
            "exp size 72" after a 16-channel layer). Defaults to `1.0`.
        se_ratio: squeeze-and-excite ratio in (0, 1] of the expanded width,
            or `None`/`0` for no SE. Defaults to `None`.
        activation: `"relu"` or `"hard_swish"`. Defaults to `"relu"`.
        dilation_rate: depthwise dilation (used instead of stride for dense
            prediction at output stride 16 or 8). Defaults to `1`.
        bn_momentum: batch-norm momentum; the paper's 0.99 (section 6.1).
            Defaults to `0.99`.
        bn_epsilon: batch-norm epsilon, as in keras.applications.
            Defaults to `1e-3`.
        divisor: channel rounding multiple for the expanded and squeeze
            widths. Defaults to `8`.
        expansion_output: also return the expansion output (after the expand
            activation, or the input when there is none) as
            `(output, expansion_output)`, e.g. for SSDLite's C4 tap.
            Defaults to `False`.
        **kwargs: base `keras.layers.Layer` arguments.

    Input shape: 4D `(batch, height, width, C_in)`.
    Output shape: `(batch, ceil(height / strides), ceil(width / strides), filters)`;
    with `expansion_output=True` a tuple of that and
    `(batch, height, width, E)`.

    Example:

    >>> import numpy as np
    >>> from mnv3_layers import InvertedResidual
    >>> block = InvertedResidual(40, kernel_size=5, strides=2, expansion=3,
    ...                          se_ratio=0.25, activation="relu")
    >>> tuple(block(np.zeros((1, 56, 56, 24), "float32")).shape)
    (1, 28, 28, 40)

    Reference: Howard et al., "Searching for MobileNetV3", ICCV 2019,
    section 5 and Figure 4; Sandler et al., "MobileNetV2", CVPR 2018.
    """

    def __init__(
        self,
        filters,
        kernel_size=3,
        strides=1,
        expansion=1.0,
        se_ratio=None,
        activation="relu",
        dilation_rate=1,
        bn_momentum=0.99,
        bn_epsilon=1e-3,
        divisor=8,
        expansion_output=False,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.filters = check_positive_int("filters", filters)
        self.kernel_size = check_kernel_size("kernel_size", kernel_size)
        self.strides = check_strides("strides", strides)
        self.expansion = check_positive_number("expansion", expansion)
        if se_ratio is not None and se_ratio != 0:
            se_ratio = check_fraction("se_ratio", se_ratio, allow_zero=False, allow_one=True)
        self.se_ratio = se_ratio
        self.activation = check_activation("activation", activation)
        self.dilation_rate = check_positive_int("dilation_rate", dilation_rate)
        if self.strides > 1 and self.dilation_rate > 1:
            raise ValueError(
                "`strides` > 1 cannot be combined with `dilation_rate` > 1. "
                f"Received: strides={strides}, dilation_rate={dilation_rate}"
            )
        self.bn_momentum = check_fraction("bn_momentum", bn_momentum)
        self.bn_epsilon = check_positive_number("bn_epsilon", bn_epsilon)
        self.divisor = check_positive_int("divisor", divisor)
        if not isinstance(expansion_output, bool):
            raise TypeError(
                "`expansion_output` must be a bool. "
                f"Received: expansion_output={expansion_output!r}"
            )
        self.expansion_output = expansion_output

        # === Layers ===
        # The expand convolution's width depends on the input channels, so
        # it is created in `build`; everything else exists from here on.
        policy = self.dtype_policy
        self.expand = None
        self.expand_bn = None
        self.expand_activation = None
        self.depthwise = keras.layers.DepthwiseConv2D(
            self.kernel_size,
            strides=self.strides,
            padding="same",
            dilation_rate=self.dilation_rate,
            use_bias=False,
            dtype=policy,
            name="depthwise",
        )
        self.depthwise_bn = self._batch_norm("depthwise_bn")
        self.depthwise_activation = activation_layer(
            self.activation, "depthwise_activation", dtype=policy
        )
        self.squeeze_excite = (
            SqueezeExcite(self.se_ratio, self.divisor, dtype=policy, name="squeeze_excite")
            if self.se_ratio
            else None
        )
        self.project = keras.layers.Conv2D(
            self.filters, 1, padding="same", use_bias=False, dtype=policy, name="project"
        )
        self.project_bn = self._batch_norm("project_bn")
        self.add = None
        self.expanded_filters = None
        self.use_residual = None

    def _batch_norm(self, name):
        return keras.layers.BatchNormalization(
            momentum=self.bn_momentum,
            epsilon=self.bn_epsilon,
            dtype=self.dtype_policy,
            name=name,
        )

    def expanded_channels(self, in_channels):
        """Expanded (depthwise) width for an input of `in_channels`."""
        return make_divisible(in_channels * self.expansion, self.divisor)

    def build(self, input_shape):
        if len(input_shape) != 4 or input_shape[-1] is None:
            raise ValueError(
                "`InvertedResidual` expects a 4D input with a known channel "
                f"dimension. Received: input_shape={tuple(input_shape)}"
            )
        in_channels = int(input_shape[-1])
        self.expanded_filters = self.expanded_channels(in_channels)
        self.use_residual = self.strides == 1 and in_channels == self.filters
        shape = tuple(input_shape)
        if self.expanded_filters != in_channels:
            self.expand = keras.layers.Conv2D(
                self.expanded_filters, 1, padding="same", use_bias=False,
                dtype=self.dtype_policy, name="expand",
            )
            self.expand_bn = self._batch_norm("expand_bn")
            self.expand_activation = activation_layer(
                self.activation, "expand_activation", dtype=self.dtype_policy
            )
            self.expand.build(shape)
            shape = self.expand.compute_output_shape(shape)
            self.expand_bn.build(shape)
            self.expand_activation.build(shape)
        self.depthwise.build(shape)
        shape = self.depthwise.compute_output_shape(shape)
        self.depthwise_bn.build(shape)
        self.depthwise_activation.build(shape)
        if self.squeeze_excite is not None:
            self.squeeze_excite.build(shape)
        self.project.build(shape)
        shape = self.project.compute_output_shape(shape)
        self.project_bn.build(shape)
        if self.use_residual:
            self.add = keras.layers.Add(dtype=self.dtype_policy, name="add")
            self.add.build([tuple(input_shape), shape])
        super().build(input_shape)

    def call(self, inputs, training=None):
        x = inputs
        if self.expand is not None:
            x = self.expand(x)
            x = self.expand_bn(x, training=training)
            x = self.expand_activation(x)
        expanded = x
        x = self.depthwise(x)
        x = self.depthwise_bn(x, training=training)
        x = self.depthwise_activation(x)
        if self.squeeze_excite is not None:
            x = self.squeeze_excite(x)
        x = self.project(x)
        x = self.project_bn(x, training=training)
        if self.use_residual:
            x = self.add([inputs, x])
        if self.expansion_output:
            return x, expanded
        return x

    def compute_output_shape(self, input_shape):
        output_shape = self.project.compute_output_shape(
            self.depthwise.compute_output_shape(tuple(input_shape))
        )
        if not self.expansion_output:
            return output_shape
        in_channels = input_shape[-1]
        expanded = None if in_channels is None else self.expanded_channels(int(in_channels))
        return output_shape, tuple(input_shape[:-1]) + (expanded,)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "filters": self.filters,
                "kernel_size": self.kernel_size,
                "strides": self.strides,
                "expansion": self.expansion,
                "se_ratio": self.se_ratio,
                "activation": self.activation,
                "dilation_rate": self.dilation_rate,
                "bn_momentum": self.bn_momentum,
                "bn_epsilon": self.bn_epsilon,
                "divisor": self.divisor,
                "expansion_output": self.expansion_output,
            }
        )
        return config
