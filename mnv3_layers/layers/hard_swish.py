import keras

from mnv3_layers._registry import register
from mnv3_layers.layers.ops import hard_swish


@register
class HardSwish(keras.layers.Layer):
    """Hard swish activation layer of MobileNetV3.

    Formula:

    ```
    hard_swish(x) = x * relu6(x + 3) / 6
    ```

    Computed as `x * relu6(x + 3) * (1/6)`, which TFLite fuses into one `HARD_SWISH` op.

    Args:
        **kwargs: base `keras.layers.Layer` arguments (`name`, `dtype`, ...).

    Input shape: any. Output shape: same as the input.

    Example:

    >>> import numpy as np
    >>> from mnv3_layers import HardSwish
    >>> [float(v) for v in HardSwish()(np.array([-3.5, -3.0, 0.0, 3.0, 3.5]))]
    [-0.0, -0.0, 0.0, 3.0, 3.5]

    Reference: Howard et al., "Searching for MobileNetV3", ICCV 2019, section 5.2.
    """

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.supports_masking = True

    def call(self, inputs):
        return hard_swish(inputs)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        return super().get_config()
