"""Per-component latency lookup tables measured on this CPU, and whole-model predictions.

`LatencyTable` times each distinct component (`model_configs(...)`) once as
its own float TFLite model and predicts a whole model from their sum
(`LatencyPrediction`). Its JSON file is keyed by `runtime_fingerprint` and
`config.key`. Accuracy: `benchmarks/README.md` (`bench_latency_table.py`).
"""

import dataclasses
import datetime
import json
import os
import platform
import warnings

from mnv3_layers import files
from mnv3_layers._validation import check_choice, check_positive_int
from mnv3_layers.latency import calibration as calibration_lib
from mnv3_layers.latency import measure as latency_lib
from mnv3_layers.latency.components import (
    OVERHEAD_KEY,
    BneckConfig,
    HeadConfig,
    StemConfig,
    build_component,
    config_to_dict,
    model_configs,
)
from mnv3_layers.latency.tflite import TFLiteTimer, convert_float_tflite, time_runners

FILE_FORMAT = "mnv3_layers.latency_table"
FILE_VERSION = 1

STATISTICS = ("median", "min")
CLOCKS = ("wall", "cpu")
CACHES = ("mixed", "warm", "cold")
STAT_KEYS = tuple(
    f"{cache}{clock}{stat}_ms"
    for cache in ("", "cold_") for clock in ("", "cpu_") for stat in STATISTICS
)

# === Fingerprint and file ===


def _cpu_model():
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.lower().startswith(("model name", "hardware", "cpu model")):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def _version(distribution):
    from importlib import metadata

    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return "not installed"


def runtime_fingerprint(num_threads=1):
    """What a measured latency depends on besides the model: CPU and runtime.

    Returns:
        A dict: `cpu` (from `/proc/cpuinfo`), `machine`, `cpu_count`, the
        `tensorflow` and `litert` versions and `num_threads`.

    Example:

    >>> from mnv3_layers.latency_table import runtime_fingerprint
    >>> sorted(runtime_fingerprint(num_threads=1))
    ['cpu', 'cpu_count', 'litert', 'machine', 'num_threads', 'tensorflow']
    """
    num_threads = check_positive_int("num_threads", num_threads)
    return {
        "cpu": _cpu_model(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "tensorflow": _version("tensorflow"),
        "litert": _version("ai-edge-litert"),
        "num_threads": num_threads,
    }


def fingerprint_key(fingerprint):
    return "|".join(f"{k}={fingerprint[k]}" for k in sorted(fingerprint))


def default_table_path():
    """`$KERAS_HOME/mnv3_layers/latency_table.json` (`~/.keras/...` by default)."""
    home = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    return os.path.join(home, "mnv3_layers", "latency_table.json")


# The table file's JSON layout; `files.write_json_atomic` writes it.
JSON_LAYOUT = {"indent": 1, "sort_keys": True, "makedirs": True}


def _check_file_content(data):
    """Raises ValueError unless `data` has the table file's structure."""
    if not isinstance(data, dict) or data.get("format") != FILE_FORMAT:
        raise ValueError(f"not a latency table (expected 'format': {FILE_FORMAT!r})")
    if data.get("version") != FILE_VERSION:
        raise ValueError(f"unsupported version {data.get('version')!r}")
    tables = data.get("tables")
    if not isinstance(tables, dict):
        raise ValueError("'tables' is not an object")
    for fp_key, table in tables.items():
        if not isinstance(table, dict) or not isinstance(table.get("entries"), dict):
            raise ValueError(f"table {fp_key!r} has no 'entries' object")
        if not isinstance(table.get("fingerprint"), dict):
            raise ValueError(f"table {fp_key!r} has no 'fingerprint' object")
        calibration = table.get("calibration", {})
        if not isinstance(calibration, dict) or not all(
            calibration_lib.is_valid_entry(c) for c in calibration.values()
        ):
            raise ValueError(f"table {fp_key!r} has a malformed 'calibration' object")
        for key, entry in table["entries"].items():
            if (
                not isinstance(entry, dict)
                or not calibration_lib.finite(entry.get("median_ms"), lambda v: v > 0)
                or not all(calibration_lib.finite(entry.get(stat), lambda v: v >= 0)
                           for stat in STAT_KEYS)
            ):
                raise ValueError(
                    f"entry {key!r} needs finite non-negative {', '.join(STAT_KEYS)} "
                    "(median_ms > 0)"
                )


def _empty_file():
    return {"format": FILE_FORMAT, "version": FILE_VERSION, "tables": {}}


def _read_file(path):
    """The file's content, `None` if it does not exist; raises ValueError if corrupt."""
    if not os.path.exists(path):
        return None
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"cannot be read as JSON ({e})") from e
    _check_file_content(data)
    return data



# === Prediction ===


@dataclasses.dataclass(frozen=True)
class LatencyPrediction:
    """A whole model's predicted latency and its terms.

    Attributes:
        total_ms: `scale x (overhead_ms + sum(max(component_ms -
            overhead_ms, 0))) + intercept_ms + spill_ms_per_mib x spill_mib`.
        overhead_ms: the measured fixed per-invoke cost, counted once.
        intercept_ms, scale, spill_mib, spill_ms_per_mib: the calibrated
            correction (`latency.calibration`; 0, 1, 0, 0 when none).
        components: tuple of `(config_key, ms)` as measured alone.
        statistic, clock, cache, fingerprint: those of the table.
    """

    total_ms: float
    overhead_ms: float
    components: tuple
    statistic: str
    clock: str = "wall"
    cache: str = "mixed"
    fingerprint: dict = dataclasses.field(default_factory=dict, repr=False)
    intercept_ms: float = 0.0
    scale: float = 1.0
    spill_mib: float = 0.0
    spill_ms_per_mib: float = 0.0

    def __str__(self):
        spill = (
            f", L2 spill {self.spill_mib:.2f} MiB x {self.spill_ms_per_mib:.4f} ms/MiB"
            if self.spill_ms_per_mib else ""
        )
        lines = [
            f"Predicted latency {self.total_ms:.3f} ms ({self.clock} clock, {self.cache} cache, "
            f"{self.statistic} of each component, {len(self.components)} components, "
            "fixed overhead "
            f"{self.overhead_ms:.3f} ms counted once, calibrated scale {self.scale:.3f} "
            f"and intercept {self.intercept_ms:+.3f} ms{spill})"
        ]
        lines += [f"  {ms:8.3f} ms  {key}" for key, ms in self.components]
        return "\n".join(lines)


# === Table ===


class LatencyTable:
    """Latency of MobileNetV3 components on this CPU, measured once and cached.

    Missing entries are measured on demand (seconds per component), then saved.

    Args:
        path: the JSON cache file (created if missing; a corrupt one is moved
            to `<path>.corrupt`). Defaults to `None` (`default_table_path()`).
        num_threads: interpreter threads (part of the fingerprint).
            Defaults to `1` (the paper's protocol).
        warmup: untimed runs per component. Defaults to `5`.
        runs: timed runs per component. Defaults to `30`.
        statistic: `"median"` or `"min"` of the timed runs.
            Defaults to `"median"`.
        clock: `"wall"` (the paper's latency) or `"cpu"` (the calling
            thread's CPU time; needs `num_threads=1`). Defaults to `"wall"`.
        cache: which stored timing is summed: `"warm"` (back to back),
            `"cold"` (after a cache flush) or `"mixed"` (cold head, warm stem
            and blocks). Defaults to `"mixed"`.
        calibrated: apply the correction stored by `calibrate(...)`.
            Defaults to `True`.
        verbose: print one line per measured component. Defaults to `False`.

    Attributes:
        fingerprint: `runtime_fingerprint(num_threads)`; the arguments as given.
        entries, calibration: this fingerprint's stored measurements and
            corrections, by config key and `calibration_key`.

    Example:

    >>> from mnv3_layers.latency_table import LatencyTable
    >>> table = LatencyTable("latency_table.json", runs=30)  # doctest: +SKIP
    >>> print(table.predict("small", alpha=0.75, input_shape=(224, 224, 3)))  # doctest: +SKIP
    Predicted latency 4.1 ms (median of each component, 13 components, ...
    """

    def __init__(self, path=None, num_threads=1, warmup=5, runs=30, statistic="median",
                 clock="wall", cache="mixed", calibrated=True, verbose=False):
        if path is None:
            path = default_table_path()
        if not isinstance(path, (str, os.PathLike)):
            raise TypeError(
                "`path` must be a file path or None. "
                f"Received: path of type {type(path).__name__}"
            )
        path = os.fspath(path)
        if os.path.isdir(path):
            raise ValueError(
                f"`path` must be a JSON file, not a directory. Received: path={path!r}"
            )
        self.path = path
        self.num_threads = check_positive_int("num_threads", num_threads)
        self.warmup = latency_lib.check_warmup(warmup)
        self.runs = check_positive_int("runs", runs)
        self.statistic = check_choice("statistic", statistic, STATISTICS)
        check_choice("clock", clock, CLOCKS)
        if clock == "cpu" and self.num_threads != 1:
            raise ValueError(
                "`clock='cpu'` times the calling thread, so it needs num_threads=1. "
                f"Received: clock={clock!r}, num_threads={num_threads!r}"
            )
        self.clock = clock
        self.cache = check_choice("cache", cache, CACHES)
        self.calibrated = bool(calibrated)
        self.verbose = bool(verbose)
        self.fingerprint = runtime_fingerprint(self.num_threads)
        self._fp_key = fingerprint_key(self.fingerprint)
        self.entries = {}
        self.calibration = {}
        self.load()

    # --- File ---

    def load(self):
        """(Re)reads this fingerprint's entries from `path`; a corrupt file is set aside."""
        try:
            data = _read_file(self.path)
        except ValueError as e:
            backup = self.path + ".corrupt"
            os.replace(self.path, backup)
            warnings.warn(
                f"Latency table {self.path!r} is corrupt ({e}); it was moved to "
                f"{backup!r} and the table is rebuilt by measuring again.",
                RuntimeWarning,
                stacklevel=2,
            )
            data = None
        table = (data or _empty_file())["tables"].get(self._fp_key)
        self.entries = dict(table["entries"]) if table else {}
        self.calibration = dict(table.get("calibration", {})) if table else {}

    def save(self):
        """Merges this table's entries into the file at `path`, atomically."""
        try:
            data = _read_file(self.path) or _empty_file()
        except ValueError:
            data = _empty_file()  # Set aside by `load`; another writer broke it since.
        table = data["tables"].setdefault(
            self._fp_key, {"fingerprint": self.fingerprint, "entries": {}}
        )
        table["entries"].update(self.entries)
        if self.calibration:
            table.setdefault("calibration", {}).update(self.calibration)
        files.write_json_atomic(self.path, data, **JSON_LAYOUT)

    # --- Lookup ---

    def __len__(self):
        return len(self.entries)

    def __contains__(self, config):
        return self._key(config) in self.entries

    @staticmethod
    def _key(config):
        return config if isinstance(config, str) else config.key

    def _is_cold(self, key):
        return self.cache == "cold" or (self.cache == "mixed" and key.startswith("head/"))

    def _stat(self, key):
        cache = "cold_" if self._is_cold(key) else ""
        clock = "cpu_" if self.clock == "cpu" else ""
        return float(self.entries[key][f"{cache}{clock}{self.statistic}_ms"])

    @property
    def overhead_ms(self):
        """The fixed per-invoke cost: a one-op model, always warm, measured on first use."""
        if OVERHEAD_KEY not in self.entries:
            self.measure([])
        clock = "cpu_" if self.clock == "cpu" else ""
        return float(self.entries[OVERHEAD_KEY][f"{clock}{self.statistic}_ms"])

    def latency_ms(self, config):
        """Latency of one component as measured alone (measured now if missing)."""
        key = self._key(config)
        if key not in self.entries:
            if isinstance(config, str):
                raise KeyError(f"No measurement for {config!r} in the latency table.")
            self.measure([config])
        return self._stat(key)

    def measure(self, configs, force=False):
        """Measures and saves every missing configuration (all if `force`); returns the count."""
        configs = list(configs)
        for config in configs:
            if not isinstance(config, (StemConfig, BneckConfig, HeadConfig)):
                raise TypeError(
                    "`configs` must hold StemConfig, BneckConfig or HeadConfig objects. "
                    f"Received: {config!r}"
                )
        todo = {}
        if force or OVERHEAD_KEY not in self.entries:
            todo[OVERHEAD_KEY] = OVERHEAD_KEY
        for config in configs:
            if force or config.key not in self.entries:
                todo[config.key] = config
        if not todo:
            return 0
        results = self._measure_many(list(todo.values()))
        self.record(list(todo.values()), results)
        return len(todo)

    def record(self, configs, results):
        """Stores measurements made elsewhere (`time_runners(..., cold=True)` dicts) and saves."""
        stamp = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
        for config, result in zip(configs, results, strict=True):
            missing = [k for k in STAT_KEYS if k not in result]
            if missing:
                raise ValueError(f"A result for {self._key(config)!r} lacks {missing}.")
            entry = dict(result)
            entry["config"] = None if config == OVERHEAD_KEY else config_to_dict(config)
            entry["measured_at"] = stamp
            self.entries[self._key(config)] = entry
            if self.verbose:
                print(f"  measured {result['median_ms']:8.3f} ms (median)  "
                      f"{self._key(config)}", flush=True)
        self.save()

    def _measure_many(self, configs):
        """Builds, converts and times `configs`; returns one stats dict each.

        Override `measure_flatbuffers` (or this) to plug in another timer.
        """
        flatbuffers = [convert_float_tflite(build_component(c)) for c in configs]
        return self.measure_flatbuffers(flatbuffers)

    def measure_flatbuffers(self, flatbuffers):
        """Times TFLite flatbuffers warm and cold in interleaved rounds; one stats dict each."""
        timers = [TFLiteTimer(flat, self.num_threads) for flat in flatbuffers]
        return time_runners(timers, self.warmup, self.runs, cold=True)

    # --- Calibration ---

    @property
    def calibration_key(self):
        """Calibrations are stored per clock, cache mode and statistic."""
        return f"{self.clock}/{self.cache}/{self.statistic}"

    def _stored(self, field, default):
        if not self.calibrated:
            return default
        return float(self.calibration.get(self.calibration_key, {}).get(field, default))

    @property
    def intercept_ms(self):
        """The stored whole-model intercept for this table's settings (0 if none / off)."""
        return self._stored("intercept_ms", 0.0)

    @property
    def scale(self):
        """The stored whole-model scale for this table's settings (1 if none / off)."""
        return self._stored("scale", 1.0)

    @property
    def spill_ms_per_mib(self):
        """The stored L2-spill cost (ms per MiB) for this table's settings (0 if none / off)."""
        return self._stored("spill_ms_per_mib", 0.0)

    @property
    def l2_bytes(self):
        """The L2 size of the spill term: the calibration's, else this CPU's (0 if unknown)."""
        stored = self.calibration.get(self.calibration_key, {}).get("l2_bytes")
        if stored is not None:
            return int(stored)
        return calibration_lib.l2_cache_bytes() or 0

    def spill_mib(self, configs, l2_bytes=None):
        """MiB of stem and block weights that a whole model streams past L2 per inference.

        See `latency.calibration.spill_mib`; cold-timed components are left out.

        Args:
            configs: the components of one model.
            l2_bytes: the L2 size. Defaults to `None`: `self.l2_bytes`.
        """
        return calibration_lib.spill_mib(
            configs, self.l2_bytes if l2_bytes is None else l2_bytes,
            lambda config: self._is_cold(self._key(config)),
        )

    def calibrate(self, measurements, kind="scale", l2_bytes=None):
        """Fits, stores and returns a whole-model correction (`latency.calibration`).

        Args:
            measurements: non-empty list of `(configs, measured_ms)`: a whole
                model's components and its latency on this table's clock.
            kind: `"scale"`, `"intercept"` or `"spill"`. Defaults to `"scale"`.
            l2_bytes: the L2 size for `"spill"`. Defaults to `None`
                (`l2_cache_bytes()`, or 0 when unknown).

        Returns:
            The scale (a ratio), intercept (ms) or spill cost (ms per MiB).
        """
        measurements, l2_bytes = calibration_lib.check_arguments(
            measurements, kind, l2_bytes)
        points = [self._calibration_point(configs, measured, l2_bytes)
                  for configs, measured in measurements]
        value, entry = calibration_lib.fit_calibration(points, kind, l2_bytes, self.cache)
        self.calibration[self.calibration_key] = entry
        self.save()
        return value

    def _calibration_point(self, configs, measured_ms, l2_bytes):
        """One measured model: its uncorrected prediction, measurement and spilled MiB."""
        calibrated, self.calibrated = self.calibrated, False
        try:
            raw = self.predict_configs(configs).total_ms
        finally:
            self.calibrated = calibrated
        return {"raw_predicted_ms": raw, "measured_ms": measured_ms,
                "spill_mib": self.spill_mib(configs, l2_bytes),
                "first": self._key(configs[0])}

    # --- Prediction ---

    def predict_configs(self, configs):
        """`LatencyPrediction` for a list of components (missing ones measured first)."""
        configs = list(configs)
        if not configs:
            raise ValueError("`configs` must not be empty. Received: configs=[]")
        self.measure(configs)
        overhead = self.overhead_ms
        components = tuple((c.key, self._stat(c.key)) for c in configs)
        total = overhead + sum(max(ms - overhead, 0.0) for _, ms in components)
        intercept, scale = self.intercept_ms, self.scale
        per_mib = self.spill_ms_per_mib
        spill = self.spill_mib(configs) if per_mib else 0.0
        return LatencyPrediction(
            total_ms=float(scale * total + intercept + per_mib * spill),
            intercept_ms=intercept,
            scale=scale,
            spill_mib=spill,
            spill_ms_per_mib=per_mib,
            overhead_ms=overhead,
            components=components,
            statistic=self.statistic,
            clock=self.clock,
            cache=self.cache,
            fingerprint=dict(self.fingerprint),
        )

    def predict(
        self,
        variant="large",
        alpha=1.0,
        minimalistic=False,
        input_shape=(224, 224, 3),
        top="applications",
        classes=1000,
        include_preprocessing=True,
        output_stride=32,
        reduced_tail=False,
    ):
        """`LatencyPrediction` of a MobileNetV3 on this CPU (arguments as for `model_configs`).

        `MobileNetV3Small(alpha=a, input_shape=s)` is `predict("small", a,
        input_shape=s)`; `include_top=False` is `top="features"`.
        """
        return self.predict_configs(
            model_configs(
                variant, alpha, minimalistic, input_shape, top, classes,
                include_preprocessing, output_stride, reduced_tail,
            )
        )

    def __repr__(self):
        return (
            f"LatencyTable(path={self.path!r}, entries={len(self)}, "
            f"statistic={self.statistic!r}, clock={self.clock!r}, cache={self.cache!r}, "
            f"num_threads={self.num_threads})"
        )
