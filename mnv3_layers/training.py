"""Fine-tuning workflow: a folder of images in, a trained model, int8 file and report out.

The library behind `mnv3 train` and `mnv3 demo` (the command line is a thin
layer over it). One call, `train(TrainConfig(...))`, does:

1. **Data.** Checks the folder before anything is trained (`scan_image_folder`:
   every class folder non-empty, at least two classes, no non-image files,
   every image decodes - an error names the file, or `skip_bad_images=True`
   skips it with a warning), then loads it with
   `keras.utils.image_dataset_from_directory` (one sub-folder per class; a
   separate validation folder, `DIR/train` + `DIR/val`, or a seeded
   `validation_split`). Augmentation uses Keras preprocessing layers.
2. **Model.** `MobileNetV3Small/Large` with a new classifier; `weights`
   `None`, `"imagenet"` or a weights file fill the backbone
   (`build_classifier`).
3. **Phases.** Optionally `freeze_epochs` with the backbone frozen (its
   batch norms then run in inference mode: Keras' `BatchNormalization` does
   so when `trainable=False`), then the whole network at
   `unfreeze_lr_factor` times the rate, then optionally `qat_epochs` of
   quantization-aware training (`mnv3_layers.quantization.quantize_model`).
   Recipes (`get_recipe`): `"default"` (Adam, cosine decay), `"sgd"` (SGD
   with momentum, cosine decay) and `"paper"` (the paper's section 6.1
   ImageNet setup, see `get_recipe`).
4. **Nothing lost.** Every epoch ends with an atomic checkpoint (model and
   optimizer variables, then a `state.json` that points to them, each
   written to a temporary file and `os.replace`d); rerunning the same
   configuration into the same `out` folder resumes at the epoch reached
   (the role of `keras.callbacks.BackupAndRestore`, which is not atomic and
   knows one `fit` call, while a run here has up to three phases). The
   configuration is stored in `out/config.json`; a folder holding another
   configuration is refused unless `overwrite=True`.
5. **Distribution.** `distribution="mirrored"` (`tf.distribute.MirroredStrategy`
   over the local GPUs, or every logical CPU device when there is no GPU),
   `"multiworker"` (`MultiWorkerMirroredStrategy`, cluster from `TF_CONFIG`)
   or `"tpu"` (`TPUStrategy`). `batch_size` is per replica: the global batch
   is `batch_size * num_replicas`.
6. **Outputs** in `out`: `config.json`, `labels.json`, `model.keras` (and
   `model_qat.keras`), `model_float.tflite` / `model_dynamic.tflite` /
   `model_int8.tflite` on request, `metrics.json`, `logs/training_log.csv`,
   `logs/tensorboard/`, `training_curves_loss.png` and
   `training_curves_accuracy.png` (matplotlib, optional).

`run_demo()` is `mnv3 demo`: it writes generated shapes images into a
folder and runs `train` on it.
"""

import concurrent.futures
import csv
import dataclasses
import json
import math
import numbers
import os
import shutil
import sys
import tempfile
import time
import warnings

import keras
import numpy as np

from mnv3_layers._validation import check_fraction, check_positive_int
from mnv3_layers.efficient_last_stage import EfficientLastStage
from mnv3_layers.files import atomic_write, save_model_atomic, write_json_atomic
from mnv3_layers.quantization.keras_engine import HARD_SWISH_FORMS

# === Constants ===

VARIANTS = ("small", "large")
RECIPES = ("default", "sgd", "paper")
EXPORTS = ("float", "dynamic", "int8")
DISTRIBUTIONS = ("none", "mirrored", "multiworker", "tpu")
AUGMENTATIONS = ("flip", "vflip", "translate", "rotate", "zoom", "contrast")
# The extensions keras.utils.image_dataset_from_directory reads; it silently
# ignores every other file, which is why the scan reports them.
IMAGE_EXTENSIONS = (".bmp", ".gif", ".jpeg", ".jpg", ".png")
MIN_IMAGE_SIZE = 32

# Layers of the applications' classifier head (trained while the backbone is
# frozen), besides the pooled part of `last_stage`.
HEAD_LAYERS = ("logits", "flatten", "predictions")

# Files and folders a run writes into `out` (removed by `overwrite=True`;
# nothing else in the folder is touched).
OWNED_NAMES = (
    "config.json",
    "labels.json",
    "metrics.json",
    "model.keras",
    "model_qat.keras",
    "model_float.tflite",
    "model_dynamic.tflite",
    "model_int8.tflite",
    "training_curves_loss.png",
    "training_curves_accuracy.png",
    "checkpoints",
    "logs",
)
CONFIG_FILE = "config.json"
STATE_FILE = "state.json"
CHECKPOINT_DIR = "checkpoints"
LOG_DIR = "logs"
CSV_LOG = "training_log.csv"
PLOT_INSTALL_HINT = 'pip install "mnv3-layers[plot]"'
TENSORBOARD_INSTALL_HINT = "pip install tensorboard"

# The paper's recipe (section 6.1): RMSProp, momentum 0.9, initial rate 0.1 at
# batch 4096, rate decay 0.01 every 3 epochs, EMA 0.9999, BN momentum 0.99,
# L2 1e-5, dropout "0.8" (a keep probability: rate 0.2).
PAPER_BASE_LEARNING_RATE = 0.1
PAPER_BASE_BATCH = 4096
PAPER_DECAY_RATE = 0.99
# The paper does not give its run length; a 300-epoch run decays 100 times
# (every 3 epochs). A run here decays 100 times over its own length.
PAPER_NUM_DECAYS = 100
PAPER_EMA_MOMENTUM = 0.9999
PAPER_L2 = 1e-5


class DataError(ValueError):
    """The image folder cannot be trained on (raised before training starts)."""


class OutputFolderError(ValueError):
    """The output folder holds something this run must not overwrite."""


# === Configuration ===


def _check_choice(name, value, choices):
    if value not in choices:
        raise ValueError(f"`{name}` must be one of {choices}. Received: {name}={value!r}")
    return value


def _check_non_negative_int(name, value):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0:
        raise ValueError(
            f"`{name}` must be a non-negative integer. Received: {name}={value!r}"
        )
    return int(value)


def _check_optional_positive_float(name, value):
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not (
        math.isfinite(value) and value > 0
    ):
        raise ValueError(f"`{name}` must be a positive number. Received: {name}={value!r}")
    return float(value)


def parse_augment(augment):
    """Returns the augmentation names of `augment` as a tuple.

    Args:
        augment: `"none"`, a comma-separated string such as
            `"flip,translate"`, or a sequence of names from
            `AUGMENTATIONS`.

    Returns:
        A tuple of names from `AUGMENTATIONS`, in the given order.

    Example:

    >>> from mnv3_layers.training import parse_augment
    >>> parse_augment("flip, translate")
    ('flip', 'translate')
    >>> parse_augment("none")
    ()
    """
    if augment is None:
        return ()
    if isinstance(augment, str):
        names = [a.strip() for a in augment.split(",") if a.strip()]
        if names == ["none"]:
            return ()
    else:
        names = list(augment)
    for name in names:
        if name not in AUGMENTATIONS:
            raise ValueError(
                f"`augment` must be 'none' or a comma-separated list of {AUGMENTATIONS}. "
                f"Received: augment={augment!r}"
            )
    if len(set(names)) != len(names):
        raise ValueError(f"`augment` lists a name twice. Received: augment={augment!r}")
    return tuple(names)


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Everything that defines a fine-tuning run (stored as `out/config.json`).

    Args:
        data: folder with one sub-folder of images per class, or with
            `train/` and `val/` (or `validation/`) sub-folders of that layout.
        out: output folder. Defaults to `"out/train"`.
        val_data: separate validation folder (same class folders).
            Defaults to `None` (`data/val` if present, else `validation_split`).
        validation_split: fraction of `data` held out for validation when
            there is no validation folder, in (0, 1); the split is seeded.
            Defaults to `0.2`.
        variant: `"small"` or `"large"`. Defaults to `"small"`.
        alpha: width multiplier. Defaults to `1.0`.
        minimalistic: the paper's minimalistic models. Defaults to `False`.
        weights: `None`, `"imagenet"` or a path to a weights file for the
            backbone (see `build_classifier`). Defaults to `None`.
        image_size: images are resized to this square size, >= 32.
            Defaults to `224`.
        epochs: float training epochs in all, including `freeze_epochs`.
            Defaults to `10`.
        batch_size: batch size per replica (the global batch is
            `batch_size * num_replicas`). Defaults to `32`.
        freeze_epochs: first epochs with the backbone frozen (batch norms in
            inference mode), training only the classifier head; then the
            whole network trains at `unfreeze_lr_factor` times the rate.
            Defaults to `0`.
        unfreeze_lr_factor: learning-rate factor after unfreezing, in (0, 1].
            Defaults to `0.1`.
        recipe: `"default"`, `"sgd"` or `"paper"`; see `get_recipe`.
            Defaults to `"default"`.
        learning_rate: initial learning rate; `None` uses the recipe's.
            Defaults to `None`.
        bn_momentum: batch-norm momentum; `None` uses the recipe's.
            Defaults to `None`.
        dropout_rate: dropout before the classifier; `None` uses the
            recipe's. Defaults to `None`.
        augment: training augmentation, `"none"` or a comma-separated list of
            `"flip"` (horizontal), `"vflip"`, `"translate"`, `"rotate"`,
            `"zoom"`, `"contrast"` (Keras preprocessing layers).
            Defaults to `"flip,translate"`.
        shuffle: shuffle the training images each epoch. Defaults to `True`.
        qat_epochs: epochs of quantization-aware training after the float
            training. Defaults to `0`.
        qat_hard_swish: how the QAT model (and its int8 file) writes each
            hard-swish: `"op"`, one `HARD_SWISH` op, or `"elementwise"`,
            int8 `ADD`/`MUL`/`MUL` ops that LiteRT's XNNPACK delegate runs
            (much faster int8 files on x86 CPUs), see
            `mnv3_layers.quantization.quantize_model`. Defaults to `"op"`.
        export: TFLite files to write, a tuple of `"float"`, `"dynamic"`,
            `"int8"`. Defaults to `()`.
        latency: add `LatencyCallback` (the Keras model's batch-1 latency in
            the logs every epoch, on TensorFlow's training thread pools) and
            measure the exported TFLite files at batch 1 on one thread (the
            paper's protocol). Defaults to `False`.
        distribution: `"none"`, `"mirrored"`, `"multiworker"` or `"tpu"`.
            Defaults to `"none"`.
        tpu: TPU name or address for `distribution="tpu"` (`""`: the local
            or environment-configured TPU). Defaults to `None`.
        skip_bad_images: skip unreadable images and non-image files with a
            warning instead of stopping. Defaults to `False`.
        seed: seed of the split, shuffling, augmentation and initial weights.
            Defaults to `0`.
        run_eagerly: run the training steps eagerly instead of tracing them
            into a graph. Tracing a MobileNetV3 training step costs tens of
            seconds of CPU, so eager steps are faster for runs of a handful
            of steps (smoke runs, tests) and much slower for real runs.
            Defaults to `False`.

    Example:

    >>> from mnv3_layers.training import TrainConfig
    >>> config = TrainConfig(data="photos", out="runs/a", image_size=96, epochs=3)
    >>> config.augment, config.batch_size
    ('flip,translate', 32)
    """

    data: str
    out: str = "out/train"
    val_data: str = None
    validation_split: float = 0.2
    variant: str = "small"
    alpha: float = 1.0
    minimalistic: bool = False
    weights: str = None
    image_size: int = 224
    epochs: int = 10
    batch_size: int = 32
    freeze_epochs: int = 0
    unfreeze_lr_factor: float = 0.1
    recipe: str = "default"
    learning_rate: float = None
    bn_momentum: float = None
    dropout_rate: float = None
    augment: str = "flip,translate"
    shuffle: bool = True
    qat_epochs: int = 0
    qat_hard_swish: str = "op"
    export: tuple = ()
    latency: bool = False
    distribution: str = "none"
    tpu: str = None
    skip_bad_images: bool = False
    seed: int = 0
    run_eagerly: bool = False

    def __post_init__(self):
        if not isinstance(self.data, (str, os.PathLike)) or not os.fspath(self.data):
            raise ValueError(f"`data` must be a folder path. Received: data={self.data!r}")
        if not isinstance(self.out, (str, os.PathLike)) or not os.fspath(self.out):
            raise ValueError(f"`out` must be a folder path. Received: out={self.out!r}")
        object.__setattr__(self, "data", os.fspath(self.data))
        object.__setattr__(self, "out", os.fspath(self.out))
        if self.val_data is not None:
            object.__setattr__(self, "val_data", os.fspath(self.val_data))
        check_fraction("validation_split", self.validation_split, allow_zero=False)
        _check_choice("variant", self.variant, VARIANTS)
        if isinstance(self.alpha, bool) or not isinstance(self.alpha, numbers.Real) or not (
            self.alpha > 0
        ):
            raise ValueError(f"`alpha` must be a positive number. Received: alpha={self.alpha!r}")
        if not isinstance(self.minimalistic, bool):
            raise TypeError(
                f"`minimalistic` must be a bool. Received: minimalistic={self.minimalistic!r}"
            )
        weights = self.weights
        if isinstance(weights, os.PathLike):
            weights = os.fspath(weights)
        if isinstance(weights, str) and weights.lower() == "none":
            weights = None
        if weights is not None and weights != "imagenet":
            if not isinstance(weights, str) or not os.path.isfile(weights):
                raise ValueError(
                    "`weights` must be None, 'imagenet' or the path to an existing weights "
                    f"file. Received: weights={self.weights!r}"
                )
            weights = os.path.abspath(weights)
        object.__setattr__(self, "weights", weights)
        if weights == "imagenet":
            from mnv3_layers.applications import weights as weights_lib

            # No ImageNet file for this alpha/variant: say so before any work.
            weights_lib.check_weights_argument(
                weights, model_type=self.variant, alpha=self.alpha,
                minimalistic=self.minimalistic, include_top=False, classes=1000,
                classifier_activation=None,
            )
        check_positive_int("image_size", self.image_size)
        if self.image_size < MIN_IMAGE_SIZE:
            raise ValueError(
                f"`image_size` must be >= {MIN_IMAGE_SIZE}. "
                f"Received: image_size={self.image_size!r}"
            )
        check_positive_int("epochs", self.epochs)
        check_positive_int("batch_size", self.batch_size)
        _check_non_negative_int("freeze_epochs", self.freeze_epochs)
        if self.freeze_epochs > self.epochs:
            raise ValueError(
                "`freeze_epochs` must be <= `epochs` (it counts the first epochs of the "
                f"run). Received: freeze_epochs={self.freeze_epochs!r}, epochs={self.epochs!r}"
            )
        check_fraction("unfreeze_lr_factor", self.unfreeze_lr_factor, allow_zero=False,
                       allow_one=True)
        _check_choice("recipe", self.recipe, RECIPES)
        _check_optional_positive_float("learning_rate", self.learning_rate)
        if self.bn_momentum is not None:
            check_fraction("bn_momentum", self.bn_momentum)
        if self.dropout_rate is not None:
            check_fraction("dropout_rate", self.dropout_rate)
        object.__setattr__(self, "augment", ",".join(parse_augment(self.augment)) or "none")
        if not isinstance(self.shuffle, bool):
            raise TypeError(f"`shuffle` must be a bool. Received: shuffle={self.shuffle!r}")
        _check_non_negative_int("qat_epochs", self.qat_epochs)
        _check_choice("qat_hard_swish", self.qat_hard_swish, HARD_SWISH_FORMS)
        export = (self.export,) if isinstance(self.export, str) else tuple(self.export or ())
        for kind in export:
            _check_choice("export", kind, EXPORTS)
        object.__setattr__(self, "export", tuple(k for k in EXPORTS if k in export))
        if not isinstance(self.latency, bool):
            raise TypeError(f"`latency` must be a bool. Received: latency={self.latency!r}")
        distribution = "none" if self.distribution is None else self.distribution
        _check_choice("distribution", distribution, DISTRIBUTIONS)
        object.__setattr__(self, "distribution", distribution)
        if self.tpu is not None and distribution != "tpu":
            raise ValueError(
                "`tpu` is only used with distribution='tpu'. "
                f"Received: tpu={self.tpu!r}, distribution={distribution!r}"
            )
        if not isinstance(self.skip_bad_images, bool):
            raise TypeError(
                "`skip_bad_images` must be a bool. "
                f"Received: skip_bad_images={self.skip_bad_images!r}"
            )
        if isinstance(self.seed, bool) or not isinstance(self.seed, numbers.Integral):
            raise ValueError(f"`seed` must be an integer. Received: seed={self.seed!r}")
        if not isinstance(self.run_eagerly, bool):
            raise TypeError(
                f"`run_eagerly` must be a bool. Received: run_eagerly={self.run_eagerly!r}"
            )

    def identity(self):
        """The configuration as stored in `config.json` (folders as absolute paths)."""
        config = dataclasses.asdict(self)
        config["data"] = os.path.abspath(self.data)
        config["out"] = os.path.abspath(self.out)
        if self.val_data is not None:
            config["val_data"] = os.path.abspath(self.val_data)
        config["export"] = list(self.export)
        return config


# === JSON files (written atomically with mnv3_layers.files) ===


def _read_json(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


# === Output folder ===


def _config_differences(stored, current):
    keys = sorted(set(stored) | set(current))
    return [
        f"{k}: {stored.get(k, '<missing>')!r} -> {current.get(k, '<missing>')!r}"
        for k in keys
        if stored.get(k) != current.get(k)
    ]


def prepare_output_folder(config, overwrite=False, extra_owned=(), write=True):
    """Checks `config.out` and stores the configuration in it.

    A new or empty folder is created and gets `config.json`. A folder with
    the same `config.json` is reused: the run resumes from its checkpoint,
    or is `"complete"` when `metrics.json` exists. A run folder of another
    configuration that holds no results yet (no checkpoint, model or
    metrics: the run stopped before its first epoch ended) takes the new
    configuration. Anything else - another configuration with results, or a
    non-empty folder that is not a run folder - is refused with
    `OutputFolderError`. `overwrite=True` starts a new run in any case: it
    removes the files a run writes (`OWNED_NAMES` and `extra_owned`) and
    leaves every other file alone.

    Args:
        config: a `TrainConfig`.
        overwrite: start a new run, removing an earlier one (of any
            configuration). Defaults to `False`.
        extra_owned: more names in the folder that `overwrite` may remove.
            Defaults to `()`.
        write: create the folder and `config.json` (`False` on non-chief
            workers of a multi-worker run). Defaults to `True`.

    Returns:
        `"new"`, `"resume"` or `"complete"`.

    Raises:
        OutputFolderError: the folder holds another configuration or other
            files, and `overwrite` is `False`; or `out` is a file.
    """
    out = config.out
    current = config.identity()
    if os.path.exists(out) and not os.path.isdir(out):
        raise OutputFolderError(f"`out` must be a folder. Received: out={out!r} is a file")
    entries = sorted(os.listdir(out)) if os.path.isdir(out) else []
    config_path = os.path.join(out, CONFIG_FILE)
    status = "new"
    if entries and overwrite:
        if write:
            for name in tuple(OWNED_NAMES) + tuple(extra_owned):
                path = os.path.join(out, name)
                if os.path.isdir(path) and not os.path.islink(path):
                    shutil.rmtree(path)
                elif os.path.lexists(path):
                    os.remove(path)
    elif entries:
        stored = None
        if os.path.isfile(config_path):
            try:
                stored = _read_json(config_path)
            except (OSError, ValueError):
                stored = None
        has_results = any(
            os.path.exists(os.path.join(out, name))
            for name in ("metrics.json", "model.keras", os.path.join(CHECKPOINT_DIR, STATE_FILE))
        )
        if stored == current:
            status = "complete" if os.path.isfile(os.path.join(out, "metrics.json")) else "resume"
        elif stored is not None and not has_results:
            # A run that stopped before its first checkpoint (e.g. a download
            # error): nothing to lose, the new configuration replaces it.
            if write:
                for name in ("labels.json", LOG_DIR, CHECKPOINT_DIR):
                    path = os.path.join(out, name)
                    if os.path.isdir(path):
                        shutil.rmtree(path)
                    elif os.path.exists(path):
                        os.remove(path)
                write_json_atomic(config_path, current)
            status = "resume"
        elif stored is None:
            foreign = [e for e in entries if e not in tuple(extra_owned)]
            raise OutputFolderError(
                f"The output folder {out!r} is not empty and holds no run configuration "
                f"({', '.join(foreign[:5])}{', ...' if len(foreign) > 5 else ''}). "
                "Nothing was changed. Pass --overwrite (overwrite=True) to write into "
                "it anyway, or choose another --out."
            )
        else:
            differences = _config_differences(stored, current)
            raise OutputFolderError(
                f"The output folder {out!r} holds a run with a different configuration "
                f"({'; '.join(differences)}). Nothing was changed. Pass --overwrite "
                "(overwrite=True) to replace that run, or choose another --out."
            )
    if write:
        os.makedirs(out, exist_ok=True)
        if status == "new":
            write_json_atomic(config_path, current)
    return status


# === Data: folder checks ===


@dataclasses.dataclass(frozen=True)
class ImageFolder:
    """Result of `scan_image_folder`.

    Attributes:
        directory: the folder scanned.
        class_names: sorted class-folder names (label `i` is `class_names[i]`).
        counts: number of usable images per class, in `class_names` order.
        bad_files: `(path, reason)` of every unreadable image or non-image
            file (empty unless `skip_bad_images`).
    """

    directory: str
    class_names: tuple
    counts: tuple
    bad_files: tuple = ()

    @property
    def num_images(self):
        return int(sum(self.counts))


def _check_image(path):
    """Returns `None` if `path` decodes as an image, else the reason."""
    import tensorflow as tf

    try:
        content = tf.io.read_file(path)
        image = tf.io.decode_image(content, channels=3, expand_animations=False)
        shape = tuple(image.shape)
    except Exception as error:  # noqa: BLE001 - any decode failure is reported
        message = str(getattr(error, "message", error)).strip().splitlines()
        return f"cannot be decoded ({type(error).__name__}: {message[0] if message else ''})"
    if len(shape) != 3 or shape[0] < 1 or shape[1] < 1:
        return f"decodes to an empty image of shape {shape}"
    return None


def scan_image_folder(directory, skip_bad_images=False, class_names=None, what="data"):
    """Checks a folder-per-class image folder before training; returns an `ImageFolder`.

    Everything `keras.utils.image_dataset_from_directory` would trip over
    or silently drop is found here, before any training: a missing folder,
    fewer than two class folders, an empty class folder, an image outside
    the class folders, a non-image file (keras reads only `.bmp`, `.gif`,
    `.jpeg`, `.jpg`, `.png` and would ignore it), and an image that does not
    decode (every image is read and decoded with `tf.io.decode_image`, the
    decoder keras uses). Hidden files (`.DS_Store`, ...) are ignored.
    Class folders may contain sub-folders (keras reads them recursively).

    Args:
        directory: the folder.
        skip_bad_images: skip unreadable images and non-image files with a
            warning instead of raising. Defaults to `False`.
        class_names: expected class names (for a validation folder); the
            folder must have exactly these. Defaults to `None`.
        what: the argument name used in messages. Defaults to `"data"`.

    Returns:
        An `ImageFolder`.

    Raises:
        DataError: any of the problems above (for unreadable images and
            non-image files only without `skip_bad_images`), naming the
            folder or file.

    Example:

    >>> from mnv3_layers.training import scan_image_folder
    >>> folder = scan_image_folder("photos")  # doctest: +SKIP
    >>> folder.class_names, folder.counts  # doctest: +SKIP
    (('cat', 'dog'), (120, 98))
    """
    directory = os.fspath(directory)
    if not os.path.isdir(directory):
        raise DataError(
            f"`{what}` must be an existing folder with one sub-folder of images per class. "
            f"Received: {what}={directory!r} (not a folder)"
        )
    entries = sorted(e for e in os.listdir(directory) if not e.startswith("."))
    classes = [e for e in entries if os.path.isdir(os.path.join(directory, e))]
    loose = [e for e in entries if not os.path.isdir(os.path.join(directory, e))]
    loose_images = [e for e in loose if e.lower().endswith(IMAGE_EXTENSIONS)]
    if loose_images:
        raise DataError(
            f"Images must be inside one sub-folder per class of {directory!r}; "
            f"{len(loose_images)} image(s) are directly in it, e.g. {loose_images[0]!r}, "
            "and would be ignored. Move them into class folders."
        )
    if loose:
        warnings.warn(
            f"Ignoring {len(loose)} file(s) directly in {directory!r} (not in a class "
            f"folder): {', '.join(loose[:3])}{', ...' if len(loose) > 3 else ''}",
            UserWarning,
            stacklevel=2,
        )
    if not classes:
        raise DataError(
            f"`{what}` must contain one sub-folder of images per class. Received: "
            f"{what}={directory!r} has no sub-folders."
        )
    if len(classes) < 2:
        raise DataError(
            f"`{what}` must contain at least 2 class folders to train a classifier. "
            f"Received: {what}={directory!r} has one class folder, {classes[0]!r}."
        )
    if class_names is not None and tuple(classes) != tuple(class_names):
        raise DataError(
            f"The class folders of `{what}` ({directory!r}) must be the training classes "
            f"{list(class_names)}. Received: {classes}"
        )

    files = {name: [] for name in classes}
    non_images = []
    for name in classes:
        for root, dirs, names in os.walk(os.path.join(directory, name)):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            for file_name in sorted(names):
                if file_name.startswith("."):
                    continue
                path = os.path.join(root, file_name)
                if file_name.lower().endswith(IMAGE_EXTENSIONS):
                    files[name].append(path)
                else:
                    non_images.append((path, "is not an image file (expected one of "
                                       f"{', '.join(IMAGE_EXTENSIONS)})"))
    empty = [name for name in classes if not files[name]]
    if empty:
        raise DataError(
            f"Every class folder of `{what}` must contain images "
            f"({', '.join(IMAGE_EXTENSIONS)}). Empty class folder(s) in {directory!r}: "
            f"{', '.join(repr(e) for e in empty)}"
        )

    all_paths = [p for name in classes for p in files[name]]
    workers = max(1, min(8, os.cpu_count() or 1))
    with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
        reasons = list(pool.map(_check_image, all_paths))
    unreadable = [(p, r) for p, r in zip(all_paths, reasons) if r is not None]
    bad = non_images + unreadable
    if bad and not skip_bad_images:
        path, reason = bad[0]
        more = f" ({len(bad) - 1} more bad file(s) in {directory!r})" if len(bad) > 1 else ""
        raise DataError(
            f"{path!r} {reason}{more}. Fix or remove it, or pass --skip-bad-images "
            "(skip_bad_images=True) to skip such files with a warning."
        )
    bad_set = {p for p, _ in unreadable}
    counts = tuple(sum(1 for p in files[name] if p not in bad_set) for name in classes)
    if bad:
        for path, reason in bad:
            warnings.warn(f"Skipping {path!r}: it {reason}.", UserWarning, stacklevel=2)
        empty = [name for name, count in zip(classes, counts) if count == 0]
        if empty:
            raise DataError(
                f"After skipping unreadable images, class folder(s) {empty} of "
                f"{directory!r} have no images left."
            )
    return ImageFolder(directory, tuple(classes), counts, tuple(bad))


def resolve_data_folders(data, val_data=None):
    """Returns `(train_folder, val_folder_or_None)` for `data` and `val_data`.

    `data/train` with `data/val` (or `data/validation`) is used as separate
    folders when `data` has these sub-folders and no other class-like folder.
    """
    data = os.fspath(data)
    if val_data is not None:
        return data, os.fspath(val_data)
    if os.path.isdir(data):
        subfolders = {
            e for e in os.listdir(data)
            if not e.startswith(".") and os.path.isdir(os.path.join(data, e))
        }
        for val_name in ("val", "validation"):
            if "train" in subfolders and val_name in subfolders and subfolders <= {
                "train", val_name, "test"
            }:
                return os.path.join(data, "train"), os.path.join(data, val_name)
    return data, None


# === Data: datasets ===


@dataclasses.dataclass
class DataBundle:
    """Datasets and facts about them, from `load_datasets`."""

    train: object
    val: object
    class_names: tuple
    num_train: int
    num_val: int
    global_batch_size: int
    steps_per_epoch: int
    train_folder: str
    val_folder: str
    representative: object = None


def make_augmentation(names, seed=0):
    """A `keras.Sequential` of preprocessing layers for `names` (see `parse_augment`)."""
    layers = []
    # One seed per layer: layers with the same seed draw the same random numbers
    # (a horizontal and a vertical flip would always flip together).
    for index, name in enumerate(parse_augment(names)):
        layer_seed = seed + index
        if name == "flip":
            layers.append(keras.layers.RandomFlip("horizontal", seed=layer_seed))
        elif name == "vflip":
            layers.append(keras.layers.RandomFlip("vertical", seed=layer_seed))
        elif name == "translate":
            layers.append(keras.layers.RandomTranslation(0.1, 0.1, fill_mode="reflect",
                                                         seed=layer_seed))
        elif name == "rotate":
            layers.append(keras.layers.RandomRotation(0.05, fill_mode="reflect", seed=layer_seed))
        elif name == "zoom":
            layers.append(keras.layers.RandomZoom(0.1, fill_mode="reflect", seed=layer_seed))
        elif name == "contrast":
            layers.append(keras.layers.RandomContrast(0.2, value_range=(0, 255),
                                                      seed=layer_seed))
    return keras.Sequential(layers, name="augment") if layers else None


def _drop_bad(dataset, folder, count):
    """Drops the images the scan found unreadable (they raise when decoded).

    `count` is the number of readable images left: stating it keeps the
    dataset's length known to `fit` (`ignore_errors` alone makes it unknown).
    """
    import tensorflow as tf

    if folder.bad_files:
        dataset = dataset.ignore_errors().apply(tf.data.experimental.assert_cardinality(count))
    return dataset


def load_datasets(config, num_replicas=1, log=print, max_representative=100):
    """Scans and loads the image folders of `config`; returns a `DataBundle`.

    Images are read with `keras.utils.image_dataset_from_directory`
    (resized to `image_size`, RGB, float in [0, 255]: the models rescale
    inputs themselves), unbatched, then cached in memory when small,
    shuffled, batched with the global batch `batch_size * num_replicas`,
    augmented and prefetched.
    """
    import tensorflow as tf

    train_dir, val_dir = resolve_data_folders(config.data, config.val_data)
    train_folder = scan_image_folder(train_dir, config.skip_bad_images, what="data")
    val_folder = None
    if val_dir is not None:
        val_folder = scan_image_folder(
            val_dir, config.skip_bad_images, class_names=train_folder.class_names,
            what="val_data",
        )
    size = (config.image_size, config.image_size)
    common = dict(
        labels="inferred", label_mode="int", color_mode="rgb", batch_size=None,
        image_size=size, interpolation="bilinear", crop_to_aspect_ratio=True, verbose=False,
    )
    if val_folder is None:
        train_ds, val_ds = keras.utils.image_dataset_from_directory(
            train_dir, shuffle=True, seed=config.seed, validation_split=config.validation_split,
            subset="both", **common,
        )
        bad = {p for p, _ in train_folder.bad_files}
        num_train = sum(1 for p in train_ds.file_paths if p not in bad)
        num_val = sum(1 for p in val_ds.file_paths if p not in bad)
        if num_train == 0 or num_val == 0:
            raise DataError(
                f"`validation_split={config.validation_split}` leaves "
                f"{num_train} training and {num_val} validation images in {train_dir!r}; "
                "both must be > 0. Add images or change --validation-split."
            )
        val_source = train_folder
    else:
        train_ds = keras.utils.image_dataset_from_directory(
            train_dir, shuffle=config.shuffle, seed=config.seed, **common
        )
        val_ds = keras.utils.image_dataset_from_directory(
            val_dir, shuffle=False, **common
        )
        num_train, num_val = train_folder.num_images, val_folder.num_images
        val_source = val_folder
    train_ds = _drop_bad(train_ds, train_folder, num_train)
    val_ds = _drop_bad(val_ds, val_source, num_val)
    # Calibration images for post-training int8 (un-augmented, decoded again).
    representative = train_ds.take(max_representative)

    global_batch = config.batch_size * num_replicas
    drop_remainder = config.distribution == "tpu"  # TPUs need static shapes.
    decoded_bytes = num_train * config.image_size * config.image_size * 3 * 4
    if decoded_bytes <= 512 * 2**20:
        train_ds = train_ds.cache()
        if config.shuffle:
            train_ds = train_ds.shuffle(num_train, seed=config.seed, reshuffle_each_iteration=True)
        val_ds = val_ds.cache()
    train_ds = train_ds.batch(global_batch, drop_remainder=drop_remainder)
    augment = make_augmentation(config.augment, seed=config.seed)
    if augment is not None:
        train_ds = train_ds.map(
            lambda x, y: (augment(x, training=True), y), num_parallel_calls=tf.data.AUTOTUNE
        )
    val_ds = val_ds.batch(global_batch, drop_remainder=drop_remainder)
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    train_ds = train_ds.with_options(options).prefetch(tf.data.AUTOTUNE)
    val_ds = val_ds.with_options(options).prefetch(tf.data.AUTOTUNE)
    steps = num_train // global_batch if drop_remainder else -(-num_train // global_batch)
    if steps < 1:
        raise DataError(
            f"{num_train} training images make no full global batch of {global_batch} "
            "on a TPU; lower --batch-size."
        )
    log(
        f"data: {num_train} training / {num_val} validation images of "
        f"{config.image_size}x{config.image_size}, {len(train_folder.class_names)} classes "
        f"({', '.join(train_folder.class_names[:8])}"
        f"{', ...' if len(train_folder.class_names) > 8 else ''}); "
        f"validation from {'folder ' + repr(val_dir) if val_dir else 'a seeded split'}"
    )
    return DataBundle(
        train=train_ds, val=val_ds, class_names=train_folder.class_names,
        num_train=num_train, num_val=num_val, global_batch_size=global_batch,
        steps_per_epoch=steps, train_folder=train_dir, val_folder=val_dir,
        representative=representative,
    )


def dataset_to_arrays(dataset, limit=None):
    """Collects `(images, labels)` numpy arrays from a batched `(x, y)` dataset."""
    images, labels, count = [], [], 0
    for x, y in dataset:
        images.append(np.asarray(x))
        labels.append(np.asarray(y))
        count += len(images[-1])
        if limit is not None and count >= limit:
            break
    images = np.concatenate(images)[:limit]
    labels = np.concatenate(labels)[:limit]
    return images, labels


# === Recipes ===


@dataclasses.dataclass(frozen=True)
class Recipe:
    """Optimizer and regularization settings of a run (from `get_recipe`).

    Attributes:
        name: `"default"`, `"sgd"` or `"paper"`.
        optimizer: `"adam"`, `"sgd"` or `"rmsprop"`.
        learning_rate: initial rate for the global batch of the run.
        schedule: `"cosine"` (to 5 % of the initial rate) or `"step"`
            (staircase exponential decay).
        warmup_fraction: fraction of the steps over which the rate rises
            linearly from 0 before the schedule starts.
        bn_momentum: batch-norm momentum of the model.
        dropout_rate: dropout before the classifier.
        l2: L2 penalty on convolution and classifier kernels (0: none).
        ema_momentum: optimizer weight EMA momentum, or `None`.
    """

    name: str
    optimizer: str
    learning_rate: float
    schedule: str
    bn_momentum: float
    dropout_rate: float
    l2: float = 0.0
    ema_momentum: float = None
    warmup_fraction: float = 0.0


def get_recipe(name, global_batch_size, total_steps, pretrained, learning_rate=None,
               bn_momentum=None, dropout_rate=None):
    """Resolves a recipe name into a `Recipe` for a run.

    - `"default"`: Adam, linear warmup over the first 10 % of the steps,
      then cosine decay to 5 %; peak rate 3e-3 from scratch and 1e-3 from
      pretrained weights; batch-norm momentum 0.9 from scratch (short runs:
      the moving statistics must settle within a few hundred steps) and
      0.99 from pretrained weights; dropout 0.2. The main job's recipe (the
      warmup keeps a from-scratch run from stalling at chance for its first
      epochs, which happened without it at 3e-3).
    - `"sgd"`: SGD with momentum 0.9, peak rate 0.01, otherwise as
      `"default"`.
    - `"paper"`: section 6.1 of the paper - RMSProp (rho 0.9) with momentum
      0.9 and epsilon 0.002, initial rate 0.1 at batch 4096 scaled linearly to
      the global batch, rate decay 0.01 (x 0.99) every 3 epochs *scaled to
      the run* (100 staircase decays over the run, as in a 300-epoch run),
      weight EMA 0.9999 through the optimizer's `use_ema` (for runs shorter
      than 100,000 steps the momentum is `1 - 10 / total_steps`, so the
      average spans the last ~10 % of the run instead of staying at the
      initial weights), batch-norm momentum 0.99, L2 1e-5 on the kernels of
      the convolutions and the classifier (not on depthwise kernels, as in
      TF-slim), dropout 0.2 (the paper's "dropout 0.8" is a keep
      probability).

    Args:
        name: `"default"`, `"sgd"` or `"paper"`.
        global_batch_size: images per step over all replicas.
        total_steps: optimizer steps of the phase the recipe schedules.
        pretrained: whether the backbone starts from trained weights.
        learning_rate, bn_momentum, dropout_rate: overrides, or `None`.

    Returns:
        A `Recipe`.

    Example:

    >>> from mnv3_layers.training import get_recipe
    >>> recipe = get_recipe("paper", global_batch_size=256, total_steps=5000,
    ...                     pretrained=False)
    >>> recipe.optimizer, recipe.learning_rate, recipe.ema_momentum, recipe.l2
    ('rmsprop', 0.00625, 0.998, 1e-05)
    """
    _check_choice("recipe", name, RECIPES)
    check_positive_int("global_batch_size", global_batch_size)
    check_positive_int("total_steps", total_steps)
    if name == "paper":
        recipe = Recipe(
            name="paper",
            optimizer="rmsprop",
            learning_rate=PAPER_BASE_LEARNING_RATE * global_batch_size / PAPER_BASE_BATCH,
            schedule="step",
            bn_momentum=0.99,
            dropout_rate=0.2,
            l2=PAPER_L2,
            ema_momentum=min(PAPER_EMA_MOMENTUM, max(0.0, 1.0 - 10.0 / total_steps)),
        )
    else:
        recipe = Recipe(
            name=name,
            optimizer="adam" if name == "default" else "sgd",
            learning_rate=(1e-3 if pretrained else 3e-3) if name == "default" else 0.01,
            schedule="cosine",
            bn_momentum=0.99 if pretrained else 0.9,
            dropout_rate=0.2,
            warmup_fraction=0.1,
        )
    overrides = {}
    if learning_rate is not None:
        overrides["learning_rate"] = float(learning_rate)
    if bn_momentum is not None:
        overrides["bn_momentum"] = float(bn_momentum)
    if dropout_rate is not None:
        overrides["dropout_rate"] = float(dropout_rate)
    return dataclasses.replace(recipe, **overrides)


def make_optimizer(recipe, learning_rate, total_steps):
    """Builds the Keras optimizer of `recipe` with its schedule over `total_steps`.

    `learning_rate` is the peak rate (after the warmup, if any).
    """
    total_steps = check_positive_int("total_steps", total_steps)
    warmup = int(total_steps * recipe.warmup_fraction)
    if recipe.schedule == "cosine" and warmup:
        schedule = keras.optimizers.schedules.CosineDecay(
            0.0, decay_steps=max(1, total_steps - warmup), alpha=0.05,
            warmup_target=learning_rate, warmup_steps=warmup,
        )
    elif recipe.schedule == "cosine":
        schedule = keras.optimizers.schedules.CosineDecay(
            learning_rate, decay_steps=total_steps, alpha=0.05
        )
    else:
        schedule = keras.optimizers.schedules.ExponentialDecay(
            learning_rate,
            decay_steps=max(1, total_steps // PAPER_NUM_DECAYS),
            decay_rate=PAPER_DECAY_RATE,
            staircase=True,
        )
    ema = {}
    if recipe.ema_momentum is not None:
        ema = {"use_ema": True, "ema_momentum": recipe.ema_momentum}
    if recipe.optimizer == "adam":
        return keras.optimizers.Adam(schedule, **ema)
    if recipe.optimizer == "sgd":
        return keras.optimizers.SGD(schedule, momentum=0.9, **ema)
    return keras.optimizers.RMSprop(schedule, rho=0.9, momentum=0.9, epsilon=0.002, **ema)


# === Model ===


def _walk_layers(layer, seen=None):
    """Yields `layer` and every layer nested in it (attributes and `.layers`)."""
    seen = set() if seen is None else seen
    if id(layer) in seen:
        return
    seen.add(id(layer))
    yield layer
    children = list(getattr(layer, "layers", []) or [])
    children += [v for v in vars(layer).values() if isinstance(v, keras.layers.Layer)]
    for child in children:
        yield from _walk_layers(child, seen)


def apply_l2(model, l2):
    """Adds an L2 penalty `l2 * sum(w**2)` on convolution and classifier kernels.

    Sets `variable.regularizer` on the `kernel` of every `Conv2D` and `Dense`
    layer (depthwise kernels, biases and batch norms are left out, as in
    TF-slim's MobileNet training scope); Keras adds the penalties of
    trainable variables to the training loss (`model.losses`).

    Returns:
        The number of kernels regularized.
    """
    if not l2:
        return 0
    regularizer = keras.regularizers.L2(l2)
    count = 0
    for layer in _walk_layers(model):
        if isinstance(layer, (keras.layers.Conv2D, keras.layers.Dense)) and not isinstance(
            layer, keras.layers.DepthwiseConv2D
        ):
            layer.kernel.regularizer = regularizer
            count += 1
    return count


def set_backbone_trainable(model, trainable):
    """Freezes (`False`) or unfreezes (`True`) everything but the classifier head.

    The head is the pooled part of `last_stage` (its 1x1 convolution to
    1024/1280) and `logits`. Frozen batch-norm layers run in inference mode
    (Keras' `BatchNormalization` uses its moving statistics and leaves them
    unchanged when `trainable=False`). Recompile the model after calling.
    """
    for layer in model.layers:
        if layer.name in HEAD_LAYERS:
            layer.trainable = True
        elif isinstance(layer, EfficientLastStage):
            layer.trainable = True
            layer.conv.trainable = trainable
            layer.conv_bn.trainable = trainable
        else:
            layer.trainable = trainable


def _copy_backbone_weights(source, target):
    """Copies every weight of `source` (include_top=False) into `target` by layer name."""
    for layer in source.layers:
        if not layer.weights:
            continue
        target_layer = target.get_layer(layer.name)
        if isinstance(layer, EfficientLastStage):
            target_layer.conv.set_weights(layer.conv.get_weights())
            target_layer.conv_bn.set_weights(layer.conv_bn.get_weights())
        else:
            target_layer.set_weights(layer.get_weights())


def build_classifier(variant, num_classes, image_size, alpha=1.0, minimalistic=False,
                     weights=None, dropout_rate=0.2, bn_momentum=0.99):
    """A MobileNetV3 classifier for `num_classes`, optionally with a pretrained backbone.

    The model is `MobileNetV3Small/Large(include_top=True, classes=num_classes)`
    of `mnv3_layers.applications` (inputs in [0, 255], softmax output). With
    `weights`, everything up to the full-resolution last-stage convolution
    comes from `MobileNetV3*(include_top=False, weights=weights)`: for
    `"imagenet"` the official Keras Applications no-top file (downloaded,
    hash-checked), or a local weights file; the pooled 1024/1280 layer and
    the classifier start from scratch.

    Args:
        variant: `"small"` or `"large"`.
        num_classes: classes, >= 2.
        image_size: square input size, >= 32.
        alpha, minimalistic: as in the applications.
        weights: `None`, `"imagenet"` or a weights file path.
        dropout_rate: dropout before the classifier. Defaults to `0.2`.
        bn_momentum: batch-norm momentum. Defaults to `0.99`.

    Returns:
        An uncompiled `keras.Model`.

    Raises:
        WeightsDownloadError: `"imagenet"` without network access (the message
            says which file to pass instead).
        ValueError: bad arguments, or a weights file of another variant.

    Example:

    >>> from mnv3_layers.training import build_classifier
    >>> model = build_classifier("small", num_classes=5, image_size=64, alpha=0.35)
    >>> model.output_shape
    (None, 5)
    """
    from mnv3_layers.applications import MobileNetV3Large, MobileNetV3Small

    _check_choice("variant", variant, VARIANTS)
    num_classes = check_positive_int("num_classes", num_classes)
    if num_classes < 2:
        raise ValueError(f"`num_classes` must be >= 2. Received: num_classes={num_classes!r}")
    application = MobileNetV3Small if variant == "small" else MobileNetV3Large
    model = application(
        input_shape=(image_size, image_size, 3), alpha=alpha, minimalistic=minimalistic,
        include_top=True, weights=None, classes=num_classes, dropout_rate=dropout_rate,
        bn_momentum=bn_momentum,
    )
    if weights is not None:
        source = application(
            input_shape=(224, 224, 3), alpha=alpha, minimalistic=minimalistic,
            include_top=False, weights=weights, bn_momentum=bn_momentum,
        )
        _copy_backbone_weights(source, model)
        del source
    return model


# === Distribution ===


def make_strategy(distribution="none", tpu=None):
    """The `tf.distribute` strategy for `distribution`.

    - `"none"`: the default (single-device) strategy.
    - `"mirrored"`: `MirroredStrategy` over every local GPU, or over every
      logical CPU device when there is no GPU (set them up with
      `tf.config.set_logical_device_configuration` before TensorFlow starts).
    - `"multiworker"`: `MultiWorkerMirroredStrategy`; the cluster comes from
      the `TF_CONFIG` environment variable (same command on every worker,
      each with its own `task.index`).
    - `"tpu"`: `TPUStrategy` on the TPU named by `tpu` (`""`/`None`: the
      local or environment-configured TPU).

    Raises:
        ValueError: an unknown `distribution`, or `"multiworker"` without a
            valid `TF_CONFIG`.
    """
    import tensorflow as tf

    distribution = "none" if distribution is None else distribution
    _check_choice("distribution", distribution, DISTRIBUTIONS)
    if distribution == "none":
        return tf.distribute.get_strategy()
    if distribution == "mirrored":
        if tf.config.list_logical_devices("GPU"):
            return tf.distribute.MirroredStrategy()
        devices = [d.name for d in tf.config.list_logical_devices("CPU")]
        return tf.distribute.MirroredStrategy(devices=devices)
    if distribution == "multiworker":
        raw = os.environ.get("TF_CONFIG")
        try:
            tf_config = json.loads(raw) if raw else None
        except ValueError:
            tf_config = None
        if not isinstance(tf_config, dict) or "cluster" not in tf_config or "task" not in tf_config:
            raise ValueError(
                "distribution='multiworker' needs the TF_CONFIG environment variable "
                "with 'cluster' and 'task' entries, e.g. TF_CONFIG='{\"cluster\": "
                "{\"worker\": [\"host1:12345\", \"host2:12345\"]}, \"task\": {\"type\": "
                "\"worker\", \"index\": 0}}'. "
                f"Received: TF_CONFIG={raw!r}"
            )
        return tf.distribute.MultiWorkerMirroredStrategy()
    resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu or "")
    tf.config.experimental_connect_to_cluster(resolver)
    tf.tpu.experimental.initialize_tpu_system(resolver)
    return tf.distribute.TPUStrategy(resolver)


def is_chief(strategy):
    """Whether this process writes the run's files (always, except non-chief workers)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    task_type = getattr(resolver, "task_type", None)
    task_id = getattr(resolver, "task_id", None)
    if task_type in (None, "chief"):
        return True
    if task_type == "worker":
        cluster = resolver.cluster_spec().as_dict() if resolver is not None else {}
        return "chief" not in cluster and task_id == 0
    return False


# === Checkpoints ===


def read_checkpoint_state(out):
    """The last checkpoint state of a run folder, or `None`.

    Returns:
        A dict with `"epoch"` (epochs completed), `"phase"` and `"weights"`
        (path of the `.weights.h5` file holding model and optimizer
        variables), or `None` when there is no complete checkpoint.
    """
    path = os.path.join(out, CHECKPOINT_DIR, STATE_FILE)
    if not os.path.isfile(path):
        return None
    state = _read_json(path)
    weights = os.path.join(out, CHECKPOINT_DIR, state["weights"])
    if not os.path.isfile(weights):
        return None
    return dict(state, weights=weights)


class EpochCheckpoint(keras.callbacks.Callback):
    """Saves model and optimizer variables after every epoch, atomically.

    Writes `epoch-NNNN-PHASE.weights.h5` (through a temporary file and
    `os.replace`), then `state.json` pointing to it (the commit point),
    then deletes older checkpoint files. A run killed at any moment leaves
    the previous complete checkpoint or the new one.

    Args:
        directory: the checkpoint folder.
        phase: name of the training phase (stored in the state).
        write: `False` on non-chief workers (they save nothing).
    """

    def __init__(self, directory, phase, write=True):
        super().__init__()
        self.directory = directory
        self.phase = phase
        self.write = write

    def on_epoch_end(self, epoch, logs=None):
        if not self.write:
            return
        os.makedirs(self.directory, exist_ok=True)
        name = f"epoch-{epoch + 1:04d}-{self.phase}.weights.h5"
        atomic_write(os.path.join(self.directory, name), self.model.save_weights,
                     suffix=".weights.h5")
        write_json_atomic(
            os.path.join(self.directory, STATE_FILE),
            {"epoch": epoch + 1, "phase": self.phase, "weights": name,
             "time": time.strftime("%Y-%m-%dT%H:%M:%S")},
        )
        for old in os.listdir(self.directory):
            if old.startswith("epoch-") and old.endswith(".weights.h5") and old != name:
                os.remove(os.path.join(self.directory, old))


def _truncate_csv_log(path, epoch):
    """Keeps the rows of epochs < `epoch` (a resumed run rewrites the later ones)."""
    if not os.path.isfile(path):
        return
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    if not rows:
        return
    header, body = rows[0], rows[1:]
    kept = [r for r in body if r and r[0].isdigit() and int(r[0]) < epoch]
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".csv", dir=folder)
    with os.fdopen(fd, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(kept)
    os.replace(tmp, path)


def read_training_log(path):
    """Reads `training_log.csv` into `{column: [values]}` (one value per epoch)."""
    if not os.path.isfile(path):
        return {}
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    columns = {}
    for row in rows:
        for key, value in row.items():
            try:
                number = float(value)
            except (TypeError, ValueError):
                number = float("nan")
            columns.setdefault(key, []).append(number)
    return columns


# === Plots ===


def plot_training_curves(csv_path, out_dir):
    """Writes `training_curves_loss.png` and `training_curves_accuracy.png`.

    Reads the CSV log (so a resumed run's curves cover every epoch).
    matplotlib is imported here; without it a warning is issued and
    nothing is written.

    Returns:
        The paths written (empty without matplotlib or log).
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        warnings.warn(
            "matplotlib is not installed: training-curve plots are skipped. Install it "
            f"with: {PLOT_INSTALL_HINT}",
            UserWarning,
            stacklevel=2,
        )
        return []
    log = read_training_log(csv_path)
    if not log.get("epoch"):
        return []
    epochs = [int(e) + 1 for e in log["epoch"]]
    written = []
    for metric in ("loss", "accuracy"):
        if metric not in log:
            continue
        figure, axes = plt.subplots(figsize=(6, 4))
        axes.plot(epochs, log[metric], marker="o", label=f"training {metric}")
        if f"val_{metric}" in log:
            axes.plot(epochs, log[f"val_{metric}"], marker="o", label=f"validation {metric}")
        axes.set_xlabel("epoch")
        axes.set_ylabel(metric)
        axes.grid(True, alpha=0.3)
        axes.legend()
        figure.tight_layout()
        path = os.path.join(out_dir, f"training_curves_{metric}.png")
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".png", dir=out_dir)
        os.close(fd)
        figure.savefig(tmp, dpi=100)
        plt.close(figure)
        os.replace(tmp, path)
        written.append(path)
    return written


# === Training ===


@dataclasses.dataclass(frozen=True)
class Phase:
    """One `fit` of a run: epochs `[start, end)` with its own compile."""

    name: str
    start: int
    end: int
    train_backbone: bool
    lr_factor: float
    qat: bool = False


def plan_phases(config):
    """The phases of a run: `"head"` (frozen backbone), `"finetune"`, `"qat"`.

    Example:

    >>> from mnv3_layers.training import TrainConfig, plan_phases
    >>> config = TrainConfig(data="photos", epochs=5, freeze_epochs=2, qat_epochs=1)
    >>> [(p.name, p.start, p.end, p.lr_factor) for p in plan_phases(config)]
    [('head', 0, 2, 1.0), ('finetune', 2, 5, 0.1), ('qat', 5, 6, 0.1)]
    """
    phases = []
    if config.freeze_epochs:
        phases.append(Phase("head", 0, config.freeze_epochs, False, 1.0))
    if config.epochs > config.freeze_epochs:
        factor = config.unfreeze_lr_factor if config.freeze_epochs else 1.0
        phases.append(Phase("finetune", config.freeze_epochs, config.epochs, True, factor))
    if config.qat_epochs:
        phases.append(Phase("qat", config.epochs, config.epochs + config.qat_epochs, True,
                            0.1, qat=True))
    return phases


def _tensorboard_available():
    """Whether TensorBoard event files can be written (TF 2.21 does not install it)."""
    import importlib.util

    if importlib.util.find_spec("tensorboard") is not None:
        return True
    warnings.warn(
        "TensorBoard logs are skipped: the `tensorboard` package is not installed "
        f"(install it with: {TENSORBOARD_INSTALL_HINT}). The CSV log is written.",
        UserWarning,
        stacklevel=3,
    )
    return False


def _compile(model, optimizer, run_eagerly=False):
    model.compile(
        optimizer=optimizer,
        loss=keras.losses.SparseCategoricalCrossentropy(),
        metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
        # XLA compilation costs more than it saves in short CPU runs.
        jit_compile=False,
        run_eagerly=run_eagerly,
    )


def _fit_verbose():
    return 1 if sys.stdout.isatty() else 2


def _size_text(num_bytes):
    return f"{num_bytes / 1024:.1f} KiB" if num_bytes < 2**20 else f"{num_bytes / 2**20:.2f} MiB"


def export_and_measure(model, qat_model, config, data, out, log=print, latency_runs=50):
    """Writes the requested TFLite files; returns `{kind: {path, bytes, accuracy, ...}}`.

    `"float"` and `"dynamic"` come from the float model; `"int8"` from the
    QAT model when there is one, else post-training quantization of the
    float model calibrated on up to 100 training images. Each file's top-1
    accuracy on the validation images (up to 1000) is measured with the
    LiteRT interpreter, and with `config.latency` its batch-1,
    single-thread latency (the paper's protocol); without `ai-edge-litert`
    the files are written and these measurements skipped with a warning.
    """
    from mnv3_layers.latency import measure_latency
    from mnv3_layers.quantization import evaluate_tflite, export_tflite

    import importlib.util

    results = {}
    if not config.export:
        return results
    # The files are written by TensorFlow's converter; running them needs the
    # LiteRT interpreter (an optional extra): without it, say so and skip.
    can_run = importlib.util.find_spec("ai_edge_litert") is not None
    if not can_run:
        warnings.warn(
            "The TFLite files are written, but their accuracy and latency are not "
            "measured: the LiteRT interpreter (`ai-edge-litert`) is not installed. "
            'Install it with: pip install "mnv3-layers[litert]"',
            UserWarning,
            stacklevel=2,
        )
    val_images, val_labels = dataset_to_arrays(data.val, limit=1000)
    representative = None
    for kind in config.export:
        path = os.path.join(out, f"model_{kind}.tflite")
        if kind == "int8" and qat_model is not None:
            export_tflite(qat_model, path, quantization="int8")
            source = "QAT model"
        elif kind == "int8":
            if representative is None:
                representative = np.stack([np.asarray(x) for x, _ in data.representative])
            export_tflite(model, path, quantization="int8", representative_data=representative)
            source = f"post-training quantization, {len(representative)} calibration images"
        else:
            export_tflite(model, path, quantization=None if kind == "float" else "dynamic")
            source = "float model"
        entry = {"path": path, "bytes": os.path.getsize(path), "source": source}
        text = f"exported {os.path.basename(path)}: {_size_text(entry['bytes'])}"
        if can_run:
            _, accuracy = evaluate_tflite(path, val_images, val_labels)
            entry["accuracy"] = float(accuracy)
            entry["accuracy_images"] = int(len(val_images))
            text += f", validation accuracy {accuracy:.3f}"
        text += f" ({source})"
        if config.latency and can_run:
            report = measure_latency(path, runtime="tflite", num_threads=1, warmup=5,
                                     runs=latency_runs)
            entry["latency_ms"] = report.median_ms
            entry["latency_p10_ms"] = report.p10_ms
            entry["latency_p90_ms"] = report.p90_ms
            text += f", latency {report.median_ms:.2f} ms (batch 1, 1 thread, median)"
        results[kind] = entry
        log(text)
    return results


def train(config, overwrite=False, callbacks=(), log=print):
    """Runs (or resumes) the fine-tuning run of `config`; returns its metrics.

    See the module docstring for the steps. Rerunning the same `config`
    into the same `out` folder resumes at the epoch reached; a finished run
    returns its stored metrics.

    Args:
        config: a `TrainConfig`.
        overwrite: start over: remove an earlier run (of any configuration)
            from `config.out` first; other files there are kept.
            Defaults to `False`.
        callbacks: extra Keras callbacks for every `fit`. Defaults to `()`.
        log: function that prints progress lines. Defaults to `print`.

    Returns:
        The metrics dict also written to `out/metrics.json`: validation
        `val_accuracy`/`val_loss` of the float model (inference mode),
        `qat_val_accuracy`, `exports` (path, bytes, accuracy, latency per
        TFLite file), `epochs_completed`, `resumed_from_epoch`,
        `num_replicas`, `global_batch_size`, `optimizer_iterations`,
        `seconds` (this call), ...

    Raises:
        DataError: the image folder cannot be trained on (before training).
        OutputFolderError: `out` holds another run (before training).
        WeightsDownloadError: `weights="imagenet"` without network access.

    Example:

    >>> from mnv3_layers.training import TrainConfig, train
    >>> metrics = train(TrainConfig(data="photos", out="runs/a", epochs=5,  # doctest: +SKIP
    ...                             weights="imagenet", freeze_epochs=2,
    ...                             export=("int8",)))
    >>> metrics["val_accuracy"], metrics["exports"]["int8"]["bytes"]  # doctest: +SKIP
    (0.93, 1187432)
    """
    if not isinstance(config, TrainConfig):
        raise TypeError(
            f"`config` must be a TrainConfig. Received: config of type {type(config).__name__}"
        )
    start_time = time.perf_counter()
    out = config.out
    strategy = make_strategy(config.distribution, config.tpu)
    chief = is_chief(strategy)
    status = prepare_output_folder(config, overwrite=overwrite, write=chief)
    metrics_path = os.path.join(out, "metrics.json")
    if status == "complete":
        log(f"{out!r} holds a finished run of this configuration; nothing to do "
            "(pass --overwrite to train again).")
        return _read_json(metrics_path)

    keras.utils.set_random_seed(config.seed)
    replicas = strategy.num_replicas_in_sync
    data = load_datasets(config, num_replicas=replicas, log=log)
    if chief:
        write_json_atomic(os.path.join(out, "labels.json"), {
            "class_names": list(data.class_names),
            "image_size": config.image_size,
            "variant": config.variant,
            "alpha": config.alpha,
            "minimalistic": config.minimalistic,
        })
    if replicas > 1:
        log(f"distribution: {type(strategy).__name__} with {replicas} replicas; global batch "
            f"{data.global_batch_size} = {config.batch_size} per replica x {replicas}")

    phases = plan_phases(config)
    state = read_checkpoint_state(out)
    resumed_from = state["epoch"] if state else 0
    if state:
        log(f"resuming from the checkpoint after epoch {state['epoch']} "
            f"(phase {state['phase']!r})")
    pretrained = config.weights is not None
    if config.freeze_epochs and not pretrained:
        warnings.warn(
            "`freeze_epochs` with `weights=None` trains a classifier on a randomly "
            "initialized, frozen backbone.", UserWarning, stacklevel=2,
        )
    # Recipe values shared by every phase (model hyper-parameters).
    base = get_recipe(config.recipe, data.global_batch_size, data.steps_per_epoch,
                      pretrained, config.learning_rate, config.bn_momentum,
                      config.dropout_rate)
    log_dir = os.path.join(out, LOG_DIR)
    csv_path = os.path.join(log_dir, CSV_LOG)
    if chief:
        os.makedirs(log_dir, exist_ok=True)
        _truncate_csv_log(csv_path, resumed_from)

    with strategy.scope():
        model = build_classifier(
            config.variant, len(data.class_names), config.image_size, alpha=config.alpha,
            minimalistic=config.minimalistic,
            # A checkpoint holds every weight: do not fetch the pretrained ones again.
            weights=None if state else config.weights,
            dropout_rate=base.dropout_rate, bn_momentum=base.bn_momentum,
        )
        apply_l2(model, base.l2)
    log(f"model: MobileNetV3{config.variant.capitalize()} alpha={config.alpha}"
        f"{' minimalistic' if config.minimalistic else ''}, {model.count_params():,} "
        f"parameters, weights={config.weights or 'none'}, recipe={config.recipe}")

    checkpoint_dir = os.path.join(out, CHECKPOINT_DIR)
    phase_names = [p.name for p in phases]
    state_index = phase_names.index(state["phase"]) if state else -1
    float_model_path = os.path.join(out, "model.keras")
    qat_model = None
    float_metrics = None
    current = model
    for index, phase in enumerate(phases):
        if index < state_index:
            continue  # finished before the checkpoint; its weights are in the checkpoint
        if phase.qat and float_metrics is None:
            if index == state_index:
                # Resuming inside QAT: the float model was saved before QAT began.
                with strategy.scope():
                    model = keras.models.load_model(float_model_path, compile=False)
                _compile(model, "adam", config.run_eagerly)
                float_metrics = _finish_float(model, data, float_model_path, False, log)
            else:
                float_metrics = _finish_float(model, data, float_model_path, chief, log)
        phase_steps = data.steps_per_epoch * (phase.end - phase.start)
        recipe = get_recipe(config.recipe, data.global_batch_size, phase_steps, pretrained,
                            config.learning_rate, config.bn_momentum, config.dropout_rate)
        with strategy.scope():
            if phase.qat:
                from mnv3_layers.quantization import quantize_model

                current = quantize_model(model, engine="keras",
                                         hard_swish=config.qat_hard_swish)
            else:
                set_backbone_trainable(model, phase.train_backbone)
            optimizer = make_optimizer(recipe, recipe.learning_rate * phase.lr_factor,
                                       phase_steps)
            _compile(current, optimizer, config.run_eagerly)
            initial_epoch = phase.start
            if index == state_index:
                optimizer.build(current.trainable_variables)
                current.load_weights(state["weights"])
                initial_epoch = state["epoch"]
        if phase.qat:
            qat_model = current
        if initial_epoch >= phase.end:
            if recipe.ema_momentum is not None:
                # As at the end of `fit`: the averaged weights become the weights.
                optimizer.finalize_variable_values(current.trainable_variables)
            continue
        trainable = sum(int(np.prod(v.shape)) for v in current.trainable_variables)
        log(f"phase {phase.name!r}: epochs {initial_epoch + 1}-{phase.end} of "
            f"{phases[-1].end}, {trainable:,} trainable parameters, "
            f"{recipe.optimizer} lr {recipe.learning_rate * phase.lr_factor:.3g} "
            f"({recipe.schedule} schedule"
            f"{', warmup' if recipe.warmup_fraction else ''})")
        fit_callbacks = []
        if config.latency:
            from mnv3_layers.callbacks import LatencyCallback

            fit_callbacks.append(LatencyCallback(every_n_epochs=1, runs=10))
        if chief:
            fit_callbacks.append(keras.callbacks.CSVLogger(csv_path, append=True))
        fit_callbacks.append(EpochCheckpoint(checkpoint_dir, phase.name, write=chief))
        if chief and _tensorboard_available():
            fit_callbacks.append(keras.callbacks.TensorBoard(
                os.path.join(log_dir, "tensorboard"), write_graph=False, profile_batch=0,
            ))
        if recipe.ema_momentum is not None:
            # Validate with the averaged weights; the checkpoint (before it in
            # the list) saves the raw ones.
            fit_callbacks.append(keras.callbacks.SwapEMAWeights())
        fit_callbacks.extend(callbacks or ())
        with warnings.catch_warnings():
            # The per-epoch Keras latency runs on TensorFlow's training thread
            # pools (they cannot change once training runs); the exported
            # TFLite files are measured single-threaded.
            warnings.filterwarnings("ignore", message="num_threads=1 was not applied",
                                    category=RuntimeWarning)
            current.fit(
                data.train,
                validation_data=data.val,
                epochs=phase.end,
                initial_epoch=initial_epoch,
                callbacks=fit_callbacks,
                shuffle=False,  # the dataset is shuffled (or not) by `load_datasets`
                verbose=_fit_verbose(),
            )

    if float_metrics is None:
        float_metrics = _finish_float(model, data, float_model_path, chief, log)
    metrics = dict(float_metrics)
    if qat_model is not None:
        qat_loss, qat_accuracy = qat_model.evaluate(data.val, verbose=0)
        metrics["qat_val_accuracy"] = float(qat_accuracy)
        metrics["qat_val_loss"] = float(qat_loss)
        log(f"QAT model: validation accuracy {qat_accuracy:.3f}")
        if chief:
            save_model_atomic(qat_model, os.path.join(out, "model_qat.keras"))
    exports = export_and_measure(model, qat_model, config, data, out, log) if chief else {}
    history = read_training_log(csv_path)
    last = {k: v[-1] for k, v in history.items() if v and k != "epoch"}
    metrics.update({
        "train_accuracy": last.get("accuracy"),
        "train_loss": last.get("loss"),
        "epochs_completed": phases[-1].end,
        "resumed_from_epoch": resumed_from,
        "class_names": list(data.class_names),
        "num_train_images": data.num_train,
        "num_val_images": data.num_val,
        "num_replicas": replicas,
        "strategy": type(strategy).__name__,
        "per_replica_batch_size": config.batch_size,
        "global_batch_size": data.global_batch_size,
        "optimizer_iterations": int(keras.ops.convert_to_numpy(current.optimizer.iterations)),
        "exports": exports,
        "seconds": round(time.perf_counter() - start_time, 1),
    })
    if config.latency and "latency_ms" in history:
        measured = [v for v in history["latency_ms"] if not math.isnan(v)]
        if measured:
            metrics["keras_latency_ms_last_epoch"] = measured[-1]
    if chief:
        metrics["plots"] = plot_training_curves(csv_path, out)
        write_json_atomic(metrics_path, metrics)
        # The run is complete: the final model is in model.keras.
        if os.path.isdir(checkpoint_dir):
            shutil.rmtree(checkpoint_dir)
    return metrics


def _finish_float(model, data, path, chief, log):
    """Evaluates the float model in inference mode and saves `model.keras`."""
    loss, accuracy = model.evaluate(data.val, verbose=0)
    log(f"validation accuracy (float model, inference mode): {accuracy:.3f} "
        f"(loss {loss:.3f}, chance {1 / len(data.class_names):.3f})")
    if chief:
        save_model_atomic(model, path)
    return {"val_accuracy": float(accuracy), "val_loss": float(loss),
            "model": os.path.abspath(path)}


# === Demo ===


def write_shapes_folder(folder, num_images, image_size, seed):
    """Writes generated shapes images as PNG files, one sub-folder per class.

    Deterministic for `seed`; every file is written atomically.

    Returns:
        The number of images written.
    """
    import tensorflow as tf

    from mnv3_layers.datasets import SHAPE_NAMES, make_shapes_classification

    images, labels = make_shapes_classification(num_images, image_size=image_size, seed=seed)
    for name in SHAPE_NAMES:
        os.makedirs(os.path.join(folder, name), exist_ok=True)
    for i, (image, label) in enumerate(zip(images, labels)):
        path = os.path.join(folder, SHAPE_NAMES[label], f"{i:05d}.png")
        content = tf.io.encode_png(np.round(image).astype(np.uint8)).numpy()
        tmp = path + ".tmp"
        with open(tmp, "wb") as f:
            f.write(content)
        os.replace(tmp, path)
    return len(images)


DEMO_DEFAULTS = dict(num_images=2000, image_size=64, epochs=12, alpha=1.0, batch_size=32)
DEMO_SMOKE = dict(num_images=40, image_size=32, epochs=1, alpha=0.35, batch_size=16)


def run_demo(out="out/demo", num_images=None, image_size=None, epochs=None, alpha=None,
             batch_size=None, seed=0, smoke=False, overwrite=False, log=print):
    """`mnv3 demo`: fine-tunes MobileNetV3-Small on generated shapes, offline.

    Writes circle/square/triangle images (`mnv3_layers.datasets`) as PNG
    folders (`out/data/train`, 80 %, and `out/data/val`, 20 %, generated
    with different seeds), trains `MobileNetV3Small` from scratch on them
    with `train` (the main job's recipe: Adam, warmup to 3e-3 then cosine decay,
    batch-norm momentum 0.9, dropout 0.1, horizontal and vertical flips), exports float
    and int8 TFLite files, measures their single-thread latency and writes
    `report.json` (the metrics plus timing) and training-curve plots.

    Args:
        out: output folder. Defaults to `"out/demo"`.
        num_images: images in all. Defaults to `2000` (`40` with `smoke`).
        image_size: image size. Defaults to `64` (`32` with `smoke`).
        epochs: epochs. Defaults to `12` (`1` with `smoke`).
        alpha: width multiplier. Defaults to `1.0` (`0.35` with `smoke`).
        batch_size: batch size. Defaults to `32` (`16` with `smoke`).
        seed: seed of the data and training. Defaults to `0`.
        smoke: a short run with the smoke defaults, training eagerly (a
            handful of eager steps costs less than tracing the training step).
            Defaults to `False`.
        overwrite: start over, removing an earlier demo from `out`.
        log: function that prints progress lines. Defaults to `print`.

    Returns:
        The report dict (also `out/report.json`).
    """
    defaults = DEMO_SMOKE if smoke else DEMO_DEFAULTS
    num_images = defaults["num_images"] if num_images is None else num_images
    image_size = defaults["image_size"] if image_size is None else image_size
    epochs = defaults["epochs"] if epochs is None else epochs
    alpha = defaults["alpha"] if alpha is None else alpha
    batch_size = defaults["batch_size"] if batch_size is None else batch_size
    num_images = check_positive_int("num_images", num_images)
    if num_images < 10:
        raise ValueError(f"`num_images` must be >= 10. Received: num_images={num_images!r}")
    start = time.perf_counter()
    num_val = max(3, num_images // 5)
    num_train = num_images - num_val
    config = TrainConfig(
        data=os.path.join(out, "data", "train"),
        val_data=os.path.join(out, "data", "val"),
        out=out,
        variant="small",
        alpha=alpha,
        image_size=image_size,
        epochs=epochs,
        batch_size=batch_size,
        recipe="default",
        learning_rate=3e-3,
        bn_momentum=0.9,
        dropout_rate=0.1,
        # Flips only: exact symmetries of every class. Shifts with reflected
        # borders mirror shapes that touch the border into other shapes, and
        # in measured runs the flip+shift recipe sat at chance for 3 to all 12
        # epochs before it learned (the network first has to find shape
        # features among random colors).
        augment="flip,vflip",
        export=("float", "int8"),
        latency=True,
        seed=seed,
        # A smoke run is a handful of steps: eager steps cost less than a trace.
        run_eagerly=bool(smoke),
    )
    extra = ("data", "report.json")
    status = prepare_output_folder(config, overwrite=overwrite, extra_owned=extra)
    report_path = os.path.join(out, "report.json")
    if status == "complete" and os.path.isfile(report_path):
        log(f"{out!r} holds a finished demo of this configuration (pass --overwrite to "
            "run it again):")
        report = _read_json(report_path)
        log(format_report(report))
        return report
    log(f"writing {num_train} training and {num_val} validation images of "
        f"{image_size}x{image_size} to {os.path.join(out, 'data')!r}")
    data_root = os.path.join(out, "data")
    if os.path.isdir(data_root):
        shutil.rmtree(data_root)  # generated, owned by the demo: write it afresh
    write_shapes_folder(config.data, num_train, image_size, seed)
    write_shapes_folder(config.val_data, num_val, image_size, seed + 1)
    data_seconds = time.perf_counter() - start
    metrics = train(config, log=log)
    report = dict(metrics)
    report["demo"] = {
        "num_images": num_images, "image_size": image_size, "epochs": epochs,
        "alpha": alpha, "smoke": bool(smoke), "data_seconds": round(data_seconds, 1),
    }
    report["seconds"] = round(time.perf_counter() - start, 1)
    write_json_atomic(report_path, report)
    log(format_report(report))
    return report


def format_report(report):
    """A few readable lines summarizing a run's metrics or demo report."""
    lines = [
        f"validation accuracy (float, Keras): {report['val_accuracy']:.3f}"
        + (f"  [QAT: {report['qat_val_accuracy']:.3f}]" if "qat_val_accuracy" in report else "")
    ]
    for kind, entry in report.get("exports", {}).items():
        line = f"  {kind:>7}: {os.path.basename(entry['path'])}  {_size_text(entry['bytes'])}"
        if "accuracy" in entry:
            line += f"  accuracy {entry['accuracy']:.3f}"
        if "latency_ms" in entry:
            line += f"  latency {entry['latency_ms']:.2f} ms (1 thread, batch 1)"
        lines.append(line)
    if report.get("plots"):
        lines.append("  plots: " + ", ".join(os.path.basename(p) for p in report["plots"]))
    lines.append(f"  total time: {report.get('seconds', float('nan')):.0f} s")
    return "\n".join(lines)
