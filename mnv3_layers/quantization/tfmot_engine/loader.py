"""Loads tf_keras and tfmot on first use (extra `qat`), and the engine's tfmot classes."""

import importlib
import os
import threading

QAT_EXTRA = 'pip install "mnv3-layers[qat]"'

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
    return importlib.import_module("mnv3_layers.quantization.tfmot_engine.objects").OBJECTS
