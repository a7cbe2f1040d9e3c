"""Batch-1 inference latency of a Keras model or a TFLite flatbuffer, measured on this CPU.

`measure_latency(...)` returns a `LatencyReport`; `measure_tflite(...)` the
wall and CPU-clock latency of a float TFLite model, as `LatencyTable` predicts
it. Only single-input models are supported.
"""

import dataclasses
import numbers
import os
import time
import warnings

import keras
import numpy as np

from mnv3_layers._validation import check_choice, check_positive_int
from mnv3_layers.files import dataclass_to_json
from mnv3_layers.latency.tflite import (  # noqa: F401 - also this module's names
    LITERT_INSTALL_HINT,
    TFLITE_FILE_IDENTIFIER,
    TFLiteTimer,
    convert_float_tflite,
    convert_to_tflite,
    import_litert_interpreter,
    is_tflite,
    make_input,
    read_header,
    time_runners,
)

RUNTIMES = ("keras", "tflite")

# Settings already warned about (warn once per process and setting).
_THREAD_WARNINGS = set()


# === Report ===


@dataclasses.dataclass(frozen=True)
class LatencyReport:
    """Result of `measure_latency`: latency statistics in milliseconds.

    Attributes:
        median_ms, p10_ms, p90_ms, mean_ms, std_ms, min_ms, max_ms: statistics
            of the timed runs (`std_ms`: sample standard deviation, 0 for one run).
        runs, warmup, runtime, num_threads, batch_size, input_shape: as measured.
        input_dtype: dtype of the input fed to the model.
        source: what was measured, in words.
        notes: anything that qualifies the numbers (e.g. threads not applied).
        times_ms: every timed run, in order.
    """

    median_ms: float
    p10_ms: float
    p90_ms: float
    mean_ms: float
    std_ms: float
    min_ms: float
    max_ms: float
    runs: int
    warmup: int
    runtime: str
    num_threads: int
    batch_size: int
    input_shape: tuple
    input_dtype: str
    source: str
    notes: tuple = ()
    times_ms: tuple = dataclasses.field(default=(), repr=False)

    @classmethod
    def from_times(cls, seconds, **fields):
        ms = np.asarray(seconds, dtype=np.float64) * 1e3
        return cls(
            median_ms=float(np.median(ms)),
            p10_ms=float(np.percentile(ms, 10)),
            p90_ms=float(np.percentile(ms, 90)),
            mean_ms=float(np.mean(ms)),
            std_ms=float(np.std(ms, ddof=1)) if ms.size > 1 else 0.0,
            min_ms=float(np.min(ms)),
            max_ms=float(np.max(ms)),
            runs=int(ms.size),
            times_ms=tuple(float(t) for t in ms),
            **fields,
        )

    def to_dict(self):
        """The report as a JSON-serializable dict (tuples become lists)."""
        return dataclass_to_json(self)

    def __str__(self):
        shape = "x".join(str(d) for d in (self.batch_size,) + tuple(self.input_shape))
        lines = [
            f"Latency of {self.source}: runtime={self.runtime}, "
            f"num_threads={self.num_threads}, input {shape} {self.input_dtype}",
            f"  median {self.median_ms:.3f} ms  [p10 {self.p10_ms:.3f}, "
            f"p90 {self.p90_ms:.3f}]  mean {self.mean_ms:.3f} +- {self.std_ms:.3f} ms  "
            f"({self.runs} runs after {self.warmup} warm-up)",
        ]
        lines += [f"  note: {note}" for note in self.notes]
        return "\n".join(lines)


# === Argument checks ===


def check_runtime(runtime):
    return check_choice("runtime", runtime, RUNTIMES)


def check_warmup(warmup):
    if isinstance(warmup, bool) or not isinstance(warmup, numbers.Integral):
        raise TypeError(
            "`warmup` must be a non-negative integer. "
            f"Received: warmup={warmup!r} of type {type(warmup).__name__}"
        )
    if warmup < 0:
        raise ValueError(
            f"`warmup` must be a non-negative integer. Received: warmup={warmup!r}"
        )
    return int(warmup)


def check_input_shape(input_shape):
    if input_shape is None:
        return None
    try:
        shape = tuple(input_shape)
    except TypeError:
        shape = None
    if not shape or any(
        isinstance(d, bool) or not isinstance(d, numbers.Integral) or d < 1 for d in shape
    ):
        raise ValueError(
            "`input_shape` must be a tuple of positive integers without the batch "
            f"dimension, e.g. (224, 224, 3). Received: input_shape={input_shape!r}"
        )
    return tuple(int(d) for d in shape)


# === Sources ===


def resolve_source(model_or_path):
    """Returns `(kind, obj, description)`; kind is "keras", "keras_path", "tflite_path" or
    "tflite_bytes" (a `.keras` file is loaded later, after the thread settings)."""
    if isinstance(model_or_path, keras.Model):
        return "keras", model_or_path, f"Keras model '{model_or_path.name}'"
    if isinstance(model_or_path, (bytes, bytearray, memoryview)):
        content = bytes(model_or_path)
        if not is_tflite(content[:8]):
            raise ValueError(
                "`model_or_path` bytes are not a TFLite flatbuffer: expected the file "
                f"identifier {TFLITE_FILE_IDENTIFIER!r} at bytes 4:8, found "
                f"{content[4:8]!r}."
            )
        return "tflite_bytes", content, f"TFLite flatbuffer ({len(content)} bytes)"
    if isinstance(model_or_path, (str, os.PathLike)):
        path = os.fspath(model_or_path)
        if not os.path.exists(path):
            raise FileNotFoundError(
                f"No such model file: {path!r}. `model_or_path` must be a Keras model, "
                "an existing `.keras` or `.tflite` file, or TFLite flatbuffer bytes."
            )
        if os.path.isdir(path):
            raise ValueError(
                f"`model_or_path` is a directory: {path!r}. Pass a `.keras` file, a "
                "`.tflite` file or a loaded Keras model."
            )
        header = read_header(path)
        if is_tflite(header):
            return "tflite_path", path, f"TFLite file {os.path.basename(path)!r}"
        if path.endswith(".tflite"):
            raise ValueError(
                f"{path!r} is not a TFLite file: expected the flatbuffer file identifier "
                f"{TFLITE_FILE_IDENTIFIER!r} at bytes 4:8, found {header[4:8]!r}."
            )
        if path.endswith(".keras"):
            return "keras_path", path, f"Keras file {os.path.basename(path)!r}"
        raise ValueError(
            f"Cannot tell what kind of model {path!r} is: pass a `.keras` file or a "
            "TFLite flatbuffer (`.tflite`)."
        )
    raise TypeError(
        "`model_or_path` must be a `keras.Model`, a path to a `.keras` or `.tflite` "
        "file, or TFLite flatbuffer bytes. "
        f"Received: model_or_path of type {type(model_or_path).__name__}"
    )


# === Runners ===


@dataclasses.dataclass
class Runner:
    """A prepared model: `run()` does one forward pass on a fixed input."""

    run: object
    runtime: str
    num_threads: int
    batch_size: int
    input_shape: tuple
    input_dtype: str
    source: str
    notes: tuple = ()

    def measure(self, warmup, runs):
        for _ in range(warmup):
            self.run()
        seconds = []
        for _ in range(runs):
            start = time.perf_counter()
            self.run()
            seconds.append(time.perf_counter() - start)
        return LatencyReport.from_times(
            seconds,
            warmup=warmup,
            runtime=self.runtime,
            num_threads=self.num_threads,
            batch_size=self.batch_size,
            input_shape=tuple(self.input_shape),
            input_dtype=self.input_dtype,
            source=self.source,
            notes=tuple(self.notes),
        )


def apply_keras_threads(num_threads):
    """Makes TF's thread pools `num_threads` wide if it can; returns notes."""
    if keras.backend.backend() != "tensorflow":
        note = (
            f"num_threads={num_threads} is not applied on the "
            f"{keras.backend.backend()} backend; the backend's own thread settings apply."
        )
        _warn_once(note)
        return (note,)
    import tensorflow as tf

    threading = tf.config.threading
    intra = threading.get_intra_op_parallelism_threads()
    inter = threading.get_inter_op_parallelism_threads()
    if intra == num_threads and inter == num_threads:
        return ()
    try:
        threading.set_intra_op_parallelism_threads(num_threads)
        threading.set_inter_op_parallelism_threads(num_threads)
    except RuntimeError:
        note = (
            f"num_threads={num_threads} was not applied: TensorFlow's thread pools were "
            f"already initialized (intra_op={intra}, inter_op={inter}; 0 means one per "
            "core) and are process-wide. Set "
            "tf.config.threading.set_intra_op_parallelism_threads and "
            "set_inter_op_parallelism_threads at program start, or use runtime='tflite'."
        )
        _warn_once(note)
        return (note,)
    return (
        f"TensorFlow's intra-op and inter-op thread pools were set to {num_threads} "
        "for the rest of this process.",
    )


def _warn_once(message):
    if message not in _THREAD_WARNINGS:
        _THREAD_WARNINGS.add(message)
        warnings.warn(message, RuntimeWarning, stacklevel=5)


def _keras_input_spec(model, input_shape):
    """Input shape (without batch) and dtype of a single-input Keras model."""
    try:
        inputs = model.inputs
    except (AttributeError, ValueError):
        inputs = None
    if inputs and len(inputs) != 1:
        raise ValueError(
            f"Only single-input models can be measured; {model.name!r} has "
            f"{len(inputs)} inputs."
        )
    dtype = "float32"
    known = None
    if inputs:
        dtype = keras.backend.standardize_dtype(inputs[0].dtype)
        known = tuple(inputs[0].shape[1:])
    if input_shape is not None:
        return input_shape, dtype
    if known is None or any(d is None for d in known):
        raise ValueError(
            "`input_shape` is required: the input shape of the model "
            f"{model.name!r} is not fully known (received {known}). Pass e.g. "
            "input_shape=(224, 224, 3) (without the batch dimension)."
        )
    return known, dtype


def keras_runner(model, input_shape, batch_size, seed, description, num_threads, notes=()):
    """Runner for `model(x, training=False)`, traced once (TF) or `predict_on_batch`."""
    shape, dtype = _keras_input_spec(model, input_shape)
    x = make_input((batch_size,) + tuple(shape), dtype, seed)
    if not model.built:
        model(x, training=False)  # Create the variables outside the traced function.
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        fn = tf.function(
            lambda t: model(t, training=False),
            input_signature=[tf.TensorSpec(x.shape, x.dtype)],
            autograph=False,
            jit_compile=False,
        )
        x_tensor = tf.constant(x)

        def run():
            for out in tf.nest.flatten(fn(x_tensor)):
                out.numpy()

    else:

        def run():
            model.predict_on_batch(x)

    return Runner(
        run=run,
        runtime="keras",
        num_threads=num_threads,
        batch_size=batch_size,
        input_shape=tuple(shape),
        input_dtype=str(np.dtype(x.dtype)),
        source=description,
        notes=tuple(notes),
    )


def tflite_runner(
    model_path=None, model_content=None, *, input_shape, batch_size, seed, description,
    num_threads,
):
    """Runner for one `invoke()` of a TFLite model at `(batch_size, *input_shape)`."""
    timer = TFLiteTimer(
        model_content, num_threads, seed, model_path=model_path, input_shape=input_shape,
        batch_size=batch_size, description=description,
    )
    return Runner(
        run=timer.run,
        runtime="tflite",
        num_threads=num_threads,
        batch_size=batch_size,
        input_shape=tuple(timer.shape[1:]),
        input_dtype=str(np.dtype(timer.x.dtype)),
        source=description,
    )


def prepare(model_or_path, input_shape=None, runtime="keras", num_threads=1, batch_size=1,
            seed=0):
    """Validates the arguments and returns a `Runner` ready to time."""
    runtime = check_runtime(runtime)
    num_threads = check_positive_int("num_threads", num_threads)
    batch_size = check_positive_int("batch_size", batch_size)
    input_shape = check_input_shape(input_shape)
    kind, obj, description = resolve_source(model_or_path)
    if kind.startswith("tflite"):
        if runtime != "tflite":
            raise ValueError(
                f"{description} can only be measured with runtime='tflite'. "
                f"Received: runtime={runtime!r}"
            )
        return tflite_runner(
            model_path=obj if kind == "tflite_path" else None,
            model_content=obj if kind == "tflite_bytes" else None,
            input_shape=input_shape, batch_size=batch_size, seed=seed,
            description=description, num_threads=num_threads,
        )
    if runtime == "tflite":
        import_litert_interpreter()  # Fail before a slow conversion if it is missing.
        model = keras.saving.load_model(obj, compile=False) if kind == "keras_path" else obj
        shape, _ = _keras_input_spec(model, input_shape)  # Same errors as "keras".
        flat = convert_to_tflite(model)
        return tflite_runner(
            model_content=flat, input_shape=shape,
            batch_size=batch_size, seed=seed, description=description,
            num_threads=num_threads,
        )
    # Threads first: loading a `.keras` file would start TensorFlow's runtime.
    notes = apply_keras_threads(num_threads)
    model = keras.saving.load_model(obj, compile=False) if kind == "keras_path" else obj
    return keras_runner(model, input_shape, batch_size, seed, description, num_threads, notes)


# === Public API ===


def measure_latency(
    model_or_path,
    input_shape=None,
    runtime="keras",
    num_threads=1,
    batch_size=1,
    warmup=10,
    runs=50,
    seed=0,
):
    """Measures the inference latency of a model on this CPU.

    `warmup` untimed runs, then `runs` timed ones (`time.perf_counter`) on a
    seeded uniform [0, 255] input. The paper's protocol (section 6.1) is
    `runtime="tflite", num_threads=1, batch_size=1`.

    Args:
        model_or_path: a `keras.Model`, a path to a `.keras` file, a path to a
            TFLite file (`.tflite`), or TFLite flatbuffer bytes.
        input_shape: input shape without the batch dimension, e.g.
            `(224, 224, 3)`. Required only when the model's input shape has
            unknown dimensions. Defaults to `None` (read from the model).
        runtime: `"keras"` (on TensorFlow, the model traced once in a
            `tf.function`; else `predict_on_batch`) or `"tflite"` (one LiteRT
            `invoke()`; a Keras model is converted first). Defaults to `"keras"`.
        num_threads: CPU threads. For `"keras"`, TensorFlow's process-wide
            pools are set only if they have not started (else a warning and
            a note in the report). Defaults to `1`.
        batch_size: batch size of the input. Defaults to `1`.
        warmup: untimed runs before timing, >= 0. Defaults to `10`.
        runs: timed runs, >= 1. Defaults to `50`.
        seed: seed of the input values. Defaults to `0`.

    Returns:
        A `LatencyReport` (`str(report)` is readable, `to_dict()` JSON-ready).

    Raises:
        ValueError: a bad argument, an unknown input shape without
            `input_shape`, a file that is neither TFLite nor `.keras`, a
            TFLite source with `runtime="keras"`.
        FileNotFoundError: a path that does not exist.
        TypeError: `model_or_path` is not a model, path or bytes.
        ImportError: `runtime="tflite"` without `ai-edge-litert` (extra `litert`).

    Example:

    >>> from mnv3_layers.applications import MobileNetV3Small
    >>> from mnv3_layers.latency import measure_latency
    >>> model = MobileNetV3Small(input_shape=(96, 96, 3), weights=None)
    >>> report = measure_latency(model, runtime="tflite", runs=10)  # doctest: +SKIP
    >>> print(report)  # doctest: +SKIP
    Latency of Keras model 'MobileNetV3Small': runtime=tflite, num_threads=1, ...
    """
    runs = check_positive_int("runs", runs)
    warmup = check_warmup(warmup)
    runner = prepare(
        model_or_path,
        input_shape=input_shape,
        runtime=runtime,
        num_threads=num_threads,
        batch_size=batch_size,
        seed=seed,
    )
    return runner.measure(warmup, runs)


def measure_tflite(model_or_flatbuffer, warmup=5, runs=30, num_threads=1):
    """Batch-1 float TFLite latency of a whole model on the wall and CPU clocks.

    Like `measure_latency(..., runtime="tflite")`, plus the calling thread's
    CPU time, which `LatencyTable(clock="cpu")` predicts.

    Args:
        model_or_flatbuffer: a fixed-input-shape Keras model, TFLite bytes,
            or a path to a `.tflite` or `.keras` file.
        warmup: untimed runs. Defaults to `5`.
        runs: timed runs. Defaults to `30`.
        num_threads: interpreter threads. Defaults to `1`.

    Returns:
        A dict as returned by `time_runners`.
    """
    warmup = check_warmup(warmup)
    runs = check_positive_int("runs", runs)
    num_threads = check_positive_int("num_threads", num_threads)
    if isinstance(model_or_flatbuffer, (str, os.PathLike)):
        # Same checks and messages as `measure_latency`: missing file, not TFLite.
        kind, source, _ = resolve_source(model_or_flatbuffer)
        if kind == "keras_path":
            model_or_flatbuffer = keras.saving.load_model(source, compile=False)
        else:
            with open(source, "rb") as f:
                model_or_flatbuffer = f.read()
    if isinstance(model_or_flatbuffer, (bytes, bytearray)):
        flat = bytes(model_or_flatbuffer)
        if not is_tflite(flat[:8]):
            raise ValueError(
                "`model_or_flatbuffer` bytes are not a TFLite flatbuffer (no 'TFL3' file "
                f"identifier at bytes 4:8). Received: {len(flat)} bytes starting {flat[:8]!r}"
            )
    elif isinstance(model_or_flatbuffer, keras.Model):
        flat = convert_float_tflite(batch_one(model_or_flatbuffer))
    else:
        raise TypeError(
            "`model_or_flatbuffer` must be a keras.Model, TFLite bytes or a `.tflite` / "
            "`.keras` path. Received: "
            f"model_or_flatbuffer of type {type(model_or_flatbuffer).__name__}"
        )
    return time_runners([TFLiteTimer(flat, num_threads)], warmup, runs)[0]


def batch_one(model):
    """`model` with a batch-1 input (wrapped) when its batch size is unknown."""
    shape = tuple(model.inputs[0].shape)
    if shape[0] == 1:
        return model
    if any(d is None for d in shape[1:]):
        raise ValueError(
            f"The input shape of {model.name!r} must be fully known (received "
            f"{shape[1:]}); build it with a fixed `input_shape`."
        )
    inputs = keras.Input(shape[1:], batch_size=1, dtype=model.inputs[0].dtype)
    return keras.Model(inputs, model(inputs, training=False))


_batch_one = batch_one  # The name the search and the benchmarks import.
