"""Weights for the applications: ImageNet download and weights-file conversion.

Keras Applications files (flat layers) are matched by name to the sublayers of
our blocks (`keras_applications_name_map`) and fully checked before anything is
assigned. `weights` is `None`, `"imagenet"` (keras.applications' files and md5s,
via `keras.utils.get_file`), a legacy Keras / tf_keras `.h5` (weights or whole
model) or this package's `.weights.h5`; the format is read from the content.
"""

import os
import shutil
import tempfile

import h5py
import keras
import numpy as np

from mnv3_layers.layers.efficient_last_stage import EfficientLastStage
from mnv3_layers.layers.inverted_residual import InvertedResidual

# Same location, file names and hashes as keras.applications.mobilenet_v3.
# Module attributes so tests (and mirrors) can point them elsewhere.
BASE_WEIGHT_PATH = (
    "https://storage.googleapis.com/tensorflow/keras-applications/mobilenet_v3/"
)
WEIGHTS_HASHES = {
    # model name: (md5 of the file with top, md5 of the "no_top_v2" file)
    "large_224_0.75_float": (
        "765b44a33ad4005b3ac83185abf1d0eb",
        "40af19a13ebea4e2ee0c676887f69a2e",
    ),
    "large_224_1.0_float": (
        "59e551e166be033d707958cf9e29a6a7",
        "07fb09a5933dd0c8eaafa16978110389",
    ),
    "large_minimalistic_224_1.0_float": (
        "675e7b876c45c57e9e63e6d90a36599c",
        "ec5221f64a2f6d1ef965a614bdae7973",
    ),
    "small_224_0.75_float": (
        "cb65d4e5be93758266aa0a7f2c6708b7",
        "ebdb5cc8e0b497cd13a7c275d475c819",
    ),
    "small_224_1.0_float": (
        "8768d4c2e7dee89b9d02b2d03d65d862",
        "d3e8ec802a04aa4fc771ee12a9a9b836",
    ),
    "small_minimalistic_224_1.0_float": (
        "99cd97fb2fcdad2bf028eb838de69e37",
        "cde8136e733e811080d9fcd8a252f7e4",
    ),
}
# `cache_dir` passed to `keras.utils.get_file`; None means Keras' default
# (`$KERAS_HOME`, else `~/.keras`).
CACHE_DIR = None

# Layers that exist only with `include_top=True` (keras.applications names).
# A file with top may be loaded into a model without top: these are skipped.
TOP_LAYER_NAMES = ("conv_2", "logits")

_MAX_LISTED = 8


class WeightsDownloadError(RuntimeError):
    """The ImageNet weights file could not be downloaded or failed its hash check."""


# === Argument checks ===


def _is_path(weights):
    return isinstance(weights, (str, os.PathLike)) and not isinstance(weights, bytes)


def check_weights_argument(
    weights, *, model_type, alpha, minimalistic, include_top, classes, classifier_activation
):
    """Validates `weights` and the arguments it constrains, before any model is built.

    Raises:
        ValueError: `weights` is not None, `"imagenet"` or the path to an
            existing file; or, with `"imagenet"`, `alpha`, `classes` or
            `classifier_activation` have no official weights.
    """
    if weights is None:
        return
    if isinstance(weights, str) and weights == "imagenet":
        _check_imagenet_arguments(
            model_type, alpha, minimalistic, include_top, classes, classifier_activation
        )
        return
    if not _is_path(weights) or not os.path.isfile(os.fspath(weights)):
        raise ValueError(
            "`weights` must be None, 'imagenet' or the path to an existing weights "
            f"file. Received: weights={weights!r}"
        )


def _check_imagenet_arguments(
    model_type, alpha, minimalistic, include_top, classes, classifier_activation
):
    allowed = (1.0,) if minimalistic else (0.75, 1.0)
    if isinstance(alpha, bool) or alpha not in allowed:
        raise ValueError(
            "`alpha` must be 0.75 or 1.0 (1.0 with `minimalistic=True`) when "
            f"`weights='imagenet'`. Received: alpha={alpha!r}, "
            f"minimalistic={minimalistic!r}"
        )
    if _imagenet_model_name(model_type, alpha, minimalistic) not in WEIGHTS_HASHES:
        raise ValueError(
            "There are no ImageNet weights for this model. Received: "
            f"model_type={model_type!r}, alpha={alpha!r}, minimalistic={minimalistic!r}"
        )
    if include_top and classes != 1000:
        raise ValueError(
            "`classes` must be 1000 when `weights='imagenet'` and `include_top=True`. "
            f"Received: classes={classes!r}"
        )
    if include_top and not _is_softmax_or_linear(classifier_activation):
        raise ValueError(
            "`classifier_activation` must be 'softmax' or None when "
            "`weights='imagenet'` and `include_top=True`. "
            f"Received: classifier_activation={classifier_activation!r}"
        )


def _is_softmax_or_linear(activation):
    if activation is None or (isinstance(activation, str) and activation in ("softmax", "linear")):
        return True
    return activation in (keras.activations.softmax, keras.activations.linear)


def _imagenet_model_name(model_type, alpha, minimalistic):
    return "{}{}_224_{}_float".format(
        model_type, "_minimalistic" if minimalistic else "", float(alpha)
    )


def imagenet_file_name(model_type, alpha, minimalistic, include_top):
    """keras.applications' file name for the ImageNet weights of a variant."""
    model_name = _imagenet_model_name(model_type, alpha, minimalistic)
    if include_top:
        return f"weights_mobilenet_v3_{model_name}.h5"
    return f"weights_mobilenet_v3_{model_name}_no_top_v2.h5"


# === Loading ===


def load_weights(model, weights, *, model_type, alpha, minimalistic, include_top):
    """Loads `weights` (None, "imagenet" or a file path) into `model`.

    Raises:
        WeightsDownloadError: the `"imagenet"` download or hash check failed
            (the message names the URL, to fetch and pass as a path).
        ValueError: the file is not a supported weights file or does not
            match the model (nothing is assigned in that case).
    """
    if weights is None:
        return
    variant = f"MobileNetV3{model_type.capitalize()}(alpha={alpha!r}, " + (
        f"minimalistic={minimalistic!r}, include_top={include_top!r})"
    )
    if isinstance(weights, str) and weights == "imagenet":
        path = _fetch_imagenet(model_type, alpha, minimalistic, include_top)
    else:
        path = os.fspath(weights)
    load_weights_file(model, path, description=variant)


def _fetch_imagenet(model_type, alpha, minimalistic, include_top):
    model_name = _imagenet_model_name(model_type, alpha, minimalistic)
    file_name = imagenet_file_name(model_type, alpha, minimalistic, include_top)
    file_hash = WEIGHTS_HASHES[model_name][0 if include_top else 1]
    url = BASE_WEIGHT_PATH + file_name
    try:
        if CACHE_DIR is not None:
            # get_file silently uses /tmp/.keras when cache_dir does not exist.
            os.makedirs(CACHE_DIR, exist_ok=True)
        return keras.utils.get_file(
            file_name, url, cache_subdir="models", file_hash=file_hash, cache_dir=CACHE_DIR
        )
    except Exception as error:
        raise WeightsDownloadError(
            f"Downloading the ImageNet weights file {file_name!r} from {url} failed "
            f"({type(error).__name__}: {error}). Without network access, download "
            "the file elsewhere (or copy it from a keras cache, `~/.keras/models/`) "
            f"and pass `weights='/path/to/{file_name}'` instead."
        ) from error


def load_weights_file(model, path, description=None):
    """Loads a legacy Keras/tf_keras `.h5` or a Keras 3 `.weights.h5` into `model`.

    The format is read from the content; all is checked before assigning.

    Args:
        model: a model built by this package.
        path: path to the weights file.
        description: text naming the model, used in error messages.

    Raises:
        ValueError: unsupported file, or a file of another variant.
    """
    path = os.fspath(path)
    fmt = detect_weights_format(path)
    if fmt == "legacy_h5":
        entries = read_legacy_h5(path)
        pairs = _match_entries(
            model,
            entries,
            what=f"`weights` file {path!r}",
            description=description,
        )
        _assign(pairs)
    else:
        _load_keras3_weights(model, path, description)


def detect_weights_format(path):
    """Returns `"legacy_h5"` or `"keras3_weights_h5"` from a file's content.

    Raises:
        ValueError: the file is not an HDF5 weights file of either kind.
    """
    if not h5py.is_hdf5(path):
        raise ValueError(
            "`weights` must be an HDF5 weights file (a legacy Keras `.h5` or a "
            f"Keras 3 `.weights.h5`); this file is not HDF5. Received: weights={path!r}"
        )
    with h5py.File(path, "r") as f:
        if _legacy_root(f) is not None:
            return "legacy_h5"
        if "layers" in f or "vars" in f:
            return "keras3_weights_h5"
    raise ValueError(
        "`weights` is an HDF5 file but neither a legacy Keras weights file (no "
        "`layer_names` attribute) nor a Keras 3 `.weights.h5` (no `layers` group). "
        f"Received: weights={path!r}"
    )


def _legacy_root(f):
    if "layer_names" in f.attrs:
        return f
    if "model_weights" in f and "layer_names" in f["model_weights"].attrs:
        return f["model_weights"]
    return None


def _decode(value):
    return value.decode("utf8") if isinstance(value, bytes) else str(value)


def read_legacy_h5(path):
    """Reads a legacy Keras HDF5 weights file.

    Returns:
        A list of `(layer_name, [arrays])` in file order, for the layers
        that hold weights; names as stored (tf.keras or Keras 3 spelling).
    """
    entries = []
    with h5py.File(path, "r") as f:
        root = _legacy_root(f)
        for name in (_decode(n) for n in root.attrs["layer_names"]):
            group = root[name]
            weight_names = [_decode(n) for n in group.attrs.get("weight_names", [])]
            if weight_names:
                entries.append((name, [np.asarray(group[w]) for w in weight_names]))
    return entries


# === Name map ===


def canonical_layer_name(name):
    """keras.applications (Keras 3) spelling of a legacy layer name.

    For example `Conv/BatchNorm` -> `conv_bn`, `expanded_conv_3/expand` ->
    `expanded_conv_3_expand`, `Logits` -> `logits`.
    """
    name = name.replace("/BatchNorm", "_bn").replace("/", "_")
    return name.lower()


def keras_applications_name_map(model):
    """Maps keras.applications layer names to the layers of our `model` holding them.

    Stem and top layers keep their names; `InvertedResidual` `expanded_conv_{i}`
    gives `expanded_conv_{i}_expand`, `..._depthwise_bn`, `..._squeeze_excite_conv`,
    ...; `EfficientLastStage` gives `conv_1`, `conv_1_bn`, `conv_2`. In
    keras.applications' layer order.

    Returns:
        A dict `{keras_applications_name: layer}`, weight-holding layers only.
    """
    mapping = {}

    def add(name, layer):
        if layer is None or not layer.weights:
            return
        if name in mapping:
            raise ValueError(
                f"Two layers of the model map to the keras.applications name {name!r}."
            )
        mapping[name] = layer

    for layer in model.layers:
        if isinstance(layer, InvertedResidual):
            prefix = layer.name + "_"
            add(prefix + "expand", layer.expand)
            add(prefix + "expand_bn", layer.expand_bn)
            add(prefix + "depthwise", layer.depthwise)
            add(prefix + "depthwise_bn", layer.depthwise_bn)
            se = layer.squeeze_excite
            if se is not None:
                add(prefix + "squeeze_excite_conv", se.reduce)
                add(prefix + "squeeze_excite_conv_1", se.expand)
            add(prefix + "project", layer.project)
            add(prefix + "project_bn", layer.project_bn)
        elif isinstance(layer, EfficientLastStage):
            add("conv_1", layer.conv)
            add("conv_1_bn", layer.conv_bn)
            add("conv_2", layer.head_conv)
        else:
            add(layer.name, layer)
    return mapping


def _listing(names):
    names = list(names)
    shown = ", ".join(names[:_MAX_LISTED])
    if len(names) > _MAX_LISTED:
        shown += f", ... ({len(names)} in all)"
    return f"[{shown}]"


def _match_entries(model, entries, *, what, description=None):
    """Pairs every target layer with its source values; raises on any mismatch.

    `entries`: `(source_layer_name, [arrays])` pairs, matched by canonical
    name, or in order (as Keras' legacy loader) when no name is a
    keras.applications one.
    """
    target = keras_applications_name_map(model)
    source = {}
    duplicates = []
    for name, values in entries:
        key = canonical_layer_name(name)
        if key in source:
            duplicates.append(name)
        source[key] = (name, values)
    model_text = f"the model {description}" if description else f"the model {model.name!r}"
    if duplicates:
        raise ValueError(
            f"{what} does not match {model_text}: layer names repeat after "
            f"normalization: {_listing(duplicates)}."
        )
    if source and not set(source) & set(target):
        keys = list(source)
        if len(keys) != len(target):
            raise ValueError(
                f"{what} does not match {model_text}: none of its layer names is a "
                f"keras.applications MobileNetV3 name and its {len(keys)} weight "
                f"layers cannot be paired in order with the model's {len(target)}."
            )
        source = {t: source[k] for t, k in zip(target, keys)}

    has_top = any(name in target for name in TOP_LAYER_NAMES)
    skippable = () if has_top else TOP_LAYER_NAMES
    missing = [name for name in target if name not in source]
    extra = [name for name in source if name not in target and name not in skippable]
    problems = []
    if missing:
        problems.append(f"missing layers {_listing(missing)}")
    if extra:
        problems.append(f"unexpected layers {_listing(extra)}")
    pairs = []
    shape_problems = []
    for name, layer in target.items():
        if name not in source:
            continue
        source_name, values = source[name]
        expected = [tuple(v.shape) for v in layer.weights]
        received = [tuple(np.shape(v)) for v in values]
        if expected != received:
            shape_problems.append(f"{source_name}: file {received} vs model {expected}")
        pairs.append((layer, values))
    if shape_problems:
        problems.append(f"shape mismatches {_listing(shape_problems)}")
    if problems:
        raise ValueError(
            f"{what} does not match {model_text} (is it for another variant, alpha, "
            f"`minimalistic` or `include_top`?): " + "; ".join(problems) + "."
        )
    return pairs


def _assign(pairs):
    for layer, values in pairs:
        for variable, value in zip(layer.weights, values):
            variable.assign(np.asarray(value, dtype=variable.dtype))


def copy_weights_from_keras_applications(source_model, target_model):
    """Copies weights from an in-memory keras.applications MobileNetV3 into ours.

    The source may be Keras 3 or tf_keras, with or without top (a top is
    skipped for a no-top target); all is checked before anything is assigned.

    Args:
        source_model: the keras.applications model.
        target_model: a model of this package of the same variant.

    Raises:
        ValueError: the models do not correspond (nothing is assigned).
    """
    entries = [
        (layer.name, [np.asarray(w) for w in layer.get_weights()])
        for layer in source_model.layers
        if layer.weights
    ]
    pairs = _match_entries(
        target_model, entries, what=f"the source model {source_model.name!r}"
    )
    _assign(pairs)


# === Keras 3 `.weights.h5` ===


def _h5_datasets(path):
    shapes = {}
    with h5py.File(path, "r") as f:
        if "layers" in f:
            f["layers"].visititems(
                lambda name, obj: shapes.__setitem__(name, tuple(obj.shape))
                if isinstance(obj, h5py.Dataset)
                else None
            )
    return shapes


def _load_keras3_weights(model, path, description):
    model_text = f"the model {description}" if description else f"the model {model.name!r}"
    what = f"`weights` file {path!r}"
    with tempfile.TemporaryDirectory() as tmp:
        reference = os.path.join(tmp, "reference.weights.h5")
        model.save_weights(reference)
        expected = _h5_datasets(reference)
        received = _h5_datasets(path)
        missing = [k for k in expected if k not in received]
        extra = [k for k in received if k not in expected]
        shapes = [
            f"{k}: file {received[k]} vs model {expected[k]}"
            for k in expected
            if k in received and received[k] != expected[k]
        ]
        problems = []
        if missing:
            problems.append(f"missing variables {_listing(missing)}")
        if extra:
            problems.append(f"unexpected variables {_listing(extra)}")
        if shapes:
            problems.append(f"shape mismatches {_listing(shapes)}")
        if problems:
            raise ValueError(
                f"{what} does not match {model_text} (is it for another variant, "
                "alpha, `minimalistic` or `include_top`?): " + "; ".join(problems) + "."
            )
        # keras picks the reader from the suffix; give it the one it expects.
        if not path.endswith(".weights.h5"):
            alias = os.path.join(tmp, "weights.weights.h5")
            shutil.copyfile(path, alias)
            path_to_load = alias
        else:
            path_to_load = path
        snapshot = [np.array(keras.ops.convert_to_numpy(v)) for v in model.weights]
        try:
            model.load_weights(path_to_load)
        except Exception as error:
            for variable, value in zip(model.weights, snapshot):
                variable.assign(value)
            raise ValueError(f"{what} could not be loaded into {model_text}: {error}") from error
