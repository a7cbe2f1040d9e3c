"""`mnv3 export`: a `.keras` model (float or QAT) to a TFLite file."""

import os

from mnv3_layers.cli._args import check_model_file, folder_dataset, log, positive_int


def add_parser(subparsers):
    parser = subparsers.add_parser(
        "export",
        help="convert a .keras model to a TFLite file (float, dynamic or int8)",
        description="Converts a .keras model (float or QAT) to TFLite. int8 of a float "
        "model is post-training quantization calibrated on images from --data.",
    )
    parser.add_argument("--model", required=True, help=".keras file")
    parser.add_argument("--out", default=None,
                        help="output .tflite file (default: model_<quantization>.tflite "
                        "beside --model)")
    parser.add_argument("--quantization", choices=("float", "dynamic", "int8"),
                        default="float", help="float, dynamic (int8 weights) or int8 (full "
                        "integer) (default: %(default)s)")
    parser.add_argument("--data", default=None,
                        help="image folder for int8 calibration of a float model")
    parser.add_argument("--num-calibration", type=positive_int, default=100,
                        help="calibration images (default: %(default)s)")
    parser.add_argument("--int8-io", action="store_true",
                        help="int8 input and output tensors (with --quantization int8)")
    parser.add_argument("--image-size", type=positive_int, default=None,
                        help="fixed input size for a model whose input size is unknown")
    parser.set_defaults(handler=run)


def _calibration_images(args, model):
    """Images from `--data` for post-training int8 of a float model (else `None`)."""
    from mnv3_layers import training
    from mnv3_layers.quantization.export import qat_state

    if args.quantization != "int8" or qat_state(model):
        return None
    if args.data is None:
        raise ValueError(
            "--quantization int8 of a float model needs calibration images: pass "
            "--data DIR (a folder of training images), or export a QAT model."
        )
    size = args.image_size or model.input_shape[1]
    if size is None:
        raise ValueError("The model's input size is unknown: pass --image-size.")
    dataset, _ = folder_dataset(args.data, size, shuffle=True)
    images, _ = training.dataset_to_arrays(dataset.batch(32), limit=args.num_calibration)
    return images


def run(args):
    import keras

    from mnv3_layers.quantization import export_tflite

    check_model_file(args.model, (".keras",))
    if args.int8_io and args.quantization != "int8":
        raise ValueError("--int8-io needs --quantization int8.")
    out = args.out or os.path.join(os.path.dirname(os.path.abspath(args.model)),
                                   f"model_{args.quantization}.tflite")
    model = keras.models.load_model(args.model, compile=False)
    representative = _calibration_images(args, model)
    path = export_tflite(
        model, out, quantization=None if args.quantization == "float" else args.quantization,
        representative_data=representative, int8_io=args.int8_io,
        input_shape=None if args.image_size is None else (args.image_size, args.image_size, 3),
    )
    calibration = "" if representative is None else (
        f", calibrated on {len(representative)} images")
    log(f"wrote {path} ({os.path.getsize(path):,} bytes, {args.quantization}{calibration})")
    return 0
