"""Data intake of a fine-tuning run: folder checks, `keras.utils` datasets, augmentation."""

import concurrent.futures
import dataclasses
import os
import warnings

import keras

from mnv3_layers.datasets import intake
from mnv3_layers.training.config import IMAGE_EXTENSIONS, DataError, parse_augment

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

    Finds what `keras.utils.image_dataset_from_directory` would trip over or
    silently drop: a missing folder, fewer than two or an empty class folder,
    an image outside the class folders, a file not in `IMAGE_EXTENSIONS`, an
    image that does not decode. Hidden files are ignored.

    Args:
        directory: the folder.
        skip_bad_images: skip unreadable images and non-image files with a
            warning instead of raising. Defaults to `False`.
        class_names: expected class names (for a validation folder).
            Defaults to `None`.
        what: the argument name used in messages. Defaults to `"data"`.

    Returns:
        An `ImageFolder`.

    Raises:
        DataError: any of the problems above, naming the folder or file.

    Example:

    >>> from mnv3_layers.training import scan_image_folder
    >>> folder = scan_image_folder("photos")  # doctest: +SKIP
    >>> folder.class_names, folder.counts  # doctest: +SKIP
    (('cat', 'dog'), (120, 98))
    """
    directory = os.fspath(directory)
    classes = _class_folders(directory, what, class_names)
    files, non_images = _class_files(directory, classes, what)
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
    for path, reason in bad:
        warnings.warn(f"Skipping {path!r}: it {reason}.", UserWarning, stacklevel=2)
    empty = [name for name, count in zip(classes, counts) if count == 0]
    if empty:
        raise DataError(
            f"After skipping unreadable images, class folder(s) {empty} of "
            f"{directory!r} have no images left."
        )
    return ImageFolder(directory, tuple(classes), counts, tuple(bad))


def _class_folders(directory, what, class_names):
    """The sorted class folders of `directory`, after the checks of its top level."""
    if not os.path.isdir(directory):
        raise DataError(
            f"`{what}` must be an existing folder with one sub-folder of images per class. "
            f"Received: {what}={directory!r} (not a folder)"
        )
    entries = sorted(e for e in os.listdir(directory) if not e.startswith("."))
    classes = [e for e in entries if os.path.isdir(os.path.join(directory, e))]
    loose = [e for e in entries if e not in classes]
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
            stacklevel=3,
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
    return classes


def _class_files(directory, classes, what):
    """`({class: [image paths]}, [(non-image path, reason)])`; no class may be empty."""
    files = {name: [] for name in classes}
    non_images = []
    for name in classes:
        for root, dirs, names in os.walk(os.path.join(directory, name)):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            for path in (os.path.join(root, n) for n in sorted(names) if not n.startswith(".")):
                if path.lower().endswith(IMAGE_EXTENSIONS):
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
    return files, non_images


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

    `count` (readable images left) keeps the dataset's length known to `fit`.
    """
    import tensorflow as tf

    if folder.bad_files:
        dataset = dataset.ignore_errors().apply(tf.data.experimental.assert_cardinality(count))
    return dataset


def load_datasets(config, num_replicas=1, log=print, max_representative=100):
    """Scans and loads the image folders of `config`; returns a `DataBundle`.

    Images are RGB floats in [0, 255] resized to `image_size`, batched with
    the global batch `batch_size * num_replicas`, augmented and prefetched.
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
    small = num_train * config.image_size * config.image_size * 3 * 4 <= 512 * 2**20
    train_ds = intake.batch_dataset(
        train_ds, global_batch, cache=small, drop_remainder=drop_remainder,
        shuffle_buffer=num_train if small and config.shuffle else None, seed=config.seed,
    )
    augment = make_augmentation(config.augment, seed=config.seed)
    if augment is not None:
        train_ds = train_ds.map(
            lambda x, y: (augment(x, training=True), y), num_parallel_calls=tf.data.AUTOTUNE
        )
    val_ds = intake.batch_dataset(val_ds, global_batch, cache=small,
                                  drop_remainder=drop_remainder)
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
    return intake.dataset_to_arrays(dataset, limit)
