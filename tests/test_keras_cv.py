"""keras-cv detectors and segmenters on MobileNetV3Backbone (extra `cv`).

keras-cv needs no subclass: RetinaNet, YOLOV8Detector and DeepLabV3Plus only
read `backbone.pyramid_level_inputs` (P3-P5, resp. P2 and P5) and call
`keras_cv.src.utils.train.get_feature_extractor`, which uses
`backbone.get_layer(name).output` and `backbone.inputs`.

Every model x input size runs once, on Large or Small (both variants appear
for every model); each case builds the model, fits two steps (gradients must
reach the backbone) and predicts. A trained RetinaNet goes through `.keras`.
The RetinaNet that goes through `.keras` fits in graph mode (`tf.function`,
as users train); the other cases fit eagerly: on a CPU, tracing a detector's
train step costs several times its two steps, and our backbone enters every
keras-cv model the same way (`get_feature_extractor` on the same layers).
"""

import importlib.util
import itertools
import json
import os
import pathlib

import keras
import numpy as np
import pytest

keras_cv = pytest.importorskip("keras_cv")

from mnv3_layers.applications import MobileNetV3Backbone  # noqa: E402

pytestmark = pytest.mark.slow

NUM_CLASSES = 3
ALPHA = 0.5
BOX_FORMAT = "xywh"
MODELS = ("retinanet", "yolov8", "deeplabv3plus")
SIZES = ((256, 256), (320, 256))  # (height, width)
# Each model on both sizes and both variants; "graph" or "eager" fit.
CASES = [
    ("retinanet", "large", (256, 256), "eager"),
    ("retinanet", "small", (320, 256), "graph"),
    ("yolov8", "small", (256, 256), "eager"),
    ("yolov8", "large", (320, 256), "eager"),
    ("deeplabv3plus", "large", (256, 256), "eager"),
    ("deeplabv3plus", "small", (320, 256), "eager"),
]
ROUND_TRIP_CASE = ("retinanet", "small", (320, 256), "graph")


def _case_id(case):
    model, variant, (height, width), mode = case
    return f"{model}-{variant}-{height}x{width}-{mode}"


def test_cases_cover_every_model_size_variant_and_mode():
    assert {(m, s) for m, _, s, _ in CASES} == set(itertools.product(MODELS, SIZES))
    for model in MODELS:
        assert {v for m, v, _, _ in CASES if m == model} == {"large", "small"}
    assert ROUND_TRIP_CASE in CASES and ROUND_TRIP_CASE[-1] == "graph"


def _detection_data(height, width, batch=2, seed=0):
    """Images in [0, 255] and xywh boxes padded with -1 (keras-cv's dense format)."""
    rng = np.random.default_rng(seed)
    images = rng.uniform(0, 255, (batch, height, width, 3)).astype("float32")
    boxes = -np.ones((batch, 4, 4), "float32")
    classes = -np.ones((batch, 4), "float32")
    for i in range(batch):
        for j in range(2 + i % 2):  # 2 or 3 real boxes, the rest padding
            w, h = rng.uniform(24, width / 2), rng.uniform(24, height / 2)
            x, y = rng.uniform(0, width - w), rng.uniform(0, height - h)
            boxes[i, j] = (x, y, w, h)
            classes[i, j] = rng.integers(0, NUM_CLASSES)
    return images, {"boxes": boxes, "classes": classes}


def _build(model_name, backbone):
    """The keras-cv model on `backbone`, compiled as a user would (no XLA on CPU)."""
    optimizer = keras.optimizers.SGD(1e-3, global_clipnorm=10.0)
    if model_name == "retinanet":
        model = keras_cv.models.RetinaNet(
            num_classes=NUM_CLASSES, bounding_box_format=BOX_FORMAT, backbone=backbone
        )
        model.compile(optimizer=optimizer, classification_loss="focal",
                      box_loss="smoothl1", jit_compile=False)
    elif model_name == "yolov8":
        model = keras_cv.models.YOLOV8Detector(
            num_classes=NUM_CLASSES, bounding_box_format=BOX_FORMAT, backbone=backbone,
            fpn_depth=1,
        )
        model.compile(optimizer=optimizer, classification_loss="binary_crossentropy",
                      box_loss="ciou", jit_compile=False)
    else:
        model = keras_cv.models.DeepLabV3Plus(num_classes=NUM_CLASSES, backbone=backbone)
        model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy",
                      jit_compile=False)
    return model


def _check_detections(detections, height, width, batch=2):
    assert set(detections) >= {"boxes", "classes", "confidence", "num_detections"}
    boxes = np.asarray(detections["boxes"])
    max_detections = boxes.shape[1]
    assert boxes.shape == (batch, max_detections, 4)
    assert np.asarray(detections["classes"]).shape == (batch, max_detections)
    assert np.asarray(detections["confidence"]).shape == (batch, max_detections)
    counts = np.asarray(detections["num_detections"])
    assert counts.shape == (batch,)
    assert np.all((counts >= 0) & (counts <= max_detections))
    for i, count in enumerate(counts):
        # The valid rows: finite xywh boxes, known classes, confidences in [0, 1].
        assert np.all(np.isfinite(boxes[i, :count]))
        classes = np.asarray(detections["classes"])[i, :count]
        assert np.all((classes >= 0) & (classes < NUM_CLASSES))
        confidence = np.asarray(detections["confidence"])[i, :count]
        assert np.all((confidence >= 0) & (confidence <= 1))


def _backbone_kernel(backbone):
    return backbone.get_layer("conv").kernel


@pytest.fixture(scope="module")
def trained():
    """case -> (model, images) of the cases already fitted in this module."""
    return {}


@pytest.mark.parametrize("case", CASES, ids=_case_id)
def test_fit_and_predict(case, trained):
    model_name, variant, (height, width), mode = case
    backbone = MobileNetV3Backbone(variant, alpha=ALPHA, input_shape=(height, width, 3))
    model = _build(model_name, backbone)
    model.run_eagerly = mode == "eager"
    assert model.backbone is backbone
    before = np.array(_backbone_kernel(backbone))
    rng = np.random.default_rng(len(trained))
    if model_name == "deeplabv3plus":
        images = rng.uniform(0, 255, (2, height, width, 3)).astype("float32")
        targets = rng.integers(0, NUM_CLASSES, (2, height, width, 1)).astype("int32")
    else:
        images, targets = _detection_data(height, width, seed=len(trained))
    history = model.fit(images, targets, batch_size=2, epochs=2, verbose=0)
    assert len(history.history["loss"]) == 2
    assert np.all(np.isfinite(history.history["loss"]))
    # The detector's loss reaches the backbone's first convolution.
    assert not np.allclose(np.array(_backbone_kernel(backbone)), before)

    predictions = model.predict(images, verbose=0)
    if model_name == "deeplabv3plus":
        assert predictions.shape == (2, height, width, NUM_CLASSES)
        np.testing.assert_allclose(predictions.sum(axis=-1), 1.0, atol=1e-4)
    else:
        _check_detections(predictions, height, width)
    trained[case] = (model, images)


def test_keras_round_trip_of_trained_detector(tmp_path, trained):
    if ROUND_TRIP_CASE not in trained:  # run alone: fit it here
        test_fit_and_predict(ROUND_TRIP_CASE, trained)
    model, images = trained[ROUND_TRIP_CASE]
    expected = model.predict(images, verbose=0)
    path = os.path.join(tmp_path, "retinanet.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert type(loaded) is type(model)
    assert isinstance(loaded.backbone, MobileNetV3Backbone)
    assert loaded.backbone.get_config() == model.backbone.get_config()
    assert loaded.backbone.pyramid_level_inputs == model.backbone.pyramid_level_inputs
    received = loaded.predict(images, verbose=0)
    np.testing.assert_array_equal(received["num_detections"], expected["num_detections"])
    for key in ("boxes", "classes", "confidence"):
        np.testing.assert_allclose(received[key], expected[key], rtol=1e-5, atol=1e-4)


# --- examples/keras_cv_detector.py -----------------------------------------


def _load_example():
    path = pathlib.Path(__file__).resolve().parent.parent / "examples" / "keras_cv_detector.py"
    spec = importlib.util.spec_from_file_location("keras_cv_detector", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_example_smoke(tmp_path):
    report = _load_example().main(["--smoke", "--output", str(tmp_path)])
    assert json.loads((tmp_path / "report.json").read_text()) == report
    assert (tmp_path / "model.keras").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.keras", "report.json"]
    assert report["epochs"] == 1 and len(report["train_loss"]) == 1
    for key in ("val_loss_before", "val_loss_after"):
        assert np.isfinite(report[key]) and report[key] > 0
    assert 0.0 <= report["val_map_50"] <= 1.0


@pytest.mark.parametrize(
    "argv,match",
    [
        (["--image-size", "100"], "--image-size=100"),
        (["--image-size", "32"], "--image-size=32"),
        (["--epochs", "0"], "--epochs=0"),
        (["--batch-size", "-1"], "--batch-size=-1"),
    ],
)
def test_example_rejects_bad_arguments(argv, match):
    with pytest.raises(ValueError, match=match):
        _load_example().main(argv)

