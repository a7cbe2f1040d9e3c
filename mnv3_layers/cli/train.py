"""`mnv3 train`: fine-tune on a folder of images; the flags are the `TrainConfig` fields."""

import dataclasses
import os

from mnv3_layers.cli._args import add_config_arguments, log


def add_parser(subparsers):
    from mnv3_layers.training import TrainConfig

    parser = subparsers.add_parser(
        "train",
        help="fine-tune on a folder of images (one sub-folder per class)",
        description="Fine-tunes MobileNetV3 on DIR/<class>/*.jpg|png|... (or DIR/train + "
        "DIR/val, or --val-data). Checks every image before training, checkpoints every "
        "epoch and resumes when rerun with the same --out. Writes model.keras, "
        "labels.json, metrics.json, logs/training_log.csv, logs/tensorboard/ and the "
        "requested TFLite files into --out.",
    )
    add_config_arguments(parser, [f.name for f in dataclasses.fields(TrainConfig)])
    parser.add_argument("--overwrite", action="store_true",
                        help="start over: remove an earlier run from --out (other files there "
                        "are kept); without it, a rerun resumes and another configuration is "
                        "refused")
    parser.set_defaults(handler=run)


def train_config_from_args(args):
    """The `TrainConfig` of parsed `mnv3 train` arguments (one flag per field)."""
    from mnv3_layers.training import TrainConfig

    return TrainConfig(**{f.name: getattr(args, f.name) for f in dataclasses.fields(TrainConfig)})


def run(args):
    from mnv3_layers import training

    config = train_config_from_args(args)
    metrics = training.train(config, overwrite=args.overwrite, log=log)
    log(training.format_report(metrics))
    log(f"outputs in {os.path.abspath(config.out)}")
    return 0
