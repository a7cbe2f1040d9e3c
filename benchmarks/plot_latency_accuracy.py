"""Latency vs accuracy on this CPU, in the style of the paper's Figure 1 (PNG).

Plotted:

- an alpha sweep of MobileNetV3-Large and -Small (`--alphas`), each built
  as `mnv3_layers.search.build_classifier` (backbone + pooling + softmax
  dense, the same head the search uses) and trained from scratch
  `--steps` steps on generated shapes (`make_shapes_classification`,
  3 classes, `--image-size` px);
- searched models (`--searched DIR ...`: output folders of
  `netadapt_search`, e.g. from `benchmarks/bench_search.py` or
  `examples/latency_search.py`), with their own training (pre-training,
  search fine-tunes, final fine-tune).

The defaults (2000 images, 1000 steps, Adam 2e-3) give the sweep about the
training a `benchmarks/bench_search.py` result gets (Adam 2e-3: 700
pre-training + proposal fine-tunes + 300 final steps). With 500 or 1000
steps at Adam 1e-3 the sweep models ended between 0.54 and 0.93, in no
order of width, while the searched model had reached 0.99: the picture
compared training recipes, not architectures.

Accuracy: on a held-out generated test set (seed 2) - short training on
toy data, NOT ImageNet top-1; the plot says so. Latency: float TFLite,
batch 1, 1 thread, LiteRT + XNNPACK, median of `--runs` runs, every model
timed interleaved in one run (`--clock cpu` - the calling thread's CPU time
- is the robust choice on a shared machine; `wall` on a quiet one).

Usage:

    python benchmarks/plot_latency_accuracy.py --searched out/bench_search
    python benchmarks/plot_latency_accuracy.py --alphas 0.5 1.0 --steps 100 --output out/fig1.png
"""

import argparse
import json
import os
import platform
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from mnv3_layers.datasets import make_shapes_classification  # noqa: E402
from mnv3_layers.latency_table import (  # noqa: E402
    TFLiteTimer,
    _batch_one,
    convert_float_tflite,
    time_runners,
)
from mnv3_layers.plotting import plot_latency_accuracy  # noqa: E402
from mnv3_layers.search import build_classifier, flatten_architecture  # noqa: E402


def log(*args):
    print(*args, flush=True)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", default=os.path.join("out", "latency_accuracy.png"))
    parser.add_argument("--alphas", type=float, nargs="+", default=[0.5, 0.75, 1.0])
    parser.add_argument("--variants", nargs="+", default=["large", "small"],
                        choices=("large", "small"))
    parser.add_argument("--searched", nargs="*", default=[],
                        help="netadapt_search output folders to add as stars")
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--num-images", type=int, default=2000)
    parser.add_argument("--steps", type=int, default=1000, help="training steps per model")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--learning-rate", type=float, default=2e-3,
                        help="Adam learning rate (bench_search's default)")
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--clock", choices=("cpu", "wall"), default="cpu")
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args(argv)


def accuracy(model, x, y, batch_size):
    return float(np.mean(np.argmax(model.predict(x, batch_size=batch_size, verbose=0), -1) == y))


def main(argv=None):
    args = parse_args(argv)
    log(f"python {sys.version.split()[0]}, {platform.platform()}, "
        f"load average {os.getloadavg()}")
    start = time.perf_counter()
    size = args.image_size
    shape = (size, size, 3)
    x, y = make_shapes_classification(args.num_images, image_size=size, seed=args.seed)
    x_test, y_test = make_shapes_classification(max(args.num_images // 2, 30), image_size=size,
                                                seed=args.seed + 2)
    epochs = max(1, round(args.steps * args.batch_size / len(x)))
    entries = []  # (series label, point annotation, model, accuracy)
    for variant in args.variants:
        for alpha in args.alphas:
            keras.utils.set_random_seed(args.seed)
            model = build_classifier(flatten_architecture(variant, alpha), shape, 3)
            model.compile(optimizer=keras.optimizers.Adam(args.learning_rate),
                          loss="sparse_categorical_crossentropy", jit_compile=False)
            t0 = time.perf_counter()
            model.fit(x, y, batch_size=args.batch_size, epochs=epochs, verbose=0)
            acc = accuracy(model, x_test, y_test, args.batch_size)
            log(f"{variant} alpha {alpha}: test accuracy {acc:.4f} "
                f"({epochs} epochs, {time.perf_counter() - t0:.0f} s)")
            entries.append((f"MobileNetV3-{variant.capitalize()}", f"{alpha:g}", model, acc))
    for folder in args.searched:
        model = keras.saving.load_model(os.path.join(folder, "model.keras"))
        with open(os.path.join(folder, "result.json"), encoding="utf-8") as f:
            result = json.load(f)
        acc = accuracy(model, x_test, y_test, args.batch_size)
        name = os.path.basename(os.path.normpath(folder))
        log(f"searched {folder}: test accuracy {acc:.4f}, {result['iterations']} iterations")
        entries.append(("searched (NetAdapt)", name, model, acc))

    timers = [TFLiteTimer(convert_float_tflite(_batch_one(m))) for _, _, m, _ in entries]
    stats = time_runners(timers, 5, args.runs)
    key = "cpu_median_ms" if args.clock == "cpu" else "median_ms"
    series = {}
    points = []
    for (label, note, _, acc), stat in zip(entries, stats):
        series.setdefault(label, []).append((stat[key], acc, note))
        points.append({"series": label, "annotation": note, "latency_ms": stat[key],
                       "wall_median_ms": stat["median_ms"],
                       "cpu_median_ms": stat["cpu_median_ms"], "accuracy": acc})
        log(f"  {label:<22} {note:>12}: {stat[key]:.3f} ms ({args.clock}), accuracy {acc:.4f}")
    plot_latency_accuracy(
        [{"label": label, "points": pts,
          "kind": "points" if label.startswith("searched") else "line"}
         for label, pts in series.items()],
        args.output,
        title=f"Accuracy vs latency on this CPU ({size}x{size} input)",
        xlabel=f"Latency (ms, float TFLite, batch 1, 1 thread, median {args.clock} clock)",
        ylabel="Test accuracy on generated shapes (3 classes)",
        note=(f"Short training on generated shapes ({args.steps} steps per sweep model; "
              "searched models: pre-training + search + final fine-tune), not ImageNet. "
              f"{platform.processor() or platform.machine()}, load average "
              f"{os.getloadavg()[0]:.1f} during measurement."),
    )
    with open(os.path.splitext(args.output)[0] + ".json", "w", encoding="utf-8") as f:
        json.dump({"points": points, "clock": args.clock, "image_size": size}, f, indent=1)
    log(f"wrote {args.output} in {time.perf_counter() - start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
