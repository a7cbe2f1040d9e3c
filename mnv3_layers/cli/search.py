"""`mnv3 search`: NetAdapt (paper section 4.2): shrink widths to a measured latency target."""

import importlib.util

from mnv3_layers.cli._args import (
    add_config_arguments,
    log,
    non_negative_int,
    positive_float,
    positive_int,
)

# The `TrainConfig` fields whose flags (and folder checks and loading) search shares.
CONFIG_FIELDS = ("data", "out", "val_data", "validation_split", "variant", "alpha",
                 "minimalistic", "image_size")


def add_parser(subparsers):
    """Adds `mnv3 search` when the latency-targeted width search is installed."""
    if importlib.util.find_spec("mnv3_layers.search") is None:
        return
    parser = subparsers.add_parser(
        "search",
        help="NetAdapt search: shrink widths until a latency target is met",
        description="NetAdapt-style search (paper section 4.2, mnv3_layers.search): shrinks "
        "expansion and bottleneck widths of a MobileNetV3, proposal by proposal, until the "
        "latency measured on this CPU (TFLite, batch 1) meets the target, fine-tuning on "
        "your images. Rerun with the same --out to continue an interrupted search.",
    )
    add_config_arguments(parser, CONFIG_FIELDS, defaults={"out": "out/search"})
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--target-ms", type=positive_float,
                        help="latency target in milliseconds")
    target.add_argument("--target-ratio", type=positive_float,
                        help="latency target as a fraction of the starting model's, in (0, 1)")
    for flag, kind, default, text in (
        ("--batch-size", positive_int, 32, "batch size"),
        ("--pretrain-steps", non_negative_int, 0, "training steps of the starting model"),
        ("--finetune-steps", non_negative_int, 50, "training steps per proposal"),
        ("--final-finetune-steps", non_negative_int, 200, "training steps of the result"),
        ("--max-iterations", positive_int, 50, "at most this many iterations"),
        ("--learning-rate", positive_float, 1e-3, "Adam learning rate"),
    ):
        parser.add_argument(flag, type=kind, default=default,
                            help=f"{text} (default: %(default)s)")
    parser.add_argument("--latency-table", default=None,
                        help="latency table cache file (default: the table's own path)")
    add_config_arguments(parser, ("run_eagerly", "seed"))
    parser.set_defaults(handler=run)


def run(args):
    from mnv3_layers import search, training

    # The folder checks and loading of `mnv3 train` (no augmentation).
    config = training.TrainConfig(
        **{name: getattr(args, name) for name in CONFIG_FIELDS},
        batch_size=args.batch_size, augment="none", seed=args.seed,
    )
    data = training.load_datasets(config, log=log)
    target = {"target_ms": args.target_ms} if args.target_ms else {
        "target_ratio": args.target_ratio}
    result = search.netadapt_search(
        data.train, args.out, validation_data=data.val, variant=args.variant,
        alpha=args.alpha, minimalistic=args.minimalistic, num_classes=len(data.class_names),
        latency_table=args.latency_table, pretrain_steps=args.pretrain_steps,
        finetune_steps=args.finetune_steps, final_finetune_steps=args.final_finetune_steps,
        max_iterations=args.max_iterations, batch_size=args.batch_size,
        learning_rate=args.learning_rate, run_eagerly=args.run_eagerly, seed=args.seed,
        **target,
    )
    print(result)
    log(f"classes (output order): {', '.join(data.class_names)}")
    return 0
