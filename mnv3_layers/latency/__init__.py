"""Latency on this CPU: measurement, TFLite timing, per-component tables.

- `measure`: `measure_latency` of a Keras model or a `.tflite` file (the paper's
  protocol: batch 1, one thread, TFLite), and its `LatencyReport`.
- `tflite`: the float TFLite conversion of small models and their timing.
- `components`: the stem, bneck and head configurations a model is made of.
- `table`: `LatencyTable`, the per-component lookup table and its predictions.
"""

from mnv3_layers.latency.measure import (
    LatencyReport,
    Runner,
    apply_keras_threads,
    check_input_shape,
    check_runtime,
    check_warmup,
    convert_to_tflite,
    import_litert_interpreter,
    keras_runner,
    make_input,
    measure_latency,
    prepare,
    resolve_source,
    tflite_runner,
)

__all__ = [
    "LatencyReport",
    "Runner",
    "apply_keras_threads",
    "check_input_shape",
    "check_runtime",
    "check_warmup",
    "convert_to_tflite",
    "import_litert_interpreter",
    "keras_runner",
    "make_input",
    "measure_latency",
    "prepare",
    "resolve_source",
    "tflite_runner",
]
