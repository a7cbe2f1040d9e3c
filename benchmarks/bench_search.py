"""NetAdapt-style search on generated shapes: latency target met, accuracy kept.

Goal (issue 5): target = 0.8 x the starting model's measured latency ->
the result's measured latency <= 1.05 x target and its accuracy drop <= 1
percentage point after the final fine-tune.

Protocol:

1. Data: `make_shapes_classification` (3 classes), `--num-images` training
   images (seed 0), a validation set for ranking proposals (seed 1) and a
   test set for the reported accuracies (seed 2), all `--image-size` px.
2. Start: MobileNetV3 `--variant` at `--alpha` (`flatten_architecture`),
   `build_classifier` head, trained `--pretrain-steps` steps from scratch.
3. `netadapt_search(target_ratio=0.8, calibrate=True, ...)`: the latency
   table (`LatencyTable`, cached in `--table`) predicts, calibrated to the
   starting model's measured latency; every proposal fine-tuned
   `--finetune-steps` steps; the result fine-tuned `--final-steps` steps.
4. Measured at the end, interleaved in one run: the starting model and the
   result, float TFLite, batch 1, 1 thread (wall and CPU clock; the
   verdict uses `--clock`). Accuracy on the test set: the starting model,
   the result, and (for reference) the starting model trained
   `--final-steps` more steps, so both had the same extra training.

The search state lives in `--output`: rerunning continues an interrupted
search or reuses a finished one (`--fresh` starts over).

Defaults and measured results: benchmarks/README.md (`bench_search.py`).

Usage:

    python benchmarks/bench_search.py                       # ~13 min on 2 idle cores
    python benchmarks/bench_search.py --clock wall --fresh  # on a quiet machine
    python benchmarks/bench_search.py --pretrain-steps 200 --finetune-steps 10 --final-steps 150
"""

import argparse
import json
import os
import platform
import shutil
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from mnv3_layers.datasets import make_shapes_classification  # noqa: E402
from mnv3_layers.latency_table import (  # noqa: E402
    LatencyTable,
    TFLiteTimer,
    _batch_one,
    convert_float_tflite,
    runtime_fingerprint,
    time_runners,
)
from mnv3_layers.search import (  # noqa: E402
    build_classifier,
    flatten_architecture,
    netadapt_search,
)

TARGET_RATIO = 0.8
LATENCY_GOAL = 1.05
ACCURACY_GOAL_PP = 1.0


def log(*args):
    print(*args, flush=True)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", default=os.path.join("out", "bench_search"))
    parser.add_argument("--table", default=os.path.join("out", "bench_search_table.json"))
    parser.add_argument("--fresh", action="store_true", help="delete --output first")
    parser.add_argument("--variant", default="small", choices=("small", "large"))
    parser.add_argument("--alpha", type=float, default=0.75)
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--num-images", type=int, default=2000)
    parser.add_argument("--pretrain-steps", type=int, default=700)
    parser.add_argument("--finetune-steps", type=int, default=3)
    parser.add_argument("--final-steps", type=int, default=300)
    parser.add_argument("--delta", type=float, default=0.05)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--learning-rate", type=float, default=2e-3)
    parser.add_argument("--runs", type=int, default=30, help="timed runs per measurement")
    parser.add_argument("--clock", choices=("cpu", "wall"), default="cpu",
                        help="latency clock of the table and the verdict")
    parser.add_argument("--cache", choices=("warm", "mixed", "cold"), default="warm",
                        help="table cache mode: at 64-96 px the whole model's weights stay "
                             "in cache between inferences, so warm (mixed assumes a head "
                             "whose weights the rest of the network evicts, as at 224 px)")
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args(argv)


def accuracy(model, x, y, batch_size):
    predictions = model.predict(x, batch_size=batch_size, verbose=0)
    return float(np.mean(np.argmax(predictions, axis=-1) == y))


def main(argv=None):
    args = parse_args(argv)
    log(f"python {sys.version.split()[0]}, {platform.platform()}")
    log(f"fingerprint: {runtime_fingerprint(1)}; load average {os.getloadavg()}")
    if args.fresh and os.path.isdir(args.output):
        shutil.rmtree(args.output)
    start = time.perf_counter()
    size = args.image_size
    train = make_shapes_classification(args.num_images, image_size=size, seed=args.seed)
    val = make_shapes_classification(max(args.num_images // 3, 30), image_size=size,
                                     seed=args.seed + 1)
    test = make_shapes_classification(max(args.num_images // 2, 30), image_size=size,
                                      seed=args.seed + 2)
    table = LatencyTable(args.table, runs=args.runs, clock=args.clock, cache=args.cache)
    result = netadapt_search(
        train, args.output, validation_data=val, target_ratio=TARGET_RATIO,
        variant=args.variant, alpha=args.alpha, latency_table=table,
        delta_ratio=args.delta, pretrain_steps=args.pretrain_steps,
        finetune_steps=args.finetune_steps, final_finetune_steps=args.final_steps,
        batch_size=args.batch_size, learning_rate=args.learning_rate, calibrate=True,
        seed=args.seed,
    )
    search_seconds = time.perf_counter() - start
    log(str(result))

    # Starting model (as the search started from it) and the same model
    # trained --final-steps more steps (equal extra training, for reference).
    start_spec = flatten_architecture(args.variant, args.alpha)
    input_shape = (size, size, 3)
    start_model = build_classifier(start_spec, input_shape, 3)
    start_model.load_weights(os.path.join(args.output, "start.weights.h5"))
    start_acc = accuracy(start_model, *test, args.batch_size)
    longer = build_classifier(start_spec, input_shape, 3)
    longer.set_weights(start_model.get_weights())
    longer.compile(optimizer=keras.optimizers.Adam(args.learning_rate),
                   loss="sparse_categorical_crossentropy", jit_compile=False)
    keras.utils.set_random_seed(args.seed + 7)
    longer.fit(train[0], train[1], batch_size=args.batch_size, verbose=0,
               epochs=max(1, round(args.final_steps * args.batch_size / len(train[0]))))
    longer_acc = accuracy(longer, *test, args.batch_size)
    final_acc = accuracy(result.model, *test, args.batch_size)

    timers = [TFLiteTimer(convert_float_tflite(_batch_one(m)))
              for m in (start_model, result.model)]
    stats = time_runners(timers, 5, args.runs)
    prefix = "cpu_" if args.clock == "cpu" else ""
    start_ms, final_ms = (s[f"{prefix}median_ms"] for s in stats)
    target_ms = TARGET_RATIO * start_ms

    log("")
    log(f"starting model: {args.variant} alpha {args.alpha}, {size}x{size}, "
        f"{start_model.count_params()} parameters; result: {result.model.count_params()}")
    log(f"search: {result.iterations} iterations, {search_seconds:.0f} s "
        f"(target in the search: {result.target_ms:.3f} ms; floor {result.floor_ms:.3f} ms)")
    for h in result.history:
        log(f"  iteration {h['iteration']}: {h['chosen']} {h['from']} -> {h['to']}, "
            f"{h['previous_ms']:.3f} -> {h['predicted_ms']:.3f} ms, val accuracy "
            f"{h['previous_accuracy']:.4f} -> {h['accuracy']:.4f}, "
            f"{h['proposals_evaluated']} proposals")
    log("latency (median, measured now, interleaved), batch 1, 1 thread, float TFLite:")
    for clock, key in (("cpu", "cpu_median_ms"), ("wall", "median_ms")):
        a, b = stats[0][key], stats[1][key]
        log(f"  {clock:>4}: start {a:.3f} ms, result {b:.3f} ms, ratio {b / a:.3f} "
            f"(result / target = {b / (TARGET_RATIO * a):.3f})")
    ratio = final_ms / target_ms
    drop = 100 * (start_acc - final_acc)
    log(f"test accuracy ({len(test[0])} images): start {start_acc:.4f}, result {final_acc:.4f} "
        f"(drop {drop:+.2f} pp); start + {args.final_steps} more steps {longer_acc:.4f} "
        f"(drop vs that {100 * (longer_acc - final_acc):+.2f} pp)")
    latency_ok = ratio <= LATENCY_GOAL
    accuracy_ok = drop <= ACCURACY_GOAL_PP
    log(f"goal latency <= {LATENCY_GOAL} x target ({args.clock} clock): {ratio:.3f} "
        f"{'MET' if latency_ok else 'NOT MET'}")
    log(f"goal accuracy drop <= {ACCURACY_GOAL_PP} pp: {drop:+.2f} pp "
        f"{'MET' if accuracy_ok else 'NOT MET'}")
    report = {
        "start_ms": start_ms, "final_ms": final_ms, "target_ms": target_ms, "ratio": ratio,
        "clock": args.clock, "start_accuracy": start_acc, "final_accuracy": final_acc,
        "longer_start_accuracy": longer_acc, "drop_pp": drop,
        "iterations": result.iterations, "seconds": time.perf_counter() - start,
        "latency_stats": stats, "load_average": os.getloadavg(),
    }
    with open(os.path.join(args.output, "bench_report.json"), "w", encoding="utf-8") as f:
        json.dump(report, f, indent=1)
    log(f"total {report['seconds']:.0f} s; report in {args.output}/bench_report.json")
    return 0 if latency_ok and accuracy_ok else 1


if __name__ == "__main__":
    sys.exit(main())
