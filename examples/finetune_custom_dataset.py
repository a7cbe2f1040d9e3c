"""Fine-tune MobileNetV3 on your own folder of images, then use the results.

    # your images: photos/<class name>/*.jpg (or .png, .bmp, .gif)
    python examples/finetune_custom_dataset.py --data photos --out runs/photos
    # offline, no images of your own: a generated stand-in folder
    python examples/finetune_custom_dataset.py --weights none --epochs 8
    python examples/finetune_custom_dataset.py --smoke          # a short offline check

The library calls behind `mnv3 train`, step by step:

1. `TrainConfig` + `train`: checks every image, trains the classifier head
   with the ImageNet backbone frozen (`--freeze-epochs`), then the whole
   network at a tenth of the rate, checkpoints every epoch (rerun the same
   command to resume after an interruption), exports an int8 TFLite file.
2. Loads `model.keras` and `labels.json` and classifies a few images.
3. Runs the same images through the int8 TFLite file with the LiteRT
   interpreter and compares the answers.

`--weights imagenet` (the default) downloads the official Keras Applications
weights; offline, pass `--weights none` or a local weights file.
"""

import argparse
import json
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from mnv3_layers import training  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=None,
                        help="image folder, one sub-folder per class (default: generate a "
                        "stand-in folder of shapes images under --out)")
    parser.add_argument("--out", default="out/finetune_custom_dataset", help="output folder")
    parser.add_argument("--weights", default="imagenet", help="imagenet, none or a file path")
    parser.add_argument("--variant", choices=("small", "large"), default="small")
    parser.add_argument("--alpha", type=float, default=1.0)
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--freeze-epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--smoke", action="store_true",
                        help="short offline check: generated 32x32 images, alpha 0.35, "
                        "no pretrained weights, 2 epochs, eager steps")
    parser.add_argument("--overwrite", action="store_true")
    return parser.parse_args(argv)


def read_image(path, size):
    """An image file as a float array in [0, 255], resized like the training data."""
    image = tf.io.decode_image(tf.io.read_file(path), channels=3, expand_animations=False)
    image = keras.layers.Resizing(size, size, crop_to_aspect_ratio=True)(
        tf.cast(image, "float32"))
    return np.asarray(image)


def main(argv=None):
    args = parse_args(argv)
    if args.smoke:
        args.weights, args.alpha, args.image_size = "none", 0.35, 32
        args.epochs, args.freeze_epochs, args.batch_size = 2, 1, 16
    data = args.data
    if data is None:
        # A stand-in for your photos: one folder per class of generated images.
        data = args.out.rstrip("/\\") + "_data"
        if not os.path.isdir(data):
            num_images = 24 if args.smoke else 600
            training.write_shapes_folder(data, num_images, max(args.image_size, 32), seed=0)

    # 1. Train (or resume, or return the finished run's metrics).
    config = training.TrainConfig(
        data=data,
        out=args.out,
        variant=args.variant,
        alpha=args.alpha,
        weights=None if args.weights == "none" else args.weights,
        image_size=args.image_size,
        epochs=args.epochs,
        freeze_epochs=args.freeze_epochs,
        batch_size=args.batch_size,
        augment="flip,translate",
        export=("int8",),
        run_eagerly=args.smoke,
    )
    metrics = training.train(config, overwrite=args.overwrite)
    print(training.format_report(metrics))

    # 2. Use the trained model: labels.json maps output index -> class name.
    model = keras.models.load_model(os.path.join(args.out, "model.keras"))
    with open(os.path.join(args.out, "labels.json")) as f:
        labels = json.load(f)
    class_names = labels["class_names"]
    train_folder, _ = training.resolve_data_folders(data)
    paths = []
    for name in class_names:  # the first image of each class
        folder = os.path.join(train_folder, name)
        files = sorted(f for f in os.listdir(folder) if f.lower().endswith(
            training.IMAGE_EXTENSIONS))
        paths.append(os.path.join(folder, files[0]))
    images = np.stack([read_image(p, labels["image_size"]) for p in paths])
    keras_predictions = keras.ops.convert_to_numpy(model(images, training=False))

    # 3. The int8 file on the same images (LiteRT interpreter).
    from mnv3_layers.quantization import evaluate_tflite

    int8_predictions = evaluate_tflite(os.path.join(args.out, "model_int8.tflite"), images)
    agree = 0
    for path, k, q in zip(paths, keras_predictions, int8_predictions):
        keras_label, int8_label = class_names[int(np.argmax(k))], class_names[int(np.argmax(q))]
        agree += keras_label == int8_label
        print(f"{os.path.relpath(path, data)}: Keras -> {keras_label} ({np.max(k):.2f}), "
              f"int8 TFLite -> {int8_label} ({np.max(q):.2f})")
    result = {
        "metrics": metrics,
        "class_names": class_names,
        "examples": len(paths),
        "keras_int8_agreement": agree / len(paths),
        "keras_predictions": keras_predictions.tolist(),
        "int8_predictions": np.asarray(int8_predictions).tolist(),
    }
    print(f"Keras and int8 TFLite agree on {agree} of {len(paths)} images")
    return result


if __name__ == "__main__":
    main()
