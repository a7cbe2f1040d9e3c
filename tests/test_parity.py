"""Parity with keras.applications (Keras 3): same weights give the same outputs.

Every weight of a keras.applications MobileNetV3 (BN moving statistics
included) is randomized, copied into our model by
`copy_weights_from_keras_applications`, and the outputs are compared.
"""

import keras
import numpy as np
import pytest

from mnv3_layers.applications import MobileNetV3Large, MobileNetV3Small
from mnv3_layers.applications import weights as weights_lib
from random_weights import randomize_weights

OURS = {"large": MobileNetV3Large, "small": MobileNetV3Small}
KERAS = {
    "large": keras.applications.MobileNetV3Large,
    "small": keras.applications.MobileNetV3Small,
}
TOLERANCE = 1e-5

slow = pytest.mark.slow


def to_numpy(variable):
    return np.array(keras.ops.convert_to_numpy(variable))




# (variant, alpha, minimalistic, include_top, input size): the six variants
# that have ImageNet weights, with and without top.
CASES = [
    pytest.param("small", 1.0, False, True, (224, 224), id="small-1.0-top"),
    pytest.param("small", 1.0, True, False, (160, 192), id="small-min-notop-160x192"),
    pytest.param("small", 1.0, False, False, (224, 224), id="small-1.0-notop", marks=slow),
    pytest.param("small", 0.75, False, True, (224, 224), id="small-0.75-top", marks=slow),
    pytest.param("small", 0.75, False, False, (224, 224), id="small-0.75-notop", marks=slow),
    pytest.param("small", 1.0, True, True, (224, 224), id="small-min-top", marks=slow),
    pytest.param("large", 1.0, False, True, (224, 224), id="large-1.0-top", marks=slow),
    pytest.param("large", 1.0, False, False, (224, 224), id="large-1.0-notop", marks=slow),
    pytest.param("large", 0.75, False, True, (224, 224), id="large-0.75-top", marks=slow),
    pytest.param("large", 0.75, False, False, (224, 224), id="large-0.75-notop", marks=slow),
    pytest.param("large", 1.0, True, True, (224, 224), id="large-min-top", marks=slow),
    pytest.param("large", 1.0, True, False, (224, 224), id="large-min-notop", marks=slow),
    pytest.param("large", 1.0, False, True, (160, 192), id="large-1.0-top-160x192", marks=slow),
]


@pytest.mark.parametrize("variant, alpha, minimalistic, include_top, size", CASES)
def test_outputs_match_keras_applications(variant, alpha, minimalistic, include_top, size):
    kwargs = dict(
        input_shape=size + (3,),
        alpha=alpha,
        minimalistic=minimalistic,
        include_top=include_top,
        weights=None,
        classifier_activation=None,
    )
    reference = KERAS[variant](**kwargs)
    ours = OURS[variant](**kwargs)
    assert ours.count_params() == reference.count_params()
    # The name map covers exactly keras.applications' weight layers, in order.
    assert list(weights_lib.keras_applications_name_map(ours)) == [
        layer.name for layer in reference.layers if layer.weights
    ]

    rng = np.random.default_rng(0)
    randomize_weights(reference, rng)
    weights_lib.copy_weights_from_keras_applications(reference, ours)

    x = rng.uniform(0.0, 255.0, (2,) + size + (3,)).astype("float32")
    expected = keras.ops.convert_to_numpy(reference(x, training=False))
    received = keras.ops.convert_to_numpy(ours(x, training=False))
    assert received.shape == expected.shape
    assert np.abs(expected).max() > 0.1  # not a degenerate all-zero comparison
    np.testing.assert_allclose(received, expected, rtol=0, atol=TOLERANCE)


def test_large_block_structure():
    model = MobileNetV3Large(input_shape=(64, 64, 3), weights=None)
    first = model.get_layer("expanded_conv")
    assert first.expand is None and first.squeeze_excite is None and first.use_residual
    block = model.get_layer("expanded_conv_3")
    assert (block.kernel_size, block.strides, block.activation) == (5, 2, "relu")
    assert block.expanded_filters == 72 and block.filters == 40
    assert block.squeeze_excite.reduce.filters == 24
    assert not block.use_residual
    block = model.get_layer("expanded_conv_6")
    assert (block.kernel_size, block.activation, block.squeeze_excite) == (3, "hard_swish", None)
    names = weights_lib.keras_applications_name_map(model)
    assert names["expanded_conv_3_squeeze_excite_conv_1"] is block_se_expand(model, 3)
    assert names["conv_1"] is model.get_layer("last_stage").conv
    assert names["conv_2"] is model.get_layer("last_stage").head_conv
    assert names["logits"] is model.get_layer("logits")


def block_se_expand(model, index):
    return model.get_layer(f"expanded_conv_{index}").squeeze_excite.expand


@slow
def test_copy_rejects_other_variant_and_leaves_target_unchanged():
    source = keras.applications.MobileNetV3Small(
        input_shape=(64, 64, 3), weights=None, alpha=0.75
    )
    target = MobileNetV3Small(input_shape=(64, 64, 3), weights=None)
    before = [to_numpy(v) for v in target.weights]
    with pytest.raises(ValueError, match="shape mismatches"):
        weights_lib.copy_weights_from_keras_applications(source, target)
    for value, variable in zip(before, target.weights):
        np.testing.assert_array_equal(value, to_numpy(variable))
