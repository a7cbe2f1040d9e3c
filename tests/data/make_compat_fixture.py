"""Writes the compatibility fixture: files saved by the package before the layout change.

Run once, with the code whose files the fixture pins (stop 12, before the
subpackage layout), from the repository root:

    python tests/data/make_compat_fixture.py

It writes into `tests/data/compat/`: a `.keras` classifier, a `.keras`
backbone, a `.keras` Keras-engine QAT model, a `.weights.h5` file, a latency
table JSON, a search `architecture.json`, and `expected.npz` with the input
and each model's outputs on it. `tests/test_compat_fixture.py` loads them with
today's code and checks identical outputs. Do not rerun it after a change of
layout: the point of the files is that old code wrote them.
"""

import json
import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from mnv3_layers.block_spec import (  # noqa: E402
    ArchitectureSpec, BlockSpec, LastStageSpec, StemSpec,
)
from mnv3_layers.applications import MobileNetV3Backbone, MobileNetV3Small  # noqa: E402

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "compat")
SIZE = 32

TINY = ArchitectureSpec(
    name="tiny",
    stem=StemSpec(16, 3, 2, "hard_swish"),
    blocks=(
        BlockSpec(3, 32, 16, False, "relu", 2),
        BlockSpec(3, 48, 16, True, "hard_swish", 1),
    ),
    last_stage=LastStageSpec(48, 1024, "hard_swish"),
)


def _randomize(model, seed):
    rng = np.random.default_rng(seed)
    for weight in model.weights:
        shape = tuple(weight.shape)
        name = weight.path
        if "moving_variance" in name or "gamma" in name:
            value = rng.uniform(0.5, 1.5, shape)
        else:
            value = rng.normal(0.0, 0.2, shape)
        weight.assign(value.astype("float32"))


def main():
    from mnv3_layers import search
    from mnv3_layers.latency_table import LatencyTable, model_configs
    from mnv3_layers.quantization import quantize_model

    os.makedirs(OUT, exist_ok=True)
    keras.utils.set_random_seed(0)
    x = np.random.default_rng(1).uniform(0, 255, (2, SIZE, SIZE, 3)).astype("float32")
    expected = {"input": x}

    classifier = MobileNetV3Small(
        input_shape=(SIZE, SIZE, 3), alpha=0.35, minimalistic=True, weights=None, classes=5,
    )
    _randomize(classifier, 2)
    classifier.save(os.path.join(OUT, "classifier.keras"))
    classifier.save_weights(os.path.join(OUT, "classifier.weights.h5"))
    expected["classifier"] = np.asarray(classifier(x, training=False))

    backbone = MobileNetV3Backbone("large", input_shape=(SIZE, SIZE, 3), alpha=0.35)
    _randomize(backbone, 3)
    backbone.save(os.path.join(OUT, "backbone.keras"))
    expected["backbone"] = np.asarray(backbone(x, training=False))

    tiny = search.build_classifier(TINY, (SIZE, SIZE, 3), 3)
    _randomize(tiny, 4)
    qat = quantize_model(tiny)
    qat.compile(optimizer=keras.optimizers.SGD(1e-3), loss="sparse_categorical_crossentropy")
    qat.fit(x, np.array([0, 1]), epochs=1, verbose=0)  # One step sets the ranges.
    qat.save(os.path.join(OUT, "qat.keras"))
    expected["qat"] = np.asarray(qat(x, training=False))

    with open(os.path.join(OUT, "architecture.json"), "w", encoding="utf-8") as f:
        json.dump(search.architecture_to_dict(TINY), f, indent=2)

    table = LatencyTable(os.path.join(OUT, "latency_table.json"), warmup=1, runs=3)
    configs = model_configs(TINY, input_shape=(SIZE, SIZE, 3), top="dense", classes=3)
    table.measure(configs)
    expected["latency_total_ms"] = np.float64(table.predict_configs(configs).total_ms)
    expected["latency_keys"] = np.array([config.key for config in configs])

    np.savez(os.path.join(OUT, "expected.npz"), **expected)
    print("wrote", sorted(os.listdir(OUT)))


if __name__ == "__main__":
    main()
