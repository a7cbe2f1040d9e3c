"""Train the paper's LR-ASPP segmenter on generated shapes, offline, on the CPU.

    python examples/segmentation_lraspp.py              # full run, ~5 CPU-minutes
    python examples/segmentation_lraspp.py --smoke      # tiny run (< 1 minute), for tests

Measured (full run, 4 epochs of 1600 images at 128x128, alpha 0.75, Adam):
held-out mean IoU 0.83 (untrained 0.03); 4.8 minutes of CPU time, 13.7
minutes of wall time on 2 cores shared with many other jobs (load 11-17).

MobileNetV3-Small (from scratch, no downloads) with output stride 16 and the
reduced tail, plus `LRASPPSegmenter`'s head, learns to label every pixel of
`make_shapes_segmentation` images as background, circle, square or triangle.
It reports mean IoU on held-out images (a different seed) with
`keras.metrics.MeanIoU` over all 4 classes, *background included*, computed
in inference mode, saves the model as `.keras`, checks the reloaded model
predicts the same, and writes `report.json` into `--out`.
"""

import argparse
import functools
import json
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from mnv3_layers.files import write_json_atomic  # noqa: E402
from mnv3_layers.applications.backbone import MobileNetV3Backbone  # noqa: E402
from mnv3_layers.applications.lraspp import LRASPPSegmenter  # noqa: E402
from mnv3_layers.datasets import SHAPE_NAMES, make_shapes_segmentation  # noqa: E402

NUM_CLASSES = len(SHAPE_NAMES) + 1  # background + shapes

# (full run, --smoke run)
DEFAULTS = {
    "num_train": (1600, 128),
    "num_val": (200, 16),
    "image_size": (128, 64),
    "epochs": (4, 6),
    "batch_size": (16, 8),
    "alpha": (0.75, 0.5),
    "filters": (64, 32),
    "optimizer": ("adam", "sgd"),
}
LEARNING_RATES = {"adam": 3e-3, "sgd": 0.5}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="out/segmentation_lraspp", help="output folder")
    parser.add_argument("--smoke", action="store_true",
                        help="tiny data, model and run (< 1 minute), to check it works")
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--num-train", type=int, default=None)
    parser.add_argument("--num-val", type=int, default=None)
    parser.add_argument("--image-size", type=int, default=None)
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--alpha", type=float, default=None, help="backbone width multiplier")
    parser.add_argument("--filters", type=int, default=None, help="LR-ASPP head width")
    parser.add_argument("--optimizer", choices=("adam", "sgd"), default=None,
                        help="adam (full run) or plain sgd (--smoke: its train step traces "
                        "about 4x faster than Adam's, and a smoke run is mostly tracing)")
    parser.add_argument("--learning-rate", type=float, default=None,
                        help="peak learning rate (cosine decay); default 3e-3 for adam, "
                        "0.5 for sgd")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    for key, (full, smoke) in DEFAULTS.items():
        if getattr(args, key) is None:
            setattr(args, key, smoke if args.smoke else full)
    if args.learning_rate is None:
        args.learning_rate = LEARNING_RATES[args.optimizer]
    if not args.learning_rate > 0:
        raise ValueError(f"`--learning-rate` must be > 0. Received: {args.learning_rate}")
    for key in ("epochs", "num_train", "num_val", "batch_size", "filters"):
        if getattr(args, key) < 1:
            raise ValueError(
                f"`--{key.replace('_', '-')}` must be >= 1. Received: {getattr(args, key)}"
            )
    if args.image_size < 32 or args.image_size % 16:
        raise ValueError(
            "`--image-size` must be a multiple of 16, at least 32 (the backbone's "
            f"output stride is 16). Received: {args.image_size}"
        )
    return args


def _augment(index, batch, seed):
    """Random horizontal flips of images and their masks together (batch `index`)."""
    images, masks = batch
    step_seed = tf.stack([tf.cast(index, tf.int32), tf.constant(seed, tf.int32)])
    flip = tf.random.stateless_uniform([tf.shape(images)[0], 1, 1], seed=step_seed) < 0.5
    images = tf.where(flip[..., None], tf.reverse(images, [2]), images)
    masks = tf.where(flip, tf.reverse(masks, [2]), masks)
    return images, masks


def mean_iou(model, images, masks, batch_size):
    """Inference-mode mean IoU over all classes (background included)."""
    metric = keras.metrics.MeanIoU(num_classes=NUM_CLASSES, sparse_y_pred=False)
    for start in range(0, len(images), batch_size):
        # Eager calls: no predict function to trace (which costs more than
        # running a few hundred images on the CPU).
        logits = model(images[start:start + batch_size], training=False)
        metric.update_state(masks[start:start + batch_size], logits)
    return float(metric.result())


def main(argv=None):
    args = parse_args(argv)
    keras.utils.set_random_seed(args.seed)
    start = time.perf_counter()
    size = args.image_size
    x_train, y_train = make_shapes_segmentation(args.num_train, image_size=size, seed=args.seed)
    # Held-out images: another seed, so other scenes.
    x_val, y_val = make_shapes_segmentation(args.num_val, image_size=size, seed=args.seed + 1)
    print(f"data: {len(x_train)} train / {len(x_val)} held-out images of {size}x{size}, "
          f"{NUM_CLASSES} classes (background, {', '.join(SHAPE_NAMES)})")

    backbone = MobileNetV3Backbone(
        "small",
        alpha=args.alpha,
        input_shape=(size, size, 3),
        output_stride=16,
        reduced_tail=True,
        # A few hundred steps from scratch: the batch-norm moving averages
        # must settle quickly for inference mode to match training mode.
        bn_momentum=0.9,
    )
    model = LRASPPSegmenter(NUM_CLASSES, backbone=backbone, filters=args.filters)
    untrained_miou = mean_iou(model, x_val, y_val, args.batch_size)

    steps_per_epoch = -(-len(x_train) // args.batch_size)
    schedule = keras.optimizers.schedules.CosineDecay(
        args.learning_rate, decay_steps=args.epochs * steps_per_epoch, alpha=0.02
    )
    if args.optimizer == "adam":
        optimizer = keras.optimizers.Adam(schedule)
    else:
        optimizer = keras.optimizers.SGD(schedule)
    model.compile(
        optimizer=optimizer,
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=[keras.metrics.MeanIoU(num_classes=NUM_CLASSES, sparse_y_pred=False)],
        # XLA compilation costs more than it saves in a short CPU run.
        jit_compile=False,
    )
    train_data = (
        tf.data.Dataset.from_tensor_slices((x_train, y_train))
        .shuffle(len(x_train), seed=args.seed)
        .batch(args.batch_size)
        .enumerate()
        .map(functools.partial(_augment, seed=args.seed), num_parallel_calls=tf.data.AUTOTUNE)
        .prefetch(tf.data.AUTOTUNE)
    )
    train_start = time.perf_counter()
    # The dataset shuffles itself each epoch.
    history = model.fit(train_data, epochs=args.epochs, shuffle=False, verbose=2)
    train_seconds = time.perf_counter() - train_start

    miou = mean_iou(model, x_val, y_val, args.batch_size)
    print(f"held-out mean IoU (inference mode, {NUM_CLASSES} classes, background "
          f"included): {miou:.3f} (untrained: {untrained_miou:.3f})")

    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, "model.keras")
    model.save(path)
    reloaded = keras.models.load_model(path)
    diff = float(np.max(np.abs(
        keras.ops.convert_to_numpy(reloaded(x_val[:8], training=False))
        - keras.ops.convert_to_numpy(model(x_val[:8], training=False))
    )))
    print(f"saved {path}; reloaded model max abs output difference {diff:.2e}")
    report = {
        "val_mean_iou": miou,
        "untrained_val_mean_iou": untrained_miou,
        "mean_iou_classes": NUM_CLASSES,
        "mean_iou_includes_background": True,
        "train_loss_first_epoch": float(history.history["loss"][0]),
        "train_loss_last_epoch": float(history.history["loss"][-1]),
        "epochs": args.epochs,
        "num_train": args.num_train,
        "num_val": args.num_val,
        "image_size": size,
        "alpha": args.alpha,
        "filters": args.filters,
        "batch_size": args.batch_size,
        "optimizer": args.optimizer,
        "learning_rate": args.learning_rate,
        "train_seconds": round(train_seconds, 1),
        "total_seconds": round(time.perf_counter() - start, 1),
        "reload_max_abs_diff": diff,
        "smoke": args.smoke,
    }
    write_json_atomic(os.path.join(args.out, "report.json"), report)
    print(json.dumps(report))
    return report


if __name__ == "__main__":
    main()
