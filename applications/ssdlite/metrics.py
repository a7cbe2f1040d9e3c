"""Box mean average precision at one IoU threshold (VOC style), NumPy only."""

import numpy as np
from keras import ops

from mnv3_layers._validation import check_fraction
from mnv3_layers.applications.ssdlite._keras_cv import import_keras_cv
from mnv3_layers.applications.ssdlite.labels import check_box_format, to_numpy


def mean_average_precision(y_true, y_pred, bounding_box_format, image_shape=None,
                           iou_threshold=0.5, num_classes=None):
    """Box mean average precision at one IoU threshold (PASCAL VOC style).

    A detection (by confidence, over all images) is a true positive when its
    IoU with an unmatched ground-truth box of its class is >= `iou_threshold`.
    AP ("all points" interpolation, VOC 2010+) and mAP over the classes with
    ground truth:

    `AP = sum_k (r_{k+1} - r_k) * max_{j > k} p_j`

    Args:
        y_true: `{"boxes": (N, M, 4), "classes": (N, M)}`, padded with -1 (or ragged).
        y_pred: `{"boxes", "classes", "confidence"[, "num_detections"]}` as
            returned by `SSDLite.predict`.
        bounding_box_format: the boxes' keras-cv format.
        image_shape: `(height, width[, channels])`, needed by `rel_*` formats.
            Defaults to `None`.
        iou_threshold: IoU for a match. Defaults to `0.5`.
        num_classes: classes to average over (those without ground truth left
            out); `None` takes those in `y_true`. Defaults to `None`.

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
    fmt = check_box_format(bounding_box_format)
    check_fraction("iou_threshold", iou_threshold, allow_zero=False, allow_one=True)
    if fmt.startswith("rel_") and image_shape is None:
        raise ValueError(
            "`image_shape` is needed for relative box formats. Received: "
            f"bounding_box_format={fmt!r}, image_shape=None"
        )
    shape = None if image_shape is None else (int(image_shape[0]), int(image_shape[1]), 3)

    def to_yxyx(boxes):
        converted = keras_cv.bounding_box.convert_format(
            to_numpy(boxes).astype("float32"), source=fmt, target="yxyx", image_shape=shape
        )
        return np.asarray(ops.convert_to_numpy(converted))

    gt_boxes, gt_classes = to_yxyx(y_true["boxes"]), to_numpy(y_true["classes"])
    pred_boxes, pred_classes = to_yxyx(y_pred["boxes"]), to_numpy(y_pred["classes"])
    confidence = to_numpy(y_pred["confidence"])
    if gt_classes.ndim == 3:
        gt_classes = gt_classes[..., 0]
    if len(gt_boxes) != len(pred_boxes):
        raise ValueError(
            "`y_true` and `y_pred` must have the same number of images. Received: "
            f"{len(gt_boxes)} and {len(pred_boxes)}"
        )
    pred_valid = pred_classes >= 0
    if "num_detections" in y_pred:
        count = to_numpy(y_pred["num_detections"]).reshape(-1, 1)
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
        if gt_mask.any():
            detections = pred_valid & (pred_classes == class_id)
            ap_per_class[class_id] = _average_precision(
                gt_mask, detections, confidence, iou, iou_threshold)
            num_ground_truth[class_id] = int(gt_mask.sum())
    mean_ap = float(np.mean(list(ap_per_class.values()))) if ap_per_class else 0.0
    return {"map": mean_ap, "ap_per_class": ap_per_class,
            "num_ground_truth": num_ground_truth}


def _average_precision(gt_mask, detections, confidence, iou, iou_threshold):
    """AP of one class: greedy matching by confidence, all-points interpolation."""
    n_gt = int(gt_mask.sum())
    images, slots = np.nonzero(detections)
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
    recall = np.concatenate([[0.0], tp_cum / n_gt, [1.0]])
    precision = np.concatenate([[0.0], tp_cum / np.arange(1, len(order) + 1), [0.0]])
    precision = np.maximum.accumulate(precision[::-1])[::-1]
    steps = np.nonzero(recall[1:] != recall[:-1])[0]
    return float(np.sum((recall[steps + 1] - recall[steps]) * precision[steps + 1]))
