"""The configuration of a fine-tuning run (`TrainConfig`), its constants and errors."""

import dataclasses
import os

from mnv3_layers._validation import (
    check_bool,
    check_choice,
    check_finite_positive,
    check_fraction,
    check_int,
    check_non_negative_int,
    check_positive_int,
)
from mnv3_layers.plotting import PLOT_INSTALL_HINT  # noqa: F401  (training.PLOT_INSTALL_HINT)
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


def parse_augment(augment):
    """Returns the augmentation names of `augment` as a tuple.

    Args:
        augment: `"none"`, a comma-separated string such as
            `"flip,translate"`, or a sequence of names from `AUGMENTATIONS`.

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


def _field(default, help, **cli):
    """A `TrainConfig` field: its help and `mnv3 train` flag live in the metadata.

    `cli` keys (read by `mnv3_layers.cli.train`): `flag` (default
    `--field-name`), `type` (an argument type of `mnv3_layers.cli._args`),
    `choices`, `action`, `cli_default` (when the flag's default differs),
    `required`.
    """
    metadata = dict(cli, help=help)
    if default is dataclasses.MISSING:
        return dataclasses.field(metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def _folder_path(name, value):
    if not isinstance(value, (str, os.PathLike)) or not os.fspath(value):
        raise ValueError(f"`{name}` must be a folder path. Received: {name}={value!r}")
    return os.fspath(value)


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Everything that defines a fine-tuning run (stored as `out/config.json`).

    Each field's help is written once, in its metadata
    (`dataclasses.fields(TrainConfig)`); `mnv3 train --help` prints it with
    the field's flag. Construction checks the arguments only; the folders and
    the weights file are checked by `train` when the run starts.

    Example:

    >>> from mnv3_layers.training import TrainConfig
    >>> config = TrainConfig(data="photos", out="runs/a", image_size=96, epochs=3)
    >>> config.augment, config.batch_size
    ('flip,translate', 32)
    >>> import dataclasses
    >>> dataclasses.fields(TrainConfig)[9].metadata["help"]
    'float training epochs in all, including --freeze-epochs'
    """

    data: str = _field(
        dataclasses.MISSING, "image folder: one sub-folder per class, or train/ and val/ "
        "(or validation/) sub-folders of that layout", required=True)
    out: str = _field("out/train", "output folder")
    val_data: str = _field(
        None, "separate validation folder with the same class folders (default: DATA/val "
        "if present, else --validation-split)")
    validation_split: float = _field(
        0.2, "fraction of --data held out for validation when there is no validation "
        "folder, in (0, 1); the split is seeded", type="fraction")
    variant: str = _field("small", "MobileNetV3-Small or -Large", choices=VARIANTS)
    alpha: float = _field(1.0, "width multiplier", type="positive_float")
    minimalistic: bool = _field(
        False, "the paper's minimalistic model: 3x3 kernels, ReLU, no SE", action="store_true")
    weights: str = _field(
        None, "backbone weights: imagenet (the official Keras Applications no-top file, "
        "downloaded; alpha 0.75 or 1.0), none, or a path to a weights file (see "
        "build_classifier)", type="weights", cli_default="imagenet")
    image_size: int = _field(224, "square input size in pixels, >= 32", type="positive_int")
    epochs: int = _field(
        10, "float training epochs in all, including --freeze-epochs", type="positive_int")
    batch_size: int = _field(
        32, "batch size per replica; the global batch is this times the number of replicas",
        type="positive_int")
    freeze_epochs: int = _field(
        0, "first epochs with the backbone frozen (batch norms in inference mode), training "
        "only the classifier head; then everything trains at --unfreeze-lr-factor times the "
        "rate", type="non_negative_int")
    unfreeze_lr_factor: float = _field(
        0.1, "learning-rate factor after unfreezing, in (0, 1]", type="positive_float")
    recipe: str = _field(
        "default", "default: Adam, warmup + cosine decay; sgd: SGD momentum 0.9 + cosine; "
        "paper: RMSProp momentum 0.9, step decay, EMA, BN momentum 0.99, L2 1e-5, dropout "
        "0.2 (see get_recipe)", choices=RECIPES)
    learning_rate: float = _field(
        None, "initial learning rate (default: the recipe's)", type="positive_float")
    bn_momentum: float = _field(
        None, "batch-norm momentum (default: the recipe's)", type="fraction")
    dropout_rate: float = _field(
        None, "dropout before the classifier (default: the recipe's)", type="fraction",
        flag="--dropout")
    augment: str = _field(
        "flip,translate", "training augmentation: 'none' or a comma-separated list of "
        f"{', '.join(AUGMENTATIONS)} (Keras preprocessing layers; flip is horizontal)")
    shuffle: bool = _field(
        True, "shuffle the training images each epoch (--no-shuffle keeps folder order)",
        flag="--no-shuffle", action="store_false")
    qat_epochs: int = _field(
        0, "epochs of quantization-aware training after the float training; --export int8 "
        "then exports the QAT model", type="non_negative_int")
    qat_hard_swish: str = _field(
        "op", "int8 hard-swish of the QAT model: op (one HARD_SWISH op) or elementwise "
        "(int8 ADD/MUL/MUL ops that LiteRT's XNNPACK delegate runs, faster on x86 CPUs); "
        "see quantize_model", choices=HARD_SWISH_FORMS)
    export: tuple = _field(
        (), f"TFLite files to write: {', '.join(EXPORTS)} (comma-separated)", type="exports")
    latency: bool = _field(
        False, "log the Keras model's batch-1 latency every epoch (LatencyCallback) and "
        "measure the exported TFLite files (batch 1, 1 thread: the paper's protocol)",
        action="store_true")
    distribution: str = _field(
        "none", "tf.distribute strategy: mirrored (all local GPUs), multiworker (cluster "
        "from TF_CONFIG), tpu", choices=DISTRIBUTIONS)
    tpu: str = _field(
        None, "TPU name or grpc:// address for --distribution tpu ('': the local or "
        "environment-configured TPU)")
    skip_bad_images: bool = _field(
        False, "skip unreadable images and non-image files with a warning instead of "
        "stopping", action="store_true")
    seed: int = _field(
        0, "seed of the split, shuffling, augmentation and initial weights", type="int")
    run_eagerly: bool = _field(
        False, "run the training steps eagerly (no graph trace, which costs tens of seconds "
        "of CPU): faster for a handful of steps, much slower for real runs",
        action="store_true")

    def __post_init__(self):
        self._set("data", _folder_path("data", self.data))
        self._set("out", _folder_path("out", self.out))
        if self.val_data is not None:
            self._set("val_data", os.fspath(self.val_data))
        self._check_model()
        self._check_schedule()
        self._set("augment", ",".join(parse_augment(self.augment)) or "none")
        check_bool("shuffle", self.shuffle)
        check_non_negative_int("qat_epochs", self.qat_epochs)
        check_choice("qat_hard_swish", self.qat_hard_swish, HARD_SWISH_FORMS)
        export = (self.export,) if isinstance(self.export, str) else tuple(self.export or ())
        for kind in export:
            check_choice("export", kind, EXPORTS)
        self._set("export", tuple(k for k in EXPORTS if k in export))
        self._check_run()

    def _set(self, name, value):
        object.__setattr__(self, name, value)

    def _check_model(self):
        check_fraction("validation_split", self.validation_split, allow_zero=False)
        check_choice("variant", self.variant, VARIANTS)
        check_finite_positive("alpha", self.alpha)
        check_bool("minimalistic", self.minimalistic)
        weights = os.fspath(self.weights) if isinstance(self.weights, os.PathLike) else (
            self.weights)
        if isinstance(weights, str) and weights.lower() == "none":
            weights = None
        if weights not in (None, "imagenet"):
            if not isinstance(weights, str) or not weights:
                raise ValueError(
                    "`weights` must be None, 'imagenet' or the path to an existing weights "
                    f"file. Received: weights={self.weights!r}"
                )
            weights = os.path.abspath(weights)  # the file is checked when the run starts
        self._set("weights", weights)
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

    def _check_schedule(self):
        check_positive_int("epochs", self.epochs)
        check_positive_int("batch_size", self.batch_size)
        check_non_negative_int("freeze_epochs", self.freeze_epochs)
        if self.freeze_epochs > self.epochs:
            raise ValueError(
                "`freeze_epochs` must be <= `epochs` (it counts the first epochs of the "
                f"run). Received: freeze_epochs={self.freeze_epochs!r}, epochs={self.epochs!r}"
            )
        check_fraction("unfreeze_lr_factor", self.unfreeze_lr_factor, allow_zero=False,
                       allow_one=True)
        check_choice("recipe", self.recipe, RECIPES)
        check_finite_positive("learning_rate", self.learning_rate, allow_none=True)
        for name in ("bn_momentum", "dropout_rate"):
            if getattr(self, name) is not None:
                check_fraction(name, getattr(self, name))

    def _check_run(self):
        check_bool("latency", self.latency)
        distribution = "none" if self.distribution is None else self.distribution
        self._set("distribution", check_choice("distribution", distribution, DISTRIBUTIONS))
        if self.tpu is not None and distribution != "tpu":
            raise ValueError(
                "`tpu` is only used with distribution='tpu'. "
                f"Received: tpu={self.tpu!r}, distribution={distribution!r}"
            )
        check_bool("skip_bad_images", self.skip_bad_images)
        check_int("seed", self.seed)
        check_bool("run_eagerly", self.run_eagerly)

    def identity(self):
        """The configuration as stored in `config.json` (folders as absolute paths)."""
        config = dataclasses.asdict(self)
        config["data"] = os.path.abspath(self.data)
        config["out"] = os.path.abspath(self.out)
        if self.val_data is not None:
            config["val_data"] = os.path.abspath(self.val_data)
        config["export"] = list(self.export)
        return config
