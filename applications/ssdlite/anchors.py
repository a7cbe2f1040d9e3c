"""SSDLite anchors, matching and box-delta encoding (keras-cv's box work).

Anchors: `keras_cv.layers.AnchorGenerator` per level (`anchor_size * scale`,
`aspect_ratios` width / height), with the centers spread evenly over the
image as in SSD -- cell `i` of a `g`-cell axis of length `L` at
`(i + 0.5) * L / g`, where keras-cv puts it at `(i + 0.5) * stride`.
Deltas: keras-cv's `center_yxhw` encoding scaled by `BOX_VARIANCE` (TF-OD's
`faster_rcnn_box_coder` 10/10/5/5).
"""

import numbers

import numpy as np
from keras import ops

from mnv3_layers._validation import check_fraction

BOX_VARIANCE = (0.1, 0.1, 0.2, 0.2)
DEFAULT_ANCHOR_SCALES = (1.0, 2.0**0.5)
DEFAULT_ANCHOR_ASPECT_RATIOS = (0.5, 1.0, 2.0)
ANCHOR_MIN_SCALE = 0.2
ANCHOR_MAX_SCALE = 0.95
BACKGROUND = -1.0
IGNORE = -2.0


def check_positive_list(name, value):
    """Checks a non-empty list of positive numbers; returns a tuple of floats."""
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
    pixels of `min(height, width)`, one per level:

    `size_k = (0.2 + k * (0.95 - 0.2) / (num_levels - 1)) * min(height, width)`

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


def check_anchor_sizes(anchor_sizes, num_levels, height, width):
    """Checks one size per level (or picks `default_anchor_sizes`)."""
    if anchor_sizes is None:
        return default_anchor_sizes(num_levels, height, width)
    sizes = check_positive_list("anchor_sizes", anchor_sizes)
    if len(sizes) != num_levels:
        raise ValueError(
            f"`anchor_sizes` must have one size (pixels) per level; this detector "
            f"has {num_levels} levels (C4, C5 and {num_levels - 2} extra layers). "
            f"Received: anchor_sizes={anchor_sizes!r}"
        )
    return sizes


def check_thresholds(positive, negative):
    """Checks the matching IoU thresholds; returns `(positive, negative)`."""
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


def make_anchors(keras_cv, levels, image_shape, scales, aspect_ratios):
    """All anchors `(num_anchors, 4)` as `yxyx` pixels, in head output order."""
    height, width = image_shape[0], image_shape[1]
    generator = keras_cv.layers.AnchorGenerator(
        bounding_box_format="center_yxhw",
        sizes=[level.anchor_size for level in levels],
        scales=list(scales),
        aspect_ratios=list(aspect_ratios),
        strides=[level.stride for level in levels],
        clip_boxes=False,
    )
    per_level = generator(image_shape=(height, width, 3))
    anchors = []
    for index, level in enumerate(levels):
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


def make_box_matcher(keras_cv, positive_iou_threshold, negative_iou_threshold):
    """keras-cv's `BoxMatcher`: positive 1, background -1, ignored -2."""
    return keras_cv.layers.BoxMatcher(
        thresholds=[negative_iou_threshold, positive_iou_threshold],
        match_values=[-1, -2, 1],
        force_match_for_each_col=True,
    )


def decode_deltas(anchors_yxyx, deltas, bounding_box_format, image_shape):
    """Box deltas `(batch, num_anchors, 4)` -> boxes in `bounding_box_format`."""
    from keras_cv.src.bounding_box.converters import _decode_deltas_to_boxes

    return _decode_deltas_to_boxes(
        anchors=ops.convert_to_tensor(anchors_yxyx),
        boxes_delta=ops.cast(deltas, "float32"),
        anchor_format="yxyx",
        box_format=bounding_box_format,
        variance=BOX_VARIANCE,
        image_shape=image_shape,
    )


def _dense_labels(keras_cv, y, bounding_box_format, image_shape):
    """-> (boxes yxyx (batch, num_boxes + 1, 4), classes (batch, num_boxes + 1))."""
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
        boxes, source=bounding_box_format, target="yxyx", image_shape=image_shape,
    )
    return boxes, classes


def encode_targets(keras_cv, anchors_yxyx, box_matcher, y, bounding_box_format, image_shape):
    """Ground truth -> `(box_targets, class_targets)` per anchor (see `SSDLite.encode_labels`)."""
    from keras_cv.src.bounding_box.converters import _encode_box_to_deltas

    boxes, classes = _dense_labels(keras_cv, y, bounding_box_format, image_shape)
    valid = ops.greater_equal(classes, 0.0)
    anchors = ops.convert_to_tensor(anchors_yxyx)
    iou = keras_cv.bounding_box.compute_iou(anchors, boxes, bounding_box_format="yxyx")
    iou = ops.where(ops.expand_dims(valid, 1), iou, -1.0)
    # A dummy first anchor row that padding boxes prefer (-0.5 > -1) and
    # real boxes never do (-2 < any IoU), so "every box takes its best
    # anchor" (force_match_for_each_col) never hands a real anchor to a
    # padding box -- nor to the all -1 column BoxMatcher appends itself,
    # whose argmax is the first row.
    dummy = ops.expand_dims(ops.where(valid, -2.0, -0.5), 1)
    matched_box, matched_value = box_matcher(ops.concatenate([dummy, iou], axis=1))
    matched_box = matched_box[:, 1:]
    matched_value = matched_value[:, 1:]
    positive = ops.equal(matched_value, 1)
    ignored = ops.equal(matched_value, -2)
    matched_boxes = ops.take_along_axis(boxes, ops.expand_dims(matched_box, -1), axis=1)
    matched_classes = ops.take_along_axis(classes, matched_box, axis=1)
    box_targets = _encode_box_to_deltas(
        anchors=anchors, boxes=matched_boxes, anchor_format="yxyx",
        box_format="yxyx", variance=BOX_VARIANCE,
    )
    box_targets = ops.where(ops.expand_dims(positive, -1), box_targets, 0.0)
    class_targets = ops.where(
        positive, matched_classes, ops.where(ignored, IGNORE, BACKGROUND)
    )
    return box_targets, class_targets
