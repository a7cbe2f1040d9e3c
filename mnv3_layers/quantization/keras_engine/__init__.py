"""The Keras 3 QAT engine: fake-quant layers placed by explicit rules.

- `quantizers`: weight fake-quant and `ActivationQuantizer`.
- `layers`: the QAT layers (`QuantConv`, `QuantDense`, `QuantAdd`, ...).
- `graph`: the flattened op list of a float model.
- `builder`: fusion and rebuild as a QAT functional model.
- `api`: `quantize_model_keras`.
"""

from mnv3_layers.quantization.keras_engine.api import quantize_model_keras
from mnv3_layers.quantization.keras_engine.layers import (
    QuantActivation,
    QuantAdd,
    QuantConcatenate,
    QuantConv,
    QuantDense,
    QuantGlobalAveragePooling,
    QuantMultiply,
    QuantRescaling,
    _QuantLayer,  # noqa: F401  (tests check the QAT layer base class)
    is_qat_layer,
    ranges_initialized,
)
from mnv3_layers.quantization.keras_engine.quantizers import (
    ACTIVATIONS,
    HARD_SWISH_FORMS,
    ActivationQuantizer,
    fake_quant_weights,
)

__all__ = [
    "ACTIVATIONS",
    "HARD_SWISH_FORMS",
    "ActivationQuantizer",
    "QuantActivation",
    "QuantAdd",
    "QuantConcatenate",
    "QuantConv",
    "QuantDense",
    "QuantGlobalAveragePooling",
    "QuantMultiply",
    "QuantRescaling",
    "fake_quant_weights",
    "is_qat_layer",
    "quantize_model_keras",
    "ranges_initialized",
]
