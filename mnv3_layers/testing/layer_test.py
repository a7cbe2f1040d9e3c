"""`run_layer_test`: one call that checks everything a Keras layer must do.

Public Keras 3 API only (keras' own is private), so other projects can use it too.
"""

import json
import math
import os
import tempfile

import keras
import numpy as np

__all__ = ["assert_raises_for_argument", "run_layer_test"]


def run_layer_test(
    layer_cls,
    init_kwargs,
    input_shape,
    *,
    expected_output_shape,
    expected_num_trainable_weights,
    expected_num_non_trainable_weights,
    input_data=None,
    expected_output=None,
    run_training_check=True,
    run_mixed_precision_check=True,
    run_save_load_check=True,
    atol=1e-6,
    rtol=1e-6,
    seed=0,
):
    """Checks a layer class in one call; raises `AssertionError` on failure.

    Each check runs on a fresh `layer_cls(**init_kwargs)`:

    1. serialization: `from_config`, JSON and `deserialize_keras_object` (no
       `custom_objects`: the class must be registered) round trips keep the config;
    2. weights: right after `build(input_shape)`, the expected numbers of
       trainable and non-trainable weights, with unique paths;
    3. symbolic shapes: known and unknown batch both give
       `compute_output_shape` and `expected_output_shape`;
    4. eager values: finite, of `expected_output_shape`, equal to
       `expected_output` (when given) within `atol`/`rtol`;
    5. training: one SGD `fit` step changes every trainable weight;
    6. mixed precision: `dtype="mixed_float16"` gives float16 outputs,
       float32 variables, the policy on every sublayer and in the config;
    7. saving: `.keras` save and load (random weights) gives the same outputs.

    Args:
        layer_cls: the layer class to test.
        init_kwargs: dict of constructor arguments.
        input_shape: full input shape with the batch size, all dimensions
            known, e.g. `(2, 8, 8, 16)`.
        expected_output_shape: full output shape including the batch size.
        expected_num_trainable_weights: number of trainable variables once built.
        expected_num_non_trainable_weights: the same for non-trainable ones.
        input_data: array to call the layer on. Defaults to random normal
            data of `input_shape`.
        expected_output: expected eager output on `input_data` (inference
            mode). Defaults to `None` (only finiteness is checked).
        run_training_check: run check 5. Defaults to `True`.
        run_mixed_precision_check: run check 6. Defaults to `True`.
        run_save_load_check: run check 7. Defaults to `True`.
        atol: absolute tolerance for value comparisons. Defaults to `1e-6`.
        rtol: relative tolerance. Defaults to `1e-6`.
        seed: seed of the random input data, targets and weights. Defaults to `0`.

    Example:

    >>> from mnv3_layers import InvertedResidual
    >>> from mnv3_layers.testing import run_layer_test
    >>> run_layer_test(
    ...     InvertedResidual,
    ...     {"filters": 16, "expansion": 4.0, "se_ratio": 0.25},
    ...     (2, 8, 8, 16),
    ...     expected_output_shape=(2, 8, 8, 16),
    ...     # expand conv, depthwise, 2 SE convs with bias, project: 1+1+2+2+1;
    ...     # 3 batch norms: gamma and beta trainable, mean and variance not.
    ...     expected_num_trainable_weights=13,
    ...     expected_num_non_trainable_weights=6,
    ...     run_training_check=False,
    ... )
    """
    rng = np.random.default_rng(seed)
    input_shape, input_data = _prepare_input(init_kwargs, input_shape, input_data, rng)
    expected_output_shape = tuple(expected_output_shape)
    name = layer_cls.__name__

    _check_serialization(layer_cls, init_kwargs, name)
    _check_build_weights(
        layer_cls, init_kwargs, input_shape, name,
        expected_num_trainable_weights, expected_num_non_trainable_weights,
    )
    _check_symbolic(layer_cls, init_kwargs, input_shape, expected_output_shape, name)
    _check_eager(
        layer_cls, init_kwargs, input_data, expected_output_shape, expected_output,
        atol, rtol, name,
    )
    if run_training_check:
        _check_training(layer_cls, init_kwargs, input_data, expected_output_shape, rng, name)
    if run_mixed_precision_check:
        _check_mixed_precision(layer_cls, init_kwargs, input_data, name)
    if run_save_load_check:
        _check_save_load(layer_cls, init_kwargs, input_data, rng, atol, rtol, name)


def assert_raises_for_argument(
    fn, kwargs, argument, value, exception=(ValueError, TypeError)
):
    """Asserts `fn(**kwargs, argument=value)` raises with a helpful message.

    The error must be one of `exception`, its message naming the argument and
    `argument=value` (`repr`), as in "... Received: se_ratio=1.5".

    Args:
        fn: a callable, typically a layer class.
        kwargs: the other keyword arguments (valid ones).
        argument: name of the argument under test.
        value: the bad value.
        exception: exception class or tuple of classes allowed.
            Defaults to `(ValueError, TypeError)`.

    Returns:
        The exception raised.

    Example:

    >>> from mnv3_layers import SqueezeExcite
    >>> from mnv3_layers.testing import assert_raises_for_argument
    >>> err = assert_raises_for_argument(SqueezeExcite, {}, "se_ratio", 1.5)
    >>> type(err).__name__
    'ValueError'
    """
    call_kwargs = dict(kwargs)
    call_kwargs[argument] = value
    fn_name = getattr(fn, "__name__", repr(fn))
    try:
        fn(**call_kwargs)
    except exception as err:  # noqa: PERF203
        message = str(err)
        needle = f"{argument}={value!r}"
        if argument not in message or needle not in message:
            raise AssertionError(
                f"{fn_name}({argument}={value!r}) raised {type(err).__name__} whose "
                f"message does not contain {needle!r}: {message!r}"
            ) from err
        return err
    except Exception as err:
        raise AssertionError(
            f"{fn_name}({argument}={value!r}) raised {type(err).__name__}, "
            f"expected one of {_names(exception)}: {err}"
        ) from err
    raise AssertionError(
        f"{fn_name}({argument}={value!r}) did not raise {_names(exception)}"
    )


# --- individual checks ------------------------------------------------------


def _prepare_input(init_kwargs, input_shape, input_data, rng):
    """-> (input_shape as a tuple, input data), both checked."""
    if not isinstance(init_kwargs, dict):
        raise TypeError(f"`init_kwargs` must be a dict. Received: init_kwargs={init_kwargs!r}")
    input_shape = tuple(input_shape)
    if any(d is None for d in input_shape):
        raise ValueError(
            f"`input_shape` must be fully known. Received: input_shape={input_shape}"
        )
    if input_data is None:
        return input_shape, rng.standard_normal(input_shape).astype("float32")
    input_data = np.asarray(input_data)
    _check(
        input_data.shape == input_shape,
        f"`input_data` has shape {input_data.shape} but input_shape={input_shape}",
    )
    return input_shape, input_data


def _check(condition, message):
    if not condition:
        raise AssertionError(message)


def _names(exception):
    if isinstance(exception, tuple):
        return "/".join(e.__name__ for e in exception)
    return exception.__name__


def _shape(shape):
    return tuple(None if d is None else int(d) for d in shape)


def _check_serialization(layer_cls, init_kwargs, name):
    layer = layer_cls(**init_kwargs)
    config = layer.get_config()
    _check(isinstance(config, dict), f"{name}.get_config() must return a dict, got {config!r}")
    try:
        revived = layer_cls.from_config(config)
    except Exception as err:
        raise AssertionError(f"{name}.from_config(get_config()) failed: {err!r}") from err
    _check(
        revived.get_config() == config,
        f"{name}: config changed in the from_config round trip.\n"
        f"before: {config}\nafter:  {revived.get_config()}",
    )
    try:
        json_config = json.loads(json.dumps(config))
    except TypeError as err:
        raise AssertionError(f"{name}: get_config() is not JSON-serializable: {err}") from err
    json_revived = layer_cls.from_config(json_config)
    _check(
        json_revived.get_config() == config,
        f"{name}: config changed in a JSON round trip.\n"
        f"before: {config}\nafter:  {json_revived.get_config()}",
    )

    serialized = keras.saving.serialize_keras_object(layer)
    serialized = json.loads(json.dumps(serialized))
    registered = keras.saving.get_registered_name(layer_cls)
    _check(
        registered != layer_cls.__name__ or layer_cls.__module__.startswith("keras"),
        f"{name} is not registered with keras.saving.register_keras_serializable",
    )
    try:
        deserialized = keras.saving.deserialize_keras_object(serialized)
    except Exception as err:
        raise AssertionError(
            f"{name}: deserialize_keras_object without custom_objects failed "
            f"(is the class registered?): {err!r}"
        ) from err
    _check(
        type(deserialized) is layer_cls,
        f"{name}: deserialize_keras_object returned {type(deserialized).__name__}",
    )
    _check(
        deserialized.get_config() == config,
        f"{name}: config changed in the serialize/deserialize round trip.\n"
        f"before: {config}\nafter:  {deserialized.get_config()}",
    )


def _check_weight_counts(layer, expected_trainable, expected_non_trainable, name, when):
    trainable = len(layer.trainable_weights)
    non_trainable = len(layer.non_trainable_weights)
    _check(
        trainable == expected_trainable,
        f"{name} {when}: expected {expected_trainable} trainable weights, found "
        f"{trainable}: {[w.path for w in layer.trainable_weights]}",
    )
    _check(
        non_trainable == expected_non_trainable,
        f"{name} {when}: expected {expected_non_trainable} non-trainable weights, "
        f"found {non_trainable}: {[w.path for w in layer.non_trainable_weights]}",
    )


def _check_build_weights(
    layer_cls, init_kwargs, input_shape, name, expected_trainable, expected_non_trainable
):
    layer = layer_cls(**init_kwargs)
    layer.build(input_shape)
    _check(layer.built, f"{name}.build() did not set `built`")
    _check_weight_counts(
        layer, expected_trainable, expected_non_trainable, name, "right after build()"
    )
    paths = [w.path for w in layer.weights]
    _check(
        len(set(paths)) == len(paths),
        f"{name}: weight paths are not unique: {paths}",
    )


def _check_symbolic(layer_cls, init_kwargs, input_shape, expected_output_shape, name):
    layer = layer_cls(**init_kwargs)
    output = layer(keras.KerasTensor(input_shape, dtype="float32"))
    try:
        computed = _shape(layer.compute_output_shape(input_shape))
    except NotImplementedError as err:
        raise AssertionError(f"{name} does not implement compute_output_shape: {err}") from err
    _check(
        _shape(output.shape) == computed,
        f"{name}: symbolic output shape {_shape(output.shape)} != "
        f"compute_output_shape {computed}",
    )
    _check(
        computed == expected_output_shape,
        f"{name}: output shape {computed} != expected {expected_output_shape}",
    )

    layer = layer_cls(**init_kwargs)
    output = layer(keras.Input(shape=input_shape[1:]))
    expected = (None,) + expected_output_shape[1:]
    computed = _shape(layer.compute_output_shape((None,) + input_shape[1:]))
    _check(
        _shape(output.shape) == computed == expected,
        f"{name}: with unknown batch size, symbolic output shape "
        f"{_shape(output.shape)}, compute_output_shape {computed}, expected {expected}",
    )


def _check_eager(
    layer_cls, init_kwargs, input_data, expected_output_shape, expected_output, atol, rtol, name
):
    layer = layer_cls(**init_kwargs)
    output = keras.ops.convert_to_numpy(layer(input_data, training=False))
    _check(
        output.shape == expected_output_shape,
        f"{name}: eager output shape {output.shape} != expected {expected_output_shape}",
    )
    _check(np.all(np.isfinite(output)), f"{name}: eager output has non-finite values")
    if expected_output is not None:
        try:
            np.testing.assert_allclose(output, np.asarray(expected_output), atol=atol, rtol=rtol)
        except AssertionError as err:
            raise AssertionError(f"{name}: eager output differs from expected_output: {err}") from err


def _model_around(layer, input_data):
    inputs = keras.Input(shape=input_data.shape[1:], batch_size=None)
    return keras.Model(inputs, layer(inputs))


def _check_training(layer_cls, init_kwargs, input_data, expected_output_shape, rng, name):
    layer = layer_cls(**init_kwargs)
    model = _model_around(layer, input_data)
    target = rng.standard_normal(expected_output_shape).astype("float32")
    # Plain SGD: every weight with a non-zero gradient moves, and its
    # training step compiles several times faster than Adam's.
    model.compile(optimizer=keras.optimizers.SGD(1e-2), loss="mse", jit_compile=False)
    before = [keras.ops.convert_to_numpy(w).copy() for w in layer.trainable_weights]
    history = model.fit(
        input_data, target, batch_size=input_data.shape[0], epochs=1, shuffle=False, verbose=0
    )
    loss = history.history["loss"][0]
    _check(math.isfinite(loss), f"{name}: loss after one fit step is {loss}")
    unchanged = [
        w.path
        for w, old in zip(layer.trainable_weights, before)
        if np.array_equal(keras.ops.convert_to_numpy(w), old)
    ]
    _check(
        not unchanged,
        f"{name}: trainable weights unchanged by one fit step (no gradient?): {unchanged}",
    )
    for w in layer.weights:
        _check(
            np.all(np.isfinite(keras.ops.convert_to_numpy(w))),
            f"{name}: weight {w.path} is not finite after one fit step",
        )


def _sublayers(layer, seen=None):
    """Every layer held in an attribute of `layer` (recursively), public API only."""
    seen = set() if seen is None else seen
    found = []
    for value in vars(layer).values():
        values = value if isinstance(value, (list, tuple)) else [value]
        for item in values:
            if isinstance(item, keras.layers.Layer) and id(item) not in seen:
                seen.add(id(item))
                found.append(item)
                found.extend(_sublayers(item, seen))
    return found


def _check_mixed_precision(layer_cls, init_kwargs, input_data, name):
    kwargs = dict(init_kwargs, dtype="mixed_float16")
    layer = layer_cls(**kwargs)
    output = layer(input_data.astype("float32"))
    _check(
        keras.backend.standardize_dtype(output.dtype) == "float16",
        f"{name}: with dtype='mixed_float16' the output is {output.dtype}, expected float16",
    )
    _check(
        np.all(np.isfinite(keras.ops.convert_to_numpy(output))),
        f"{name}: mixed-precision output has non-finite values",
    )
    wrong = [
        f"{w.path}: {w.dtype}"
        for w in layer.weights
        if keras.backend.standardize_dtype(w.dtype) != "float32"
    ]
    _check(not wrong, f"{name}: under mixed_float16 these variables are not float32: {wrong}")
    wrong = [
        f"{sub.name}: {sub.dtype_policy.name}"
        for sub in _sublayers(layer)
        if sub.dtype_policy.name != "mixed_float16"
    ]
    _check(not wrong, f"{name}: sublayers that ignore the mixed_float16 policy: {wrong}")
    revived = layer_cls.from_config(layer.get_config())
    _check(
        revived.dtype_policy.name == "mixed_float16",
        f"{name}: the dtype policy is lost in the config round trip "
        f"(got {revived.dtype_policy.name})",
    )


def _check_save_load(layer_cls, init_kwargs, input_data, rng, atol, rtol, name):
    layer = layer_cls(**init_kwargs)
    model = _model_around(layer, input_data)
    # Random, non-default values everywhere (positive, so batch-norm
    # variances stay valid): a weight that is silently not restored shows.
    for w in model.weights:
        w.assign(rng.uniform(0.5, 1.5, size=tuple(w.shape)).astype(w.dtype))
    expected = keras.ops.convert_to_numpy(model(input_data, training=False))
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "model.keras")
        model.save(path)
        loaded = keras.saving.load_model(path)
    loaded_layers = [lay for lay in loaded.layers if isinstance(lay, layer_cls)]
    _check(
        len(loaded_layers) == 1,
        f"{name}: the loaded model holds {len(loaded_layers)} {name} layers, expected 1",
    )
    _check(
        loaded_layers[0].get_config() == layer.get_config(),
        f"{name}: config changed in .keras save/load.\nbefore: {layer.get_config()}\n"
        f"after:  {loaded_layers[0].get_config()}",
    )
    actual = keras.ops.convert_to_numpy(loaded(input_data, training=False))
    try:
        np.testing.assert_allclose(actual, expected, atol=atol, rtol=rtol)
    except AssertionError as err:
        raise AssertionError(f"{name}: outputs differ after .keras save/load: {err}") from err
