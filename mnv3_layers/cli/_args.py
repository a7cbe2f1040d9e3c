"""What the subcommands share: argument types, `TrainConfig` flags, image folders, output."""

import argparse
import dataclasses

from mnv3_layers._validation import (
    check_finite_positive,
    check_fraction,
    check_non_negative_int,
    check_positive_int,
)

# === Argument types (argparse turns their errors into exit status 2) ===


def _checked(convert, check):
    """An argparse type: `convert(text)`, then the `_validation` check.

    The message is the check's rule and the text received, e.g. `argument
    --epochs: must be a positive integer. Received: '0'`.
    """

    def parse(text):
        try:
            value = convert(text)
        except ValueError:
            value = text  # the check names the rule the text breaks
        try:
            return check("value", value)
        except (TypeError, ValueError) as error:
            rule = str(error).split("` ", 1)[-1].split(". Received:")[0]
            raise argparse.ArgumentTypeError(f"{rule}. Received: {text!r}") from None

    parse.__name__ = check.__name__.removeprefix("check_")
    return parse


positive_int = _checked(int, check_positive_int)
non_negative_int = _checked(int, check_non_negative_int)
positive_float = _checked(float, check_finite_positive)
fraction = _checked(float, check_fraction)


def exports(text):
    """`--export float,int8` -> `["float", "int8"]`."""
    from mnv3_layers.training import EXPORTS

    kinds = [k.strip() for k in text.split(",") if k.strip()]
    if not all(kind in EXPORTS for kind in kinds):
        raise argparse.ArgumentTypeError(
            f"must be one or more of {', '.join(EXPORTS)} (comma-separated). "
            f"Received: {text!r}"
        )
    return kinds


def weights(text):
    return None if text.lower() == "none" else text


TYPES = {"positive_int": positive_int, "non_negative_int": non_negative_int,
         "positive_float": positive_float, "fraction": fraction, "exports": exports,
         "weights": weights, "int": int}


# === Flags generated from the TrainConfig fields ===


def add_config_arguments(parser, names, defaults=None):
    """Adds the flags of the `TrainConfig` fields `names` (help, type, choices from metadata).

    `defaults` overrides the flag defaults of some fields (`{"out": "out/search"}`).
    """
    from mnv3_layers.training import TrainConfig

    fields = {f.name: f for f in dataclasses.fields(TrainConfig)}
    for name in names:
        meta = fields[name].metadata
        default = (defaults or {}).get(name, meta.get("cli_default", fields[name].default))
        kwargs = {"dest": name, "help": meta["help"].replace("%", "%%")}
        if "action" in meta:
            kwargs["action"] = meta["action"]
        elif meta.get("required"):
            kwargs["required"] = True
        else:
            kwargs["default"] = default
            if default not in (None, ()) and "(default:" not in kwargs["help"]:
                kwargs["help"] += " (default: %(default)s)"
        if "type" in meta:
            kwargs["type"] = TYPES[meta["type"]]
        if "choices" in meta:
            kwargs["choices"] = meta["choices"]
        parser.add_argument(meta.get("flag", "--" + name.replace("_", "-")), **kwargs)


# === Image folders and model files ===


def check_model_file(path, suffixes):
    import os

    if not os.path.isfile(path):
        raise FileNotFoundError(f"No such model file: {path!r}")
    if not path.endswith(suffixes):
        raise ValueError(
            f"`--model` must be a {' or '.join(suffixes)} file. Received: {path!r}"
        )


def folder_dataset(directory, size, class_names=None, skip_bad_images=True, shuffle=False):
    """`(unbatched dataset, ImageFolder)` of a checked folder-per-class image folder."""
    import keras

    from mnv3_layers import training

    folder = training.scan_image_folder(directory, skip_bad_images, class_names=class_names,
                                        what="data")
    dataset = keras.utils.image_dataset_from_directory(
        directory, labels="inferred", label_mode="int", class_names=list(folder.class_names),
        color_mode="rgb", batch_size=None, image_size=(size, size), shuffle=shuffle,
        seed=0 if shuffle else None, crop_to_aspect_ratio=True, verbose=False,
    )
    if folder.bad_files:
        dataset = dataset.ignore_errors()  # the files the scan reported and skipped
    return dataset, folder


def log(message):
    print(message, flush=True)
