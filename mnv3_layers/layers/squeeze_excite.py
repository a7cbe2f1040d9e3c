import keras

from mnv3_layers._registry import register
from mnv3_layers._validation import check_fraction, check_positive_int
from mnv3_layers.layers.hard_sigmoid import HardSigmoid
from mnv3_layers.layers.make_divisible import make_divisible


@register
class SqueezeExcite(keras.layers.Layer):
    """Squeeze-and-excite block of MobileNetV3.

    Formula (for an input `x` with `C` channels):

    ```
    s = global_average_pool(x)                       # (B, 1, 1, C)
    s = relu(conv1x1(s, make_divisible(C * se_ratio, divisor)) + bias)
    s = hard_sigmoid(conv1x1(s, C) + bias)
    output = x * s
    ```

    Args:
        se_ratio: squeeze width as a fraction of the input channels, in
            (0, 1]. Defaults to `0.25`.
        divisor: the squeeze width is rounded to a multiple of this.
            Defaults to `8`.
        **kwargs: base `keras.layers.Layer` arguments.

    Input shape: 4D `(batch, height, width, channels)`.
    Output shape: same as the input.

    Example:

    >>> import numpy as np
    >>> from mnv3_layers import SqueezeExcite
    >>> tuple(SqueezeExcite(se_ratio=0.25)(np.ones((1, 7, 7, 96), "float32")).shape)
    (1, 7, 7, 96)

    Reference: Howard et al., "Searching for MobileNetV3", ICCV 2019, section 5.3;
    Hu et al., "Squeeze-and-Excitation Networks", CVPR 2018.
    """

    def __init__(self, se_ratio=0.25, divisor=8, **kwargs):
        super().__init__(**kwargs)
        self.se_ratio = check_fraction("se_ratio", se_ratio, allow_zero=False, allow_one=True)
        self.divisor = check_positive_int("divisor", divisor)
        # === Layers === (convolutions need the input width: created in build)
        self.pool = keras.layers.GlobalAveragePooling2D(
            keepdims=True, dtype=self.dtype_policy, name="pool"
        )
        self.reduce_activation = keras.layers.ReLU(dtype=self.dtype_policy, name="relu")
        self.gate = HardSigmoid(dtype=self.dtype_policy, name="hard_sigmoid")
        self.multiply = keras.layers.Multiply(dtype=self.dtype_policy, name="multiply")
        self.reduce = None
        self.expand = None

    def squeeze_channels(self, channels):
        """Width of the squeeze convolution for an input of `channels`."""
        return make_divisible(channels * self.se_ratio, self.divisor)

    def build(self, input_shape):
        if len(input_shape) != 4 or input_shape[-1] is None:
            raise ValueError(
                "`SqueezeExcite` expects a 4D input with a known channel "
                f"dimension. Received: input_shape={tuple(input_shape)}"
            )
        channels = int(input_shape[-1])
        pooled_shape = (input_shape[0], 1, 1, channels)
        self.reduce = keras.layers.Conv2D(
            self.squeeze_channels(channels), 1, padding="same",
            dtype=self.dtype_policy, name="reduce",
        )
        self.expand = keras.layers.Conv2D(
            channels, 1, padding="same", dtype=self.dtype_policy, name="expand"
        )
        self.pool.build(input_shape)
        self.reduce.build(pooled_shape)
        squeezed_shape = self.reduce.compute_output_shape(pooled_shape)
        self.reduce_activation.build(squeezed_shape)
        self.expand.build(squeezed_shape)
        self.gate.build(pooled_shape)
        self.multiply.build([tuple(input_shape), pooled_shape])
        super().build(input_shape)

    def call(self, inputs):
        s = self.pool(inputs)
        s = self.reduce_activation(self.reduce(s))
        s = self.gate(self.expand(s))
        return self.multiply([inputs, s])

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        config = super().get_config()
        config.update({"se_ratio": self.se_ratio, "divisor": self.divisor})
        return config
