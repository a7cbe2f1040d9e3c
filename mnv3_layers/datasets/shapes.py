"""Generated images of simple shapes on noisy backgrounds.

Deterministic for a given seed, pure NumPy, no network: the data behind the
package's main job and its learning tests.
"""


import numpy as np

from mnv3_layers._validation import check_bool, check_choice, check_min_int, check_number_in

SHAPE_NAMES = ("circle", "square", "triangle")

#: Box format of `make_shapes_detection` (keras-cv name): absolute pixel
#: corners `[x_min, y_min, x_max, y_max]`, pixel edges (a shape covering
#: columns 3..7 has `x_min = 3`, `x_max = 8`).
DETECTION_BOX_FORMAT = "xyxy"

TASKS = ("classification", "detection", "segmentation")


def _shape_mask(kind, size, cy, cx, radius):
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    dy, dx = yy - cy, xx - cx
    if kind == "circle":
        return dy * dy + dx * dx <= radius * radius
    if kind == "square":
        return (np.abs(dy) <= radius * 0.85) & (np.abs(dx) <= radius * 0.85)
    # Upward triangle: apex at the top, base at the bottom.
    top = cy - radius
    height = 2.0 * radius
    rel = (yy - top) / height
    return (rel >= 0) & (rel <= 1) & (np.abs(dx) <= rel * radius)


def make_shapes_classification(num_images=600, image_size=64, seed=0, noise=20.0):
    """Images of one shape each (random size, position and color) and its class.

    Args:
        num_images: number of images. Defaults to `600`.
        image_size: height and width in pixels, >= 32. Defaults to `64`.
        seed: random seed; the same seed gives the same data. Defaults to `0`.
        noise: standard deviation of the Gaussian pixel noise, in [0, 255]
            units. Defaults to `20.0`.

    Returns:
        `(images, labels)`: float32 images `(num_images, size, size, 3)` in
        [0, 255], int32 labels `(num_images,)` indexing `SHAPE_NAMES`.

    Example:

    >>> from mnv3_layers.datasets import make_shapes_classification
    >>> images, labels = make_shapes_classification(8, image_size=32)
    >>> images.shape, labels.shape
    ((8, 32, 32, 3), (8,))
    """
    check_min_int("num_images", num_images, 1)
    check_min_int("image_size", image_size, 32)
    check_number_in("noise", noise, 0, 255)
    rng = np.random.default_rng(seed)
    size = int(image_size)
    images = np.empty((num_images, size, size, 3), np.float32)
    labels = rng.integers(0, len(SHAPE_NAMES), size=num_images).astype(np.int32)
    for i in range(num_images):
        background = rng.uniform(0, 255, size=3)
        color = rng.uniform(0, 255, size=3)
        while np.abs(color - background).max() < 80:
            color = rng.uniform(0, 255, size=3)
        radius = rng.uniform(0.15, 0.35) * size
        cy, cx = rng.uniform(radius, size - radius, size=2)
        mask = _shape_mask(SHAPE_NAMES[labels[i]], size, cy, cx, radius)
        image = np.broadcast_to(background, (size, size, 3)).copy()
        image[mask] = color
        image += rng.normal(0.0, noise, size=image.shape)
        images[i] = np.clip(image, 0, 255)
    return images, labels


def _make_scenes(num_images, image_size, seed, max_objects, noise):
    """Images with 1..max_objects non-overlapping shapes; boxes, classes, masks."""
    check_min_int("num_images", num_images, 1)
    check_min_int("image_size", image_size, 32)
    check_min_int("max_objects", max_objects, 1)
    check_number_in("noise", noise, 0, 255)
    rng = np.random.default_rng(seed)
    size = int(image_size)
    images = np.empty((num_images, size, size, 3), np.float32)
    masks = np.zeros((num_images, size, size), np.int32)
    boxes = np.full((num_images, max_objects, 4), -1.0, np.float32)
    classes = np.full((num_images, max_objects), -1.0, np.float32)
    for i in range(num_images):
        background = rng.uniform(0, 255, size=3)
        image = np.broadcast_to(background, (size, size, 3)).copy()
        placed = []  # (cy, cx, radius) of the shapes drawn so far
        wanted = int(rng.integers(1, max_objects + 1))
        attempts = 0
        while len(placed) < wanted and attempts < 50 * wanted:
            attempts += 1
            # Box side about 0.15-0.45 of the image (radius 0.075-0.225).
            radius = rng.uniform(0.075, 0.225) * size
            cy, cx = rng.uniform(radius, size - radius, size=2)
            # Non-overlapping boxes, with a 2-pixel gap.
            if any(abs(cy - py) < radius + pr + 2 and abs(cx - px) < radius + pr + 2
                   for py, px, pr in placed):
                continue
            label = int(rng.integers(0, len(SHAPE_NAMES)))
            mask = _shape_mask(SHAPE_NAMES[label], size, cy, cx, radius)
            if mask.sum() < 16:
                continue
            color = rng.uniform(0, 255, size=3)
            while np.abs(color - background).max() < 80:
                color = rng.uniform(0, 255, size=3)
            image[mask] = color
            masks[i][mask] = label + 1
            rows, cols = np.nonzero(mask)
            k = len(placed)
            boxes[i, k] = (cols.min(), rows.min(), cols.max() + 1, rows.max() + 1)
            classes[i, k] = label
            placed.append((cy, cx, radius))
        image += rng.normal(0.0, noise, size=image.shape)
        images[i] = np.clip(image, 0, 255)
    return images, boxes, classes, masks


def make_shapes_detection(num_images=200, image_size=128, seed=0, max_objects=4, noise=20.0):
    """Images with 1 to `max_objects` non-overlapping shapes, their tight boxes and classes.

    Args:
        num_images: number of images. Defaults to `200`.
        image_size: height and width in pixels, >= 32. Defaults to `128`.
        seed, noise: as for `make_shapes_classification`.
        max_objects: most shapes per image, >= 1. Defaults to `4`.

    Returns:
        `(images, {"boxes": boxes, "classes": classes})` (keras-cv form):
        float32 images in [0, 255], boxes `(N, max_objects, 4)` in
        `DETECTION_BOX_FORMAT`, classes `(N, max_objects)`; unused rows `-1`.

    Example:

    >>> from mnv3_layers.datasets import make_shapes_detection
    >>> images, labels = make_shapes_detection(4, image_size=64, max_objects=3)
    >>> images.shape, labels["boxes"].shape, labels["classes"].shape
    ((4, 64, 64, 3), (4, 3, 4), (4, 3))
    """
    images, boxes, classes, _ = _make_scenes(num_images, image_size, seed, max_objects, noise)
    return images, {"boxes": boxes, "classes": classes}


def make_shapes_segmentation(num_images=200, image_size=128, seed=0, max_objects=4, noise=20.0):
    """The scenes of `make_shapes_detection` and their per-pixel classes.

    Args:
        num_images, image_size, seed, max_objects, noise: as for
            `make_shapes_detection`.

    Returns:
        `(images, masks)`: float32 images in [0, 255]; int32 masks
        `(num_images, size, size)`, `0` for background and
        `1 + SHAPE_NAMES.index(shape)` for shape pixels.

    Example:

    >>> from mnv3_layers.datasets import make_shapes_segmentation
    >>> images, masks = make_shapes_segmentation(4, image_size=64)
    >>> masks.shape, int(masks.max()) <= 3
    ((4, 64, 64), True)
    """
    images, _, _, masks = _make_scenes(num_images, image_size, seed, max_objects, noise)
    return images, masks


def make_shapes_dataset(
    task,
    num_images=200,
    image_size=128,
    seed=0,
    batch_size=8,
    shuffle=False,
    max_objects=4,
    noise=20.0,
):
    """The generated shapes data as a batched `tf.data.Dataset`.

    Args:
        task: `"classification"`, `"detection"` or `"segmentation"`: the
            targets of `make_shapes_{task}`.
        num_images, image_size, seed, noise: as for the generators.
        batch_size: batch size, >= 1. Defaults to `8`.
        shuffle: reshuffle the images each epoch (seeded). Defaults to
            `False`.
        max_objects: as for `make_shapes_detection`; not used for
            classification. Defaults to `4`.

    Returns:
        A `tf.data.Dataset` of `(images, targets)` batches.

    Example:

    >>> from mnv3_layers.datasets import make_shapes_dataset
    >>> ds = make_shapes_dataset("segmentation", 6, image_size=32, batch_size=4)
    >>> [tuple(x.shape) for x, _ in ds]
    [(4, 32, 32, 3), (2, 32, 32, 3)]
    """
    check_choice("task", task, TASKS)
    check_min_int("batch_size", batch_size, 1)
    check_bool("shuffle", shuffle)
    import tensorflow as tf

    from mnv3_layers.datasets.intake import batch_dataset

    if task == "classification":
        data = make_shapes_classification(num_images, image_size, seed, noise)
    elif task == "detection":
        data = make_shapes_detection(num_images, image_size, seed, max_objects, noise)
    else:
        data = make_shapes_segmentation(num_images, image_size, seed, max_objects, noise)
    return batch_dataset(tf.data.Dataset.from_tensor_slices(data), batch_size,
                         shuffle_buffer=num_images if shuffle else None, seed=seed)
