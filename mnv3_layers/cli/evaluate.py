"""`mnv3 evaluate`: top-1 accuracy of a `.keras` or `.tflite` model on a folder of images."""

import json
import os

from mnv3_layers.cli._args import check_model_file, folder_dataset, log, positive_int


def add_parser(subparsers):
    parser = subparsers.add_parser(
        "evaluate",
        help="accuracy of a .keras or .tflite model on a folder of images",
        description="Top-1 accuracy of a trained model on DIR/<class>/* images. The class "
        "order comes from labels.json beside the model (written by `mnv3 train`), else "
        "from the sorted folder names.",
    )
    parser.add_argument("--model", required=True, help=".keras or .tflite file")
    parser.add_argument("--data", required=True, help="image folder, one sub-folder per class")
    parser.add_argument("--labels", default=None,
                        help="labels.json (default: the one beside --model, if any)")
    parser.add_argument("--image-size", type=positive_int, default=None,
                        help="input size (default: the model's)")
    parser.add_argument("--batch-size", type=positive_int, default=32,
                        help="batch size (default: %(default)s)")
    parser.add_argument("--skip-bad-images", action="store_true",
                        help="skip unreadable images with a warning")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.set_defaults(handler=run)


def _read_labels(path):
    with open(path, encoding="utf-8") as f:
        labels = json.load(f)
    names = labels.get("class_names") if isinstance(labels, dict) else labels
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise ValueError(
            f"{path!r} must hold a list of class names (or {{'class_names': [...]}})."
        )
    return names


def _class_names(args):
    """The class order: `--labels`, else `labels.json` beside the model, else `None`."""
    path = args.labels or os.path.join(os.path.dirname(os.path.abspath(args.model)),
                                       "labels.json")
    if os.path.isfile(path):
        return _read_labels(path)
    if args.labels:
        raise FileNotFoundError(f"No such labels file: {args.labels!r}")
    return None


def _load_model(path):
    """`(keras model or None, input (height, width))` of a `.keras` or `.tflite` file."""
    if path.endswith(".tflite"):
        from mnv3_layers.latency.tflite import make_interpreter

        interpreter = make_interpreter(model_path=path)
        return None, tuple(int(d) for d in interpreter.get_input_details()[0]["shape"][1:3])
    import keras

    model = keras.models.load_model(path, compile=False)
    return model, tuple(model.input_shape[1:3])


def _input_size(args, shape):
    if args.image_size is not None:
        return args.image_size
    if shape and None not in shape:
        return shape[0]
    raise ValueError(
        f"The model's input size is unknown: pass --image-size. Received: model input shape "
        f"{shape}"
    )


def _accuracy(args, model, dataset):
    """`(accuracy, loss or None, predicted class counts or None)`."""
    import numpy as np

    if model is None:
        from mnv3_layers import training
        from mnv3_layers.quantization import evaluate_tflite

        images, labels = training.dataset_to_arrays(dataset)
        predictions, accuracy = evaluate_tflite(args.model, images, labels)
        return accuracy, None, np.argmax(predictions, axis=-1)
    import keras

    model.compile(
        loss=keras.losses.SparseCategoricalCrossentropy(),
        metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
        jit_compile=False,
    )
    loss, accuracy = model.evaluate(dataset, verbose=0)
    return accuracy, loss, None


def run(args):
    check_model_file(args.model, (".keras", ".tflite"))
    class_names = _class_names(args)
    model, shape = _load_model(args.model)
    size = _input_size(args, shape)
    dataset, folder = folder_dataset(args.data, size, class_names, args.skip_bad_images)
    accuracy, loss, predicted = _accuracy(args, model, dataset.batch(args.batch_size))
    result = {
        "model": os.path.abspath(args.model),
        "data": os.path.abspath(args.data),
        "num_images": folder.num_images,
        "class_names": list(folder.class_names),
        "accuracy": float(accuracy),
        "loss": None if loss is None else float(loss),
    }
    if predicted is not None:
        import numpy as np

        result["predicted_class_counts"] = np.bincount(
            predicted, minlength=len(folder.class_names)).tolist()
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        log(f"{os.path.basename(args.model)} on {folder.num_images} images of "
            f"{args.data!r}: accuracy {accuracy:.4f}"
            + ("" if loss is None else f", loss {loss:.4f}"))
    return 0
