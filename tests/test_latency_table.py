"""Per-block latency tables: configurations, measurement, cache file, predictions.

Real measurements use tiny components and 2-3 runs; nothing asserts
wall-clock values beyond "positive and finite".
"""

import json
import math
import os
import warnings

import numpy as np
import pytest

from mnv3_layers import SMALL, ArchitectureSpec, BlockSpec
from mnv3_layers.architecture.block_spec import LastStageSpec, StemSpec
from mnv3_layers.latency_table import (
    OVERHEAD_KEY,
    STAT_KEYS,
    BneckConfig,
    HeadConfig,
    LatencyPrediction,
    LatencyTable,
    StemConfig,
    build_component,
    component_weight_bytes,
    config_from_dict,
    config_to_dict,
    fingerprint_key,
    l2_cache_bytes,
    measure_tflite,
    model_configs,
    runtime_fingerprint,
)

TINY = ArchitectureSpec(
    name="tiny",
    stem=StemSpec(16, 3, 2, "hard_swish"),
    blocks=(
        BlockSpec(3, 32, 16, False, "relu", 2),
        BlockSpec(3, 48, 16, True, "hard_swish", 1),
    ),
    last_stage=LastStageSpec(48, 1024, "hard_swish"),
)


def fake_cost(config):
    """Deterministic stand-in latency (ms) for a component."""
    if config == OVERHEAD_KEY:
        return 0.01
    return 0.01 + 1e-6 * config.height * config.width * (
        config.in_channels + getattr(config, "filters", 0)
    )


class FakeTable(LatencyTable):
    """A LatencyTable whose "measurement" is `fake_cost` (fast and exact)."""

    measured_keys = None

    def _measure_many(self, configs):
        self.measured_keys = (self.measured_keys or []) + [self._key(c) for c in configs]
        results = []
        for config in configs:
            value = fake_cost(config)
            stats = {key: value * (2.0 if key.startswith("cold_") else 1.0) for key in STAT_KEYS}
            results.append({**stats, "runs": 1, "warmup": 0})
        return results


# === Configurations ===


def test_model_configs_small_224():
    configs = model_configs("small", input_shape=(224, 224, 3))
    assert len(configs) == 13
    assert isinstance(configs[0], StemConfig) and isinstance(configs[-1], HeadConfig)
    assert configs[0].key == "stem/224x224x3/f16/k3/s2/hard_swish/pre1"
    # Row for row Table 2 (exp size absolute), spatial size halves at stride 2.
    assert [(c.height, c.in_channels, c.expanded_filters, c.filters) for c in configs[1:12]] == [
        (112, 16, 16, 16), (56, 16, 72, 24), (28, 24, 88, 24), (28, 24, 96, 40),
        (14, 40, 240, 40), (14, 40, 240, 40), (14, 40, 120, 48), (14, 48, 144, 48),
        (14, 48, 288, 96), (7, 96, 576, 96), (7, 96, 576, 96),
    ]
    assert [c.residual for c in configs[1:12]] == [
        False, False, True, False, True, True, False, True, False, True, True]
    assert configs[-1].key == "head/7x7x96/f576/hard_swish/applications/lp1024/c1000"


def test_model_configs_options():
    configs = model_configs("large", alpha=0.5, minimalistic=True, input_shape=(128, 96, 3),
                            top="dense", classes=3, include_preprocessing=False,
                            output_stride=16)
    assert configs[0].key == "stem/128x96x3/f16/k3/s2/relu/pre0"
    blocks = configs[1:-1]
    assert all(b.kernel_size == 3 and not b.se and b.activation == "relu" for b in blocks)
    assert blocks[-1].dilation_rate == 2 and blocks[-1].height == 8  # Output stride 16.
    assert configs[-1].top == "dense" and configs[-1].classes == 3
    assert configs[-1].last_point_filters == 0
    features = model_configs("small", input_shape=(64, 64, 3), top="features")[-1]
    assert features.classes == 0 and features.key.endswith("/features/lp0/c0")


def test_model_configs_accepts_spec_and_dict():
    from mnv3_layers.search import architecture_to_dict

    a = model_configs(TINY, input_shape=(32, 32, 3), top="dense", classes=3)
    b = model_configs(architecture_to_dict(TINY), input_shape=(32, 32, 3), top="dense",
                      classes=3)
    assert a == b and len(a) == 4
    assert a[2].residual and a[2].se


@pytest.mark.parametrize(
    "kwargs, error",
    [
        (dict(top="softmax"), "`top` must be one of"),
        (dict(input_shape=(224, 224)), "input_shape"),
        (dict(input_shape=(0, 224, 3)), "input_shape"),
        (dict(variant="medium"), "variant"),
    ],
)
def test_model_configs_bad_arguments(kwargs, error):
    with pytest.raises(ValueError, match=error):
        model_configs(**{"variant": "small", **kwargs})


def test_config_validation_and_round_trip():
    config = BneckConfig(28, 28, 24, 88, 24, 3, 1, 1, False, "relu")
    assert config_from_dict(json.loads(json.dumps(config_to_dict(config)))) == config
    with pytest.raises(ValueError, match="strides"):
        BneckConfig(28, 28, 24, 88, 24, 3, 3, 1, False, "relu")
    with pytest.raises(ValueError, match="activation"):
        StemConfig(32, 32, 3, 16, activation="swish")
    with pytest.raises(ValueError, match="classes"):
        HeadConfig(7, 7, 96, 576, top="dense", classes=0)
    with pytest.raises(ValueError, match="last_point_filters"):
        HeadConfig(7, 7, 96, 576, top="features", last_point_filters=1024)
    with pytest.raises(ValueError, match="kind"):
        config_from_dict({"kind": "tail"})


def test_build_component_shapes():
    stem, b1, b2, head = model_configs(TINY, input_shape=(32, 32, 3), top="dense", classes=3)
    assert build_component(stem).output_shape == (1, 16, 16, 16)
    assert build_component(b1).output_shape == (1, 8, 8, 16)
    block = build_component(b2)
    assert block.output_shape == (1, 8, 8, 16)
    assert block.layers[-1].use_residual and block.layers[-1].expanded_filters == 48
    assert build_component(head).output_shape == (1, 3)
    with pytest.raises(ValueError, match="multiple of 8"):
        build_component(BneckConfig(8, 8, 16, 44, 16, 3, 1, 1, False, "relu"))


# === Table file, fingerprint, predictions (fake timer) ===


def test_fingerprint():
    fingerprint = runtime_fingerprint(num_threads=2)
    assert fingerprint["num_threads"] == 2 and fingerprint["cpu"]
    assert fingerprint["tensorflow"] != "not installed"
    assert "num_threads=2" in fingerprint_key(fingerprint)
    with pytest.raises(ValueError, match="num_threads"):
        runtime_fingerprint(num_threads=0)


def test_table_caches_by_configuration_and_fingerprint(tmp_path):
    path = tmp_path / "table.json"
    configs = model_configs(TINY, input_shape=(32, 32, 3), top="dense", classes=3)
    table = FakeTable(path)
    prediction = table.predict(TINY, input_shape=(32, 32, 3), top="dense", classes=3)
    assert isinstance(prediction, LatencyPrediction)
    # Mixed cache (default): cold (fake: 2x) for the head, warm for the rest;
    # the overhead is always the warm one.
    overhead = fake_cost(OVERHEAD_KEY)
    expected = overhead + sum(fake_cost(c) - overhead for c in configs[:-1]) + (
        2 * fake_cost(configs[-1]) - overhead)
    assert prediction.total_ms == pytest.approx(expected)
    assert prediction.overhead_ms == pytest.approx(overhead)
    assert [k for k, _ in prediction.components] == [c.key for c in configs]
    assert set(table.measured_keys) == {OVERHEAD_KEY} | {c.key for c in configs}
    assert "Predicted latency" in str(prediction)

    data = json.loads(path.read_text())
    assert list(data["tables"]) == [fingerprint_key(table.fingerprint)]
    entries = data["tables"][fingerprint_key(table.fingerprint)]["entries"]
    assert set(entries) == {OVERHEAD_KEY} | {c.key for c in configs}
    assert config_from_dict(entries[configs[1].key]["config"]) == configs[1]
    assert not [f for f in os.listdir(tmp_path) if f.startswith(".tmp-")]

    # A second table on the same file measures nothing new.
    again = FakeTable(path, cache="warm")
    assert len(again) == len(configs) + 1
    assert again.measure(configs) == 0 and again.measured_keys is None
    warm = again.predict_configs(configs)
    assert warm.total_ms == pytest.approx(overhead + sum(fake_cost(c) - overhead
                                                         for c in configs))
    cold = FakeTable(path, cache="cold").predict_configs(configs)
    assert cold.total_ms == pytest.approx(overhead + sum(2 * fake_cost(c) - overhead
                                                         for c in configs))
    assert warm.total_ms < prediction.total_ms < cold.total_ms
    # Another fingerprint (threads) is a separate table in the same file.
    other = FakeTable(path, num_threads=2)
    assert len(other) == 0
    other.measure(configs[:1])
    data = json.loads(path.read_text())
    assert len(data["tables"]) == 2
    assert len(data["tables"][fingerprint_key(table.fingerprint)]["entries"]) == 5


@pytest.mark.parametrize(
    "content",
    ["{not json", json.dumps({"format": "something else"}), json.dumps(
        {"format": "mnv3_layers.latency_table", "version": 1, "tables": {"x": {
            "fingerprint": {}, "entries": {"k": {"median_ms": -1.0}}}}}),
     json.dumps({"format": "mnv3_layers.latency_table", "version": 1, "tables": {"x": {
         "fingerprint": {}, "entries": {}, "calibration": {"wall/mixed/median": {
             "intercept_ms": "0.1"}}}}})],
)
def test_corrupt_cache_is_set_aside_and_rebuilt(tmp_path, content):
    path = tmp_path / "table.json"
    path.write_text(content)
    with pytest.warns(RuntimeWarning, match="corrupt.*rebuilt"):
        table = FakeTable(path)
    assert len(table) == 0
    assert (tmp_path / "table.json.corrupt").read_text() == content
    table.predict(TINY, input_shape=(32, 32, 3), top="dense", classes=3)
    assert json.loads(path.read_text())["format"] == "mnv3_layers.latency_table"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert len(FakeTable(path)) == 5


def test_calibrate_intercept(tmp_path):
    path = tmp_path / "table.json"
    table = FakeTable(path, cache="warm")
    small = model_configs(TINY, input_shape=(32, 32, 3), top="dense", classes=3)
    large = model_configs(TINY, input_shape=(64, 64, 3), top="dense", classes=3)
    raw_small = table.predict_configs(small).total_ms
    raw_large = table.predict_configs(large).total_ms
    assert table.intercept_ms == 0.0
    # Median of (measured - raw): 0.2 and 0.4 -> 0.3.
    assert table.calibrate([(small, raw_small + 0.2), (large, raw_large + 0.4)],
                           kind="intercept") == pytest.approx(0.3)
    prediction = table.predict_configs(small)
    assert prediction.intercept_ms == pytest.approx(0.3)
    assert prediction.total_ms == pytest.approx(raw_small + 0.3)
    assert "scale 1.000 and intercept +0.300 ms" in str(prediction)
    # Stored in the file, per clock / cache / statistic; can be switched off.
    assert FakeTable(path, cache="warm").predict_configs(large).total_ms == pytest.approx(
        raw_large + 0.3)
    assert FakeTable(path, cache="warm", calibrated=False).predict_configs(
        large).total_ms == pytest.approx(raw_large)
    assert FakeTable(path, cache="cold").intercept_ms == 0.0
    stored = json.loads(path.read_text())["tables"][fingerprint_key(table.fingerprint)]
    assert stored["calibration"]["wall/warm/median"]["intercept_ms"] == pytest.approx(0.3)
    # Re-calibrating is not compounded by the stored intercept.
    assert table.calibrate([(small, raw_small + 0.1)], kind="intercept") == pytest.approx(0.1)
    # Scale (the default kind): median of measured / predicted, 1.1 and 1.3 -> 1.2.
    assert table.calibrate([(small, 1.1 * raw_small), (large, 1.3 * raw_large)]) == (
        pytest.approx(1.2))
    prediction = FakeTable(path, cache="warm").predict_configs(large)
    assert (prediction.scale, prediction.intercept_ms) == (pytest.approx(1.2), 0.0)
    assert prediction.total_ms == pytest.approx(1.2 * raw_large)
    with pytest.raises(ValueError, match="`kind` must be"):
        table.calibrate([(small, 1.0)], kind="offset")
    with pytest.raises(ValueError, match="non-empty"):
        table.calibrate([])
    with pytest.raises(ValueError, match="measured_ms"):
        table.calibrate([(small, -1.0)])
    with pytest.raises(ValueError, match="pairs"):
        table.calibrate([small])


@pytest.mark.parametrize(
    "config",
    [
        StemConfig(32, 32, 3, 16),
        BneckConfig(16, 16, 16, 16, 16, 3, 1, 1, True, "relu"),  # no expand conv
        BneckConfig(16, 16, 16, 64, 24, 5, 2, 1, True, "hard_swish"),
        BneckConfig(8, 8, 24, 72, 24, 3, 1, 1, False, "relu"),
        HeadConfig(4, 4, 96, 576, "hard_swish", "applications", 1024, 1000),
        HeadConfig(4, 4, 96, 576, "hard_swish", "dense", 0, 3),
        HeadConfig(4, 4, 96, 576, "hard_swish", "features"),
    ],
    ids=lambda c: c.key,
)
def test_component_weight_bytes_match_the_built_component(config):
    # The converter folds each batch norm into one bias per channel, so the
    # float32 weights are every variable except gamma and the moving stats.
    model = build_component(config)
    params = sum(
        int(np.prod(v.shape)) for v in model.weights
        if not v.path.endswith(("gamma", "moving_mean", "moving_variance"))
    )
    assert component_weight_bytes(config) == 4 * params
    assert component_weight_bytes(OVERHEAD_KEY) == 0
    with pytest.raises(TypeError, match="config"):
        component_weight_bytes("stem/1x1x3")


def _fake_cpu(root, caches):
    for i, (level, kind, size) in enumerate(caches):
        folder = root / "cpu0" / "cache" / f"index{i}"
        folder.mkdir(parents=True)
        (folder / "level").write_text(f"{level}\n")
        (folder / "type").write_text(f"{kind}\n")
        (folder / "size").write_text(f"{size}\n")


def test_l2_cache_bytes_reads_sysfs(tmp_path):
    _fake_cpu(tmp_path / "a", [(1, "Data", "48K"), (1, "Instruction", "32K"),
                               (2, "Unified", "2048K"), (3, "Unified", "260M")])
    assert l2_cache_bytes(sysfs=tmp_path / "a") == 2 * 2**20
    _fake_cpu(tmp_path / "b", [(1, "Data", "32K"), (2, "Unified", "garbage")])
    assert l2_cache_bytes(sysfs=tmp_path / "b") is None
    assert l2_cache_bytes(sysfs=tmp_path / "missing") is None
    size = l2_cache_bytes()  # This machine: a positive size or unknown.
    assert size is None or size > 0


def test_calibrate_spill(tmp_path):
    path = tmp_path / "table.json"
    table = FakeTable(path, cache="warm")
    small = model_configs(TINY, input_shape=(32, 32, 3), top="dense", classes=3)
    big = model_configs("small", input_shape=(64, 64, 3))  # 1000-class applications head
    body = lambda configs: sum(component_weight_bytes(c) for c in configs[:-1]) / 2**20
    total = lambda configs: sum(component_weight_bytes(c) for c in configs)
    l2 = (total(small) + total(big)) // 2  # The tiny model fits, the big one does not.
    assert table.spill_mib(small, l2) == 0.0
    assert table.spill_mib(big, l2) == pytest.approx(body(big))
    assert table.spill_mib(big, 0) == table.spill_mib(big, l2)
    # Components timed cold (mixed: the head; cold: all) never count.
    assert FakeTable(path, cache="cold").spill_mib(big, 0) == 0.0
    raw_small = table.predict_configs(small).total_ms
    raw_big = table.predict_configs(big).total_ms
    # Nothing to fit when no model exceeds L2: error, nothing stored.
    with pytest.raises(ValueError, match="larger than the L2 cache"):
        table.calibrate([(small, raw_small + 1.0)], kind="spill", l2_bytes=l2)
    assert table.calibration == {}
    with pytest.raises(ValueError, match="l2_bytes"):
        table.calibrate([(big, raw_big)], kind="spill", l2_bytes=-1)
    with pytest.raises(ValueError, match="l2_bytes"):
        table.calibrate([(big, raw_big)], kind="spill", l2_bytes=1.5)
    # Least squares through the origin over the spilling models: 0.05 ms/MiB.
    per_mib = table.calibrate(
        [(small, raw_small + 0.3), (big, raw_big + 0.05 * body(big))],
        kind="spill", l2_bytes=l2)
    assert per_mib == pytest.approx(0.05)
    prediction = FakeTable(path, cache="warm").predict_configs(big)
    assert prediction.spill_mib == pytest.approx(body(big))
    assert prediction.spill_ms_per_mib == pytest.approx(0.05)
    assert prediction.total_ms == pytest.approx(raw_big + 0.05 * body(big))
    assert "L2 spill" in str(prediction)
    # The tiny model fits in L2 (the stored size), so it is unchanged.
    assert FakeTable(path, cache="warm").predict_configs(small).total_ms == pytest.approx(
        raw_small)
    assert FakeTable(path, cache="warm", calibrated=False).predict_configs(
        big).total_ms == pytest.approx(raw_big)
    stored = json.loads(path.read_text())["tables"][fingerprint_key(table.fingerprint)]
    entry = stored["calibration"]["wall/warm/median"]
    assert (entry["kind"], entry["l2_bytes"]) == ("spill", l2)
    assert entry["spill_ms_per_mib"] == pytest.approx(0.05)
    # A model faster than its sum does not make the cost negative.
    assert table.calibrate([(big, 0.5 * raw_big)], kind="spill", l2_bytes=l2) == 0.0
    # Re-calibrating with another kind replaces the spill term.
    table.calibrate([(big, 1.1 * raw_big)], kind="scale")
    assert FakeTable(path, cache="warm").predict_configs(big).total_ms == pytest.approx(
        1.1 * raw_big)


def test_malformed_spill_calibration_is_not_trusted(tmp_path):
    path = tmp_path / "table.json"
    content = json.dumps({"format": "mnv3_layers.latency_table", "version": 1, "tables": {
        "x": {"fingerprint": {}, "entries": {}, "calibration": {"wall/warm/median": {
            "intercept_ms": 0.0, "scale": 1.0, "spill_ms_per_mib": -0.1}}}}})
    path.write_text(content)
    with pytest.warns(RuntimeWarning, match="corrupt"):
        table = FakeTable(path, cache="warm")
    assert table.spill_ms_per_mib == 0.0
    assert (tmp_path / "table.json.corrupt").read_text() == content


@pytest.mark.parametrize(
    "kwargs, error",
    [
        (dict(statistic="mean"), "`statistic` must be one of"),
        (dict(clock="gpu"), "`clock` must be one of"),
        (dict(cache="hot"), "`cache` must be one of"),
        (dict(clock="cpu", num_threads=2), "num_threads=1"),
        (dict(runs=0), "`runs`"),
        (dict(warmup=-1), "`warmup`"),
    ],
)
def test_table_bad_arguments(tmp_path, kwargs, error):
    with pytest.raises(ValueError, match=error):
        LatencyTable(tmp_path / "t.json", **kwargs)


def test_table_bad_path_and_configs(tmp_path):
    with pytest.raises(ValueError, match="directory"):
        LatencyTable(tmp_path)
    with pytest.raises(TypeError, match="path"):
        LatencyTable(3)
    table = FakeTable(tmp_path / "t.json")
    with pytest.raises(TypeError, match="configs"):
        table.measure(["bneck/whatever"])
    with pytest.raises(ValueError, match="empty"):
        table.predict_configs([])
    with pytest.raises(KeyError, match="No measurement"):
        table.latency_ms("bneck/unknown")


# === Real measurements (tiny) ===


@pytest.mark.slow
def test_real_measurement_tiny(tmp_path):
    path = tmp_path / "table.json"
    table = LatencyTable(path, warmup=1, runs=3)
    configs = model_configs(TINY, input_shape=(32, 32, 3), top="dense", classes=3)
    assert table.measure(configs) == len(configs) + 1
    for key, entry in table.entries.items():
        for stat in STAT_KEYS:
            assert math.isfinite(entry[stat]) and entry[stat] >= 0, (key, stat)
        assert entry["median_ms"] > 0
        assert entry["min_ms"] <= entry["median_ms"] <= entry["p90_ms"]
        assert entry["runs"] == 3
    for clock in ("wall", "cpu"):
        for cache in ("mixed", "warm", "cold"):
            t = LatencyTable(path, warmup=1, runs=3, clock=clock, cache=cache)
            prediction = t.predict_configs(configs)
            terms = [max(ms - prediction.overhead_ms, 0) for _, ms in prediction.components]
            assert prediction.total_ms == pytest.approx(prediction.overhead_ms + sum(terms))
            assert prediction.total_ms > 0 and prediction.clock == clock

    # End-to-end measurement of the same model, two clocks.
    from mnv3_layers.search import build_classifier

    model = build_classifier(TINY, (32, 32, 3), 3)
    stats = measure_tflite(model, warmup=1, runs=3)
    assert stats["runs"] == 3 and stats["median_ms"] > 0 and stats["cpu_median_ms"] >= 0
    assert "cold_median_ms" not in stats
    with pytest.raises(TypeError, match="model_or_flatbuffer"):
        measure_tflite(42)
    with pytest.raises(ValueError, match="runs"):
        measure_tflite(model, runs=0)


def test_small_table_key_count():
    # Distinct configurations: Small's two identical 576-wide blocks share one entry.
    configs = model_configs(SMALL, input_shape=(224, 224, 3))
    assert len({c.key for c in configs}) == len(configs) - 2
    assert np.all([c.key.startswith(("stem/", "bneck/", "head/")) for c in configs])


# === Bad sources and runtime (the same checks as `measure_latency`) ===


def test_bad_tflite_sources_and_runtime(tmp_path):
    from mnv3_layers.latency import measure_latency

    missing = tmp_path / "missing.tflite"
    with pytest.raises(FileNotFoundError, match="missing.tflite"):
        measure_tflite(missing)
    with pytest.raises(FileNotFoundError, match="missing.tflite"):
        measure_latency(missing, runtime="tflite")
    fake = tmp_path / "fake.tflite"
    fake.write_bytes(b"PK\x03\x04 this is a zip, not a flatbuffer")
    with pytest.raises(ValueError, match="is not a TFLite file"):
        measure_tflite(fake)
    with pytest.raises(ValueError, match="not a TFLite flatbuffer"):
        measure_tflite(b"12345678 not tflite")
    with pytest.raises(ValueError, match=r"`runtime` must be one of .*runtime='tflight'"):
        measure_latency(fake, runtime="tflight")
