"""Quantization-aware training to a fully-int8 TFLite model, offline, on the CPU.

    python examples/qat_int8.py                      # Keras 3 engine, MobileNetV3-Small
    python examples/qat_int8.py --engine tfmot       # tensorflow-model-optimization engine
    python examples/qat_int8.py --smoke              # a short check (tiny data, few steps)
    python examples/qat_int8.py --hard-swish elementwise   # int8 file XNNPACK runs whole

Steps: generate circle/square/triangle images
(`mnv3_layers.datasets.make_shapes_classification`), train a float
`MobileNetV3Small` on them, make a QAT copy
(`mnv3_layers.quantization.quantize_model`), fine-tune it, export float and
int8 TFLite files (`export_tflite`, int8 input and output), run them with the
LiteRT interpreter (`evaluate_tflite`), and print a table of accuracy, file
size and single-thread batch-1 latency (`mnv3_layers.latency.measure_latency`)
plus the int8 file's op histogram. Writes `model_float.tflite`,
`model_int8.tflite` and `report.json` into `--output`.

Measured accuracy, agreement and latency: `benchmarks/README.md`
("`examples/qat_int8.py`").
"""

import argparse
import json
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

ENGINES = ("keras", "tfmot")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engine", choices=ENGINES, default="keras", help="QAT engine")
    parser.add_argument("--hard-swish", choices=("op", "elementwise"), default="op",
                        help="int8 hard-swish: one HARD_SWISH op, or ADD/MUL/MUL ops that "
                             "XNNPACK runs (faster on x86 CPUs) (default: %(default)s)")
    parser.add_argument("--output", default="out/qat_int8", help="output folder")
    parser.add_argument("--num-images", type=int, default=3200, help="training images")
    parser.add_argument("--image-size", type=int, default=64, help="height and width, >= 32")
    parser.add_argument("--alpha", type=float, default=0.5, help="width multiplier")
    parser.add_argument("--epochs", type=int, default=20, help="float training epochs")
    parser.add_argument("--qat-epochs", type=int, default=2, help="QAT fine-tuning epochs")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--latency-runs", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--smoke", action="store_true",
                        help="a short check: 32 images at 32x32, alpha 0.35, a few steps")
    args = parser.parse_args(argv)
    if args.smoke:
        args.num_images, args.image_size, args.alpha = 32, 32, 0.35
        args.epochs, args.qat_epochs, args.batch_size, args.latency_runs = 1, 1, 16, 3
    if args.num_images < 2 * args.batch_size:
        parser.error(f"--num-images must be at least 2 * --batch-size ({2 * args.batch_size})")
    return args


def _compile(model, engine, learning_rate, eager):
    """Compiles a Keras 3 model, or a tf_keras model (tfmot engine)."""
    if engine == "tfmot":
        import tf_keras

        optimizer = tf_keras.optimizers.Adam(learning_rate)
        model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy",
                      metrics=["accuracy"], run_eagerly=eager)
    else:
        import keras

        model.compile(optimizer=keras.optimizers.Adam(learning_rate),
                      loss="sparse_categorical_crossentropy", metrics=["accuracy"],
                      jit_compile=False, run_eagerly=eager)
    return model


def _predict(model, x, batch_size=64):
    """`model(x, training=False)` in batches (a Keras 3 or tf_keras model)."""
    return np.concatenate([
        np.asarray(model(x[i:i + batch_size], training=False))
        for i in range(0, len(x), batch_size)
    ])


def _accuracy(probabilities, labels):
    return float(np.mean(np.argmax(probabilities, -1) == labels))


def _table(rows):
    lines = [f"{'model':<12} {'accuracy':>9} {'size (KiB)':>11} {'latency (ms)':>13}"]
    for row in rows:
        size = f"{row['size_bytes'] / 1024:.1f}" if row.get("size_bytes") else "-"
        latency = f"{row['latency_ms']:.2f}" if row.get("latency_ms") else "-"
        lines.append(f"{row['model']:<12} {row['accuracy']:>9.3f} {size:>11} {latency:>13}")
    return "\n".join(lines)


def main(argv=None):
    args = parse_args(argv)
    import keras

    from mnv3_layers.applications import MobileNetV3Small
    from mnv3_layers.datasets import make_shapes_classification
    from mnv3_layers.latency import measure_latency
    from mnv3_layers.quantization import (
        evaluate_tflite,
        export_tflite,
        inspect_tflite,
        quantize_model,
    )

    os.makedirs(args.output, exist_ok=True)
    keras.utils.set_random_seed(args.seed)
    start = time.perf_counter()
    size = args.image_size
    x, y = make_shapes_classification(args.num_images, image_size=size, seed=args.seed)
    num_val = max(args.num_images // 4, 16)
    x_val, y_val = make_shapes_classification(num_val, image_size=size, seed=args.seed + 1)

    # === Float training ===
    # Short runs from scratch want a fast batch-norm momentum (see the
    # application's `bn_momentum` docs); tracing a training step costs more
    # than a handful of steps, so the smoke run trains eagerly.
    model = MobileNetV3Small(input_shape=(size, size, 3), alpha=args.alpha, weights=None,
                             classes=3, dropout_rate=0.0, bn_momentum=0.9)
    _compile(model, "keras", 3e-3, eager=args.smoke)
    model.fit(x, y, batch_size=args.batch_size, epochs=args.epochs, verbose=0)
    float_probs = _predict(model, x_val)

    # === Quantization-aware fine-tuning ===
    qat = quantize_model(model, engine=args.engine, hard_swish=args.hard_swish)
    _compile(qat, args.engine, 5e-4, eager=args.smoke)
    qat.fit(x, y, batch_size=args.batch_size, epochs=args.qat_epochs, verbose=0)
    qat_probs = _predict(qat, x_val)

    # === Export and run with LiteRT ===
    float_path = export_tflite(model, os.path.join(args.output, "model_float.tflite"))
    int8_path = export_tflite(qat, os.path.join(args.output, "model_int8.tflite"),
                              quantization="int8", int8_io=True)
    float_tflite_probs, float_tflite_acc = evaluate_tflite(float_path, x_val, y_val)
    int8_probs, int8_acc = evaluate_tflite(int8_path, x_val, y_val)
    report = inspect_tflite(int8_path)

    latency = {}
    for label, path in (("tflite_float", float_path), ("tflite_int8", int8_path)):
        latency[label] = measure_latency(
            path, runtime="tflite", num_threads=1, warmup=max(1, args.latency_runs // 5),
            runs=args.latency_runs,
        ).median_ms
    rows = [
        {"model": "float", "accuracy": _accuracy(float_probs, y_val)},
        {"model": "tflite_float", "accuracy": float_tflite_acc,
         "size_bytes": os.path.getsize(float_path), "latency_ms": latency["tflite_float"]},
        {"model": "qat", "accuracy": _accuracy(qat_probs, y_val)},
        {"model": "tflite_int8", "accuracy": int8_acc,
         "size_bytes": os.path.getsize(int8_path), "latency_ms": latency["tflite_int8"]},
    ]
    result = {
        "engine": args.engine,
        "hard_swish": args.hard_swish,
        "image_size": size,
        "alpha": args.alpha,
        "num_images": args.num_images,
        "num_val": int(num_val),
        "rows": rows,
        "qat_tflite_agreement": float(np.mean(qat_probs.argmax(-1) == int8_probs.argmax(-1))),
        "float_tflite_agreement": float(
            np.mean(float_probs.argmax(-1) == float_tflite_probs.argmax(-1))
        ),
        "size_ratio_int8_float": rows[3]["size_bytes"] / rows[1]["size_bytes"],
        "latency_ratio_int8_float": latency["tflite_int8"] / latency["tflite_float"],
        "int8_report": report.to_dict(),
        "seconds": time.perf_counter() - start,
    }
    with open(os.path.join(args.output, "report.json"), "w") as f:
        json.dump(result, f, indent=2)

    print(f"engine={args.engine}, hard_swish={args.hard_swish}, "
          f"MobileNetV3Small alpha={args.alpha}, {size}x{size}, "
          f"{args.num_images} training / {num_val} validation images")
    print(_table(rows))
    print(f"QAT ({args.engine} engine) vs TFLite int8 top-1 agreement: "
          f"{result['qat_tflite_agreement']:.3f}")
    print(f"int8 / float size: {result['size_ratio_int8_float']:.2f}, "
          f"latency: {result['latency_ratio_int8_float']:.2f} (this CPU, 1 thread)")
    print(report)
    return result


if __name__ == "__main__":
    main()
