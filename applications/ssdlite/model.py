"""`SSDLite`: the paper's mobile object detector on a `MobileNetV3Backbone`."""

import keras
import numpy as np
from keras import ops

from mnv3_layers._registry import register
from mnv3_layers._validation import check_optional_name, check_positive_int
from mnv3_layers.applications.backbone import LAST_STAGE_TAP, MobileNetV3Backbone
from mnv3_layers.applications.ssdlite import anchors as anchors_lib
from mnv3_layers.applications.ssdlite import heads, losses
from mnv3_layers.applications.ssdlite._keras_cv import import_keras_cv
from mnv3_layers.applications.ssdlite.anchors import (
    DEFAULT_ANCHOR_ASPECT_RATIOS,
    DEFAULT_ANCHOR_SCALES,
    IGNORE,
)
from mnv3_layers.applications.ssdlite.heads import C4_STRIDE, C5_STRIDE
from mnv3_layers.applications.ssdlite.labels import check_box_format, check_detection_labels


def _check_backbone(backbone):
    """-> (C4 FeatureInfo, C5 FeatureInfo, height, width) or a clear error."""
    if not isinstance(backbone, MobileNetV3Backbone):
        raise TypeError(
            "`backbone` must be a `mnv3_layers.applications.MobileNetV3Backbone` "
            f"(SSDLite reads its expansion tap). Received: backbone={backbone!r}"
        )
    height, width = backbone.image_shape[0], backbone.image_shape[1]
    if height is None or width is None:
        raise ValueError(
            "`backbone` must have a static input size, e.g. "
            "`MobileNetV3Backbone('small', input_shape=(320, 320, 3))`: SSDLite "
            "computes its anchors once for that size. Received: "
            f"backbone.image_shape={backbone.image_shape!r}"
        )
    c4 = backbone.expansion_tap
    if c4 is None:
        raise ValueError(
            "`backbone` has no expansion tap: its last-stage block has no 1x1 expand "
            "convolution, so there is no SSDLite C4 feature (the expansion output "
            "of Large's expanded_conv_12 / Small's expanded_conv_8). Received: "
            f"backbone with variant={_variant_name(backbone)!r}, taps="
            f"{[tap.key for tap in backbone.feature_info]}"
        )
    c5 = next(tap for tap in backbone.feature_info if tap.name == LAST_STAGE_TAP)
    if c4.stride != C4_STRIDE or c5.stride != C5_STRIDE:
        raise ValueError(
            f"`backbone` feature strides must be {C4_STRIDE} for C4 (the expansion "
            f"tap) and {C5_STRIDE} for C5 (the last feature map); SSDLite's extra "
            "layers continue from stride 32 (use `output_stride=32`, and a table "
            "with five stride-2 layers). Received: "
            f"backbone.output_stride={backbone.output_stride!r}, C4 {c4.key!r} "
            f"stride={c4.stride}, C5 {c5.key!r} stride={c5.stride}"
        )
    return c4, c5, int(height), int(width)


def _variant_name(backbone):
    variant = backbone.variant
    return variant if isinstance(variant, str) else f"<ArchitectureSpec {variant.name!r}>"


def _check_decoder(decoder, bounding_box_format):
    if not callable(decoder) or not hasattr(decoder, "bounding_box_format"):
        raise ValueError(
            "`prediction_decoder` must be a layer like "
            "`keras_cv.layers.MultiClassNonMaxSuppression` (callable, with a "
            f"`bounding_box_format`). Received: prediction_decoder={decoder!r}"
        )
    if str(decoder.bounding_box_format).lower() != bounding_box_format:
        raise ValueError(
            "`prediction_decoder.bounding_box_format` must equal the model's "
            f"bounding_box_format={bounding_box_format!r}. Received: "
            f"prediction_decoder.bounding_box_format={decoder.bounding_box_format!r}"
        )


def _check_arguments(keras_cv, backbone, num_classes, bounding_box_format, extra_filters,
                     anchor_sizes, anchor_scales, anchor_aspect_ratios,
                     positive_iou_threshold, negative_iou_threshold, prediction_decoder,
                     name):
    """Every `SSDLite` argument checked, defaults filled in; returns a dict."""
    c4, c5, height, width = _check_backbone(backbone)
    num_classes = check_positive_int("num_classes", num_classes)
    bounding_box_format = check_box_format(bounding_box_format)
    extra_filters = heads.check_extra_filters(extra_filters, backbone.alpha, height, width)
    anchor_scales = anchors_lib.check_positive_list("anchor_scales", anchor_scales)
    anchor_aspect_ratios = anchors_lib.check_positive_list(
        "anchor_aspect_ratios", anchor_aspect_ratios
    )
    anchor_sizes = anchors_lib.check_anchor_sizes(
        anchor_sizes, len(extra_filters) + 2, height, width
    )
    positive, negative = anchors_lib.check_thresholds(
        positive_iou_threshold, negative_iou_threshold
    )
    if prediction_decoder is None:
        prediction_decoder = keras_cv.layers.MultiClassNonMaxSuppression(
            bounding_box_format=bounding_box_format,
            from_logits=True,
            iou_threshold=0.5,
            confidence_threshold=0.5,
            max_detections=100,
        )
    _check_decoder(prediction_decoder, bounding_box_format)
    check_optional_name("name", name)
    return dict(
        c4=c4, c5=c5, image_shape=(height, width, backbone.image_shape[2]),
        num_classes=num_classes, bounding_box_format=bounding_box_format,
        extra_filters=extra_filters, anchor_sizes=anchor_sizes, anchor_scales=anchor_scales,
        anchor_aspect_ratios=anchor_aspect_ratios, positive_iou_threshold=positive,
        negative_iou_threshold=negative, prediction_decoder=prediction_decoder,
    )


def _unpack_data(data):
    """keras-cv also accepts `{"images": x, "bounding_boxes": y}` batches."""
    if isinstance(data, dict) and "images" in data:
        if "bounding_boxes" in data:
            return (data["images"], data["bounding_boxes"])
        return (data["images"],)
    return data


@register
class SSDLite(keras.Model):
    """SSDLite object detector on a MobileNetV3 backbone (paper section 6.3).

    A functional model from images `(batch, H, W, 3)` (in [0, 255] when the
    backbone rescales) to raw `{"box": (batch, num_anchors, 4),
    "classification": (batch, num_anchors, num_classes)}` deltas and logits;
    `predict` decodes them into keras-cv's `{"boxes", "classes", "confidence",
    "num_detections"}` (padded with -1). `fit(images, {"boxes", "classes"})`
    as keras-cv's detectors (dense padded with -1, or ragged). Levels: C4 (the
    expansion tap, stride 16), C5 (stride 32), then the extra layers; anchors
    are fixed for the static input size. An anchor is positive from IoU
    `positive_iou_threshold`, background below `negative_iou_threshold`.

    Args:
        backbone: a `MobileNetV3Backbone` with a static input size, an
            expansion tap and `output_stride=32` (see `from_variant`).
        num_classes: number of object classes (no background class).
        bounding_box_format: keras-cv box format of labels and predictions
            (`"xyxy"`, `"yxyx"`, `"xywh"`, `"center_xywh"`, `"center_yxhw"`,
            `"rel_xyxy"`, `"rel_yxyx"`, `"rel_xywh"`).
        extra_filters: channels of the extra layers, or `None` for
            `default_extra_filters`; each input side must exceed half the
            deepest stride. Defaults to `None`.
        anchor_sizes: base anchor size in pixels per level, or `None` for
            `default_anchor_sizes`. Defaults to `None`.
        anchor_scales: multipliers of each level's size. Defaults to
            `(1.0, 2**0.5)`.
        anchor_aspect_ratios: width / height ratios. Defaults to
            `(0.5, 1.0, 2.0)`.
        positive_iou_threshold: IoU from which an anchor is positive.
            Defaults to `0.5`.
        negative_iou_threshold: IoU below which an anchor is background.
            Defaults to `0.5` (no ignored anchors, as TF-OD's SSDLite).
        prediction_decoder: a layer like `keras_cv.layers.MultiClassNonMaxSuppression`
            with this model's `bounding_box_format`, or `None` for that with
            `from_logits=True`, IoU 0.5, confidence 0.5 and 100 detections.
            Defaults to `None`.
        name: model name. Defaults to `None`.
        **kwargs: `keras.Model` arguments (`trainable`, `dtype`).

    Example:

    >>> import numpy as np
    >>> from mnv3_layers.applications.ssdlite import SSDLite
    >>> model = SSDLite.from_variant(
    ...     "small", input_shape=(128, 128, 3), alpha=0.5, num_classes=3,
    ...     bounding_box_format="xyxy")
    >>> [(level.name, level.stride, level.grid, level.channels) for level in model.levels]
    [('P4', 16, (8, 8), 144), ('P5', 32, (4, 4), 144), ('P6', 64, (2, 2), 256), \
('P7', 128, (1, 1), 128)]
    >>> outputs = model(np.zeros((1, 128, 128, 3), "float32"))
    >>> tuple(outputs["box"].shape), tuple(outputs["classification"].shape)
    ((1, 510, 4), (1, 510, 3))

    Reference: Howard et al., "Searching for MobileNetV3", ICCV 2019, section 6.3;
    Sandler et al., "MobileNetV2", CVPR 2018 (SSDLite); Liu et al., "SSD", ECCV 2016.
    """

    def __init__(
        self,
        backbone,
        num_classes,
        bounding_box_format,
        extra_filters=None,
        anchor_sizes=None,
        anchor_scales=DEFAULT_ANCHOR_SCALES,
        anchor_aspect_ratios=DEFAULT_ANCHOR_ASPECT_RATIOS,
        positive_iou_threshold=0.5,
        negative_iou_threshold=0.5,
        prediction_decoder=None,
        name=None,
        **kwargs,
    ):
        # === Argument checks (all before anything is built) ===
        keras_cv = import_keras_cv()
        args = _check_arguments(
            keras_cv, backbone, num_classes, bounding_box_format, extra_filters,
            anchor_sizes, anchor_scales, anchor_aspect_ratios, positive_iou_threshold,
            negative_iou_threshold, prediction_decoder, name,
        )
        c4, c5 = args["c4"], args["c5"]
        per_location = len(args["anchor_scales"]) * len(args["anchor_aspect_ratios"])

        # === Layers and Functional Model ===
        images = keras.Input(shape=backbone.image_shape, name="images")
        extractor = backbone.get_feature_extractor([c4.key, c5.key])
        taps = extractor(images)
        levels, features = heads.build_levels(
            [(c4.key, taps[c4.key]), (c5.key, taps[c5.key])], args["extra_filters"],
            args["anchor_sizes"], per_location, args["image_shape"], backbone.bn_momentum,
        )
        box, classes = heads.build_predictions(
            levels, features, args["num_classes"], backbone.bn_momentum
        )
        super().__init__(
            inputs=images, outputs={"box": box, "classification": classes}, name=name,
            **kwargs,
        )

        # === Config ===
        self.backbone = backbone
        self.feature_extractor = extractor
        self.num_classes = args["num_classes"]
        self.bounding_box_format = args["bounding_box_format"]
        self.extra_filters = args["extra_filters"]
        self.anchor_sizes = args["anchor_sizes"]
        self.anchor_scales = args["anchor_scales"]
        self.anchor_aspect_ratios = args["anchor_aspect_ratios"]
        self.positive_iou_threshold = args["positive_iou_threshold"]
        self.negative_iou_threshold = args["negative_iou_threshold"]
        self.levels = levels
        self.image_shape = args["image_shape"]
        self._prediction_decoder = args["prediction_decoder"]

        # === Anchors and training state ===
        self._anchors_yxyx = anchors_lib.make_anchors(
            keras_cv, levels, self.image_shape, self.anchor_scales, self.anchor_aspect_ratios
        )
        self.box_matcher = anchors_lib.make_box_matcher(
            keras_cv, self.positive_iou_threshold, self.negative_iou_threshold
        )
        self.box_loss_tracker = keras.metrics.Mean(name="box_loss")
        self.classification_loss_tracker = keras.metrics.Mean(name="classification_loss")
        self._ssd_compile_config = None

    @classmethod
    def from_variant(
        cls,
        variant="small",
        *,
        input_shape,
        num_classes,
        bounding_box_format,
        alpha=1.0,
        minimalistic=False,
        reduced_tail=True,
        include_preprocessing=True,
        weights=None,
        bn_momentum=0.99,
        **kwargs,
    ):
        """Builds the backbone (`reduced_tail=True`, as in the paper) and the detector.

        Args:
            variant: `"large"`, `"small"` or an `ArchitectureSpec`. Defaults to `"small"`.
            input_shape: static `(height, width, 3)`.
            num_classes, bounding_box_format: as for `SSDLite`.
            alpha, minimalistic, include_preprocessing, weights, bn_momentum:
                passed to `MobileNetV3Backbone`.
            reduced_tail: halve the channels after C4 (paper section 6.3).
                Defaults to `True`.
            **kwargs: other `SSDLite` arguments.

        Returns:
            An `SSDLite`.
        """
        backbone = MobileNetV3Backbone(
            variant,
            alpha=alpha,
            minimalistic=minimalistic,
            input_shape=input_shape,
            include_preprocessing=include_preprocessing,
            reduced_tail=reduced_tail,
            weights=weights,
            bn_momentum=bn_momentum,
        )
        return cls(backbone=backbone, num_classes=num_classes,
                   bounding_box_format=bounding_box_format, **kwargs)

    # ---------------------------------------------------------------- anchors

    @property
    def anchors(self):
        """All anchors `(num_anchors, 4)` in `bounding_box_format`, in head output order."""
        keras_cv = import_keras_cv()
        return np.asarray(ops.convert_to_numpy(keras_cv.bounding_box.convert_format(
            self._anchors_yxyx, source="yxyx", target=self.bounding_box_format,
            image_shape=self.image_shape)))

    @property
    def num_anchors(self):
        """Total anchor count (the second dimension of the raw outputs)."""
        return sum(level.num_anchors for level in self.levels)

    # --------------------------------------------------------------- decoding

    @property
    def prediction_decoder(self):
        """The layer turning decoded boxes and class logits into detections."""
        return self._prediction_decoder

    @prediction_decoder.setter
    def prediction_decoder(self, prediction_decoder):
        _check_decoder(prediction_decoder, self.bounding_box_format)
        self._prediction_decoder = prediction_decoder
        self.predict_function = None

    def decode_predictions(self, predictions):
        """Raw outputs `{"box", "classification"}` -> keras-cv detections (through NMS).

        Args:
            predictions: the model's raw output dict.

        Returns:
            `{"boxes": (batch, max_detections, 4), "classes", "confidence":
            (batch, max_detections), "num_detections": (batch,)}`, padded
            with -1, boxes in `bounding_box_format`.
        """
        import_keras_cv()
        boxes = anchors_lib.decode_deltas(
            self._anchors_yxyx, predictions["box"], self.bounding_box_format,
            self.image_shape,
        )
        return self.prediction_decoder(
            boxes, ops.cast(predictions["classification"], "float32"),
            image_shape=self.image_shape,
        )

    def predict_step(self, data):
        x, _, _ = keras.utils.unpack_x_y_sample_weight(_unpack_data(data))
        return self.decode_predictions(self(x, training=False))

    # --------------------------------------------------------------- training

    def compile(
        self,
        optimizer="adam",
        box_loss="smoothl1",
        classification_loss="focal",
        box_loss_weight=1.0,
        classification_loss_weight=1.0,
        loss=None,
        metrics=None,
        jit_compile=False,
        **kwargs,
    ):
        """Configures training, as `keras_cv.models.RetinaNet.compile`.

        `loss = (w_box * L_box + w_cls * L_focal) / max(num_positive, 1)`: sums
        over positive anchors (box) and non-ignored ones (class).

        Args:
            optimizer: a Keras optimizer or its name. Defaults to `"adam"`.
            box_loss: `"smoothl1"` (`keras_cv.losses.SmoothL1Loss`, mean over
                the 4 deltas), `"huber"`, or a `keras.losses.Loss` with
                `reduction="sum"`. Defaults to `"smoothl1"`.
            classification_loss: `"focal"` (`keras_cv.losses.FocalLoss`, alpha
                0.75, gamma 2, from logits) or a `keras.losses.Loss` on logits
                with `reduction="sum"`. Defaults to `"focal"`.
            box_loss_weight: weight of the box loss. Defaults to `1.0`.
            classification_loss_weight: weight of the class loss. Defaults to `1.0`.
            loss: not accepted (use the two losses above).
            metrics: not accepted; measure detections with
                `mean_average_precision` on `predict` outputs.
            jit_compile: XLA. Defaults to `False`.
            **kwargs: other `keras.Model.compile` arguments.
        """
        if loss is not None:
            raise ValueError(
                "`SSDLite.compile()` takes `box_loss` and `classification_loss`, not "
                f"`loss`. Received: loss={loss!r}"
            )
        if metrics:
            raise ValueError(
                "`SSDLite.compile()` takes no `metrics`: evaluate detections with "
                "`mnv3_layers.applications.ssdlite.mean_average_precision` on "
                f"`predict` outputs. Received: metrics={metrics!r}"
            )
        box_loss_weight = losses.check_loss_weight("box_loss_weight", box_loss_weight)
        classification_loss_weight = losses.check_loss_weight(
            "classification_loss_weight", classification_loss_weight
        )
        self.box_loss = losses.parse_box_loss(box_loss)
        self.classification_loss = losses.parse_classification_loss(classification_loss)
        self.box_loss_weight = box_loss_weight
        self.classification_loss_weight = classification_loss_weight
        super().compile(optimizer=optimizer, jit_compile=jit_compile, **kwargs)
        self._ssd_compile_config = {
            "optimizer": self.optimizer,
            "box_loss": self.box_loss,
            "classification_loss": self.classification_loss,
            "box_loss_weight": self.box_loss_weight,
            "classification_loss_weight": self.classification_loss_weight,
            "jit_compile": jit_compile,
        }

    def get_compile_config(self):
        if not self.compiled or self._ssd_compile_config is None:
            return {}
        return {key: keras.saving.serialize_keras_object(value)
                for key, value in self._ssd_compile_config.items()}

    def compile_from_config(self, config):
        import_keras_cv()
        config = {key: keras.saving.deserialize_keras_object(value)
                  for key, value in config.items()}
        self.compile(**config)
        if self.built:
            self.optimizer.build(self.trainable_variables)

    def encode_labels(self, y):
        """Ground truth -> per-anchor training targets.

        Args:
            y: `{"boxes": (batch, num_boxes, 4), "classes": (batch, num_boxes)}`
                in `bounding_box_format`, padded with -1 (or ragged).

        Returns:
            `(box_targets, class_targets)`: `(batch, num_anchors, 4)` keras-cv
            deltas (zero where not positive) and `(batch, num_anchors)` with
            the class id, -1 for background or -2 for ignored anchors.
        """
        return anchors_lib.encode_targets(
            import_keras_cv(), self._anchors_yxyx, self.box_matcher, y,
            self.bounding_box_format, self.image_shape,
        )

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        if sample_weight is not None:
            raise ValueError(
                "SSDLite does not take `sample_weight`. Received: a sample_weight of "
                f"type {type(sample_weight).__name__}"
            )
        if not hasattr(self, "box_loss"):
            raise ValueError("Call `SSDLite.compile()` before training or evaluating.")
        box_targets, class_targets = self.encode_labels(y)
        positive = ops.cast(ops.greater_equal(class_targets, 0.0), "float32")
        normalizer = ops.maximum(ops.sum(positive), 1.0)
        box_weights = positive / normalizer
        class_weights = ops.cast(ops.not_equal(class_targets, IGNORE), "float32") / normalizer
        one_hot = ops.one_hot(
            ops.cast(ops.maximum(class_targets, 0.0), "int32"), self.num_classes
        ) * ops.expand_dims(positive, -1)
        box_loss = self.box_loss(
            box_targets, ops.cast(y_pred["box"], "float32"), sample_weight=box_weights
        )
        class_loss = self.classification_loss(
            one_hot, ops.cast(y_pred["classification"], "float32"),
            sample_weight=class_weights,
        )
        self.box_loss_tracker.update_state(box_loss)
        self.classification_loss_tracker.update_state(class_loss)
        total = self.box_loss_weight * box_loss + self.classification_loss_weight * class_loss
        for extra in self.losses:
            total = total + ops.cast(ops.sum(extra), "float32")
        return total

    def train_step(self, data):
        return super().train_step(_unpack_data(data))

    def test_step(self, data):
        return super().test_step(_unpack_data(data))

    def _check_first_batch(self, x, y):
        if isinstance(x, dict) and "bounding_boxes" in x:
            y = x["bounding_boxes"]
        elif y is None and hasattr(x, "take") and hasattr(x, "element_spec"):
            for batch in x.take(1):  # tf.data.Dataset: check its first batch
                batch = _unpack_data(batch)
                if isinstance(batch, (tuple, list)) and len(batch) > 1:
                    y = batch[1]
        if y is not None:
            check_detection_labels(y, self.bounding_box_format, self.image_shape,
                                   self.num_classes)

    def fit(self, x=None, y=None, *args, **kwargs):
        """`keras.Model.fit`, after checking the labels of the first batch.

        Raises:
            ValueError: labels not in `bounding_box_format`, or classes outside
                `[0, num_classes)` (see `check_detection_labels`).
        """
        self._check_first_batch(x, y)
        return super().fit(x, y, *args, **kwargs)

    def evaluate(self, x=None, y=None, *args, **kwargs):
        """`keras.Model.evaluate`, after checking the labels of the first batch."""
        self._check_first_batch(x, y)
        return super().evaluate(x, y, *args, **kwargs)

    # ----------------------------------------------------------------- config

    def get_config(self):
        return {
            "name": self.name,
            "trainable": self.trainable,
            "backbone": keras.saving.serialize_keras_object(self.backbone),
            "num_classes": self.num_classes,
            "bounding_box_format": self.bounding_box_format,
            "extra_filters": list(self.extra_filters),
            "anchor_sizes": list(self.anchor_sizes),
            "anchor_scales": list(self.anchor_scales),
            "anchor_aspect_ratios": list(self.anchor_aspect_ratios),
            "positive_iou_threshold": self.positive_iou_threshold,
            "negative_iou_threshold": self.negative_iou_threshold,
            "prediction_decoder": keras.saving.serialize_keras_object(
                self._prediction_decoder
            ),
        }

    @classmethod
    def from_config(cls, config):
        import_keras_cv()  # registers keras-cv's layers for deserialization
        config = dict(config)
        for key in ("backbone", "prediction_decoder"):
            if isinstance(config.get(key), dict):
                config[key] = keras.saving.deserialize_keras_object(config[key])
        return cls(**config)


# Saved configs name the package (as before the split), which re-exports it.
SSDLite.__module__ = "mnv3_layers.applications.ssdlite"
