"""MobileNetV3 architecture as data: block tables, resolution, profile. Nothing is built here."""

from mnv3_layers.architecture.block_spec import (
    LARGE,
    SMALL,
    ArchitectureSpec,
    BlockSpec,
    LastStageSpec,
    StemSpec,
    get_architecture,
)
from mnv3_layers.architecture.resolve import (
    BlockConfig,
    ResolvedArchitecture,
    resolve_architecture,
    tail_start_index,
)

__all__ = [
    "ArchitectureSpec",
    "BlockConfig",
    "BlockSpec",
    "LARGE",
    "LastStageSpec",
    "ResolvedArchitecture",
    "SMALL",
    "StemSpec",
    "get_architecture",
    "resolve_architecture",
    "tail_start_index",
]
