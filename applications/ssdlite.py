"""SSDLite: the paper's mobile object detector on a `MobileNetV3Backbone`.

MobileNetV3 paper, section 6.3 (Table 6), as in the TF Object Detection API
configs `ssdlite_mobilenet_v3_{large,small}_320x320_coco` the paper's
numbers come from:

```
C4 = expansion output of the last-stage block (after its activation):
     Large expanded_conv_12 (672 ch), Small expanded_conv_8 (288 ch); stride 16
C5 = last feature map before pooling (last_stage; 480 / 288 ch with the
     reduced tail); stride 32
extra layer k (strides 64, 128, 256, 512; 512, 256, 256, 128 ch at alpha 1):
     1x1 conv to width / 2 + BN + ReLU6
     3x3 depthwise, stride 2 + BN + ReLU6
     1x1 conv to width + BN + ReLU6
per level, for boxes and for classes (separately):
     3x3 depthwise + BN + ReLU6 -> 1x1 conv (bias) to anchors * (4 | classes)
```

Training and decoding follow the keras-cv detectors (`keras_cv.models.RetinaNet`)
and use keras-cv for the box work: anchors from
`keras_cv.layers.AnchorGenerator`, matching with `keras_cv.layers.BoxMatcher`
on `keras_cv.bounding_box.compute_iou`, keras-cv's box-delta encoding
(`center_yxhw` deltas scaled by `(0.1, 0.1, 0.2, 0.2)`, TF-OD's
`faster_rcnn_box_coder` 10/10/5/5), `keras_cv.losses.FocalLoss` and
`keras_cv.losses.SmoothL1Loss`, and
`keras_cv.layers.MultiClassNonMaxSuppression` for decoding. keras-cv is the
optional extra `cv` (`pip install "mnv3-layers[cv]"`), imported when an
`SSDLite` is built. Decoding (non-max suppression) runs on the TensorFlow
backend only, as in keras-cv.

Loss: sigmoid focal loss (alpha 0.75, gamma 2) plus smooth-L1 on the box
deltas of positive anchors, both normalized by the number of positive
anchors in the batch -- the loss of the paper's released SSDLite-MobileNetV3
configs (not SSD's softmax loss with hard-negative mining). The focal loss
weighs every anchor and needs no sampling step, so the loss is one
vectorized expression over all anchors, and it is keras-cv's own loss.

Reference: Howard et al., "Searching for MobileNetV3", ICCV 2019, section 6.3;
Sandler et al., "MobileNetV2", CVPR 2018 (SSDLite); Liu et al., "SSD", ECCV
2016; Lin et al., "Focal Loss for Dense Object Detection", ICCV 2017.
"""

import dataclasses
import math
import numbers

import keras
import numpy as np
from keras import ops

from mnv3_layers._registry import register
from mnv3_layers._validation import check_fraction
from mnv3_layers.applications.backbone import LAST_STAGE_TAP, MobileNetV3Backbone
from mnv3_layers.architecture.block_spec import BN_EPSILON

CV_INSTALL_HINT = 'pip install "mnv3-layers[cv]"'
BOUNDING_BOX_FORMATS = (
    "xyxy", "yxyx", "xywh", "center_xywh", "center_yxhw", "rel_xyxy", "rel_yxyx", "rel_xywh",
)
BOX_VARIANCE = (0.1, 0.1, 0.2, 0.2)
EXTRA_FILTERS = (512, 256, 256, 128)
EXTRA_MIN_FILTERS = 16
C4_STRIDE = 16
C5_STRIDE = 32
DEFAULT_ANCHOR_SCALES = (1.0, 2.0**0.5)
DEFAULT_ANCHOR_ASPECT_RATIOS = (0.5, 1.0, 2.0)
ANCHOR_MIN_SCALE = 0.2
ANCHOR_MAX_SCALE = 0.95
CLASS_PRIOR = 0.01
FOCAL_ALPHA = 0.75
FOCAL_GAMMA = 2.0
_BACKGROUND = -1.0
_IGNORE = -2.0


def import_keras_cv():
    """Imports keras-cv or raises an `ImportError` naming the extra to install."""
    try:
        import keras_cv
    except ImportError as error:
        raise ImportError(
            "SSDLite uses keras-cv for anchors, box matching and encoding, losses "
            f"and non-max suppression. Install it with: {CV_INSTALL_HINT}"
        ) from error
    return keras_cv


@dataclasses.dataclass(frozen=True)
class SSDLevel:
    """One feature level of an `SSDLite` detector.

    Attributes:
        name: `"P4"`, `"P5"`, ... (`Pn` has nominal stride `2**n`).
        source: where the feature comes from: a backbone tap key
            (`"expanded_conv_8/expansion_output"`, `"last_stage"`) or the
            extra layer's name (`"extra_P6"`).
        stride: nominal stride (16, 32, 64, ...).
        grid: `(rows, columns)` of the feature map for the model's input size.
        channels: channels of the feature map.
        anchor_size: base anchor size in pixels.
        anchors_per_location: `len(anchor_scales) * len(anchor_aspect_ratios)`.
    """

    name: str
    source: str
    stride: int
    grid: tuple
    channels: int
    anchor_size: float
    anchors_per_location: int

    @property
    def num_anchors(self):
        """Anchors of the level: rows * columns * anchors per location."""
        return self.grid[0] * self.grid[1] * self.anchors_per_location


# --------------------------------------------------------------------------
# Argument checks
# --------------------------------------------------------------------------


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


def _check_num_classes(num_classes):
    if isinstance(num_classes, bool) or not isinstance(num_classes, numbers.Integral):
        raise TypeError(
            "`num_classes` must be a positive integer (the number of object classes, "
            f"without background). Received: num_classes={num_classes!r}"
        )
    if num_classes < 1:
        raise ValueError(
            "`num_classes` must be a positive integer (the number of object classes, "
            f"without background). Received: num_classes={num_classes!r}"
        )
    return int(num_classes)


def _check_box_format(bounding_box_format):
    if not isinstance(bounding_box_format, str) or (
        bounding_box_format.lower() not in BOUNDING_BOX_FORMATS
    ):
        raise ValueError(
            f"`bounding_box_format` must be one of {BOUNDING_BOX_FORMATS} (keras-cv "
            f"formats, case-insensitive). Received: "
            f"bounding_box_format={bounding_box_format!r}"
        )
    return bounding_box_format.lower()


def _grid(height, width, stride):
    # Stride-2 'same' convolutions give ceil(size / 2) at each step.
    return (-(-height // stride), -(-width // stride))


def _level_strides(num_extra):
    return [C4_STRIDE, C5_STRIDE] + [C5_STRIDE * 2 ** (i + 1) for i in range(num_extra)]


def default_extra_filters(alpha, height, width):
    """The extra layers SSDLite adds for an input size.

    The paper's four layers (512, 256, 256, 128 channels, times `alpha`, at
    least 16, as TF-OD's `depth_multiplier` / `min_depth`), stopping once a
    level is 1x1 (at 320x320: 20, 10, 5, 3, 2, 1 as in the paper; at
    128x128: 8, 4, 2, 1, so two extra layers).

    Args:
        alpha: the backbone's width multiplier.
        height: input height in pixels.
        width: input width in pixels.

    Returns:
        A tuple of ints, one per extra layer.

    Example:

    >>> from mnv3_layers.applications.ssdlite import default_extra_filters
    >>> default_extra_filters(1.0, 320, 320)
    (512, 256, 256, 128)
    >>> default_extra_filters(0.5, 128, 128)
    (256, 128)
    """
    filters = []
    grid = _grid(height, width, C5_STRIDE)
    for depth in EXTRA_FILTERS:
        if min(grid) <= 1:
            break
        filters.append(max(int(depth * alpha), EXTRA_MIN_FILTERS))
        grid = (-(-grid[0] // 2), -(-grid[1] // 2))
    return tuple(filters)


def _check_extra_filters(extra_filters, alpha, height, width):
    if extra_filters is None:
        return default_extra_filters(alpha, height, width)
    if not isinstance(extra_filters, (list, tuple)) or any(
        isinstance(f, bool) or not isinstance(f, numbers.Integral) or f < 2
        for f in extra_filters
    ):
        raise ValueError(
            "`extra_filters` must be None or a list of integers >= 2 (channels of "
            f"each extra layer). Received: extra_filters={extra_filters!r}"
        )
    extra_filters = tuple(int(f) for f in extra_filters)
    strides = _level_strides(len(extra_filters))
    # Every level but the deepest must be at least 2x2: a smaller input makes
    # two or more levels 1x1, each a copy of the same image-wide cell.
    for stride in strides[:-1]:
        if min(_grid(height, width, stride)) < 2:
            fits = len(default_extra_filters(1.0, height, width))
            raise ValueError(
                f"The input size {height}x{width} is too small for "
                f"{len(extra_filters)} extra layers: the level at stride {stride} is "
                f"already {_grid(height, width, stride)}, so the deeper levels (down "
                f"to stride {strides[-1]}) would be 1x1 copies of it. Each input side "
                f"must be larger than half the deepest stride ({strides[-1] // 2}); "
                f"use a larger input or at most {fits} extra layers. Received: "
                f"extra_filters={extra_filters!r}, input_shape=({height}, {width})"
            )
    return extra_filters


def _check_positive_list(name, value):
    if not isinstance(value, (list, tuple)) or not value or any(
        isinstance(v, bool) or not isinstance(v, numbers.Real) or not v > 0 for v in value
    ):
        raise ValueError(
            f"`{name}` must be a non-empty list of positive numbers. "
            f"Received: {name}={value!r}"
        )
    return tuple(float(v) for v in value)


def default_anchor_sizes(num_levels, height, width):
    """SSD's anchor sizes: linear from 0.2 to 0.95 of the shorter image side.

    TF-OD's `ssd_anchor_generator` (`min_scale=0.2`, `max_scale=0.95`), in
    pixels of `min(height, width)`, one per level.

    Example:

    >>> from mnv3_layers.applications.ssdlite import default_anchor_sizes
    >>> default_anchor_sizes(4, 128, 160)
    (25.6, 57.6, 89.6, 121.6)
    """
    side = min(height, width)
    if num_levels == 1:
        return (round(ANCHOR_MIN_SCALE * side, 4),)
    step = (ANCHOR_MAX_SCALE - ANCHOR_MIN_SCALE) / (num_levels - 1)
    return tuple(round((ANCHOR_MIN_SCALE + step * k) * side, 4) for k in range(num_levels))


def _check_anchor_sizes(anchor_sizes, num_levels, height, width):
    if anchor_sizes is None:
        return default_anchor_sizes(num_levels, height, width)
    sizes = _check_positive_list("anchor_sizes", anchor_sizes)
    if len(sizes) != num_levels:
        raise ValueError(
            f"`anchor_sizes` must have one size (pixels) per level; this detector "
            f"has {num_levels} levels (C4, C5 and {num_levels - 2} extra layers). "
            f"Received: anchor_sizes={anchor_sizes!r}"
        )
    return sizes


def _check_thresholds(positive, negative):
    positive = check_fraction("positive_iou_threshold", positive, allow_zero=False,
                              allow_one=True)
    negative = check_fraction("negative_iou_threshold", negative, allow_one=True)
    if negative > positive:
        raise ValueError(
            "`negative_iou_threshold` must be <= `positive_iou_threshold` (anchors "
            "between the two are ignored). Received: "
            f"negative_iou_threshold={negative!r}, positive_iou_threshold={positive!r}"
        )
    return positive, negative


# --------------------------------------------------------------------------
# Labels check (used on the first batch by fit / evaluate)
# --------------------------------------------------------------------------


def _to_numpy(value):
    if hasattr(value, "to_tensor") and hasattr(value, "row_splits"):  # tf.RaggedTensor
        value = value.to_tensor(default_value=-1)
    return np.asarray(ops.convert_to_numpy(value) if not isinstance(value, np.ndarray)
                      else value, dtype="float64")


def check_detection_labels(y, bounding_box_format, image_shape, num_classes=None):
    """Checks detection labels and raises a `ValueError` on obvious mistakes.

    Cheap NumPy checks, meant for a first batch (`SSDLite.fit` and
    `SSDLite.evaluate` run them): `y` is a dict with `"boxes"` `(batch,
    num_boxes, 4)` and `"classes"` `(batch, num_boxes)`, dense padded with -1
    or ragged; classes are integers in `[0, num_classes)` (or -1 for
    padding); and the boxes look like `bounding_box_format`: corner formats
    have `x2 >= x1` and `y2 >= y1`, size formats have non-negative sizes,
    `rel_*` values are within [0, 1], absolute boxes are not all within
    [0, 1] (they would be relative), and no box lies entirely outside the
    image.

    Args:
        y: the labels, `{"boxes": ..., "classes": ...}`.
        bounding_box_format: the declared keras-cv box format.
        image_shape: `(height, width)` or `(height, width, channels)` of the
            images.
        num_classes: number of classes, or `None` to skip the range check.
            Defaults to `None`.

    Raises:
        ValueError: naming the first problem found.

    Example:

    >>> import numpy as np
    >>> from mnv3_layers.applications.ssdlite import check_detection_labels
    >>> y = {"boxes": np.array([[[40.0, 10.0, 20.0, 30.0]]]), "classes": np.array([[0.0]])}
    >>> check_detection_labels(y, "xyxy", (64, 64))
    Traceback (most recent call last):
    ...
    ValueError: `y['boxes']` does not look like bounding_box_format='xyxy': 1 box(es) \
have x2 < x1 or y2 < y1...
    """
    bounding_box_format = _check_box_format(bounding_box_format)
    if not isinstance(y, dict) or "boxes" not in y or "classes" not in y:
        raise ValueError(
            "`y` must be a dict with the keys 'boxes' and 'classes' (the keras-cv "
            f"detection format). Received: y={_short(y)}"
        )
    boxes, classes = _to_numpy(y["boxes"]), _to_numpy(y["classes"])
    if boxes.ndim != 3 or boxes.shape[-1] != 4:
        raise ValueError(
            "`y['boxes']` must have shape (batch, num_boxes, 4). Received: "
            f"y['boxes'].shape={boxes.shape}"
        )
    if classes.ndim == 3 and classes.shape[-1] == 1:
        classes = classes[..., 0]
    if classes.shape != boxes.shape[:2]:
        raise ValueError(
            "`y['classes']` must have shape (batch, num_boxes), matching "
            f"`y['boxes']` {boxes.shape}. Received: y['classes'].shape={classes.shape}"
        )
    valid = classes != -1
    bad_class = valid & ((classes < 0) | (classes != np.round(classes)) | ~np.isfinite(classes))
    if num_classes is not None:
        bad_class |= valid & (classes >= num_classes)
    if bad_class.any():
        upper = "num_classes" if num_classes is None else num_classes
        raise ValueError(
            f"`y['classes']` must hold integers in [0, {upper}) or -1 for padding. "
            f"Received: y['classes'] values {np.unique(classes[bad_class])[:8].tolist()}"
        )
    b = boxes[valid]
    if not b.size:
        return
    if not np.all(np.isfinite(b)):
        raise ValueError("`y['boxes']` must be finite. Received: NaN or inf values")
    height, width = int(image_shape[0]), int(image_shape[1])
    fmt = bounding_box_format
    prefix = f"`y['boxes']` does not look like bounding_box_format={fmt!r}: "
    base = fmt[4:] if fmt.startswith("rel_") else fmt
    if base in ("xyxy", "yxyx"):
        bad = (b[:, 2] < b[:, 0]) | (b[:, 3] < b[:, 1])
        if bad.any():
            first, second = ("x", "y") if base == "xyxy" else ("y", "x")
            raise ValueError(
                prefix + f"{int(bad.sum())} box(es) have {first}2 < {first}1 or "
                f"{second}2 < {second}1 (a size format such as 'xywh' declared as "
                f"corners?). Received: first bad box {b[bad][0].tolist()}"
            )
    else:
        bad = (b[:, 2] < 0) | (b[:, 3] < 0)
        if bad.any():
            raise ValueError(
                prefix + f"{int(bad.sum())} box(es) have a negative width or height. "
                f"Received: first bad box {b[bad][0].tolist()}"
            )
    if fmt.startswith("rel_"):
        if b.min() < -0.01 or b.max() > 1.01:
            raise ValueError(
                prefix + "relative formats hold values in [0, 1], these look like "
                f"absolute pixel coordinates (declare {base!r}?). Received: values in "
                f"[{b.min():g}, {b.max():g}]"
            )
        b = b * np.array([width, height, width, height] if base != "yxyx"
                         else [height, width, height, width])
    elif max(height, width) > 2 and b.max() <= 1.0 and b.max() > 0:
        raise ValueError(
            prefix + f"every coordinate is within [0, 1] on a {height}x{width} image; "
            f"these look like relative coordinates (declare 'rel_{base}'?). Received: "
            f"values in [{b.min():g}, {b.max():g}]"
        )
    if base == "xyxy":
        x1, y1, x2, y2 = b.T
    elif base == "yxyx":
        y1, x1, y2, x2 = b.T
    elif base == "xywh":
        x1, y1 = b[:, 0], b[:, 1]
        x2, y2 = x1 + b[:, 2], y1 + b[:, 3]
    elif base == "center_xywh":
        x1, y1 = b[:, 0] - b[:, 2] / 2, b[:, 1] - b[:, 3] / 2
        x2, y2 = x1 + b[:, 2], y1 + b[:, 3]
    else:  # center_yxhw
        y1, x1 = b[:, 0] - b[:, 2] / 2, b[:, 1] - b[:, 3] / 2
        y2, x2 = y1 + b[:, 2], x1 + b[:, 3]
    outside = (x1 >= width) | (y1 >= height) | (x2 <= 0) | (y2 <= 0)
    if outside.any():
        raise ValueError(
            prefix + f"{int(outside.sum())} box(es) lie entirely outside the "
            f"{height}x{width} image (x and y swapped, or another format?). "
            f"Received: first such box {b[outside][0].tolist()}"
        )


def _short(value):
    text = repr(value)
    return text if len(text) < 200 else text[:200] + "..."


# --------------------------------------------------------------------------
# mAP@0.5 (VOC-style), used by the example and the tests
# --------------------------------------------------------------------------


def mean_average_precision(y_true, y_pred, bounding_box_format, image_shape=None,
                           iou_threshold=0.5, num_classes=None):
    """Box mean average precision at one IoU threshold (PASCAL VOC style).

    For each class, detections of all images are sorted by confidence; a
    detection is a true positive when its IoU with a not yet matched
    ground-truth box of the same class and image is >= `iou_threshold`
    (greedy, best IoU first), else a false positive. AP is the area under
    the precision-recall curve with precision made monotone (VOC 2010+
    "all points" interpolation). mAP is the mean over the classes that have
    ground truth. keras-cv's `BoxCOCOMetrics` would do this through
    `pycocotools`, which is not a dependency of this package; this small
    function needs nothing but NumPy (and keras-cv's `compute_iou`).

    Args:
        y_true: `{"boxes": (N, M, 4), "classes": (N, M)}`, padded with -1
            (or ragged).
        y_pred: `{"boxes", "classes", "confidence"}` as returned by
            `SSDLite.predict` (padded with -1); `"num_detections"` is used
            when present.
        bounding_box_format: the boxes' keras-cv format.
        image_shape: `(height, width[, channels])`, needed by `rel_*` formats.
            Defaults to `None`.
        iou_threshold: IoU for a match. Defaults to `0.5`.
        num_classes: classes to average over; `None` takes those present in
            `y_true`. A class without ground truth is left out. Defaults to
            `None`.

    Returns:
        `{"map": float, "ap_per_class": {class_id: float},
        "num_ground_truth": {class_id: int}}`.

    Example:

    >>> import numpy as np
    >>> from mnv3_layers.applications.ssdlite import mean_average_precision
    >>> y_true = {"boxes": np.array([[[0, 0, 10, 10], [20, 20, 40, 40]]], "float32"),
    ...           "classes": np.array([[0, 1]], "float32")}
    >>> y_pred = {"boxes": np.array([[[0, 0, 10, 11], [50, 50, 60, 60]]], "float32"),
    ...           "classes": np.array([[0, 1]], "float32"),
    ...           "confidence": np.array([[0.9, 0.8]], "float32")}
    >>> mean_average_precision(y_true, y_pred, "xyxy")["ap_per_class"]
    {0: 1.0, 1: 0.0}
    """
    keras_cv = import_keras_cv()
    fmt = _check_box_format(bounding_box_format)
    check_fraction("iou_threshold", iou_threshold, allow_zero=False, allow_one=True)
    if fmt.startswith("rel_") and image_shape is None:
        raise ValueError(
            "`image_shape` is needed for relative box formats. Received: "
            f"bounding_box_format={fmt!r}, image_shape=None"
        )
    shape = None if image_shape is None else (int(image_shape[0]), int(image_shape[1]), 3)

    def to_yxyx(boxes):
        boxes = _to_numpy(boxes).astype("float32")
        converted = keras_cv.bounding_box.convert_format(
            boxes, source=fmt, target="yxyx", image_shape=shape
        )
        return np.asarray(ops.convert_to_numpy(converted))

    gt_boxes, gt_classes = to_yxyx(y_true["boxes"]), _to_numpy(y_true["classes"])
    pred_boxes, pred_classes = to_yxyx(y_pred["boxes"]), _to_numpy(y_pred["classes"])
    confidence = _to_numpy(y_pred["confidence"])
    if gt_classes.ndim == 3:
        gt_classes = gt_classes[..., 0]
    if len(gt_boxes) != len(pred_boxes):
        raise ValueError(
            "`y_true` and `y_pred` must have the same number of images. Received: "
            f"{len(gt_boxes)} and {len(pred_boxes)}"
        )
    pred_valid = pred_classes >= 0
    if "num_detections" in y_pred:
        count = _to_numpy(y_pred["num_detections"]).reshape(-1, 1)
        pred_valid &= np.arange(pred_classes.shape[1])[None, :] < count
    # IoU of every detection with every ground-truth box, per image.
    if gt_boxes.shape[1] and pred_boxes.shape[1]:
        iou = np.asarray(ops.convert_to_numpy(keras_cv.bounding_box.compute_iou(
            pred_boxes, gt_boxes, bounding_box_format="yxyx")))
    else:
        iou = np.zeros((len(gt_boxes), pred_boxes.shape[1], gt_boxes.shape[1]))
    if num_classes is None:
        class_ids = sorted({int(c) for c in gt_classes[gt_classes >= 0]})
    else:
        class_ids = list(range(num_classes))
    ap_per_class, num_ground_truth = {}, {}
    for class_id in class_ids:
        gt_mask = gt_classes == class_id
        n_gt = int(gt_mask.sum())
        if n_gt == 0:
            continue
        images, slots = np.nonzero(pred_valid & (pred_classes == class_id))
        order = np.argsort(-confidence[images, slots], kind="stable")
        matched = np.zeros_like(gt_mask)
        tp = np.zeros(len(order))
        for rank, k in enumerate(order):
            i, j = images[k], slots[k]
            candidates = np.where(gt_mask[i] & ~matched[i], iou[i, j], -1.0)
            best = int(np.argmax(candidates)) if candidates.size else 0
            if candidates.size and candidates[best] >= iou_threshold:
                matched[i, best] = True
                tp[rank] = 1.0
        tp_cum = np.cumsum(tp)
        recall = tp_cum / n_gt
        precision = tp_cum / np.arange(1, len(order) + 1)
        recall = np.concatenate([[0.0], recall, [1.0]])
        precision = np.concatenate([[0.0], precision, [0.0]])
        precision = np.maximum.accumulate(precision[::-1])[::-1]
        steps = np.nonzero(recall[1:] != recall[:-1])[0]
        ap_per_class[class_id] = float(np.sum((recall[steps + 1] - recall[steps])
                                              * precision[steps + 1]))
        num_ground_truth[class_id] = n_gt
    mean_ap = float(np.mean(list(ap_per_class.values()))) if ap_per_class else 0.0
    return {"map": mean_ap, "ap_per_class": ap_per_class,
            "num_ground_truth": num_ground_truth}


# --------------------------------------------------------------------------
# Model
# --------------------------------------------------------------------------


def _conv_bn_relu6(x, filters, bn_momentum, name):
    x = keras.layers.Conv2D(filters, 1, padding="same", use_bias=False, name=name)(x)
    x = keras.layers.BatchNormalization(momentum=bn_momentum, epsilon=BN_EPSILON,
                                        name=f"{name}_bn")(x)
    return keras.layers.ReLU(max_value=6.0, name=f"{name}_relu6")(x)


def _depthwise_bn_relu6(x, strides, bn_momentum, name):
    x = keras.layers.DepthwiseConv2D(3, strides=strides, padding="same", use_bias=False,
                                     name=name)(x)
    x = keras.layers.BatchNormalization(momentum=bn_momentum, epsilon=BN_EPSILON,
                                        name=f"{name}_bn")(x)
    return keras.layers.ReLU(max_value=6.0, name=f"{name}_relu6")(x)


def _extra_layer(x, filters, bn_momentum, name):
    """TF-OD ssdlite extra layer: 1x1 to filters/2, 3x3 depthwise s2, 1x1 to filters."""
    x = _conv_bn_relu6(x, max(filters // 2, 1), bn_momentum, f"{name}_reduce")
    x = _depthwise_bn_relu6(x, 2, bn_momentum, f"{name}_depthwise")
    return _conv_bn_relu6(x, filters, bn_momentum, f"{name}_project")


def _predictor(x, filters, bias_initializer, bn_momentum, name):
    """Depthwise-separable predictor: 3x3 depthwise + BN + ReLU6, 1x1 conv."""
    x = _depthwise_bn_relu6(x, 1, bn_momentum, f"{name}_depthwise")
    return keras.layers.Conv2D(filters, 1, bias_initializer=bias_initializer,
                               name=f"{name}_conv")(x)


def _unpack_data(data):
    """keras-cv also accepts `{"images": x, "bounding_boxes": y}` batches."""
    if isinstance(data, dict) and "images" in data:
        if "bounding_boxes" in data:
            return (data["images"], data["bounding_boxes"])
        return (data["images"],)
    return data


def _parse_box_loss(loss):
    keras_cv = import_keras_cv()
    if isinstance(loss, str):
        if loss.lower() == "smoothl1":
            return keras_cv.losses.SmoothL1Loss(l1_cutoff=1.0, reduction="sum")
        if loss.lower() == "huber":
            return keras.losses.Huber(reduction="sum")
        raise ValueError(
            "`box_loss` must be 'smoothl1', 'huber' or a `keras.losses.Loss` with "
            f"reduction='sum'. Received: box_loss={loss!r}"
        )
    return _check_sum_loss("box_loss", loss)


def _parse_classification_loss(loss):
    keras_cv = import_keras_cv()
    if isinstance(loss, str):
        if loss.lower() == "focal":
            return keras_cv.losses.FocalLoss(alpha=FOCAL_ALPHA, gamma=FOCAL_GAMMA,
                                             from_logits=True, reduction="sum")
        raise ValueError(
            "`classification_loss` must be 'focal' or a `keras.losses.Loss` with "
            f"from_logits=True and reduction='sum'. Received: classification_loss={loss!r}"
        )
    loss = _check_sum_loss("classification_loss", loss)
    if getattr(loss, "from_logits", True) is not True:
        raise ValueError(
            "`classification_loss` must take logits (`from_logits=True`): SSDLite's "
            f"class head outputs logits. Received: classification_loss={loss!r} with "
            f"from_logits={loss.from_logits!r}"
        )
    return loss


def _check_sum_loss(name, loss):
    if not isinstance(loss, keras.losses.Loss):
        raise ValueError(
            f"`{name}` must be a string or a `keras.losses.Loss`. Received: {name}={loss!r}"
        )
    if loss.reduction != "sum":
        raise ValueError(
            f"`{name}` must use reduction='sum': SSDLite weights each anchor by "
            "1 / (number of positive anchors) and sums. Received: "
            f"{name}.reduction={loss.reduction!r}"
        )
    return loss


@register
class SSDLite(keras.Model):
    """SSDLite object detector on a MobileNetV3 backbone (paper section 6.3).

    A functional model from images `(batch, H, W, 3)` (in [0, 255] when the
    backbone rescales) to raw predictions `{"box": (batch, num_anchors, 4),
    "classification": (batch, num_anchors, num_classes)}` (box deltas and
    class logits); `predict` decodes them with non-max suppression into
    keras-cv's `{"boxes", "classes", "confidence", "num_detections"}` (padded
    with -1, boxes in `bounding_box_format`). Same data contract as keras-cv's
    detectors: `fit(images, {"boxes": ..., "classes": ...})` with boxes in
    `bounding_box_format`, dense padded with -1 or ragged (or batches
    `{"images": ..., "bounding_boxes": ...}`).

    Levels (see `levels`): C4 = the backbone's expansion tap (stride 16), C5 =
    its last feature map (stride 32), then the extra layers (strides 64, 128,
    ...), each with its own depthwise-separable box and class predictors.

    Anchors (`anchors`, fixed for the backbone's static input size):
    `keras_cv.layers.AnchorGenerator` per level (`anchor_size * scale`,
    `aspect_ratios` width/height), with the centers spread evenly over the
    image as in SSD -- cell `i` of a `g`-cell axis of length `L` is centered
    at `(i + 0.5) * L / g` -- where keras-cv would put it at
    `(i + 0.5) * stride` (outside the image when `L` is not a multiple of the
    stride, e.g. the 3x3 stride-128 level of a 320 input).

    Training targets: each anchor takes the ground-truth box of highest IoU
    (`keras_cv.layers.BoxMatcher`, and every box takes its best anchor);
    IoU >= `positive_iou_threshold` is positive, < `negative_iou_threshold`
    background, between them ignored. Loss (see `compile`): sigmoid focal
    loss (alpha 0.75, gamma 2) + smooth L1 on the deltas of positive
    anchors, normalized by the positive count (the paper's released configs).

    Args:
        backbone: a `MobileNetV3Backbone` with a static input size, an
            expansion tap and `output_stride=32`. The paper uses
            `reduced_tail=True`; `SSDLite.from_variant` builds such a
            backbone for you.
        num_classes: number of object classes (no background class); classes
            are ints in `[0, num_classes)`.
        bounding_box_format: keras-cv box format of the labels and
            predictions (`"xyxy"`, `"yxyx"`, `"xywh"`, `"center_xywh"`,
            `"center_yxhw"`, `"rel_xyxy"`, `"rel_yxyx"`, `"rel_xywh"`).
        extra_filters: channels of the extra layers, or `None` for the
            paper's (512, 256, 256, 128) times the backbone's `alpha`,
            as many as the input size supports (`default_extra_filters`).
            Each input side must be larger than half the deepest stride
            (only the deepest level may be 1x1). Defaults to `None`.
        anchor_sizes: base anchor size in pixels per level, or `None` for
            SSD's linear 0.2 .. 0.95 of the shorter image side
            (`default_anchor_sizes`). Defaults to `None`.
        anchor_scales: multipliers of each level's size. Defaults to
            `(1.0, 2**0.5)`.
        anchor_aspect_ratios: width / height ratios. Defaults to
            `(0.5, 1.0, 2.0)`.
        positive_iou_threshold: IoU from which an anchor is positive.
            Defaults to `0.5`.
        negative_iou_threshold: IoU below which an anchor is background.
            Defaults to `0.5` (no ignored anchors, as TF-OD's SSDLite).
        prediction_decoder: a `keras_cv.layers.MultiClassNonMaxSuppression`
            (or any layer with the same call signature and a
            `bounding_box_format` equal to this model's), or `None` for
            `MultiClassNonMaxSuppression(bounding_box_format, from_logits=True,
            iou_threshold=0.5, confidence_threshold=0.5, max_detections=100)`.
            Lower `confidence_threshold` (e.g. 0.05) to measure mAP.
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
        c4, c5, height, width = _check_backbone(backbone)
        num_classes = _check_num_classes(num_classes)
        bounding_box_format = _check_box_format(bounding_box_format)
        extra_filters = _check_extra_filters(extra_filters, backbone.alpha, height, width)
        strides = _level_strides(len(extra_filters))
        anchor_scales = _check_positive_list("anchor_scales", anchor_scales)
        anchor_aspect_ratios = _check_positive_list(
            "anchor_aspect_ratios", anchor_aspect_ratios
        )
        anchor_sizes = _check_anchor_sizes(anchor_sizes, len(strides), height, width)
        positive_iou_threshold, negative_iou_threshold = _check_thresholds(
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
        if name is not None and not isinstance(name, str):
            raise TypeError(f"`name` must be a string. Received: name={name!r}")
        per_location = len(anchor_scales) * len(anchor_aspect_ratios)
        bn_momentum = backbone.bn_momentum

        # === Layers and Functional Model ===
        images = keras.Input(shape=backbone.image_shape, name="images")
        extractor = backbone.get_feature_extractor([c4.key, c5.key])
        taps = extractor(images)
        features = [taps[c4.key], taps[c5.key]]
        sources = [c4.key, c5.key]
        level_names = [f"P{int(math.log2(s))}" for s in strides]
        x = features[-1]
        for level_name, filters in zip(level_names[2:], extra_filters):
            x = _extra_layer(x, filters, bn_momentum, name=f"extra_{level_name}")
            features.append(x)
            sources.append(f"extra_{level_name}")
        levels = []
        for level_name, source, stride, feature, size in zip(
            level_names, sources, strides, features, anchor_sizes
        ):
            grid = _grid(height, width, stride)
            if tuple(feature.shape[1:3]) != grid:
                raise ValueError(
                    f"`backbone` feature stride mismatch: level {level_name} "
                    f"({source!r}) should be {grid} (stride {stride} of a "
                    f"{height}x{width} input) but is {tuple(feature.shape[1:3])}. "
                    f"Received: backbone.image_shape={backbone.image_shape!r}"
                )
            levels.append(SSDLevel(level_name, source, stride, grid,
                                   int(feature.shape[-1]), size, per_location))
        prior = keras.initializers.Constant(-math.log((1 - CLASS_PRIOR) / CLASS_PRIOR))
        box_outputs, class_outputs = [], []
        for level, feature in zip(levels, features):
            box = _predictor(feature, per_location * 4, "zeros", bn_momentum,
                             name=f"box_head_{level.name}")
            classes = _predictor(feature, per_location * num_classes, prior, bn_momentum,
                                 name=f"class_head_{level.name}")
            box_outputs.append(
                keras.layers.Reshape((-1, 4), name=f"box_{level.name}")(box))
            class_outputs.append(
                keras.layers.Reshape((-1, num_classes), name=f"class_{level.name}")(classes))
        box = keras.layers.Concatenate(axis=1, name="box")(box_outputs)
        classes = keras.layers.Concatenate(axis=1, name="classification")(class_outputs)
        super().__init__(
            inputs=images, outputs={"box": box, "classification": classes}, name=name,
            **kwargs,
        )

        # === Config ===
        self.backbone = backbone
        self.feature_extractor = extractor
        self.num_classes = num_classes
        self.bounding_box_format = bounding_box_format
        self.extra_filters = extra_filters
        self.anchor_sizes = anchor_sizes
        self.anchor_scales = anchor_scales
        self.anchor_aspect_ratios = anchor_aspect_ratios
        self.positive_iou_threshold = positive_iou_threshold
        self.negative_iou_threshold = negative_iou_threshold
        self.levels = tuple(levels)
        self.image_shape = (height, width, backbone.image_shape[2])
        self._prediction_decoder = prediction_decoder

        # === Anchors and training state ===
        self._anchors_yxyx = self._make_anchors(keras_cv)
        self.box_matcher = keras_cv.layers.BoxMatcher(
            thresholds=[negative_iou_threshold, positive_iou_threshold],
            match_values=[-1, -2, 1],
            force_match_for_each_col=True,
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
        """Builds the backbone (`reduced_tail=True` by default, as in the paper) and the detector.

        Args:
            variant: `"large"` or `"small"` (or an `ArchitectureSpec`).
                Defaults to `"small"`.
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

    def _make_anchors(self, keras_cv):
        height, width = self.image_shape[:2]
        generator = keras_cv.layers.AnchorGenerator(
            bounding_box_format="center_yxhw",
            sizes=[level.anchor_size for level in self.levels],
            scales=list(self.anchor_scales),
            aspect_ratios=list(self.anchor_aspect_ratios),
            strides=[level.stride for level in self.levels],
            clip_boxes=False,
        )
        per_level = generator(image_shape=(height, width, 3))
        anchors = []
        for index, level in enumerate(self.levels):
            level_anchors = np.array(ops.convert_to_numpy(per_level[index]), "float64")
            if len(level_anchors) != level.num_anchors:
                raise ValueError(
                    f"Anchor count mismatch at level {level.name}: AnchorGenerator gave "
                    f"{len(level_anchors)}, the head predicts {level.num_anchors}."
                )
            # keras-cv centers cell i at (i + 0.5) * stride; SSD spreads the
            # grid over the image: (i + 0.5) * size / cells.
            rows, cols = level.grid
            level_anchors[:, 0] *= height / (rows * level.stride)
            level_anchors[:, 1] *= width / (cols * level.stride)
            anchors.append(level_anchors)
        anchors = np.concatenate(anchors).astype("float32")
        return np.asarray(ops.convert_to_numpy(keras_cv.bounding_box.convert_format(
            anchors, source="center_yxhw", target="yxyx")), "float32")

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
        """Raw outputs `{"box", "classification"}` -> keras-cv detections.

        Box deltas are decoded against the anchors (keras-cv's delta
        decoding), then `prediction_decoder` applies non-max suppression.

        Args:
            predictions: the model's raw output dict.

        Returns:
            `{"boxes": (batch, max_detections, 4), "classes", "confidence":
            (batch, max_detections), "num_detections": (batch,)}`, padded
            with -1, boxes in `bounding_box_format`.
        """
        import_keras_cv()
        from keras_cv.src.bounding_box.converters import _decode_deltas_to_boxes

        boxes = _decode_deltas_to_boxes(
            anchors=ops.convert_to_tensor(self._anchors_yxyx),
            boxes_delta=ops.cast(predictions["box"], "float32"),
            anchor_format="yxyx",
            box_format=self.bounding_box_format,
            variance=BOX_VARIANCE,
            image_shape=self.image_shape,
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

        Args:
            optimizer: a Keras optimizer or its name. Defaults to `"adam"`.
            box_loss: `"smoothl1"` (`keras_cv.losses.SmoothL1Loss`, mean over
                the 4 deltas), `"huber"`, or a `keras.losses.Loss` with
                `reduction="sum"`. Defaults to `"smoothl1"`.
            classification_loss: `"focal"` (`keras_cv.losses.FocalLoss`,
                alpha 0.75, gamma 2, from logits, as the paper's configs) or
                a `keras.losses.Loss` on logits with `reduction="sum"`.
                Defaults to `"focal"`.
            box_loss_weight: weight of the box loss. Defaults to `1.0`.
            classification_loss_weight: weight of the class loss.
                Defaults to `1.0`.
            loss: not accepted (use the two losses above).
            metrics: not accepted; measure detections with
                `mean_average_precision` on `predict` outputs.
            jit_compile: XLA. Defaults to `False` (matching and non-max
                suppression gain nothing from it on the CPU).
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
        for arg_name, value in (("box_loss_weight", box_loss_weight),
                                ("classification_loss_weight", classification_loss_weight)):
            if isinstance(value, bool) or not isinstance(value, numbers.Real) or value < 0:
                raise ValueError(
                    f"`{arg_name}` must be a number >= 0. Received: {arg_name}={value!r}"
                )
        self.box_loss = _parse_box_loss(box_loss)
        self.classification_loss = _parse_classification_loss(classification_loss)
        self.box_loss_weight = float(box_loss_weight)
        self.classification_loss_weight = float(classification_loss_weight)
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
        keras_cv = import_keras_cv()
        from keras_cv.src.bounding_box.converters import _encode_box_to_deltas

        y = keras_cv.bounding_box.to_dense(dict(y))
        boxes = ops.cast(y["boxes"], "float32")
        classes = ops.cast(y["classes"], "float32")
        if len(classes.shape) == 3:
            classes = ops.squeeze(classes, axis=-1)
        batch = ops.shape(boxes)[0]
        # One padding row more, so the box axis is never empty.
        boxes = ops.concatenate([boxes, -ops.ones((batch, 1, 4), "float32")], axis=1)
        classes = ops.concatenate([classes, -ops.ones((batch, 1), "float32")], axis=1)
        boxes = keras_cv.bounding_box.convert_format(
            boxes, source=self.bounding_box_format, target="yxyx",
            image_shape=self.image_shape,
        )
        valid = ops.greater_equal(classes, 0.0)
        anchors = ops.convert_to_tensor(self._anchors_yxyx)
        iou = keras_cv.bounding_box.compute_iou(anchors, boxes, bounding_box_format="yxyx")
        iou = ops.where(ops.expand_dims(valid, 1), iou, -1.0)
        # A dummy first anchor row that padding boxes prefer (-0.5 > -1) and
        # real boxes never do (-2 < any IoU), so "every box takes its best
        # anchor" (force_match_for_each_col) never hands a real anchor to a
        # padding box -- nor to the all -1 column BoxMatcher appends itself,
        # whose argmax is the first row.
        dummy = ops.expand_dims(ops.where(valid, -2.0, -0.5), 1)
        matched_box, matched_value = self.box_matcher(ops.concatenate([dummy, iou], axis=1))
        matched_box = matched_box[:, 1:]
        matched_value = matched_value[:, 1:]
        positive = ops.equal(matched_value, 1)
        ignored = ops.equal(matched_value, -2)
        matched_boxes = ops.take_along_axis(
            boxes, ops.expand_dims(matched_box, -1), axis=1
        )
        matched_classes = ops.take_along_axis(classes, matched_box, axis=1)
        box_targets = _encode_box_to_deltas(
            anchors=anchors, boxes=matched_boxes, anchor_format="yxyx",
            box_format="yxyx", variance=BOX_VARIANCE,
        )
        box_targets = ops.where(ops.expand_dims(positive, -1), box_targets, 0.0)
        class_targets = ops.where(
            positive, matched_classes, ops.where(ignored, _IGNORE, _BACKGROUND)
        )
        return box_targets, class_targets

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
        class_weights = ops.cast(ops.not_equal(class_targets, _IGNORE), "float32") / normalizer
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
            ValueError: the labels do not look like `bounding_box_format` or
                hold classes outside `[0, num_classes)` (see
                `check_detection_labels`).
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
