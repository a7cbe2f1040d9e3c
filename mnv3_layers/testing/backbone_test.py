"""`run_backbone_test`: one call that checks a backbone-shaped `keras.Model`
(keras-hub's `run_vision_backbone_test` on public Keras 3 API)."""

import json
import os
import tempfile

import keras
import numpy as np

from mnv3_layers.testing.layer_test import _check, _shape

__all__ = ["run_backbone_test"]


def run_backbone_test(
    cls,
    init_kwargs,
    input_data,
    expected_output_shape,
    expected_pyramid_output_keys,
    expected_pyramid_image_sizes,
    *,
    expected_pyramid_channels=None,
    run_mixed_precision_check=True,
    run_save_load_check=True,
    atol=1e-5,
    rtol=1e-5,
):
    """Checks a backbone class in one call; raises `AssertionError` on failure.

    Checks on `cls(**init_kwargs)`: the output shape; `pyramid_outputs` keys,
    sizes and channels; `feature_info` / `pyramid_level_inputs` (when present)
    agree with the tensors; JSON-safe `from_config` and `.keras` round trips
    (same class, config and outputs); float16 compute with float32 variables
    under the global `"mixed_float16"` policy.

    Args:
        cls: the backbone class.
        init_kwargs: dict of constructor arguments.
        input_data: a batch of images to call the model on.
        expected_output_shape: shape of the model output on `input_data`.
        expected_pyramid_output_keys: the keys of `pyramid_outputs`, in order.
        expected_pyramid_image_sizes: `(rows, cols)` per key, in the same order.
        expected_pyramid_channels: channels per key, or `None` to skip.
            Defaults to `None`.
        run_mixed_precision_check: build once under `"mixed_float16"`.
            Defaults to `True`.
        run_save_load_check: save and load a `.keras` file. Defaults to `True`.
        atol: absolute tolerance. Defaults to `1e-5`.
        rtol: relative tolerance. Defaults to `1e-5`.

    Example:

    >>> import numpy as np
    >>> from mnv3_layers.applications import MobileNetV3Backbone
    >>> from mnv3_layers.testing import run_backbone_test
    >>> run_backbone_test(
    ...     MobileNetV3Backbone,
    ...     {"variant": "small", "alpha": 0.35, "input_shape": (64, 64, 3)},
    ...     np.zeros((1, 64, 64, 3), "float32"),
    ...     expected_output_shape=(1, 2, 2, 192),
    ...     expected_pyramid_output_keys=["P1", "P2", "P3", "P4", "P5"],
    ...     expected_pyramid_image_sizes=[(32, 32), (16, 16), (8, 8), (4, 4), (2, 2)],
    ...     run_mixed_precision_check=False,
    ...     run_save_load_check=False,
    ... )
    """
    if not isinstance(init_kwargs, dict):
        raise TypeError(f"`init_kwargs` must be a dict. Received: init_kwargs={init_kwargs!r}")
    input_data = np.asarray(input_data)
    name = cls.__name__
    model = cls(**init_kwargs)
    output = keras.ops.convert_to_numpy(model(input_data, training=False))
    _check(
        output.shape == tuple(expected_output_shape),
        f"{name}: output shape {output.shape} != expected {tuple(expected_output_shape)}",
    )
    _check_pyramid(model, input_data, list(expected_pyramid_output_keys),
                   [tuple(size) for size in expected_pyramid_image_sizes],
                   expected_pyramid_channels, name)
    _check_feature_metadata(model, input_data, name)
    _check_config_round_trip(cls, model, input_data, output, atol, rtol, name)
    if run_save_load_check:
        _check_keras_file(cls, model, input_data, output, atol, rtol, name)
    if run_mixed_precision_check:
        _check_global_mixed_precision(cls, init_kwargs, input_data, name)


def _check_pyramid(model, input_data, keys, sizes, channels, name):
    pyramid = model.pyramid_outputs
    _check(list(pyramid) == keys,
           f"{name}: pyramid_outputs keys {list(pyramid)} != expected {keys}")
    _check(len(sizes) == len(keys),
           f"{name}: {len(sizes)} expected sizes for {len(keys)} pyramid keys")
    symbolic = [tuple(_shape(pyramid[key].shape)[1:3]) for key in keys]
    _check(symbolic == sizes, f"{name}: pyramid sizes {symbolic} != expected {sizes}")
    eager = keras.Model(model.input, pyramid)(input_data, training=False)
    eager_sizes = [tuple(eager[key].shape[1:3]) for key in keys]
    _check(eager_sizes == sizes,
           f"{name}: eager pyramid sizes {eager_sizes} != expected {sizes}")
    if channels is not None:
        found = [int(pyramid[key].shape[-1]) for key in keys]
        _check(found == list(channels),
               f"{name}: pyramid channels {found} != expected {list(channels)}")


def _check_feature_metadata(model, input_data, name):
    """`feature_info` / `pyramid_level_inputs` agree with the tensors they describe."""
    height, width = input_data.shape[1:3]
    for tap in getattr(model, "feature_info", ()):
        tensor = model.feature_outputs[tap.key]
        expected = (-(-height // tap.stride), -(-width // tap.stride), tap.channels)
        _check(
            tuple(_shape(tensor.shape)[1:]) == expected,
            f"{name}: tap {tap.key!r} (stride {tap.stride}, {tap.channels} channels) "
            f"has shape {tuple(tensor.shape)}, expected (batch, *{expected})",
        )
        if tap.level is not None:
            _check(model.pyramid_outputs[tap.level] is tensor,
                   f"{name}: pyramid_outputs[{tap.level!r}] is not tap {tap.key!r}")
    for level, layer_name in getattr(model, "pyramid_level_inputs", {}).items():
        layer_output = model.get_layer(layer_name).output
        _check(
            _shape(layer_output.shape) == _shape(model.pyramid_outputs[level].shape),
            f"{name}: pyramid_level_inputs[{level!r}]={layer_name!r} has shape "
            f"{layer_output.shape}, pyramid_outputs[{level!r}] "
            f"{model.pyramid_outputs[level].shape}",
        )


def _check_config_round_trip(cls, model, input_data, output, atol, rtol, name):
    config = model.get_config()
    try:
        json_config = json.loads(json.dumps(config))
    except TypeError as err:
        raise AssertionError(f"{name}: get_config() is not JSON-serializable: {err}") from err
    revived = cls.from_config(json_config)
    _check(type(revived) is cls, f"{name}.from_config returned {type(revived).__name__}")
    _check(revived.get_config() == config,
           f"{name}: config changed in the from_config round trip.\n"
           f"before: {config}\nafter:  {revived.get_config()}")
    revived.set_weights(model.get_weights())
    _assert_close(revived, input_data, output, atol, rtol,
                  f"{name}: outputs differ after from_config + set_weights")


def _check_keras_file(cls, model, input_data, output, atol, rtol, name):
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "backbone.keras")
        model.save(path)
        loaded = keras.saving.load_model(path)
    _check(type(loaded) is cls, f"{name}: load_model returned {type(loaded).__name__}")
    _check(loaded.get_config() == model.get_config(),
           f"{name}: config changed in .keras save/load")
    _assert_close(loaded, input_data, output, atol, rtol,
                  f"{name}: outputs differ after .keras save/load")


def _check_global_mixed_precision(cls, init_kwargs, input_data, name):
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_float16")
    try:
        model = cls(**init_kwargs)
    finally:
        keras.config.set_dtype_policy(previous)
    output = model(input_data.astype("float32"), training=False)
    _check(keras.backend.standardize_dtype(output.dtype) == "float16",
           f"{name}: under the mixed_float16 policy the output is {output.dtype}")
    _check(np.all(np.isfinite(keras.ops.convert_to_numpy(output))),
           f"{name}: mixed-precision output has non-finite values")
    wrong = [w.path for w in model.weights
             if keras.backend.standardize_dtype(w.dtype) != "float32"]
    _check(not wrong, f"{name}: under mixed_float16 these variables are not float32: {wrong}")


def _assert_close(model, input_data, expected, atol, rtol, message):
    actual = keras.ops.convert_to_numpy(model(input_data, training=False))
    try:
        np.testing.assert_allclose(actual, expected, atol=atol, rtol=rtol)
    except AssertionError as err:
        raise AssertionError(f"{message}: {err}") from err
