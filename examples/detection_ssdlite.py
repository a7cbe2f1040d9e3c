"""Train the paper's SSDLite detector (MobileNetV3-Small) on generated shapes, offline, on the CPU.

    python examples/detection_ssdlite.py                  # full run: 16 epochs, ~8 CPU minutes
    python examples/detection_ssdlite.py --smoke          # tiny run (< 1 minute)
    python examples/detection_ssdlite.py --epochs 10 --out out/ssdlite

Generates images with 1-4 circles, squares and triangles
(`mnv3_layers.datasets.make_shapes_detection`, boxes in "xyxy" pixels),
trains `SSDLite` on a reduced-tail MobileNetV3-Small backbone (alpha 0.5)
from scratch (no pretrained weights, no network) on 2000 images of
128x128, then reports box mAP@0.5 on held-out
images drawn with another seed. mAP is VOC-style all-points AP at IoU 0.5
(`mnv3_layers.applications.ssdlite.mean_average_precision`; keras-cv's
`BoxCOCOMetrics` needs `pycocotools`, which is not installed here).

Choices tuned to the data: the shapes' boxes are square, 0.15-0.45 of the
image side, so the anchors are square (aspect ratio 1, scales 1 and 1.41)
with base sizes 0.15, 0.28, 0.45 and 0.7 of the image on the four levels of a
128x128 input (strides 16, 32, 64, 128). Plain SGD with a cosine schedule:
on the CPU, tracing the train step with momentum or Adam slots costs more
than it brings in a run this short (global norm clipped at 10, 5% linear
warm-up). At equal CPU time, alpha 0.5 for 16 epochs beat alpha 1.0 for 10
(held-out mAP@0.5 0.78 vs 0.59). Batch-norm momentum 0.9 (a few hundred
steps from scratch; the paper's 0.99 is for long runs).

Writes `report.json` (mAP, per-class AP, epochs, steps, wall and CPU
seconds, the detector's feature levels) and `model.keras` into `--out`.
"""

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402

from mnv3_layers.files import save_model_atomic, write_json_atomic  # noqa: E402
from mnv3_layers.applications import MobileNetV3Backbone  # noqa: E402
from mnv3_layers.applications.ssdlite import (  # noqa: E402
    SSDLite,
    default_extra_filters,
    mean_average_precision,
)
from mnv3_layers.datasets import (  # noqa: E402
    DETECTION_BOX_FORMAT,
    SHAPE_NAMES,
    make_shapes_detection,
)

ANCHOR_FRACTIONS = (0.15, 0.28, 0.45, 0.7, 0.9, 1.0)
SMOKE = {"image_size": 64, "num_train": 16, "num_test": 8, "epochs": 2,
         "batch_size": 8, "alpha": 0.35}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="out/detection_ssdlite", help="output folder")
    parser.add_argument("--smoke", action="store_true",
                        help="tiny run (64 px, 16 images, 2 epochs) to check the pipeline")
    parser.add_argument("--epochs", type=int, default=None, help="default 16 (smoke: 2)")
    parser.add_argument("--num-train", type=int, default=None, help="default 2000")
    parser.add_argument("--num-test", type=int, default=None, help="default 300")
    parser.add_argument("--image-size", type=int, default=None, help="default 128")
    parser.add_argument("--batch-size", type=int, default=None, help="default 32")
    parser.add_argument("--alpha", type=float, default=None, help="backbone width; default 0.5")
    parser.add_argument("--lr", type=float, default=0.1, help="peak SGD learning rate")
    parser.add_argument("--seed", type=int, default=0, help="training-data and init seed")
    parser.add_argument("--test-seed", type=int, default=12345, help="held-out data seed")
    args = parser.parse_args(argv)
    defaults = SMOKE if args.smoke else {"image_size": 128, "num_train": 2000,
                                         "num_test": 300, "epochs": 16,
                                         "batch_size": 32, "alpha": 0.5}
    for key, value in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    for key, low in (("epochs", 1), ("num_train", 2), ("num_test", 1),
                     ("image_size", 32), ("batch_size", 1)):
        if getattr(args, key) < low:
            flag = "--" + key.replace("_", "-")
            raise ValueError(f"`{flag}` must be >= {low}. Received: {getattr(args, key)}")
    if args.seed == args.test_seed:
        raise ValueError(
            "`--test-seed` must differ from `--seed` (held-out images). "
            f"Received: {args.test_seed}"
        )
    return args


class _EpochTimer(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.seconds = []

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(time.perf_counter() - self._start)


def main(argv=None):
    args = parse_args(argv)
    start_wall, start_cpu = time.perf_counter(), time.process_time()
    import keras_cv  # the detector needs it anyway (extra "cv")

    os.makedirs(args.out, exist_ok=True)
    keras.utils.set_random_seed(args.seed)
    size = args.image_size
    x_train, y_train = make_shapes_detection(args.num_train, image_size=size, seed=args.seed)
    x_test, y_test = make_shapes_detection(args.num_test, image_size=size, seed=args.test_seed)
    print(f"data: {len(x_train)} train / {len(x_test)} held-out images of {size}x{size}, "
          f"classes {SHAPE_NAMES}, boxes {DETECTION_BOX_FORMAT!r}")

    # The paper's backbone: reduced tail (section 6.3), from scratch.
    backbone = MobileNetV3Backbone(
        "small", alpha=args.alpha, input_shape=(size, size, 3), reduced_tail=True,
        bn_momentum=0.9,
    )
    # Anchor sizes tuned to the shapes (0.15-0.45 of the side), one per level.
    num_levels = 2 + len(default_extra_filters(args.alpha, size, size))
    model = SSDLite(
        backbone,
        num_classes=len(SHAPE_NAMES),
        bounding_box_format=DETECTION_BOX_FORMAT,
        anchor_sizes=[round(f * size, 2) for f in ANCHOR_FRACTIONS[:num_levels]],
        anchor_scales=(1.0, 2.0**0.5),
        anchor_aspect_ratios=(1.0,),
        # A low confidence threshold, as detection benchmarks use for mAP.
        prediction_decoder=keras_cv.layers.MultiClassNonMaxSuppression(
            DETECTION_BOX_FORMAT, from_logits=True, iou_threshold=0.5,
            confidence_threshold=0.05, max_detections=100,
        ),
    )
    levels = [
        {"level": lv.name, "source": lv.source, "stride": lv.stride, "grid": list(lv.grid),
         "channels": lv.channels, "anchor_size": lv.anchor_size,
         "anchors": lv.num_anchors}
        for lv in model.levels
    ]
    for lv in levels:
        print("level", lv)

    steps_per_epoch = -(-len(x_train) // args.batch_size)
    total_steps = steps_per_epoch * args.epochs
    warmup_steps = max(1, total_steps // 20)
    schedule = keras.optimizers.schedules.CosineDecay(
        args.lr * 0.1, decay_steps=max(1, total_steps - warmup_steps), alpha=0.0,
        warmup_target=args.lr, warmup_steps=warmup_steps,
    )
    model.compile(optimizer=keras.optimizers.SGD(schedule, global_clipnorm=10.0))

    timer = _EpochTimer()
    wall, cpu = time.perf_counter(), time.process_time()
    history = model.fit(x_train, y_train, batch_size=args.batch_size, epochs=args.epochs,
                        verbose=2 if not args.smoke else 0, callbacks=[timer])
    train_wall, train_cpu = time.perf_counter() - wall, time.process_time() - cpu

    predictions = model.predict(x_test, batch_size=args.batch_size, verbose=0)
    result = mean_average_precision(y_test, predictions, DETECTION_BOX_FORMAT,
                                    num_classes=len(SHAPE_NAMES))
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    report = {
        "map50": result["map"],
        "ap50_per_class": {SHAPE_NAMES[k]: v for k, v in result["ap_per_class"].items()},
        "metric": "VOC all-points AP at IoU 0.5, mean over classes "
                  "(mnv3_layers.applications.ssdlite.mean_average_precision)",
        "epochs": args.epochs,
        "steps": total_steps,
        "batch_size": args.batch_size,
        "num_train": args.num_train,
        "num_test": args.num_test,
        "image_size": size,
        "alpha": args.alpha,
        "lr": args.lr,
        "train_seconds_wall": round(train_wall, 1),
        "train_seconds_cpu": round(train_cpu, 1),
        "first_epoch_seconds_wall": round(timer.seconds[0], 1),
        "total_seconds_wall": round(time.perf_counter() - start_wall, 1),
        "total_seconds_cpu": round(time.process_time() - start_cpu, 1),
        "load_average_1min_at_end": None if load is None else round(load[0], 2),
        "loss_history": [round(float(v), 5) for v in history.history["loss"]],
        "levels": levels,
        "smoke": args.smoke,
    }
    save_model_atomic(model, os.path.join(args.out, "model.keras"))
    write_json_atomic(os.path.join(args.out, "report.json"), report)
    print(f"held-out mAP@0.5 = {report['map50']:.3f} after {args.epochs} epochs "
          f"({total_steps} steps) in {train_wall:.0f} s wall / {train_cpu:.0f} s CPU "
          f"(load average {report['load_average_1min_at_end']})")
    return report


if __name__ == "__main__":
    main()
