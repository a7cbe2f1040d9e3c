"""The configuration of a fine-tuning run (`TrainConfig`), its constants and errors."""

import dataclasses
import math
import numbers
import os

from mnv3_layers._validation import check_fraction, check_positive_int
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
