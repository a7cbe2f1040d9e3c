"""`mnv3 demo`: the offline demo on generated shapes images (`training.run_demo`)."""

import os

from mnv3_layers.cli._args import log, positive_float, positive_int


def add_parser(subparsers):
    from mnv3_layers.training import DEMO_DEFAULTS, DEMO_SMOKE

    parser = subparsers.add_parser(
        "demo",
        help="offline demo: fine-tune MobileNetV3-Small on generated shapes, export int8",
        description="Generates circle/square/triangle images (no network), fine-tunes "
        "MobileNetV3-Small on them, prints the validation accuracy, exports float and int8 "
        "TFLite files, prints their sizes and single-thread latency, and writes "
        "report.json and training-curve plots into --out.",
    )
    parser.add_argument("--out", default="out/demo", help="output folder (default: %(default)s)")
    for name, kind, text in (
        ("num-images", positive_int, "generated images in all, 80%% train / 20%% validation"),
        ("image-size", positive_int, "image size in pixels"),
        ("epochs", positive_int, "epochs"),
        ("alpha", positive_float, "width multiplier"),
        ("batch-size", positive_int, "batch size"),
    ):
        default = DEMO_DEFAULTS[name.replace("-", "_")]
        parser.add_argument(f"--{name}", type=kind, default=None,
                            help=f"{text} (default: {default})")
    parser.add_argument("--seed", type=int, default=0, help="seed (default: %(default)s)")
    parser.add_argument("--smoke", action="store_true",
                        help="a short check that everything works: "
                        f"{DEMO_SMOKE['num_images']} images of {DEMO_SMOKE['image_size']}x"
                        f"{DEMO_SMOKE['image_size']}, alpha {DEMO_SMOKE['alpha']}, "
                        f"{DEMO_SMOKE['epochs']} epoch, eager training steps")
    parser.add_argument("--overwrite", action="store_true",
                        help="start over: remove an earlier demo from --out")
    parser.set_defaults(handler=run)


def run(args):
    from mnv3_layers import training

    training.run_demo(
        out=args.out, num_images=args.num_images, image_size=args.image_size,
        epochs=args.epochs, alpha=args.alpha, batch_size=args.batch_size, seed=args.seed,
        smoke=args.smoke, overwrite=args.overwrite, log=log,
    )
    log(f"outputs in {os.path.abspath(args.out)}")
    return 0
