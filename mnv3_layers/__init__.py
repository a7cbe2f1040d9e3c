"""MobileNetV3 ("Searching for MobileNetV3", Howard et al., ICCV 2019) as Keras 3 layers."""

from mnv3_layers.block_spec import (
    LARGE,
    SMALL,
    ArchitectureSpec,
    BlockSpec,
    resolve_architecture,
)
from mnv3_layers.efficient_last_stage import EfficientLastStage
from mnv3_layers.hard_sigmoid import HardSigmoid
from mnv3_layers.hard_swish import HardSwish
from mnv3_layers.inverted_residual import InvertedResidual
from mnv3_layers.make_divisible import make_divisible
from mnv3_layers.squeeze_excite import SqueezeExcite

# Imported last on purpose: loading the submodules `hard_sigmoid.py` and
# `hard_swish.py` binds their module objects to these package attributes, so
# the functions must be bound after every submodule import above.
from mnv3_layers.activations import hard_sigmoid, hard_swish  # noqa: E402

__version__ = "0.1.0"

__all__ = [
    "ArchitectureSpec",
    "BlockSpec",
    "EfficientLastStage",
    "HardSigmoid",
    "HardSwish",
    "InvertedResidual",
    "LARGE",
    "SMALL",
    "SqueezeExcite",
    "hard_sigmoid",
    "hard_swish",
    "make_divisible",
    "resolve_architecture",
]
