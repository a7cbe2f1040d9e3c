"""Registry-driven checks of MobileNetV3Large/Small against keras.applications' behaviour."""

import keras
import numpy as np
import pytest

from mnv3_layers import EfficientLastStage, InvertedResidual
from mnv3_layers.applications import MobileNetV3Large, MobileNetV3Small
from mnv3_layers.architecture.block_spec import resolve_architecture

# (builder, alpha, minimalistic): every variant keras.applications ships weights for.
VARIANTS = [
    pytest.param(MobileNetV3Large, 1.0, False, id="large-1.0"),
    pytest.param(MobileNetV3Large, 0.75, False, id="large-0.75"),
    pytest.param(MobileNetV3Large, 1.0, True, id="large-minimalistic"),
    pytest.param(MobileNetV3Small, 1.0, False, id="small-1.0"),
    pytest.param(MobileNetV3Small, 0.75, False, id="small-0.75"),
    pytest.param(MobileNetV3Small, 1.0, True, id="small-minimalistic"),
]


def _variant_name(builder):
    return "large" if builder is MobileNetV3Large else "small"


@pytest.mark.parametrize("builder, alpha, minimalistic", VARIANTS)
def test_structure_and_shapes(builder, alpha, minimalistic):
    arch = resolve_architecture(_variant_name(builder), alpha, minimalistic)
    model = builder(input_shape=(64, 64, 3), alpha=alpha, minimalistic=minimalistic,
                    weights=None, classes=7)
    assert model.output_shape == (None, 7)
    blocks = [layer for layer in model.layers if isinstance(layer, InvertedResidual)]
    assert [b.name for b in blocks] == ["expanded_conv"] + [
        f"expanded_conv_{i}" for i in range(1, len(arch.blocks))
    ]
    for block, config in zip(blocks, arch.blocks):
        assert block.expanded_filters == config.expanded_filters
        assert block.filters == config.filters
        assert block.kernel_size == (3 if minimalistic else config.kernel_size)
        assert (block.squeeze_excite is None) == (config.se_ratio is None)
    assert isinstance(model.get_layer("last_stage"), EfficientLastStage)
    predictions = model.get_layer("predictions")
    assert isinstance(predictions, keras.layers.Activation)

    features = builder(input_shape=(64, 64, 3), alpha=alpha, minimalistic=minimalistic,
                       weights=None, include_top=False)
    assert features.output_shape == (None, 2, 2, arch.last_stage_filters)
    for pooling in ("avg", "max"):
        pooled = builder(input_shape=(64, 64, 3), alpha=alpha, minimalistic=minimalistic,
                         weights=None, include_top=False, pooling=pooling)
        assert pooled.output_shape == (None, arch.last_stage_filters)
        assert pooled.layers[-1].name == f"{pooling}_pool"


def test_feature_map_channels_match_keras_applications():
    assert MobileNetV3Large(weights=None, include_top=False).output_shape == (
        None, None, None, 960)
    assert MobileNetV3Small(weights=None, include_top=False).output_shape == (
        None, None, None, 576)


@pytest.mark.parametrize("channels", [1, 4])
def test_non_rgb_inputs_without_weights(channels):
    model = MobileNetV3Small(input_shape=(32, 32, channels), weights=None, classes=3)
    out = model.predict(np.zeros((2, 32, 32, channels), "float32"), verbose=0)
    assert out.shape == (2, 3)
    np.testing.assert_allclose(out.sum(axis=1), 1.0, rtol=1e-5)


def test_variable_spatial_size():
    model = MobileNetV3Small(weights=None, include_top=False)
    assert model.input_shape == (None, None, None, 3)
    for height, width in ((64, 64), (96, 80), (33, 47)):
        out = model.predict(np.zeros((1, height, width, 3), "float32"), verbose=0)
        assert out.shape == (1, -(-height // 32), -(-width // 32), 576)


def test_input_tensor_is_used():
    tensor = keras.Input(shape=(96, 96, 3), name="my_input")
    model = MobileNetV3Small(input_tensor=tensor, weights=None, classes=5)
    assert model.inputs[0] is tensor
    assert model.output_shape == (None, 5)


@pytest.mark.parametrize("activation, expected", [("softmax", "softmax"), (None, "linear"),
                                                  ("sigmoid", "sigmoid")])
def test_classifier_activation(activation, expected, rng):
    model = MobileNetV3Small(input_shape=(32, 32, 3), weights=None, classes=4,
                             classifier_activation=activation)
    layer = model.get_layer("predictions")
    assert layer.activation.__name__ == expected
    out = model.predict(rng.uniform(0, 255, (2, 32, 32, 3)).astype("float32"), verbose=0)
    if expected == "softmax":
        np.testing.assert_allclose(out.sum(axis=1), 1.0, rtol=1e-5)
    elif expected == "sigmoid":
        assert np.all((out > 0) & (out < 1))


def test_include_preprocessing_rescales_to_minus_one_one():
    model = MobileNetV3Small(input_shape=(32, 32, 3), weights=None)
    rescaling = model.get_layer("rescaling")
    values = np.array([[[[0.0, 127.5, 255.0]]]], "float32")
    np.testing.assert_allclose(keras.ops.convert_to_numpy(rescaling(values)),
                               [[[[-1.0, 0.0, 1.0]]]], atol=1e-6)
    plain = MobileNetV3Small(input_shape=(32, 32, 3), weights=None, include_preprocessing=False)
    assert not any(isinstance(layer, keras.layers.Rescaling) for layer in plain.layers)
    # Same weights: feeding [-1, 1] to the plain model equals [0, 255] to the other.
    plain.set_weights(model.get_weights())
    x = np.random.default_rng(1).uniform(0, 255, (2, 32, 32, 3)).astype("float32")
    np.testing.assert_allclose(model.predict(x, verbose=0),
                               plain.predict(x / 127.5 - 1.0, verbose=0), atol=1e-5)


def test_bn_momentum_reaches_every_batch_norm():
    def momenta(model):
        found = set()
        stack = list(model.layers)
        while stack:
            layer = stack.pop()
            if isinstance(layer, keras.layers.BatchNormalization):
                found.add(layer.momentum)
            stack.extend(getattr(layer, "_layers", []))
        return found

    assert momenta(MobileNetV3Small(input_shape=(32, 32, 3), weights=None)) == {0.99}
    assert momenta(MobileNetV3Small(input_shape=(32, 32, 3), weights=None,
                                    bn_momentum=0.999)) == {0.999}


def test_keras_file_round_trip_and_fit(tmp_path, rng):
    model = MobileNetV3Small(input_shape=(32, 32, 3), alpha=0.75, weights=None, classes=3)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", jit_compile=False)
    x = rng.uniform(0, 255, (4, 32, 32, 3)).astype("float32")
    y = np.array([0, 1, 2, 1])
    before = [w.copy() for w in model.get_weights()]
    history = model.fit(x, y, epochs=1, batch_size=4, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    assert any(not np.array_equal(a, b) for a, b in zip(before, model.get_weights()))
    path = tmp_path / "small.keras"
    model.save(path)
    reloaded = keras.models.load_model(path)
    assert isinstance(reloaded.get_layer("expanded_conv_3"), InvertedResidual)
    np.testing.assert_array_equal(reloaded.predict(x, verbose=0), model.predict(x, verbose=0))


def test_own_weights_file_round_trip(tmp_path, rng):
    model = MobileNetV3Small(input_shape=(32, 32, 3), weights=None, classes=3)
    path = tmp_path / "small.weights.h5"
    model.save_weights(path)
    loaded = MobileNetV3Small(input_shape=(32, 32, 3), weights=str(path), classes=3)
    x = rng.uniform(0, 255, (2, 32, 32, 3)).astype("float32")
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
