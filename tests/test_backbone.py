"""MobileNetV3Backbone: tap tables, pyramid sizes, parity with the applications,
serialization, reduced tail, the InvertedResidual expansion output, bad input."""

import dataclasses
import json
import os

import keras
import numpy as np
import pytest

from mnv3_layers import InvertedResidual
from mnv3_layers.applications import MobileNetV3Backbone, MobileNetV3Large, MobileNetV3Small
from mnv3_layers.applications.backbone import FeatureInfo, feature_taps
from mnv3_layers.architecture.block_spec import (
    ARCHITECTURES,
    LARGE,
    SMALL,
    ArchitectureSpec,
    BlockSpec,
    LastStageSpec,
    StemSpec,
    resolve_architecture,
    tail_start_index,
)
from mnv3_layers.testing import run_backbone_test

# Every registered architecture, from the registry (not a hand-written list).
VARIANTS = sorted(ARCHITECTURES)

# --- Tap tables --------------------------------------------------------------

# (name, stride, channels, kind, level) at output_stride 32, alpha 1.0.
E = "expanded_conv"
LARGE_TAPS_32 = [
    ("conv_activation", 2, 16, "block", None),
    (E, 2, 16, "block", "P1"),
    (E + "_1", 4, 24, "block", None),
    (E + "_2", 4, 24, "block", "P2"),
    (E + "_3", 8, 40, "block", None),
    (E + "_4", 8, 40, "block", None),
    (E + "_5", 8, 40, "block", "P3"),
    (E + "_6", 16, 80, "block", None),
    (E + "_7", 16, 80, "block", None),
    (E + "_8", 16, 80, "block", None),
    (E + "_9", 16, 80, "block", None),
    (E + "_10", 16, 112, "block", None),
    (E + "_11", 16, 112, "block", "P4"),
    (E + "_12", 16, 672, "expansion", None),
    (E + "_12", 32, 160, "block", None),
    (E + "_13", 32, 160, "block", None),
    (E + "_14", 32, 160, "block", None),
    ("last_stage", 32, 960, "block", "P5"),
]
SMALL_TAPS_32 = [
    ("conv_activation", 2, 16, "block", "P1"),
    (E, 4, 16, "block", "P2"),
    (E + "_1", 8, 24, "block", None),
    (E + "_2", 8, 24, "block", "P3"),
    (E + "_3", 16, 40, "block", None),
    (E + "_4", 16, 40, "block", None),
    (E + "_5", 16, 40, "block", None),
    (E + "_6", 16, 48, "block", None),
    (E + "_7", 16, 48, "block", "P4"),
    (E + "_8", 16, 288, "expansion", None),
    (E + "_8", 32, 96, "block", None),
    (E + "_9", 32, 96, "block", None),
    (E + "_10", 32, 96, "block", None),
    ("last_stage", 32, 576, "block", "P5"),
]
TAPS_32 = {"large": LARGE_TAPS_32, "small": SMALL_TAPS_32}


def test_every_variant_has_a_spelled_out_tap_table():
    assert set(TAPS_32) == set(VARIANTS)


def _expected_taps(variant, output_stride):
    """OS 32 table with every stride capped at `output_stride` (names, levels unchanged)."""
    return [
        (name, min(stride, output_stride), channels, kind, level)
        for name, stride, channels, kind, level in TAPS_32[variant]
    ]


def _rows(taps):
    return [(t.name, t.stride, t.channels, t.kind, t.level) for t in taps]


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("output_stride", [32, 16, 8])
def test_tap_table(variant, output_stride):
    taps = feature_taps(variant, output_stride=output_stride)
    assert all(isinstance(t, FeatureInfo) for t in taps)
    assert _rows(taps) == _expected_taps(variant, output_stride)


def test_tap_tables_at_lower_output_stride_spelled_out():
    """The capped strides, written out for Large at 16 and Small at 8."""
    large16 = {t.level: (t.name, t.stride) for t in feature_taps("large", output_stride=16) if t.level}
    assert large16 == {
        "P1": ("expanded_conv", 2), "P2": ("expanded_conv_2", 4),
        "P3": ("expanded_conv_5", 8), "P4": ("expanded_conv_11", 16),
        "P5": ("last_stage", 16),
    }
    small8 = {t.level: (t.name, t.stride) for t in feature_taps("small", output_stride=8) if t.level}
    assert small8 == {
        "P1": ("conv_activation", 2), "P2": ("expanded_conv", 4),
        "P3": ("expanded_conv_2", 8), "P4": ("expanded_conv_7", 8),
        "P5": ("last_stage", 8),
    }


def test_expansion_tap_is_tf_slim_c4():
    """Large `expanded_conv_12` = TF-slim layer_14 (spec[13]); Small `expanded_conv_8` = layer_10."""
    assert tail_start_index(LARGE) == 12
    assert tail_start_index(SMALL) == 8
    for variant, name, channels in (("large", E + "_12", 672), ("small", E + "_8", 288)):
        (tap,) = [t for t in feature_taps(variant) if t.kind == "expansion"]
        assert (tap.name, tap.stride, tap.channels, tap.key) == (
            name, 16, channels, name + "/expansion_output"
        )


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("output_stride", [32, 8])
def test_backbone_exposes_the_tap_list(variant, output_stride):
    backbone = MobileNetV3Backbone(variant, output_stride=output_stride)
    assert backbone.feature_info == feature_taps(variant, output_stride=output_stride)
    levels = {t.level: t for t in backbone.feature_info if t.level}
    assert backbone.pyramid_level_inputs == {k: t.name for k, t in levels.items()}
    assert list(backbone.pyramid_outputs) == ["P1", "P2", "P3", "P4", "P5"]
    for tap in backbone.feature_info:
        tensor = backbone.feature_outputs[tap.key]
        assert tensor.shape[-1] == tap.channels
        if tap.kind == "block":
            output = backbone.get_layer(tap.name).output
            output = output[0] if isinstance(output, (list, tuple)) else output
            assert output is tensor
    assert backbone.expansion_tap.kind == "expansion"
    assert backbone.output_shape[-1] == levels["P5"].channels


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("size", [(256, 256), (320, 256)])
def test_pyramid_sizes_from_model_outputs(variant, size):
    height, width = size
    backbone = MobileNetV3Backbone(variant, input_shape=(height, width, 3))
    keys = ["P1", "P2", "P3", "P4", "P5", backbone.expansion_tap.key]
    extractor = backbone.get_feature_extractor(keys)
    x = np.random.default_rng(0).uniform(0, 255, (1, height, width, 3)).astype("float32")
    outputs = {k: np.asarray(v) for k, v in extractor(x, training=False).items()}
    assert set(outputs) == set(keys)
    taps = {t.key: t for t in backbone.feature_info}
    taps.update({t.level: t for t in backbone.feature_info if t.level})
    for key in keys:
        tap = taps[key]
        assert outputs[key].shape == (1, height // tap.stride, width // tap.stride, tap.channels)
    for level in range(1, 6):
        assert outputs[f"P{level}"].shape[1:3] == (height // 2**level, width // 2**level)
    np.testing.assert_allclose(
        outputs["P5"], backbone(x, training=False), rtol=1e-5, atol=1e-5
    )


def test_output_stride_16_sizes():
    backbone = MobileNetV3Backbone("small", input_shape=(256, 320, 3), output_stride=16)
    x = np.zeros((1, 256, 320, 3), "float32")
    outputs = backbone.get_feature_extractor(["P4", "P5"])(x, training=False)
    assert outputs["P4"].shape == (1, 16, 20, 48)
    assert outputs["P5"].shape == (1, 16, 20, 576)


@pytest.mark.parametrize(
    "keys,error,match",
    [
        (["P7"], ValueError, r"Received: keys=\['P7'\] \(unknown key='P7'\)"),
        # keras-hub RetinaNet asks for P6/P7 only from its own FPN, never from us.
        ("P6", ValueError, r"keys=\['P6'\]"),
        (["P3", "p4"], ValueError, "unknown key='p4'"),
        (["expanded_conv_99"], ValueError, "unknown key='expanded_conv_99'"),
        ([], ValueError, r"at least one .* Received: keys=\[\]"),
        (3, TypeError, "Received: keys=3"),
        (["P3", 4], TypeError, r"keys=\['P3', 4\] \(key 4 of type int\)"),
        ([["P3"]], TypeError, "of type list"),
    ],
)
def test_get_feature_extractor_rejects_bad_keys(keys, error, match):
    backbone = MobileNetV3Backbone("small", alpha=0.35, input_shape=(64, 64, 3))
    with pytest.raises(error, match=match) as info:
        backbone.get_feature_extractor(keys)
    assert "`keys`" in str(info.value)


def test_get_feature_extractor_lists_the_levels_a_short_table_has():
    """A custom table with one stride-2 block fewer has no P5: asking for it names P1-P4."""
    spec = _custom_spec()
    spec = dataclasses.replace(
        spec, blocks=spec.blocks[:4] + tuple(dataclasses.replace(b, strides=1) for b in spec.blocks[4:])
    )
    backbone = MobileNetV3Backbone(spec, input_shape=(64, 64, 3))
    assert sorted(backbone.pyramid_level_inputs) == ["P1", "P2", "P3", "P4"]
    with pytest.raises(ValueError, match=r"\['P1', 'P2', 'P3', 'P4'\] .* \(unknown key='P5'\)"):
        backbone.get_feature_extractor(["P3", "P5"])
    extractor = backbone.get_feature_extractor(("P4", "expanded_conv_5"))
    assert list(extractor.output) == ["P4", "expanded_conv_5"]


# --- Parity with the applications -------------------------------------------


def _randomize(model, seed=0):
    rng = np.random.default_rng(seed)
    for variable in model.weights:
        shape = tuple(variable.shape)
        if "variance" in variable.path:
            value = rng.uniform(0.5, 1.5, shape)
        else:
            value = rng.normal(0.0, 0.2, shape)
        variable.assign(value.astype("float32"))


@pytest.mark.parametrize("builder,variant", [(MobileNetV3Large, "large"), (MobileNetV3Small, "small")])
def test_same_output_as_application_without_top(builder, variant, tmp_path):
    reference = builder(input_shape=(96, 128, 3), include_top=False, weights=None)
    _randomize(reference)
    backbone = MobileNetV3Backbone(variant, input_shape=(96, 128, 3))
    assert [v.path for v in backbone.weights] == [v.path for v in reference.weights]
    x = np.random.default_rng(1).uniform(0, 255, (2, 96, 128, 3)).astype("float32")
    expected = reference(x, training=False)

    backbone.set_weights(reference.get_weights())
    np.testing.assert_allclose(backbone(x, training=False), expected, rtol=1e-5, atol=1e-5)

    path = os.path.join(tmp_path, "reference.weights.h5")
    reference.save_weights(path)
    loaded = MobileNetV3Backbone(variant, input_shape=(96, 128, 3), weights=path)
    np.testing.assert_allclose(loaded(x, training=False), expected, rtol=1e-5, atol=1e-5)


def test_output_stride_keeps_weight_shapes():
    reference = MobileNetV3Backbone("small")
    dilated = MobileNetV3Backbone("small", output_stride=8)
    assert [tuple(v.shape) for v in dilated.weights] == [tuple(v.shape) for v in reference.weights]


# --- Serialization ----------------------------------------------------------


def _custom_spec():
    return ArchitectureSpec(
        name="tiny",
        stem=StemSpec(8, 3, 2, "hard_swish"),
        blocks=(
            BlockSpec(3, 16, 16, True, "relu", 2),
            BlockSpec(3, 32, 24, False, "relu", 2),
            BlockSpec(3, 48, 24, False, "hard_swish", 1),
            BlockSpec(5, 72, 32, True, "hard_swish", 2),
            BlockSpec(5, 96, 48, True, "hard_swish", 2),
            BlockSpec(5, 144, 48, True, "hard_swish", 1),
        ),
        last_stage=LastStageSpec(144, 256),
    )


CONFIG_CASES = {
    "small": dict(variant="small"),
    "large_os16_reduced": dict(
        variant="large", alpha=0.75, output_stride=16, reduced_tail=True,
        include_preprocessing=False, bn_momentum=0.9, input_shape=(64, 96, 3),
    ),
    "custom": dict(variant=_custom_spec(), minimalistic=True, name="tiny_backbone"),
}


@pytest.mark.parametrize("case", sorted(CONFIG_CASES))
def test_get_config_from_config(case):
    backbone = MobileNetV3Backbone(**CONFIG_CASES[case])
    config = backbone.get_config()
    assert set(config) == {
        "name", "trainable", "variant", "alpha", "minimalistic", "input_shape",
        "include_preprocessing", "output_stride", "reduced_tail", "weights", "bn_momentum",
    }
    assert config["weights"] is None
    config = json.loads(json.dumps(config))
    restored = MobileNetV3Backbone.from_config(config)
    assert type(restored) is MobileNetV3Backbone
    assert json.loads(json.dumps(restored.get_config())) == config
    assert restored.feature_info == backbone.feature_info
    if case == "custom":
        assert restored.variant == _custom_spec()
        assert restored.name == "tiny_backbone"
    # Keras' own (de)serialization finds the registered class.
    again = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(backbone))
    assert type(again) is MobileNetV3Backbone


def test_custom_spec_taps():
    taps = feature_taps(_custom_spec())
    assert _rows(taps) == [
        ("conv_activation", 2, 8, "block", "P1"),
        (E, 4, 16, "block", "P2"),
        (E + "_1", 8, 24, "block", None),
        (E + "_2", 8, 24, "block", "P3"),
        (E + "_3", 16, 32, "block", "P4"),
        (E + "_4", 16, 96, "expansion", None),
        (E + "_4", 32, 48, "block", None),
        (E + "_5", 32, 48, "block", None),
        ("last_stage", 32, 144, "block", "P5"),
    ]


def test_keras_round_trip(tmp_path):
    backbone = MobileNetV3Backbone(
        "small", input_shape=(64, 64, 3), output_stride=16, reduced_tail=True
    )
    _randomize(backbone)
    x = np.random.default_rng(2).uniform(0, 255, (2, 64, 64, 3)).astype("float32")
    expected = backbone(x, training=False)
    path = os.path.join(tmp_path, "backbone.keras")
    backbone.save(path)
    loaded = keras.saving.load_model(path)
    assert type(loaded) is MobileNetV3Backbone
    assert loaded.pyramid_level_inputs == backbone.pyramid_level_inputs
    np.testing.assert_allclose(loaded(x, training=False), expected, rtol=1e-6, atol=1e-6)


# --- Reduced tail -----------------------------------------------------------


@pytest.mark.parametrize(
    "variant,expanded,filters,last",
    [
        # TF-slim V3_LARGE_DETECTION: spec[13..16] num_outputs halved, expansion
        # factors stay relative to the input.
        ("large", [672, 480, 480], [80, 80, 80], 480),
        # V3_SMALL_DETECTION: spec[9..12].
        ("small", [288, 288, 288], [48, 48, 48], 288),
    ],
)
def test_reduced_tail_halves_the_last_stage(variant, expanded, filters, last):
    full = resolve_architecture(variant)
    arch = resolve_architecture(variant, reduced_tail=True)
    start = tail_start_index(variant)
    assert arch.reduced_tail and not full.reduced_tail
    assert arch.blocks[:start] == full.blocks[:start]
    assert [b.expanded_filters for b in arch.blocks[start:]] == expanded
    assert [b.filters for b in arch.blocks[start:]] == filters
    assert arch.last_stage_filters == last
    assert arch.last_point_filters == full.last_point_filters

    backbone = MobileNetV3Backbone(variant, reduced_tail=True)
    taps = {t.key: t for t in backbone.feature_info}
    assert backbone.output_shape[-1] == last
    assert taps[backbone.expansion_tap.key].channels == expanded[0]
    assert backbone.get_layer("last_stage").output.shape[-1] == last


def test_reduced_tail_with_alpha_and_minimalistic():
    arch = resolve_architecture("large", alpha=0.75, minimalistic=True, reduced_tail=True)
    full = resolve_architecture("large", alpha=0.75, minimalistic=True)
    assert [b.filters for b in arch.blocks[12:]] == [64, 64, 64]  # make_divisible(80 * .75)
    assert [b.filters for b in full.blocks[12:]] == [120, 120, 120]
    assert arch.last_stage_filters == 384  # make_divisible(64 * 6)


def test_reduced_tail_default_is_unchanged_behaviour():
    for variant in VARIANTS:
        assert resolve_architecture(variant) == resolve_architecture(variant, reduced_tail=False)
        assert resolve_architecture(variant, 1.0, False, 16, 8) == resolve_architecture(
            variant, output_stride=16
        )


def test_reduced_tail_rejects_non_bool_and_table_without_stride_2():
    with pytest.raises(TypeError, match="reduced_tail=1"):
        resolve_architecture("small", reduced_tail=1)
    flat = dataclasses.replace(SMALL, blocks=(BlockSpec(3, 16, 16, False, "relu", 1),))
    with pytest.raises(ValueError, match="stride-2"):
        resolve_architecture(flat, reduced_tail=True)


# --- InvertedResidual(expansion_output=True) --------------------------------


def test_inverted_residual_expansion_output():
    kwargs = dict(filters=24, kernel_size=5, strides=2, expansion=4.5, se_ratio=0.25,
                  activation="hard_swish")
    plain = InvertedResidual(**kwargs)
    tapped = InvertedResidual(**kwargs, expansion_output=True)
    x = np.random.default_rng(3).normal(size=(2, 16, 16, 16)).astype("float32")
    plain.build(x.shape)
    tapped.build(x.shape)
    assert [w.path.split("/", 1)[1] for w in plain.weights] == [
        w.path.split("/", 1)[1] for w in tapped.weights
    ]
    tapped.set_weights(plain.get_weights())
    output, expanded = tapped(x)
    np.testing.assert_allclose(output, plain(x), rtol=1e-6, atol=1e-6)
    expected_expanded = tapped.expand_activation(tapped.expand_bn(tapped.expand(x)))
    np.testing.assert_allclose(expanded, expected_expanded, rtol=1e-6, atol=1e-6)
    assert tapped.compute_output_shape((2, 16, 16, 16)) == ((2, 8, 8, 24), (2, 16, 16, 72))
    symbolic = tapped(keras.Input((16, 16, 16)))
    assert [tuple(t.shape) for t in symbolic] == [(None, 8, 8, 24), (None, 16, 16, 72)]


def test_inverted_residual_expansion_output_config():
    plain = InvertedResidual(16)
    assert plain.get_config()["expansion_output"] is False
    tapped = InvertedResidual(16, expansion=3, expansion_output=True)
    config = tapped.get_config()
    assert config["expansion_output"] is True
    assert InvertedResidual.from_config(config).expansion_output is True
    with pytest.raises(TypeError, match="expansion_output='yes'"):
        InvertedResidual(16, expansion_output="yes")


def test_inverted_residual_expansion_output_without_expand_is_the_input():
    layer = InvertedResidual(16, expansion=1.0, expansion_output=True)
    x = np.random.default_rng(4).normal(size=(1, 8, 8, 16)).astype("float32")
    _, expanded = layer(x)
    np.testing.assert_allclose(expanded, x)


# --- Bad input --------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs,error,match",
    [
        (dict(output_stride=4), ValueError, "output_stride=4"),
        (dict(output_stride=64), ValueError, "output_stride=64"),
        (dict(output_stride=0), ValueError, "output_stride=0"),
        (dict(output_stride="16"), ValueError, "output_stride='16'"),
        (dict(output_stride=16.0), ValueError, r"output_stride=16\.0"),
        (dict(output_stride=True), ValueError, "output_stride=True"),
        (dict(output_stride=None), ValueError, "output_stride=None"),
        # Smaller than the deepest stride-2 layer needs, at every output stride.
        (dict(input_shape=(16, 16, 3), output_stride=8), ValueError, r"input_shape=\(16, 16, 3\)"),
        (dict(input_shape=(None, 20, 3), output_stride=16), ValueError,
         r"input_shape=\(None, 20, 3\)"),
        (dict(input_shape=(64.0, 64, 3)), ValueError, r"input_shape=\(64\.0, 64, 3\)"),
        (dict(variant=None), ValueError, "variant=None"),
        (dict(alpha="0.5"), TypeError, "alpha='0.5'"),
        (dict(variant="medium"), ValueError, "variant='medium'"),
        (dict(alpha=0), ValueError, "alpha=0"),
        (dict(alpha=-1.0), ValueError, "alpha=-1.0"),
        (dict(input_shape=(31, 64, 3)), ValueError, r"input_shape=\(31, 64, 3\)"),
        (dict(input_shape=(64, 16, 3)), ValueError, r"input_shape=\(64, 16, 3\)"),
        (dict(input_shape=(64, 64)), ValueError, "input_shape"),
        (dict(reduced_tail="yes"), TypeError, "reduced_tail='yes'"),
        (dict(include_preprocessing=1), TypeError, "include_preprocessing=1"),
        (dict(bn_momentum=1.5), ValueError, "bn_momentum=1.5"),
        (dict(weights="nope.h5"), ValueError, "weights='nope.h5'"),
        (dict(variant={"name": "x"}), ValueError, "variant="),
    ],
)
def test_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        MobileNetV3Backbone(**kwargs)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(reduced_tail=True), "reduced_tail=True"),
        (dict(alpha=0.5), "alpha=0.5"),
        (dict(input_shape=(224, 224, 1)), r"input_shape=\(224, 224, 1\)"),
        (dict(variant=_custom_spec()), "variant=<custom ArchitectureSpec 'tiny'>"),
        (dict(minimalistic=True, alpha=0.75), "alpha=0.75"),
    ],
)
def test_imagenet_weights_reject_shape_changing_options(kwargs, match):
    with pytest.raises(ValueError, match=match):
        MobileNetV3Backbone(weights="imagenet", **kwargs)


def test_imagenet_weights_allowed_with_output_stride(monkeypatch):
    """output_stride only changes strides and dilation; the checks pass and loading is called."""
    calls = []
    from mnv3_layers.applications import weights as weights_lib

    monkeypatch.setattr(weights_lib, "load_weights", lambda model, w, **kw: calls.append((w, kw)))
    MobileNetV3Backbone("small", output_stride=8, weights="imagenet")
    assert calls == [
        ("imagenet", dict(model_type="small", alpha=1.0, minimalistic=False, include_top=False))
    ]


def test_weights_file_of_other_variant_is_rejected(tmp_path):
    path = os.path.join(tmp_path, "small.weights.h5")
    MobileNetV3Backbone("small").save_weights(path)
    with pytest.raises(ValueError, match="does not match"):
        MobileNetV3Backbone("small", reduced_tail=True, weights=path)


# --- run_backbone_test over the registry ---------------------------------------

SIZE = 64


def _pyramid_sizes(output_stride):
    """(rows, cols) of P1..P5 on a SIZE x SIZE input: nominal stride 2**n, capped."""
    return [(-(-SIZE // min(2**n, output_stride)),) * 2 for n in range(1, 6)]


@pytest.mark.parametrize("reduced_tail", [False, True])
@pytest.mark.parametrize("output_stride", [32, 16, 8])
@pytest.mark.parametrize("variant", VARIANTS)
def test_run_backbone_test(variant, output_stride, reduced_tail):
    # The full checks (save/load, mixed precision) once per variant and tail;
    # the dilated strides change shapes and metadata only.
    full = output_stride == 32
    run_backbone_test(
        MobileNetV3Backbone,
        {"variant": variant, "alpha": 0.35, "input_shape": (SIZE, SIZE, 3),
         "output_stride": output_stride, "reduced_tail": reduced_tail},
        np.random.default_rng(0).uniform(0, 255, (2, SIZE, SIZE, 3)).astype("float32"),
        expected_output_shape=(2, *_pyramid_sizes(output_stride)[-1],
                               resolve_architecture(variant, 0.35, reduced_tail=reduced_tail)
                               .last_stage_filters),
        expected_pyramid_output_keys=["P1", "P2", "P3", "P4", "P5"],
        expected_pyramid_image_sizes=_pyramid_sizes(output_stride),
        run_save_load_check=full,
        run_mixed_precision_check=full,
    )


def test_run_backbone_test_catches_wrong_expectations():
    kwargs = {"variant": "small", "alpha": 0.35, "input_shape": (SIZE, SIZE, 3)}
    data = np.zeros((1, SIZE, SIZE, 3), "float32")
    with pytest.raises(AssertionError, match="pyramid sizes"):
        run_backbone_test(
            MobileNetV3Backbone, kwargs, data, expected_output_shape=(1, 2, 2, 192),
            expected_pyramid_output_keys=["P1", "P2", "P3", "P4", "P5"],
            expected_pyramid_image_sizes=_pyramid_sizes(16),
            run_save_load_check=False, run_mixed_precision_check=False,
        )
    with pytest.raises(AssertionError, match="keys"):
        run_backbone_test(
            MobileNetV3Backbone, kwargs, data, expected_output_shape=(1, 2, 2, 192),
            expected_pyramid_output_keys=["P2", "P3", "P4", "P5"],
            expected_pyramid_image_sizes=_pyramid_sizes(32)[1:],
            run_save_load_check=False, run_mixed_precision_check=False,
        )
