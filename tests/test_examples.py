"""The README's main job runs end to end (shortened)."""

import importlib.util
import json
import pathlib

import pytest

EXAMPLES = pathlib.Path(__file__).resolve().parent.parent / "examples"


def _load(name):
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_train_shapes_smoke(tmp_path):
    train_shapes = _load("train_shapes")
    report = train_shapes.main([
        "--output", str(tmp_path), "--num-images", "40", "--image-size", "32",
        "--epochs", "1", "--batch-size", "16",
    ])
    assert (tmp_path / "model.keras").is_file()
    saved = json.loads((tmp_path / "report.json").read_text())
    assert saved == report
    assert 0.0 <= report["val_accuracy"] <= 1.0
    assert report["reload_max_abs_diff"] == 0.0


def test_train_shapes_rejects_tiny_dataset(tmp_path):
    train_shapes = _load("train_shapes")
    with pytest.raises(ValueError, match="num-images"):
        train_shapes.main(["--output", str(tmp_path), "--num-images", "5"])
