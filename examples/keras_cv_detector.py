"""Swap MobileNetV3Backbone into keras-cv RetinaNet and train it on generated shapes.

    python examples/keras_cv_detector.py            # a few minutes on 2 CPU cores
    python examples/keras_cv_detector.py --smoke    # < 1 minute: builds, fits, evaluates

Offline: the data are circles, squares and triangles drawn by
`mnv3_layers.datasets.make_shapes_detection` (boxes in "xyxy" pixels, padded
with -1, the keras-cv contract). The backbone starts from random weights, so
a few epochs mostly show the held-out loss going down. Also printed: held-out
mAP@0.5 from `mnv3_layers.applications.ssdlite.mean_average_precision`
(keras-cv's own `keras_cv.metrics.BoxCOCOMetrics` needs `pycocotools`,
which is not a dependency of this package).

Needs the `cv` extra: `pip install "mnv3-layers[cv]"`.
"""

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from mnv3_layers.files import save_model_atomic, write_json_atomic  # noqa: E402
from mnv3_layers.applications import MobileNetV3Backbone  # noqa: E402
from mnv3_layers.applications.ssdlite import mean_average_precision  # noqa: E402
from mnv3_layers.datasets import (  # noqa: E402
    DETECTION_BOX_FORMAT,
    SHAPE_NAMES,
    make_shapes_detection,
)

# --smoke: a tiny run that checks the script end to end. It runs eagerly: on a
# CPU, tracing the train, test and predict steps costs far more than a few
# eager steps (graph-mode fits are covered by tests/test_keras_cv.py).
SMOKE = dict(num_images=8, val_images=4, image_size=128, epochs=1, batch_size=4, alpha=0.35,
             run_eagerly=True)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variant", choices=("large", "small"), default="small")
    parser.add_argument("--alpha", type=float, default=0.75)
    parser.add_argument("--image-size", type=int, default=128,
                        help="square image side in pixels, a multiple of 32")
    parser.add_argument("--num-images", type=int, default=256, help="training images")
    parser.add_argument("--val-images", type=int, default=64, help="held-out images")
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument(
        "--bn-momentum", type=float, default=0.9,
        help="backbone batch-norm momentum; a few hundred steps from scratch need a "
        "faster-moving average than the paper's 0.99, or inference-mode scores stay "
        "near the heads' prior",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--run-eagerly", action="store_true",
                        help="run the Keras steps eagerly, without tf.function (debugging)")
    parser.add_argument("--output", default=None,
                        help="folder for report.json (and model.keras); none by default")
    parser.add_argument("--smoke", action="store_true",
                        help="tiny run for tests: " + ", ".join(f"{k}={v}" for k, v in SMOKE.items()))
    args = parser.parse_args(argv)
    if args.smoke:
        for key, value in SMOKE.items():
            setattr(args, key, value)
    return args


def _check_args(args):
    if args.image_size < 64 or args.image_size % 32:
        raise ValueError(
            "`--image-size` must be a multiple of 32 and >= 64 (the feature pyramid "
            f"halves it five times). Received: --image-size={args.image_size}"
        )
    for name in ("num_images", "val_images", "epochs", "batch_size"):
        value = getattr(args, name)
        if value < 1:
            flag = "--" + name.replace("_", "-")
            raise ValueError(f"`{flag}` must be >= 1. Received: {flag}={value}")


def build_detector(backbone, image_size, learning_rate, run_eagerly=False):
    """keras-cv RetinaNet on `backbone`, with anchors sized for `image_size`.

    keras-cv's default anchors (32 to 512 pixels on P3 to P7) suit 512-pixel
    images; the shapes here are 0.15 to 0.45 of the image side, so the
    anchor sizes are scaled to the image (same 3 scales x 3 aspect ratios,
    which the RetinaNet heads are built for). Non-max suppression keeps
    detections down to confidence 0.05 (keras-cv's default 0.5 suits
    display, not mAP, which ranks low-confidence detections too).
    """
    try:
        import keras_cv
    except ImportError as error:
        raise ImportError(
            'This example needs keras-cv: pip install "mnv3-layers[cv]"'
        ) from error
    base = image_size / 8  # 16 px on P3 for 128-pixel images
    anchor_generator = keras_cv.layers.AnchorGenerator(
        bounding_box_format=DETECTION_BOX_FORMAT,
        sizes=[base * 2**level for level in range(5)],
        scales=[2**x for x in (0, 1 / 3, 2 / 3)],
        aspect_ratios=[0.5, 1.0, 2.0],
        strides=[2**level for level in range(3, 8)],
        clip_boxes=True,
    )
    model = keras_cv.models.RetinaNet(
        num_classes=len(SHAPE_NAMES),
        bounding_box_format=DETECTION_BOX_FORMAT,
        backbone=backbone,
        anchor_generator=anchor_generator,
        prediction_decoder=keras_cv.layers.NonMaxSuppression(
            bounding_box_format=DETECTION_BOX_FORMAT,
            from_logits=True,
            iou_threshold=0.5,
            confidence_threshold=0.05,
        ),
    )
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate, global_clipnorm=10.0),
        classification_loss="focal",
        box_loss="smoothl1",
        jit_compile=False,  # XLA compilation costs more than it saves on a CPU
        run_eagerly=run_eagerly,
    )
    return model


def main(argv=None):
    args = parse_args(argv)
    _check_args(args)
    keras.utils.set_random_seed(args.seed)
    start = time.perf_counter()
    size = args.image_size
    x_train, y_train = make_shapes_detection(args.num_images, image_size=size, seed=args.seed)
    x_val, y_val = make_shapes_detection(args.val_images, image_size=size, seed=args.seed + 1)
    print(f"data: {len(x_train)} train / {len(x_val)} held-out images of {size}x{size}, "
          f"classes {SHAPE_NAMES}, boxes {DETECTION_BOX_FORMAT!r}")

    backbone = MobileNetV3Backbone(args.variant, alpha=args.alpha, input_shape=(size, size, 3),
                                   bn_momentum=args.bn_momentum)
    model = build_detector(backbone, size, args.learning_rate, args.run_eagerly)
    print(f"RetinaNet on MobileNetV3Backbone({args.variant!r}, alpha={args.alpha}): "
          f"{model.count_params():,} parameters, pyramid {backbone.pyramid_level_inputs}")

    def held_out_loss():
        return float(model.evaluate(x_val, y_val, batch_size=args.batch_size, verbose=0,
                                    return_dict=True)["loss"])

    loss_before = held_out_loss()
    history = model.fit(x_train, y_train, batch_size=args.batch_size, epochs=args.epochs,
                        verbose=2 if not args.smoke else 0)
    loss_after = held_out_loss()
    detections = model.predict(x_val, batch_size=args.batch_size, verbose=0)
    report = {
        "variant": args.variant,
        "alpha": args.alpha,
        "image_size": size,
        "epochs": args.epochs,
        "train_loss": [float(v) for v in history.history["loss"]],
        "val_loss_before": loss_before,
        "val_loss_after": loss_after,
        "val_map_50": mean_average_precision(
            y_val, detections, DETECTION_BOX_FORMAT, num_classes=len(SHAPE_NAMES)
        )["map"],
        "mean_detections_per_image": float(np.mean(detections["num_detections"])),
        "seconds": round(time.perf_counter() - start, 1),
    }
    print(f"held-out loss {loss_before:.3f} -> {loss_after:.3f}; mAP@0.5 "
          f"{report['val_map_50']:.3f}; {report['seconds']} s")
    if args.output:
        os.makedirs(args.output, exist_ok=True)
        save_model_atomic(model, os.path.join(args.output, "model.keras"))
        write_json_atomic(os.path.join(args.output, "report.json"), report)
    return report


if __name__ == "__main__":
    main()
