"""The NetAdapt search space: block tables as JSON, channel structure and proposals.

A `Proposal` shrinks one channel count in steps of 8 without adding or removing
an expand convolution or a residual connection (`channel_structure`).
"""

import dataclasses
import json
import os

from mnv3_layers.architecture import block_spec
from mnv3_layers.architecture.block_spec import (
    ArchitectureSpec,
    BlockSpec,
    LastStageSpec,
    StemSpec,
    get_architecture,
)
from mnv3_layers.architecture.resolve import resolve_architecture

STEP = 8
PROPOSAL_KINDS = ("expansion", "bottleneck")

# === Architecture as JSON ===


def architecture_to_dict(spec):
    """The dict form of an `ArchitectureSpec` (what `MobileNetV3Backbone.get_config` writes).

    Example:

    >>> from mnv3_layers import SMALL
    >>> from mnv3_layers.search import architecture_to_dict
    >>> d = architecture_to_dict(SMALL)
    >>> sorted(d), d["blocks"][0]
    (['blocks', 'last_stage', 'name', 'stem'], {'kernel_size': 3, 'exp_size': 16, \
'filters': 16, 'se': True, 'activation': 'relu', 'strides': 2})
    """
    return block_spec.architecture_to_dict(spec)


def architecture_from_dict(data):
    """Inverse of `architecture_to_dict`; raises ValueError on a malformed dict."""
    return block_spec.architecture_from_dict(data)


def load_architecture(path):
    """Reads an `architecture.json` written by the search into an `ArchitectureSpec`."""
    with open(os.fspath(path), encoding="utf-8") as f:
        return architecture_from_dict(json.load(f))


def flatten_architecture(variant="small", alpha=1.0, minimalistic=False):
    """A block table with absolute widths: `resolve_architecture(v, a, m)` at `alpha=1.0`.

    Example:

    >>> from mnv3_layers.search import flatten_architecture
    >>> spec = flatten_architecture("small", alpha=0.5)
    >>> [(b.exp_size, b.filters) for b in spec.blocks[:3]]
    [(16, 8), (40, 16), (56, 16)]
    """
    spec = get_architecture(variant)
    arch = resolve_architecture(spec, alpha, minimalistic)
    blocks = tuple(
        BlockSpec(
            kernel_size=b.kernel_size,
            exp_size=b.expanded_filters,
            filters=b.filters,
            se=bool(b.se_ratio),
            activation=b.activation,
            strides=spec.blocks[b.index].strides,
        )
        for b in arch.blocks
    )
    suffix = f"_{alpha:g}" + ("_minimalistic" if minimalistic else "")
    return ArchitectureSpec(
        name=spec.name if (alpha == 1.0 and not minimalistic) else spec.name + suffix,
        stem=StemSpec(arch.stem.filters, arch.stem.kernel_size, arch.stem.strides,
                      arch.stem_activation),
        blocks=blocks,
        last_stage=LastStageSpec(arch.last_stage_filters, arch.last_point_filters,
                                 arch.last_stage_activation),
    )


# === Channel structure ===


def channel_structure(spec):
    """(has_expand, use_residual) per block: what proposals must not change."""
    arch = resolve_architecture(spec)
    return tuple((b.has_expand, b.use_residual) for b in arch.blocks)


def bottleneck_groups(spec):
    """Tensors joined by residual adds, as lists of tensor indices.

    Tensor 0 is the stem output, tensor `i + 1` the output of block `i`.

    Example:

    >>> from mnv3_layers import SMALL
    >>> from mnv3_layers.search import bottleneck_groups
    >>> bottleneck_groups(SMALL)
    [[0], [1], [2, 3], [4, 5, 6], [7, 8], [9, 10, 11]]
    """
    arch = resolve_architecture(spec)
    groups = [[0]]
    for block in arch.blocks:
        if block.use_residual:
            groups[-1].append(block.index + 1)
        else:
            groups.append([block.index + 1])
    return groups


@dataclasses.dataclass(frozen=True)
class Proposal:
    """One channel count the search may shrink: `kind` `"expansion"` (block
    `index`), `"last_stage"` (`index` None) or `"bottleneck"` (group `index`)."""

    kind: str
    index: object = None

    @property
    def name(self):
        return self.kind if self.index is None else f"{self.kind}[{self.index}]"


def proposal_width(spec, proposal):
    """Current width of the channel count `proposal` edits."""
    if proposal.kind == "expansion":
        return spec.blocks[proposal.index].exp_size
    if proposal.kind == "last_stage":
        return spec.last_stage.exp_size
    tensor = bottleneck_groups(spec)[proposal.index][0]
    return spec.stem.filters if tensor == 0 else spec.blocks[tensor - 1].filters


def apply_proposal(spec, proposal, width, structure=None):
    """`spec` with `proposal`'s width set; `None` if that changes `structure` (default: `spec`'s)."""
    blocks = list(spec.blocks)
    stem, last = spec.stem, spec.last_stage
    if proposal.kind == "expansion":
        blocks[proposal.index] = dataclasses.replace(blocks[proposal.index], exp_size=width)
    elif proposal.kind == "last_stage":
        last = dataclasses.replace(last, exp_size=width)
    else:
        arch = resolve_architecture(spec)
        tensors = set(bottleneck_groups(spec)[proposal.index])
        if 0 in tensors:
            stem = dataclasses.replace(stem, filters=width)
        for block in arch.blocks:
            row = blocks[block.index]
            if block.index + 1 in tensors:
                row = dataclasses.replace(row, filters=width)
            if block.index in tensors and not block.has_expand:
                row = dataclasses.replace(row, exp_size=width)  # Tied to its input.
            blocks[block.index] = row
    new = ArchitectureSpec(spec.name, stem, tuple(blocks), last)
    if channel_structure(new) != (structure or channel_structure(spec)):
        return None
    return new


def enumerate_proposals(spec, kinds=PROPOSAL_KINDS):
    """Every `Proposal` of `spec` (expansions, last stage, bottleneck groups)."""
    arch = resolve_architecture(spec)
    proposals = []
    if "expansion" in kinds:
        proposals += [Proposal("expansion", b.index) for b in arch.blocks if b.has_expand]
        proposals.append(Proposal("last_stage"))
    if "bottleneck" in kinds:
        proposals += [Proposal("bottleneck", g) for g in range(len(bottleneck_groups(spec)))]
    return proposals


def candidate_widths(spec, proposal, structure=None):
    """Valid smaller widths of `proposal`, largest first: `(width, spec)` pairs."""
    current = proposal_width(spec, proposal)
    result = []
    for width in range(current - STEP, STEP - 1, -STEP):
        new = apply_proposal(spec, proposal, width, structure)
        if new is not None:
            result.append((width, new))
    return result


def minimal_architecture(spec, kinds=PROPOSAL_KINDS):
    """The smallest table the search can reach: every proposal at its smallest valid width."""
    structure = channel_structure(spec)
    # Bottlenecks first: an expanded width may not equal its block's input
    # width, so narrow inputs first and expansions fit around them.
    proposals = enumerate_proposals(spec, kinds)
    proposals.sort(key=lambda p: p.kind != "bottleneck")
    for proposal in proposals:
        candidates = candidate_widths(spec, proposal, structure)
        if candidates:
            spec = candidates[-1][1]
    return spec
