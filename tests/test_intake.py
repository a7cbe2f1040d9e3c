"""The one data intake (`mnv3_layers.datasets.intake`) shared by the search and training."""

import numpy as np
import pytest

from mnv3_layers.datasets import intake, make_shapes_classification

tf = pytest.importorskip("tensorflow")


def one_hot(labels, depth):
    return np.eye(depth, dtype="float32")[labels]


@pytest.fixture(scope="module")
def arrays():
    return make_shapes_classification(10, image_size=32, seed=0)


# === Label format and number of classes ===


@pytest.mark.parametrize("n", [3, 10])  # The old code worked only for 2 rows per labels array.
def test_one_hot_arrays_infer_the_one_hot_width(arrays, n):
    x, y = arrays[0][:n], np.zeros(arrays[1][:n].shape, "int32")  # Only class 0 appears.
    data = intake.ClassificationData.from_inputs((x, one_hot(y, 5)), (x, one_hot(y, 5)))
    assert data.one_hot
    assert data.infer_num_classes() == 5


def test_one_hot_dataset_infers_the_one_hot_width(arrays):
    x, y = arrays
    dataset = tf.data.Dataset.from_tensor_slices((x, one_hot(y, 4))).batch(3)
    data = intake.ClassificationData.from_inputs(dataset, dataset)
    assert data.one_hot and data.image_shape == (32, 32, 3)
    assert data.infer_num_classes() == 4


def test_integer_labels_infer_the_largest_label_plus_one(arrays):
    x, y = arrays
    train = (x[:5], np.array([0, 1, 0, 1, 0]))
    val = (x[5:7], np.array([3, 0]))  # The validation labels count too.
    data = intake.ClassificationData.from_inputs(train, val)
    assert not data.one_hot and data.infer_num_classes() == 4
    dataset = tf.data.Dataset.from_tensor_slices(train).batch(2)
    assert intake.ClassificationData.from_inputs(dataset, val).infer_num_classes() == 4


@pytest.mark.parametrize("shape, expected", [((), False), ((1,), False), ((None,), False),
                                             ((3,), True), ((2, 2), False)])
def test_is_one_hot(shape, expected):
    assert intake.is_one_hot(shape) is expected


# === Checks and the validation split ===


def test_split_arrays_holds_out_the_last_fraction(arrays):
    x, y = arrays
    (tx, ty), (vx, vy) = intake.split_arrays(x, y, 0.2)
    assert len(tx) == 8 and len(vx) == 2
    np.testing.assert_array_equal(vx, x[-2:])
    np.testing.assert_array_equal(ty, y[:8])
    data = intake.ClassificationData.from_inputs((x, y), None, validation_split=0.3)
    assert len(data.train_arrays[0]) == 7 and len(data.validation[0]) == 3
    assert data.train_arrays[0].dtype == np.float32


@pytest.mark.parametrize("split, match", [
    (0.01, "leaves no training or no validation image"),
    (0.99, "leaves no training or no validation image"),
    (0.0, r"`validation_split` must be in \(0, 1\)"),
    (1.0, r"`validation_split` must be in \(0, 1\)"),
])
def test_split_arrays_rejects_an_empty_side(arrays, split, match):
    with pytest.raises(ValueError, match=match):
        intake.split_arrays(*arrays, split)


def test_check_arrays_errors(arrays):
    x, y = arrays
    with pytest.raises(TypeError, match="`train_data` must be a tf.data.Dataset"):
        intake.check_arrays("train_data", x)
    with pytest.raises(ValueError, match="`train_data` is empty"):
        intake.check_arrays("train_data", (x[:0], y[:0]))
    with pytest.raises(ValueError, match="must be a 4D array"):
        intake.check_arrays("train_data", (x[:, :, :, 0], y))
    with pytest.raises(ValueError, match="has 10 images but 9 labels"):
        intake.check_arrays("train_data", (x, y[:9]))


def test_datasets_need_batches_and_validation(arrays):
    x, y = arrays
    empty = tf.data.Dataset.from_tensor_slices((x[:0], y[:0])).batch(2)
    with pytest.raises(ValueError, match="`train_data` is empty: the dataset yields no batch"):
        intake.first_batch("train_data", empty)
    images_only = tf.data.Dataset.from_tensor_slices(x).batch(2)
    with pytest.raises(ValueError, match=r"must yield \(images, labels\) batches"):
        intake.first_batch("validation_data", images_only)
    full = tf.data.Dataset.from_tensor_slices((x, y)).batch(2)
    with pytest.raises(ValueError, match="`validation_data` is required"):
        intake.ClassificationData.from_inputs(full, None)


# === Batching ===


def test_batch_dataset_shuffles_by_seed_and_keeps_every_example():
    dataset = tf.data.Dataset.range(10)
    batches = [b.numpy().tolist() for b in intake.batch_dataset(dataset, 4)]
    assert batches == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    dropped = intake.batch_dataset(dataset, 4, drop_remainder=True)
    assert [len(b) for b in dropped] == [4, 4]

    def order(seed):
        shuffled = intake.batch_dataset(dataset, 5, shuffle_buffer=10, seed=seed, cache=True)
        return np.concatenate([b.numpy() for b in shuffled]).tolist()

    assert order(1) == order(1) and order(1) != list(range(10))
    assert sorted(order(2)) == list(range(10))


def test_training_dataset_repeats_and_evaluate_reads_the_validation(arrays):
    import keras

    x, y = arrays
    data = intake.ClassificationData.from_inputs((x[:6], y[:6]), (x[6:], y[6:]), batch_size=4)
    batches = list(data.training_dataset(seed=0).take(4))  # 6 images: 2 batches an epoch.
    assert [len(b[0]) for b in batches] == [4, 2, 4, 2]
    model = keras.Sequential([keras.Input((32, 32, 3)), keras.layers.Flatten(),
                              keras.layers.Dense(3, activation="softmax")])
    model.compile(loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    expected = model.evaluate(x[6:], y[6:], verbose=0, return_dict=True)
    assert data.evaluate(model)["accuracy"] == pytest.approx(expected["accuracy"])


def test_dataset_to_arrays_is_the_one_training_uses(arrays):
    from mnv3_layers.training import dataset_to_arrays

    x, y = arrays
    dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(3)
    images, labels = intake.dataset_to_arrays(dataset, limit=7)
    np.testing.assert_array_equal(images, x[:7])
    np.testing.assert_array_equal(labels, y[:7])
    again = dataset_to_arrays(dataset)
    np.testing.assert_array_equal(again[0], x)
