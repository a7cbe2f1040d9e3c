"""SSDLite (paper section 6.3) on MobileNetV3Backbone: heads, anchors, boxes, training, saving.

Models are tiny (Small, alpha 0.35, 64x64) and shared through module fixtures;
the one training run (plain SGD: its train step traces fastest on the CPU)
is shared by the learning test and the `.keras` round trip.
"""

import dataclasses
import importlib.util
import json
import math
import os
import pathlib

import keras
import numpy as np
import pytest

keras_cv = pytest.importorskip("keras_cv")

from mnv3_layers.applications import MobileNetV3Backbone  # noqa: E402
from mnv3_layers.applications.backbone import feature_taps  # noqa: E402
from mnv3_layers.applications.ssdlite import (  # noqa: E402
    BOUNDING_BOX_FORMATS,
    SSDLite,
    check_detection_labels,
    default_anchor_sizes,
    default_extra_filters,
    mean_average_precision,
)
from mnv3_layers.architecture.block_spec import SMALL, tail_start_index  # noqa: E402
from mnv3_layers.datasets import make_shapes_detection  # noqa: E402

EXAMPLES = pathlib.Path(__file__).resolve().parent.parent / "examples"
NUM_CLASSES = 3
SIZE = 64


def _decoder(fmt="xyxy"):
    return keras_cv.layers.MultiClassNonMaxSuppression(
        fmt, from_logits=True, iou_threshold=0.5, confidence_threshold=0.05
    )


def _small_backbone(input_shape=(SIZE, SIZE, 3), **kwargs):
    kwargs.setdefault("reduced_tail", True)
    return MobileNetV3Backbone("small", alpha=0.35, input_shape=input_shape,
                               bn_momentum=0.9, **kwargs)


@pytest.fixture(scope="module")
def backbone():
    return _small_backbone()


@pytest.fixture(scope="module")
def model(backbone):
    return SSDLite(backbone, num_classes=NUM_CLASSES, bounding_box_format="xyxy",
                   prediction_decoder=_decoder())


@pytest.fixture(scope="module")
def data():
    return make_shapes_detection(8, image_size=SIZE, max_objects=2, seed=1)


# ------------------------------------------------------------ structure


def test_levels_and_head_output_shapes(model, backbone):
    tap = backbone.expansion_tap
    assert tap.key == "expanded_conv_8/expansion_output"
    last = backbone.feature_info[-1]
    expected = [
        ("P4", tap.key, 16, (4, 4), tap.channels),
        ("P5", "last_stage", 32, (2, 2), last.channels),
        ("P6", "extra_P6", 64, (1, 1), int(512 * 0.35)),
    ]
    assert [(lv.name, lv.source, lv.stride, lv.grid, lv.channels)
            for lv in model.levels] == expected
    assert model.extra_filters == (179,)
    per_location = 6  # 2 scales x 3 aspect ratios
    for level in model.levels:
        rows, cols = level.grid
        assert level.anchors_per_location == per_location
        box = model.get_layer(f"box_head_{level.name}_conv").output
        classes = model.get_layer(f"class_head_{level.name}_conv").output
        assert tuple(box.shape) == (None, rows, cols, per_location * 4)
        assert tuple(classes.shape) == (None, rows, cols, per_location * NUM_CLASSES)
    outputs = model(np.zeros((2, SIZE, SIZE, 3), "float32"))
    total = sum(rows * cols * per_location for rows, cols in (lv.grid for lv in model.levels))
    assert total == 16 * 6 + 4 * 6 + 1 * 6
    assert tuple(outputs["box"].shape) == (2, total, 4)
    assert tuple(outputs["classification"].shape) == (2, total, NUM_CLASSES)


def test_anchor_count_and_placement_match_heads(model):
    anchors = model.anchors  # xyxy pixels, head output order
    assert anchors.shape == (model.num_anchors, 4)
    assert model.num_anchors == sum(lv.num_anchors for lv in model.levels)
    assert model.output["box"].shape[1] == model.num_anchors
    start = 0
    for level in model.levels:
        level_anchors = anchors[start:start + level.num_anchors]
        start += level.num_anchors
        rows, cols = level.grid
        centers = (level_anchors[:, :2] + level_anchors[:, 2:]) / 2
        # SSD spreads each grid over the image: cell i at (i + 0.5) * size / cells.
        expected_x = (np.arange(cols) + 0.5) * SIZE / cols
        expected_y = (np.arange(rows) + 0.5) * SIZE / rows
        np.testing.assert_allclose(np.unique(centers[:, 0].round(4)), expected_x, atol=1e-4)
        np.testing.assert_allclose(np.unique(centers[:, 1].round(4)), expected_y, atol=1e-4)
        # Sizes: anchor_size * scale, split by sqrt(aspect ratio).
        sides = level_anchors[:6, 2:] - level_anchors[:6, :2]
        expected = []
        for scale in model.anchor_scales:
            for ratio in model.anchor_aspect_ratios:
                s = level.anchor_size * scale
                expected.append((s * math.sqrt(ratio), s / math.sqrt(ratio)))
        np.testing.assert_allclose(sides, expected, rtol=1e-5)
    assert start == len(anchors)
    assert model.anchor_sizes == default_anchor_sizes(3, SIZE, SIZE) == (12.8, 36.8, 60.8)


def test_paper_configuration_large_320():
    model = SSDLite.from_variant("large", input_shape=(320, 320, 3), num_classes=90,
                                 bounding_box_format="yxyx")
    assert model.backbone.reduced_tail
    assert [(lv.source, lv.stride, lv.grid, lv.channels) for lv in model.levels] == [
        ("expanded_conv_12/expansion_output", 16, (20, 20), 672),
        ("last_stage", 32, (10, 10), 480),
        ("extra_P6", 64, (5, 5), 512),
        ("extra_P7", 128, (3, 3), 256),
        ("extra_P8", 256, (2, 2), 256),
        ("extra_P9", 512, (1, 1), 128),
    ]
    assert model.num_anchors == 6 * (400 + 100 + 25 + 9 + 4 + 1)
    # The extra layers are depthwise separable: 1x1 to half width, 3x3 s2 depthwise, 1x1.
    assert model.get_layer("extra_P6_reduce").filters == 256
    assert model.get_layer("extra_P6_depthwise").strides == (2, 2)
    assert model.get_layer("extra_P6_project").filters == 512
    assert default_extra_filters(1.0, 320, 320) == (512, 256, 256, 128)


def test_non_square_input_160x128():
    model = SSDLite.from_variant("small", input_shape=(160, 128, 3), alpha=0.35,
                                 num_classes=2, bounding_box_format="rel_yxyx",
                                 bn_momentum=0.9)
    assert [lv.grid for lv in model.levels] == [(10, 8), (5, 4), (3, 2), (2, 1)]
    anchors = model.anchors  # rel_yxyx
    centers = (anchors[:, :2] + anchors[:, 2:]) / 2
    assert np.all((centers > 0) & (centers < 1))
    images = np.random.default_rng(0).uniform(0, 255, (2, 160, 128, 3)).astype("float32")
    y = {"boxes": np.array([[[0.1, 0.2, 0.5, 0.6], [-1, -1, -1, -1]],
                            [[0.5, 0.1, 0.9, 0.4], [0.1, 0.5, 0.3, 0.9]]], "float32"),
         "classes": np.array([[1, -1], [0, 1]], "float32")}
    model.compile(optimizer="sgd")
    loss = model.compute_loss(y=y, y_pred=model(images, training=False))
    assert np.isfinite(float(loss)) and float(loss) > 0
    detections = model.decode_predictions(model(images))
    assert tuple(detections["boxes"].shape) == (2, 100, 4)


# -------------------------------------------------------------- boxes


def test_encoded_targets_decode_back_to_the_ground_truth(model, data):
    _, y = data
    box_targets, class_targets = model.encode_labels(y)
    box_targets, class_targets = np.asarray(box_targets), np.asarray(class_targets)
    assert box_targets.shape == (len(y["boxes"]), model.num_anchors, 4)
    positive = class_targets >= 0
    # Every real box got at least one anchor, no padding row did.
    assert positive.sum(axis=1).min() >= 1
    assert set(np.unique(class_targets)) <= {-1.0, 0.0, 1.0, 2.0}
    # Perfect predictions decode (keras-cv deltas + NMS) to exactly the boxes.
    logits = np.where(
        np.eye(NUM_CLASSES)[np.maximum(class_targets, 0).astype(int)] * positive[..., None],
        10.0, -10.0,
    ).astype("float32")
    detections = model.decode_predictions({"box": box_targets, "classification": logits})
    for i in range(len(y["boxes"])):
        count = int(detections["num_detections"][i])
        real = y["classes"][i] >= 0
        got = sorted(map(tuple, np.asarray(detections["boxes"][i][:count]).round(3)))
        assert got == sorted(map(tuple, y["boxes"][i][real].round(3)))
    assert mean_average_precision(y, detections, "xyxy")["map"] == 1.0


def test_ragged_labels_encode_like_padded_ones(model, data):
    import tensorflow as tf

    _, y = data
    rows = [y["classes"][i] >= 0 for i in range(len(y["classes"]))]
    ragged = {
        "boxes": tf.ragged.constant([y["boxes"][i][r] for i, r in enumerate(rows)],
                                    ragged_rank=1, dtype=tf.float32),
        "classes": tf.ragged.constant([y["classes"][i][r] for i, r in enumerate(rows)],
                                      dtype=tf.float32),
    }
    for a, b in zip(model.encode_labels(y), model.encode_labels(ragged)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-6)


def test_mean_average_precision_by_hand():
    y_true = {"boxes": np.array([[[0, 0, 10, 10], [20, 20, 30, 30], [-1, -1, -1, -1]]],
                                "float32"),
              "classes": np.array([[0, 0, -1]], "float32")}
    # 0.9 hits box A (TP), 0.8 misses (FP), 0.7 hits box B (TP), 0.6 repeats A (FP).
    y_pred = {"boxes": np.array([[[0, 0, 10, 10], [50, 50, 60, 60], [20, 20, 30, 31],
                                  [0, 0, 10, 10]]], "float32"),
              "classes": np.array([[0, 0, 0, 0]], "float32"),
              "confidence": np.array([[0.9, 0.8, 0.7, 0.6]], "float32"),
              "num_detections": np.array([4])}
    result = mean_average_precision(y_true, y_pred, "xyxy")
    # Recall 0.5 at precision 1, recall 1 at precision 2/3.
    assert result["ap_per_class"] == {0: pytest.approx(0.5 * 1 + 0.5 * 2 / 3)}
    assert result["num_ground_truth"] == {0: 2}
    # num_detections cuts the list: only the first detection counts.
    y_pred["num_detections"] = np.array([1])
    assert mean_average_precision(y_true, y_pred, "xyxy")["map"] == pytest.approx(0.5)
    # A class with ground truth but no detection scores 0.
    assert mean_average_precision(y_true, y_pred, "xyxy", num_classes=2)["ap_per_class"] \
        == {0: pytest.approx(0.5)}


def test_box_formats_are_keras_cv_formats():
    from keras_cv.src.bounding_box.converters import TO_XYXY_CONVERTERS

    assert set(BOUNDING_BOX_FORMATS) == set(TO_XYXY_CONVERTERS)


# ------------------------------------------------------------- config


def test_config_round_trip(model):
    config = model.get_config()
    assert config["extra_filters"] == [179]
    assert config["prediction_decoder"]["config"]["confidence_threshold"] == 0.05
    clone = SSDLite.from_config(config)
    assert clone.get_config() == config
    assert clone.levels == model.levels
    np.testing.assert_array_equal(clone.anchors, model.anchors)


# ----------------------------------------------------------- training


@pytest.fixture(scope="module")
def trained(data):
    """Overfits 8 images (60 SGD steps); mAP@0.5 on them before and after."""
    images, y = data
    keras.utils.set_random_seed(0)
    model = SSDLite(_small_backbone(), num_classes=NUM_CLASSES,
                    bounding_box_format="xyxy", prediction_decoder=_decoder())

    def score():
        detections = model.decode_predictions(model(images, training=False))
        return mean_average_precision(y, detections, "xyxy")["map"]

    before = score()
    steps = 60
    model.compile(optimizer=keras.optimizers.SGD(
        keras.optimizers.schedules.CosineDecay(0.1, steps)))
    history = model.fit(images, y, batch_size=8, epochs=steps, verbose=0)
    return model, history.history, before, score()


@pytest.mark.slow
def test_training_lowers_loss_and_beats_untrained_map(trained):
    # Proxy, clearly defined: mAP@0.5 (inference mode) on the 8 training
    # images, before and after overfitting them.
    _, history, before, after = trained
    loss = history["loss"]
    assert set(history) >= {"loss", "box_loss", "classification_loss"}
    assert loss[-1] < 0.1 * loss[0]
    assert history["box_loss"][-1] < 0.5 * history["box_loss"][0]
    assert before < 0.1
    assert after > 0.5 and after > before + 0.4


@pytest.mark.slow
def test_keras_file_round_trip_gives_identical_predictions(trained, data, tmp_path):
    model = trained[0]
    images, _ = data
    path = os.path.join(tmp_path, "ssdlite.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert isinstance(loaded, SSDLite) and isinstance(loaded.backbone, MobileNetV3Backbone)
    assert loaded.get_config() == model.get_config()
    raw, raw_loaded = model(images), loaded(images)
    for key in ("box", "classification"):
        np.testing.assert_array_equal(np.asarray(raw_loaded[key]), np.asarray(raw[key]))
    expected = model.decode_predictions(raw)
    received = loaded.decode_predictions(raw_loaded)
    assert int(np.sum(expected["num_detections"])) > 0
    for key in ("boxes", "classes", "confidence", "num_detections"):
        np.testing.assert_array_equal(np.asarray(received[key]), np.asarray(expected[key]))
    # The compile configuration comes back too (optimizer and both losses).
    assert loaded.compiled
    assert isinstance(loaded.classification_loss, keras_cv.losses.FocalLoss)
    assert loaded.classification_loss.alpha == 0.75


def test_serialized_config_names_the_package_as_before_the_split(model):
    # Files saved before ssdlite became a package record this module and name.
    config = keras.saving.serialize_keras_object(model)
    assert config["module"] == "mnv3_layers.applications.ssdlite"
    assert config["registered_name"] == "mnv3_layers>SSDLite"
    restored = keras.saving.deserialize_keras_object(config)
    assert isinstance(restored, SSDLite)
    assert restored.get_config() == model.get_config()


# ----------------------------------------------------------- bad input


def _no_expansion_spec():
    index = tail_start_index(SMALL)
    previous = SMALL.blocks[index - 1].filters
    blocks = list(SMALL.blocks)
    blocks[index] = dataclasses.replace(blocks[index], exp_size=previous)
    return dataclasses.replace(SMALL, name="small_no_expand", blocks=tuple(blocks))


def test_rejects_backbones_without_the_taps(backbone):
    with pytest.raises(TypeError, match="`backbone` must be a"):
        SSDLite(keras.Sequential([keras.Input((64, 64, 3)), keras.layers.Conv2D(4, 3)]),
                num_classes=3, bounding_box_format="xyxy")
    with pytest.raises(ValueError, match="static input size.*image_shape=\\(None, None, 3\\)"):
        SSDLite(_small_backbone(input_shape=(None, None, 3)), num_classes=3,
                bounding_box_format="xyxy")
    no_tap = MobileNetV3Backbone(_no_expansion_spec(), alpha=0.35, input_shape=(64, 64, 3))
    assert no_tap.expansion_tap is None
    with pytest.raises(ValueError, match="`backbone` has no expansion tap"):
        SSDLite(no_tap, num_classes=3, bounding_box_format="xyxy")
    # minimalistic Small keeps its expand convolution, so it has the tap.
    minimalistic = feature_taps("small", 0.35, minimalistic=True, reduced_tail=True)
    assert [t.channels for t in minimalistic if t.kind == "expansion"] == \
        [backbone.expansion_tap.channels]
    with pytest.raises(ValueError, match="stride.*output_stride=16"):
        SSDLite(_small_backbone(output_stride=16), num_classes=3, bounding_box_format="xyxy")


@pytest.mark.parametrize("kwargs, error, match", [
    ({"num_classes": 0}, ValueError, "`num_classes` must be a positive integer.*num_classes=0"),
    ({"num_classes": 2.5}, TypeError, "num_classes=2.5"),
    ({"bounding_box_format": "xyzw"}, ValueError, "bounding_box_format='xyzw'"),
    ({"extra_filters": (512, 256, 256, 128)}, ValueError,
     "too small for 4 extra layers.*extra_filters=\\(512, 256, 256, 128\\)"),
    ({"extra_filters": [0]}, ValueError, "extra_filters=\\[0\\]"),
    ({"anchor_sizes": [10.0, 20.0]}, ValueError, "one size \\(pixels\\) per level.*3 levels"),
    ({"anchor_scales": []}, ValueError, "anchor_scales=\\[\\]"),
    ({"anchor_aspect_ratios": (1.0, -2.0)}, ValueError, "anchor_aspect_ratios"),
    ({"positive_iou_threshold": 0.4, "negative_iou_threshold": 0.6}, ValueError,
     "negative_iou_threshold=0.6"),
    ({"prediction_decoder": "nms"}, ValueError, "prediction_decoder='nms'"),
])
def test_rejects_bad_arguments(backbone, kwargs, error, match):
    arguments = {"num_classes": 3, "bounding_box_format": "xyxy", **kwargs}
    with pytest.raises(error, match=match):
        SSDLite(backbone, **arguments)


def test_rejects_decoder_with_another_box_format(model):
    with pytest.raises(ValueError, match="prediction_decoder.bounding_box_format"):
        SSDLite(model.backbone, num_classes=3, bounding_box_format="xyxy",
                prediction_decoder=_decoder("yxyx"))
    with pytest.raises(ValueError, match="prediction_decoder.bounding_box_format"):
        model.prediction_decoder = _decoder("xywh")


@pytest.mark.parametrize("fmt, boxes, classes, match", [
    # xywh data declared as xyxy: x2 (a width) < x1.
    ("xyxy", [[40, 10, 12, 12]], [0], "bounding_box_format='xyxy'.*x2 < x1"),
    ("yxyx", [[10, 40, 30, 12]], [0], "bounding_box_format='yxyx'.*y2 < y1 or x2 < x1"),
    ("xywh", [[10, 10, -5, 12]], [0], "negative width or height"),
    # Absolute pixels declared as relative, and the other way round.
    ("rel_xyxy", [[4, 4, 30, 30]], [0], "rel_xyxy.*absolute pixel coordinates"),
    ("xyxy", [[0.1, 0.1, 0.5, 0.5]], [0], "look like relative coordinates.*rel_xyxy"),
    ("xyxy", [[70, 70, 90, 90]], [0], "entirely outside the 64x64 image"),
    ("xyxy", [[4, 4, 30, 30]], [3], "y\\['classes'\\].*\\[0, 3\\).*\\[3.0\\]"),
])
def test_labels_check_catches_another_format(fmt, boxes, classes, match):
    y = {"boxes": np.array([boxes + [[-1, -1, -1, -1]]], "float32"),
         "classes": np.array([classes + [-1]], "float32")}
    with pytest.raises(ValueError, match=match):
        check_detection_labels(y, fmt, (SIZE, SIZE, 3), num_classes=3)
    good = {"boxes": np.array([[[4, 4, 30, 30], [-1, -1, -1, -1]]], "float32"),
            "classes": np.array([[2, -1]], "float32")}
    check_detection_labels(good, "xyxy", (SIZE, SIZE, 3), num_classes=3)


def test_fit_checks_the_first_batch_of_a_dataset(model):
    import tensorflow as tf

    y = {"boxes": np.array([[[40, 10, 12, 12]]], "float32"),
         "classes": np.array([[0]], "float32")}
    dataset = tf.data.Dataset.from_tensor_slices(
        (np.zeros((1, SIZE, SIZE, 3), "float32"), y)).batch(1)
    model.compile(optimizer="sgd")
    # fit and evaluate check the labels (arrays, or a dataset's first batch)
    # before anything is traced.
    with pytest.raises(ValueError, match="x2 < x1"):
        model.fit(dataset, epochs=1, verbose=0)
    with pytest.raises(ValueError, match="x2 < x1"):
        model.fit(np.zeros((1, SIZE, SIZE, 3), "float32"), y, epochs=1, verbose=0)
    y["boxes"] = np.array([[[0.1, 0.1, 0.5, 0.5]]], "float32")
    with pytest.raises(ValueError, match="relative coordinates"):
        model.evaluate(np.zeros((1, SIZE, SIZE, 3), "float32"), y, verbose=0)
    with pytest.raises(ValueError, match="`y` must be a dict"):
        check_detection_labels(np.zeros((1, 1, 4)), "xyxy", (SIZE, SIZE))


def test_compile_rejects_bad_losses(model):
    with pytest.raises(ValueError, match="not `loss`"):
        model.compile(loss="mse")
    with pytest.raises(ValueError, match="takes no `metrics`"):
        model.compile(metrics=["accuracy"])
    with pytest.raises(ValueError, match="`box_loss` must use reduction='sum'"):
        model.compile(box_loss=keras.losses.Huber())
    with pytest.raises(ValueError, match="`classification_loss` must take logits"):
        model.compile(classification_loss=keras_cv.losses.FocalLoss(reduction="sum"))
    with pytest.raises(ValueError, match="box_loss='l2'"):
        model.compile(box_loss="l2")
    with pytest.raises(ValueError, match="box_loss_weight=-1"):
        model.compile(box_loss_weight=-1)


# ------------------------------------------------------------- example


def _load_example():
    spec = importlib.util.spec_from_file_location(
        "detection_ssdlite", EXAMPLES / "detection_ssdlite.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_example_smoke(tmp_path):
    example = _load_example()
    report = example.main(["--smoke", "--out", str(tmp_path)])
    saved = json.loads((tmp_path / "report.json").read_text())
    assert saved == report
    assert (tmp_path / "model.keras").is_file()
    assert report["smoke"] and report["epochs"] == 2 and report["steps"] == 4
    assert 0.0 <= report["map50"] <= 1.0
    assert set(report["ap50_per_class"]) <= {"circle", "square", "triangle"}
    assert len(report["loss_history"]) == 2 and all(np.isfinite(report["loss_history"]))
    assert [lv["level"] for lv in report["levels"]] == ["P4", "P5", "P6"]
    assert report["levels"][0]["source"] == "expanded_conv_8/expansion_output"


def test_example_rejects_bad_arguments(tmp_path):
    example = _load_example()
    with pytest.raises(ValueError, match="--epochs"):
        example.main(["--smoke", "--epochs", "0", "--out", str(tmp_path)])
    with pytest.raises(ValueError, match="--test-seed"):
        example.main(["--smoke", "--test-seed", "0", "--out", str(tmp_path)])
