"""Main job: train MobileNetV3-Small on generated shapes, offline, on the CPU.

    python examples/train_shapes.py                 # ~3-4 minutes on 2 cores
    python examples/train_shapes.py --epochs 2 --num-images 200   # smoke run

Generates circle/square/triangle images (`mnv3_layers.datasets`), trains
`mnv3_layers.applications.MobileNetV3Small` from scratch, prints held-out
accuracy in inference mode, saves `model.keras` into `--output` and checks
the reloaded model predicts the same.
"""

import argparse
import json
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from mnv3_layers.applications import MobileNetV3Small  # noqa: E402
from mnv3_layers.datasets import SHAPE_NAMES, make_shapes_classification  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", default="out/train_shapes", help="output folder")
    parser.add_argument("--num-images", type=int, default=2000)
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--alpha", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--bn-momentum", type=float, default=0.9,
        help="batch-norm momentum; a few hundred steps from scratch need a "
        "faster-moving average than the paper's 0.99 (long ImageNet runs)",
    )
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    if args.num_images < 10:
        raise ValueError(f"`--num-images` must be >= 10. Received: {args.num_images}")
    keras.utils.set_random_seed(args.seed)
    start = time.perf_counter()
    images, labels = make_shapes_classification(
        args.num_images, image_size=args.image_size, seed=args.seed
    )
    split = int(0.8 * len(images))
    x_train, y_train = images[:split], labels[:split]
    x_val, y_val = images[split:], labels[split:]
    print(f"data: {len(x_train)} train / {len(x_val)} validation images of "
          f"{args.image_size}x{args.image_size}, classes {SHAPE_NAMES}")

    model = MobileNetV3Small(
        input_shape=(args.image_size, args.image_size, 3),
        alpha=args.alpha,
        weights=None,
        classes=len(SHAPE_NAMES),
        dropout_rate=0.1,
        bn_momentum=args.bn_momentum,
    )
    steps_per_epoch = -(-len(x_train) // args.batch_size)
    schedule = keras.optimizers.schedules.CosineDecay(
        3e-3, decay_steps=args.epochs * steps_per_epoch, alpha=0.05
    )
    model.compile(
        optimizer=keras.optimizers.Adam(schedule),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
        # XLA compilation of the train step costs more than it saves in a
        # run of a few minutes on the CPU.
        jit_compile=False,
    )
    # Label-preserving augmentation with Keras preprocessing layers: a shape
    # stays a circle/square/triangle under flips and small shifts.
    augment = keras.Sequential(
        [
            keras.layers.RandomFlip("horizontal_and_vertical", seed=args.seed),
            keras.layers.RandomTranslation(0.1, 0.1, fill_mode="reflect", seed=args.seed),
        ],
        name="augment",
    )
    train_data = (
        tf.data.Dataset.from_tensor_slices((x_train, y_train))
        .shuffle(len(x_train), seed=args.seed)
        .batch(args.batch_size)
        .map(lambda x, y: (augment(x, training=True), y), num_parallel_calls=tf.data.AUTOTUNE)
        .prefetch(tf.data.AUTOTUNE)
    )
    history = model.fit(
        train_data,
        validation_data=(x_val, y_val),
        epochs=args.epochs,
        verbose=2,
    )
    _, val_accuracy = model.evaluate(x_val, y_val, verbose=0)
    print(f"validation accuracy (inference mode): {val_accuracy:.3f} "
          f"(chance {1 / len(SHAPE_NAMES):.3f})")

    os.makedirs(args.output, exist_ok=True)
    path = os.path.join(args.output, "model.keras")
    model.save(path)
    reloaded = keras.models.load_model(path)
    diff = float(np.max(np.abs(reloaded.predict(x_val[:16], verbose=0)
                               - model.predict(x_val[:16], verbose=0))))
    print(f"saved {path}; reloaded model max abs output difference {diff:.2e}")
    report = {
        "val_accuracy": float(val_accuracy),
        "train_accuracy": float(history.history["accuracy"][-1]),
        "epochs": args.epochs,
        "seconds": round(time.perf_counter() - start, 1),
        "reload_max_abs_diff": diff,
    }
    with open(os.path.join(args.output, "report.json"), "w") as f:
        json.dump(report, f, indent=2)
    print(json.dumps(report))
    return report


if __name__ == "__main__":
    main()
