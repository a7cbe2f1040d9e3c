"""Float TFLite conversion of small models and their interpreter timing."""

import contextlib
import io
import os
import time

import numpy as np

from mnv3_layers._validation import check_positive_int
from mnv3_layers.latency import measure as latency_lib


def convert_float_tflite(model):
    """Float TFLite flatbuffer of a fixed-shape, single-input Keras model.

    Traces `model(x, training=False)` once, folds the variables into
    constants and converts that graph: the same ops as
    `TFLiteConverter.from_keras_model`, about twice as fast for small models
    (no SavedModel export). Falls back to `latency.convert_to_tflite`.
    """
    import tensorflow as tf

    try:
        from tensorflow.python.framework.convert_to_constants import (
            convert_variables_to_constants_v2,
        )
    except ImportError:  # pragma: no cover - private TF module moved
        return latency_lib.convert_to_tflite(model)
    spec = tf.TensorSpec(tuple(model.inputs[0].shape), model.inputs[0].dtype)
    fn = tf.function(lambda x: model(x, training=False), input_signature=[spec],
                     autograph=False)
    frozen = convert_variables_to_constants_v2(fn.get_concrete_function())
    converter = tf.lite.TFLiteConverter.from_concrete_functions([frozen])
    with contextlib.redirect_stdout(io.StringIO()):
        return converter.convert()



# === Timing ===


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
    """Reads a 64 MiB buffer, evicting earlier data from the CPU caches.

    Reading (not writing) leaves clean lines behind, so the timed run that
    follows does not pay for writing the buffer back to memory.
    """
    if not _FLUSH_BUFFER:
        _FLUSH_BUFFER.append(np.ones(FLUSH_BYTES // 8))  # Real pages, not the zero page.
    return float(_FLUSH_BUFFER[0].sum())


class TFLiteTimer:
    """One TFLite model in a LiteRT interpreter with a fixed seeded input.

    `run()` is one `invoke()`; `reload_input()` writes the input again
    (after a cache flush this puts the input, but not the weights, back in
    cache, as in a whole model where a block's input was just written by
    the block before it).
    """

    def __init__(self, flatbuffer, num_threads=1, seed=0):
        Interpreter = latency_lib.import_litert_interpreter()
        self.interpreter = Interpreter(model_content=flatbuffer, num_threads=num_threads)
        details = self.interpreter.get_input_details()
        if len(details) != 1:
            raise ValueError(f"Only single-input models can be timed; got {len(details)} inputs.")
        self.interpreter.allocate_tensors()
        detail = details[0]
        self.index = detail["index"]
        self.x = latency_lib.make_input(
            tuple(int(d) for d in detail["shape"]), detail["dtype"], seed,
            detail.get("quantization"),
        )
        self.reload_input()
        self.run = self.interpreter.invoke

    def reload_input(self):
        self.interpreter.set_tensor(self.index, self.x)


def time_runners(timers, warmup, runs, cold=False, rounds=5, rewarm=True):
    """Times `TFLiteTimer`s on two clocks, warm and (optionally) cold, interleaved.

    After `warmup` untimed runs each, `runs` timed runs per timer are split
    into up to `rounds` rounds; each round runs every timer in turn, so
    background load spreads over all of them. Each run is timed on the wall
    clock (`time.perf_counter`) and on the calling thread's CPU clock
    (`time.thread_time_ns`): with one interpreter thread the work runs on
    the calling thread, so CPU time leaves out time the thread waited for a
    core (other processes), which wall time includes.

    Warm runs follow each other, so the model's weights stay in cache;
    with `rewarm=True` (default) one untimed run starts each timer's warm
    runs in every round, since the other timers of the round have evicted
    its data since its last run (without it, with many rounds the "warm"
    runs are really cold ones).
    With `cold=True` (or `True` at its position in a list of one bool per
    timer) a timer also gets `runs` cold runs: before each,
    `flush_caches()` evicts the caches and the input is written again.

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
    times = [
        {(m, c): [] for m in (("", "cold_") if flag else ("",)) for c in ("", "cpu_")}
        for flag in cold
    ]
    perf_counter, thread_time_ns = time.perf_counter, time.thread_time_ns
    for count in per_round:
        for timer, record, flag in zip(timers, times, cold):
            run = timer.run
            for mode in ("", "cold_") if flag else ("",):
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
    results = []
    for record in times:
        result = {"runs": int(runs), "warmup": int(warmup)}
        for (mode, clock), ms in record.items():
            result.update(_stats(mode + clock, ms))
        results.append(result)
    return results


def measure_tflite(model_or_flatbuffer, warmup=5, runs=30, num_threads=1):
    """Batch-1 float TFLite latency of a whole model on the wall and CPU clocks.

    Like `mnv3_layers.latency.measure_latency(..., runtime="tflite")`, but
    converts with `convert_float_tflite` (same ops, faster) and reports the
    calling thread's CPU time next to the wall time (see `time_runners`),
    which is what `LatencyTable(clock="cpu")` predicts.

    Args:
        model_or_flatbuffer: a fixed-input-shape Keras model, TFLite bytes,
            or a path to a `.tflite` or `.keras` file.
        warmup: untimed runs. Defaults to `5`.
        runs: timed runs. Defaults to `30`.
        num_threads: interpreter threads. Defaults to `1`.

    Returns:
        A dict as returned by `time_runners`.
    """
    warmup = latency_lib.check_warmup(warmup)
    runs = check_positive_int("runs", runs)
    num_threads = check_positive_int("num_threads", num_threads)
    if isinstance(model_or_flatbuffer, (str, os.PathLike)):
        # Same checks and messages as `measure_latency`: missing file, not TFLite.
        kind, source, _ = latency_lib.resolve_source(model_or_flatbuffer)
        if kind == "keras_path":
            import keras

            model_or_flatbuffer = keras.saving.load_model(source, compile=False)
        else:
            with open(source, "rb") as f:
                model_or_flatbuffer = f.read()
    if isinstance(model_or_flatbuffer, (bytes, bytearray)):
        flat = bytes(model_or_flatbuffer)
        if not latency_lib._is_tflite(flat[:8]):
            raise ValueError(
                "`model_or_flatbuffer` bytes are not a TFLite flatbuffer (no 'TFL3' file "
                f"identifier at bytes 4:8). Received: {len(flat)} bytes starting {flat[:8]!r}"
            )
    else:
        import keras

        if not isinstance(model_or_flatbuffer, keras.Model):
            raise TypeError(
                "`model_or_flatbuffer` must be a keras.Model, TFLite bytes or a `.tflite` / "
                "`.keras` path. Received: "
                f"model_or_flatbuffer of type {type(model_or_flatbuffer).__name__}"
            )
        flat = convert_float_tflite(_batch_one(model_or_flatbuffer))
    return time_runners([TFLiteTimer(flat, num_threads)], warmup, runs)[0]


def _batch_one(model):
    """`model` with a batch-1 input (wrapped) when its batch size is unknown."""
    import keras

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
