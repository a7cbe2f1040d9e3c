"""The tensorflow-model-optimization (tfmot) QAT engine: a flat tf_keras twin.

tfmot 0.8 quantizes tf_keras models only: `quantize_model_tfmot(model)`
builds a flat tf_keras twin of the Keras 3 model (`build_tf_keras_twin`,
through the shared walk `quantization._graph`), copies the weights and
applies tfmot with this package's QuantizeConfigs (`objects`, imported on
first use: extra `qat`), placed as the Keras engine places its fake quants.
Importing tfmot leaves `keras` and `tf.keras` as they were.
"""

import importlib
import os
import threading

QAT_EXTRA = 'pip install "mnv3-layers[qat]"'

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

_LOCK = threading.Lock()
_CACHE = {}


def _import_tfmot():
    """Imports tf_keras and tfmot once; returns `(tf_keras, tfmot)`.

    tfmot's `compat` module sets `TF_USE_LEGACY_KERAS=1` in `os.environ` and
    reads `tf.keras.version()`, which would route a still unresolved
    `tf.keras` to tf_keras for the whole process. So `tf.keras` is resolved
    first, under the user's own setting, and the variable is restored.
    """
    if "modules" in _CACHE:
        return _CACHE["modules"]
    with _LOCK:
        if "modules" in _CACHE:
            return _CACHE["modules"]
        import tensorflow as tf

        saved = os.environ.get("TF_USE_LEGACY_KERAS")
        try:
            getattr(tf.keras, "version", None)  # resolves tf.keras's lazy loader now
            importlib.import_module("tf_keras")  # an ImportError if it is missing
            import tensorflow_model_optimization as tfmot
            from tensorflow_model_optimization.python.core.keras.compat import (
                keras as tfmot_keras,
            )
        except ImportError as error:
            raise ImportError(
                "The tfmot QAT engine needs tensorflow-model-optimization and "
                f"tf_keras. Install them with: {QAT_EXTRA}"
            ) from error
        finally:
            if saved is None:
                os.environ.pop("TF_USE_LEGACY_KERAS", None)
            else:
                os.environ["TF_USE_LEGACY_KERAS"] = saved
        _CACHE["modules"] = (tfmot_keras, tfmot)
        return _CACHE["modules"]


def _objects():
    """`{name: class}` of the engine's tf_keras layers and QuantizeConfigs."""
    _import_tfmot()  # raises the ImportError naming the extra
    return importlib.import_module(f"{__name__}.objects").OBJECTS


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
