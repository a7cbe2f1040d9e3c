"""MobileNetV3 architecture as data: block tables, resolution, profile. Nothing is built here."""

from mnv3_layers.architecture.block_spec import (
    LARGE,
    SMALL,
    ArchitectureSpec,
    BlockSpec,
    LastStageSpec,
    StemSpec,
    get_architecture,
    resolve_architecture,
)

__all__ = [
    "ArchitectureSpec",
    "BlockSpec",
    "LARGE",
    "LastStageSpec",
    "SMALL",
    "StemSpec",
    "get_architecture",
    "resolve_architecture",
]
