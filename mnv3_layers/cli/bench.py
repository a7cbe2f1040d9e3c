"""`mnv3 bench`: batch-1 latency of a `.keras` or `.tflite` model on this CPU."""

import json
import os

from mnv3_layers.cli._args import non_negative_int, positive_int


def add_parser(subparsers):
    parser = subparsers.add_parser(
        "bench",
        help="inference latency of a .keras or .tflite model on this CPU",
        description="Batch-1 latency: warm-up runs, then timed runs; prints the median and "
        "spread. The paper's protocol is a TFLite model on one thread.",
    )
    parser.add_argument("model", help=".keras or .tflite file")
    parser.add_argument("--runtime", choices=("keras", "tflite"), default=None,
                        help="keras or tflite (default: tflite for .tflite files, keras for "
                        ".keras files)")
    parser.add_argument("--threads", type=positive_int, default=1,
                        help="CPU threads (default: %(default)s)")
    parser.add_argument("--runs", type=positive_int, default=50,
                        help="timed runs (default: %(default)s)")
    parser.add_argument("--warmup", type=non_negative_int, default=10,
                        help="untimed warm-up runs (default: %(default)s)")
    parser.add_argument("--batch-size", type=positive_int, default=1,
                        help="batch size (default: %(default)s)")
    parser.add_argument("--image-size", type=positive_int, default=None,
                        help="input size for a model whose input size is unknown")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.set_defaults(handler=run)


def run(args):
    from mnv3_layers.latency import measure_latency

    if not os.path.isfile(args.model):
        raise FileNotFoundError(f"No such model file: {args.model!r}")
    runtime = args.runtime or ("keras" if args.model.endswith(".keras") else "tflite")
    input_shape = None if args.image_size is None else (args.image_size, args.image_size, 3)
    report = measure_latency(
        args.model, input_shape=input_shape, runtime=runtime, num_threads=args.threads,
        batch_size=args.batch_size, warmup=args.warmup, runs=args.runs,
    )
    print(json.dumps(report.to_dict(), indent=2) if args.json else report)
    return 0
