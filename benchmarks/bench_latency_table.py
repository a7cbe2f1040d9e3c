"""Per-block latency table: predicted vs measured end-to-end TFLite latency.

Goal (issue 5): for every variant, the table's prediction is within +-10 % of
the measured end-to-end latency.

For each variant (MobileNetV3-Large/Small, alpha 0.5-1.25, input 128-224,
minimalistic or not, the applications' `include_top=True` model with
preprocessing, `weights=None`):

1. predicted: `LatencyTable.predict(...)` - the sum of the variant's
   components (stem, one entry per bneck block, head), each measured alone
   as a float TFLite model (batch 1, 1 thread, LiteRT + XNNPACK), plus the
   measured fixed per-invoke overhead counted once per model (each
   component's own measurement includes one overhead, which is taken out).
   Each entry holds warm (back-to-back runs) and cold (cache flushed before
   each run) timings; the table's `cache` mode picks warm, cold, or
   `"mixed"` (the default: cold for the head, warm for stem and blocks).
2. measured: the whole model converted the same way (`convert_float_tflite`,
   same ops as `TFLiteConverter.from_keras_model`) and timed in the same
   kind of interpreter.

All components and whole models are timed in ONE interleaved run (rounds;
each round runs every model in turn), so slow changes in background load
hit predictions and measurements alike; the component timings are then
stored in the table (`--table`) and the predictions made from it. The
converted TFLite files are kept in `--models`, so a rerun only times.

Both clocks are printed: wall (`time.perf_counter`, the paper's latency)
and the calling thread's CPU time (`time.thread_time_ns`; with one thread
the interpreter works on the calling thread, so this leaves out the time
spent waiting for a core while other processes run). On a quiet machine
the two agree; on a shared one wall times of long runs are inflated far
more than those of the short per-component runs, so only the CPU clock's
errors mean anything there. `--clock` and `--cache` pick the verdict's
columns; every combination is summarized.

Usage:

    python benchmarks/bench_latency_table.py                      # all 12 variants
    python benchmarks/bench_latency_table.py --runs 50 --clock wall   # on a quiet machine
    python benchmarks/bench_latency_table.py --variants small-0.75-224 large-1.0-224
    python benchmarks/bench_latency_table.py --table /tmp/t.json --models /tmp/tflite
"""

import argparse
import json
import os
import platform
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

from mnv3_layers.applications import MobileNetV3Large, MobileNetV3Small  # noqa: E402
from mnv3_layers.latency_table import (  # noqa: E402
    CACHES,
    OVERHEAD_KEY,
    LatencyTable,
    TFLiteTimer,
    _batch_one,
    build_component,
    convert_float_tflite,
    model_configs,
    runtime_fingerprint,
    time_runners,
)

TOLERANCE = 0.10

# name -> (variant, alpha, minimalistic, input size)
VARIANTS = {
    "large-1.0-224": ("large", 1.0, False, 224),
    "large-0.75-224": ("large", 0.75, False, 224),
    "large-0.5-160": ("large", 0.5, False, 160),
    "large-1.25-192": ("large", 1.25, False, 192),
    "large-0.75-128": ("large", 0.75, False, 128),
    "large-1.0-224-min": ("large", 1.0, True, 224),
    "small-1.0-224": ("small", 1.0, False, 224),
    "small-0.75-224": ("small", 0.75, False, 224),
    "small-0.5-128": ("small", 0.5, False, 128),
    "small-1.25-160": ("small", 1.25, False, 160),
    "small-1.0-192-min": ("small", 1.0, True, 192),
    "small-0.75-160-min": ("small", 0.75, True, 160),
}


def log(*args):
    print(*args, flush=True)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS),
                        help=f"variants to run (default: all): {', '.join(VARIANTS)}")
    parser.add_argument("--runs", type=int, default=30, help="timed runs per model/component")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--clock", choices=("cpu", "wall"), default="cpu",
                        help="clock of the verdict (both are printed)")
    parser.add_argument("--cache", choices=CACHES, default="mixed",
                        help="table cache mode of the verdict (both are printed)")
    parser.add_argument("--statistic", choices=("median", "min"), default="median")
    parser.add_argument("--table", default=os.path.join("out", "bench_latency_table_cache.json"),
                        help="latency table cache file")
    parser.add_argument("--models", default=os.path.join("out", "bench_latency_table_models"),
                        help="folder caching the converted TFLite files")
    parser.add_argument("--results", default=os.path.join("out", "bench_latency_table.json"),
                        help="raw timings (JSON) of every component and model")
    args = parser.parse_args(argv)
    unknown = [v for v in args.variants if v not in VARIANTS]
    if unknown:
        parser.error(f"unknown variants {unknown}; choose from {list(VARIANTS)}")
    return args


def cached_flatbuffer(folder, key, build_model):
    """TFLite bytes of `build_model()`, converted once and kept in `folder`."""
    path = os.path.join(folder, key.replace("/", "__") + ".tflite")
    if os.path.exists(path):
        with open(path, "rb") as f:
            return f.read()
    flat = convert_float_tflite(build_model())
    os.makedirs(folder, exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(flat)
    os.replace(tmp, path)
    return flat


def build(name):
    variant, alpha, minimalistic, size = VARIANTS[name]
    fn = MobileNetV3Large if variant == "large" else MobileNetV3Small
    return fn(input_shape=(size, size, 3), alpha=alpha, minimalistic=minimalistic,
              weights=None)


def main(argv=None):
    args = parse_args(argv)
    log(f"python {sys.version.split()[0]}, {platform.platform()}")
    log(f"fingerprint: {runtime_fingerprint(1)}")
    log(f"load average: {os.getloadavg()}, cpus: {os.cpu_count()}")
    start = time.perf_counter()

    # 1. Convert every distinct component and every whole model (TFLite
    #    files cached in --models, so a rerun only times).
    all_configs = []
    for name in args.variants:
        variant, alpha, minimalistic, size = VARIANTS[name]
        all_configs += model_configs(variant, alpha, minimalistic, (size, size, 3))
    components = [OVERHEAD_KEY] + list({c.key: c for c in all_configs}.values())
    t0 = time.perf_counter()
    component_timers = [
        TFLiteTimer(cached_flatbuffer(args.models, c if c == OVERHEAD_KEY else c.key,
                                      lambda c=c: build_component(c)))
        for c in components
    ]
    model_timers = [
        TFLiteTimer(cached_flatbuffer(args.models, f"model/{name}",
                                      lambda name=name: _batch_one(build(name))))
        for name in args.variants
    ]
    log(f"{len(components)} components and {len(model_timers)} whole models ready in "
        f"{time.perf_counter() - t0:.0f} s (TFLite files in {args.models})")

    # 2. Time them all in one interleaved run (components warm and cold,
    #    whole models back to back), so both see the same background load;
    #    store the components in the table and predict from it.
    t0 = time.perf_counter()
    stats = time_runners(component_timers + model_timers, args.warmup, args.runs,
                         cold=[True] * len(component_timers) + [False] * len(model_timers))
    log(f"timed in {time.perf_counter() - t0:.0f} s")
    results = stats[len(component_timers):]
    tables = {
        (clock, cache): LatencyTable(args.table, warmup=args.warmup, runs=args.runs,
                                     statistic=args.statistic, clock=clock, cache=cache)
        for clock in ("cpu", "wall") for cache in CACHES
    }
    combos = list(tables)
    tables[combos[0]].record(components, stats[:len(component_timers)])
    predictions = {}
    for name in args.variants:
        variant, alpha, minimalistic, size = VARIANTS[name]
        predictions[name] = {}
        for combo, table in tables.items():
            table.load()
            predictions[name][combo] = table.predict(variant, alpha, minimalistic,
                                                     (size, size, 3))

    stat = args.statistic
    log("")
    log(f"{stat} ms, batch 1, 1 thread, float TFLite (LiteRT + XNNPACK); "
        "err = predicted / measured - 1 for the table's cache modes mixed / warm / cold")
    header = f"{'variant':<20}" + "".join(
        f" | {clock + ' meas':>9} {'pred':>8} {'mixed':>7} {'warm':>7} {'cold':>7}"
        for clock in ("cpu", "wall")
    )
    log(header)
    log("-" * len(header))
    errors = {combo: [] for combo in combos}
    for name, result in zip(args.variants, results):
        row = f"{name:<20}"
        for clock in ("cpu", "wall"):
            meas = result[f"{'cpu_' if clock == 'cpu' else ''}{stat}_ms"]
            row += f" | {meas:9.3f} {predictions[name][(clock, 'mixed')].total_ms:8.3f}"
            for cache in CACHES:
                err = predictions[name][(clock, cache)].total_ms / meas - 1
                errors[(clock, cache)].append(err)
                row += f" {100 * err:+6.1f}%"
        log(row)
    log("")
    for combo in combos:
        errs = errors[combo]
        within = sum(abs(e) <= TOLERANCE for e in errs)
        log(f"{combo[0]:>4} clock, {combo[1]:>5} cache: {within}/{len(errs)} within "
            f"+-{100 * TOLERANCE:.0f} %, max |err| {100 * max(abs(e) for e in errs):.1f} %, "
            f"mean err {100 * sum(errs) / len(errs):+.1f} %")
    chosen = (args.clock, args.cache)
    overhead = predictions[args.variants[0]][chosen].overhead_ms
    log(f"fixed per-invoke overhead counted once per model: {overhead:.4f} ms "
        f"({args.clock} clock)")
    verdict = all(abs(e) <= TOLERANCE for e in errors[chosen])
    log(f"goal (every prediction within +-10 %, {args.clock} clock, {args.cache} cache): "
        f"{'MET' if verdict else 'NOT MET'}")
    log(f"total time {time.perf_counter() - start:.0f} s; load average now {os.getloadavg()}")
    raw = {
        "variants": {name: {"config": VARIANTS[name], "measured": result,
                            "components": [c.key for c in model_configs(
                                *VARIANTS[name][:3], (VARIANTS[name][3],) * 2 + (3,))]}
                     for name, result in zip(args.variants, results)},
        "components": {c if c == OVERHEAD_KEY else c.key: s
                       for c, s in zip(components, stats[:len(component_timers)])},
        "load_average": os.getloadavg(),
    }
    os.makedirs(os.path.dirname(os.path.abspath(args.results)), exist_ok=True)
    with open(args.results, "w", encoding="utf-8") as f:
        json.dump(raw, f, indent=1)
    log(f"raw timings in {args.results}")
    return 0 if verdict else 1


if __name__ == "__main__":
    sys.exit(main())
