"""The tensorflow-model-optimization (tfmot) QAT engine: a flat tf_keras twin.

tfmot 0.8 quantizes tf_keras models only: `quantize_model_tfmot(model)`
builds a flat tf_keras twin of the Keras 3 model (`build_tf_keras_twin`,
through the shared walk `quantization._graph`), copies the weights and
applies tfmot with this package's QuantizeConfigs (`objects`, imported on
first use: extra `qat`), placed as the Keras engine places its fake quants.
Importing tfmot leaves `keras` and `tf.keras` as they were.
"""

from mnv3_layers.quantization.tfmot_engine.loader import (  # noqa: F401
    QAT_EXTRA,
    _import_tfmot,
    _objects,
)

# Public names of `objects` (they subclass tf_keras / tfmot classes).
_LAZY_NAMES = (
    "TFKerasHardSwish",
    "TFKerasHardSigmoid",
    "TFKerasRescaling",
    "FirstBatchMovingAverageQuantizer",
    "DepthwisePerChannelQuantizer",
    "OutputQuantizeConfig",
    "HardSwishQuantizeConfig",
    "HardSigmoidQuantizeConfig",
    "RescalingQuantizeConfig",
    "MultiplyQuantizeConfig",
    "GateConvQuantizeConfig",
    "ConvQuantizeConfig",
    "DepthwiseConvQuantizeConfig",
    "DenseQuantizeConfig",
    "MobileNetV3QuantizeRegistry",
    "MobileNetV3QuantizeLayoutTransform",
    "MobileNetV3QuantizeScheme",
)

def __getattr__(name):
    if name in _LAZY_NAMES:
        return _objects()[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


from mnv3_layers.quantization.tfmot_engine.api import (
    quantize_model_tfmot,
    quantize_scope,
)
from mnv3_layers.quantization.tfmot_engine.twin import build_tf_keras_twin

__all__ = [
    "QAT_EXTRA",
    "ConvQuantizeConfig",
    "DenseQuantizeConfig",
    "DepthwiseConvQuantizeConfig",
    "DepthwisePerChannelQuantizer",
    "FirstBatchMovingAverageQuantizer",
    "GateConvQuantizeConfig",
    "HardSigmoidQuantizeConfig",
    "HardSwishQuantizeConfig",
    "MobileNetV3QuantizeLayoutTransform",
    "MobileNetV3QuantizeRegistry",
    "MobileNetV3QuantizeScheme",
    "MultiplyQuantizeConfig",
    "OutputQuantizeConfig",
    "RescalingQuantizeConfig",
    "TFKerasHardSigmoid",
    "TFKerasHardSwish",
    "TFKerasRescaling",
    "build_tf_keras_twin",
    "quantize_model_tfmot",
    "quantize_scope",
]
