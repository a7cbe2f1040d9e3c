"""`mnv3 summary`: the parameter and multiply-add table of a variant (no model is built)."""

import json

from mnv3_layers.cli._args import add_config_arguments, positive_int

MODEL_FIELDS = ("variant", "alpha", "minimalistic", "image_size")


def add_parser(subparsers):
    parser = subparsers.add_parser(
        "summary",
        help="parameters and multiply-adds per block of a variant",
        description="Parameter and multiply-add table of a MobileNetV3 variant, computed "
        "from its block table (no model is built).",
    )
    add_config_arguments(parser, MODEL_FIELDS)
    parser.add_argument("--classes", type=positive_int, default=1000,
                        help="classifier width (default: %(default)s)")
    parser.add_argument("--no-top", action="store_true",
                        help="without the pooled head and the classifier")
    parser.add_argument("--output-stride", type=int, choices=(8, 16, 32), default=32,
                        help="output stride (16 and 8 dilate the tail; default: %(default)s)")
    parser.add_argument("--json", action="store_true", help="print the profile as JSON")
    parser.set_defaults(handler=run)


def run(args):
    from mnv3_layers.profile import profile

    report = profile(
        args.variant, alpha=args.alpha, minimalistic=args.minimalistic,
        input_size=args.image_size, include_top=not args.no_top, classes=args.classes,
        output_stride=args.output_stride,
    )
    print(json.dumps(report.to_dict(), indent=2) if args.json else report)
    return 0
