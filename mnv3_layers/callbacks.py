"""Keras callbacks of the package: `LatencyCallback`."""

import math
import warnings

import keras

from mnv3_layers import latency as latency_lib
from mnv3_layers._validation import check_positive_int, check_positive_number


class LatencyCallback(keras.callbacks.Callback):
    """Measures the model's inference latency during training and logs it.

    Every `every_n_epochs`-th epoch (1-based, like `validation_freq`) the
    median of `measure_latency` (batch 1) goes into `logs[log_key]`, in
    milliseconds; other epochs get `nan`. Put it before `CSVLogger` or
    `TensorBoard`. `runtime="tflite"` converts at each measurement (seconds).
    Cost: `benchmarks/README.md` (`bench_latency_callback.py`).

    Args:
        runtime: `"keras"` or `"tflite"`; see `measure_latency`. Defaults to
            `"keras"`.
        every_n_epochs: measure after every n-th epoch, >= 1. Defaults to `1`.
        input_shape: input shape without the batch dimension; needed only when
            the model's input shape has unknown dimensions. Defaults to `None`.
        num_threads: CPU threads; see `measure_latency`. Defaults to `1`.
        warmup: untimed runs before each measurement, >= 0. Defaults to `2`.
        runs: timed runs per measurement, >= 1. Defaults to `10`.
        target_ms: warn (`UserWarning`) when the median exceeds it, > 0.
            Defaults to `None`.
        log_key: key written into `logs`. Defaults to `"latency_ms"`.
        seed: seed of the input values. Defaults to `0`.

    Attributes:
        reports: dict epoch (0-based) -> `LatencyReport` of every measurement.
        last_report: the latest `LatencyReport`, or `None`.

    Example:

    >>> from mnv3_layers.callbacks import LatencyCallback
    >>> callback = LatencyCallback(every_n_epochs=2, runs=10, target_ms=15.0)
    >>> model.fit(x, y, epochs=4, callbacks=[callback])  # doctest: +SKIP
    >>> model.history.history["latency_ms"]  # doctest: +SKIP
    [nan, 3.1, nan, 3.0]
    """

    def __init__(
        self,
        runtime="keras",
        every_n_epochs=1,
        input_shape=None,
        num_threads=1,
        warmup=2,
        runs=10,
        target_ms=None,
        log_key="latency_ms",
        seed=0,
    ):
        super().__init__()
        self.runtime = latency_lib.check_runtime(runtime)
        self.every_n_epochs = check_positive_int("every_n_epochs", every_n_epochs)
        self.input_shape = latency_lib.check_input_shape(input_shape)
        self.num_threads = check_positive_int("num_threads", num_threads)
        self.warmup = latency_lib.check_warmup(warmup)
        self.runs = check_positive_int("runs", runs)
        if target_ms is not None:
            target_ms = float(check_positive_number("target_ms", target_ms))
            if math.isinf(target_ms):
                raise ValueError(
                    f"`target_ms` must be a finite positive number. Received: "
                    f"target_ms={target_ms!r}"
                )
        self.target_ms = target_ms
        if not isinstance(log_key, str) or not log_key:
            raise ValueError(
                f"`log_key` must be a non-empty string. Received: log_key={log_key!r}"
            )
        self.log_key = log_key
        self.seed = seed
        self.reports = {}
        self.last_report = None
        self._runner = None
        self._runner_model = None

    def measure(self):
        """Measures `self.model` now and returns the `LatencyReport`."""
        if self.runtime == "keras" and self._runner_model is self.model:
            return self._runner.measure(self.warmup, self.runs)  # Reads the live weights.
        runner = latency_lib.prepare(
            self.model, input_shape=self.input_shape, runtime=self.runtime,
            num_threads=self.num_threads, batch_size=1, seed=self.seed,
        )
        if self.runtime == "keras":  # Traced once per model.
            self._runner, self._runner_model = runner, self.model
        return runner.measure(self.warmup, self.runs)

    def on_epoch_end(self, epoch, logs=None):
        if logs is None:
            logs = {}
        if (epoch + 1) % self.every_n_epochs != 0:
            logs[self.log_key] = float("nan")
            return
        report = self.measure()
        self.reports[epoch] = report
        self.last_report = report
        logs[self.log_key] = report.median_ms
        if self.target_ms is not None and report.median_ms > self.target_ms:
            warnings.warn(
                f"Epoch {epoch + 1}: measured latency {report.median_ms:.3f} ms "
                f"(median, runtime={self.runtime}) exceeds target_ms={self.target_ms}.",
                UserWarning,
                stacklevel=2,
            )

    def on_train_end(self, logs=None):
        # Drop the traced function so the callback holds no graph after fit.
        self._runner = None
        self._runner_model = None
