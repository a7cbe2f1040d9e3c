"""Data intake of search and training: `ClassificationData` (checks, validation split,
labels) and `batch_dataset`; TensorFlow is imported lazily.
"""

import dataclasses

import numpy as np

from mnv3_layers._validation import check_fraction


def is_dataset(data):
    """Whether `data` is a `tf.data.Dataset` (False when TensorFlow is missing)."""
    try:
        import tensorflow as tf
    except ImportError:  # pragma: no cover
        return False
    return isinstance(data, tf.data.Dataset)


def check_arrays(name, data):
    """Checks `(images, labels)` arrays (a pair, non-empty, 4D, one label each); images as float32."""
    if not isinstance(data, (tuple, list)) or len(data) != 2:
        raise TypeError(
            f"`{name}` must be a tf.data.Dataset of (images, labels) batches or a tuple "
            f"(images, labels) of arrays. Received: {name} of type {type(data).__name__}"
        )
    x, y = np.asarray(data[0]), np.asarray(data[1])
    if x.shape[0] == 0 or y.shape[0] == 0:
        raise ValueError(
            f"`{name}` is empty: it must hold at least one image. "
            f"Received: images of shape {x.shape}, labels of shape {y.shape}"
        )
    if x.ndim != 4:
        raise ValueError(
            f"`{name}` images must be a 4D array (N, height, width, channels). "
            f"Received: shape {x.shape}"
        )
    if y.shape[0] != x.shape[0]:
        raise ValueError(f"`{name}` has {x.shape[0]} images but {y.shape[0]} labels.")
    return x.astype("float32"), y


def first_batch(name, dataset):
    """The first `(images, labels, ...)` batch of `dataset`; raises ValueError if it has none."""
    for batch in dataset.take(1):
        if not isinstance(batch, (tuple, list)) or len(batch) < 2:
            raise ValueError(
                f"`{name}` must yield (images, labels) batches. Received an element "
                f"spec {dataset.element_spec}"
            )
        return batch
    raise ValueError(f"`{name}` is empty: the dataset yields no batch. Received: {name}={dataset}")


def split_arrays(x, y, validation_split):
    """Holds out the last `validation_split` of `(x, y)`: `((x, y), (x_val, y_val))`."""
    check_fraction("validation_split", validation_split, allow_zero=False)
    n_val = int(round(len(x) * validation_split))
    if n_val < 1 or n_val >= len(x):
        raise ValueError(
            f"`validation_split` leaves no training or no validation image for "
            f"{len(x)} images. Received: validation_split={validation_split!r}"
        )
    return (x[:-n_val], y[:-n_val]), (x[-n_val:], y[-n_val:])


def is_one_hot(label_shape):
    """Whether labels of per-example shape `label_shape` are one-hot (a vector of > 1)."""
    label_shape = tuple(label_shape)
    return len(label_shape) == 1 and label_shape[0] not in (None, 1)


def infer_num_classes(label_batches, one_hot):
    """Number of classes from label arrays: the one-hot width, or the largest label + 1."""
    top = -1
    for labels in label_batches:
        labels = np.asarray(labels)
        if one_hot:
            return int(labels.shape[-1])
        if labels.size:
            top = max(top, int(labels.max()))
    return top + 1


def batch_dataset(dataset, batch_size, *, shuffle_buffer=None, seed=None, cache=False,
                  drop_remainder=False):
    """`dataset` (of single examples) cached, shuffled and batched, in that order.

    Args:
        dataset: an unbatched `tf.data.Dataset`.
        batch_size: examples per batch.
        shuffle_buffer: shuffle buffer size (reshuffled every epoch), or
            `None` for no shuffle. Defaults to `None`.
        seed: shuffle seed. Defaults to `None`.
        cache: cache the examples in memory first. Defaults to `False`.
        drop_remainder: drop the last, smaller batch. Defaults to `False`.
    """
    if cache:
        dataset = dataset.cache()
    if shuffle_buffer is not None:
        dataset = dataset.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    return dataset.batch(batch_size, drop_remainder=drop_remainder)


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


@dataclasses.dataclass
class ClassificationData:
    """Classifier data from `from_inputs`: `train` (dataset) or `train_arrays`; `validation`."""

    train: object
    train_arrays: object
    validation: object
    image_shape: tuple
    one_hot: bool
    batch_size: int

    @classmethod
    def from_inputs(cls, train_data, validation_data=None, validation_split=0.2, batch_size=32,
                    require_validation="the search ranks proposals on held-out data"):
        """Checks and normalizes `train_data` / `validation_data`.

        Args:
            train_data: `(images, labels)` arrays or a `tf.data.Dataset` of
                such batches.
            validation_data: held-out data in the same form, or `None`: for
                arrays, the last `validation_split` of `train_data`.
            validation_split: see above. Defaults to `0.2`.
            batch_size: batch size of array data. Defaults to `32`.
            require_validation: why a dataset needs `validation_data` (message).
        """
        if is_dataset(train_data):
            images, labels = first_batch("train_data", train_data)[:2]
            if validation_data is None:
                raise ValueError(
                    "`validation_data` is required when `train_data` is a tf.data.Dataset "
                    f"({require_validation}). Received: validation_data=None"
                )
            train, train_arrays = train_data, None
            image_shape, label_shape = tuple(images.shape[1:]), tuple(labels.shape[1:])
        else:
            x, y = check_arrays("train_data", train_data)
            if validation_data is None:
                (x, y), validation_data = split_arrays(x, y, validation_split)
            train, train_arrays = None, (x, y)
            image_shape, label_shape = x.shape[1:], y.shape[1:]
        if is_dataset(validation_data):
            first_batch("validation_data", validation_data)
        else:
            validation_data = check_arrays("validation_data", validation_data)
        return cls(
            train=train, train_arrays=train_arrays, validation=validation_data,
            image_shape=tuple(int(d) if d is not None else None for d in image_shape),
            one_hot=is_one_hot(label_shape), batch_size=batch_size,
        )

    def label_batches(self):
        """Yields the label arrays of the training, then the validation data."""
        for data in (self.train_arrays or self.train, self.validation):
            if isinstance(data, tuple):
                yield data[1]
            else:
                for batch in data:
                    yield np.asarray(batch[1])

    def infer_num_classes(self):
        """Number of classes from the labels (the one-hot width, or largest label + 1)."""
        return infer_num_classes(self.label_batches(), self.one_hot)

    def training_dataset(self, seed):
        """Endless training batches: the dataset repeated, or the arrays shuffled by `seed`."""
        import tensorflow as tf

        if self.train is not None:
            return self.train.repeat()
        x, y = self.train_arrays
        dataset = tf.data.Dataset.from_tensor_slices((x, y))
        dataset = batch_dataset(dataset, self.batch_size, shuffle_buffer=len(x), seed=seed)
        return dataset.repeat().prefetch(2)

    def evaluate(self, model):
        """`model.evaluate` on the validation data; returns the results dict."""
        if isinstance(self.validation, tuple):
            x, y = self.validation
            return model.evaluate(x, y, batch_size=self.batch_size, verbose=0, return_dict=True)
        return model.evaluate(self.validation, verbose=0, return_dict=True)
