"""Whole-model correction of a latency table's sums: scale, intercept or L2 spill.

`fit_calibration` fits, from a few measured whole models
(`LatencyTable.calibrate`), `total = scale x sum + intercept_ms +
spill_ms_per_mib x spill_mib`: `"scale"` is the median of `measured / sum`,
`"intercept"` the median of `measured - sum`, `"spill"` the least-squares
slope (>= 0, through the origin) of `measured - sum` over `spill_mib`, the
weights a model larger than L2 streams per inference (use with
`cache="warm"`). Fit quality: `benchmarks/README.md` (`bench_latency_table.py`).
"""

import math
import numbers
import os

import numpy as np

from mnv3_layers.latency.components import HeadConfig, component_weight_bytes

KINDS = ("scale", "intercept", "spill")


# === L2 cache and spilled weights ===


def _parse_cache_size(text):
    text = text.strip().upper()
    units = {"K": 1024, "M": 1024**2, "G": 1024**3}
    if text and text[-1] in units:
        return int(text[:-1]) * units[text[-1]]
    return int(text)


def _read_cache_index(folder):
    """`(level, type, size)` of one sysfs cache index folder."""
    values = []
    for name in ("level", "type", "size"):
        with open(os.path.join(folder, name), encoding="ascii") as f:
            values.append(f.read().strip())
    return values[0], values[1], _parse_cache_size(values[2])


def l2_cache_bytes(cpu=0, sysfs="/sys/devices/system/cpu"):
    """Size of the L2 cache of CPU `cpu` in bytes (Linux sysfs), or `None` if unknown.

    Args:
        cpu: the CPU number. Defaults to `0`.
        sysfs: the CPU sysfs folder. Defaults to `"/sys/devices/system/cpu"`.

    Example:

    >>> from mnv3_layers.latency_table import l2_cache_bytes
    >>> size = l2_cache_bytes()  # e.g. 2097152 (2 MiB) on a recent Xeon core
    """
    root = os.path.join(os.fspath(sysfs), f"cpu{int(cpu)}", "cache")
    try:
        indexes = sorted(d for d in os.listdir(root) if d.startswith("index"))
    except OSError:
        return None
    for index in indexes:
        try:
            level, kind, size = _read_cache_index(os.path.join(root, index))
        except (OSError, ValueError):
            continue
        if level == "2" and kind in ("Unified", "Data") and size > 0:
            return size
    return None


def spill_mib(configs, l2_bytes, is_cold=lambda config: False):
    """MiB of stem and block weights that a whole model streams past L2 per inference.

    0 when all weights fit in `l2_bytes`; else all stem and block weights
    except those of components `is_cold(config)` (timed cold).
    """
    configs = list(configs)
    if sum(component_weight_bytes(c) for c in configs) <= l2_bytes:
        return 0.0
    spilled = sum(
        component_weight_bytes(c) for c in configs
        if not isinstance(c, HeadConfig) and not is_cold(c)
    )
    return spilled / 2**20


# === Checks ===


def finite(value, low_ok=lambda v: True):
    """Whether `value` is a finite real number (not a bool) for which `low_ok` holds."""
    return (
        isinstance(value, (int, float)) and not isinstance(value, bool)
        and math.isfinite(value) and low_ok(value)
    )


def is_valid_entry(entry):
    """Whether a stored calibration entry has finite terms in their ranges."""
    return (
        isinstance(entry, dict) and finite(entry.get("intercept_ms"))
        and finite(entry.get("scale", 1.0), lambda v: v > 0)
        and finite(entry.get("spill_ms_per_mib", 0.0), lambda v: v >= 0)
        and finite(entry.get("l2_bytes", 0), lambda v: v >= 0)
    )


def check_arguments(measurements, kind, l2_bytes):
    """Validated `(measurements, l2_bytes)` of `LatencyTable.calibrate`."""
    if kind not in KINDS:
        raise ValueError(
            f"`kind` must be 'scale', 'intercept' or 'spill'. Received: kind={kind!r}"
        )
    if l2_bytes is None:
        l2_bytes = l2_cache_bytes() or 0
    elif isinstance(l2_bytes, bool) or not isinstance(l2_bytes, numbers.Integral) or (
            l2_bytes < 0):
        raise ValueError(
            "`l2_bytes` must be a non-negative integer or None. "
            f"Received: l2_bytes={l2_bytes!r}"
        )
    measurements = list(measurements)
    if not measurements:
        raise ValueError(
            "`measurements` must be a non-empty list of (configs, measured_ms). "
            "Received: measurements=[]"
        )
    checked = []
    for item in measurements:
        if not isinstance(item, (tuple, list)) or len(item) != 2:
            raise ValueError(
                "`measurements` must hold (configs, measured_ms) pairs. "
                f"Received: {item!r}"
            )
        configs, measured = item
        if not finite(measured, lambda v: v > 0):
            raise ValueError(
                "`measured_ms` must be a positive finite number. "
                f"Received: measured_ms={measured!r}"
            )
        checked.append((list(configs), float(measured)))
    return checked, int(l2_bytes)


# === Fit ===


def fit_calibration(points, kind, l2_bytes, cache):
    """`(value, entry)`: the fitted correction of `kind` and the table file's entry.

    `points` hold one dict per model (`raw_predicted_ms`, `measured_ms`,
    `spill_mib` at `l2_bytes`, more to store); `cache` is for the message.
    """
    scale, intercept, per_mib = 1.0, 0.0, 0.0
    if kind == "intercept":
        value = intercept = float(
            np.median([p["measured_ms"] - p["raw_predicted_ms"] for p in points]))
    elif kind == "scale":
        value = scale = float(
            np.median([p["measured_ms"] / p["raw_predicted_ms"] for p in points]))
    else:
        value = per_mib = _fit_spill(points, l2_bytes, cache)
    entry = {"kind": kind, "intercept_ms": intercept, "scale": scale,
             "spill_ms_per_mib": per_mib, "l2_bytes": int(l2_bytes), "points": points}
    return value, entry


def _fit_spill(points, l2_bytes, cache):
    spilling = [p for p in points if p["spill_mib"] > 0]
    if not spilling:
        raise ValueError(
            "`kind='spill'` needs at least one model larger than the L2 cache "
            f"({l2_bytes / 2**20:.2f} MiB, `l2_bytes`) with warm-timed stem or "
            f"blocks (cache={cache!r}); none of the {len(points)} given has. "
            "Calibrate with a larger model, cache='warm', or kind='scale'."
        )
    # Least squares through the origin: the models that spill most (whose
    # excess is least drowned by timing noise) weigh most.
    excess = sum((p["measured_ms"] - p["raw_predicted_ms"]) * p["spill_mib"] for p in spilling)
    return max(0.0, float(excess / sum(p["spill_mib"] ** 2 for p in spilling)))
