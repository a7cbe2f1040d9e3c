"""Annotating the tf_keras twin and applying tfmot (`quantize_model_tfmot`)."""

import contextlib

from mnv3_layers._validation import check_bool
from mnv3_layers.quantization import _graph
from mnv3_layers.quantization.keras_engine.quantizers import (
    _check_hard_swish_form,
    _check_range_momentum,
)
from mnv3_layers.quantization.tfmot_engine.loader import _import_tfmot, _objects
from mnv3_layers.quantization.tfmot_engine.twin import build_tf_keras_twin


def quantize_scope(*custom_objects):
    """tfmot's `quantize_scope` plus this package's tf_keras layers and configs.

    Use it to clone, `quantize_apply` or deserialize tf_keras models with
    this package's tf_keras layers or `QuantizeConfig`s.

    Args:
        *custom_objects: more `{name: class}` dicts for the scope.

    Returns:
        A context manager (tf_keras `CustomObjectScope`).

    Example:

    ```python
    import tf_keras
    import tensorflow_model_optimization as tfmot
    from mnv3_layers.quantization import tfmot_engine as te

    annotate = tfmot.quantization.keras.quantize_annotate_layer
    inputs = tf_keras.Input((32, 32, 3))
    x = tf_keras.layers.Conv2D(8, 3, padding="same", use_bias=False)(inputs)
    x = tf_keras.layers.BatchNormalization()(x)
    x = annotate(te.TFKerasHardSwish(), te.HardSwishQuantizeConfig())(x)
    model = tfmot.quantization.keras.quantize_annotate_model(
        tf_keras.Model(inputs, x))
    with te.quantize_scope():
        qat = tfmot.quantization.keras.quantize_apply(model)
    ```
    """
    _, tfmot = _import_tfmot()
    objects = dict(_objects())
    for extra in custom_objects:
        objects.update(extra)
    return tfmot.quantization.keras.quantize_scope(objects)


def quantize_model_tfmot(model, range_momentum=0.99, freeze_batch_norm=True, hard_swish="op"):
    """Returns a tfmot QAT tf_keras model of a float Keras 3 model.

    `quantize_apply` with `MobileNetV3QuantizeScheme` on the tf_keras twin
    (`build_tf_keras_twin`). Train it with a tf_keras optimizer
    (`jit_compile=False` on CPU) one step or more before `export_tflite`.
    Save it with `qat.save_weights` (a TF checkpoint) and restore into a QAT
    model rebuilt from the same float model: no `.keras` or `.h5` round trip.

    Args:
        model: a float Keras 3 functional model of this package's layers
            and common Keras layers, or a tf_keras model (e.g. a twin).
        range_momentum: momentum of the moving-average activation ranges,
            in [0, 1). Defaults to `0.99`.
        freeze_batch_norm: batch norms run in inference mode during QAT;
            `False` keeps tfmot's batch statistics. Defaults to `True`.
        hard_swish: `"op"` or `"elementwise"`, as in the Keras engine; must
            stay `"op"` for a tf_keras `model` (its layers' `form` decides).
            Defaults to `"op"`.

    Returns:
        A tf_keras `Model` of `QuantizeWrapperV2` layers with `model`'s
        float weights (`model` is not changed).

    Raises:
        ValueError: a layer the engine cannot translate, or a bad
            `range_momentum`.
        TypeError: `model` is not a Keras model.
        ImportError: tfmot or tf_keras is missing (extra `qat`).

    Example:

    ```python
    qat = quantize_model(MobileNetV3Small(), engine="tfmot")
    qat.compile(tf_keras.optimizers.Adam(1e-5), "sparse_categorical_crossentropy",
                jit_compile=False)  # on CPU
    qat.fit(images, labels, epochs=1)
    export_tflite(qat, "model_int8.tflite", quantization="int8", int8_io=True)
    ```
    """
    range_momentum = _check_range_momentum(range_momentum)
    check_bool("freeze_batch_norm", freeze_batch_norm)
    _check_hard_swish_form(hard_swish)
    tfk, tfmot = _import_tfmot()
    twin = _twin(model, hard_swish, tfk)
    annotated = _annotate(twin, range_momentum)
    annotated.set_weights(twin.get_weights())
    scheme = _objects()["MobileNetV3QuantizeScheme"](range_momentum)
    with quantize_scope(), _autograph_off():
        qat = tfmot.quantization.keras.quantize_apply(annotated, scheme=scheme)
    if freeze_batch_norm:
        for layer in qat.layers:
            if isinstance(getattr(layer, "layer", None), tfk.layers.BatchNormalization):
                layer.layer.trainable = False
    return qat


def _twin(model, hard_swish, tfk):
    """`model` itself if it is a functional tf_keras model, else its twin."""
    if not isinstance(model, tfk.Model):
        return build_tf_keras_twin(model, hard_swish)
    if hard_swish != "op":
        raise ValueError(
            "`hard_swish` applies when the twin is built from a Keras 3 model; for a "
            "tf_keras model, set `form=\"elementwise\"` on its TFKerasHardSwish layers "
            "(or build it with `build_tf_keras_twin(model, hard_swish=...)`). "
            f"Received: hard_swish={hard_swish!r} with tf_keras model {model.name!r}"
        )
    if not model._is_graph_network:
        raise ValueError(
            "`model` must be a functional tf_keras model; a subclassed model has "
            f"no graph to annotate. Received: model {model.name!r}"
        )
    return model


def _annotate(twin, range_momentum):
    """`twin` cloned with every layer annotated for tfmot."""
    tfk, tfmot = _import_tfmot()
    objects = _objects()
    registry = objects["MobileNetV3QuantizeRegistry"](range_momentum)
    consumers = _graph.tf_keras_consumers(twin)
    producers = {}
    for source, users in consumers.items():
        for user in users:
            producers.setdefault(user, []).append(source)
    by_name = {layer.name: layer for layer in twin.layers}
    annotate = tfmot.quantization.keras.quantize_annotate_layer

    def gate_conv(layer):
        users = consumers.get(layer.name, [])
        return (
            type(layer) is tfk.layers.Conv2D
            and layer.get_config()["activation"] == "linear"
            and len(users) == 1
            and isinstance(by_name[users[0]], objects["TFKerasHardSigmoid"])
        )

    def clone(layer):
        if isinstance(layer, tfk.layers.InputLayer):
            return layer
        if gate_conv(layer):
            return annotate(layer, objects["GateConvQuantizeConfig"](range_momentum))
        if isinstance(layer, tfk.layers.BatchNormalization):
            # tfmot folds a batch norm into the convolution before it.
            sources = [by_name[n] for n in producers.get(layer.name, [])]
            if len(sources) != 1 or type(sources[0]) not in (
                tfk.layers.Conv2D, tfk.layers.DepthwiseConv2D
            ):
                raise ValueError(
                    f"Batch norm layer {layer.name!r} does not follow a Conv2D or "
                    "DepthwiseConv2D, so tfmot cannot fold it; the tfmot engine "
                    "supports batch norms only right after a convolution."
                )
            return annotate(layer)
        if not registry.supports(layer):
            raise ValueError(
                f"The tfmot engine has no QuantizeConfig for layer {layer.name!r} of "
                f"type {type(layer).__name__}."
            )
        return annotate(layer)

    with quantize_scope():
        return tfk.models.clone_model(twin, clone_function=clone)


@contextlib.contextmanager
def _autograph_off():
    """Builds layers without AutoGraph conversion (faster; the same graph).

    The layers have no tensor-dependent Python control flow.
    """
    try:
        from tensorflow.python.autograph.core import ag_ctx
    except ImportError:  # internal module moved: build with AutoGraph
        yield
        return
    with ag_ctx.ControlStatusCtx(status=ag_ctx.Status.DISABLED):
        yield
