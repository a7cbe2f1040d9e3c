"""Generated images of simple shapes on noisy backgrounds.

Deterministic for a given seed, pure NumPy, no network: the data behind the
package's main job and its learning tests.
"""

import numbers

import numpy as np

SHAPE_NAMES = ("circle", "square", "triangle")


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
    """Images with one shape each (circle, square or triangle) and its class.

    Shapes have random size, position and color on a random-colored noisy
    background; the background and shape colors always differ enough to be
    visible.

    Args:
        num_images: number of images. Defaults to `600`.
        image_size: height and width in pixels, >= 32. Defaults to `64`.
        seed: random seed; the same seed gives the same data. Defaults to `0`.
        noise: standard deviation of the Gaussian pixel noise, in [0, 255]
            units. Defaults to `20.0`.

    Returns:
        `(images, labels)`: `images` float32 `(num_images, size, size, 3)` in
        [0, 255] (the applications rescale inputs themselves), `labels` int32
        `(num_images,)` indexing `SHAPE_NAMES`.

    Example:

    >>> from mnv3_layers.datasets import make_shapes_classification
    >>> images, labels = make_shapes_classification(8, image_size=32)
    >>> images.shape, labels.shape
    ((8, 32, 32, 3), (8,))
    """
    for arg_name, value, low in (("num_images", num_images, 1), ("image_size", image_size, 32)):
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
            raise ValueError(
                f"`{arg_name}` must be an int >= {low}. Received: {arg_name}={value!r}"
            )
    if isinstance(noise, bool) or not isinstance(noise, numbers.Real) or not 0 <= noise <= 255:
        raise ValueError(f"`noise` must be in [0, 255]. Received: noise={noise!r}")
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
