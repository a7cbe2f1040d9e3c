import numpy as np
import pytest

from mnv3_layers.datasets import SHAPE_NAMES, make_shapes_classification


def test_shapes_are_deterministic_and_well_formed():
    images, labels = make_shapes_classification(12, image_size=32, seed=3)
    again, again_labels = make_shapes_classification(12, image_size=32, seed=3)
    other, _ = make_shapes_classification(12, image_size=32, seed=4)
    np.testing.assert_array_equal(images, again)
    np.testing.assert_array_equal(labels, again_labels)
    assert not np.array_equal(images, other)
    assert images.shape == (12, 32, 32, 3) and images.dtype == np.float32
    assert images.min() >= 0 and images.max() <= 255
    assert labels.dtype == np.int32 and set(labels) <= set(range(len(SHAPE_NAMES)))


def test_every_class_appears_and_shape_differs_from_background():
    images, labels = make_shapes_classification(60, image_size=48, seed=0, noise=0.0)
    assert set(labels) == {0, 1, 2}
    for image in images[:10]:
        # Without noise an image has exactly two colors: background and shape.
        colors = np.unique(image.reshape(-1, 3), axis=0)
        assert len(colors) == 2


@pytest.mark.parametrize("kwargs, name", [
    ({"num_images": 0}, "num_images"),
    ({"image_size": 16}, "image_size"),
    ({"image_size": 32.0}, "image_size"),
    ({"noise": -1.0}, "noise"),
])
def test_bad_arguments(kwargs, name):
    with pytest.raises(ValueError, match=name):
        make_shapes_classification(**kwargs)
