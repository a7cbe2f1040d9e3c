"""The paper's building blocks as Keras 3 layers, and their functional forms.

Everything here depends on Keras 3 public API only (`keras.layers`, `keras.ops`),
so it runs on the TensorFlow, JAX and PyTorch backends.
"""

from mnv3_layers.layers.efficient_last_stage import EfficientLastStage
from mnv3_layers.layers.hard_sigmoid import HardSigmoid
from mnv3_layers.layers.hard_swish import HardSwish
from mnv3_layers.layers.inverted_residual import InvertedResidual
from mnv3_layers.layers.make_divisible import make_divisible
from mnv3_layers.layers.squeeze_excite import SqueezeExcite

# Imported last on purpose: loading the submodules `hard_sigmoid.py` and
# `hard_swish.py` binds their module objects to these package attributes, so
# the functions must be bound after every submodule import above.
from mnv3_layers.layers.ops import hard_sigmoid, hard_swish  # noqa: E402

__all__ = [
    "EfficientLastStage",
    "HardSigmoid",
    "HardSwish",
    "InvertedResidual",
    "SqueezeExcite",
    "hard_sigmoid",
    "hard_swish",
    "make_divisible",
]
