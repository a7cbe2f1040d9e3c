"""Latency-targeted width search (NetAdapt, paper section 4.2) on generated shapes, offline.

    python examples/latency_search.py --smoke          # tiny table and model, < 60 s
    python examples/latency_search.py                  # Small 0.75, 64x64: 30+ min, 2 cores

1. Generates circle/square/triangle images (`mnv3_layers.datasets`).
2. Builds a per-block latency table of this CPU (`LatencyTable`, cached in
   `--table`; float TFLite, batch 1, 1 thread).
3. Runs `mnv3_layers.search.netadapt_search`: trains the starting model
   for `--pretrain-steps`, then shrinks expansion and bottleneck widths until
   the predicted (calibrated) latency is `--target-ratio` x the starting
   model's, fine-tuning every proposal `--finetune-steps` steps, and
   fine-tunes the result `--final-steps` steps.
4. Prints the result and checks that `architecture.json` builds a
   `MobileNetV3Backbone` and that `model.keras` reloads.

`--smoke` uses a three-block custom table at 96x96 with a handful of
steps: it shows the mechanics (files, resumable state, log), not accuracy.
Rerunning with the same `--output` continues an interrupted search (or
returns the finished one).
"""

import argparse
import json
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from mnv3_layers.applications import MobileNetV3Backbone  # noqa: E402
from mnv3_layers.architecture.block_spec import (  # noqa: E402
    ArchitectureSpec,
    BlockSpec,
    LastStageSpec,
    StemSpec,
)
from mnv3_layers.datasets import make_shapes_classification  # noqa: E402
from mnv3_layers.latency_table import LatencyTable  # noqa: E402
from mnv3_layers.search import architecture_to_dict, netadapt_search  # noqa: E402

# A three-block table for the smoke run: stem, a stride-2 block, a residual
# block with SE, a stride-2 block, the last stage.
TINY = ArchitectureSpec(
    name="tiny",
    stem=StemSpec(16, 3, 2, "hard_swish"),
    blocks=(
        BlockSpec(3, 96, 16, False, "relu", 2),
        BlockSpec(3, 96, 16, True, "hard_swish", 1),
        BlockSpec(3, 128, 24, False, "hard_swish", 2),
    ),
    last_stage=LastStageSpec(64, 1024, "hard_swish"),
)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true",
                        help="tiny table, tiny model, few steps (< 60 s)")
    parser.add_argument("--output", default=os.path.join("out", "latency_search"))
    parser.add_argument("--table", default=None,
                        help="latency table file (default: <output>/latency_table.json)")
    parser.add_argument("--variant", default="small", choices=("small", "large"))
    parser.add_argument("--alpha", type=float, default=0.75)
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--num-images", type=int, default=1200)
    parser.add_argument("--target-ratio", type=float, default=0.8)
    parser.add_argument("--delta", type=float, default=0.1,
                        help="each iteration cuts at least this fraction of the latency")
    parser.add_argument("--pretrain-steps", type=int, default=400)
    parser.add_argument("--finetune-steps", type=int, default=20)
    parser.add_argument("--final-steps", type=int, default=300)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--runs", type=int, default=30, help="timed runs per latency entry")
    parser.add_argument("--clock", choices=("wall", "cpu"), default="cpu",
                        help="latency clock (cpu: robust on a shared machine)")
    parser.add_argument("--kinds", nargs="+", default=["expansion", "bottleneck"],
                        choices=("expansion", "bottleneck"), help="proposal kinds")
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    if args.smoke:
        args.image_size, args.num_images, args.batch_size = 96, 48, 8
        args.pretrain_steps, args.finetune_steps, args.final_steps = 2, 1, 1
        args.runs, args.target_ratio, args.delta = 3, 0.85, 0.1
        args.kinds = ["expansion"]  # Fewer proposals; tests cover bottleneck ones.
    if args.num_images < 10:
        raise ValueError(f"`--num-images` must be >= 10. Received: {args.num_images}")
    start = time.perf_counter()
    os.makedirs(args.output, exist_ok=True)
    images, labels = make_shapes_classification(
        args.num_images, image_size=args.image_size, seed=args.seed
    )
    val_images, val_labels = make_shapes_classification(
        max(args.num_images // 4, 8), image_size=args.image_size, seed=args.seed + 1
    )
    table = LatencyTable(
        args.table or os.path.join(args.output, "latency_table.json"),
        warmup=1 if args.smoke else 5, runs=args.runs, clock=args.clock,
    )
    result = netadapt_search(
        (images, labels),
        args.output,
        validation_data=(val_images, val_labels),
        target_ratio=args.target_ratio,
        variant=TINY if args.smoke else args.variant,
        alpha=1.0 if args.smoke else args.alpha,
        latency_table=table,
        delta_ratio=args.delta,
        pretrain_steps=args.pretrain_steps,
        finetune_steps=args.finetune_steps,
        final_finetune_steps=args.final_steps,
        batch_size=args.batch_size,
        proposal_kinds=tuple(args.kinds),
        calibrate=True,
        run_eagerly=args.smoke,
        seed=args.seed,
    )
    print(result)

    # The block table builds a backbone, and the saved model reloads.
    with open(result.architecture_path, encoding="utf-8") as f:
        architecture = json.load(f)
    backbone = MobileNetV3Backbone(
        variant=architecture, input_shape=(args.image_size, args.image_size, 3)
    )
    reloaded = keras.saving.load_model(result.model_path)
    probe = val_images[:4]
    reload_diff = float(np.max(np.abs(
        np.asarray(reloaded.predict(probe, verbose=0))
        - np.asarray(result.model.predict(probe, verbose=0))
    )))
    report = {
        **{k: v for k, v in result.summary().items() if k != "history"},
        "backbone_output_shape": list(backbone.output_shape[1:]),
        "reload_max_abs_diff": reload_diff,
        "seconds": time.perf_counter() - start,
    }
    report["architecture"] = architecture_to_dict(result.spec)
    with open(os.path.join(args.output, "report.json"), "w", encoding="utf-8") as f:
        json.dump(report, f, indent=1)
    print(f"done in {report['seconds']:.0f} s; report in {args.output}/report.json")
    return report


if __name__ == "__main__":
    main()
