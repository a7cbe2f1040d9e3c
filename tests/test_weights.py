"""Weights loading: legacy tf_keras/Keras `.h5`, own `.weights.h5`, "imagenet" offline."""

import hashlib
import shutil
import warnings

import h5py
import keras
import numpy as np
import pytest

from mnv3_layers.applications import MobileNetV3Large, MobileNetV3Small
from mnv3_layers.applications import weights as weights_lib
from random_weights import randomize_weights

OURS = {"large": MobileNetV3Large, "small": MobileNetV3Small}
TOLERANCE = 1e-4
SIZE = (96, 96)  # weights do not depend on the input size

slow = pytest.mark.slow


def to_numpy(variable):
    return np.array(keras.ops.convert_to_numpy(variable))


def tf_keras_module():
    return pytest.importorskip("tf_keras")




def tf_keras_model(variant, size=SIZE, **kwargs):
    tf_keras = tf_keras_module()
    builder = {
        "large": tf_keras.applications.MobileNetV3Large,
        "small": tf_keras.applications.MobileNetV3Small,
    }[variant]
    kwargs.setdefault("classifier_activation", None)
    return builder(input_shape=size + (3,), weights=None, **kwargs)


def numpy_output(model, x):
    return np.asarray(model(x, training=False))


def random_images(rng, size=SIZE, batch=2):
    return rng.uniform(0.0, 255.0, (batch,) + size + (3,)).astype("float32")


def snapshot(model):
    return [to_numpy(v) for v in model.weights]


def assert_unchanged(model, before):
    assert len(before) == len(model.weights)
    for value, variable in zip(before, model.weights):
        np.testing.assert_array_equal(value, to_numpy(variable))


@pytest.fixture(scope="module")
def small_legacy_file(tmp_path_factory):
    """A tf_keras MobileNetV3Small (alpha 1, top) with random weights, saved twice.

    Returns `(weights_path, whole_model_path, x, expected_output)`: the
    `save_weights` `.h5` and the whole model saved as `.h5` (weights under
    `model_weights`). Built once per module: tf_keras models are slow to build.
    """
    folder = tmp_path_factory.mktemp("legacy")
    rng = np.random.default_rng(1)
    source = tf_keras_model("small")
    randomize_weights(source, rng)
    path = folder / "small.h5"
    source.save_weights(str(path))
    whole = folder / "whole_model.h5"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "HDF5 format is legacy"
        source.save(str(whole))
    x = random_images(rng)
    return path, whole, x, numpy_output(source, x)


# === (a) legacy tf_keras files ===

LEGACY_CASES = [
    pytest.param("small", 0.75, False, False, id="small-0.75-notop"),
    pytest.param("small", 1.0, False, True, id="small-1.0-top", marks=slow),
    pytest.param("small", 1.0, False, False, id="small-1.0-notop", marks=slow),
    pytest.param("small", 0.75, False, True, id="small-0.75-top", marks=slow),
    pytest.param("small", 1.0, True, True, id="small-min-top", marks=slow),
    pytest.param("small", 1.0, True, False, id="small-min-notop", marks=slow),
    pytest.param("large", 1.0, False, True, id="large-1.0-top", marks=slow),
    pytest.param("large", 1.0, False, False, id="large-1.0-notop", marks=slow),
    pytest.param("large", 0.75, False, True, id="large-0.75-top", marks=slow),
    pytest.param("large", 0.75, False, False, id="large-0.75-notop", marks=slow),
    pytest.param("large", 1.0, True, True, id="large-min-top", marks=slow),
    pytest.param("large", 1.0, True, False, id="large-min-notop", marks=slow),
]


@pytest.mark.parametrize("variant, alpha, minimalistic, include_top", LEGACY_CASES)
def test_tf_keras_legacy_h5_file(tmp_path, variant, alpha, minimalistic, include_top):
    rng = np.random.default_rng(0)
    kwargs = dict(alpha=alpha, minimalistic=minimalistic, include_top=include_top)
    source = tf_keras_model(variant, **kwargs)
    randomize_weights(source, rng)
    path = tmp_path / "x.h5"
    source.save_weights(str(path))
    x = random_images(rng)
    expected = numpy_output(source, x)

    # tf_keras (Keras 2) in the same process must leave Keras 3 working.
    assert keras.__version__.startswith("3.")
    ours = OURS[variant](
        input_shape=SIZE + (3,), weights=str(path), classifier_activation=None, **kwargs
    )
    assert isinstance(ours, keras.Model)
    assert ours.count_params() == source.count_params()
    received = numpy_output(ours, x)
    assert received.shape == expected.shape
    assert np.abs(expected).max() > 0.1
    np.testing.assert_allclose(received, expected, rtol=0, atol=TOLERANCE)


def test_whole_model_h5_and_content_detection(tmp_path, small_legacy_file):
    path, whole, x, expected = small_legacy_file
    # The format comes from the content, not the extension.
    renamed = tmp_path / "weights.bin"
    shutil.copyfile(path, renamed)
    ours = MobileNetV3Small(input_shape=SIZE + (3,), weights=None, classifier_activation=None)
    for file in (whole, renamed):
        assert weights_lib.detect_weights_format(str(file)) == "legacy_h5"
        ours.set_weights([np.zeros(v.shape, "float32") for v in ours.weights])
        weights_lib.load_weights_file(ours, file)
        np.testing.assert_allclose(numpy_output(ours, x), expected, rtol=0, atol=TOLERANCE)


def test_legacy_file_with_unknown_layer_names_loads_in_order(tmp_path, small_legacy_file):
    path, _, x, expected = small_legacy_file
    entries = weights_lib.read_legacy_h5(str(path))
    renamed = tmp_path / "renamed.h5"
    with h5py.File(renamed, "w") as f:
        names = [f"layer_{i}" for i in range(len(entries))]
        f.attrs["layer_names"] = [n.encode() for n in names]
        for name, (_, values) in zip(names, entries):
            group = f.create_group(name)
            weight_names = [f"{name}/w{j}:0" for j in range(len(values))]
            group.attrs["weight_names"] = [n.encode() for n in weight_names]
            for weight_name, value in zip(weight_names, values):
                group.create_dataset(weight_name, data=value)
    ours = MobileNetV3Small(input_shape=SIZE + (3,), weights=renamed, classifier_activation=None)
    np.testing.assert_allclose(numpy_output(ours, x), expected, rtol=0, atol=TOLERANCE)


def test_top_file_into_model_without_top_skips_top_layers(small_legacy_file):
    path, _, _, _ = small_legacy_file
    with_top = MobileNetV3Small(input_shape=SIZE + (3,), weights=path)
    without_top = MobileNetV3Small(input_shape=SIZE + (3,), weights=path, include_top=False)
    top_map = weights_lib.keras_applications_name_map(with_top)
    notop_map = weights_lib.keras_applications_name_map(without_top)
    assert set(top_map) - set(notop_map) == set(weights_lib.TOP_LAYER_NAMES)
    for name, layer in notop_map.items():
        for a, b in zip(layer.weights, top_map[name].weights):
            np.testing.assert_array_equal(to_numpy(a), to_numpy(b))


# === (b) own Keras 3 `.weights.h5` ===


def test_own_weights_h5_round_trip(tmp_path):
    rng = np.random.default_rng(2)
    model = MobileNetV3Small(input_shape=(32, 32, 3), weights=None, minimalistic=True)
    randomize_weights(model, rng)
    path = tmp_path / "own.weights.h5"
    model.save_weights(str(path))
    x = random_images(rng, size=(32, 32))
    expected = numpy_output(model, x)
    renamed = tmp_path / "own_weights.h5"  # no `.weights.h5` suffix
    shutil.copyfile(path, renamed)
    loaded = MobileNetV3Small(input_shape=(32, 32, 3), weights=path, minimalistic=True)
    np.testing.assert_array_equal(numpy_output(loaded, x), expected)
    assert weights_lib.detect_weights_format(str(renamed)) == "keras3_weights_h5"
    loaded.set_weights([np.zeros(v.shape, "float32") for v in loaded.weights])
    weights_lib.load_weights_file(loaded, renamed)
    np.testing.assert_array_equal(numpy_output(loaded, x), expected)


# === (c) files of another variant ===


def test_legacy_file_of_other_variant_raises_and_leaves_model_unchanged(small_legacy_file):
    path, _, _, _ = small_legacy_file
    target = MobileNetV3Small(input_shape=SIZE + (3,), weights=None, minimalistic=True)
    before = snapshot(target)
    with pytest.raises(ValueError, match=r"`weights` file .*small\.h5.* does not match"):
        weights_lib.load_weights_file(target, path)
    assert_unchanged(target, before)
    # Through the constructor the message names the requested variant.
    with pytest.raises(ValueError, match=r"MobileNetV3Small\(alpha=0.75.*shape mismatches"):
        MobileNetV3Small(input_shape=SIZE + (3,), weights=path, alpha=0.75)


@slow
def test_small_file_into_large_raises(small_legacy_file):
    path, _, _, _ = small_legacy_file
    target = MobileNetV3Large(input_shape=SIZE + (3,), weights=None)
    before = snapshot(target)
    with pytest.raises(ValueError, match="missing layers.*expanded_conv_11"):
        weights_lib.load_weights_file(target, path)
    assert_unchanged(target, before)


def test_file_without_top_into_model_with_top_raises(tmp_path):
    source = MobileNetV3Small(input_shape=(32, 32, 3), weights=None, include_top=False)
    path = tmp_path / "notop.weights.h5"
    source.save_weights(str(path))
    target = MobileNetV3Small(input_shape=(32, 32, 3), weights=None)
    before = snapshot(target)
    with pytest.raises(ValueError, match=r"`weights` file .*notop\.weights\.h5.*missing"):
        weights_lib.load_weights_file(target, path)
    assert_unchanged(target, before)

    legacy = tmp_path / "notop.h5"
    with h5py.File(legacy, "w") as f:
        entries = [
            (name, layer.get_weights())
            for name, layer in weights_lib.keras_applications_name_map(source).items()
        ]
        f.attrs["layer_names"] = [name.encode() for name, _ in entries]
        for name, values in entries:
            group = f.create_group(name)
            weight_names = [f"{name}/{j}:0" for j in range(len(values))]
            group.attrs["weight_names"] = [n.encode() for n in weight_names]
            for weight_name, value in zip(weight_names, values):
                group.create_dataset(weight_name, data=value)
    with pytest.raises(ValueError, match=r"missing layers \[conv_2, logits\]"):
        weights_lib.load_weights_file(target, legacy)
    assert_unchanged(target, before)


def test_not_a_weights_file_raises(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("not weights")
    with pytest.raises(ValueError, match="`weights`.*not HDF5.*notes.txt"):
        MobileNetV3Small(input_shape=(32, 32, 3), weights=path, minimalistic=True)
    empty = tmp_path / "empty.h5"
    h5py.File(empty, "w").close()
    with pytest.raises(ValueError, match="`weights`.*neither"):
        weights_lib.detect_weights_format(str(empty))


# === (d) "imagenet", offline ===

IMAGENET_NAME = "small_224_1.0_float"
IMAGENET_FILE = "weights_mobilenet_v3_small_224_1.0_float.h5"


@pytest.fixture
def served_imagenet(tmp_path, monkeypatch, small_legacy_file):
    """Serves a legacy file under the official name from a `file://` folder."""
    path, _, x, expected = small_legacy_file
    served = tmp_path / "served"
    served.mkdir()
    shutil.copyfile(path, served / IMAGENET_FILE)
    md5 = hashlib.md5((served / IMAGENET_FILE).read_bytes()).hexdigest()
    monkeypatch.setattr(weights_lib, "BASE_WEIGHT_PATH", served.as_uri() + "/")
    monkeypatch.setitem(weights_lib.WEIGHTS_HASHES, IMAGENET_NAME, (md5, "0" * 32))
    monkeypatch.setattr(weights_lib, "CACHE_DIR", str(tmp_path / "cache"))
    return x, expected


def imagenet_small():
    with pytest.warns(UserWarning, match="224x224"):
        return MobileNetV3Small(
            input_shape=SIZE + (3,), weights="imagenet", classifier_activation=None
        )


def test_imagenet_download_checks_hash_and_loads(tmp_path, served_imagenet):
    x, expected = served_imagenet
    model = imagenet_small()
    assert (tmp_path / "cache" / "models" / IMAGENET_FILE).is_file()
    np.testing.assert_allclose(numpy_output(model, x), expected, rtol=0, atol=TOLERANCE)


def test_imagenet_wrong_hash_raises(monkeypatch, served_imagenet):
    monkeypatch.setitem(weights_lib.WEIGHTS_HASHES, IMAGENET_NAME, ("f" * 32, "f" * 32))
    with pytest.raises(weights_lib.WeightsDownloadError, match="corrupted") as info:
        imagenet_small()
    assert IMAGENET_FILE in str(info.value)


def test_imagenet_download_failure_names_file_and_url(monkeypatch):
    def offline(*args, **kwargs):
        raise OSError("Network is unreachable")

    monkeypatch.setattr(keras.utils, "get_file", offline)
    with pytest.raises(weights_lib.WeightsDownloadError) as info:
        with pytest.warns(UserWarning, match="224x224"):
            MobileNetV3Small(input_shape=(32, 32, 3), weights="imagenet", include_top=False)
    message = str(info.value)
    no_top_file = "weights_mobilenet_v3_small_224_1.0_float_no_top_v2.h5"
    assert "failed" in message
    assert weights_lib.BASE_WEIGHT_PATH + no_top_file in message
    assert f"weights='/path/to/{no_top_file}'" in message
    assert isinstance(info.value, RuntimeError)
    assert isinstance(info.value.__cause__, OSError)


def test_imagenet_file_names_match_keras_applications():
    assert weights_lib.imagenet_file_name("large", 1, False, True) == (
        "weights_mobilenet_v3_large_224_1.0_float.h5"
    )
    assert weights_lib.imagenet_file_name("small", 0.75, False, False) == (
        "weights_mobilenet_v3_small_224_0.75_float_no_top_v2.h5"
    )
    from keras.src.applications import mobilenet_v3 as keras_mobilenet_v3

    assert weights_lib.BASE_WEIGHT_PATH == keras_mobilenet_v3.BASE_WEIGHT_PATH
    assert weights_lib.WEIGHTS_HASHES == keras_mobilenet_v3.WEIGHTS_HASHES


# === (e) bad `weights` arguments ===


@pytest.mark.parametrize(
    "kwargs, pattern",
    [
        (dict(weights="/no/such/file.h5"), r"`weights`.*Received: weights='/no/such/file.h5'"),
        (dict(weights=3), r"`weights`.*Received: weights=3"),
        (dict(weights="imagenet", alpha=0.5), r"`alpha`.*Received: alpha=0.5"),
        (dict(weights="imagenet", alpha=0.75, minimalistic=True), r"`alpha`.*alpha=0.75"),
        (dict(weights="imagenet", classes=10), r"`classes`.*Received: classes=10"),
        (
            dict(weights="imagenet", classifier_activation="relu"),
            r"`classifier_activation`.*Received: classifier_activation='relu'",
        ),
    ],
)
def test_bad_weights_arguments(kwargs, pattern):
    with pytest.raises(ValueError, match=pattern):
        MobileNetV3Small(**kwargs)


def test_imagenet_without_top_accepts_any_classes_and_activation(monkeypatch):
    calls = []

    def fake_get_file(fname, origin, **kwargs):
        calls.append((fname, origin, kwargs))
        raise OSError("offline")

    monkeypatch.setattr(keras.utils, "get_file", fake_get_file)
    with pytest.raises(weights_lib.WeightsDownloadError), pytest.warns(UserWarning):
        MobileNetV3Large(
            input_shape=(32, 32, 3), weights="imagenet", include_top=False, alpha=0.75,
            classes=10, classifier_activation="relu",
        )
    (fname, origin, kwargs), = calls
    assert fname == "weights_mobilenet_v3_large_224_0.75_float_no_top_v2.h5"
    assert origin == weights_lib.BASE_WEIGHT_PATH + fname
    assert kwargs["cache_subdir"] == "models"
    assert kwargs["file_hash"] == weights_lib.WEIGHTS_HASHES["large_224_0.75_float"][1]
