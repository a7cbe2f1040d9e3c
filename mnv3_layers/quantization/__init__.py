"""Quantization-aware training and TFLite/LiteRT export for MobileNetV3 models.

`quantize_model(model, engine="keras"|"tfmot")` (DESIGN.md, "Quantization"),
then `export_tflite`, `inspect_tflite`, `evaluate_tflite`.
"""

ENGINES = ("keras", "tfmot")


def quantize_model(model, engine="keras", **kwargs):
    """Returns a quantization-aware-training copy of a float MobileNetV3 model.

    Args:
        model: a float Keras 3 functional model built from this package's
            layers.
        engine: `"keras"` (Keras 3 fake-quant) or `"tfmot"` (tfmot on a
            tf_keras twin). Defaults to `"keras"`.
        **kwargs: engine options, see `keras_engine.quantize_model_keras`
            and `tfmot_engine.quantize_model_tfmot`.

    Returns:
        The QAT model (tf_keras for `"tfmot"`); train it one step or more
        before `export_tflite(qat, path, quantization="int8")`.

    Raises:
        ValueError: an unknown `engine` or a layer it cannot quantize.
        TypeError: `model` is not a Keras 3 model.
        ImportError: `engine="tfmot"` without the `qat` extra.

    Example:

    >>> import keras
    >>> from mnv3_layers.quantization import quantize_model
    >>> inputs = keras.Input((16, 16, 3))
    >>> x = keras.layers.Conv2D(8, 3, use_bias=False)(inputs)
    >>> x = keras.layers.BatchNormalization()(x)
    >>> x = keras.layers.ReLU()(x)
    >>> qat = quantize_model(keras.Model(inputs, x))
    >>> [type(layer).__name__ for layer in qat.layers]
    ['InputLayer', 'ActivationQuantizer', 'QuantConv']
    >>> quantize_model(qat, engine="tflite")
    Traceback (most recent call last):
    ...
    ValueError: `engine` must be one of ('keras', 'tfmot'). Received: engine='tflite'
    """
    if not isinstance(engine, str) or engine not in ENGINES:
        raise ValueError(f"`engine` must be one of {ENGINES}. Received: engine={engine!r}")
    if engine == "keras":
        from mnv3_layers.quantization.keras_engine import quantize_model_keras

        return quantize_model_keras(model, **kwargs)
    from mnv3_layers.quantization.tfmot_engine import quantize_model_tfmot

    return quantize_model_tfmot(model, **kwargs)


def __getattr__(name):
    # Lazy: export pulls in the TFLite converter, tfmot pulls in tf_keras.
    if name in ("export_tflite",):
        from mnv3_layers.quantization import export

        return getattr(export, name)
    if name in ("inspect_tflite", "evaluate_tflite", "TFLiteReport"):
        from mnv3_layers.quantization import inspect

        return getattr(inspect, name)
    if name in ("quantize_scope",):
        from mnv3_layers.quantization import tfmot_engine

        return getattr(tfmot_engine, name)
    raise AttributeError(f"module 'mnv3_layers.quantization' has no attribute {name!r}")


__all__ = [
    "ENGINES",
    "evaluate_tflite",
    "export_tflite",
    "inspect_tflite",
    "quantize_model",
    "quantize_scope",
]
