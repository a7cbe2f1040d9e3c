"""The one home of TFLite conversion, LiteRT interpreters and interpreter timing.

Converters (`frozen_converter`, `keras_converter`, `convert_float_tflite`,
`convert_to_tflite`), `make_interpreter` (extra `litert`) and the timer
(`TFLiteTimer`, `time_runners`, `flush_caches`, `make_input`).
"""

import contextlib
import io
import logging
import time
import warnings

import numpy as np

LITERT_INSTALL_HINT = 'pip install "mnv3-layers[litert]"'
TFLITE_FILE_IDENTIFIER = b"TFL3"


def is_tflite(header):
    """Whether `header` (the first 8 bytes) carries the flatbuffer identifier `TFL3`."""
    return len(header) >= 8 and bytes(header[4:8]) == TFLITE_FILE_IDENTIFIER


def read_header(path):
    """The first 8 bytes of the file at `path`."""
    with open(path, "rb") as f:
        return f.read(8)


# === Conversion ===


@contextlib.contextmanager
def quiet_conversion():
    """Silences the converter's expected chatter (stdout, absl, warnings)."""
    absl_logger = logging.getLogger("absl")
    level = absl_logger.level
    # A frozen function has no trackable object; the converter warns about it.
    absl_logger.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
            # Expected for QAT models: the input range comes from the fake-quant.
            warnings.filterwarnings("ignore", message="Statistics for quantized inputs")
            yield
    finally:
        absl_logger.setLevel(level)


def frozen_converter(model, input_specs):
    """A `TFLiteConverter` of `model(x, training=False)` traced at `input_specs`.

    Variables are frozen to constants: the same ops as `from_keras_model`,
    for Keras 3 and tf_keras models, without a SavedModel. Several specs call
    the model on a list.
    """
    import tensorflow as tf
    from tensorflow.python.framework.convert_to_constants import (
        convert_variables_to_constants_v2,
    )

    def call(*args):
        return model(args[0] if len(args) == 1 else list(args), training=False)

    concrete = tf.function(call, autograph=False).get_concrete_function(*input_specs)
    frozen = convert_variables_to_constants_v2(concrete)
    return tf.lite.TFLiteConverter.from_concrete_functions([frozen])


def keras_converter(model):
    """`tf.lite.TFLiteConverter.from_keras_model(model)` (TensorFlow backend only)."""
    import keras

    if keras.backend.backend() != "tensorflow":
        raise ValueError(
            "runtime='tflite' converts Keras models with TensorFlow's TFLite converter, "
            f"which needs the TensorFlow backend; the backend is {keras.backend.backend()!r}. "
            "Export the model to a `.tflite` file and pass its path instead."
        )
    import tensorflow as tf

    return tf.lite.TFLiteConverter.from_keras_model(model)


def convert_float_tflite(model):
    """Float TFLite flatbuffer of a fixed-shape, single-input Keras model.

    Converts through `frozen_converter`, else (TensorFlow's private freezing
    module moved) `convert_to_tflite`.
    """
    import tensorflow as tf

    try:
        from tensorflow.python.framework import convert_to_constants  # noqa: F401
    except ImportError:  # pragma: no cover - private TF module moved
        return convert_to_tflite(model)
    spec = tf.TensorSpec(tuple(model.inputs[0].shape), model.inputs[0].dtype)
    with quiet_conversion():
        return frozen_converter(model, [spec]).convert()


def convert_to_tflite(model):
    """Float TFLite flatbuffer of a Keras model through `from_keras_model`."""
    converter = keras_converter(model)
    with quiet_conversion():
        return converter.convert()


# === Interpreters ===


def import_litert_interpreter():
    """The LiteRT `Interpreter` class; an `ImportError` naming the `litert` extra if missing."""
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError as e:
        raise ImportError(
            "The TFLite runtime needs the LiteRT interpreter (`ai-edge-litert`). "
            f"Install it with: {LITERT_INSTALL_HINT}"
        ) from e
    return Interpreter


def make_interpreter(model_path=None, model_content=None, num_threads=1, delegate=True):
    """A LiteRT interpreter of a `.tflite` file (`model_path`) or of bytes (`model_content`).

    `delegate=False` runs the builtin kernels without the default XNNPACK
    delegate (so `get_ops_details` lists every op).
    """
    Interpreter = import_litert_interpreter()
    kwargs = {"num_threads": num_threads}
    if not delegate:
        from ai_edge_litert.interpreter import OpResolverType

        kwargs["experimental_op_resolver_type"] = (
            OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
        )
    if model_path is not None:
        return Interpreter(model_path=model_path, **kwargs)
    return Interpreter(model_content=model_content, **kwargs)


def make_input(shape, dtype, seed, quantization=None):
    """Seeded uniform [0, 255] input of `shape`, in `dtype` (quantized if integer)."""
    rng = np.random.default_rng(seed)
    values = rng.uniform(0.0, 255.0, size=shape)
    dtype = np.dtype(dtype)
    if np.issubdtype(dtype, np.floating):
        return values.astype(dtype)
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        scale, zero_point = quantization if quantization else (0.0, 0)
        if scale and scale > 0:
            q = np.rint(values / scale + zero_point)
        else:
            q = rng.integers(info.min, int(info.max) + 1, size=shape)
        return np.clip(q, info.min, info.max).astype(dtype)
    if dtype == np.bool_:
        return values > 127.5
    raise ValueError(f"Cannot generate an input of dtype {dtype}.")


def _target_shape(detail, input_shape, batch_size, description):
    """The input shape to run at: the model's own, or `(batch_size, *input_shape)`."""
    current = tuple(int(d) for d in detail["shape"])
    if batch_size is None and input_shape is None:
        return current
    if input_shape is None:
        signature = tuple(int(d) for d in detail.get("shape_signature", detail["shape"]))
        if any(d < 0 for d in signature[1:]):
            raise ValueError(
                f"`input_shape` is required: the input shape of {description} has "
                f"unknown dimensions (shape signature {list(signature)}). Pass e.g. "
                "input_shape=(224, 224, 3) (without the batch dimension)."
            )
        input_shape = current[1:]
    return (current[0] if batch_size is None else batch_size,) + tuple(input_shape)


# === Timing ===


class TFLiteTimer:
    """One TFLite model in a LiteRT interpreter with a fixed seeded input.

    `run()` is one `invoke()`; `reload_input()` writes the input again (after
    a cache flush: the input, not the weights, back in cache).

    Args:
        flatbuffer: TFLite bytes, or `None` with `model_path`.
        num_threads: interpreter threads. Defaults to `1`.
        seed: seed of the input values (`make_input`). Defaults to `0`.
        model_path: a `.tflite` file instead. Defaults to `None`.
        input_shape, batch_size: run resized to `(batch_size, *input_shape)`.
            Defaults to `None` (the model's own shape).
        description: the model in error messages. Defaults to `"the model"`.
    """

    def __init__(self, flatbuffer=None, num_threads=1, seed=0, *, model_path=None,
                 input_shape=None, batch_size=None, description="the model"):
        self.interpreter = make_interpreter(model_path, flatbuffer, num_threads)
        details = self.interpreter.get_input_details()
        if len(details) != 1:
            raise ValueError(
                f"Only single-input models can be timed; {description} has "
                f"{len(details)} inputs."
            )
        detail = details[0]
        target = _target_shape(detail, input_shape, batch_size, description)
        if target != tuple(int(d) for d in detail["shape"]):
            try:
                self.interpreter.resize_tensor_input(detail["index"], list(target), strict=False)
            except (RuntimeError, ValueError) as e:
                raise ValueError(
                    f"Cannot run {description} with batch_size={target[0]} and "
                    f"input_shape={target[1:]}: its input shape is "
                    f"{list(detail['shape'])} ({e})."
                ) from e
        try:
            self.interpreter.allocate_tensors()
        except (RuntimeError, ValueError) as e:
            raise ValueError(f"Cannot run {description} with input {list(target)}: {e}") from e
        self.index = detail["index"]
        self.shape = target
        self.x = make_input(target, detail["dtype"], seed, detail.get("quantization"))
        self.reload_input()
        self.run = self.interpreter.invoke

    def reload_input(self):
        self.interpreter.set_tensor(self.index, self.x)


def _stats(prefix, ms):
    ms = np.asarray(ms, dtype=np.float64)
    return {
        f"{prefix}median_ms": float(np.median(ms)),
        f"{prefix}min_ms": float(np.min(ms)),
        f"{prefix}p10_ms": float(np.percentile(ms, 10)),
        f"{prefix}p90_ms": float(np.percentile(ms, 90)),
    }


FLUSH_BYTES = 64 * 1024 * 1024
_FLUSH_BUFFER = []


def flush_caches():
    """Reads (not writes, so no write-back follows) a 64 MiB buffer, evicting the CPU caches."""
    if not _FLUSH_BUFFER:
        _FLUSH_BUFFER.append(np.ones(FLUSH_BYTES // 8))  # Real pages, not the zero page.
    return float(_FLUSH_BUFFER[0].sum())


def _time_round(timer, modes, record, count, rewarm):
    """`count` timed runs of `timer` per mode ("" warm, "cold_"), on both clocks."""
    run, perf_counter, thread_time_ns = timer.run, time.perf_counter, time.thread_time_ns
    for mode in modes:
        wall, cpu = record[(mode, "")], record[(mode, "cpu_")]
        if rewarm and not mode and count:
            run()
        for _ in range(count):
            if mode:
                flush_caches()
                timer.reload_input()
            c0 = thread_time_ns()
            t0 = perf_counter()
            run()
            t1 = perf_counter()
            c1 = thread_time_ns()
            wall.append((t1 - t0) * 1e3)
            cpu.append((c1 - c0) * 1e-6)


def time_runners(timers, warmup, runs, cold=False, rounds=5, rewarm=True):
    """Times `TFLiteTimer`s on two clocks, warm and (optionally) cold, interleaved.

    After `warmup` untimed runs each, `runs` timed runs per timer are split
    into up to `rounds` rounds, each running every timer in turn, timed on
    the wall clock and the calling thread's CPU clock. `rewarm`: one untimed
    run first in every round. `cold` (a bool, or one per timer): also `runs`
    runs each after `flush_caches()` and `reload_input()`.

    Returns:
        One dict per timer: `median_ms`, `min_ms`, `p10_ms`, `p90_ms` (wall,
        warm), the same with a `cpu_` prefix, with `cold=True` the same four
        groups with a `cold_` prefix, `runs` and `warmup`.
    """
    cold = [cold] * len(timers) if isinstance(cold, bool) else [bool(c) for c in cold]
    if len(cold) != len(timers):
        raise ValueError("`cold` must be a bool or one bool per timer.")
    for timer in timers:
        for _ in range(warmup):
            timer.run()
    rounds = max(1, min(runs, rounds))
    per_round = [runs // rounds + (i < runs % rounds) for i in range(rounds)]
    modes = [("", "cold_") if flag else ("",) for flag in cold]
    times = [{(m, c): [] for m in mode for c in ("", "cpu_")} for mode in modes]
    for count in per_round:
        for timer, record, mode in zip(timers, times, modes):
            _time_round(timer, mode, record, count, rewarm)
    results = []
    for record in times:
        result = {"runs": int(runs), "warmup": int(warmup)}
        for (mode, clock), ms in record.items():
            result.update(_stats(mode + clock, ms))
        results.append(result)
    return results
