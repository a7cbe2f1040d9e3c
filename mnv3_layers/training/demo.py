"""`run_demo()`: `mnv3 demo`, a fine-tuning run on generated shapes images."""

import os
import shutil
import time

import numpy as np

from mnv3_layers._validation import check_positive_int
from mnv3_layers.files import write_bytes_atomic, write_json_atomic
from mnv3_layers.training.config import TrainConfig
from mnv3_layers.training.loop import format_report, train
from mnv3_layers.training.run_folder import prepare_output_folder, read_json

# === Demo ===


def write_shapes_folder(folder, num_images, image_size, seed):
    """Writes generated shapes images as PNG files, one sub-folder per class.

    Deterministic for `seed`; returns the number of images written.
    """
    import tensorflow as tf

    from mnv3_layers.datasets import SHAPE_NAMES, make_shapes_classification

    images, labels = make_shapes_classification(num_images, image_size=image_size, seed=seed)
    for name in SHAPE_NAMES:
        os.makedirs(os.path.join(folder, name), exist_ok=True)
    for i, (image, label) in enumerate(zip(images, labels)):
        path = os.path.join(folder, SHAPE_NAMES[label], f"{i:05d}.png")
        write_bytes_atomic(path, tf.io.encode_png(np.round(image).astype(np.uint8)).numpy())
    return len(images)


DEMO_DEFAULTS = dict(num_images=2000, image_size=64, epochs=12, alpha=1.0, batch_size=32)
DEMO_SMOKE = dict(num_images=40, image_size=32, epochs=1, alpha=0.35, batch_size=16)


def _demo_config(out, alpha, image_size, epochs, batch_size, seed, smoke):
    return TrainConfig(
        data=os.path.join(out, "data", "train"), val_data=os.path.join(out, "data", "val"),
        out=out, variant="small", alpha=alpha, image_size=image_size, epochs=epochs,
        batch_size=batch_size, recipe="default", learning_rate=3e-3, bn_momentum=0.9,
        dropout_rate=0.1,
        # Flips only: exact symmetries of every class (reflected shifts mirror
        # shapes at the border into other shapes; benchmarks/README.md, "mnv3 demo").
        augment="flip,vflip", export=("float", "int8"), latency=True, seed=seed,
        # A smoke run is a handful of steps: eager steps cost less than a trace.
        run_eagerly=bool(smoke),
    )


def run_demo(out="out/demo", num_images=None, image_size=None, epochs=None, alpha=None,
             batch_size=None, seed=0, smoke=False, overwrite=False, log=print):
    """`mnv3 demo`: fine-tunes MobileNetV3-Small on generated shapes, offline.

    Writes shapes PNG folders (`out/data/train` 80 %, `out/data/val` 20 %),
    trains `MobileNetV3Small` from scratch on them (`train`), exports float and
    int8 TFLite files with their latency, writes `report.json` and plots.

    Args:
        out: output folder. Defaults to `"out/demo"`.
        num_images: images in all. Defaults to `2000` (`40` with `smoke`).
        image_size: image size. Defaults to `64` (`32` with `smoke`).
        epochs: epochs. Defaults to `12` (`1` with `smoke`).
        alpha: width multiplier. Defaults to `1.0` (`0.35` with `smoke`).
        batch_size: batch size. Defaults to `32` (`16` with `smoke`).
        seed: seed of the data and training. Defaults to `0`.
        smoke: a short run with the smoke defaults, training eagerly.
            Defaults to `False`.
        overwrite: start over, removing an earlier demo from `out`.
            Defaults to `False`.
        log: function that prints progress lines. Defaults to `print`.

    Returns:
        The report dict (also `out/report.json`).
    """
    given = dict(num_images=num_images, image_size=image_size, epochs=epochs, alpha=alpha,
                 batch_size=batch_size)
    defaults = DEMO_SMOKE if smoke else DEMO_DEFAULTS
    settings = {k: defaults[k] if v is None else v for k, v in given.items()}
    num_images, image_size, epochs, alpha, batch_size = settings.values()
    num_images = check_positive_int("num_images", num_images)
    if num_images < 10:
        raise ValueError(f"`num_images` must be >= 10. Received: num_images={num_images!r}")
    start = time.perf_counter()
    num_val = max(3, num_images // 5)
    num_train = num_images - num_val
    config = _demo_config(out, alpha, image_size, epochs, batch_size, seed, smoke)
    extra = ("data", "report.json")
    status = prepare_output_folder(config, overwrite=overwrite, extra_owned=extra)
    report_path = os.path.join(out, "report.json")
    if status == "complete" and os.path.isfile(report_path):
        log(f"{out!r} holds a finished demo of this configuration (pass --overwrite to "
            "run it again):")
        report = read_json(report_path)
        log(format_report(report))
        return report
    log(f"writing {num_train} training and {num_val} validation images of "
        f"{image_size}x{image_size} to {os.path.join(out, 'data')!r}")
    data_root = os.path.join(out, "data")
    if os.path.isdir(data_root):
        shutil.rmtree(data_root)  # generated, owned by the demo: write it afresh
    write_shapes_folder(config.data, num_train, image_size, seed)
    write_shapes_folder(config.val_data, num_val, image_size, seed + 1)
    data_seconds = time.perf_counter() - start
    metrics = train(config, log=log)
    report = dict(metrics)
    report["demo"] = {
        "num_images": num_images, "image_size": image_size, "epochs": epochs,
        "alpha": alpha, "smoke": bool(smoke), "data_seconds": round(data_seconds, 1),
    }
    report["seconds"] = round(time.perf_counter() - start, 1)
    write_json_atomic(report_path, report)
    log(format_report(report))
    return report

