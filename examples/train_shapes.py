"""Main job: train MobileNetV3-Small on generated shapes, offline, on the CPU.

    python examples/train_shapes.py             # the same as `mnv3 demo --out out/train_shapes`
    python examples/train_shapes.py --smoke     # a short check (40 images, 1 epoch)

A thin wrapper over `mnv3_layers.training.run_demo` (the `mnv3 demo`
command): generates circle/square/triangle images as PNG folders, fine-tunes
`MobileNetV3Small` on them (Adam, warmup to 3e-3 then cosine decay, batch-norm
momentum 0.9, horizontal and vertical flips; 12 epochs of 1600 images at 64x64), prints
the validation accuracy in inference mode, exports float and int8 TFLite
files with their sizes, accuracy and single-thread latency, and writes
`report.json`, `model.keras` and training-curve plots into `--output`.
"""

import argparse
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from mnv3_layers import training  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", default="out/train_shapes", help="output folder")
    parser.add_argument("--num-images", type=int, default=None, help="default: 2000")
    parser.add_argument("--image-size", type=int, default=None, help="default: 64")
    parser.add_argument("--epochs", type=int, default=None, help="default: 12")
    parser.add_argument("--batch-size", type=int, default=None, help="default: 32")
    parser.add_argument("--alpha", type=float, default=None, help="default: 1.0")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--smoke", action="store_true", help="a short check run")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an earlier run of another configuration in --output")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    return training.run_demo(
        out=args.output,
        num_images=args.num_images,
        image_size=args.image_size,
        epochs=args.epochs,
        alpha=args.alpha,
        batch_size=args.batch_size,
        seed=args.seed,
        smoke=args.smoke,
        overwrite=args.overwrite,
    )


if __name__ == "__main__":
    main()
