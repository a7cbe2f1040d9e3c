"""Side-by-side benchmark: `mnv3_layers.applications` vs `keras.applications`.

For MobileNetV3-Large and -Small (alpha 1.0, 224x224, `weights=None`) this
script measures, for our model ("ours") and Keras 3's ("ref"), in one run and
interleaved round by round (the order inside each round alternates, so
neither model always runs first):

a. batch-1 inference latency through the same `tf.function` (fixed input
   signature, `model(x, training=False)`);
b. training-step time (`train_on_batch` after `compile` with the same
   optimizer, loss and `jit_compile` setting);
c. float TFLite export through `tf.lite.TFLiteConverter.from_keras_model`:
   op-type histograms (HARD_SWISH count, total ops, the difference) and
   single-thread batch-1 latency with the LiteRT interpreter.

Every number that compares the two is a ratio ours / ref of medians taken in
the same run (the median of the per-round paired ratios is printed too).
Wall-clock numbers alone are meaningless on a shared machine; ratios are not.
Target: every ratio <= 1.00. The summary says PASS or OVER TARGET as
measured; nothing is tuned to hide a result.

Usage:

    python benchmarks/bench_applications.py --json /tmp/bench.json
    python benchmarks/bench_applications.py --quick --variants small
"""

import argparse
import collections
import contextlib
import io
import json
import os
import platform
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from mnv3_layers import applications as ours_apps  # noqa: E402

IMAGE_SIZE = 224
TASKS = ("infer", "train", "tflite")
VARIANTS = {
    "large": (ours_apps.MobileNetV3Large, keras.applications.MobileNetV3Large),
    "small": (ours_apps.MobileNetV3Small, keras.applications.MobileNetV3Small),
}


# === Helpers ===


def log(*args):
    print(*args, flush=True)


def interleaved(fns, rounds):
    """Runs `fns` (name -> callable) `rounds` times each, interleaved.

    Round `i` runs the callables in order, reversed on odd rounds. Returns
    name -> list of seconds.
    """
    names = list(fns)
    times = {name: [] for name in names}
    for i in range(rounds):
        order = names if i % 2 == 0 else names[::-1]
        for name in order:
            start = time.perf_counter()
            fns[name]()
            times[name].append(time.perf_counter() - start)
    return times


def summarize(seconds):
    ms = np.asarray(seconds) * 1e3
    return {
        "median_ms": float(np.median(ms)),
        "p10_ms": float(np.percentile(ms, 10)),
        "p90_ms": float(np.percentile(ms, 90)),
        "runs": int(ms.size),
    }


def compare(times):
    """Stats per model plus ratio of medians and median of paired ratios."""
    ours, ref = np.asarray(times["ours"]), np.asarray(times["ref"])
    paired = ours / ref
    return {
        "ours": summarize(ours),
        "ref": summarize(ref),
        "ratio": float(np.median(ours) / np.median(ref)),
        "paired_ratio_median": float(np.median(paired)),
        "paired_ratio_p10": float(np.percentile(paired, 10)),
        "paired_ratio_p90": float(np.percentile(paired, 90)),
    }


def print_comparison(title, result):
    log(f"  {title}")
    for name in ("ours", "ref"):
        s = result[name]
        log(
            f"    {name:4s}: median {s['median_ms']:9.3f} ms   "
            f"p10 {s['p10_ms']:9.3f}   p90 {s['p90_ms']:9.3f}   (n={s['runs']})"
        )
    log(
        f"    ratio ours/ref (medians) = {result['ratio']:.3f}; paired per-round "
        f"ratio median {result['paired_ratio_median']:.3f} "
        f"[p10 {result['paired_ratio_p10']:.3f}, p90 {result['paired_ratio_p90']:.3f}]"
    )


def copy_same_weights(ours, ref):
    """Copies ref's random weights into ours if the weights helper exists.

    Returns a note saying what happened (weights do not affect timing).
    """
    from mnv3_layers.applications import weights as weights_lib

    helper = getattr(weights_lib, "copy_weights_from_keras_applications", None)
    if helper is None:
        return "not copied: weights.copy_weights_from_keras_applications not available"
    try:
        helper(source_model=ref, target_model=ours)
    except Exception as e:  # noqa: BLE001 - report, do not abort the benchmark
        return f"not copied: helper failed ({type(e).__name__}: {e})"
    size = ref.input_shape[1]
    x = np.random.default_rng(1).uniform(0, 255, (2, size, size, 3)).astype("float32")
    diff = float(np.max(np.abs(ours(x, training=False) - ref(x, training=False))))
    return f"copied with {helper.__name__}; max |ours - ref| on random input = {diff:.2e}"


# === a. Keras inference ===


def bench_inference(models, rounds, warmup, jit_compile):
    x = tf.constant(
        np.random.default_rng(0).uniform(0, 255, (1, IMAGE_SIZE, IMAGE_SIZE, 3)),
        tf.float32,
    )
    spec = [tf.TensorSpec((1, IMAGE_SIZE, IMAGE_SIZE, 3), tf.float32)]
    fns = {}
    for name, model in models.items():
        fn = tf.function(
            lambda t, m=model: m(t, training=False),
            input_signature=spec,
            jit_compile=jit_compile,
            autograph=False,
        )
        fns[name] = lambda fn=fn: fn(x).numpy()
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    return compare(interleaved(fns, rounds))


# === b. Keras training step ===


def bench_training(models, rounds, warmup, batch, size, jit_compile):
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, (batch, size, size, 3)).astype("float32")
    y = rng.integers(0, 1000, (batch,)).astype("int32")
    fns = {}
    for name, model in models.items():
        model.compile(
            optimizer=keras.optimizers.SGD(learning_rate=1e-3, momentum=0.9),
            loss="sparse_categorical_crossentropy",
            jit_compile=jit_compile,
        )
        fns[name] = lambda m=model: m.train_on_batch(x, y)
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    return compare(interleaved(fns, rounds))


# === c. TFLite ===


def convert_tflite(model):
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    # The converter prints the traced signature; keep the report readable.
    with contextlib.redirect_stdout(io.StringIO()):
        return converter.convert()


def op_histogram(tflite_bytes):
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    # No default delegate, so the graph is the converter's, not XNNPACK's.
    interpreter = Interpreter(
        model_content=tflite_bytes,
        experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
    )
    return collections.Counter(op["op_name"] for op in interpreter._get_ops_details())


def bench_tflite(models, rounds, warmup, out_dir):
    from ai_edge_litert.interpreter import Interpreter

    result = {"ops": {}, "bytes": {}}
    fns = {}
    x = np.random.default_rng(0).uniform(0, 255, (1, IMAGE_SIZE, IMAGE_SIZE, 3))
    x = x.astype("float32")
    for name, model in models.items():
        start = time.perf_counter()
        flat = convert_tflite(model)
        log(f"    converted {name} in {time.perf_counter() - start:.1f} s ({len(flat)} bytes)")
        path = os.path.join(out_dir, f"{model.name}_{name}.tflite")
        with open(path, "wb") as f:
            f.write(flat)
        result["ops"][name] = dict(sorted(op_histogram(flat).items()))
        result["bytes"][name] = len(flat)
        interpreter = Interpreter(model_path=path, num_threads=1)
        interpreter.allocate_tensors()
        inp = interpreter.get_input_details()[0]["index"]
        out = interpreter.get_output_details()[0]["index"]
        interpreter.set_tensor(inp, x)

        def run(interpreter=interpreter, out=out):
            interpreter.invoke()
            return interpreter.get_tensor(out)

        fns[name] = run
    outputs = {name: fn() for name, fn in fns.items()}
    result["output_max_abs_diff"] = float(np.max(np.abs(outputs["ours"] - outputs["ref"])))
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    result["latency"] = compare(interleaved(fns, rounds))
    return result


def print_op_histograms(ops):
    ours, ref = collections.Counter(ops["ours"]), collections.Counter(ops["ref"])
    log(
        f"    HARD_SWISH: ours {ours['HARD_SWISH']}, ref {ref['HARD_SWISH']};   "
        f"total ops: ours {sum(ours.values())}, ref {sum(ref.values())}"
    )
    log(f"    {'op type':24s} {'ours':>6s} {'ref':>6s} {'ours-ref':>9s}")
    for op in sorted(set(ours) | set(ref)):
        delta = ours[op] - ref[op]
        mark = f"{delta:+9d}" if delta else f"{'':9s}"
        log(f"    {op:24s} {ours[op]:6d} {ref[op]:6d} {mark}")


# === Main ===


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--variants", nargs="+", choices=sorted(VARIANTS),
                        default=["large", "small"])
    parser.add_argument("--tasks", nargs="+", choices=TASKS, default=list(TASKS))
    parser.add_argument("--runs", type=int, default=None,
                        help="timed rounds for inference and TFLite (default 100, quick 15)")
    parser.add_argument("--train-runs", type=int, default=None,
                        help="timed training rounds (default 16, quick 4)")
    parser.add_argument("--train-batch", type=int, default=None,
                        help="training batch size (default 16, quick 4)")
    parser.add_argument("--train-size", type=int, default=None,
                        help="training image size (default 224, quick 128)")
    parser.add_argument("--jit-compile", action="store_true",
                        help="XLA-compile the inference function and the train step "
                        "(both models alike; default off)")
    parser.add_argument("--quick", action="store_true", help="few runs, small training batch")
    parser.add_argument("--json", default=None, help="write the results to this JSON file")
    parser.add_argument("--tflite-dir", default=None,
                        help="where to keep the .tflite files (default: a temp dir)")
    args = parser.parse_args(argv)
    quick = args.quick
    args.runs = args.runs or (15 if quick else 100)
    args.train_runs = args.train_runs or (4 if quick else 16)
    args.train_batch = args.train_batch or (4 if quick else 16)
    args.train_size = args.train_size or (128 if quick else 224)
    args.warmup = 3 if quick else 10
    return args


def main(argv=None):
    args = parse_args(argv)
    log(
        f"python {platform.python_version()}, tensorflow {tf.__version__}, keras "
        f"{keras.__version__}, {os.cpu_count()} CPUs, {platform.machine()}"
    )
    log(
        f"runs={args.runs} train_runs={args.train_runs} train_batch={args.train_batch} "
        f"train_size={args.train_size} jit_compile={args.jit_compile} quick={args.quick}"
    )
    out_dir = args.tflite_dir or tempfile.mkdtemp(prefix="mnv3_bench_")
    os.makedirs(out_dir, exist_ok=True)
    results = {"config": {k: v for k, v in vars(args).items()}, "variants": {}}
    summary = []
    for variant in args.variants:
        ours_fn, ref_fn = VARIANTS[variant]
        keras.utils.clear_session()
        shape = (IMAGE_SIZE, IMAGE_SIZE, 3)
        models = {
            "ours": ours_fn(input_shape=shape, weights=None),
            "ref": ref_fn(input_shape=shape, weights=None),
        }
        res = {
            "params": {n: int(m.count_params()) for n, m in models.items()},
            "weights_note": copy_same_weights(models["ours"], models["ref"]),
        }
        log(f"\n=== MobileNetV3-{variant.title()} (alpha 1.0, {IMAGE_SIZE}x{IMAGE_SIZE}) ===")
        log(f"  params: ours {res['params']['ours']}, ref {res['params']['ref']}")
        log(f"  weights: {res['weights_note']}")
        if "infer" in args.tasks:
            res["inference"] = bench_inference(models, args.runs, args.warmup, args.jit_compile)
            print_comparison("a. Keras batch-1 inference (tf.function, training=False)",
                             res["inference"])
            summary.append((variant, "keras inference b1", res["inference"]["ratio"]))
        if "tflite" in args.tasks:
            log("  c. float TFLite (TFLiteConverter.from_keras_model)")
            tfl = bench_tflite(models, args.runs, args.warmup, out_dir)
            res["tflite"] = tfl
            print_op_histograms(tfl["ops"])
            log(f"    max |ours - ref| on the same input: {tfl['output_max_abs_diff']:.2e}"
                " (meaningful only if the weights were copied)")
            print_comparison("TFLite batch-1 latency, LiteRT interpreter, num_threads=1",
                             tfl["latency"])
            summary.append((variant, "tflite latency 1 thread", tfl["latency"]["ratio"]))
            ops_ours, ops_ref = (sum(tfl["ops"][n].values()) for n in ("ours", "ref"))
            summary.append((variant, "tflite op count", ops_ours / ops_ref))
        if "train" in args.tasks:
            # Last, so the inference and export parts see uncompiled models.
            if args.train_size != IMAGE_SIZE:
                train_shape = (args.train_size, args.train_size, 3)
                models = {
                    "ours": ours_fn(input_shape=train_shape, weights=None),
                    "ref": ref_fn(input_shape=train_shape, weights=None),
                }
                copy_same_weights(models["ours"], models["ref"])
            res["training"] = bench_training(
                models, args.train_runs, max(2, args.warmup // 3), args.train_batch,
                args.train_size, args.jit_compile,
            )
            print_comparison(
                f"b. training step (train_on_batch, batch {args.train_batch}, "
                f"{args.train_size}x{args.train_size}, SGD)",
                res["training"],
            )
            summary.append((variant, "keras train step", res["training"]["ratio"]))
        results["variants"][variant] = res

    log("\n=== Summary: ours / keras.applications (target <= 1.00) ===")
    log(f"  {'variant':8s} {'measure':26s} {'ratio':>7s}  verdict")
    for variant, measure, ratio in summary:
        verdict = "PASS" if ratio <= 1.0 else "OVER TARGET"
        log(f"  {variant:8s} {measure:26s} {ratio:7.3f}  {verdict}")
    results["summary"] = [
        {"variant": v, "measure": m, "ratio": r, "pass": r <= 1.0} for v, m, r in summary
    ]
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)
        log(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
