"""MobileNetV3 architectures as data: the paper's Tables 1 and 2, row for row.

Each row is a frozen `BlockSpec` of the paper's columns at width 1.0;
`get_architecture` turns a variant argument into an `ArchitectureSpec`.

Reference: Howard et al., "Searching for MobileNetV3", ICCV 2019, Tables 1
and 2, as implemented in TF-slim and keras.applications.
"""

import dataclasses
import numbers

from mnv3_layers._validation import ACTIVATIONS

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

    Columns: `kernel_size` (odd), `exp_size`, `filters` ("#out"), `se`,
    `activation` (`"relu"` = RE, `"hard_swish"` = HS), `strides` (1 or 2).
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
    """The efficient last stage (5.1): 1x1 conv `exp_size`, pooled 1x1 `last_point_filters`."""

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
    """Inverse of `architecture_to_dict`; TypeError / ValueError name `argument`."""
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


def get_architecture(variant, argument="variant"):
    """The `ArchitectureSpec` of a variant name, a spec, or a spec's dict form.

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


# Resolution lives in `resolve.py` (which imports this module); the old names
# stay importable from here.
_RESOLVE_NAMES = ("BlockConfig", "ResolvedArchitecture", "resolve_architecture",
                  "tail_start_index", "_check_alpha")


def __getattr__(name):
    if name in _RESOLVE_NAMES:
        from mnv3_layers.architecture import resolve

        return getattr(resolve, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
