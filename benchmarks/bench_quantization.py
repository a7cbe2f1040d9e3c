"""Side-by-side benchmark of quantization-aware training and int8 export.

Measures, in one run, for MobileNetV3-Large or -Small (alpha 1.0, 224x224,
the same random float weights in ours and in keras.applications, their
batch-norm statistics set from generated shapes images, see
`--bn-calibration`), and prints three ratios with their targets:

1. QAT train step: Keras-engine QAT model / tfmot-engine QAT model of the
   same float model (`train_on_batch`, same batch, SGD), interleaved round
   by round. Target <= 1.00.
2. File size: our int8 export (QAT, Keras engine) / our float export.
   Target <= 0.30.
3. Latency: our int8 export / `keras.applications` MobileNetV3
   post-training int8 (both through `export_tflite`, int8 input and output,
   batch 1, one thread, LiteRT interpreter), interleaved round by round,
   each model's runs in a round back to back (`--latency-block`, default 10:
   as `measure_latency` and TFLite's benchmark tool time a model). Target
   <= 1.00. Single interleaved runs (each model right after another, so
   colder) are printed for information.
   The same QAT model exported with `hard_swish="elementwise"` (each
   hard-swish as int8 ADD/MUL/MUL ops, which LiteRT's XNNPACK delegate
   runs; it does not take an int8 HARD_SWISH) is timed against the same
   reference and reported as a second verdict. The default file keeps one
   HARD_SWISH op per hard-swish, the same graph as keras.applications'.
   For information, our float model through the same post-training path
   (same calibration images) is timed against the same reference: it
   separates what the QAT ranges change from what our graph changes.

It also prints, per int8 file, the weight tensors quantized to all zeros,
the int8 vs float latency of our own model, the op histograms of the int8
exports and whether they are fully int8. What was measured, and why the
default int8 file can run slower than float on x86: `benchmarks/README.md`.

Wall-clock numbers alone are meaningless on a shared machine; the ratios are
measured side by side. The summary says PASS or OVER TARGET as measured.

Usage:

    python benchmarks/bench_quantization.py --json /tmp/bench_quant.json
    python benchmarks/bench_quantization.py --variant small --quick
"""

import argparse
import json
import os
import platform
import sys
import tempfile
import time
import traceback

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from mnv3_layers import applications as ours_apps  # noqa: E402
from mnv3_layers.applications.weights import copy_weights_from_keras_applications  # noqa: E402
from mnv3_layers.datasets import make_shapes_classification  # noqa: E402
from mnv3_layers.latency import prepare  # noqa: E402
from mnv3_layers.quantization import (  # noqa: E402
    export_tflite,
    inspect_tflite,
    quantize_model,
)

VARIANTS = {
    "large": (ours_apps.MobileNetV3Large, keras.applications.MobileNetV3Large),
    "small": (ours_apps.MobileNetV3Small, keras.applications.MobileNetV3Small),
}
TARGETS = {"train_step": 1.00, "size": 0.30, "latency_vs_keras_ptq": 1.00,
           "latency_vs_keras_ptq_elementwise": 1.00}


def log(*args):
    print(*args, flush=True)


def interleaved(fns, rounds, block=1, seed=0):
    """Runs each callable `rounds * block` times, interleaved round by round.

    Each round runs every callable in turn, `block` timed times back to
    back, in a new seeded random order: every callable then follows every
    other one about equally often. (A fixed order, even reversed every other
    round, always puts the same model right after, say, the 22 MB float
    model, whose weights evict the next model's from cache.)
    """
    names = list(fns)
    times = {name: [] for name in names}
    rng = np.random.default_rng(seed)
    for _ in range(rounds):
        for name in [names[j] for j in rng.permutation(len(names))]:
            fn, record = fns[name], times[name]
            for _ in range(block):
                start = time.perf_counter()
                fn()
                record.append(time.perf_counter() - start)
    return times


def compare(times, a, b):
    ta, tb = np.asarray(times[a]) * 1e3, np.asarray(times[b]) * 1e3
    paired = ta / tb
    return {
        a: {"median_ms": float(np.median(ta)), "p10_ms": float(np.percentile(ta, 10)),
            "p90_ms": float(np.percentile(ta, 90)), "runs": int(ta.size)},
        b: {"median_ms": float(np.median(tb)), "p10_ms": float(np.percentile(tb, 10)),
            "p90_ms": float(np.percentile(tb, 90)), "runs": int(tb.size)},
        "ratio": float(np.median(ta) / np.median(tb)),
        "paired_ratio_p10": float(np.percentile(paired, 10)),
        "paired_ratio_p90": float(np.percentile(paired, 90)),
    }


def print_compare(title, result, a, b):
    log(f"  {title}")
    for name in (a, b):
        s = result[name]
        log(f"    {name:<22s} median {s['median_ms']:9.3f} ms  p10 {s['p10_ms']:9.3f}  "
            f"p90 {s['p90_ms']:9.3f}  (n={s['runs']})")
    log(f"    ratio {a}/{b} = {result['ratio']:.3f}  (paired p10 "
        f"{result['paired_ratio_p10']:.3f}, p90 {result['paired_ratio_p90']:.3f})")


def recalibrate_batch_norm(model, num_images, size):
    """Sets every BatchNormalization's moving mean/variance to those of one batch.

    A randomly initialized model keeps moving mean 0 and variance 1, which
    its convolutions' outputs do not have: in inference mode activations
    shrink or grow block after block, and post-training int8 calibration on
    such a model sees degenerate ranges (e.g. squeezed SE inputs far smaller
    than the gate's +3 bias, whose int8 weights then round to zero). One
    forward pass in training mode with momentum 0 gives each layer the
    statistics of real inputs (generated shapes), as a trained model has.
    """
    x, _ = make_shapes_classification(num_images, image_size=size, seed=7)
    # keras.applications' MobileNetV3 is a flat functional model.
    layers = [layer for layer in model.layers
              if isinstance(layer, keras.layers.BatchNormalization)]
    momenta = [layer.momentum for layer in layers]
    try:
        for layer in layers:
            layer.momentum = 0.0
        model(x.astype("float32"), training=True)
    finally:
        for layer, momentum in zip(layers, momenta):
            layer.momentum = momentum


def bench_train_steps(float_model, args):
    """Keras-engine vs tfmot-engine QAT `train_on_batch` on the same model."""
    rng = np.random.default_rng(0)
    size = args.image_size
    x = make_shapes_classification(args.train_batch, image_size=size, seed=0)[0]
    x = x.astype("float32")
    y = rng.integers(0, 1000, (args.train_batch,)).astype("int32")
    qat_keras = quantize_model(float_model, engine="keras")
    qat_keras.compile(optimizer=keras.optimizers.SGD(1e-3, momentum=0.9),
                      loss="sparse_categorical_crossentropy", jit_compile=False)
    fns = {"keras_engine": lambda: qat_keras.train_on_batch(x, y)}
    notes, qat_tfmot = [], None
    try:
        import tf_keras

        qat_tfmot = quantize_model(float_model, engine="tfmot")
        qat_tfmot.compile(optimizer=tf_keras.optimizers.SGD(1e-3, momentum=0.9),
                          loss="sparse_categorical_crossentropy")
        fns["tfmot_engine"] = lambda: qat_tfmot.train_on_batch(x, y)
    except Exception as e:  # noqa: BLE001 - report, do not abort the benchmark
        notes.append(f"tfmot engine unavailable: {type(e).__name__}: {e}")
        log(f"  {notes[-1]}")
        if args.verbose:
            traceback.print_exc()
    start = time.perf_counter()
    for _ in range(args.train_warmup):  # the first call traces the step
        for fn in fns.values():
            fn()
    log(f"  warm-up (tracing) took {time.perf_counter() - start:.1f} s")
    times = interleaved(fns, args.train_runs)
    if "tfmot_engine" not in fns:
        ms = np.asarray(times["keras_engine"]) * 1e3
        return {"keras_engine": {"median_ms": float(np.median(ms))}, "ratio": None,
                "notes": notes}, qat_keras, qat_tfmot
    result = compare(times, "keras_engine", "tfmot_engine")
    result["notes"] = notes
    print_compare(f"QAT train step (batch {args.train_batch}, {size}x{size})",
                  result, "keras_engine", "tfmot_engine")
    return result, qat_keras, qat_tfmot


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variant", choices=sorted(VARIANTS), default="large")
    parser.add_argument("--alpha", type=float, default=1.0)
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--train-batch", type=int, default=8)
    parser.add_argument("--train-runs", type=int, default=10)
    parser.add_argument("--train-warmup", type=int, default=2)
    parser.add_argument("--latency-runs", type=int, default=300)
    parser.add_argument("--latency-block", type=int, default=10,
                        help="timed runs back to back per model and round (1: single "
                             "interleaved runs only)")
    parser.add_argument("--calibration-samples", type=int, default=32)
    parser.add_argument("--bn-calibration", type=int, default=32,
                        help="generated images that set the random model's batch-norm "
                             "moving statistics before anything else (0: keep the "
                             "initial mean 0 / variance 1)")
    parser.add_argument("--quick", action="store_true", help="fewer rounds")
    parser.add_argument("--json", help="write the results to this file")
    parser.add_argument("--tflite-dir", help="keep the .tflite files here")
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args(argv)
    if args.quick:
        args.train_runs, args.latency_runs = 4, 50

    ours_cls, ref_cls = VARIANTS[args.variant]
    size = args.image_size
    shape = (size, size, 3)
    folder = args.tflite_dir or tempfile.mkdtemp(prefix="bench_quant_")
    os.makedirs(folder, exist_ok=True)
    results = {
        "variant": args.variant, "alpha": args.alpha, "image_size": size,
        "machine": {"python": sys.version.split()[0], "platform": platform.platform(),
                    "cpu_count": os.cpu_count(), "load_average": _load_average()},
    }
    log(f"MobileNetV3-{args.variant.capitalize()} alpha {args.alpha}, {size}x{size}")

    # Both sides start from the same random float weights (keras.applications'
    # copied into ours), so the int8 files differ only in how they were made.
    ref = ref_cls(input_shape=shape, alpha=args.alpha, weights=None)
    if args.bn_calibration:
        log(f"batch-norm statistics set from {args.bn_calibration} generated shapes images")
        recalibrate_batch_norm(ref, args.bn_calibration, size)
    float_model = ours_cls(input_shape=shape, alpha=args.alpha, weights=None)
    copy_weights_from_keras_applications(source_model=ref, target_model=float_model)
    check = np.random.default_rng(3).uniform(0, 255, (2,) + shape).astype("float32")
    results["float_max_abs_diff_vs_keras_apps"] = float(np.max(np.abs(
        np.asarray(float_model(check, training=False)) - np.asarray(ref(check, training=False))
    )))
    log(f"same float weights as keras.applications: max |ours - ref| = "
        f"{results['float_max_abs_diff_vs_keras_apps']:.2e}")

    # === 1. QAT train step ===
    log("1. QAT train step")
    train, qat_keras, qat_tfmot = bench_train_steps(float_model, args)
    results["train_step"] = train

    # === 2. Size ===
    log("2. Export")
    paths = {
        "ours_float": os.path.join(folder, "ours_float.tflite"),
        "ours_int8": os.path.join(folder, "ours_qat_int8.tflite"),
        "keras_apps_ptq_int8": os.path.join(folder, "keras_apps_ptq_int8.tflite"),
        "ours_ptq_int8": os.path.join(folder, "ours_ptq_int8.tflite"),
    }
    export_tflite(float_model, paths["ours_float"])
    export_tflite(qat_keras, paths["ours_int8"], quantization="int8", int8_io=True)
    # The same QAT model (same trained weights and ranges: the element-wise
    # hard-swish adds only fixed-range fake-quant, no variables) with each
    # hard-swish written as ADD/MUL/MUL, which XNNPACK runs in int8.
    qat_elementwise = quantize_model(float_model, engine="keras", hard_swish="elementwise")
    qat_elementwise.set_weights(qat_keras.get_weights())
    paths["ours_int8_elementwise"] = os.path.join(folder, "ours_qat_int8_elementwise.tflite")
    export_tflite(qat_elementwise, paths["ours_int8_elementwise"], quantization="int8",
                  int8_io=True)
    calibration = make_shapes_classification(
        args.calibration_samples, image_size=size, seed=1)[0].astype("float32")
    export_tflite(ref, paths["keras_apps_ptq_int8"], quantization="int8",
                  representative_data=calibration, int8_io=True)
    # Our float model through the same post-training path (information: it
    # separates what the QAT ranges change from what our graph changes).
    export_tflite(float_model, paths["ours_ptq_int8"], quantization="int8",
                  representative_data=calibration, int8_io=True)
    if qat_tfmot is not None:
        paths["tfmot_int8"] = os.path.join(folder, "tfmot_qat_int8.tflite")
        try:
            export_tflite(qat_tfmot, paths["tfmot_int8"], quantization="int8", int8_io=True)
        except Exception as e:  # noqa: BLE001
            log(f"  tfmot export failed: {type(e).__name__}: {e}")
            paths.pop("tfmot_int8")
    sizes = {name: os.path.getsize(path) for name, path in paths.items()}
    results["sizes_bytes"] = sizes
    results["size_ratio"] = sizes["ours_int8"] / sizes["ours_float"]
    log("  sizes (KiB): " + ", ".join(f"{k} {v / 1024:.1f}" for k, v in sizes.items()))
    log(f"  int8 / float size = {results['size_ratio']:.3f}")
    reports = {name: inspect_tflite(path) for name, path in paths.items()}
    results["op_histograms"] = {name: r.op_histogram for name, r in reports.items()}
    results["fully_int8"] = {name: r.is_fully_int8 for name, r in reports.items()}
    results["zeroed_weight_tensors"] = {
        name: [f"{w['op']}#{w['index']} {w['zero_channels']}/{w['channels']}"
               for w in r.zeroed_weights] for name, r in reports.items()}
    for name, report in reports.items():
        zeroed = report.zeroed_weights
        log(f"  {name}: {report.num_ops} ops, fully int8: {report.is_fully_int8}, "
            f"weight tensors with all-zero int8 channels: {len(zeroed)}")
        log("    " + ", ".join(f"{k} {v}" for k, v in report.op_histogram.items()))

    # === 3. Latency ===
    log("3. TFLite latency (batch 1, 1 thread, LiteRT)")
    runners = {name: prepare(path, runtime="tflite", num_threads=1)
               for name, path in paths.items() if name != "tfmot_int8"}
    for runner in runners.values():
        for _ in range(max(5, args.latency_runs // 10)):
            runner.run()
    fns = {name: r.run for name, r in runners.items()}
    # Two protocols, both interleaved: blocks of `--latency-block` runs back
    # to back (how `measure_latency` and TFLite's benchmark tool time a
    # model: its data stays in cache from run to run; the verdict), and
    # single runs (each model runs right after another, colder; information).
    block = max(1, args.latency_block)
    times = interleaved(fns, max(1, args.latency_runs // block), block)
    single = interleaved(fns, args.latency_runs)
    single_vs_ref = compare(single, "ours_int8", "keras_apps_ptq_int8")
    vs_ref = compare(times, "ours_int8", "keras_apps_ptq_int8")
    vs_float = compare(times, "ours_int8", "ours_float")
    ptq_vs_ref = compare(times, "ours_ptq_int8", "keras_apps_ptq_int8")
    elementwise_vs_ref = compare(times, "ours_int8_elementwise", "keras_apps_ptq_int8")
    elementwise_vs_float = compare(times, "ours_int8_elementwise", "ours_float")
    print_compare(f"ours int8 vs keras.applications PTQ int8 (blocks of {block} runs)",
                  vs_ref, "ours_int8", "keras_apps_ptq_int8")
    print_compare("ours int8 vs keras.applications PTQ int8 (single interleaved runs, "
                  "information)", single_vs_ref, "ours_int8", "keras_apps_ptq_int8")
    results["latency_vs_keras_ptq_single_runs"] = single_vs_ref
    print_compare("ours int8 vs ours float (for information)", vs_float,
                  "ours_int8", "ours_float")
    print_compare("ours post-training int8 vs keras.applications PTQ int8 (information: "
                  "same path, same calibration images)", ptq_vs_ref,
                  "ours_ptq_int8", "keras_apps_ptq_int8")
    results["latency_ours_ptq_vs_keras_ptq"] = ptq_vs_ref
    print_compare('ours int8 with hard_swish="elementwise" vs keras.applications PTQ int8 '
                  f"(blocks of {block} runs)", elementwise_vs_ref,
                  "ours_int8_elementwise", "keras_apps_ptq_int8")
    print_compare('ours int8 with hard_swish="elementwise" vs ours float (information)',
                  elementwise_vs_float, "ours_int8_elementwise", "ours_float")
    results["latency_elementwise_vs_keras_ptq"] = elementwise_vs_ref
    results["latency_elementwise_vs_float"] = elementwise_vs_float
    results["latency_vs_keras_ptq"] = vs_ref
    results["latency_int8_vs_float"] = vs_float

    # === Summary ===
    ratios = {
        "train_step": train["ratio"],
        "size": results["size_ratio"],
        "latency_vs_keras_ptq": vs_ref["ratio"],
        "latency_vs_keras_ptq_elementwise": elementwise_vs_ref["ratio"],
    }
    results["ratios"] = ratios
    log("Summary (measured side by side; the machine may be shared):")
    for name, value in ratios.items():
        if value is None:
            verdict = "NOT MEASURED"
            text = "n/a"
        else:
            verdict = "PASS" if value <= TARGETS[name] else "OVER TARGET"
            text = f"{value:.3f}"
        log(f"  {name:<34s} {text:>7s}  target <= {TARGETS[name]:.2f}  {verdict}")
    log("  (latency_vs_keras_ptq: our default int8 file, one HARD_SWISH op per hard-swish, "
        "the same graph as keras.applications'; _elementwise: hard_swish=\"elementwise\")")
    log(f"  int8 / float latency (ours, information): {vs_float['ratio']:.3f}; "
        f"with hard_swish=\"elementwise\": {elementwise_vs_float['ratio']:.3f}")
    log(f"  ours int8 / keras.applications PTQ int8 latency, single interleaved runs "
        f"(information): {single_vs_ref['ratio']:.3f}")
    log(f"  ours PTQ int8 / keras.applications PTQ int8 latency (information): "
        f"{ptq_vs_ref['ratio']:.3f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)
    return results


def _load_average():
    try:
        return list(os.getloadavg())
    except OSError:
        return None


if __name__ == "__main__":
    main()
