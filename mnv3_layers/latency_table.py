"""Old path of the latency lookup tables, kept so existing imports work.

The code lives in `mnv3_layers.latency.components`, `.tflite`, `.table` and
`.calibration`.
"""

from mnv3_layers.latency.calibration import l2_cache_bytes  # noqa: F401
from mnv3_layers.latency.components import (  # noqa: F401
    BN_EPSILON,
    HEAD_TOPS,
    OVERHEAD_KEY,
    SE_RATIO,
    BneckConfig,
    HeadConfig,
    StemConfig,
    build_component,
    component_weight_bytes,
    config_from_dict,
    config_to_dict,
    model_configs,
)
from mnv3_layers.latency.measure import _batch_one, batch_one, measure_tflite  # noqa: F401
from mnv3_layers.latency.table import (  # noqa: F401
    CACHES,
    CLOCKS,
    FILE_FORMAT,
    FILE_VERSION,
    STAT_KEYS,
    STATISTICS,
    LatencyPrediction,
    LatencyTable,
    default_table_path,
    fingerprint_key,
    runtime_fingerprint,
)
from mnv3_layers.latency.tflite import (  # noqa: F401
    TFLiteTimer,
    convert_float_tflite,
    flush_caches,
    time_runners,
)

__all__ = [
    "BneckConfig",
    "HeadConfig",
    "LatencyPrediction",
    "LatencyTable",
    "StemConfig",
    "component_weight_bytes",
    "default_table_path",
    "l2_cache_bytes",
    "model_configs",
    "runtime_fingerprint",
]
