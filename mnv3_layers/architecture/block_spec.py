"""MobileNetV3 architectures as data: the paper's Tables 1 and 2, row for row.

Each row is a frozen `BlockSpec` holding the paper's columns at width 1.0:
kernel, exp size, #out, SE, NL, stride. `resolve_architecture` is the one
place where the width multiplier (`alpha`), `minimalistic` and the output
stride are applied; everything else (applications, parameter/MAdds profile,
feature metadata) reads its result.

Reference: Howard et al., "Searching for MobileNetV3", ICCV 2019, Table 1
(Large) and Table 2 (Small), as implemented in TF-slim and keras.applications
(Small ends in a 1024-wide layer and has no SE on the 576-wide 1x1 conv).
"""

import dataclasses
import numbers

from mnv3_layers._validation import ACTIVATIONS
from mnv3_layers.layers.make_divisible import make_divisible

RE = "relu"
HS = "hard_swish"


def _check_row(cls_name, field, value, ok, expected):
    if isinstance(value, bool) and field != "se" or not ok(value):
        raise ValueError(
            f"{cls_name}: `{field}` must be {expected}. Received: {field}={value!r}"
        )


def _is_int(value):
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


@dataclasses.dataclass(frozen=True)
class BlockSpec:
    """One inverted-residual row of the paper's tables (values at alpha 1.0).

    Attributes:
        kernel_size: depthwise kernel size (3 or 5 in the paper; any odd int).
        exp_size: expanded width ("exp size" column).
        filters: output width ("#out" column).
        se: whether the block has squeeze-and-excite ("SE" column).
        activation: `"relu"` (paper "RE") or `"hard_swish"` (paper "HS").
        strides: depthwise stride, 1 or 2.
    """

    kernel_size: int
    exp_size: int
    filters: int
    se: bool
    activation: str
    strides: int

    def __post_init__(self):
        name = type(self).__name__
        _check_row(name, "kernel_size", self.kernel_size,
                   lambda v: _is_int(v) and v > 0 and v % 2 == 1, "an odd positive int")
        _check_row(name, "exp_size", self.exp_size, lambda v: _is_int(v) and v > 0,
                   "a positive int")
        _check_row(name, "filters", self.filters, lambda v: _is_int(v) and v > 0,
                   "a positive int")
        _check_row(name, "se", self.se, lambda v: isinstance(v, bool), "a bool")
        _check_row(name, "activation", self.activation, lambda v: v in ACTIVATIONS,
                   f"one of {ACTIVATIONS}")
        _check_row(name, "strides", self.strides, lambda v: v in (1, 2), "1 or 2")

    def to_dict(self):
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, row):
        if not isinstance(row, dict):
            raise TypeError(f"A block spec row must be a dict. Received: row={row!r}")
        fields = {f.name for f in dataclasses.fields(cls)}
        if set(row) != fields:
            raise ValueError(
                f"A block spec row needs exactly the keys {sorted(fields)}. "
                f"Received: row={row!r}"
            )
        return cls(**row)


@dataclasses.dataclass(frozen=True)
class StemSpec:
    """The first layer: a plain `kernel_size` conv with stride 2, BN and activation."""

    filters: int = 16
    kernel_size: int = 3
    strides: int = 2
    activation: str = HS


@dataclasses.dataclass(frozen=True)
class LastStageSpec:
    """The efficient last stage (paper section 5.1).

    `exp_size` is the full-resolution 1x1 conv width (960 / 576 at alpha 1);
    `last_point_filters` the pooled, bias-only 1x1 conv (1280 / 1024).
    """

    exp_size: int
    last_point_filters: int
    activation: str = HS


@dataclasses.dataclass(frozen=True)
class ArchitectureSpec:
    """A whole MobileNetV3 variant: stem, bneck rows and last stage."""

    name: str
    stem: StemSpec
    blocks: tuple
    last_stage: LastStageSpec

    def __post_init__(self):
        if not self.blocks or not all(isinstance(b, BlockSpec) for b in self.blocks):
            raise ValueError(
                "`blocks` must be a non-empty tuple of BlockSpec. "
                f"Received: blocks={self.blocks!r}"
            )


def architecture_to_dict(spec):
    """The JSON-ready dict form of an `ArchitectureSpec` (keys `name`, `stem`, `blocks`, `last_stage`)."""
    if not isinstance(spec, ArchitectureSpec):
        raise TypeError(
            f"`spec` must be an ArchitectureSpec. Received: spec of type {type(spec).__name__}"
        )
    return {
        "name": spec.name,
        "stem": dataclasses.asdict(spec.stem),
        "blocks": [row.to_dict() for row in spec.blocks],
        "last_stage": dataclasses.asdict(spec.last_stage),
    }


def architecture_from_dict(data, argument="architecture"):
    """Inverse of `architecture_to_dict`.

    Raises:
        TypeError: `data` is not a dict.
        ValueError: a key is missing or a row has unknown fields; the message
            names `argument` and shows the received value.
    """
    if not isinstance(data, dict):
        raise TypeError(
            f"`{argument}` must be a dict with the keys 'name', 'stem', 'blocks' and "
            f"'last_stage'. Received: {argument}={data!r}"
        )
    try:
        return ArchitectureSpec(
            name=data["name"],
            stem=StemSpec(**data["stem"]),
            blocks=tuple(BlockSpec.from_dict(dict(row)) for row in data["blocks"]),
            last_stage=LastStageSpec(**data["last_stage"]),
        )
    except (KeyError, TypeError) as error:
        raise ValueError(
            f"`{argument}` given as a dict must have the keys 'name', 'stem', 'blocks' "
            f"and 'last_stage' ({error}). Received: {argument}={data!r}"
        ) from error


# Paper Table 1: MobileNetV3-Large (input 224x224x3).
#           kernel exp  out  SE     NL  stride
LARGE = ArchitectureSpec(
    name="large",
    stem=StemSpec(16, 3, 2, HS),
    blocks=(
        BlockSpec(3, 16, 16, False, RE, 1),
        BlockSpec(3, 64, 24, False, RE, 2),
        BlockSpec(3, 72, 24, False, RE, 1),
        BlockSpec(5, 72, 40, True, RE, 2),
        BlockSpec(5, 120, 40, True, RE, 1),
        BlockSpec(5, 120, 40, True, RE, 1),
        BlockSpec(3, 240, 80, False, HS, 2),
        BlockSpec(3, 200, 80, False, HS, 1),
        BlockSpec(3, 184, 80, False, HS, 1),
        BlockSpec(3, 184, 80, False, HS, 1),
        BlockSpec(3, 480, 112, True, HS, 1),
        BlockSpec(3, 672, 112, True, HS, 1),
        BlockSpec(5, 672, 160, True, HS, 2),
        BlockSpec(5, 960, 160, True, HS, 1),
        BlockSpec(5, 960, 160, True, HS, 1),
    ),
    last_stage=LastStageSpec(960, 1280, HS),
)

# Paper Table 2: MobileNetV3-Small (input 224x224x3). The 576-wide 1x1 conv
# has no SE and the last layer is 1024 wide, as in TF-slim/keras.applications.
SMALL = ArchitectureSpec(
    name="small",
    stem=StemSpec(16, 3, 2, HS),
    blocks=(
        BlockSpec(3, 16, 16, True, RE, 2),
        BlockSpec(3, 72, 24, False, RE, 2),
        BlockSpec(3, 88, 24, False, RE, 1),
        BlockSpec(5, 96, 40, True, HS, 2),
        BlockSpec(5, 240, 40, True, HS, 1),
        BlockSpec(5, 240, 40, True, HS, 1),
        BlockSpec(5, 120, 48, True, HS, 1),
        BlockSpec(5, 144, 48, True, HS, 1),
        BlockSpec(5, 288, 96, True, HS, 2),
        BlockSpec(5, 576, 96, True, HS, 1),
        BlockSpec(5, 576, 96, True, HS, 1),
    ),
    last_stage=LastStageSpec(576, 1024, HS),
)

ARCHITECTURES = {"large": LARGE, "small": SMALL}

SE_RATIO = 0.25
# Batch-norm epsilon of every MobileNetV3 batch norm, as in keras.applications.
BN_EPSILON = 1e-3


@dataclasses.dataclass(frozen=True)
class BlockConfig:
    """One block after alpha/minimalistic/output stride are applied.

    `expansion` is the ratio passed to `InvertedResidual`;
    `expanded_filters` is the width it will build from `in_channels`.
    `stride` is the block's cumulative output stride (relative to the input).
    """

    index: int
    in_channels: int
    expansion: float
    expanded_filters: int
    filters: int
    kernel_size: int
    strides: int
    dilation_rate: int
    se_ratio: object
    activation: str
    stride: int

    @property
    def has_expand(self):
        return self.expanded_filters != self.in_channels

    @property
    def use_residual(self):
        return self.strides == 1 and self.in_channels == self.filters


@dataclasses.dataclass(frozen=True)
class ResolvedArchitecture:
    """Every width, kernel, stride and activation of one concrete model."""

    name: str
    alpha: float
    minimalistic: bool
    output_stride: int
    stem: StemSpec
    stem_activation: str
    blocks: tuple
    last_stage_filters: int
    last_point_filters: int
    last_stage_activation: str
    reduced_tail: bool = False


def tail_start_index(arch):
    """Index of the first bneck row of the last stage (the paper's C4 -> C5 block).

    That is the last row with stride 2 in the table: Large row 12 (the
    672-exp, 160-out block), Small row 8 (288 exp, 96 out). Its expansion
    output is the SSDLite C4 feature (paper section 6.3) and `reduced_tail`
    halves it and every layer after it.

    Raises:
        ValueError: the table has no stride-2 row.
    """
    arch = get_architecture(arch)
    rows = [i for i, row in enumerate(arch.blocks) if row.strides == 2]
    if not rows:
        raise ValueError(
            "The architecture has no stride-2 block, so it has no last stage to "
            f"reduce or tap. Received: variant={arch.name!r}"
        )
    return rows[-1]


def _check_alpha(alpha):
    if isinstance(alpha, bool) or not isinstance(alpha, numbers.Real):
        raise TypeError(
            f"`alpha` must be a positive number. Received: alpha={alpha!r} "
            f"of type {type(alpha).__name__}"
        )
    if not alpha > 0:
        raise ValueError(f"`alpha` must be a positive number. Received: alpha={alpha!r}")


def get_architecture(variant, argument="variant"):
    """The `ArchitectureSpec` of a variant name, a spec, or a spec's dict form.

    The one place a variant argument is turned into a block table: the
    applications, the backbone, the latency tables and the search all call it.

    Args:
        variant: `"large"` or `"small"` (any case), an `ArchitectureSpec`, or
            its dict form (`architecture_to_dict`, what
            `MobileNetV3Backbone.get_config()` and the search write).
        argument: the argument name used in error messages.
            Defaults to `"variant"`.

    Returns:
        An `ArchitectureSpec`.

    Raises:
        ValueError: an unknown name, a malformed dict or any other value.

    Example:

    >>> from mnv3_layers.architecture import get_architecture
    >>> get_architecture("Small").name, len(get_architecture("large").blocks)
    ('small', 15)
    """
    if isinstance(variant, ArchitectureSpec):
        return variant
    if isinstance(variant, dict):
        return architecture_from_dict(variant, argument=argument)
    if isinstance(variant, str) and variant.lower() in ARCHITECTURES:
        return ARCHITECTURES[variant.lower()]
    raise ValueError(
        f"`{argument}` must be one of {sorted(ARCHITECTURES)}, an ArchitectureSpec "
        f"or its dict form. Received: {argument}={variant!r}"
    )


def block_name(index):
    """Layer name of bneck block `index`, as in keras.applications (part of the weights format).

    Example:

    >>> from mnv3_layers.architecture.block_spec import block_name
    >>> block_name(0), block_name(3)
    ('expanded_conv', 'expanded_conv_3')
    """
    return "expanded_conv" if index == 0 else f"expanded_conv_{index}"


def resolve_architecture(
    variant, alpha=1.0, minimalistic=False, output_stride=32, divisor=8, *, reduced_tail=False
):
    """Applies width multiplier, minimalistic and output stride to a table.

    The rules are those of keras.applications / TF-slim:

    - block widths are `make_divisible(filters * alpha)`; the stem stays 16;
    - a block's expansion ratio is `exp_size / in_filters` of the paper row,
      so the expanded width is `make_divisible(scaled_in * ratio)`;
    - the last stage's 1x1 conv is `make_divisible(scaled_last * 960/160)`
      (Large) and the pooled layer is 1280 (1024) unless `alpha > 1`, when it
      grows to `make_divisible(1280 * alpha)`;
    - `minimalistic`: every kernel 3x3, every activation ReLU, no SE;
    - `output_stride` (8, 16 or 32): once the running stride reaches it,
      later stride-2 blocks use stride 1 and double the dilation instead;
    - `reduced_tail` (paper section 6.3, TF-slim's `V3_LARGE_DETECTION` /
      `V3_SMALL_DETECTION`): the output widths of the last-stage blocks
      (from `tail_start_index`: Large rows 12-14, Small rows 8-10) and of
      the last stage's 1x1 conv are halved (`round(filters / 2)` before
      `alpha`); expansion ratios stay relative to the input, as in TF-slim,
      so the first reduced block keeps its full expansion (672 / 288, the
      SSDLite C4 tap) and the later ones halve it (960 -> 480, 576 -> 288).

    Args:
        variant: `"large"`, `"small"` or an `ArchitectureSpec`.
        alpha: width multiplier. Defaults to `1.0`.
        minimalistic: the paper's minimalistic variant. Defaults to `False`.
        output_stride: 8, 16 or 32. Defaults to `32`.
        divisor: channel rounding. Defaults to `8`.
        reduced_tail: halve the channels after C4 (see above).
            Defaults to `False`.

    Returns:
        A `ResolvedArchitecture`.
    """
    arch = get_architecture(variant)
    _check_alpha(alpha)
    if not isinstance(minimalistic, bool):
        raise TypeError(
            f"`minimalistic` must be a bool. Received: minimalistic={minimalistic!r}"
        )
    if (
        isinstance(output_stride, bool)
        or not isinstance(output_stride, numbers.Integral)
        or output_stride not in (8, 16, 32)
    ):
        raise ValueError(
            f"`output_stride` must be 8, 16 or 32. Received: output_stride={output_stride!r}"
        )
    if not isinstance(reduced_tail, bool):
        raise TypeError(
            f"`reduced_tail` must be a bool. Received: reduced_tail={reduced_tail!r}"
        )
    tail_start = tail_start_index(arch) if reduced_tail else len(arch.blocks)

    def depth(channels):
        return make_divisible(channels * alpha, divisor)

    def act(name):
        return RE if minimalistic else name

    in_channels = arch.stem.filters
    paper_in = arch.stem.filters
    stride = arch.stem.strides
    dilation = 1
    blocks = []
    for index, row in enumerate(arch.blocks):
        expansion = row.exp_size / paper_in
        # TF-slim `_reduce_consecutive_layers`: halve `num_outputs` only.
        filters = depth(round(row.filters * 0.5) if index >= tail_start else row.filters)
        strides = row.strides
        # TF-slim's rule (mobilenet.py, output_stride): a block that would
        # go below the output stride keeps stride 1 and the current rate;
        # every block after it runs at twice that rate.
        block_dilation = dilation
        if strides == 2 and stride >= output_stride:
            strides = 1
            dilation *= 2
        elif strides == 2:
            stride *= 2
        blocks.append(
            BlockConfig(
                index=index,
                in_channels=in_channels,
                expansion=expansion,
                expanded_filters=make_divisible(in_channels * expansion, divisor),
                filters=filters,
                kernel_size=3 if minimalistic else row.kernel_size,
                strides=strides,
                dilation_rate=block_dilation,
                se_ratio=SE_RATIO if row.se and not minimalistic else None,
                activation=act(row.activation),
                stride=stride,
            )
        )
        in_channels = filters
        paper_in = row.filters

    last_ratio = arch.last_stage.exp_size / paper_in
    last_point = arch.last_stage.last_point_filters
    if alpha > 1.0:
        last_point = make_divisible(last_point * alpha, divisor)
    return ResolvedArchitecture(
        name=arch.name,
        alpha=alpha,
        minimalistic=minimalistic,
        output_stride=output_stride,
        stem=arch.stem,
        stem_activation=act(arch.stem.activation),
        blocks=tuple(blocks),
        last_stage_filters=make_divisible(in_channels * last_ratio, divisor),
        last_point_filters=last_point,
        last_stage_activation=act(arch.last_stage.activation),
        reduced_tail=reduced_tail,
    )
