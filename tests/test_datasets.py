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


def test_detection_boxes_are_tight_around_their_mask_pixels():
    from mnv3_layers.datasets import make_shapes_detection, make_shapes_segmentation

    images, labels = make_shapes_detection(20, image_size=64, seed=5, max_objects=3)
    same_images, masks = make_shapes_segmentation(20, image_size=64, seed=5, max_objects=3)
    np.testing.assert_array_equal(images, same_images)
    boxes, classes = labels["boxes"], labels["classes"]
    assert boxes.shape == (20, 3, 4) and classes.shape == (20, 3)
    counts = (classes >= 0).sum(axis=1)
    assert counts.min() >= 1 and counts.max() <= 3
    for i in range(20):
        valid = classes[i] >= 0
        # Padding only at the end, and exactly -1.
        assert np.all(valid[: counts[i]]) and not np.any(valid[counts[i]:])
        np.testing.assert_array_equal(boxes[i, ~valid], -1.0)
        covered = np.zeros((64, 64), bool)
        for (x0, y0, x1, y1), label in zip(boxes[i, valid].astype(int), classes[i, valid]):
            inside = masks[i, y0:y1, x0:x1]
            # The box's own shape touches all four of its edges.
            own = inside == label + 1
            assert own[0].any() and own[-1].any() and own[:, 0].any() and own[:, -1].any()
            covered[y0:y1, x0:x1] |= own
        # Every shape pixel lies in a box of its class; boxes do not overlap.
        assert np.array_equal(covered, masks[i] > 0)


def test_segmentation_and_dataset_forms():
    from mnv3_layers.datasets import make_shapes_dataset, make_shapes_segmentation

    _, masks = make_shapes_segmentation(30, image_size=48, seed=1)
    assert masks.dtype == np.int32 and set(np.unique(masks)) == {0, 1, 2, 3}
    ds = make_shapes_dataset("detection", 5, image_size=32, batch_size=2, max_objects=2)
    batches = list(ds)
    assert [int(x.shape[0]) for x, _ in batches] == [2, 2, 1]
    assert tuple(batches[0][1]["boxes"].shape) == (2, 2, 4)
    x, y = next(iter(make_shapes_dataset("classification", 4, image_size=32, batch_size=4)))
    assert tuple(x.shape) == (4, 32, 32, 3) and tuple(y.shape) == (4,)


@pytest.mark.parametrize("kwargs, name", [
    ({"task": "detect"}, "task"),
    ({"task": "detection", "batch_size": 0}, "batch_size"),
    ({"task": "detection", "max_objects": 0}, "max_objects"),
    ({"task": "segmentation", "image_size": 8}, "image_size"),
])
def test_dataset_bad_arguments(kwargs, name):
    from mnv3_layers.datasets import make_shapes_dataset

    with pytest.raises(ValueError, match=name):
        make_shapes_dataset(**kwargs)
