"""Detection label checks: box formats and the first-batch check of `SSDLite.fit`."""

import numpy as np
from keras import ops

BOUNDING_BOX_FORMATS = (
    "xyxy", "yxyx", "xywh", "center_xywh", "center_yxhw", "rel_xyxy", "rel_yxyx", "rel_xywh",
)


def check_box_format(bounding_box_format):
    """Checks a keras-cv box format (case-insensitive); returns it in lower case."""
    if not isinstance(bounding_box_format, str) or (
        bounding_box_format.lower() not in BOUNDING_BOX_FORMATS
    ):
        raise ValueError(
            f"`bounding_box_format` must be one of {BOUNDING_BOX_FORMATS} (keras-cv "
            f"formats, case-insensitive). Received: "
            f"bounding_box_format={bounding_box_format!r}"
        )
    return bounding_box_format.lower()


def to_numpy(value):
    """A dense float64 NumPy array of a tensor, array or ragged tensor (padded with -1)."""
    if hasattr(value, "to_tensor") and hasattr(value, "row_splits"):  # tf.RaggedTensor
        value = value.to_tensor(default_value=-1)
    return np.asarray(ops.convert_to_numpy(value) if not isinstance(value, np.ndarray)
                      else value, dtype="float64")


def _short(value):
    text = repr(value)
    return text if len(text) < 200 else text[:200] + "..."


def check_detection_labels(y, bounding_box_format, image_shape, num_classes=None):
    """Checks detection labels and raises a `ValueError` on obvious mistakes.

    NumPy checks for a first batch (run by `SSDLite.fit` and `evaluate`):
    `"boxes"` `(batch, num_boxes, 4)` and `"classes"` `(batch, num_boxes)`,
    dense padded with -1 or ragged; classes ints in `[0, num_classes)`; boxes
    consistent with the format (ordered corners, non-negative sizes, `rel_*`
    in [0, 1], absolute ones not all in [0, 1]), none wholly outside the image.

    Args:
        y: the labels, `{"boxes": ..., "classes": ...}`.
        bounding_box_format: the declared keras-cv box format.
        image_shape: `(height, width[, channels])` of the images.
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
    fmt = check_box_format(bounding_box_format)
    boxes, classes = _label_arrays(y)
    valid = _check_classes(classes, num_classes)
    b = boxes[valid]
    if not b.size:
        return
    if not np.all(np.isfinite(b)):
        raise ValueError("`y['boxes']` must be finite. Received: NaN or inf values")
    height, width = int(image_shape[0]), int(image_shape[1])
    prefix = f"`y['boxes']` does not look like bounding_box_format={fmt!r}: "
    base = fmt[4:] if fmt.startswith("rel_") else fmt
    _check_box_sides(b, base, prefix)
    b = _check_box_scale(b, fmt, base, height, width, prefix)
    x1, y1, x2, y2 = _corners(b, base)
    outside = (x1 >= width) | (y1 >= height) | (x2 <= 0) | (y2 <= 0)
    if outside.any():
        raise ValueError(
            prefix + f"{int(outside.sum())} box(es) lie entirely outside the "
            f"{height}x{width} image (x and y swapped, or another format?). "
            f"Received: first such box {b[outside][0].tolist()}"
        )


def _label_arrays(y):
    """-> (boxes (batch, num_boxes, 4), classes (batch, num_boxes)) as NumPy, shapes checked."""
    if not isinstance(y, dict) or "boxes" not in y or "classes" not in y:
        raise ValueError(
            "`y` must be a dict with the keys 'boxes' and 'classes' (the keras-cv "
            f"detection format). Received: y={_short(y)}"
        )
    boxes, classes = to_numpy(y["boxes"]), to_numpy(y["classes"])
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
    return boxes, classes


def _check_classes(classes, num_classes):
    """Checks class ids; returns the mask of real (not padding) boxes."""
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
    return valid


def _check_box_sides(b, base, prefix):
    """Corner formats: second corner >= first; size formats: sizes >= 0."""
    if base in ("xyxy", "yxyx"):
        bad = (b[:, 2] < b[:, 0]) | (b[:, 3] < b[:, 1])
        if bad.any():
            first, second = ("x", "y") if base == "xyxy" else ("y", "x")
            raise ValueError(
                prefix + f"{int(bad.sum())} box(es) have {first}2 < {first}1 or "
                f"{second}2 < {second}1 (a size format such as 'xywh' declared as "
                f"corners?). Received: first bad box {b[bad][0].tolist()}"
            )
        return
    bad = (b[:, 2] < 0) | (b[:, 3] < 0)
    if bad.any():
        raise ValueError(
            prefix + f"{int(bad.sum())} box(es) have a negative width or height. "
            f"Received: first bad box {b[bad][0].tolist()}"
        )


def _check_box_scale(b, fmt, base, height, width, prefix):
    """Relative boxes within [0, 1], absolute ones not all; returns pixel boxes."""
    if fmt.startswith("rel_"):
        if b.min() < -0.01 or b.max() > 1.01:
            raise ValueError(
                prefix + "relative formats hold values in [0, 1], these look like "
                f"absolute pixel coordinates (declare {base!r}?). Received: values in "
                f"[{b.min():g}, {b.max():g}]"
            )
        return b * np.array([width, height, width, height] if base != "yxyx"
                            else [height, width, height, width])
    if max(height, width) > 2 and b.max() <= 1.0 and b.max() > 0:
        raise ValueError(
            prefix + f"every coordinate is within [0, 1] on a {height}x{width} image; "
            f"these look like relative coordinates (declare 'rel_{base}'?). Received: "
            f"values in [{b.min():g}, {b.max():g}]"
        )
    return b


def _corners(b, base):
    """(x1, y1, x2, y2) columns of pixel boxes `b` in format `base` (no `rel_`)."""
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
    return x1, y1, x2, y2
