"""keras-cv detectors and segmenters on MobileNetV3Backbone (extra `cv`).

keras-cv needs no subclass: RetinaNet, YOLOV8Detector and DeepLabV3Plus only
read `backbone.pyramid_level_inputs` (P3-P5, resp. P2 and P5) and call
`keras_cv.src.utils.train.get_feature_extractor`, which uses
`backbone.get_layer(name).output` and `backbone.inputs`.
"""

import os

import keras
import numpy as np
import pytest

keras_cv = pytest.importorskip("keras_cv")

from mnv3_layers.applications import MobileNetV3Backbone  # noqa: E402

pytestmark = pytest.mark.slow

NUM_CLASSES = 3
SIZES = [(256, 256), (320, 256)]


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


def _check_detections(detections, batch):
    assert set(detections) >= {"boxes", "classes", "confidence", "num_detections"}
    assert detections["boxes"].shape[0] == batch
    assert detections["boxes"].shape[-1] == 4


@pytest.mark.parametrize("size", SIZES)
def test_retinanet_fit_and_predict(size):
    height, width = size
    backbone = MobileNetV3Backbone("small", input_shape=(height, width, 3))
    model = keras_cv.models.RetinaNet(
        num_classes=NUM_CLASSES, bounding_box_format="xywh", backbone=backbone
    )
    model.compile(
        optimizer=keras.optimizers.SGD(1e-3),
        classification_loss="focal",
        box_loss="smoothl1",
        jit_compile=False,
    )
    images, labels = _detection_data(height, width)
    history = model.fit(images, labels, batch_size=2, epochs=2, verbose=0)
    assert np.all(np.isfinite(history.history["loss"]))
    _check_detections(model.predict(images, verbose=0), batch=2)


def test_yolov8_fit_and_predict():
    backbone = MobileNetV3Backbone("small", input_shape=(256, 256, 3))
    model = keras_cv.models.YOLOV8Detector(
        num_classes=NUM_CLASSES, bounding_box_format="xywh", backbone=backbone, fpn_depth=1
    )
    model.compile(
        optimizer=keras.optimizers.SGD(1e-3),
        classification_loss="binary_crossentropy",
        box_loss="ciou",
        jit_compile=False,
    )
    images, labels = _detection_data(256, 256, seed=1)
    history = model.fit(images, labels, batch_size=2, epochs=2, verbose=0)
    assert np.all(np.isfinite(history.history["loss"]))
    _check_detections(model.predict(images, verbose=0), batch=2)


@pytest.mark.parametrize("size", SIZES)
def test_deeplab_v3_plus_fit_and_predict(size):
    height, width = size
    backbone = MobileNetV3Backbone("small", input_shape=(height, width, 3))
    model = keras_cv.models.DeepLabV3Plus(num_classes=NUM_CLASSES, backbone=backbone)
    model.compile(
        optimizer=keras.optimizers.SGD(1e-3),
        loss="sparse_categorical_crossentropy",
        jit_compile=False,
    )
    rng = np.random.default_rng(2)
    images = rng.uniform(0, 255, (2, height, width, 3)).astype("float32")
    masks = rng.integers(0, NUM_CLASSES, (2, height, width, 1)).astype("int32")
    history = model.fit(images, masks, batch_size=2, epochs=2, verbose=0)
    assert np.all(np.isfinite(history.history["loss"]))
    assert model.predict(images, verbose=0).shape == (2, height, width, NUM_CLASSES)


def test_retinanet_keras_round_trip(tmp_path):
    backbone = MobileNetV3Backbone("small", input_shape=(256, 256, 3))
    model = keras_cv.models.RetinaNet(
        num_classes=NUM_CLASSES, bounding_box_format="xywh", backbone=backbone
    )
    images, _ = _detection_data(256, 256, seed=3)
    expected = model.predict(images, verbose=0)
    path = os.path.join(tmp_path, "retinanet.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert isinstance(loaded.backbone, MobileNetV3Backbone)
    assert loaded.backbone.pyramid_level_inputs == backbone.pyramid_level_inputs
    received = loaded.predict(images, verbose=0)
    for key in ("boxes", "classes", "confidence", "num_detections"):
        np.testing.assert_allclose(received[key], expected[key], rtol=1e-5, atol=1e-4)
