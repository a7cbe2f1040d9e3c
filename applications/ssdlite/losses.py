"""SSDLite's losses: keras-cv's focal loss and smooth L1, summed per anchor.

Sigmoid focal loss (alpha 0.75, gamma 2) plus smooth L1 on the box deltas
of positive anchors, both normalized by the number of positive anchors in
the batch: the loss of the paper's released SSDLite-MobileNetV3 configs.
"""

import numbers

import keras

from mnv3_layers.applications.ssdlite._keras_cv import import_keras_cv

FOCAL_ALPHA = 0.75
FOCAL_GAMMA = 2.0


def parse_box_loss(loss):
    """`"smoothl1"`, `"huber"` or a `keras.losses.Loss` with `reduction="sum"`."""
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


def parse_classification_loss(loss):
    """`"focal"` or a `keras.losses.Loss` on logits with `reduction="sum"`."""
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


def check_loss_weight(name, value):
    """Checks a loss weight is a real number >= 0; returns it as a float."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or value < 0:
        raise ValueError(f"`{name}` must be a number >= 0. Received: {name}={value!r}")
    return float(value)
