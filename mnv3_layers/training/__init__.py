"""Fine-tuning workflow: a folder of images in; a trained model, int8 file and report out.

`train(TrainConfig(...))`, the library behind `mnv3 train` and `mnv3 demo`,
checks every image, builds the classifier, runs its phases (frozen backbone,
fine-tune, quantization-aware training) with an atomic checkpoint after each
epoch (a rerun resumes at the epoch reached), exports TFLite files and writes
`metrics.json`.

- `config`: `TrainConfig`, the constants and errors of a run.
- `data`: folder checks and datasets.
- `recipes`: optimizers, schedules, regularization, the classifier.
- `run_folder`: the files a run writes, checkpoints, logs, plots.
- `distribute`: `tf.distribute` strategies.
- `loop`: `train`, its phases, exports and report.
- `demo`: `run_demo`, `mnv3 demo` on generated images.
"""

from mnv3_layers.training.config import (
    AUGMENTATIONS,
    CHECKPOINT_DIR,
    CONFIG_FILE,
    CSV_LOG,
    DISTRIBUTIONS,
    DataError,
    EXPORTS,
    HEAD_LAYERS,
    IMAGE_EXTENSIONS,
    LOG_DIR,
    MIN_IMAGE_SIZE,
    OWNED_NAMES,
    OutputFolderError,
    PAPER_BASE_BATCH,
    PAPER_BASE_LEARNING_RATE,
    PAPER_DECAY_RATE,
    PAPER_EMA_MOMENTUM,
    PAPER_L2,
    PAPER_NUM_DECAYS,
    PLOT_INSTALL_HINT,
    RECIPES,
    STATE_FILE,
    TENSORBOARD_INSTALL_HINT,
    TrainConfig,
    VARIANTS,
    parse_augment,
)
from mnv3_layers.training.run_folder import (
    EpochCheckpoint,
    plot_training_curves,
    prepare_output_folder,
    read_checkpoint_state,
    read_training_log,
)
from mnv3_layers.training.data import (
    DataBundle,
    ImageFolder,
    dataset_to_arrays,
    load_datasets,
    make_augmentation,
    resolve_data_folders,
    scan_image_folder,
)
from mnv3_layers.training.recipes import (
    Recipe,
    apply_l2,
    build_classifier,
    get_recipe,
    make_optimizer,
    set_backbone_trainable,
)
from mnv3_layers.training.distribute import (
    is_chief,
    make_strategy,
)
from mnv3_layers.training.loop import (
    Phase,
    export_and_measure,
    format_report,
    plan_phases,
    train,
)
from mnv3_layers.training.demo import (
    DEMO_DEFAULTS,
    DEMO_SMOKE,
    run_demo,
    write_shapes_folder,
)

__all__ = [
    "AUGMENTATIONS",
    "CHECKPOINT_DIR",
    "CONFIG_FILE",
    "CSV_LOG",
    "DEMO_DEFAULTS",
    "DEMO_SMOKE",
    "DISTRIBUTIONS",
    "DataBundle",
    "DataError",
    "EXPORTS",
    "EpochCheckpoint",
    "HEAD_LAYERS",
    "IMAGE_EXTENSIONS",
    "ImageFolder",
    "LOG_DIR",
    "MIN_IMAGE_SIZE",
    "OWNED_NAMES",
    "OutputFolderError",
    "PAPER_BASE_BATCH",
    "PAPER_BASE_LEARNING_RATE",
    "PAPER_DECAY_RATE",
    "PAPER_EMA_MOMENTUM",
    "PAPER_L2",
    "PAPER_NUM_DECAYS",
    "PLOT_INSTALL_HINT",
    "Phase",
    "RECIPES",
    "Recipe",
    "STATE_FILE",
    "TENSORBOARD_INSTALL_HINT",
    "TrainConfig",
    "VARIANTS",
    "apply_l2",
    "build_classifier",
    "dataset_to_arrays",
    "export_and_measure",
    "format_report",
    "get_recipe",
    "is_chief",
    "load_datasets",
    "make_augmentation",
    "make_optimizer",
    "make_strategy",
    "parse_augment",
    "plan_phases",
    "plot_training_curves",
    "prepare_output_folder",
    "read_checkpoint_state",
    "read_training_log",
    "resolve_data_folders",
    "run_demo",
    "scan_image_folder",
    "set_backbone_trainable",
    "train",
    "write_shapes_folder",
]
