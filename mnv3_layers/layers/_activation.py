"""Maps the activation names used by the block tables to layers."""

import keras

from mnv3_layers._validation import check_activation
from mnv3_layers.layers.hard_swish import HardSwish


def activation_layer(activation, name=None, dtype=None):
    """Returns a fresh layer for `"relu"` or `"hard_swish"`."""
    check_activation("activation", activation)
    if activation == "relu":
        return keras.layers.ReLU(name=name, dtype=dtype)
    return HardSwish(name=name, dtype=dtype)
