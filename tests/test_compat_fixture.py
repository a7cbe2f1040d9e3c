"""Files written before the subpackage layout still load and give identical outputs.

The files in `tests/data/compat/` were written by `tests/data/make_compat_fixture.py`
with the code of stop 12 (flat `mnv3_layers/` modules). Each test loads one with
only `import mnv3_layers` (and the public path that reads it) and compares with the
outputs stored beside it.
"""

import json
import os

import keras
import numpy as np
import pytest

import mnv3_layers  # noqa: F401
import mnv3_layers.applications  # noqa: F401  (registers MobileNetV3Backbone)
import mnv3_layers.quantization.keras_engine  # noqa: F401  (registers the QAT layers)

DATA = os.path.join(os.path.dirname(__file__), "data", "compat")


@pytest.fixture(scope="module")
def expected():
    with np.load(os.path.join(DATA, "expected.npz")) as data:
        return {key: data[key] for key in data.files}


def _load(name):
    return keras.saving.load_model(os.path.join(DATA, name))


@pytest.mark.parametrize("name", ["classifier", "backbone", "qat"])
def test_keras_file_loads_with_identical_outputs(expected, name):
    model = _load(f"{name}.keras")
    outputs = np.asarray(model(expected["input"], training=False))
    np.testing.assert_array_equal(outputs, expected[name])


def test_keras_file_check_can_fail(expected):
    """The comparison above sees a perturbed input."""
    model = _load("classifier.keras")
    outputs = np.asarray(model(expected["input"] + 1.0, training=False))
    assert not np.array_equal(outputs, expected["classifier"])


def test_weights_file_loads_into_a_new_application(expected):
    from mnv3_layers.applications import MobileNetV3Small

    model = MobileNetV3Small(
        input_shape=(32, 32, 3), alpha=0.35, minimalistic=True, weights=None, classes=5,
    )
    model.load_weights(os.path.join(DATA, "classifier.weights.h5"))
    outputs = np.asarray(model(expected["input"], training=False))
    np.testing.assert_array_equal(outputs, expected["classifier"])


def test_architecture_json_builds_the_same_backbone_tables():
    from mnv3_layers.search import load_architecture

    spec = load_architecture(os.path.join(DATA, "architecture.json"))
    with open(os.path.join(DATA, "architecture.json"), encoding="utf-8") as f:
        written = json.load(f)
    assert spec.name == written["name"] == "tiny"
    assert [block.exp_size for block in spec.blocks] == [
        block["exp_size"] for block in written["blocks"]
    ]
    assert spec.last_stage.exp_size == written["last_stage"]["exp_size"]


def test_latency_table_json_predicts_the_stored_total(expected, tmp_path):
    import shutil

    from mnv3_layers.latency_table import LatencyTable, model_configs
    from mnv3_layers.search import load_architecture

    path = tmp_path / "latency_table.json"
    shutil.copy(os.path.join(DATA, "latency_table.json"), path)
    with open(path, encoding="utf-8") as f:
        stored = json.load(f)
    tables = stored["tables"]
    assert len(tables) == 1
    entries = next(iter(tables.values()))["entries"]
    assert set(expected["latency_keys"]) <= set(entries)
    # The stored file was written on some CPU; read it under that fingerprint.
    table = LatencyTable(path)
    table.entries = dict(entries)
    spec = load_architecture(os.path.join(DATA, "architecture.json"))
    configs = model_configs(spec, input_shape=(32, 32, 3), top="dense", classes=3)
    assert [config.key for config in configs] == list(expected["latency_keys"])
    total = table.predict_configs(configs).total_ms
    assert total == pytest.approx(float(expected["latency_total_ms"]), rel=1e-12)
