"""Functional hard-sigmoid and hard-swish (MobileNetV3 paper, section 5.2).

Written in the form the TFLite converter fuses (one ``HARD_SWISH`` op); not
`tf_keras`'s ``hard_sigmoid`` (``0.2 * x + 0.5``).
"""

from keras import ops

_ONE_SIXTH = 1.0 / 6.0


def hard_sigmoid(x):
    """Hard sigmoid: ``relu6(x + 3) / 6``.

    Example:

    >>> import numpy as np
    >>> from mnv3_layers import hard_sigmoid
    >>> [float(v) for v in hard_sigmoid(np.array([-3.5, 0.0, 3.5]))]
    [0.0, 0.5, 1.0]
    """
    x = ops.convert_to_tensor(x)
    return ops.relu6(ops.add(x, 3.0)) * _ONE_SIXTH


def hard_swish(x):
    """Hard swish: ``x * relu6(x + 3) / 6``.

    Example:

    >>> import numpy as np
    >>> from mnv3_layers import hard_swish
    >>> [float(v) for v in hard_swish(np.array([-3.5, 0.0, 3.5]))]
    [-0.0, 0.0, 3.5]
    """
    x = ops.convert_to_tensor(x)
    return ops.multiply(x, ops.relu6(ops.add(x, 3.0))) * _ONE_SIXTH
