import keras

from mnv3_layers._registry import register
from mnv3_layers.layers.ops import hard_sigmoid


@register
class HardSigmoid(keras.layers.Layer):
    """Hard sigmoid activation layer of MobileNetV3.

    Formula:

    ```
    hard_sigmoid(x) = relu6(x + 3) / 6
                    = 0            if x <= -3
                    = x / 6 + 0.5  if -3 < x < 3
                    = 1            if x >= 3
    ```

    Not `tf_keras`'s `hard_sigmoid` (`0.2 * x + 0.5`), a different function.

    Args:
        **kwargs: base `keras.layers.Layer` arguments (`name`, `dtype`, ...).

    Input shape: any. Output shape: same as the input.

    Example:

    >>> import numpy as np
    >>> from mnv3_layers import HardSigmoid
    >>> [float(v) for v in HardSigmoid()(np.array([-3.5, -3.0, 0.0, 3.0, 3.5]))]
    [0.0, 0.0, 0.5, 1.0, 1.0]

    Reference: Howard et al., "Searching for MobileNetV3", ICCV 2019, section 5.2.
    """

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.supports_masking = True

    def call(self, inputs):
        return hard_sigmoid(inputs)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        return super().get_config()
