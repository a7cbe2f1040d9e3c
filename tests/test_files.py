"""Atomic writes (mnv3_layers.files): a failed write leaves the old file and no temp files."""

import json
import os

import keras
import numpy as np
import pytest

from mnv3_layers.files import atomic_write, save_model_atomic, write_json_atomic


def test_write_json_atomic_replaces_the_file(tmp_path):
    path = tmp_path / "report.json"
    assert write_json_atomic(path, {"a": 1}) == str(path)
    write_json_atomic(path, {"a": 2, "b": [1.5]})
    assert json.loads(path.read_text()) == {"a": 2, "b": [1.5]}
    assert os.listdir(tmp_path) == ["report.json"]


def test_failed_write_keeps_the_old_file_and_leaves_no_temp_file(tmp_path):
    path = tmp_path / "report.json"
    write_json_atomic(path, {"a": 1})

    def half_write(temp):
        with open(temp, "w") as stream:
            stream.write('{"a": ')
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        atomic_write(path, half_write)
    assert json.loads(path.read_text()) == {"a": 1}
    assert os.listdir(tmp_path) == ["report.json"]
    # Not JSON-serializable data: the same guarantee.
    with pytest.raises(TypeError):
        write_json_atomic(path, {"a": object()})
    assert json.loads(path.read_text()) == {"a": 1}
    assert os.listdir(tmp_path) == ["report.json"]


def test_save_model_atomic_writes_a_loadable_keras_file(tmp_path):
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    path = save_model_atomic(model, os.path.join(tmp_path, "model.keras"))
    loaded = keras.saving.load_model(path)
    x = np.ones((1, 3), "float32")
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
    assert os.listdir(tmp_path) == ["model.keras"]
