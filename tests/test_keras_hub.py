"""keras-hub RetinaNet and DeepLabV3 on MobileNetV3Backbone (extra `hub`).

keras-hub needs no adapter: `RetinaNetBackbone` and `DeepLabV3Backbone` take
any `keras.Model` as `image_encoder` and read only `image_encoder.inputs` and
`image_encoder.pyramid_outputs` (keras_hub/src/models/retinanet/
retinanet_backbone.py:69-88, deeplab_v3/deeplab_v3_backbone.py:78-92; the
only type check is `isinstance(image_encoder, keras.Model)`). They serialize
it with `keras.layers.serialize`, which finds our registered class.

keras-hub reads level `Pn` as stride `2**n` (`FeaturePyramidBackbone`;
`DeepLabV3Backbone` computes its last upsampling as
`2 ** int(spatial_pyramid_pooling_key[-1]) // upsampling_size`), which holds
for `output_stride=32` only, so these tests use that.

Both tasks fit eagerly (`run_eagerly=True`): tracing the train step costs
five times the two steps on a CPU, and graph-mode fits of our backbone inside
detectors are covered in test_keras_cv.py.
"""

import os

import keras
import numpy as np
import pytest

keras_hub = pytest.importorskip("keras_hub")

from mnv3_layers.applications import MobileNetV3Backbone  # noqa: E402

pytestmark = pytest.mark.slow

NUM_CLASSES = 3


def _fit_and_check_gradient(model, encoder, x, y):
    before = np.array(encoder.get_layer("conv").kernel)
    history = model.fit(x, y, batch_size=2, epochs=1, verbose=0)
    assert len(history.history["loss"]) == 1
    assert np.all(np.isfinite(history.history["loss"]))
    # The task's loss reaches our backbone's first convolution.
    assert not np.allclose(np.array(encoder.get_layer("conv").kernel), before)


def test_retinanet_object_detector(tmp_path):
    height, width = 128, 160
    encoder = MobileNetV3Backbone("large", alpha=0.5, input_shape=(height, width, 3))
    backbone = keras_hub.models.RetinaNetBackbone(
        image_encoder=encoder, min_level=3, max_level=7, use_p5=False,
        image_shape=(height, width, 3),
    )
    # The FPN reads our P3-P5 and builds P6, P7 itself: strides 8 .. 128.
    assert [tuple(t.shape) for t in backbone.pyramid_outputs.values()] == [
        (None, height // 2**n, width // 2**n, 256) for n in range(3, 8)
    ]
    model = keras_hub.models.RetinaNetObjectDetector(
        backbone=backbone, num_classes=NUM_CLASSES, bounding_box_format="xyxy"
    )
    model.compile(optimizer=keras.optimizers.SGD(1e-3, global_clipnorm=10.0),
                  jit_compile=False, run_eagerly=True)
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, (4, height, width, 3)).astype("float32")
    boxes = np.full((4, 3, 4), -1.0, "float32")
    labels = np.full((4, 3), -1.0, "float32")
    for i in range(4):
        for j in range(1 + i % 3):
            x0, y0 = rng.uniform(0, width - 48), rng.uniform(0, height - 48)
            boxes[i, j] = (x0, y0, x0 + rng.uniform(24, 48), y0 + rng.uniform(24, 48))
            labels[i, j] = rng.integers(0, NUM_CLASSES)
    _fit_and_check_gradient(model, encoder, x, {"boxes": boxes, "labels": labels})

    predictions = model.predict(x[:2], verbose=0)
    assert set(predictions) == {"boxes", "labels", "confidence", "num_detections"}
    count = predictions["boxes"].shape[1]
    assert predictions["boxes"].shape == (2, count, 4)
    assert predictions["labels"].shape == (2, count)
    assert np.all((predictions["num_detections"] >= 0) & (predictions["num_detections"] <= count))

    path = os.path.join(tmp_path, "retinanet.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert type(loaded.backbone.image_encoder) is MobileNetV3Backbone
    assert loaded.backbone.image_encoder.get_config() == encoder.get_config()
    raw, raw_loaded = model(x[:2], training=False), loaded(x[:2], training=False)
    for key in ("bbox_regression", "cls_logits"):
        np.testing.assert_allclose(raw_loaded[key], raw[key], rtol=1e-5, atol=1e-5)
    # Same execution mode as the original (graph-mode float rounding can
    # reorder near-tied scores of an untrained detector in NMS).
    loaded.run_eagerly = True
    received = loaded.predict(x[:2], verbose=0)
    for key in predictions:
        np.testing.assert_allclose(received[key], predictions[key], rtol=1e-5, atol=1e-4)


def test_deeplab_v3_plus_image_segmenter():
    height, width = 160, 128
    encoder = MobileNetV3Backbone("small", alpha=0.5, input_shape=(height, width, 3))
    backbone = keras_hub.models.DeepLabV3Backbone(
        image_encoder=encoder,
        spatial_pyramid_pooling_key="P5",
        upsampling_size=8,  # P5 (stride 32) up to P2 (stride 4)
        dilation_rates=[6, 12, 18],
        low_level_feature_key="P2",
        image_shape=(height, width, 3),
    )
    model = keras_hub.models.DeepLabV3ImageSegmenter(backbone=backbone, num_classes=NUM_CLASSES)
    model.compile(
        optimizer=keras.optimizers.SGD(1e-3),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=[keras.metrics.SparseCategoricalAccuracy()],
        jit_compile=False,
        run_eagerly=True,
    )
    rng = np.random.default_rng(1)
    x = rng.uniform(0, 255, (2, height, width, 3)).astype("float32")
    masks = rng.integers(0, NUM_CLASSES, (2, height, width, 1)).astype("int32")
    _fit_and_check_gradient(model, encoder, x, masks)
    logits = model.predict(x, verbose=0)
    assert logits.shape == (2, height, width, NUM_CLASSES)
    assert np.all(np.isfinite(logits))
