"""Every layer through `run_layer_test`, with weight counts worked out by hand.

Counting rules used in the comments below:

- a `Conv2D`/`DepthwiseConv2D` without bias is 1 trainable variable
  (kernel); with bias 2 (kernel, bias);
- a `BatchNormalization` is 2 trainable (gamma, beta) and 2 non-trainable
  (moving mean, moving variance) variables, 4 * channels parameters;
- `make_divisible(v)` rounds to a multiple of 8 (see test_make_divisible.py).
"""

import keras
import numpy as np
import pytest

import mnv3_layers
import mnv3_layers.applications.lraspp  # noqa: F401  (registers the application models)
import mnv3_layers.applications.ssdlite  # noqa: F401
from mnv3_layers import (
    EfficientLastStage,
    HardSigmoid,
    HardSwish,
    InvertedResidual,
    SqueezeExcite,
)
from mnv3_layers.testing import assert_raises_for_argument, run_layer_test


def _params(weights):
    return int(sum(np.prod(w.shape) for w in weights))


# Each case: constructor kwargs, input shape, output shape, (trainable,
# non-trainable) variable counts, (trainable, non-trainable) parameter
# counts, expanded width, whether there is an expand conv, use_residual.
INVERTED_RESIDUAL_CASES = {
    # The brief's example (paper Large block 4: 24 -> exp 72 -> 40, 5x5, SE, s2).
    # E = make_divisible(24 * 3) = 72; squeeze = make_divisible(72 / 4 = 18) = 24
    # (16 would be below 0.9 * 18).
    # variables: expand 1 + bn 2 | dw 1 + bn 2 | se 2 convs with bias 4 |
    #            project 1 + bn 2  -> 13 trainable; 3 bn * 2 = 6 non-trainable.
    # params: expand 24*72 = 1728, bn 2*72 = 144 (+144 non-trainable);
    #         dw 5*5*72 = 1800, bn 144 (+144); se 72*24+24 = 1752, 24*72+72 = 1800;
    #         project 72*40 = 2880, bn 2*40 = 80 (+80).
    #         trainable 1728+144+1800+144+1752+1800+2880+80 = 10328; non 368.
    "expand_se_stride2_relu": dict(
        kwargs=dict(filters=40, kernel_size=5, strides=2, expansion=3, se_ratio=0.25,
                    activation="relu"),
        input_shape=(2, 8, 8, 24), output_shape=(2, 4, 4, 40),
        variables=(13, 6), params=(10328, 368), expanded=72, has_expand=True,
        residual=False,
    ),
    # Paper Large block 1 (16 -> 16, exp 16): no expand conv, residual.
    # variables: dw 1 + bn 2 + project 1 + bn 2 = 6; bn 2 * 2 = 4 non-trainable.
    # params: dw 3*3*16 = 144, bn 32 (+32), project 16*16 = 256, bn 32 (+32)
    #         -> 464 trainable, 64 non-trainable.
    "no_expand_residual": dict(
        kwargs=dict(filters=16, kernel_size=3, strides=1, expansion=1.0),
        input_shape=(2, 8, 8, 16), output_shape=(2, 8, 8, 16),
        variables=(6, 4), params=(464, 64), expanded=16, has_expand=False,
        residual=True,
    ),
    # Paper Small block 1 (16 -> 16, exp 16, SE, s2): no expand conv, SE.
    # squeeze = make_divisible(16 / 4 = 4) = 8 (min_value = divisor).
    # variables: dw 1 + bn 2 + se 4 + project 1 + bn 2 = 10; 4 non-trainable.
    # params: dw 144, bn 32 (+32), se 16*8+8 = 136, 8*16+16 = 144,
    #         project 256, bn 32 (+32) -> 744 trainable, 64 non-trainable.
    "no_expand_se_stride2": dict(
        kwargs=dict(filters=16, strides=2, expansion=1, se_ratio=0.25),
        input_shape=(2, 8, 8, 16), output_shape=(2, 4, 4, 16),
        variables=(10, 4), params=(744, 64), expanded=16, has_expand=False,
        residual=False,
    ),
    # Paper Large block 2 (16 -> exp 64 -> 24, s2), no SE.
    # variables: expand 1+2, dw 1+2, project 1+2 = 9; 6 non-trainable.
    # params: expand 16*64 = 1024, bn 128 (+128), dw 9*64 = 576, bn 128 (+128),
    #         project 64*24 = 1536, bn 48 (+48) -> 3440 trainable, 304 non.
    "expand_stride2_no_se": dict(
        kwargs=dict(filters=24, kernel_size=3, strides=2, expansion=4.0),
        input_shape=(2, 8, 8, 16), output_shape=(2, 4, 4, 24),
        variables=(9, 6), params=(3440, 304), expanded=64, has_expand=True,
        residual=False,
    ),
    # Stride 1 but the width changes 16 -> 24: no residual.
    # E = make_divisible(16 * 4.5 = 72) = 72.
    # params: expand 16*72 = 1152, bn 144 (+144), dw 9*72 = 648, bn 144 (+144),
    #         project 72*24 = 1728, bn 48 (+48) -> 3864 trainable, 336 non.
    "channel_change_stride1": dict(
        kwargs=dict(filters=24, kernel_size=3, strides=1, expansion=4.5,
                    activation="hard_swish"),
        input_shape=(2, 6, 6, 16), output_shape=(2, 6, 6, 24),
        variables=(9, 6), params=(3864, 336), expanded=72, has_expand=True,
        residual=False,
    ),
    # Paper Large block 5 (40 -> exp 120 -> 40, 5x5, SE), hard-swish, residual.
    # E = 120; squeeze = make_divisible(30) = 32.
    # params: expand 40*120 = 4800, bn 240 (+240), dw 25*120 = 3000, bn 240
    #         (+240), se 120*32+32 = 3872, 32*120+120 = 3960, project 120*40
    #         = 4800, bn 80 (+80) -> 20992 trainable, 560 non.
    "expand_se_residual_hard_swish": dict(
        kwargs=dict(filters=40, kernel_size=5, strides=1, expansion=3.0, se_ratio=0.25,
                    activation="hard_swish"),
        input_shape=(2, 6, 6, 40), output_shape=(2, 6, 6, 40),
        variables=(13, 6), params=(20992, 560), expanded=120, has_expand=True,
        residual=True,
    ),
    # Dilated (output stride 16/8): stride 1, rate 2, spatial size kept.
    # E = make_divisible(24 * 3) = 72; squeeze 24 (as in the first case).
    # params: expand 24*72 = 1728, bn 144 (+144), dw 9*72 = 648, bn 144 (+144),
    #         se 1752 + 1800, project 72*24 = 1728, bn 48 (+48)
    #         -> 7992 trainable, 336 non.
    "dilated_residual": dict(
        kwargs=dict(filters=24, kernel_size=3, strides=1, expansion=3, se_ratio=0.25,
                    activation="hard_swish", dilation_rate=2),
        input_shape=(2, 9, 9, 24), output_shape=(2, 9, 9, 24),
        variables=(13, 6), params=(7992, 336), expanded=72, has_expand=True,
        residual=True,
    ),
    # Odd spatial size with stride 2: "same" padding gives ceil(7 / 2) = 4.
    # E = make_divisible(8 * 6) = 48. 7x7 kernel.
    # params: expand 8*48 = 384, bn 96 (+96), dw 49*48 = 2352, bn 96 (+96),
    #         project 48*16 = 768, bn 32 (+32) -> 3728 trainable, 224 non.
    "odd_size_kernel7": dict(
        kwargs=dict(filters=16, kernel_size=7, strides=2, expansion=6),
        input_shape=(1, 7, 7, 8), output_shape=(1, 4, 4, 16),
        variables=(9, 6), params=(3728, 224), expanded=48, has_expand=True,
        residual=False,
    ),
}


# The full run_layer_test (with a compiled fit step) takes ~5-10 s per case on
# a 2-core CPU; the fast set keeps one case per feature, the rest are slow.
FAST_CASES = {"expand_se_stride2_relu", "no_expand_residual", "dilated_residual"}


@pytest.mark.parametrize(
    "case_id",
    [
        case_id if case_id in FAST_CASES else pytest.param(case_id, marks=pytest.mark.slow)
        for case_id in sorted(INVERTED_RESIDUAL_CASES)
    ],
)
def test_inverted_residual_layer_test(case_id):
    case = INVERTED_RESIDUAL_CASES[case_id]
    run_layer_test(
        InvertedResidual,
        case["kwargs"],
        case["input_shape"],
        expected_output_shape=case["output_shape"],
        expected_num_trainable_weights=case["variables"][0],
        expected_num_non_trainable_weights=case["variables"][1],
    )


@pytest.mark.parametrize("case_id", sorted(INVERTED_RESIDUAL_CASES))
def test_inverted_residual_structure_after_build(case_id):
    case = INVERTED_RESIDUAL_CASES[case_id]
    layer = InvertedResidual(**case["kwargs"])
    assert layer.use_residual is None and layer.expanded_filters is None
    layer.build(case["input_shape"])
    # Weights exist right after build(), before any call.
    assert len(layer.weights) == sum(case["variables"])
    assert _params(layer.trainable_weights) == case["params"][0]
    assert _params(layer.non_trainable_weights) == case["params"][1]
    assert layer.expanded_filters == case["expanded"]
    assert (layer.expand is not None) == case["has_expand"]
    assert layer.use_residual is case["residual"]
    assert (layer.add is not None) == case["residual"]
    assert (layer.squeeze_excite is not None) == bool(case["kwargs"].get("se_ratio"))
    assert layer.depthwise.kernel.shape[:2] == (case["kwargs"].get("kernel_size", 3),) * 2


def test_inverted_residual_adds_the_input():
    """With every batch-norm and conv weight zeroed, the residual block is the identity."""
    layer = InvertedResidual(16, expansion=4, se_ratio=0.25)
    x = np.random.default_rng(0).standard_normal((1, 5, 5, 16)).astype("float32")
    layer.build(x.shape)
    layer.project_bn.gamma.assign(np.zeros(16, "float32"))
    np.testing.assert_allclose(keras.ops.convert_to_numpy(layer(x)), x, atol=1e-6)

    no_res = InvertedResidual(24, expansion=4, se_ratio=0.25)
    no_res.build(x.shape)
    no_res.project_bn.gamma.assign(np.zeros(24, "float32"))
    np.testing.assert_allclose(keras.ops.convert_to_numpy(no_res(x)), 0.0, atol=1e-6)


def test_inverted_residual_se_ratio_zero_means_no_se():
    for se_ratio in (None, 0, 0.0):
        layer = InvertedResidual(16, expansion=2, se_ratio=se_ratio)
        layer.build((1, 4, 4, 16))
        assert layer.squeeze_excite is None
        assert len(layer.trainable_weights) == 9


def test_inverted_residual_activation_layers():
    for activation, cls in (("relu", keras.layers.ReLU), ("hard_swish", HardSwish)):
        layer = InvertedResidual(16, expansion=2, activation=activation)
        layer.build((1, 4, 4, 16))
        assert isinstance(layer.expand_activation, cls)
        assert isinstance(layer.depthwise_activation, cls)


def test_inverted_residual_dilation_reaches_the_depthwise():
    layer = InvertedResidual(16, kernel_size=5, dilation_rate=4)
    layer.build((1, 17, 17, 16))
    assert tuple(layer.depthwise.dilation_rate) == (4, 4)
    assert tuple(layer.depthwise.strides) == (1, 1)
    assert layer(np.zeros((1, 17, 17, 16), "float32")).shape == (1, 17, 17, 16)


def test_inverted_residual_rejects_bad_input_rank():
    layer = InvertedResidual(16)
    with pytest.raises(ValueError, match="input_shape"):
        layer.build((1, 8, 16))
    with pytest.raises(ValueError, match="input_shape"):
        InvertedResidual(16).build((1, 8, 8, None))


# --- SqueezeExcite ----------------------------------------------------------


def test_squeeze_excite_layer_test():
    # squeeze = make_divisible(96 / 4) = 24; 2 convs with bias = 4 variables;
    # params 96*24+24 + 24*96+96 = 2328 + 2400 = 4728.
    run_layer_test(
        SqueezeExcite,
        {"se_ratio": 0.25},
        (2, 4, 4, 96),
        expected_output_shape=(2, 4, 4, 96),
        expected_num_trainable_weights=4,
        expected_num_non_trainable_weights=0,
    )
    layer = SqueezeExcite(0.25)
    layer.build((2, 4, 4, 96))
    assert len(layer.weights) == 4
    assert _params(layer.weights) == 4728
    assert layer.reduce.filters == 24 and layer.expand.filters == 96


def test_squeeze_excite_full_ratio_and_divisor():
    # se_ratio=1 keeps the width (40), divisor 16 rounds 40 -> 48:
    # int(40 + 8) // 16 * 16 = 48.
    run_layer_test(
        SqueezeExcite,
        {"se_ratio": 1.0, "divisor": 16},
        (2, 3, 3, 40),
        expected_output_shape=(2, 3, 3, 40),
        expected_num_trainable_weights=4,
        expected_num_non_trainable_weights=0,
        run_mixed_precision_check=False,
        run_save_load_check=False,
    )
    layer = SqueezeExcite(1.0, divisor=16)
    layer.build((1, 3, 3, 40))
    assert layer.reduce.filters == 48


def test_squeeze_excite_values():
    """The gate is hard_sigmoid(W2 relu(W1 mean(x) + b1) + b2), multiplied in."""
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 3, 3, 16)).astype("float32")
    layer = SqueezeExcite(0.5)
    layer.build(x.shape)
    w1, b1 = (keras.ops.convert_to_numpy(w) for w in layer.reduce.weights)
    w2, b2 = (keras.ops.convert_to_numpy(w) for w in layer.expand.weights)
    b1 = rng.standard_normal(b1.shape).astype("float32")
    b2 = rng.standard_normal(b2.shape).astype("float32")
    layer.reduce.bias.assign(b1)
    layer.expand.bias.assign(b2)
    pooled = x.mean(axis=(1, 2))
    hidden = np.maximum(pooled @ w1[0, 0] + b1, 0)
    gate = np.clip((hidden @ w2[0, 0] + b2 + 3) / 6, 0, 1)
    expected = x * gate[:, None, None, :]
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(layer(x)), expected, rtol=1e-5, atol=1e-6
    )


# --- EfficientLastStage -----------------------------------------------------


def test_efficient_last_stage_with_head():
    # conv 1 + bn 2 + head conv with bias 2 = 5 trainable; bn 2 non-trainable.
    run_layer_test(
        EfficientLastStage,
        {"filters": 48, "last_point_filters": 64, "dropout_rate": 0.2},
        (2, 4, 4, 16),
        expected_output_shape=(2, 1, 1, 64),
        expected_num_trainable_weights=5,
        expected_num_non_trainable_weights=2,
    )


def test_efficient_last_stage_without_head():
    # conv 1 + bn 2 trainable; bn 2 non-trainable; the feature map is returned.
    run_layer_test(
        EfficientLastStage,
        {"filters": 48, "last_point_filters": None, "activation": "relu"},
        (2, 4, 4, 16),
        expected_output_shape=(2, 4, 4, 48),
        expected_num_trainable_weights=3,
        expected_num_non_trainable_weights=2,
    )


def test_efficient_last_stage_paper_sizes():
    # Large at 224: 7x7x160 -> 960 -> pool -> 1280.
    # conv 160*960 = 153600, bn 2*960 = 1920 (+1920), head 960*1280 + 1280
    # = 1230080 -> 1385600 trainable, 1920 non-trainable.
    layer = EfficientLastStage(960, last_point_filters=1280)
    layer.build((1, 7, 7, 160))
    assert len(layer.weights) == 7
    assert _params(layer.trainable_weights) == 1385600
    assert _params(layer.non_trainable_weights) == 1920
    assert layer.compute_output_shape((1, 7, 7, 160)) == (1, 1, 1, 1280)
    # Small: 96 -> 576 -> 1024. 96*576 = 55296, bn 1152 (+1152),
    # head 576*1024 + 1024 = 590848 -> 647296 trainable.
    layer = EfficientLastStage(576, last_point_filters=1024)
    layer.build((1, 7, 7, 96))
    assert _params(layer.trainable_weights) == 647296
    assert _params(layer.non_trainable_weights) == 1152


def test_efficient_last_stage_pools_before_the_wide_conv():
    """Output = act(W * mean(act(bn(conv(x)))) + b): the head sees the pooled map."""
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 3, 3, 8)).astype("float32")
    full = EfficientLastStage(16, last_point_filters=None)
    head = EfficientLastStage(16, last_point_filters=12, dropout_rate=0.5)
    head.build(x.shape)
    full.build(x.shape)
    full.set_weights(head.get_weights()[: len(full.get_weights())])
    features = keras.ops.convert_to_numpy(full(x))
    w, b = (keras.ops.convert_to_numpy(v) for v in head.head_conv.weights)
    pooled = features.mean(axis=(1, 2))
    z = pooled @ w[0, 0] + b
    expected = z * np.clip(z + 3, 0, 6) / 6
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(head(x, training=False))[:, 0, 0], expected,
        rtol=1e-5, atol=1e-6,
    )


# --- activations ------------------------------------------------------------

X = np.array([[-3.5, -3.0, 0.0, 3.0, 3.5]], "float32")


def test_hard_sigmoid_layer_test():
    run_layer_test(
        HardSigmoid, {}, X.shape, input_data=X,
        expected_output=np.array([[0.0, 0.0, 0.5, 1.0, 1.0]]),
        expected_output_shape=X.shape,
        expected_num_trainable_weights=0, expected_num_non_trainable_weights=0,
    )


def test_hard_swish_layer_test():
    run_layer_test(
        HardSwish, {}, X.shape, input_data=X,
        expected_output=np.array([[0.0, 0.0, 0.0, 3.0, 3.5]]),
        expected_output_shape=X.shape,
        expected_num_trainable_weights=0, expected_num_non_trainable_weights=0,
    )


def test_activation_layers_on_4d_input():
    for cls in (HardSigmoid, HardSwish):
        run_layer_test(
            cls, {}, (2, 3, 3, 4),
            expected_output_shape=(2, 3, 3, 4),
            expected_num_trainable_weights=0, expected_num_non_trainable_weights=0,
            run_training_check=False, run_save_load_check=False,
        )


# --- registration -----------------------------------------------------------


# The package's public layers, from its `__all__` (not a hand-written list).
PUBLIC_LAYERS = [
    obj for obj in (getattr(mnv3_layers, name) for name in mnv3_layers.__all__)
    if isinstance(obj, type) and issubclass(obj, keras.layers.Layer)
]
# Everything registered under the package (layers, internal layers, models).
REGISTERED = sorted(
    name for name in keras.saving.get_custom_objects() if name.startswith("mnv3_layers>")
)


def test_public_layer_list_is_derived_and_complete():
    assert set(PUBLIC_LAYERS) >= {
        HardSigmoid, HardSwish, SqueezeExcite, InvertedResidual, EfficientLastStage
    }


@pytest.mark.parametrize("cls", PUBLIC_LAYERS, ids=lambda cls: cls.__name__)
def test_registered_under_package(cls):
    assert keras.saving.get_registered_name(cls) == f"mnv3_layers>{cls.__name__}"
    assert keras.saving.get_registered_object(f"mnv3_layers>{cls.__name__}") is cls


@pytest.mark.parametrize("registered_name", REGISTERED)
def test_every_registered_object_round_trips_its_name(registered_name):
    obj = keras.saving.get_registered_object(registered_name)
    assert keras.saving.get_registered_name(obj) == registered_name
    assert registered_name == f"mnv3_layers>{obj.__name__}"


# --- validation -------------------------------------------------------------

IR_OK = dict(filters=16)
IR_BAD = [
    ("filters", 0), ("filters", -8), ("filters", 3.5), ("filters", True), ("filters", "16"),
    ("filters", None),
    ("kernel_size", 4), ("kernel_size", 0), ("kernel_size", -3), ("kernel_size", 3.0),
    ("strides", 3), ("strides", 0), ("strides", True), ("strides", (2, 2)),
    ("expansion", 0), ("expansion", -1.0), ("expansion", "4"), ("expansion", None),
    ("se_ratio", 1.5), ("se_ratio", -0.1), ("se_ratio", "0.25"),
    ("activation", "swish"), ("activation", "hard_sigmoid"), ("activation", None),
    ("activation", "relu6"),
    ("dilation_rate", 0), ("dilation_rate", 1.5),
    ("bn_momentum", 1.0), ("bn_momentum", -0.1), ("bn_momentum", 1.5),
    ("bn_epsilon", 0), ("bn_epsilon", -1e-3),
    ("divisor", 0), ("divisor", 2.5),
]


@pytest.mark.parametrize("argument,value", IR_BAD)
def test_inverted_residual_rejects(argument, value):
    assert_raises_for_argument(InvertedResidual, IR_OK, argument, value)


def test_inverted_residual_rejects_dilation_with_stride():
    err = assert_raises_for_argument(
        InvertedResidual, dict(filters=16, strides=2), "dilation_rate", 2, ValueError
    )
    assert "strides=2" in str(err)


@pytest.mark.parametrize(
    "argument,value",
    [("se_ratio", 0), ("se_ratio", 1.5), ("se_ratio", -0.1), ("se_ratio", None),
     ("divisor", 0), ("divisor", 1.5)],
)
def test_squeeze_excite_rejects(argument, value):
    assert_raises_for_argument(SqueezeExcite, {}, argument, value)


@pytest.mark.parametrize(
    "argument,value",
    [("filters", 0), ("filters", 9.5), ("last_point_filters", 0),
     ("last_point_filters", 2.5), ("activation", "swish"), ("dropout_rate", 1.0),
     ("dropout_rate", -0.1), ("bn_momentum", 1.0), ("bn_epsilon", 0)],
)
def test_efficient_last_stage_rejects(argument, value):
    assert_raises_for_argument(EfficientLastStage, dict(filters=32), argument, value)


# --- the helper itself catches mistakes ------------------------------------


def test_run_layer_test_catches_wrong_weight_count():
    with pytest.raises(AssertionError, match="trainable weights"):
        run_layer_test(
            SqueezeExcite, {}, (1, 2, 2, 8),
            expected_output_shape=(1, 2, 2, 8),
            expected_num_trainable_weights=3, expected_num_non_trainable_weights=0,
            run_training_check=False, run_mixed_precision_check=False,
            run_save_load_check=False,
        )


def test_run_layer_test_catches_wrong_shape_and_values():
    with pytest.raises(AssertionError, match="expected"):
        run_layer_test(
            HardSwish, {}, (1, 3), expected_output_shape=(1, 4),
            expected_num_trainable_weights=0, expected_num_non_trainable_weights=0,
            run_training_check=False, run_mixed_precision_check=False,
            run_save_load_check=False,
        )
    with pytest.raises(AssertionError, match="expected_output"):
        run_layer_test(
            HardSwish, {}, (1, 3), input_data=np.ones((1, 3), "float32"),
            expected_output=np.ones((1, 3)), expected_output_shape=(1, 3),
            expected_num_trainable_weights=0, expected_num_non_trainable_weights=0,
            run_training_check=False, run_mixed_precision_check=False,
            run_save_load_check=False,
        )


def test_assert_raises_for_argument_catches_vague_messages():
    def vague(x=1):
        raise ValueError("bad value")

    def silent(x=1):
        return x

    with pytest.raises(AssertionError, match="does not contain"):
        assert_raises_for_argument(vague, {}, "x", 5)
    with pytest.raises(AssertionError, match="did not raise"):
        assert_raises_for_argument(silent, {}, "x", 5)


@keras.saving.register_keras_serializable(package="mnv3_layers_tests")
class _Float32Inside(keras.layers.Layer):
    """A layer that ignores its dtype policy for a sublayer (a classic mistake)."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.dense = keras.layers.Dense(4, dtype="float32", name="dense")

    def build(self, input_shape):
        self.dense.build(input_shape)

    def call(self, inputs):
        return keras.ops.cast(self.dense(inputs), self.compute_dtype)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (4,)


def test_run_layer_test_catches_sublayer_ignoring_mixed_precision():
    with pytest.raises(AssertionError, match="ignore the mixed_float16 policy"):
        run_layer_test(
            _Float32Inside, {}, (2, 3), expected_output_shape=(2, 4),
            expected_num_trainable_weights=2, expected_num_non_trainable_weights=0,
            run_training_check=False, run_save_load_check=False,
        )
