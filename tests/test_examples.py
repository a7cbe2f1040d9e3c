"""The examples run end to end in their smoke modes."""

import importlib.util
import json
import pathlib

import numpy as np
import pytest

EXAMPLES = pathlib.Path(__file__).resolve().parent.parent / "examples"


def _load(name):
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_train_shapes_is_the_demo(tmp_path, monkeypatch):
    """The main job is `mnv3 demo` (run for real by tests/test_cli.py); check the wrapper."""
    from mnv3_layers import training

    calls = []
    monkeypatch.setattr(training, "run_demo", lambda **kwargs: calls.append(kwargs) or kwargs)
    train_shapes = _load("train_shapes")
    train_shapes.main(["--output", str(tmp_path), "--epochs", "3", "--smoke"])
    assert calls == [dict(out=str(tmp_path), num_images=None, image_size=None, epochs=3,
                          alpha=None, batch_size=None, seed=0, smoke=True, overwrite=False)]


def test_train_shapes_rejects_tiny_dataset(tmp_path):
    train_shapes = _load("train_shapes")
    with pytest.raises(ValueError, match="num_images"):
        train_shapes.main(["--output", str(tmp_path), "--num-images", "5"])
    assert not any(tmp_path.iterdir())  # nothing written


@pytest.mark.slow
def test_finetune_custom_dataset_smoke(tmp_path, capsys):
    example = _load("finetune_custom_dataset")
    out = tmp_path / "run"
    result = example.main(["--smoke", "--out", str(out)])
    metrics = json.loads((out / "metrics.json").read_text())
    assert result["metrics"] == metrics
    assert metrics["epochs_completed"] == 2  # 1 epoch with the backbone frozen, then 1
    log = [line for line in capsys.readouterr().out.splitlines() if line.startswith("phase")]
    assert log[0].startswith("phase 'head'") and log[1].startswith("phase 'finetune'")
    assert (out / "model_int8.tflite").is_file() and (out / "model.keras").is_file()
    assert result["class_names"] == ["circle", "square", "triangle"]
    assert result["examples"] == 3
    keras_predictions = np.asarray(result["keras_predictions"])
    int8_predictions = np.asarray(result["int8_predictions"])
    assert keras_predictions.shape == int8_predictions.shape == (3, 3)
    np.testing.assert_allclose(keras_predictions.sum(axis=1), 1.0, atol=1e-5)
    # int8 probabilities follow the float model's within a few quantization steps
    np.testing.assert_allclose(int8_predictions, keras_predictions, atol=0.1)
