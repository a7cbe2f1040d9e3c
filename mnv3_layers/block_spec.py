"""Old path of `mnv3_layers.architecture.block_spec`, kept so existing imports work."""

from mnv3_layers.architecture.block_spec import *  # noqa: F401,F403
from mnv3_layers.architecture.resolve import (  # noqa: F401
    BlockConfig,
    ResolvedArchitecture,
    resolve_architecture,
    tail_start_index,
)
