"""`measure_latency`, `LatencyReport` and `LatencyCallback` on tiny models.

No wall-clock assertions beyond "positive and finite".
"""

import csv
import json
import math
import sys
import warnings

import keras
import numpy as np
import pytest

from mnv3_layers import HardSwish, SqueezeExcite
from mnv3_layers import latency as latency_lib
from mnv3_layers.callbacks import LatencyCallback
from mnv3_layers.latency import LatencyReport, measure_latency

SHAPE = (16, 16, 3)
FAST = dict(warmup=1, runs=5)


def tiny_model(input_shape=SHAPE, name="tiny"):
    return keras.Sequential(
        [
            keras.Input(input_shape),
            keras.layers.Rescaling(1 / 255.0),
            keras.layers.Conv2D(8, 3, strides=2, use_bias=False),
            keras.layers.BatchNormalization(),
            HardSwish(),
            SqueezeExcite(),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(3, activation="softmax"),
        ],
        name=name,
    )


def all_weights(model):
    return [np.array(w) for w in model.get_weights()]


def check_report(report, runs, warmup, runtime, batch_size=1, input_shape=SHAPE):
    assert isinstance(report, LatencyReport)
    assert report.runs == runs and len(report.times_ms) == runs
    assert report.warmup == warmup
    assert report.runtime == runtime
    assert report.batch_size == batch_size
    assert report.input_shape == tuple(input_shape)
    for value in (report.median_ms, report.mean_ms, report.p10_ms, report.p90_ms):
        assert math.isfinite(value) and value > 0
    assert report.min_ms <= report.p10_ms <= report.median_ms <= report.p90_ms <= report.max_ms
    assert report.std_ms >= 0
    text = str(report)
    assert "median" in text and runtime in text
    json.dumps(report.to_dict())


def write_tflite(model, path):
    path.write_bytes(latency_lib.convert_to_tflite(model))
    return str(path)


# === measure_latency ===


def test_keras_runtime_report():
    report = measure_latency(tiny_model(), runtime="keras", warmup=2, runs=7)
    check_report(report, runs=7, warmup=2, runtime="keras")
    assert report.input_dtype == "float32"
    assert report.source == "Keras model 'tiny'"


def test_report_is_frozen():
    report = measure_latency(tiny_model(), **FAST)
    with pytest.raises(Exception):
        report.median_ms = 0.0


def test_tflite_runtime_from_keras_model_with_batch():
    report = measure_latency(tiny_model(), runtime="tflite", batch_size=2, **FAST)
    check_report(report, runs=5, warmup=1, runtime="tflite", batch_size=2)
    assert report.input_dtype == "float32"
    assert report.notes == ()


def test_keras_file_path(tmp_path):
    path = tmp_path / "tiny.keras"
    tiny_model().save(path)
    report = measure_latency(str(path), **FAST)
    check_report(report, runs=5, warmup=1, runtime="keras")
    assert "tiny.keras" in report.source


def test_tflite_file_path_and_bytes(tmp_path):
    path = write_tflite(tiny_model(), tmp_path / "tiny.tflite")
    report = measure_latency(path, runtime="tflite", num_threads=2, **FAST)
    check_report(report, runs=5, warmup=1, runtime="tflite")
    assert report.num_threads == 2
    with open(path, "rb") as f:
        content = f.read()
    report = measure_latency(content, runtime="tflite", **FAST)
    check_report(report, runs=5, warmup=1, runtime="tflite")


def test_int8_tflite_input_dtype(tmp_path):
    import tensorflow as tf

    model = tiny_model()

    def representative():
        rng = np.random.default_rng(0)
        for _ in range(4):
            yield [rng.uniform(0, 255, (1,) + SHAPE).astype("float32")]

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = representative
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.int8
    converter.inference_output_type = tf.int8
    path = tmp_path / "tiny_int8.tflite"
    path.write_bytes(converter.convert())
    report = measure_latency(str(path), runtime="tflite", **FAST)
    check_report(report, runs=5, warmup=1, runtime="tflite")
    assert report.input_dtype == "int8"


def test_make_input_is_seeded_and_quantized():
    a = latency_lib.make_input((1, 4, 4, 3), "float32", seed=3)
    b = latency_lib.make_input((1, 4, 4, 3), "float32", seed=3)
    np.testing.assert_array_equal(a, b)
    assert a.dtype == np.float32 and a.min() >= 0 and a.max() <= 255
    q = latency_lib.make_input((1, 4, 4, 3), "int8", seed=3, quantization=(1.0, -128))
    assert q.dtype == np.int8
    np.testing.assert_array_equal(q, np.clip(np.rint(a - 128), -128, 127).astype(np.int8))
    u = latency_lib.make_input((2, 5), "uint8", seed=0, quantization=(0.0, 0))
    assert u.dtype == np.uint8


def test_unknown_spatial_dims_need_input_shape():
    model = tiny_model(input_shape=(None, None, 3), name="dynamic")
    with pytest.raises(ValueError, match="`input_shape` is required"):
        measure_latency(model, **FAST)
    report = measure_latency(model, input_shape=(20, 20, 3), **FAST)
    check_report(report, runs=5, warmup=1, runtime="keras", input_shape=(20, 20, 3))


def test_keras_threads_warn_once_and_note(monkeypatch):
    import tensorflow as tf

    if (
        tf.config.threading.get_intra_op_parallelism_threads() == 1
        and tf.config.threading.get_inter_op_parallelism_threads() == 1
    ):
        pytest.skip("TensorFlow already runs single-threaded here")
    monkeypatch.setattr(latency_lib.measure, "_THREAD_WARNINGS", set())
    model = tiny_model()
    with pytest.warns(RuntimeWarning, match="num_threads=1 was not applied"):
        report = measure_latency(model, num_threads=1, **FAST)
    assert any("not applied" in note for note in report.notes)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        report = measure_latency(model, num_threads=1, **FAST)  # Warned once only.
    assert report.notes


# === Bad inputs ===


def test_runtime_typo_names_runtime_and_choices():
    pattern = r"`runtime` must be one of \('keras', 'tflite'\).*'tflit'"
    with pytest.raises(ValueError, match=pattern):
        measure_latency(tiny_model(), runtime="tflit")


def test_missing_tflite_path_names_path(tmp_path):
    path = str(tmp_path / "missing.tflite")
    with pytest.raises(FileNotFoundError, match="missing.tflite"):
        measure_latency(path, runtime="tflite")


def test_file_that_is_not_tflite(tmp_path):
    path = tmp_path / "fake.tflite"
    path.write_bytes(b"this is not a flatbuffer at all")
    with pytest.raises(ValueError, match="not a TFLite file.*TFL3"):
        measure_latency(str(path), runtime="tflite")
    with pytest.raises(ValueError, match="not a TFLite flatbuffer"):
        measure_latency(b"\x00" * 16, runtime="tflite")
    other = tmp_path / "model.txt"
    other.write_bytes(b"hello")
    with pytest.raises(ValueError, match="Cannot tell"):
        measure_latency(str(other))
    with pytest.raises(ValueError, match="directory"):
        measure_latency(str(tmp_path))


def test_tflite_source_needs_tflite_runtime(tmp_path):
    path = tmp_path / "header_only.tflite"
    path.write_bytes(b"\x1c\x00\x00\x00TFL3" + b"\x00" * 24)  # Only the header is read.
    with pytest.raises(ValueError, match="runtime='tflite'"):
        measure_latency(str(path), runtime="keras")


@pytest.mark.parametrize(
    "kwargs, name",
    [
        (dict(runs=0), "runs"),
        (dict(warmup=-1), "warmup"),
        (dict(num_threads=0), "num_threads"),
        (dict(batch_size=0), "batch_size"),
        (dict(input_shape=(16, 0, 3)), "input_shape"),
    ],
)
def test_bad_numbers_name_the_argument(kwargs, name):
    with pytest.raises(ValueError, match=f"`{name}`"):
        measure_latency(tiny_model(), **kwargs)


def test_non_model_is_type_error():
    with pytest.raises(TypeError, match="model_or_path"):
        measure_latency(object())
    with pytest.raises(TypeError, match="model_or_path"):
        measure_latency(keras.layers.Dense(3))


def test_missing_litert_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "ai_edge_litert.interpreter", None)
    with pytest.raises(ImportError, match=r'mnv3-layers\[litert\]'):
        measure_latency(tiny_model(), runtime="tflite")


# === LatencyCallback ===


def fit_tiny(callbacks, epochs, model=None):
    model = model or tiny_model()
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, (8,) + SHAPE).astype("float32")
    y = rng.integers(0, 3, (8,))
    return model.fit(x, y, batch_size=4, epochs=epochs, callbacks=callbacks, verbose=0)


def read_csv(path):
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    return rows[0], rows[1:]


def test_callback_writes_history_and_csv(tmp_path):
    csv_path = tmp_path / "log.csv"
    callback = LatencyCallback(warmup=1, runs=3)
    history = fit_tiny([callback, keras.callbacks.CSVLogger(str(csv_path))], epochs=2)
    values = history.history["latency_ms"]
    assert len(values) == 2
    assert all(math.isfinite(v) and v > 0 for v in values)
    assert sorted(callback.reports) == [0, 1]
    assert values[-1] == callback.last_report.median_ms
    header, rows = read_csv(csv_path)
    assert "latency_ms" in header
    column = header.index("latency_ms")
    assert len(rows) == 2
    assert [float(row[column]) for row in rows] == pytest.approx(values)


def test_callback_every_n_epochs_writes_nan_between(tmp_path):
    csv_path = tmp_path / "log.csv"
    callback = LatencyCallback(every_n_epochs=2, warmup=0, runs=2)
    history = fit_tiny([callback, keras.callbacks.CSVLogger(str(csv_path))], epochs=3)
    values = history.history["latency_ms"]
    assert len(values) == 3
    assert math.isnan(values[0]) and math.isnan(values[2])
    assert math.isfinite(values[1]) and values[1] > 0
    assert sorted(callback.reports) == [1]
    # The first epoch is not measured, yet the CSV has the column from the start.
    header, rows = read_csv(csv_path)
    column = header.index("latency_ms")
    assert [row[column] for row in rows][0::2] == ["nan", "nan"]
    assert float(rows[1][column]) == pytest.approx(values[1])


def test_callback_target_ms_warns():
    callback = LatencyCallback(warmup=0, runs=2, target_ms=1e-9)
    with pytest.warns(UserWarning, match="exceeds target_ms"):
        fit_tiny([callback], epochs=1)


def test_callback_tflite_runtime_and_custom_key():
    callback = LatencyCallback(runtime="tflite", warmup=0, runs=2, log_key="lat")
    history = fit_tiny([callback], epochs=1)
    assert history.history["lat"][0] > 0
    assert callback.last_report.runtime == "tflite"


def test_callback_leaves_weights_unchanged():
    model = tiny_model()
    fit_tiny([], epochs=1, model=model)  # Non-trivial batch-norm statistics.
    x = np.random.default_rng(1).uniform(0, 255, (2,) + SHAPE).astype("float32")
    before = all_weights(model)
    out_before = model.predict_on_batch(x)
    callback = LatencyCallback(warmup=1, runs=3)
    callback.set_model(model)
    logs = {}
    callback.on_epoch_end(0, logs)
    callback.on_epoch_end(1, logs)  # Second measurement reuses the traced function.
    assert logs["latency_ms"] > 0
    for a, b in zip(before, all_weights(model)):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(out_before, model.predict_on_batch(x))


@pytest.mark.parametrize(
    "kwargs, name",
    [
        (dict(runtime="tflit"), "runtime"),
        (dict(every_n_epochs=0), "every_n_epochs"),
        (dict(target_ms=0), "target_ms"),
        (dict(target_ms=-1.0), "target_ms"),
        (dict(target_ms=float("inf")), "target_ms"),
        (dict(runs=0), "runs"),
        (dict(warmup=-1), "warmup"),
        (dict(num_threads=0), "num_threads"),
        (dict(log_key=""), "log_key"),
    ],
)
def test_callback_bad_arguments(kwargs, name):
    with pytest.raises(ValueError, match=f"`{name}`"):
        LatencyCallback(**kwargs)
