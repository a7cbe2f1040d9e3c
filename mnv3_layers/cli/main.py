"""The `mnv3` command line (also `python -m mnv3_layers`).

    mnv3 demo                               # offline: generated shapes -> model, int8 file
    mnv3 train --data photos/ --out runs/a  # fine-tune on a folder (one sub-folder per class)
    mnv3 evaluate --model runs/a/model.keras --data photos_test/
    mnv3 export --model runs/a/model.keras --quantization int8 --data photos/
    mnv3 bench runs/a/model_int8.tflite        # batch-1, single-thread latency
    mnv3 summary --variant small --image-size 224
    mnv3 search --data photos/ --target-ratio 0.8   # NetAdapt: shrink widths to a latency target

Every subcommand has `--help`. Bad arguments exit with status 2 (argparse)
or 1 (a value the library rejects), with a one-line message; `--traceback`
shows the full Python traceback instead.

The commands are thin layers over `mnv3_layers.training`,
`mnv3_layers.quantization`, `mnv3_layers.latency` and `mnv3_layers.profile`.
"""

import argparse
import json
import os
import sys

EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


# === Argument types (argparse turns their errors into exit status 2) ===


def _positive_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}")
    return value


def _non_negative_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"must be a non-negative integer, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be a non-negative integer, got {text!r}")
    return value


def _positive_float(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text!r}")
    return value


def _fraction(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number in [0, 1), got {text!r}") from None
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"must be a number in [0, 1), got {text!r}")
    return value


def _exports(text):
    from mnv3_layers.training import EXPORTS

    kinds = [k.strip() for k in text.split(",") if k.strip()]
    for kind in kinds:
        if kind not in EXPORTS:
            raise argparse.ArgumentTypeError(
                f"must be one or more of {', '.join(EXPORTS)} (comma-separated), got {text!r}"
            )
    return kinds


def _weights(text):
    return None if text.lower() == "none" else text


# === Parser ===


def _add_model_arguments(parser, image_size_default):
    parser.add_argument("--variant", choices=("small", "large"), default="small",
                        help="MobileNetV3-Small or -Large (default: %(default)s)")
    parser.add_argument("--alpha", type=_positive_float, default=1.0,
                        help="width multiplier (default: %(default)s)")
    parser.add_argument("--minimalistic", action="store_true",
                        help="the paper's minimalistic model: 3x3 kernels, ReLU, no SE")
    parser.add_argument("--image-size", type=_positive_int, default=image_size_default,
                        help="square input size in pixels, >= 32 (default: %(default)s)")


def build_parser():
    """The `argparse` parser of `mnv3` (one sub-parser per subcommand)."""
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
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True

    # --- demo ---
    demo = commands.add_parser(
        "demo",
        help="offline demo: fine-tune MobileNetV3-Small on generated shapes, export int8",
        description="Generates circle/square/triangle images (no network), fine-tunes "
        "MobileNetV3-Small on them, prints the validation accuracy, exports float and int8 "
        "TFLite files, prints their sizes and single-thread latency, and writes "
        "report.json and training-curve plots into --out.",
    )
    demo.add_argument("--out", default="out/demo", help="output folder (default: %(default)s)")
    demo.add_argument("--num-images", type=_positive_int, default=None,
                      help="generated images in all, 80%% train / 20%% validation (default: 2000)")
    demo.add_argument("--image-size", type=_positive_int, default=None,
                      help="image size in pixels (default: 64)")
    demo.add_argument("--epochs", type=_positive_int, default=None, help="epochs (default: 12)")
    demo.add_argument("--alpha", type=_positive_float, default=None,
                      help="width multiplier (default: 1.0)")
    demo.add_argument("--batch-size", type=_positive_int, default=None,
                      help="batch size (default: 32)")
    demo.add_argument("--seed", type=int, default=0, help="seed (default: %(default)s)")
    demo.add_argument("--smoke", action="store_true",
                      help="a short check that everything works: 40 images of 32x32, "
                      "alpha 0.35, 1 epoch, eager training steps")
    demo.add_argument("--overwrite", action="store_true",
                      help="start over: remove an earlier demo from --out")
    demo.set_defaults(handler=run_demo_command)

    # --- train ---
    train = commands.add_parser(
        "train",
        help="fine-tune on a folder of images (one sub-folder per class)",
        description="Fine-tunes MobileNetV3 on DIR/<class>/*.jpg|png|... (or DIR/train + "
        "DIR/val, or --val-data). Checks every image before training, checkpoints every "
        "epoch and resumes when rerun with the same --out. Writes model.keras, "
        "labels.json, metrics.json, logs/training_log.csv, logs/tensorboard/ and the "
        "requested TFLite files into --out.",
    )
    train.add_argument("--data", required=True,
                       help="image folder: one sub-folder per class, or train/ and val/ "
                       "sub-folders of that layout")
    train.add_argument("--val-data", default=None,
                       help="separate validation folder with the same class folders")
    train.add_argument("--validation-split", type=_fraction, default=0.2,
                       help="fraction of --data held out when there is no validation folder "
                       "(seeded; default: %(default)s)")
    train.add_argument("--out", default="out/train", help="output folder (default: %(default)s)")
    _add_model_arguments(train, image_size_default=224)
    train.add_argument("--weights", type=_weights, default="imagenet",
                       help="backbone weights: imagenet (downloaded; alpha 0.75 or 1.0), none, "
                       "or a path to a weights file (default: %(default)s)")
    train.add_argument("--epochs", type=_positive_int, default=10,
                       help="float training epochs, including --freeze-epochs "
                       "(default: %(default)s)")
    train.add_argument("--batch-size", type=_positive_int, default=32,
                       help="batch size per replica; the global batch is this times the "
                       "number of replicas (default: %(default)s)")
    train.add_argument("--freeze-epochs", type=_non_negative_int, default=0,
                       help="first epochs with the backbone frozen (batch norms in inference "
                       "mode), training the head only; then everything trains at "
                       "--unfreeze-lr-factor times the rate (default: %(default)s)")
    train.add_argument("--unfreeze-lr-factor", type=_positive_float, default=0.1,
                       help="learning-rate factor after unfreezing (default: %(default)s)")
    train.add_argument("--recipe", choices=("default", "sgd", "paper"), default="default",
                       help="default: Adam + cosine decay; sgd: SGD momentum 0.9 + cosine; "
                       "paper: RMSProp momentum 0.9, step decay, EMA, BN momentum 0.99, "
                       "L2 1e-5, dropout 0.2 (default: %(default)s)")
    train.add_argument("--learning-rate", type=_positive_float, default=None,
                       help="initial learning rate (default: the recipe's)")
    train.add_argument("--bn-momentum", type=_fraction, default=None,
                       help="batch-norm momentum (default: the recipe's)")
    train.add_argument("--dropout", type=_fraction, default=None, dest="dropout_rate",
                       help="dropout before the classifier (default: the recipe's)")
    train.add_argument("--augment", default="flip,translate",
                       help="'none' or a comma-separated list of flip, vflip, translate, "
                       "rotate, zoom, contrast (default: %(default)s)")
    train.add_argument("--no-shuffle", action="store_false", dest="shuffle",
                       help="keep the training images in folder order")
    train.add_argument("--qat-epochs", type=_non_negative_int, default=0,
                       help="epochs of quantization-aware training after the float training; "
                       "--export int8 then exports the QAT model (default: %(default)s)")
    train.add_argument("--qat-hard-swish", choices=("op", "elementwise"), default="op",
                       help="int8 hard-swish of the QAT model: one HARD_SWISH op, or "
                       "ADD/MUL/MUL ops that XNNPACK runs (faster on x86 CPUs) "
                       "(default: %(default)s)")
    train.add_argument("--export", type=_exports, default=[],
                       help="TFLite files to write: float, dynamic, int8 (comma-separated)")
    train.add_argument("--latency", action="store_true",
                       help="log the model's latency every epoch (LatencyCallback) and "
                       "measure the exported TFLite files (batch 1, 1 thread)")
    train.add_argument("--distribution", choices=("none", "mirrored", "multiworker", "tpu"),
                       default="none",
                       help="tf.distribute strategy: mirrored (all local GPUs), multiworker "
                       "(cluster from TF_CONFIG), tpu (default: %(default)s)")
    train.add_argument("--tpu", default=None,
                       help="TPU name or grpc:// address for --distribution tpu")
    train.add_argument("--skip-bad-images", action="store_true",
                       help="skip unreadable images and non-image files with a warning "
                       "instead of stopping")
    train.add_argument("--seed", type=int, default=0, help="seed (default: %(default)s)")
    train.add_argument("--run-eagerly", action="store_true",
                       help="run training steps eagerly (no graph trace): faster for a "
                       "handful of steps, much slower for real runs")
    train.add_argument("--overwrite", action="store_true",
                       help="start over: remove an earlier run from --out (other files there "
                       "are kept); without it, a rerun resumes and another configuration is "
                       "refused")
    train.set_defaults(handler=run_train_command)

    # --- evaluate ---
    evaluate = commands.add_parser(
        "evaluate",
        help="accuracy of a .keras or .tflite model on a folder of images",
        description="Top-1 accuracy of a trained model on DIR/<class>/* images. The class "
        "order comes from labels.json beside the model (written by `mnv3 train`), else "
        "from the sorted folder names.",
    )
    evaluate.add_argument("--model", required=True, help=".keras or .tflite file")
    evaluate.add_argument("--data", required=True, help="image folder, one sub-folder per class")
    evaluate.add_argument("--labels", default=None,
                          help="labels.json (default: the one beside --model, if any)")
    evaluate.add_argument("--image-size", type=_positive_int, default=None,
                          help="input size (default: the model's)")
    evaluate.add_argument("--batch-size", type=_positive_int, default=32,
                          help="batch size (default: %(default)s)")
    evaluate.add_argument("--skip-bad-images", action="store_true",
                          help="skip unreadable images with a warning")
    evaluate.add_argument("--json", action="store_true", help="print the result as JSON")
    evaluate.set_defaults(handler=run_evaluate_command)

    # --- export ---
    export = commands.add_parser(
        "export",
        help="convert a .keras model to a TFLite file (float, dynamic or int8)",
        description="Converts a .keras model (float or QAT) to TFLite. int8 of a float "
        "model is post-training quantization calibrated on images from --data.",
    )
    export.add_argument("--model", required=True, help=".keras file")
    export.add_argument("--out", default=None,
                        help="output .tflite file (default: model_<quantization>.tflite "
                        "beside --model)")
    export.add_argument("--quantization", choices=("float", "dynamic", "int8"), default="float",
                        help="float, dynamic (int8 weights) or int8 (full integer) "
                        "(default: %(default)s)")
    export.add_argument("--data", default=None,
                        help="image folder for int8 calibration of a float model")
    export.add_argument("--num-calibration", type=_positive_int, default=100,
                        help="calibration images (default: %(default)s)")
    export.add_argument("--int8-io", action="store_true",
                        help="int8 input and output tensors (with --quantization int8)")
    export.add_argument("--image-size", type=_positive_int, default=None,
                        help="fixed input size for a model whose input size is unknown")
    export.set_defaults(handler=run_export_command)

    # --- bench ---
    bench = commands.add_parser(
        "bench",
        help="inference latency of a .keras or .tflite model on this CPU",
        description="Batch-1 latency: warm-up runs, then timed runs; prints the median and "
        "spread. The paper's protocol is a TFLite model on one thread.",
    )
    bench.add_argument("model", help=".keras or .tflite file")
    bench.add_argument("--runtime", choices=("keras", "tflite"), default=None,
                       help="keras or tflite (default: tflite for .tflite files, keras for "
                       ".keras files)")
    bench.add_argument("--threads", type=_positive_int, default=1,
                       help="CPU threads (default: %(default)s)")
    bench.add_argument("--runs", type=_positive_int, default=50,
                       help="timed runs (default: %(default)s)")
    bench.add_argument("--warmup", type=_non_negative_int, default=10,
                       help="untimed warm-up runs (default: %(default)s)")
    bench.add_argument("--batch-size", type=_positive_int, default=1,
                       help="batch size (default: %(default)s)")
    bench.add_argument("--image-size", type=_positive_int, default=None,
                       help="input size for a model whose input size is unknown")
    bench.add_argument("--json", action="store_true", help="print the report as JSON")
    bench.set_defaults(handler=run_bench_command)

    # --- summary ---
    summary = commands.add_parser(
        "summary",
        help="parameters and multiply-adds per block of a variant",
        description="Parameter and multiply-add table of a MobileNetV3 variant, computed "
        "from its block table (no model is built).",
    )
    _add_model_arguments(summary, image_size_default=224)
    summary.add_argument("--classes", type=_positive_int, default=1000,
                         help="classifier width (default: %(default)s)")
    summary.add_argument("--no-top", action="store_true",
                         help="without the pooled head and the classifier")
    summary.add_argument("--output-stride", type=int, choices=(8, 16, 32), default=32,
                         help="output stride (16 and 8 dilate the tail; default: %(default)s)")
    summary.add_argument("--json", action="store_true", help="print the profile as JSON")
    summary.set_defaults(handler=run_summary_command)

    _add_search_command(commands)
    return parser


def _add_search_command(commands):
    """Adds `mnv3 search` when the latency-targeted width search is installed."""
    import importlib.util

    if importlib.util.find_spec("mnv3_layers.search") is None:
        return
    search_parser = commands.add_parser(
        "search",
        help="NetAdapt search: shrink widths until a latency target is met",
        description="NetAdapt-style search (paper section 4.2, mnv3_layers.search): shrinks "
        "expansion and bottleneck widths of a MobileNetV3, proposal by proposal, until the "
        "latency measured on this CPU (TFLite, batch 1) meets the target, fine-tuning on "
        "your images. Rerun with the same --out to continue an interrupted search.",
    )
    search_parser.add_argument("--data", required=True,
                               help="image folder, one sub-folder per class (or train/ + val/)")
    search_parser.add_argument("--val-data", default=None,
                               help="separate validation folder with the same class folders")
    search_parser.add_argument("--validation-split", type=_fraction, default=0.2,
                               help="held-out fraction without a validation folder "
                               "(default: %(default)s)")
    search_parser.add_argument("--out", default="out/search",
                               help="output folder (default: %(default)s)")
    target = search_parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--target-ms", type=_positive_float,
                        help="latency target in milliseconds")
    target.add_argument("--target-ratio", type=_positive_float,
                        help="latency target as a fraction of the starting model's, in (0, 1)")
    _add_model_arguments(search_parser, image_size_default=224)
    search_parser.add_argument("--batch-size", type=_positive_int, default=32,
                               help="batch size (default: %(default)s)")
    search_parser.add_argument("--pretrain-steps", type=_non_negative_int, default=0,
                               help="training steps of the starting model (default: %(default)s)")
    search_parser.add_argument("--finetune-steps", type=_non_negative_int, default=50,
                               help="training steps per proposal (default: %(default)s)")
    search_parser.add_argument("--final-finetune-steps", type=_non_negative_int, default=200,
                               help="training steps of the result (default: %(default)s)")
    search_parser.add_argument("--max-iterations", type=_positive_int, default=50,
                               help="at most this many iterations (default: %(default)s)")
    search_parser.add_argument("--learning-rate", type=_positive_float, default=1e-3,
                               help="Adam learning rate (default: %(default)s)")
    search_parser.add_argument("--latency-table", default=None,
                               help="latency table cache file (default: the table's own path)")
    search_parser.add_argument("--run-eagerly", action="store_true",
                               help="eager training steps (faster for a handful of steps)")
    search_parser.add_argument("--seed", type=int, default=0, help="seed (default: %(default)s)")
    search_parser.set_defaults(handler=run_search_command)


# === Commands ===


def _log(message):
    print(message, flush=True)


def train_config_from_args(args):
    """The `TrainConfig` of parsed `mnv3 train` arguments."""
    from mnv3_layers.training import TrainConfig

    return TrainConfig(
        data=args.data,
        out=args.out,
        val_data=args.val_data,
        validation_split=args.validation_split,
        variant=args.variant,
        alpha=args.alpha,
        minimalistic=args.minimalistic,
        weights=args.weights,
        image_size=args.image_size,
        epochs=args.epochs,
        batch_size=args.batch_size,
        freeze_epochs=args.freeze_epochs,
        unfreeze_lr_factor=args.unfreeze_lr_factor,
        recipe=args.recipe,
        learning_rate=args.learning_rate,
        bn_momentum=args.bn_momentum,
        dropout_rate=args.dropout_rate,
        augment=args.augment,
        shuffle=args.shuffle,
        qat_epochs=args.qat_epochs,
        qat_hard_swish=args.qat_hard_swish,
        export=tuple(args.export),
        latency=args.latency,
        distribution=args.distribution,
        tpu=args.tpu,
        skip_bad_images=args.skip_bad_images,
        seed=args.seed,
        run_eagerly=args.run_eagerly,
    )


def run_train_command(args):
    from mnv3_layers import training

    config = train_config_from_args(args)
    metrics = training.train(config, overwrite=args.overwrite, log=_log)
    _log(training.format_report(metrics))
    _log(f"outputs in {os.path.abspath(config.out)}")
    return 0


def run_demo_command(args):
    from mnv3_layers import training

    training.run_demo(
        out=args.out, num_images=args.num_images, image_size=args.image_size,
        epochs=args.epochs, alpha=args.alpha, batch_size=args.batch_size, seed=args.seed,
        smoke=args.smoke, overwrite=args.overwrite, log=_log,
    )
    _log(f"outputs in {os.path.abspath(args.out)}")
    return 0


def _check_model_file(path, suffixes):
    if not os.path.isfile(path):
        raise FileNotFoundError(f"No such model file: {path!r}")
    if not path.endswith(suffixes):
        raise ValueError(
            f"`--model` must be a {' or '.join(suffixes)} file. Received: {path!r}"
        )


def _read_labels(path):
    with open(path, encoding="utf-8") as f:
        labels = json.load(f)
    names = labels.get("class_names") if isinstance(labels, dict) else labels
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise ValueError(
            f"{path!r} must hold a list of class names (or {{'class_names': [...]}})."
        )
    return names


def run_evaluate_command(args):
    import keras
    import numpy as np

    from mnv3_layers import training

    _check_model_file(args.model, (".keras", ".tflite"))
    labels_path = args.labels or os.path.join(os.path.dirname(os.path.abspath(args.model)),
                                              "labels.json")
    class_names = _read_labels(labels_path) if os.path.isfile(labels_path) else None
    if args.labels and class_names is None:
        raise FileNotFoundError(f"No such labels file: {args.labels!r}")
    folder = training.scan_image_folder(args.data, args.skip_bad_images,
                                        class_names=class_names, what="data")
    is_tflite = args.model.endswith(".tflite")
    model = None
    if is_tflite:
        from mnv3_layers.latency import import_litert_interpreter

        interpreter = import_litert_interpreter()(model_path=args.model)
        shape = tuple(int(d) for d in interpreter.get_input_details()[0]["shape"][1:3])
    else:
        model = keras.models.load_model(args.model, compile=False)
        shape = tuple(model.input_shape[1:3])
    if args.image_size is not None:
        size = args.image_size
    elif shape and None not in shape:
        size = shape[0]
    else:
        raise ValueError(
            "The model's input size is unknown: pass --image-size. "
            f"Received: model input shape {shape}"
        )
    dataset = keras.utils.image_dataset_from_directory(
        args.data, labels="inferred", label_mode="int", class_names=list(folder.class_names),
        color_mode="rgb", batch_size=None, image_size=(size, size), shuffle=False,
        crop_to_aspect_ratio=True, verbose=False,
    )
    if folder.bad_files:
        dataset = dataset.ignore_errors()  # the files the scan reported and skipped
    dataset = dataset.batch(args.batch_size)
    if is_tflite:
        from mnv3_layers.quantization import evaluate_tflite

        images, labels = training.dataset_to_arrays(dataset)
        predictions, accuracy = evaluate_tflite(args.model, images, labels)
        loss = None
    else:
        model.compile(
            loss=keras.losses.SparseCategoricalCrossentropy(),
            metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
            jit_compile=False,
        )
        loss, accuracy = model.evaluate(dataset, verbose=0)
        predictions = None
    result = {
        "model": os.path.abspath(args.model),
        "data": os.path.abspath(args.data),
        "num_images": folder.num_images,
        "class_names": list(folder.class_names),
        "accuracy": float(accuracy),
        "loss": None if loss is None else float(loss),
    }
    if predictions is not None:
        result["predicted_class_counts"] = np.bincount(
            np.argmax(predictions, axis=-1), minlength=len(folder.class_names)).tolist()
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        _log(f"{os.path.basename(args.model)} on {folder.num_images} images of "
             f"{args.data!r}: accuracy {accuracy:.4f}"
             + ("" if loss is None else f", loss {loss:.4f}"))
    return 0


def _load_images(directory, size, limit, class_names=None):
    import keras

    from mnv3_layers import training

    folder = training.scan_image_folder(directory, skip_bad_images=True,
                                        class_names=class_names, what="data")
    dataset = keras.utils.image_dataset_from_directory(
        directory, labels="inferred", label_mode="int", class_names=list(folder.class_names),
        color_mode="rgb", batch_size=None, image_size=(size, size), shuffle=True, seed=0,
        crop_to_aspect_ratio=True, verbose=False,
    )
    if folder.bad_files:
        dataset = dataset.ignore_errors()
    images, _ = training.dataset_to_arrays(dataset.batch(32), limit=limit)
    return images


def run_export_command(args):
    import keras

    from mnv3_layers.quantization import export_tflite

    _check_model_file(args.model, (".keras",))
    if args.int8_io and args.quantization != "int8":
        raise ValueError("--int8-io needs --quantization int8.")
    out = args.out or os.path.join(os.path.dirname(os.path.abspath(args.model)),
                                   f"model_{args.quantization}.tflite")
    model = keras.models.load_model(args.model, compile=False)
    input_shape = None
    if args.image_size is not None:
        input_shape = (args.image_size, args.image_size, 3)
    representative = None
    from mnv3_layers.quantization.export import qat_state

    is_qat = bool(qat_state(model))
    if args.quantization == "int8" and not is_qat:
        if args.data is None:
            raise ValueError(
                "--quantization int8 of a float model needs calibration images: pass "
                "--data DIR (a folder of training images), or export a QAT model."
            )
        size = args.image_size or model.input_shape[1]
        if size is None:
            raise ValueError("The model's input size is unknown: pass --image-size.")
        representative = _load_images(args.data, size, args.num_calibration)
    path = export_tflite(
        model, out, quantization=None if args.quantization == "float" else args.quantization,
        representative_data=representative, int8_io=args.int8_io, input_shape=input_shape,
    )
    calibration = "" if representative is None else (
        f", calibrated on {len(representative)} images")
    _log(f"wrote {path} ({os.path.getsize(path):,} bytes, {args.quantization}{calibration})")
    return 0


def run_bench_command(args):
    from mnv3_layers.latency import measure_latency

    if not os.path.isfile(args.model):
        raise FileNotFoundError(f"No such model file: {args.model!r}")
    runtime = args.runtime or ("keras" if args.model.endswith(".keras") else "tflite")
    input_shape = None
    if args.image_size is not None:
        input_shape = (args.image_size, args.image_size, 3)
    report = measure_latency(
        args.model, input_shape=input_shape, runtime=runtime, num_threads=args.threads,
        batch_size=args.batch_size, warmup=args.warmup, runs=args.runs,
    )
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        print(report)
    return 0


def run_summary_command(args):
    from mnv3_layers.profile import profile

    report = profile(
        args.variant, alpha=args.alpha, minimalistic=args.minimalistic,
        input_size=args.image_size, include_top=not args.no_top, classes=args.classes,
        output_stride=args.output_stride,
    )
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        print(report)
    return 0


def run_search_command(args):
    from mnv3_layers import search, training

    # The folder checks and loading of `mnv3 train` (no augmentation).
    config = training.TrainConfig(
        data=args.data, out=args.out, val_data=args.val_data,
        validation_split=args.validation_split, variant=args.variant, alpha=args.alpha,
        minimalistic=args.minimalistic, image_size=args.image_size,
        batch_size=args.batch_size, augment="none", seed=args.seed,
    )
    data = training.load_datasets(config, log=_log)
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
    _log(f"classes (output order): {', '.join(data.class_names)}")
    return 0


# === Entry point ===


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
    parser = build_parser()
    args = parser.parse_args(argv)
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
