"""MobileNetV3 ("Searching for MobileNetV3", Howard et al., ICCV 2019) as Keras 3 layers."""

from mnv3_layers.architecture.block_spec import (
    LARGE,
    SMALL,
    ArchitectureSpec,
    BlockSpec,
    resolve_architecture,
)
from mnv3_layers.layers import (
    EfficientLastStage,
    HardSigmoid,
    HardSwish,
    InvertedResidual,
    SqueezeExcite,
    hard_sigmoid,
    hard_swish,
    make_divisible,
)

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
