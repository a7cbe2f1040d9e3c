"""`resolve_architecture`: the one place alpha, minimalistic, output stride and reduced tail apply."""

import dataclasses
import numbers

from mnv3_layers._validation import check_bool, check_positive_number
from mnv3_layers.architecture.block_spec import RE, SE_RATIO, StemSpec, get_architecture
from mnv3_layers.layers.make_divisible import make_divisible


@dataclasses.dataclass(frozen=True)
class BlockConfig:
    """One resolved block: `expansion` is `InvertedResidual`'s ratio, `stride` the cumulative one."""

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
    """Index of the last stride-2 row (Large 12, Small 8): the C4 -> C5 block (6.3).

    Raises ValueError when the table has no stride-2 row.
    """
    arch = get_architecture(arch)
    rows = [i for i, row in enumerate(arch.blocks) if row.strides == 2]
    if not rows:
        raise ValueError(
            "The architecture has no stride-2 block, so it has no last stage to "
            f"reduce or tap. Received: variant={arch.name!r}"
        )
    return rows[-1]


def _resolve_blocks(arch, alpha, minimalistic, output_stride, divisor, tail_start):
    """The `BlockConfig` rows, and the last row's scaled and paper output widths."""
    in_channels = paper_in = arch.stem.filters
    stride, dilation = arch.stem.strides, 1
    blocks = []
    for index, row in enumerate(arch.blocks):
        expansion = row.exp_size / paper_in
        # TF-slim `_reduce_consecutive_layers`: halve `num_outputs` only.
        paper_out = round(row.filters * 0.5) if index >= tail_start else row.filters
        filters = make_divisible(paper_out * alpha, divisor)
        # TF-slim's rule (mobilenet.py, output_stride): a block that would
        # go below the output stride keeps stride 1 and the current rate;
        # every block after it runs at twice that rate.
        strides, block_dilation = row.strides, dilation
        if strides == 2 and stride >= output_stride:
            strides, dilation = 1, dilation * 2
        elif strides == 2:
            stride *= 2
        blocks.append(BlockConfig(
            index=index, in_channels=in_channels, expansion=expansion,
            expanded_filters=make_divisible(in_channels * expansion, divisor),
            filters=filters, kernel_size=3 if minimalistic else row.kernel_size,
            strides=strides, dilation_rate=block_dilation,
            se_ratio=SE_RATIO if row.se and not minimalistic else None,
            activation=RE if minimalistic else row.activation, stride=stride,
        ))
        in_channels, paper_in = filters, row.filters
    return tuple(blocks), in_channels, paper_in


def resolve_architecture(
    variant, alpha=1.0, minimalistic=False, output_stride=32, divisor=8, *, reduced_tail=False
):
    """Applies width multiplier, minimalistic and output stride to a table.

    Follows keras.applications / TF-slim: widths `make_divisible(filters *
    alpha)` (the stem stays 16, the pooled layer grows only for `alpha > 1`).

    Args:
        variant: `"large"`, `"small"` or an `ArchitectureSpec`.
        alpha: width multiplier. Defaults to `1.0`.
        minimalistic: the paper's minimalistic variant (3x3, ReLU, no SE).
            Defaults to `False`.
        output_stride: 8, 16 or 32; stride-2 blocks past it become
            dilated. Defaults to `32`.
        divisor: channel rounding. Defaults to `8`.
        reduced_tail: halve the outputs from `tail_start_index` on (TF-slim
            `V3_*_DETECTION`). Defaults to `False`.

    Returns:
        A `ResolvedArchitecture`.

    Example:

    >>> from mnv3_layers.architecture.resolve import resolve_architecture
    >>> arch = resolve_architecture("small", alpha=0.75)
    >>> arch.blocks[1].filters, arch.last_stage_filters, arch.last_point_filters
    (24, 432, 1024)
    """
    arch = get_architecture(variant)
    check_positive_number("alpha", alpha)
    check_bool("minimalistic", minimalistic)
    if isinstance(output_stride, bool) or not isinstance(output_stride, numbers.Integral) or (
        output_stride not in (8, 16, 32)
    ):
        raise ValueError(
            f"`output_stride` must be 8, 16 or 32. Received: output_stride={output_stride!r}"
        )
    check_bool("reduced_tail", reduced_tail)
    tail_start = tail_start_index(arch) if reduced_tail else len(arch.blocks)
    blocks, in_channels, paper_in = _resolve_blocks(
        arch, alpha, minimalistic, output_stride, divisor, tail_start
    )
    last_ratio = arch.last_stage.exp_size / paper_in
    last_point = arch.last_stage.last_point_filters
    if alpha > 1.0:
        last_point = make_divisible(last_point * alpha, divisor)
    activation = (lambda name: RE) if minimalistic else (lambda name: name)
    return ResolvedArchitecture(
        name=arch.name, alpha=alpha, minimalistic=minimalistic, output_stride=output_stride,
        stem=arch.stem, stem_activation=activation(arch.stem.activation), blocks=blocks,
        last_stage_filters=make_divisible(in_channels * last_ratio, divisor),
        last_point_filters=last_point,
        last_stage_activation=activation(arch.last_stage.activation),
        reduced_tail=reduced_tail,
    )
