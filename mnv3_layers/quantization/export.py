"""Export a Keras model to a TFLite/LiteRT flatbuffer: float, dynamic-range or int8.

`export_tflite(model, path, quantization=None|"dynamic"|"int8")` converts a
Keras 3 or tf_keras (tfmot QAT) model, checks an int8 result is fully int8
and writes it atomically (`mnv3_layers.files`).
"""

import difflib
import numbers
import os
import sys
import warnings

import numpy as np

from mnv3_layers._validation import check_bool
from mnv3_layers.files import write_bytes_atomic
from mnv3_layers.latency import check_input_shape
from mnv3_layers.latency.tflite import frozen_converter, quiet_conversion
from mnv3_layers.quantization import _graph

QUANTIZATION_MODES = (None, "dynamic", "int8")

# tfmot initializes every range variable to [-6, 6]; training moves them.
_TFMOT_INITIAL_RANGE = 6.0


# === Argument checks ===


def check_quantization(quantization):
    """Validates `quantization`; suggests the closest mode on a typo."""
    if quantization is None or (
        isinstance(quantization, str) and quantization in QUANTIZATION_MODES
    ):
        return quantization
    hint = ""
    if isinstance(quantization, str):
        close = difflib.get_close_matches(
            quantization.lower(), [m for m in QUANTIZATION_MODES if m], n=1
        )
        if close:
            hint = f" Did you mean {close[0]!r}?"
    raise ValueError(
        f"`quantization` must be one of {QUANTIZATION_MODES}.{hint} "
        f"Received: quantization={quantization!r}"
    )


def check_output_path(path, suffix=".tflite"):
    """Validates an output file path before any slow work; returns it as a str."""
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(
            f"`path` must be a string or path-like ending in {suffix!r}. "
            f"Received: path of type {type(path).__name__}"
        )
    path = os.fspath(path)
    if not path.endswith(suffix):
        raise ValueError(f"`path` must end in {suffix!r}. Received: path={path!r}")
    if os.path.isdir(path):
        raise ValueError(f"`path` is a directory, not a file. Received: path={path!r}")
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise ValueError(
            f"The folder of `path` does not exist: {folder!r}. Create it first. "
            f"Received: path={path!r}"
        )
    return path


# === Models ===


def model_kind(model):
    """`"keras"` for a Keras 3 model, `"tf_keras"` for a tf_keras model."""
    import keras

    if isinstance(model, keras.Model):
        return "keras"
    # Only look at tf_keras if it is already imported: a tf_keras model cannot
    # exist otherwise, and importing it is slow.
    if "tf_keras" in sys.modules:
        import tf_keras

        if isinstance(model, tf_keras.Model):
            return "tf_keras"
    raise TypeError(
        "`model` must be a Keras 3 `keras.Model` or a `tf_keras.Model` (the tfmot "
        f"engine's QAT models). Received: model of type {type(model).__name__}"
    )


def _is_tfmot_layer(layer):
    names = {cls.__name__ for cls in type(layer).__mro__}
    return bool(names & {"QuantizeWrapper", "QuantizeWrapperV2", "QuantizeLayer"})


def qat_state(model, kind=None):
    """Describes the QAT state of a model.

    Returns:
        `None` for a float model, else a dict with `engine` (`"keras"` or
        `"tfmot"`) and `untrained`: names of fake-quant layers whose ranges
        were never set by training (empty when the ranges are usable).
    """
    kind = kind or model_kind(model)
    if kind == "keras":
        from mnv3_layers.quantization import keras_engine

        quant_layers = [
            layer for layer in _graph.all_layers(model) if keras_engine.is_qat_layer(layer)
        ]
        if not quant_layers:
            return None
        untrained = sorted(
            {layer.name for layer in quant_layers if not keras_engine.ranges_initialized(layer)}
        )
        return {"engine": "keras", "untrained": untrained}
    quant_layers = [layer for layer in _graph.all_layers(model) if _is_tfmot_layer(layer)]
    if not quant_layers:
        return None
    # A quantizer with an `*_initialized` flag (this package's tfmot engine)
    # says whether training set its range. Otherwise: tfmot's range variables
    # (`*_min`, `*_max`) start at -6 / +6 and every training step moves them
    # (weights: last value; activations: moving average).
    flagged, range_layers = {}, {}
    for layer in quant_layers:
        for variable in layer.weights:
            name = variable.name.split(":")[0]
            value = np.asarray(variable.numpy())
            if name.endswith("_initialized"):
                flagged[layer.name] = flagged.get(layer.name, True) and bool(np.all(value > 0.5))
            elif name.endswith("_min") or name.endswith("_max"):
                initial = -_TFMOT_INITIAL_RANGE if name.endswith("_min") else _TFMOT_INITIAL_RANGE
                moved = bool(np.any(value != initial))
                range_layers[layer.name] = range_layers.get(layer.name, False) or moved
    if flagged:
        untrained = sorted(name for name, done in flagged.items() if not done)
    elif range_layers and not any(range_layers.values()):
        untrained = sorted(range_layers)
    else:
        untrained = []
    return {"engine": "tfmot", "untrained": untrained}


def model_input_shapes(model):
    """Input shapes (without batch) of a Keras 3 or tf_keras model, or `None`."""
    try:
        inputs = model.inputs
    except (AttributeError, ValueError):
        return None
    if not inputs:
        return None
    shapes = []
    for tensor in inputs:
        shape = tensor.shape
        if hasattr(shape, "as_list"):
            shape = shape.as_list()
        shapes.append(tuple(None if d is None else int(d) for d in shape[1:]))
    return shapes


# === Representative data ===


def _as_input_array(element):
    """The model input of one representative element: `x`, `(x, y)` or `[x]`."""
    if isinstance(element, dict):
        raise ValueError(
            "`representative_data` elements must be arrays, `(x, y)` tuples or "
            "`[x]` lists; dicts are not supported. Received: an element of type dict"
        )
    if isinstance(element, (list, tuple)):
        if not element:
            raise ValueError(
                "`representative_data` yielded an empty list/tuple; expected an input "
                "array, `(x, y)` or `[x]`."
            )
        element = element[0]
    if hasattr(element, "numpy"):
        element = element.numpy()
    return np.asarray(element, dtype=np.float32)


def _shape_matches(actual, expected):
    return len(actual) == len(expected) and all(
        e is None or a == e for a, e in zip(actual, expected)
    )


def _batches(array, expected_shape, position):
    """Splits one element into batch-1 samples, checking its shape."""
    shape = tuple(array.shape)
    if _shape_matches(shape, expected_shape):
        return [array[None]]
    if len(shape) == len(expected_shape) + 1 and _shape_matches(shape[1:], expected_shape):
        return [array[i : i + 1] for i in range(shape[0])]
    raise ValueError(
        "`representative_data` must hold model inputs of shape "
        f"{_format_shape(expected_shape)} (one sample) or (batch, "
        f"{_format_shape(expected_shape)[1:-1]}) (a batch). Received: {position} of "
        f"shape {shape}"
    )


def _format_shape(shape):
    return "(" + ", ".join("None" if d is None else str(d) for d in shape) + ")"


def representative_dataset(representative_data, expected_shape, max_samples=None):
    """Validates `representative_data` and returns a converter generator function.

    Accepts a NumPy array of samples `(N, *input_shape)`, a `tf.data.Dataset`
    (of `x` or `(x, y)`, batched or not), a callable returning an iterable, or
    an iterable/generator of such elements. The first element is read and its
    shape checked now, before any conversion.
    """
    if representative_data is None:
        return None
    if isinstance(representative_data, (str, bytes)) or isinstance(
        representative_data, numbers.Number
    ):
        raise TypeError(
            "`representative_data` must be an array of samples, a tf.data.Dataset, "
            "a generator or a callable returning one. "
            f"Received: representative_data={representative_data!r}"
        )
    if isinstance(representative_data, np.ndarray) or (
        hasattr(representative_data, "shape") and hasattr(representative_data, "dtype")
        and not hasattr(representative_data, "element_spec")
    ):
        array = np.asarray(representative_data, dtype=np.float32)
        if array.ndim != len(expected_shape) + 1 or not _shape_matches(
            array.shape[1:], expected_shape
        ):
            raise ValueError(
                "`representative_data` as an array must have shape (num_samples, "
                f"{_format_shape(expected_shape)[1:-1]}). Received: representative_data "
                f"of shape {array.shape}"
            )
        if array.shape[0] == 0:
            raise ValueError(
                "`representative_data` is empty. Received: representative_data of "
                f"shape {array.shape}"
            )
        if max_samples is not None:
            array = array[:max_samples]

        def from_array():
            for i in range(array.shape[0]):
                yield [array[i : i + 1]]

        return from_array

    if callable(representative_data) and not hasattr(representative_data, "element_spec"):
        make_iterable = representative_data
    else:
        try:
            iter(representative_data)
        except TypeError:
            raise TypeError(
                "`representative_data` must be an array of samples, a tf.data.Dataset, "
                "a generator or a callable returning one. Received: "
                f"representative_data of type {type(representative_data).__name__}"
            ) from None

        def make_iterable():
            return representative_data

    # Read and check the first element now; a one-shot generator is resumed
    # after it, a dataset, list or callable is iterated afresh on each call.
    iterator = iter(make_iterable())
    try:
        first = next(iterator)
    except StopIteration:
        raise ValueError("`representative_data` is empty: it yielded no samples.") from None
    head = _batches(_as_input_array(first), expected_shape, "its first element")
    pending = [(head, iterator)]

    def samples():
        if pending:
            (head_samples, rest), start = pending.pop(), 1
        else:
            head_samples, rest, start = [], iter(make_iterable()), 0
        yield from head_samples
        for position, element in enumerate(rest, start=start):
            yield from _batches(_as_input_array(element), expected_shape,
                                f"element {position}")

    def generator():
        for count, sample in enumerate(samples()):
            if max_samples is not None and count >= max_samples:
                return
            yield [sample]

    return generator


# === Conversion ===


def _input_specs(model, input_shape):
    """`tf.TensorSpec`s of the model inputs at batch size 1."""
    import tensorflow as tf

    inputs = list(getattr(model, "inputs", None) or [])
    if not inputs:
        raise ValueError(
            f"Cannot export model {model.name!r}: it has no symbolic inputs. Build it "
            "with `keras.Input` (functional or Sequential models)."
        )
    if input_shape is not None and len(inputs) > 1:
        raise ValueError(
            "`input_shape` can only be given for single-input models; this model has "
            f"{len(inputs)} inputs. Received: input_shape={input_shape!r}"
        )
    specs = []
    for i, tensor in enumerate(inputs):
        shape = tensor.shape.as_list() if hasattr(tensor.shape, "as_list") else tensor.shape
        shape = tuple(shape[1:]) if input_shape is None else tuple(input_shape)
        if input_shape is not None:
            known = tuple(tensor.shape)[1:]
            if len(known) != len(shape) or any(
                k is not None and k != d for k, d in zip(known, shape)
            ):
                raise ValueError(
                    f"`input_shape` must fit the model's input shape {known} (None means "
                    f"any size). Received: input_shape={input_shape!r}"
                )
        dtype = tensor.dtype
        dtype = tf.as_dtype(dtype if isinstance(dtype, str) else dtype.name)
        specs.append(tf.TensorSpec((1,) + shape, dtype, name=f"input_{i}"))
    return specs


def _converter(model, input_shape):
    """A TFLite converter of `model(x, training=False)` at batch size 1 (frozen graph)."""
    return frozen_converter(model, _input_specs(model, input_shape))


def _check_qat_export(state, quantization, representative_data):
    """Errors for a QAT model exported as anything but int8, with data, or untrained."""
    if quantization != "int8":
        raise ValueError(
            "This is a quantization-aware-training model (engine "
            f"{state['engine']!r}): export it with quantization='int8' (its "
            "fake-quant ranges give a full-integer model). For a float or "
            "dynamic-range model, export the float model it was made from. "
            f"Received: quantization={quantization!r}"
        )
    if representative_data is not None:
        raise ValueError(
            "`representative_data` is not used for a quantization-aware-training "
            "model: its ranges come from training. Pass representative_data=None. "
            f"Received: representative_data of type {type(representative_data).__name__}"
        )
    if state["untrained"]:
        names = state["untrained"]
        shown = ", ".join(repr(n) for n in names[:5]) + (" ..." if len(names) > 5 else "")
        raise ValueError(
            "The quantization-aware-training model was never trained: the "
            f"fake-quant ranges of {len(names)} layer(s) ({shown}) were never set, "
            "so an int8 export would be broken (chance accuracy). Train it for at "
            "least one step (`model.fit(...)`) before exporting."
        )


def _float_representative(model, quantization, representative_data, input_shape):
    """The calibration generator of a float model's post-training int8 (else `None`)."""
    if representative_data is not None and quantization != "int8":
        raise ValueError(
            "`representative_data` is only used with quantization='int8' "
            "(post-training full-integer quantization). "
            f"Received: quantization={quantization!r}"
        )
    if quantization == "int8" and representative_data is None:
        raise ValueError(
            "Post-training int8 quantization of a float model needs "
            "`representative_data` (a few hundred typical inputs: an array of "
            "shape (num_samples, height, width, channels), a tf.data.Dataset or a "
            "generator) to calibrate the activation ranges. "
            "Received: representative_data=None"
        )
    if representative_data is None:
        return None
    shapes = model_input_shapes(model)
    if not shapes or len(shapes) != 1:
        raise ValueError("`representative_data` is supported for single-input models only.")
    expected = input_shape if input_shape is not None else shapes[0]
    return representative_dataset(representative_data, expected)


def _set_quantization(converter, quantization, representative, int8_io):
    """The converter settings of each `quantization` mode."""
    import tensorflow as tf

    if quantization in ("dynamic", "int8"):
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if quantization == "int8":
        if representative is not None:
            # Post-training: int8 kernels only, so the converter fails instead
            # of falling back to float. (Not for a QAT model: the converter
            # would then ask for a representative dataset; checked after.)
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
            converter.representative_dataset = representative
        if int8_io:
            converter.inference_input_type = tf.int8
            converter.inference_output_type = tf.int8


def _check_int8_content(content):
    """Refuses a converted "int8" model with float or inner (de)quantize ops; warns on zeros."""
    from mnv3_layers.quantization.inspect import inspect_tflite

    report = inspect_tflite(content)
    problems = []
    if report.float_ops:
        problems.append(f"float compute ops {report.float_ops[:8]}")
    if report.stray_quantize_ops:
        problems.append(
            f"quantize/dequantize ops inside the graph {report.stray_quantize_ops[:8]}"
        )
    if problems:
        raise ValueError(
            "The converted model is not fully int8 (" + "; ".join(problems) + "). "
            "Nothing was written. For a QAT model this means a fake-quant point is "
            "missing; for post-training quantization, an op has no int8 kernel."
        )
    zeroed = report.zeroed_weights
    if zeroed:
        names = ", ".join(
            f"{w['op']}#{w['index']} {w['tensor'].split(';')[0]!r} "
            f"({w['zero_channels']}/{w['channels']} channels)"
            for w in zeroed[:4]
        )
        warnings.warn(
            f"The int8 model has {len(zeroed)} weight tensor(s) with output channels "
            f"whose int8 weights are all zero: {names}"
            + (", ..." if len(zeroed) > 4 else "") + ". Those channels output only "
            "their bias. This usually means the op's input range is tiny next to its "
            "bias (an untrained or dead layer, or calibration data that never excite "
            "it), so the converter raised the weight scale to fit the int32 bias. "
            "Check the int8 file's accuracy (`evaluate_tflite`); train the model or "
            "use representative data like the real inputs.",
            UserWarning,
            stacklevel=4,
        )


def convert(model, quantization=None, representative_data=None, int8_io=False,
            input_shape=None):
    """Converts and checks; returns the flatbuffer bytes (nothing is written).

    Same arguments and errors as `export_tflite`, without `path`.
    """
    quantization = check_quantization(quantization)
    check_bool("int8_io", int8_io)
    if int8_io and quantization != "int8":
        raise ValueError(
            "`int8_io=True` needs a full-integer model, i.e. quantization='int8'. "
            f"Received: quantization={quantization!r}, int8_io=True"
        )
    input_shape = check_input_shape(input_shape)
    state = qat_state(model, model_kind(model))
    if state is not None:
        _check_qat_export(state, quantization, representative_data)
        representative = None
    else:
        representative = _float_representative(
            model, quantization, representative_data, input_shape)
    with quiet_conversion():
        converter = _converter(model, input_shape)
        _set_quantization(converter, quantization, representative, int8_io)
        content = converter.convert()
    if quantization == "int8":
        _check_int8_content(content)
    return content


# === Public API ===


def export_tflite(
    model,
    path,
    quantization=None,
    representative_data=None,
    int8_io=False,
    input_shape=None,
):
    """Exports a Keras model to a `.tflite` (LiteRT) file, atomically.

    Args:
        model: a Keras 3 model (float, or QAT from
            `quantize_model(..., engine="keras")`) or a `tf_keras` model (QAT
            from `engine="tfmot"`).
        path: output file, ending in `.tflite`, in an existing folder
            (written atomically).
        quantization: `None` (float), `"dynamic"` (int8 weights, float
            activations; float models only) or `"int8"` (full integer: from
            the fake-quant ranges of a QAT model, or post-training with
            `representative_data` for a float model). Defaults to `None`.
        representative_data: calibration inputs for post-training `"int8"`
            of a float model: an array `(num_samples, *input_shape)`, a
            `tf.data.Dataset` of `x` or `(x, y)` (batched or not), a generator
            or a callable returning one. Not used for QAT models.
            Defaults to `None`.
        int8_io: int8 input and output tensors (with their scale and zero
            point) instead of float ones; needs `quantization="int8"`.
            Defaults to `False`.
        input_shape: input shape without the batch dimension, e.g.
            `(224, 224, 3)`, to export a model whose input size is unknown
            (`(None, None, 3)`) at a fixed size. Defaults to `None` (the
            model's own input shape).

    Returns:
        `path`, as a string.

    Raises:
        ValueError: a bad `quantization`, `path`, `int8_io` or
            `representative_data`, a QAT model exported as float/dynamic or
            never trained, or an `"int8"` result that is not fully int8.
            Nothing is written then.
        TypeError: `model` is not a Keras 3 or tf_keras model, or bad
            argument types.

    Warns:
        UserWarning: an `"int8"` file has weight channels quantized to all
            zeros (`inspect_tflite(path).zeroed_weights`); the file is written.

    Example:

    >>> import os, tempfile, keras
    >>> from mnv3_layers.quantization import export_tflite
    >>> inputs = keras.Input((16, 16, 3))
    >>> x = keras.layers.Conv2D(4, 3, activation="relu")(inputs)
    >>> model = keras.Model(inputs, keras.layers.GlobalAveragePooling2D()(x))
    >>> path = os.path.join(tempfile.mkdtemp(), "model.tflite")
    >>> export_tflite(model, path, quantization="dynamic") == path
    True
    """
    path = check_output_path(path)
    content = convert(
        model,
        quantization=quantization,
        representative_data=representative_data,
        int8_io=int8_io,
        input_shape=input_shape,
    )
    return write_bytes_atomic(path, content)
