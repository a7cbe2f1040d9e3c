"""The `mnv3` command line (also `python -m mnv3_layers`).

    mnv3 demo                               # offline: generated shapes -> model, int8 file
    mnv3 train --data photos/ --out runs/a  # fine-tune on a folder (one sub-folder per class)
    mnv3 evaluate --model runs/a/model.keras --data photos_test/
    mnv3 export --model runs/a/model.keras --quantization int8 --data photos/
    mnv3 bench runs/a/model_int8.tflite        # batch-1, single-thread latency
    mnv3 summary --variant small --image-size 224
    mnv3 search --data photos/ --target-ratio 0.8   # NetAdapt: shrink widths to a latency target

Each subcommand (one module in `mnv3_layers.cli`) has `--help`. Exit status 2:
bad arguments, 1: a value the library rejects (`--traceback` for the trace).
"""

import argparse
import os
import sys

from mnv3_layers.cli import bench, demo, evaluate, export, search, summary, train
from mnv3_layers.cli.train import train_config_from_args  # noqa: F401 (its old path)

EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

COMMANDS = (demo, train, evaluate, export, bench, summary, search)


def build_parser():
    """The `argparse` parser of `mnv3` (one sub-parser per subcommand module)."""
    from mnv3_layers import __version__

    parser = argparse.ArgumentParser(
        prog="mnv3",
        description="MobileNetV3 (Howard et al., ICCV 2019) as Keras 3 layers: fine-tune, "
        "quantize to int8, export to TFLite, measure latency.",
        epilog="Run `mnv3 COMMAND --help` for the options of a command.",
    )
    parser.add_argument("--version", action="version", version=f"mnv3_layers {__version__}")
    parser.add_argument("--traceback", action="store_true",
                        help="show the full Python traceback on errors")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True
    for command in COMMANDS:
        command.add_parser(subparsers)
    return parser


def _expected_errors():
    from mnv3_layers.applications.weights import WeightsDownloadError

    return (ValueError, TypeError, OSError, ImportError, WeightsDownloadError)


def main(argv=None):
    """Runs `mnv3` with `argv` (default: `sys.argv[1:]`); returns the exit status.

    Example:

    >>> from mnv3_layers.cli import main
    >>> main(["summary", "--variant", "small", "--alpha", "0.75"])  # doctest: +ELLIPSIS
    MobileNetV3-small alpha=0.75 ...
    total ...2,051,552  43,399,344
    ...
    0
    """
    args = build_parser().parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        return int(args.handler(args) or 0)
    except KeyboardInterrupt:
        print(f"mnv3 {args.command}: interrupted. Rerun the same command to resume "
              "(train and demo continue from the last finished epoch).", file=sys.stderr)
        return EXIT_INTERRUPTED
    except _expected_errors() as error:
        if args.traceback:
            raise
        print(f"mnv3 {args.command}: error: {error}", file=sys.stderr)
        return EXIT_ERROR


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
