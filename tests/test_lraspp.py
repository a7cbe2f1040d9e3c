"""LR-ASPP head and segmenter (paper section 6.4): values against a NumPy
reference, shapes for every pooling/gate option, dynamic shapes, config and
`.keras` round trips, MeanIoU, bad input, and the training example."""

import doctest
import importlib.util
import json
import pathlib

import keras
import numpy as np
import pytest
import tensorflow as tf

from mnv3_layers.applications.backbone import MobileNetV3Backbone
from mnv3_layers.applications.lraspp import (
    LRASPPHead,
    LRASPPSegmenter,
    ResizeLike,
    _check_backbone,
)
from mnv3_layers.testing import assert_raises_for_argument

EXAMPLES = pathlib.Path(__file__).resolve().parent.parent / "examples"
NUM_CLASSES = 4


def _randomize(model_or_layer, rng):
    """Random weights that keep activations O(1), batch-norm statistics included."""
    for weight in model_or_layer.weights:
        name = weight.path.split("/")[-1]
        shape = tuple(weight.shape)
        if name == "moving_variance":
            value = rng.uniform(1.0, 2.0, shape)
        elif name == "gamma":
            value = rng.uniform(0.5, 1.0, shape)
        elif len(shape) == 4:
            value = rng.normal(0.0, np.sqrt(2.0 / (shape[0] * shape[1] * shape[2])), shape)
        else:
            value = rng.normal(0.0, 0.2, shape)
        weight.assign(value.astype("float32"))


def _numpy(x):
    return keras.ops.convert_to_numpy(x)


@pytest.fixture(scope="module")
def backbone():
    """Small, alpha 0.35, stride 16, reduced tail, any input size (P3: 8 ch, last: 96)."""
    return MobileNetV3Backbone(
        "small", alpha=0.35, input_shape=(None, None, 3), output_stride=16, reduced_tail=True
    )


@pytest.fixture(scope="module")
def images():
    rng = np.random.default_rng(1)
    return {
        "square": rng.uniform(0, 255, (2, 64, 64, 3)).astype("float32"),
        "non_square": rng.uniform(0, 255, (2, 128, 96, 3)).astype("float32"),
    }


# --- The head against a NumPy reference ---------------------------------------


def _window_mean_reference(x, pool_size, strides):
    """VALID average pool with the window clipped to the map (NHWC, NumPy)."""
    _, height, width, _ = x.shape
    kh, kw = min(pool_size[0], height), min(pool_size[1], width)
    rows = range(0, height - kh + 1, strides[0])
    cols = range(0, width - kw + 1, strides[1])
    return np.stack(
        [np.stack([x[:, r:r + kh, c:c + kw].mean(axis=(1, 2)) for c in cols], axis=1)
         for r in rows],
        axis=1,
    )


def _head_reference(head, low, high):
    """The head in the paper's order (upsample, then classify), from its weights."""
    w = {v.path.split("/", 1)[1]: _numpy(v) for v in head.weights}
    conv = np.einsum
    main = conv("bhwc,cd->bhwd", high, w["main_conv/kernel"][0, 0])
    main = (main - w["main_bn/moving_mean"]) / np.sqrt(
        w["main_bn/moving_variance"] + head.bn_epsilon
    ) * w["main_bn/gamma"] + w["main_bn/beta"]
    main = np.maximum(main, 0.0)
    if head.pool_size is None:
        pooled = high.mean(axis=(1, 2), keepdims=True)
    else:
        pooled = _window_mean_reference(high, head.pool_size, head.effective_pool_strides)
    gate = conv("bhwc,cd->bhwd", pooled, w["gate_conv/kernel"][0, 0]) + w["gate_conv/bias"]
    if head.gate == "sigmoid":
        gate = 1.0 / (1.0 + np.exp(-gate))
    else:
        gate = np.clip(gate + 3.0, 0.0, 6.0) / 6.0
    gate = _numpy(keras.ops.image.resize(gate, high.shape[1:3], interpolation="bilinear"))
    x = _numpy(keras.ops.image.resize(main * gate, low.shape[1:3], interpolation="bilinear"))
    high_logits = conv("bhwc,cd->bhwd", x, w["high_classifier/kernel"][0, 0])
    low_logits = conv("bhwc,cd->bhwd", low, w["low_classifier/kernel"][0, 0])
    return high_logits + w["high_classifier/bias"] + low_logits + w["low_classifier/bias"]


HEAD_CASES = {
    "global_sigmoid": dict(pool_size=None, gate="sigmoid"),
    "window_hard_sigmoid": dict(pool_size=(2, 3), pool_strides=(1, 2), gate="hard_sigmoid"),
    "window_larger_than_map": dict(pool_size=(8, 4), gate="sigmoid"),
}


@pytest.mark.parametrize("case", sorted(HEAD_CASES))
def test_head_matches_numpy_reference(case):
    rng = np.random.default_rng(0)
    # Non-square maps; high is 5x7, so the (2, 3) window with strides (1, 2)
    # gives a 4x3 pooled gate map and the (8, 4) window is clipped to 5x4.
    low = rng.standard_normal((2, 10, 14, 6)).astype("float32")
    high = rng.standard_normal((2, 5, 7, 12)).astype("float32")
    head = LRASPPHead(NUM_CLASSES, filters=8, **HEAD_CASES[case])
    head.build([low.shape, high.shape])
    _randomize(head, rng)
    output = _numpy(head([low, high], training=False))
    assert output.shape == (2, 10, 14, NUM_CLASSES)
    np.testing.assert_allclose(output, _head_reference(head, low, high), atol=2e-5)


def test_head_gate_varies_by_region_with_a_window():
    """With a window smaller than the map, the gate differs between regions."""
    rng = np.random.default_rng(0)
    high = rng.standard_normal((1, 4, 4, 12)).astype("float32")
    high[:, :, 2:] += 3.0  # the right half differs
    low = np.zeros((1, 8, 8, 6), "float32")
    windowed = LRASPPHead(NUM_CLASSES, filters=8, pool_size=2)
    windowed.build([low.shape, high.shape])
    _randomize(windowed, rng)
    pooled = _numpy(windowed.gate_conv(_window_mean_reference(high, (2, 2), (2, 2))))
    assert pooled.shape == (1, 2, 2, 8)
    assert not np.allclose(pooled[:, :, 0], pooled[:, :, 1])


def test_head_weights_and_output_shape():
    head = LRASPPHead(NUM_CLASSES, filters=16)
    head.build([(None, 16, 12, 24), (None, 8, 6, 48)])
    # main conv, BN gamma/beta, gate conv + bias, two classifiers + biases.
    assert len(head.trainable_weights) == 9
    assert len(head.non_trainable_weights) == 2  # BN moving mean and variance
    assert head.compute_output_shape([(2, 16, 12, 24), (2, 8, 6, 48)]) == (2, 16, 12, 4)
    symbolic = head([keras.KerasTensor((None, 16, 12, 24)), keras.KerasTensor((None, 8, 6, 48))])
    assert tuple(symbolic.shape) == (None, 16, 12, 4)


@pytest.mark.parametrize("pool_size", [None, (3, 2)])
def test_head_with_run_time_shapes_equals_static(pool_size):
    """In a TF graph with unknown sizes (cumulative-sum pooling, tf resize)."""
    rng = np.random.default_rng(3)
    head = LRASPPHead(NUM_CLASSES, filters=8, pool_size=pool_size)
    head.build([(None, None, None, 6), (None, None, None, 12)])
    _randomize(head, rng)
    dynamic = tf.function(
        lambda low, high: head([low, high], training=False),
        input_signature=[tf.TensorSpec((None, None, None, 6)),
                         tf.TensorSpec((None, None, None, 12))],
        autograph=False,
    )
    # 9x7 map: windows (3, 2) every (3, 2) -> 3x3 pooled; 2x2 map: clipped.
    for high_size in [(9, 7), (2, 2)]:
        high = rng.standard_normal((2, *high_size, 12)).astype("float32")
        low = rng.standard_normal((2, 2 * high_size[0], 2 * high_size[1], 6)).astype("float32")
        static = _numpy(head([low, high], training=False))
        np.testing.assert_allclose(dynamic(low, high).numpy(), static, atol=1e-5)
        np.testing.assert_allclose(static, _head_reference(head, low, high), atol=2e-5)


def test_resize_like_with_run_time_shapes():
    layer = ResizeLike(min_size=4)
    x = np.random.default_rng(0).standard_normal((1, 3, 5, 2)).astype("float32")
    reference = np.zeros((1, 12, 20, 3), "float32")
    dynamic = tf.function(
        lambda a, b: layer([a, b]),
        input_signature=[tf.TensorSpec((None, None, None, 2)), tf.TensorSpec((None, None, None, 3))],
        autograph=False,
    )
    expected = _numpy(keras.ops.image.resize(x, (12, 20), interpolation="bilinear"))
    np.testing.assert_allclose(dynamic(x, reference).numpy(), expected, atol=1e-6)
    np.testing.assert_allclose(_numpy(layer([x, reference])), expected, atol=1e-6)


# --- The segmenter --------------------------------------------------------------


SEGMENTER_CASES = {
    "global_sigmoid": dict(pooling="global", gate="sigmoid"),
    "global_hard_sigmoid": dict(pooling="global", gate="hard_sigmoid"),
    "crop_sigmoid": dict(pooling="crop", crop_size=64, gate="sigmoid"),
    "crop_hard_sigmoid": dict(
        pooling="crop", crop_size=(32, 48), pool_strides=1, gate="hard_sigmoid"
    ),
}


@pytest.mark.parametrize("case", sorted(SEGMENTER_CASES))
def test_segmenter_output_shapes(backbone, images, case):
    model = LRASPPSegmenter(NUM_CLASSES, backbone=backbone, filters=16, **SEGMENTER_CASES[case])
    assert model.output_shape == (None, None, None, NUM_CLASSES)
    for key, (height, width) in (("square", (64, 64)), ("non_square", (128, 96))):
        output = _numpy(model(images[key], training=False))
        assert output.shape == (2, height, width, NUM_CLASSES), key
        assert np.all(np.isfinite(output)), key
        assert output.std() > 0, key


def test_segmenter_wiring_and_crop_pool_size(backbone, images):
    model = LRASPPSegmenter(
        NUM_CLASSES, backbone=backbone, filters=16, pooling="crop", crop_size=(64, 32)
    )
    # Window = crop / output stride; strides default to the window.
    assert model.head.pool_size == (4, 2)
    assert model.head.effective_pool_strides == (4, 2)
    # The head reads P3 (stride 8, 8 channels) and the last map (stride 16, 96).
    features = model.get_layer("features")(images["non_square"])
    assert tuple(features["P3"].shape) == (2, 16, 12, 8)
    assert tuple(features["P5"].shape) == (2, 8, 6, 96)
    assert [tuple(t.shape) for t in model.head.input] == [
        (None, None, None, 8), (None, None, None, 96)
    ]


def test_segmenter_softmax_is_softmax_of_logits(backbone, images):
    logits_model = LRASPPSegmenter(NUM_CLASSES, backbone=backbone, filters=16)
    softmax_model = LRASPPSegmenter(
        NUM_CLASSES, backbone=backbone, filters=16, activation="softmax"
    )
    softmax_model.head.set_weights(logits_model.head.get_weights())
    logits = _numpy(logits_model(images["square"], training=False))
    probabilities = _numpy(softmax_model(images["square"], training=False))
    np.testing.assert_allclose(probabilities, _numpy(keras.ops.softmax(logits)), atol=1e-6)
    np.testing.assert_allclose(probabilities.sum(axis=-1), 1.0, atol=1e-5)


def test_segmenter_mixed_precision_outputs_float32(backbone, images):
    keras.config.set_dtype_policy("mixed_float16")
    model = LRASPPSegmenter(NUM_CLASSES, backbone=backbone, filters=16)
    assert model.head.compute_dtype == "float16"
    assert model.head.main_conv.compute_dtype == "float16"
    output = model(images["square"], training=False)
    assert keras.backend.standardize_dtype(output.dtype) == "float32"
    assert np.all(np.isfinite(_numpy(output)))


def test_string_backbone_is_stride_16_reduced_tail():
    built = _check_backbone("Small")
    assert built.variant == "small"
    assert built.output_stride == 16
    assert built.reduced_tail is True


def test_mean_iou_on_segmenter_output(backbone, images):
    rng = np.random.default_rng(0)
    model = LRASPPSegmenter(NUM_CLASSES, backbone=backbone, filters=16)
    _randomize(model.head, rng)
    masks = rng.integers(0, NUM_CLASSES, (2, 64, 64))
    logits = _numpy(model(images["square"], training=False))
    metric = keras.metrics.MeanIoU(num_classes=NUM_CLASSES, sparse_y_pred=False)
    metric.update_state(masks, logits)
    predicted = logits.argmax(axis=-1)
    ious = []
    for c in range(NUM_CLASSES):
        union = np.sum((predicted == c) | (masks == c))
        if union:
            ious.append(np.sum((predicted == c) & (masks == c)) / union)
    np.testing.assert_allclose(float(metric.result()), np.mean(ious), rtol=1e-5)
    # Perfect logits (one-hot of the masks) give mean IoU 1.
    perfect = keras.metrics.MeanIoU(num_classes=NUM_CLASSES, sparse_y_pred=False)
    perfect.update_state(masks, np.eye(NUM_CLASSES)[masks])
    assert float(perfect.result()) == pytest.approx(1.0)


def test_config_round_trip(backbone):
    model = LRASPPSegmenter(
        NUM_CLASSES, backbone=backbone, filters=16, pooling="crop", crop_size=(32, 64),
        pool_strides=(1, 2), gate="hard_sigmoid", activation="softmax", name="seg",
    )
    config = model.get_config()
    assert set(config) == {
        "name", "trainable", "num_classes", "backbone", "filters", "pooling",
        "crop_size", "pool_strides", "gate", "activation",
    }
    assert config["crop_size"] == (32, 64) and config["pool_strides"] == (1, 2)
    revived = LRASPPSegmenter.from_config(json.loads(json.dumps(config)))
    assert revived.get_config() == config
    assert revived.backbone.get_config() == backbone.get_config()
    assert keras.saving.get_registered_name(LRASPPSegmenter) == "mnv3_layers>LRASPPSegmenter"

    head = model.head
    revived_head = LRASPPHead.from_config(json.loads(json.dumps(head.get_config())))
    assert revived_head.get_config() == head.get_config()
    assert keras.saving.get_registered_name(LRASPPHead) == "mnv3_layers>LRASPPHead"


def test_keras_round_trip_identical_predictions(backbone, images, tmp_path):
    model = LRASPPSegmenter(
        NUM_CLASSES, backbone=backbone, filters=16, pooling="crop", crop_size=32,
        gate="hard_sigmoid",
    )
    _randomize(model.head, np.random.default_rng(0))  # batch-norm statistics too
    path = tmp_path / "lraspp.keras"
    model.save(path)
    loaded = keras.models.load_model(path)  # no custom_objects
    assert type(loaded) is LRASPPSegmenter
    assert loaded.get_config() == model.get_config()
    for key in ("square", "non_square"):
        np.testing.assert_array_equal(
            _numpy(loaded(images[key], training=False)),
            _numpy(model(images[key], training=False)),
        )


# --- Bad input ------------------------------------------------------------------


@pytest.mark.parametrize(
    "argument, value",
    [
        ("num_classes", 0),
        ("num_classes", 2.0),
        ("filters", 0),
        ("gate", "relu"),
        ("pooling", "max"),
        ("activation", "sigmoid"),
        ("backbone", "medium"),
    ],
)
def test_segmenter_rejects_bad_argument(argument, value):
    assert_raises_for_argument(LRASPPSegmenter, {"num_classes": NUM_CLASSES}, argument, value)


@pytest.mark.parametrize(
    "kwargs, argument, value",
    [
        ({"pooling": "crop"}, "crop_size", 100),  # not a multiple of 16
        ({"pooling": "crop"}, "crop_size", 8),  # smaller than the stride
        ({"pooling": "crop"}, "crop_size", (0, 32)),
        ({"pooling": "crop"}, "crop_size", "64"),
        ({"pooling": "crop"}, "crop_size", None),  # needed with pooling="crop"
        ({"pooling": "crop", "crop_size": 64}, "pool_strides", 0),
        ({}, "crop_size", 64),  # pooling="global" has no crop
        ({}, "pool_strides", 2),
    ],
)
def test_segmenter_rejects_bad_pooling(backbone, kwargs, argument, value):
    kwargs = dict(kwargs, num_classes=NUM_CLASSES, backbone=backbone)
    err = assert_raises_for_argument(LRASPPSegmenter, kwargs, argument, value, ValueError)
    assert "crop_size" in str(err) or "pool_strides" in str(err)


def test_segmenter_rejects_stride_32_backbone():
    backbone = MobileNetV3Backbone("small", alpha=0.35, input_shape=(64, 64, 3))
    with pytest.raises(ValueError, match=r"`backbone` must end at stride 16.*output_stride=32"):
        LRASPPSegmenter(NUM_CLASSES, backbone=backbone)


def test_segmenter_rejects_other_backbones():
    other = keras.Sequential([keras.Input((32, 32, 3)), keras.layers.Conv2D(4, 3)])
    with pytest.raises(TypeError, match=r"`backbone` must be .*LRASPPHead.*Received: backbone="):
        LRASPPSegmenter(NUM_CLASSES, backbone=other)


def test_segmenter_rejects_images_smaller_than_the_stride(backbone):
    model = LRASPPSegmenter(NUM_CLASSES, backbone=backbone, filters=16)
    with pytest.raises(ValueError, match=r"`inputs` must be at least 16x16 .*\(2, 8, 8, 3\)"):
        model(np.zeros((2, 8, 8, 3), "float32"))


@pytest.mark.parametrize(
    "argument, value",
    [
        ("num_classes", -1),
        ("filters", "128"),
        ("pool_size", (2, 0)),
        ("pool_size", (2, 2, 2)),
        ("pool_strides", 2),  # without pool_size
        ("gate", None),
        ("bn_momentum", 1.0),
        ("bn_epsilon", 0.0),
    ],
)
def test_head_rejects_bad_argument(argument, value):
    assert_raises_for_argument(LRASPPHead, {"num_classes": NUM_CLASSES}, argument, value)


def test_head_rejects_bad_inputs():
    head = LRASPPHead(NUM_CLASSES)
    with pytest.raises(ValueError, match=r"`inputs` must be a list \[low, high\]"):
        head(np.zeros((1, 8, 8, 4), "float32"))
    with pytest.raises(ValueError, match=r"`inputs` must be 4D"):
        head([np.zeros((1, 8, 4), "float32"), np.zeros((1, 4, 4, 4), "float32")])


# --- Docstrings and the example ---------------------------------------------------


def test_docstring_examples():
    import mnv3_layers.applications.lraspp as module

    result = doctest.testmod(
        module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE, verbose=False
    )
    assert result.attempted > 0
    assert result.failed == 0


def _load_example():
    spec = importlib.util.spec_from_file_location(
        "segmentation_lraspp", EXAMPLES / "segmentation_lraspp.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_example_smoke_trains(tmp_path):
    """The example in --smoke mode: a short training of the whole segmenter.

    Also the package's training test for LR-ASPP (one traced train step is
    most of its cost): the loss must fall substantially and the held-out
    mean IoU must beat the untrained model's.
    """
    example = _load_example()
    report = example.main(["--smoke", "--out", str(tmp_path)])
    assert json.loads((tmp_path / "report.json").read_text()) == report
    assert (tmp_path / "model.keras").is_file()
    assert report["reload_max_abs_diff"] == 0.0
    # Measured: loss 0.64 -> 0.35, mean IoU 0.06 (untrained) -> 0.25.
    assert report["train_loss_last_epoch"] < 0.65 * report["train_loss_first_epoch"]
    assert report["val_mean_iou"] > report["untrained_val_mean_iou"] + 0.1
    assert report["mean_iou_includes_background"] is True


def test_example_rejects_bad_arguments(tmp_path):
    example = _load_example()
    with pytest.raises(ValueError, match="image-size"):
        example.main(["--smoke", "--image-size", "40", "--out", str(tmp_path)])
    with pytest.raises(ValueError, match="epochs"):
        example.main(["--smoke", "--epochs", "0", "--out", str(tmp_path)])
