"""Block tables against the paper (Tables 1 and 2) and the resolved widths.

Widths at alpha 0.75 / 1.25 are worked by hand with the keras.applications
rule: block width = make_divisible(out * alpha); expansion ratio =
exp / (paper input width); expanded width = make_divisible(scaled_in * ratio).
"""

import dataclasses

import keras
import pytest

from mnv3_layers import LARGE, SMALL, BlockSpec, InvertedResidual, resolve_architecture
from mnv3_layers.applications import MobileNetV3Large, MobileNetV3Small

RE, HS = "relu", "hard_swish"

# Paper Table 1 (Large): kernel, exp size, #out, SE, NL, stride.
PAPER_LARGE = [
    (3, 16, 16, False, RE, 1),
    (3, 64, 24, False, RE, 2),
    (3, 72, 24, False, RE, 1),
    (5, 72, 40, True, RE, 2),
    (5, 120, 40, True, RE, 1),
    (5, 120, 40, True, RE, 1),
    (3, 240, 80, False, HS, 2),
    (3, 200, 80, False, HS, 1),
    (3, 184, 80, False, HS, 1),
    (3, 184, 80, False, HS, 1),
    (3, 480, 112, True, HS, 1),
    (3, 672, 112, True, HS, 1),
    (5, 672, 160, True, HS, 2),
    (5, 960, 160, True, HS, 1),
    (5, 960, 160, True, HS, 1),
]
# Paper Table 2 (Small).
PAPER_SMALL = [
    (3, 16, 16, True, RE, 2),
    (3, 72, 24, False, RE, 2),
    (3, 88, 24, False, RE, 1),
    (5, 96, 40, True, HS, 2),
    (5, 240, 40, True, HS, 1),
    (5, 240, 40, True, HS, 1),
    (5, 120, 48, True, HS, 1),
    (5, 144, 48, True, HS, 1),
    (5, 288, 96, True, HS, 2),
    (5, 576, 96, True, HS, 1),
    (5, 576, 96, True, HS, 1),
]

EXPANDED = {
    # alpha 1.0: the paper's exp-size column.
    ("large", 1.0): [16, 64, 72, 72, 120, 120, 240, 200, 184, 184, 480, 672, 672, 960, 960],
    ("small", 1.0): [16, 72, 88, 96, 240, 240, 120, 144, 288, 576, 576],
    # Large 0.75: widths 16,24,24,32,32,32,64,64,64,64,88,88,120,120,120;
    # e.g. block 4: 32 * (120/40) = 96; block 8: 64 * 2.3 = 147.2 -> 144.
    ("large", 0.75): [16, 64, 72, 72, 96, 96, 192, 160, 144, 144, 384, 528, 528, 720, 720],
    # Large 1.25: widths 24,32,32,48,48,48,104x4,144,144,200x3;
    # block 0: 16 * 1 = 16 (out 24); block 7: 104 * 2.5 = 260 -> int(264) = 264;
    # block 8: 104 * 2.3 = 239.2 -> int(243.2) // 8 * 8 = 240.
    ("large", 1.25): [16, 96, 96, 96, 144, 144, 288, 264, 240, 240, 624, 864, 864, 1200, 1200],
    # Small 0.75: widths 16,24,24,32,32,32,40,40,72,72,72.
    ("small", 0.75): [16, 72, 88, 96, 192, 192, 96, 120, 240, 432, 432],
    # Small 1.25: widths 24,32,32,48,48,48,64,64,120,120,120;
    # block 1: 24 * 4.5 = 108 -> int(112) = 112; block 2: 32 * 88/24 = 117.3 -> 120.
    ("small", 1.25): [16, 112, 120, 128, 288, 288, 144, 192, 384, 720, 720],
}
# (last-stage 1x1 width, pooled last layer width)
LAST = {
    ("large", 1.0): (960, 1280), ("small", 1.0): (576, 1024),
    ("large", 0.75): (720, 1280), ("small", 0.75): (432, 1024),
    ("large", 1.25): (1200, 1600), ("small", 1.25): (720, 1280),
}


def _row(spec):
    return (spec.kernel_size, spec.exp_size, spec.filters, spec.se, spec.activation,
            spec.strides)


def test_tables_match_the_paper():
    assert [_row(b) for b in LARGE.blocks] == PAPER_LARGE
    assert [_row(b) for b in SMALL.blocks] == PAPER_SMALL
    assert (LARGE.last_stage.exp_size, LARGE.last_stage.last_point_filters) == (960, 1280)
    assert (SMALL.last_stage.exp_size, SMALL.last_stage.last_point_filters) == (576, 1024)
    for arch in (LARGE, SMALL):
        assert (arch.stem.filters, arch.stem.kernel_size, arch.stem.strides,
                arch.stem.activation) == (16, 3, 2, HS)


@pytest.mark.parametrize("variant,alpha", sorted(EXPANDED))
def test_resolved_expanded_widths(variant, alpha):
    arch = resolve_architecture(variant, alpha=alpha)
    assert [b.expanded_filters for b in arch.blocks] == EXPANDED[variant, alpha]
    assert (arch.last_stage_filters, arch.last_point_filters) == LAST[variant, alpha]
    for block in arch.blocks:
        assert block.expanded_filters % 8 == 0 and block.filters % 8 == 0


@pytest.mark.parametrize(
    "builder,variant",
    [(MobileNetV3Large, "large"), (MobileNetV3Small, "small")],
)
def test_built_models_have_the_paper_widths(builder, variant):
    model = builder(weights=None, input_shape=(224, 224, 3))
    arch = resolve_architecture(variant)
    widths = []
    for i in range(len(arch.blocks)):
        layer = model.get_layer("expanded_conv" if i == 0 else f"expanded_conv_{i}")
        assert isinstance(layer, InvertedResidual)
        widths.append(layer.expanded_filters)
        block = arch.blocks[i]
        assert layer.filters == block.filters
        assert layer.kernel_size == block.kernel_size
        assert layer.strides == block.strides
        assert layer.activation == block.activation
        assert (layer.squeeze_excite is not None) == (block.se_ratio is not None)
        assert layer.use_residual == block.use_residual
        assert (layer.expand is not None) == block.has_expand
    assert widths == EXPANDED[variant, 1.0]
    last_stage = model.get_layer("last_stage")
    assert (last_stage.filters, last_stage.last_point_filters) == LAST[variant, 1.0]
    assert tuple(last_stage.output.shape) == (None, 1, 1, LAST[variant, 1.0][1])
    # The last block sees 7x7 at 224 input (output stride 32).
    assert tuple(last_stage.input.shape) == (None, 7, 7, arch.blocks[-1].filters)


def test_only_first_large_block_skips_expand():
    arch = resolve_architecture("large")
    assert [b.has_expand for b in arch.blocks] == [False] + [True] * 14
    small = resolve_architecture("small")
    assert [b.has_expand for b in small.blocks] == [False] + [True] * 10
    # Residual: stride 1 and same width.
    assert [b.use_residual for b in arch.blocks] == [
        True, False, True, False, True, True, False, True, True, True, False, True,
        False, True, True,
    ]


@pytest.mark.parametrize("variant", ["large", "small"])
def test_minimalistic(variant):
    full = resolve_architecture(variant)
    arch = resolve_architecture(variant, minimalistic=True)
    assert all(b.kernel_size == 3 for b in arch.blocks)
    assert all(b.activation == RE for b in arch.blocks)
    assert all(b.se_ratio is None for b in arch.blocks)
    assert arch.stem_activation == RE and arch.last_stage_activation == RE
    # Widths and strides are unchanged.
    assert [b.expanded_filters for b in arch.blocks] == [b.expanded_filters for b in full.blocks]
    assert [b.strides for b in arch.blocks] == [b.strides for b in full.blocks]


def test_se_ratio_is_a_quarter_on_se_rows():
    arch = resolve_architecture("large")
    assert [b.se_ratio for b in arch.blocks] == [
        0.25 if row.se else None for row in LARGE.blocks
    ]


# (strides, dilation_rate, cumulative stride) of every block.
OUTPUT_STRIDE = {
    ("large", 32): (
        [1, 2, 1, 2, 1, 1, 2, 1, 1, 1, 1, 1, 2, 1, 1], [1] * 15,
        [2, 4, 4, 8, 8, 8, 16, 16, 16, 16, 16, 16, 32, 32, 32],
    ),
    # Block 12 would reach 32: stride 1 at the current rate 1; blocks 13-14 at rate 2.
    ("large", 16): (
        [1, 2, 1, 2, 1, 1, 2, 1, 1, 1, 1, 1, 1, 1, 1], [1] * 13 + [2, 2],
        [2, 4, 4, 8, 8, 8] + [16] * 9,
    ),
    # Block 6 would reach 16: rate 1, then 2; block 12 at rate 2, then 4.
    ("large", 8): (
        [1, 2, 1, 2] + [1] * 11, [1] * 7 + [2] * 6 + [4, 4],
        [2, 4, 4] + [8] * 12,
    ),
    ("small", 16): (
        [2, 2, 1, 2, 1, 1, 1, 1, 1, 1, 1], [1] * 9 + [2, 2],
        [4, 8, 8] + [16] * 8,
    ),
    ("small", 8): (
        [2, 2] + [1] * 9, [1] * 4 + [2] * 5 + [4, 4],
        [4] + [8] * 10,
    ),
}


@pytest.mark.parametrize("variant,output_stride", sorted(OUTPUT_STRIDE))
def test_output_stride(variant, output_stride):
    arch = resolve_architecture(variant, output_stride=output_stride)
    strides, rates, cumulative = OUTPUT_STRIDE[variant, output_stride]
    assert [b.strides for b in arch.blocks] == strides
    assert [b.dilation_rate for b in arch.blocks] == rates
    assert [b.stride for b in arch.blocks] == cumulative
    # Dilation never changes the widths.
    assert [b.expanded_filters for b in arch.blocks] == EXPANDED[variant, 1.0]


@pytest.mark.parametrize("output_stride", [8, 16])
def test_dilated_blocks_build(output_stride):
    """Blocks from a dilated table build and keep 224 / output_stride resolution."""
    arch = resolve_architecture("small", output_stride=output_stride)
    x = keras.Input((224, 224, 3))
    h = keras.layers.Conv2D(16, 3, strides=2, padding="same")(x)
    for b in arch.blocks:
        h = InvertedResidual(
            b.filters, kernel_size=b.kernel_size, strides=b.strides, expansion=b.expansion,
            se_ratio=b.se_ratio, activation=b.activation, dilation_rate=b.dilation_rate,
        )(h)
    assert tuple(h.shape) == (None, 224 // output_stride, 224 // output_stride, 96)


# --- BlockSpec validation and round trip ------------------------------------

GOOD = dict(kernel_size=3, exp_size=72, filters=24, se=False, activation=RE, strides=1)


@pytest.mark.parametrize(
    "field,value",
    [("kernel_size", 4), ("kernel_size", 0), ("kernel_size", True), ("kernel_size", 3.0),
     ("exp_size", 0), ("exp_size", 1.5), ("exp_size", True),
     ("filters", 0), ("filters", -24), ("filters", "24"),
     ("se", 1), ("se", "yes"), ("se", None),
     ("activation", "swish"), ("activation", "RE"), ("activation", None),
     ("strides", 3), ("strides", 0), ("strides", True)],
)
def test_block_spec_rejects_bad_rows(field, value):
    with pytest.raises(ValueError) as info:
        BlockSpec(**dict(GOOD, **{field: value}))
    assert f"{field}={value!r}" in str(info.value)


@pytest.mark.parametrize("row", list(LARGE.blocks) + list(SMALL.blocks))
def test_block_spec_dict_round_trip(row):
    as_dict = row.to_dict()
    assert set(as_dict) == set(GOOD)
    assert BlockSpec.from_dict(as_dict) == row


def test_block_spec_from_dict_rejects():
    with pytest.raises(TypeError, match="row="):
        BlockSpec.from_dict([3, 72, 24, False, RE, 1])
    with pytest.raises(ValueError, match="keys"):
        BlockSpec.from_dict({k: v for k, v in GOOD.items() if k != "se"})
    with pytest.raises(ValueError, match="keys"):
        BlockSpec.from_dict(dict(GOOD, dilation=2))
    with pytest.raises(ValueError, match="strides=3"):
        BlockSpec.from_dict(dict(GOOD, strides=3))


def test_block_spec_is_frozen():
    row = BlockSpec(**GOOD)
    with pytest.raises(dataclasses.FrozenInstanceError):
        row.filters = 32


@pytest.mark.parametrize(
    "kwargs,argument",
    [(dict(alpha=0), "alpha"), (dict(alpha=-1.0), "alpha"), (dict(alpha="1"), "alpha"),
     (dict(alpha=True), "alpha"), (dict(minimalistic="yes"), "minimalistic"),
     (dict(output_stride=4), "output_stride"), (dict(output_stride=True), "output_stride"),
     (dict(output_stride=64), "output_stride")],
)
def test_resolve_architecture_rejects(kwargs, argument):
    with pytest.raises((ValueError, TypeError)) as info:
        resolve_architecture("large", **kwargs)
    assert f"{argument}={kwargs[argument]!r}" in str(info.value)


def test_resolve_architecture_rejects_unknown_variant():
    with pytest.raises(ValueError, match="variant='medium'"):
        resolve_architecture("medium")
