"""Per-block latency lookup tables measured on this CPU, and whole-model predictions.

A MobileNetV3 is a chain of components: the stem (optional input rescaling,
a 3x3 stride-2 conv, BN, activation), one inverted-residual ("bneck") block
per row of the block table, and a head (the efficient last stage, plus the
pooled classifier of the applications or a small dense classifier).
`LatencyTable` measures each *distinct component configuration* once, as its
own small float TFLite model (batch 1, `num_threads` threads, the LiteRT
interpreter with its default XNNPACK CPU delegate, the paper's protocol),
and predicts a whole model's latency as the sum of its components.

Configurations
--------------
- `StemConfig`: input H x W x C, filters, kernel, stride, activation and
  whether the input rescaling (`include_preprocessing`) is part of it.
- `BneckConfig`: input H x W x C, expanded width (absolute, as in the
  paper's "exp size" column), output width, kernel, stride, dilation, SE,
  activation; the residual add follows (stride 1 and input width == output
  width) and is part of the key.
- `HeadConfig`: input H x W x C, last-stage width, activation and the top:
  `"features"` (last-stage 1x1 conv + BN + activation, the backbone output),
  `"avg"` (plus global average pooling), `"applications"` (the
  applications' `include_top=True` head: pooled 1x1 conv to
  `last_point_filters`, 1x1 logits conv, softmax) or `"dense"` (global
  average pooling and a softmax `Dense`, the classifier `mnv3_layers.search`
  builds).

`model_configs(...)` lists the components of a model from its block table
(`mnv3_layers.block_spec.resolve_architecture`: alpha, minimalistic and
output stride applied), so nothing is built to predict.

Prediction
----------
Each component is measured in its own interpreter, so each measurement also
contains the fixed cost of one `invoke()` (interpreter dispatch, delegate
entry, input/output handling) that a whole model pays once. The table
measures that cost as the latency of a one-op model (`OVERHEAD_KEY`: a ReLU
on a 1x1x8 input, warm) and predicts

    total = overhead + sum(max(component - overhead, 0) for each component)

`LatencyPrediction` keeps every term.

Whole-model correction (`LatencyTable.calibrate`, fitted once per CPU from
a couple of measured whole models and stored in the file): a scale, an
intercept, or - best measured - an L2 spill term. Timed alone and back to
back, a block keeps its weights in the core's L2 cache; a whole model
larger than L2 sweeps through all its weights on every inference, so each
block's weights come from the next cache level. `kind="spill"` adds
`ms_per_mib x` the MiB of stem and block weights of models that exceed L2
(`LatencyTable.spill_mib`, `component_weight_bytes`, `l2_cache_bytes`); use
it with `cache="warm"`. On the 2-core Xeon (2 MiB L2 per core) where it was
written, fitted on MobileNetV3-Small and -Large 1.0 at 224 px, it put all
10 other variants of `benchmarks/bench_latency_table.py` within +-10 % in
8 of 10 runs (worst 6.2-8.9 %; the other two ran while two timings of the
same model differed by up to 35 %), where the raw sum left 8-11 of 12.

Cache state: timed alone and back to back, a component finds its weights in
cache ("warm"); inside a whole model they were evicted by the rest of the
network since the last inference. Every entry therefore holds warm timings
and cold ones (a 64 MiB read evicts the caches before each run, then the
input is written again, as a block's input was just written by the block
before it). `LatencyTable(cache=...)` picks what is summed: `"mixed"`
(default; cold for the head, whose pooled 1x1 convolutions stream
megabytes of weights for little arithmetic, warm for the compute-bound
stem and blocks), `"warm"` or `"cold"`. See
`benchmarks/bench_latency_table.py` for how each compares with whole
models.

Timing: every component of one `measure(...)` call is converted first, then
the timed runs are interleaved in rounds (each round runs every component in
turn), so background load spreads over all components instead of landing on
a few. Each run is timed on the wall clock and on the calling thread's CPU
clock (`clock="cpu"`: with one thread the interpreter works on the calling
thread, so this leaves out time spent waiting for a core on a busy
machine). The median (default) or the minimum of the timed runs is used.

Cache file
----------
The table is a JSON file keyed first by a fingerprint of CPU and runtime
(`runtime_fingerprint`: CPU model, machine, TensorFlow and LiteRT versions,
thread count) and then by the configuration key (`config.key`). It is
written atomically (temporary file in the same folder, then `os.replace`)
after each `measure(...)` call, merging what other processes wrote in the
meantime. A file that cannot be read or does not have the expected
structure is not trusted: it is moved aside to `<path>.corrupt`, a
`RuntimeWarning` says so, and the table is rebuilt by measuring again.
"""

import contextlib
import dataclasses
import datetime
import io
import json
import math
import numbers
import os
import platform
import time
import warnings

import numpy as np

from mnv3_layers import latency as latency_lib
from mnv3_layers import files
from mnv3_layers._validation import ACTIVATIONS, check_positive_int
from mnv3_layers.block_spec import get_architecture, resolve_architecture

FILE_FORMAT = "mnv3_layers.latency_table"
FILE_VERSION = 1
OVERHEAD_KEY = "overhead/relu/1x1x8"
STATISTICS = ("median", "min")
CLOCKS = ("wall", "cpu")
CACHES = ("mixed", "warm", "cold")
STAT_KEYS = tuple(
    f"{cache}{clock}{stat}_ms"
    for cache in ("", "cold_") for clock in ("", "cpu_") for stat in STATISTICS
)
HEAD_TOPS = ("features", "avg", "applications", "dense")
SE_RATIO = 0.25
BN_EPSILON = 1e-3


# === Configurations ===


def _check_int(cls_name, field, value, low=1):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
        raise ValueError(
            f"{cls_name}: `{field}` must be an int >= {low}. Received: {field}={value!r}"
        )


def _check_flag(cls_name, field, value):
    if not isinstance(value, bool):
        raise TypeError(f"{cls_name}: `{field}` must be a bool. Received: {field}={value!r}")


def _check_act(cls_name, value):
    if value not in ACTIVATIONS:
        raise ValueError(
            f"{cls_name}: `activation` must be one of {ACTIVATIONS}. "
            f"Received: activation={value!r}"
        )


def _hwc(config):
    return f"{config.height}x{config.width}x{config.in_channels}"


@dataclasses.dataclass(frozen=True)
class StemConfig:
    """The stem: [rescaling] -> `kernel_size` conv (stride `strides`) -> BN -> activation.

    Attributes:
        height, width, in_channels: input size.
        filters: output channels.
        kernel_size: conv kernel size.
        strides: conv stride.
        activation: `"relu"` or `"hard_swish"`.
        preprocessing: whether the input rescaling from [0, 255] to [-1, 1]
            (`include_preprocessing=True`) is included.
    """

    height: int
    width: int
    in_channels: int
    filters: int
    kernel_size: int = 3
    strides: int = 2
    activation: str = "hard_swish"
    preprocessing: bool = True

    kind = "stem"

    def __post_init__(self):
        name = type(self).__name__
        for field in ("height", "width", "in_channels", "filters", "kernel_size", "strides"):
            _check_int(name, field, getattr(self, field))
        _check_act(name, self.activation)
        _check_flag(name, "preprocessing", self.preprocessing)

    @property
    def key(self):
        return (
            f"stem/{_hwc(self)}/f{self.filters}/k{self.kernel_size}/s{self.strides}/"
            f"{self.activation}/pre{int(self.preprocessing)}"
        )

    @property
    def output_size(self):
        return (-(-self.height // self.strides), -(-self.width // self.strides))


@dataclasses.dataclass(frozen=True)
class BneckConfig:
    """One inverted-residual block with absolute widths.

    Attributes:
        height, width, in_channels: input size.
        expanded_filters: expanded (depthwise) width; equal to `in_channels`
            when the block has no expand convolution.
        filters: output width.
        kernel_size: depthwise kernel size.
        strides: depthwise stride, 1 or 2.
        dilation_rate: depthwise dilation.
        se: squeeze-and-excite (ratio 0.25 of the expanded width).
        activation: `"relu"` or `"hard_swish"`.
    """

    height: int
    width: int
    in_channels: int
    expanded_filters: int
    filters: int
    kernel_size: int
    strides: int
    dilation_rate: int
    se: bool
    activation: str

    kind = "bneck"

    def __post_init__(self):
        name = type(self).__name__
        for field in ("height", "width", "in_channels", "expanded_filters", "filters",
                      "kernel_size", "dilation_rate"):
            _check_int(name, field, getattr(self, field))
        if self.strides not in (1, 2) or isinstance(self.strides, bool):
            raise ValueError(
                f"{name}: `strides` must be 1 or 2. Received: strides={self.strides!r}"
            )
        _check_flag(name, "se", self.se)
        _check_act(name, self.activation)

    @property
    def residual(self):
        return self.strides == 1 and self.in_channels == self.filters

    @property
    def key(self):
        return (
            f"bneck/{_hwc(self)}/e{self.expanded_filters}/o{self.filters}/"
            f"k{self.kernel_size}/s{self.strides}/d{self.dilation_rate}/se{int(self.se)}/"
            f"{self.activation}/res{int(self.residual)}"
        )

    @property
    def output_size(self):
        return (-(-self.height // self.strides), -(-self.width // self.strides))


@dataclasses.dataclass(frozen=True)
class HeadConfig:
    """The efficient last stage and what follows it.

    Attributes:
        height, width, in_channels: input size.
        filters: width of the last stage's 1x1 conv (960 / 576 at alpha 1).
        activation: `"relu"` or `"hard_swish"`.
        top: `"features"`, `"avg"`, `"applications"` or `"dense"` (see the
            module docstring).
        last_point_filters: pooled 1x1 conv width for `top="applications"`
            (1280 / 1024), else 0.
        classes: classifier width for `"applications"` and `"dense"`, else 0.
    """

    height: int
    width: int
    in_channels: int
    filters: int
    activation: str = "hard_swish"
    top: str = "features"
    last_point_filters: int = 0
    classes: int = 0

    kind = "head"

    def __post_init__(self):
        name = type(self).__name__
        for field in ("height", "width", "in_channels", "filters"):
            _check_int(name, field, getattr(self, field))
        _check_act(name, self.activation)
        if self.top not in HEAD_TOPS:
            raise ValueError(
                f"{name}: `top` must be one of {HEAD_TOPS}. Received: top={self.top!r}"
            )
        needs_classes = self.top in ("applications", "dense")
        _check_int(name, "classes", self.classes, 1 if needs_classes else 0)
        if not needs_classes and self.classes:
            raise ValueError(
                f"{name}: top={self.top!r} has no classifier, so `classes` must be 0. "
                f"Received: classes={self.classes!r}"
            )
        if self.top == "applications":
            _check_int(name, "last_point_filters", self.last_point_filters, 1)
        elif self.last_point_filters:
            raise ValueError(
                f"{name}: only top='applications' has `last_point_filters`. "
                f"Received: last_point_filters={self.last_point_filters!r}"
            )

    @property
    def key(self):
        return (
            f"head/{_hwc(self)}/f{self.filters}/{self.activation}/{self.top}/"
            f"lp{self.last_point_filters}/c{self.classes}"
        )


CONFIG_TYPES = {cls.kind: cls for cls in (StemConfig, BneckConfig, HeadConfig)}


def config_to_dict(config):
    """`{"kind": ..., **fields}` of a component configuration (JSON-serializable)."""
    return {"kind": config.kind, **dataclasses.asdict(config)}


def config_from_dict(data):
    """Inverse of `config_to_dict`."""
    if not isinstance(data, dict) or data.get("kind") not in CONFIG_TYPES:
        raise ValueError(
            f"A component configuration needs 'kind' in {sorted(CONFIG_TYPES)}. "
            f"Received: {data!r}"
        )
    fields = {k: v for k, v in data.items() if k != "kind"}
    return CONFIG_TYPES[data["kind"]](**fields)


def _spec(variant):
    """`"large"`/`"small"`, an `ArchitectureSpec` or its dict form -> `ArchitectureSpec`."""
    if isinstance(variant, dict):
        from mnv3_layers.search import architecture_from_dict

        return architecture_from_dict(variant)
    if isinstance(variant, str):
        variant = variant.lower()
    return get_architecture(variant)


def _check_image_shape(input_shape):
    shape = latency_lib.check_input_shape(input_shape)
    if shape is None or len(shape) != 3:
        raise ValueError(
            "`input_shape` must be (height, width, channels). "
            f"Received: input_shape={input_shape!r}"
        )
    return shape


def model_configs(
    variant="large",
    alpha=1.0,
    minimalistic=False,
    input_shape=(224, 224, 3),
    top="applications",
    classes=1000,
    include_preprocessing=True,
    output_stride=32,
    reduced_tail=False,
):
    """The component configurations of a MobileNetV3, in network order.

    Computed from the block table alone (nothing is built).

    Args:
        variant: `"large"`, `"small"`, an `ArchitectureSpec` or its dict form
            (as written by `mnv3_layers.search`). Defaults to `"large"`.
        alpha, minimalistic, output_stride, reduced_tail: as for
            `resolve_architecture`.
        input_shape: `(height, width, channels)`. Defaults to `(224, 224, 3)`.
        top: what follows the last stage: `"applications"` (the
            applications' `include_top=True`), `"features"` (the backbone /
            `include_top=False`), `"avg"` (`include_top=False,
            pooling="avg"`) or `"dense"` (the search's classifier).
            Defaults to `"applications"`.
        classes: classifier width for `"applications"` and `"dense"`.
            Defaults to `1000`.
        include_preprocessing: the input rescaling is part of the stem.
            Defaults to `True`.

    Returns:
        A tuple: one `StemConfig`, one `BneckConfig` per block, one
        `HeadConfig`.

    Example:

    >>> from mnv3_layers.latency_table import model_configs
    >>> configs = model_configs("small", input_shape=(224, 224, 3))
    >>> len(configs)
    13
    >>> configs[1].key
    'bneck/112x112x16/e16/o16/k3/s2/d1/se1/relu/res0'
    >>> configs[-1].key
    'head/7x7x96/f576/hard_swish/applications/lp1024/c1000'
    """
    spec = _spec(variant)
    height, width, channels = _check_image_shape(input_shape)
    if top not in HEAD_TOPS:
        raise ValueError(f"`top` must be one of {HEAD_TOPS}. Received: top={top!r}")
    arch = resolve_architecture(
        spec, alpha, minimalistic, output_stride, reduced_tail=reduced_tail
    )
    stem = StemConfig(
        height, width, channels, arch.stem.filters, arch.stem.kernel_size,
        arch.stem.strides, arch.stem_activation, include_preprocessing,
    )
    configs = [stem]
    h, w = stem.output_size
    for block in arch.blocks:
        config = BneckConfig(
            h, w, block.in_channels, block.expanded_filters, block.filters,
            block.kernel_size, block.strides, block.dilation_rate,
            bool(block.se_ratio), block.activation,
        )
        configs.append(config)
        h, w = config.output_size
    has_classes = top in ("applications", "dense")
    configs.append(
        HeadConfig(
            h, w, arch.blocks[-1].filters, arch.last_stage_filters,
            arch.last_stage_activation, top,
            arch.last_point_filters if top == "applications" else 0,
            classes if has_classes else 0,
        )
    )
    return tuple(configs)


def component_weight_bytes(config):
    """Bytes of float32 parameters the component's TFLite model reads per inference.

    Counted from the configuration as the converter stores them: each
    convolution's kernel plus one bias per output channel (batch norm is
    folded into it), the squeeze-and-excite convolutions with their biases,
    the classifier's kernel and bias. `OVERHEAD_KEY` has none.

    Example:

    >>> from mnv3_layers.latency_table import StemConfig, component_weight_bytes
    >>> component_weight_bytes(StemConfig(224, 224, 3, 16))  # 3x3x3x16 kernel + 16 biases
    1792
    """
    from mnv3_layers.make_divisible import make_divisible

    if config == OVERHEAD_KEY:
        return 0
    if isinstance(config, StemConfig):
        params = config.kernel_size**2 * config.in_channels * config.filters + config.filters
    elif isinstance(config, BneckConfig):
        cin, exp, out = config.in_channels, config.expanded_filters, config.filters
        params = 0
        if exp != cin:
            params += cin * exp + exp
        params += config.kernel_size**2 * exp + exp
        if config.se:
            squeeze = make_divisible(exp * SE_RATIO, 8)
            params += exp * squeeze + squeeze + squeeze * exp + exp
        params += exp * out + out
    elif isinstance(config, HeadConfig):
        params = config.in_channels * config.filters + config.filters
        if config.top == "applications":
            lp = config.last_point_filters
            params += config.filters * lp + lp + lp * config.classes + config.classes
        elif config.top == "dense":
            params += config.filters * config.classes + config.classes
    else:
        raise TypeError(
            "`config` must be a StemConfig, BneckConfig or HeadConfig. "
            f"Received: config of type {type(config).__name__}"
        )
    return 4 * params


def _parse_cache_size(text):
    text = text.strip().upper()
    units = {"K": 1024, "M": 1024**2, "G": 1024**3}
    if text and text[-1] in units:
        return int(text[:-1]) * units[text[-1]]
    return int(text)


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
            with open(os.path.join(root, index, "level"), encoding="ascii") as f:
                level = f.read().strip()
            with open(os.path.join(root, index, "type"), encoding="ascii") as f:
                kind = f.read().strip()
            with open(os.path.join(root, index, "size"), encoding="ascii") as f:
                size = _parse_cache_size(f.read())
        except (OSError, ValueError):
            continue
        if level == "2" and kind in ("Unified", "Data") and size > 0:
            return size
    return None


# === Building and converting one component ===


def build_component(config):
    """A batch-1 Keras model of one component, built like the applications build it."""
    import keras

    from mnv3_layers._activation_layer import activation_layer
    from mnv3_layers.efficient_last_stage import EfficientLastStage
    from mnv3_layers.inverted_residual import InvertedResidual

    if config == OVERHEAD_KEY:
        inputs = keras.Input((1, 1, 8), batch_size=1)
        return keras.Model(inputs, keras.layers.ReLU()(inputs))
    inputs = keras.Input((config.height, config.width, config.in_channels), batch_size=1)
    x = inputs
    if isinstance(config, StemConfig):
        if config.preprocessing:
            x = keras.layers.Rescaling(scale=1.0 / 127.5, offset=-1.0)(x)
        x = keras.layers.Conv2D(
            config.filters, config.kernel_size, strides=config.strides, padding="same",
            use_bias=False,
        )(x)
        x = keras.layers.BatchNormalization(epsilon=BN_EPSILON)(x)
        x = activation_layer(config.activation)(x)
    elif isinstance(config, BneckConfig):
        layer = InvertedResidual(
            config.filters,
            kernel_size=config.kernel_size,
            strides=config.strides,
            expansion=config.expanded_filters / config.in_channels,
            se_ratio=SE_RATIO if config.se else None,
            activation=config.activation,
            dilation_rate=config.dilation_rate,
            bn_epsilon=BN_EPSILON,
        )
        if layer.expanded_channels(config.in_channels) != config.expanded_filters:
            raise ValueError(
                "`expanded_filters` must be a multiple of 8 (the channel divisor) or "
                f"equal to `in_channels`. Received: {config!r}"
            )
        x = layer(x)
    elif isinstance(config, HeadConfig):
        applications = config.top == "applications"
        x = EfficientLastStage(
            config.filters,
            last_point_filters=config.last_point_filters if applications else None,
            activation=config.activation,
            bn_epsilon=BN_EPSILON,
        )(x)
        if applications:
            x = keras.layers.Conv2D(config.classes, 1, padding="same")(x)
            x = keras.layers.Flatten()(x)
            x = keras.layers.Activation("softmax")(x)
        elif config.top in ("avg", "dense"):
            x = keras.layers.GlobalAveragePooling2D()(x)
            if config.top == "dense":
                x = keras.layers.Dense(config.classes, activation="softmax")(x)
    else:
        raise TypeError(
            "`config` must be a StemConfig, BneckConfig or HeadConfig. "
            f"Received: config of type {type(config).__name__}"
        )
    return keras.Model(inputs, x)


def convert_float_tflite(model):
    """Float TFLite flatbuffer of a fixed-shape, single-input Keras model.

    Traces `model(x, training=False)` once, folds the variables into
    constants and converts that graph: the same ops as
    `TFLiteConverter.from_keras_model`, about twice as fast for small models
    (no SavedModel export). Falls back to `latency.convert_to_tflite`.
    """
    import tensorflow as tf

    try:
        from tensorflow.python.framework.convert_to_constants import (
            convert_variables_to_constants_v2,
        )
    except ImportError:  # pragma: no cover - private TF module moved
        return latency_lib.convert_to_tflite(model)
    spec = tf.TensorSpec(tuple(model.inputs[0].shape), model.inputs[0].dtype)
    fn = tf.function(lambda x: model(x, training=False), input_signature=[spec],
                     autograph=False)
    frozen = convert_variables_to_constants_v2(fn.get_concrete_function())
    converter = tf.lite.TFLiteConverter.from_concrete_functions([frozen])
    with contextlib.redirect_stdout(io.StringIO()):
        return converter.convert()


# === Fingerprint and file ===


def _cpu_model():
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.lower().startswith(("model name", "hardware", "cpu model")):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def _version(distribution):
    from importlib import metadata

    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return "not installed"


def runtime_fingerprint(num_threads=1):
    """What a measured latency depends on besides the model: CPU and runtime.

    Returns:
        A dict with `cpu` (model name from `/proc/cpuinfo`, else
        `platform.processor()`), `machine`, `cpu_count`, `tensorflow`
        (converter), `litert` (`ai-edge-litert` interpreter) and
        `num_threads`.

    Example:

    >>> from mnv3_layers.latency_table import runtime_fingerprint
    >>> sorted(runtime_fingerprint(num_threads=1))
    ['cpu', 'cpu_count', 'litert', 'machine', 'num_threads', 'tensorflow']
    """
    num_threads = check_positive_int("num_threads", num_threads)
    return {
        "cpu": _cpu_model(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "tensorflow": _version("tensorflow"),
        "litert": _version("ai-edge-litert"),
        "num_threads": num_threads,
    }


def fingerprint_key(fingerprint):
    return "|".join(f"{k}={fingerprint[k]}" for k in sorted(fingerprint))


def default_table_path():
    """`$KERAS_HOME/mnv3_layers/latency_table.json` (`~/.keras/...` by default)."""
    home = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    return os.path.join(home, "mnv3_layers", "latency_table.json")


def write_json_atomic(path, data):
    """Writes `data` as JSON to a temporary file next to `path`, then `os.replace`s it."""
    files.write_json_atomic(path, data, indent=1, sort_keys=True, makedirs=True)


def _finite(value, low_ok):
    return (
        isinstance(value, (int, float)) and not isinstance(value, bool)
        and math.isfinite(value) and low_ok(value)
    )


def _check_file_content(data):
    """Raises ValueError unless `data` has the table file's structure."""
    if not isinstance(data, dict) or data.get("format") != FILE_FORMAT:
        raise ValueError(f"not a latency table (expected 'format': {FILE_FORMAT!r})")
    if data.get("version") != FILE_VERSION:
        raise ValueError(f"unsupported version {data.get('version')!r}")
    tables = data.get("tables")
    if not isinstance(tables, dict):
        raise ValueError("'tables' is not an object")
    for fp_key, table in tables.items():
        if not isinstance(table, dict) or not isinstance(table.get("entries"), dict):
            raise ValueError(f"table {fp_key!r} has no 'entries' object")
        if not isinstance(table.get("fingerprint"), dict):
            raise ValueError(f"table {fp_key!r} has no 'fingerprint' object")
        calibration = table.get("calibration", {})
        if not isinstance(calibration, dict) or not all(
            isinstance(c, dict) and _finite(c.get("intercept_ms"), lambda v: True)
            and _finite(c.get("scale", 1.0), lambda v: v > 0)
            and _finite(c.get("spill_ms_per_mib", 0.0), lambda v: v >= 0)
            and _finite(c.get("l2_bytes", 0), lambda v: v >= 0)
            for c in calibration.values()
        ):
            raise ValueError(f"table {fp_key!r} has a malformed 'calibration' object")
        for key, entry in table["entries"].items():
            if (
                not isinstance(entry, dict)
                or not _finite(entry.get("median_ms"), lambda v: v > 0)
                or not all(_finite(entry.get(stat), lambda v: v >= 0) for stat in STAT_KEYS)
            ):
                raise ValueError(
                    f"entry {key!r} needs finite non-negative {', '.join(STAT_KEYS)} "
                    "(median_ms > 0)"
                )


def _empty_file():
    return {"format": FILE_FORMAT, "version": FILE_VERSION, "tables": {}}


def _read_file(path):
    """The file's content, `None` if it does not exist; raises ValueError if corrupt."""
    if not os.path.exists(path):
        return None
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"cannot be read as JSON ({e})") from e
    _check_file_content(data)
    return data


# === Timing ===


def _stats(prefix, ms):
    ms = np.asarray(ms, dtype=np.float64)
    return {
        f"{prefix}median_ms": float(np.median(ms)),
        f"{prefix}min_ms": float(np.min(ms)),
        f"{prefix}p10_ms": float(np.percentile(ms, 10)),
        f"{prefix}p90_ms": float(np.percentile(ms, 90)),
    }


FLUSH_BYTES = 64 * 1024 * 1024
_FLUSH_BUFFER = []


def flush_caches():
    """Reads a 64 MiB buffer, evicting earlier data from the CPU caches.

    Reading (not writing) leaves clean lines behind, so the timed run that
    follows does not pay for writing the buffer back to memory.
    """
    if not _FLUSH_BUFFER:
        _FLUSH_BUFFER.append(np.ones(FLUSH_BYTES // 8))  # Real pages, not the zero page.
    return float(_FLUSH_BUFFER[0].sum())


class TFLiteTimer:
    """One TFLite model in a LiteRT interpreter with a fixed seeded input.

    `run()` is one `invoke()`; `reload_input()` writes the input again
    (after a cache flush this puts the input, but not the weights, back in
    cache, as in a whole model where a block's input was just written by
    the block before it).
    """

    def __init__(self, flatbuffer, num_threads=1, seed=0):
        Interpreter = latency_lib.import_litert_interpreter()
        self.interpreter = Interpreter(model_content=flatbuffer, num_threads=num_threads)
        details = self.interpreter.get_input_details()
        if len(details) != 1:
            raise ValueError(f"Only single-input models can be timed; got {len(details)} inputs.")
        self.interpreter.allocate_tensors()
        detail = details[0]
        self.index = detail["index"]
        self.x = latency_lib.make_input(
            tuple(int(d) for d in detail["shape"]), detail["dtype"], seed,
            detail.get("quantization"),
        )
        self.reload_input()
        self.run = self.interpreter.invoke

    def reload_input(self):
        self.interpreter.set_tensor(self.index, self.x)


def time_runners(timers, warmup, runs, cold=False, rounds=5, rewarm=True):
    """Times `TFLiteTimer`s on two clocks, warm and (optionally) cold, interleaved.

    After `warmup` untimed runs each, `runs` timed runs per timer are split
    into up to `rounds` rounds; each round runs every timer in turn, so
    background load spreads over all of them. Each run is timed on the wall
    clock (`time.perf_counter`) and on the calling thread's CPU clock
    (`time.thread_time_ns`): with one interpreter thread the work runs on
    the calling thread, so CPU time leaves out time the thread waited for a
    core (other processes), which wall time includes.

    Warm runs follow each other, so the model's weights stay in cache;
    with `rewarm=True` (default) one untimed run starts each timer's warm
    runs in every round, since the other timers of the round have evicted
    its data since its last run (without it, with many rounds the "warm"
    runs are really cold ones).
    With `cold=True` (or `True` at its position in a list of one bool per
    timer) a timer also gets `runs` cold runs: before each,
    `flush_caches()` evicts the caches and the input is written again.

    Returns:
        One dict per timer: `median_ms`, `min_ms`, `p10_ms`, `p90_ms` (wall,
        warm), the same with a `cpu_` prefix, with `cold=True` the same four
        groups with a `cold_` prefix, `runs` and `warmup`.
    """
    cold = [cold] * len(timers) if isinstance(cold, bool) else [bool(c) for c in cold]
    if len(cold) != len(timers):
        raise ValueError("`cold` must be a bool or one bool per timer.")
    for timer in timers:
        for _ in range(warmup):
            timer.run()
    rounds = max(1, min(runs, rounds))
    per_round = [runs // rounds + (i < runs % rounds) for i in range(rounds)]
    times = [
        {(m, c): [] for m in (("", "cold_") if flag else ("",)) for c in ("", "cpu_")}
        for flag in cold
    ]
    perf_counter, thread_time_ns = time.perf_counter, time.thread_time_ns
    for count in per_round:
        for timer, record, flag in zip(timers, times, cold):
            run = timer.run
            for mode in ("", "cold_") if flag else ("",):
                wall, cpu = record[(mode, "")], record[(mode, "cpu_")]
                if rewarm and not mode and count:
                    run()
                for _ in range(count):
                    if mode:
                        flush_caches()
                        timer.reload_input()
                    c0 = thread_time_ns()
                    t0 = perf_counter()
                    run()
                    t1 = perf_counter()
                    c1 = thread_time_ns()
                    wall.append((t1 - t0) * 1e3)
                    cpu.append((c1 - c0) * 1e-6)
    results = []
    for record in times:
        result = {"runs": int(runs), "warmup": int(warmup)}
        for (mode, clock), ms in record.items():
            result.update(_stats(mode + clock, ms))
        results.append(result)
    return results


def measure_tflite(model_or_flatbuffer, warmup=5, runs=30, num_threads=1):
    """Batch-1 float TFLite latency of a whole model on the wall and CPU clocks.

    Like `mnv3_layers.latency.measure_latency(..., runtime="tflite")`, but
    converts with `convert_float_tflite` (same ops, faster) and reports the
    calling thread's CPU time next to the wall time (see `time_runners`),
    which is what `LatencyTable(clock="cpu")` predicts.

    Args:
        model_or_flatbuffer: a fixed-input-shape Keras model, TFLite bytes,
            or a path to a `.tflite` or `.keras` file.
        warmup: untimed runs. Defaults to `5`.
        runs: timed runs. Defaults to `30`.
        num_threads: interpreter threads. Defaults to `1`.

    Returns:
        A dict as returned by `time_runners`.
    """
    warmup = latency_lib.check_warmup(warmup)
    runs = check_positive_int("runs", runs)
    num_threads = check_positive_int("num_threads", num_threads)
    if isinstance(model_or_flatbuffer, (str, os.PathLike)):
        # Same checks and messages as `measure_latency`: missing file, not TFLite.
        kind, source, _ = latency_lib.resolve_source(model_or_flatbuffer)
        if kind == "keras_path":
            import keras

            model_or_flatbuffer = keras.saving.load_model(source, compile=False)
        else:
            with open(source, "rb") as f:
                model_or_flatbuffer = f.read()
    if isinstance(model_or_flatbuffer, (bytes, bytearray)):
        flat = bytes(model_or_flatbuffer)
        if not latency_lib._is_tflite(flat[:8]):
            raise ValueError(
                "`model_or_flatbuffer` bytes are not a TFLite flatbuffer (no 'TFL3' file "
                f"identifier at bytes 4:8). Received: {len(flat)} bytes starting {flat[:8]!r}"
            )
    else:
        import keras

        if not isinstance(model_or_flatbuffer, keras.Model):
            raise TypeError(
                "`model_or_flatbuffer` must be a keras.Model, TFLite bytes or a `.tflite` / "
                "`.keras` path. Received: "
                f"model_or_flatbuffer of type {type(model_or_flatbuffer).__name__}"
            )
        flat = convert_float_tflite(_batch_one(model_or_flatbuffer))
    return time_runners([TFLiteTimer(flat, num_threads)], warmup, runs)[0]


def _batch_one(model):
    """`model` with a batch-1 input (wrapped) when its batch size is unknown."""
    import keras

    shape = tuple(model.inputs[0].shape)
    if shape[0] == 1:
        return model
    if any(d is None for d in shape[1:]):
        raise ValueError(
            f"The input shape of {model.name!r} must be fully known (received "
            f"{shape[1:]}); build it with a fixed `input_shape`."
        )
    inputs = keras.Input(shape[1:], batch_size=1, dtype=model.inputs[0].dtype)
    return keras.Model(inputs, model(inputs, training=False))


# === Prediction ===


@dataclasses.dataclass(frozen=True)
class LatencyPrediction:
    """A whole model's predicted latency and its terms.

    Attributes:
        total_ms: `scale x (overhead_ms + sum(max(component_ms -
            overhead_ms, 0))) + intercept_ms + spill_ms_per_mib x
            spill_mib`.
        overhead_ms: the measured fixed per-invoke cost, counted once.
        intercept_ms, scale: the calibrated whole-model correction
            (`LatencyTable.calibrate`); 0 and 1 when not calibrated.
        spill_mib: MiB of stem and block weights streamed past L2 per
            inference (`LatencyTable.spill_mib`; 0 when not calibrated with
            `kind="spill"`).
        spill_ms_per_mib: the calibrated cost of each such MiB (0 when not
            calibrated with `kind="spill"`).
        components: tuple of `(config_key, ms)` as measured alone (each
            includes one overhead).
        statistic: `"median"` or `"min"`.
        clock: `"wall"` or `"cpu"`.
        cache: `"mixed"`, `"warm"` or `"cold"`.
        fingerprint: the CPU/runtime fingerprint of the table.
    """

    total_ms: float
    overhead_ms: float
    components: tuple
    statistic: str
    clock: str = "wall"
    cache: str = "mixed"
    fingerprint: dict = dataclasses.field(default_factory=dict, repr=False)
    intercept_ms: float = 0.0
    scale: float = 1.0
    spill_mib: float = 0.0
    spill_ms_per_mib: float = 0.0

    def __str__(self):
        spill = (
            f", L2 spill {self.spill_mib:.2f} MiB x {self.spill_ms_per_mib:.4f} ms/MiB"
            if self.spill_ms_per_mib else ""
        )
        lines = [
            f"Predicted latency {self.total_ms:.3f} ms ({self.clock} clock, {self.cache} cache, "
            f"{self.statistic} of each component, {len(self.components)} components, "
            "fixed overhead "
            f"{self.overhead_ms:.3f} ms counted once, calibrated scale {self.scale:.3f} "
            f"and intercept {self.intercept_ms:+.3f} ms{spill})"
        ]
        lines += [f"  {ms:8.3f} ms  {key}" for key, ms in self.components]
        return "\n".join(lines)


# === Table ===


class LatencyTable:
    """Latency of MobileNetV3 components on this CPU, measured once and cached.

    See the module docstring for what is measured and how the sum is
    formed. Missing entries are measured on demand by `predict`,
    `latency_ms` and `measure` (a few seconds per component: building,
    converting, timing), then written to the cache file.

    Args:
        path: the JSON cache file. Created if missing; an unreadable or
            malformed file is moved to `<path>.corrupt` with a warning and
            rebuilt. Defaults to `None` (`default_table_path()`).
        num_threads: interpreter threads (part of the fingerprint).
            Defaults to `1` (the paper's protocol).
        warmup: untimed runs per component. Defaults to `5`.
        runs: timed runs per component. Defaults to `30`.
        statistic: `"median"` or `"min"` of the timed runs, used by
            `predict` and `latency_ms`. Defaults to `"median"`.
        clock: `"wall"` (elapsed time, the paper's latency) or `"cpu"` (the
            calling thread's CPU time, see `time_runners`: on a machine
            shared with other busy processes it leaves out the time spent
            waiting for a core, which inflates wall times, more for longer
            runs). Both are always measured and stored; this picks the one
            used. `"cpu"` needs `num_threads=1`. Defaults to `"wall"`.
        cache: which measurement of a component is summed: `"warm"` (timed
            runs back to back, so its weights stay in cache), `"cold"` (each
            timed run starts after a cache flush, with only its input written
            again, as if every other component's data had passed through the
            caches since its last use), or `"mixed"`: cold for the head,
            warm for the stem and blocks. The head after global pooling is
            1x1 convolutions on a 1x1 map that stream megabytes of weights
            for little arithmetic, so its time is set by where those weights
            come from, and inside a whole model they have been evicted by
            the rest of the network since the last inference; blocks do
            tens of multiply-adds per weight byte, so their cache state
            matters much less, while a flush also makes their activations
            and the interpreter's own data cold, which a whole model does not
            suffer, so `"cold"` over-predicts whole models
            (`benchmarks/bench_latency_table.py` compares all three).
            All three come from the same stored measurements.
            Defaults to `"mixed"`.
        calibrated: apply the whole-model scale or intercept stored by
            `calibrate(...)` for this clock, cache mode and statistic (none
            stored: none applied).
            Defaults to `True`.
        verbose: print one line per measured component. Defaults to `False`.

    Attributes:
        path, num_threads, warmup, runs, statistic, clock, cache, calibrated:
            as given.
        fingerprint: `runtime_fingerprint(num_threads)`.
        entries: dict config key -> stored measurement (this fingerprint's).
        calibration: dict `calibration_key` -> stored intercept and points.

    Example:

    >>> from mnv3_layers.latency_table import LatencyTable
    >>> table = LatencyTable("latency_table.json", runs=30)  # doctest: +SKIP
    >>> print(table.predict("small", alpha=0.75, input_shape=(224, 224, 3)))  # doctest: +SKIP
    Predicted latency 4.1 ms (median of each component, 13 components, ...
    """

    def __init__(self, path=None, num_threads=1, warmup=5, runs=30, statistic="median",
                 clock="wall", cache="mixed", calibrated=True, verbose=False):
        if path is None:
            path = default_table_path()
        if not isinstance(path, (str, os.PathLike)):
            raise TypeError(
                "`path` must be a file path or None. "
                f"Received: path of type {type(path).__name__}"
            )
        path = os.fspath(path)
        if os.path.isdir(path):
            raise ValueError(
                f"`path` must be a JSON file, not a directory. Received: path={path!r}"
            )
        self.path = path
        self.num_threads = check_positive_int("num_threads", num_threads)
        self.warmup = latency_lib.check_warmup(warmup)
        self.runs = check_positive_int("runs", runs)
        if statistic not in STATISTICS:
            raise ValueError(
                f"`statistic` must be one of {STATISTICS}. Received: statistic={statistic!r}"
            )
        self.statistic = statistic
        if clock not in CLOCKS:
            raise ValueError(f"`clock` must be one of {CLOCKS}. Received: clock={clock!r}")
        if clock == "cpu" and self.num_threads != 1:
            raise ValueError(
                "`clock='cpu'` times the calling thread, so it needs num_threads=1. "
                f"Received: clock={clock!r}, num_threads={num_threads!r}"
            )
        self.clock = clock
        if cache not in CACHES:
            raise ValueError(f"`cache` must be one of {CACHES}. Received: cache={cache!r}")
        self.cache = cache
        self.calibrated = bool(calibrated)
        self.verbose = bool(verbose)
        self.fingerprint = runtime_fingerprint(self.num_threads)
        self._fp_key = fingerprint_key(self.fingerprint)
        self.entries = {}
        self.calibration = {}
        self.load()

    # --- File ---

    def load(self):
        """(Re)reads this fingerprint's entries from `path`; a corrupt file is set aside."""
        try:
            data = _read_file(self.path)
        except ValueError as e:
            backup = self.path + ".corrupt"
            os.replace(self.path, backup)
            warnings.warn(
                f"Latency table {self.path!r} is corrupt ({e}); it was moved to "
                f"{backup!r} and the table is rebuilt by measuring again.",
                RuntimeWarning,
                stacklevel=2,
            )
            data = None
        table = (data or _empty_file())["tables"].get(self._fp_key)
        self.entries = dict(table["entries"]) if table else {}
        self.calibration = dict(table.get("calibration", {})) if table else {}

    def save(self):
        """Merges this table's entries into the file at `path`, atomically."""
        try:
            data = _read_file(self.path) or _empty_file()
        except ValueError:
            data = _empty_file()  # Set aside by `load`; another writer broke it since.
        table = data["tables"].setdefault(
            self._fp_key, {"fingerprint": self.fingerprint, "entries": {}}
        )
        table["entries"].update(self.entries)
        if self.calibration:
            table.setdefault("calibration", {}).update(self.calibration)
        write_json_atomic(self.path, data)

    # --- Lookup ---

    def __len__(self):
        return len(self.entries)

    def __contains__(self, config):
        return self._key(config) in self.entries

    @staticmethod
    def _key(config):
        return config if isinstance(config, str) else config.key

    def _is_cold(self, key):
        return self.cache == "cold" or (self.cache == "mixed" and key.startswith("head/"))

    def _stat(self, key):
        cache = "cold_" if self._is_cold(key) else ""
        clock = "cpu_" if self.clock == "cpu" else ""
        return float(self.entries[key][f"{cache}{clock}{self.statistic}_ms"])

    @property
    def overhead_ms(self):
        """The fixed per-invoke cost: a one-op model, warm cache, measured on first use.

        Always the warm-cache value (with this table's clock and statistic):
        it stands for the interpreter's own per-invoke work, which a whole
        model pays once; a cold-cache run of a one-op model would also count
        cache misses on data that a whole model touches anyway.
        """
        if OVERHEAD_KEY not in self.entries:
            self.measure([])
        clock = "cpu_" if self.clock == "cpu" else ""
        return float(self.entries[OVERHEAD_KEY][f"{clock}{self.statistic}_ms"])

    def latency_ms(self, config):
        """Latency of one component as measured alone (measured now if missing)."""
        key = self._key(config)
        if key not in self.entries:
            if isinstance(config, str):
                raise KeyError(f"No measurement for {config!r} in the latency table.")
            self.measure([config])
        return self._stat(key)

    def measure(self, configs, force=False):
        """Measures every configuration not in the table yet (all of them if `force`).

        Also measures the fixed overhead if it is missing. Saves the file
        once at the end. Returns the number of components measured.
        """
        configs = list(configs)
        for config in configs:
            if not isinstance(config, (StemConfig, BneckConfig, HeadConfig)):
                raise TypeError(
                    "`configs` must hold StemConfig, BneckConfig or HeadConfig objects. "
                    f"Received: {config!r}"
                )
        todo = {}
        if force or OVERHEAD_KEY not in self.entries:
            todo[OVERHEAD_KEY] = OVERHEAD_KEY
        for config in configs:
            if force or config.key not in self.entries:
                todo[config.key] = config
        if not todo:
            return 0
        results = self._measure_many(list(todo.values()))
        self.record(list(todo.values()), results)
        return len(todo)

    def record(self, configs, results):
        """Stores measurements made elsewhere and saves the file.

        Args:
            configs: configurations (or `OVERHEAD_KEY`).
            results: one dict per configuration as returned by
                `time_runners(..., cold=True)`.
        """
        stamp = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
        for config, result in zip(configs, results, strict=True):
            missing = [k for k in STAT_KEYS if k not in result]
            if missing:
                raise ValueError(f"A result for {self._key(config)!r} lacks {missing}.")
            entry = dict(result)
            entry["config"] = None if config == OVERHEAD_KEY else config_to_dict(config)
            entry["measured_at"] = stamp
            self.entries[self._key(config)] = entry
            if self.verbose:
                print(f"  measured {result['median_ms']:8.3f} ms (median)  "
                      f"{self._key(config)}", flush=True)
        self.save()

    def _measure_many(self, configs):
        """Builds, converts and times `configs`; returns one stats dict each.

        The timed runs are interleaved in rounds over all configs. Override
        `measure_flatbuffers` (or this) to plug in another timer.
        """
        flatbuffers = [convert_float_tflite(build_component(c)) for c in configs]
        return self.measure_flatbuffers(flatbuffers)

    def measure_flatbuffers(self, flatbuffers):
        """Times TFLite flatbuffers warm and cold in interleaved rounds; one stats dict each."""
        timers = [TFLiteTimer(flat, self.num_threads) for flat in flatbuffers]
        return time_runners(timers, self.warmup, self.runs, cold=True)

    # --- Calibration ---

    @property
    def calibration_key(self):
        """Calibrations are stored per clock, cache mode and statistic."""
        return f"{self.clock}/{self.cache}/{self.statistic}"

    @property
    def intercept_ms(self):
        """The stored whole-model intercept for this table's settings (0 if none / off)."""
        if not self.calibrated:
            return 0.0
        return float(self.calibration.get(self.calibration_key, {}).get("intercept_ms", 0.0))

    @property
    def scale(self):
        """The stored whole-model scale for this table's settings (1 if none / off)."""
        if not self.calibrated:
            return 1.0
        return float(self.calibration.get(self.calibration_key, {}).get("scale", 1.0))

    @property
    def spill_ms_per_mib(self):
        """The stored L2-spill cost (ms per MiB) for this table's settings (0 if none / off)."""
        if not self.calibrated:
            return 0.0
        return float(
            self.calibration.get(self.calibration_key, {}).get("spill_ms_per_mib", 0.0))

    @property
    def l2_bytes(self):
        """The L2 size used for the spill term: the calibration's, else this CPU's (0 if unknown)."""
        stored = self.calibration.get(self.calibration_key, {}).get("l2_bytes")
        if stored is not None:
            return int(stored)
        return l2_cache_bytes() or 0

    def spill_mib(self, configs, l2_bytes=None):
        """MiB of stem and block weights that a whole model streams past L2 per inference.

        Timed alone and back to back, a stem or block finds its weights in
        L2 (or mostly so). Inside a whole model whose weights (all
        components) exceed the L2 cache, an inference sweeps through all of
        them in the same order every time, so by the time a block runs
        again its weights have been evicted and come from the next level:
        all of the stem and block weights count. Below the L2 size nothing
        does. Components timed cold (see `cache`) and the head are left
        out: the head's pooled 1x1 convolutions already stream megabytes
        of weights when timed alone.

        Args:
            configs: the components of one model.
            l2_bytes: the L2 size. Defaults to `None`: `self.l2_bytes`.

        Returns:
            MiB (float); 0 when the model's weights fit in L2.
        """
        if l2_bytes is None:
            l2_bytes = self.l2_bytes
        configs = list(configs)
        if sum(component_weight_bytes(c) for c in configs) <= l2_bytes:
            return 0.0
        spilled = sum(
            component_weight_bytes(c) for c in configs
            if not isinstance(c, HeadConfig) and not self._is_cold(self._key(c))
        )
        return spilled / 2**20

    def calibrate(self, measurements, kind="scale", l2_bytes=None):
        """Fits and stores a whole-model correction from measured whole models.

        The sum of separately timed components can differ from the whole
        model systematically (see `benchmarks/bench_latency_table.py` for
        the causes and the measurements). Three kinds of correction:

        - `"scale"`: proportional (the median of `measured / prediction`),
          e.g. when every component pays cold instruction caches and branch
          predictors that a whole model warms once.
        - `"intercept"`: a fixed per-model amount (the median of
          `measured - prediction`).
        - `"spill"`: a cost per MiB of stem and block weights in models
          too large for the L2 cache (`spill_mib`; the least-squares slope
          of `measured - prediction` over `spill_mib` through the origin,
          never below 0). A block timed alone and back to back keeps its
          weights in L2; inside a whole model that does not fit in L2,
          every block's weights were evicted by the others since the last
          inference and stream in from the next level. Use it with
          `cache="warm"` (measured best, see
          `benchmarks/bench_latency_table.py`); only models that exceed L2
          can calibrate it, so include one.

        A couple of end-to-end measurements fix it. It is stored in the file
        (per clock, cache mode and statistic) and applied to every
        prediction of tables opened with `calibrated=True`.

        Args:
            measurements: a non-empty list of `(configs, measured_ms)`:
                the components of a whole model (`model_configs(...)`) and
                its measured latency on this table's clock and statistic
                (e.g. `measure_tflite(model)["cpu_median_ms"]` for
                `clock="cpu"`).
            kind: `"scale"`, `"intercept"` or `"spill"`. Defaults to
                `"scale"`.
            l2_bytes: the L2 cache size for `kind="spill"`, stored with the
                calibration. Defaults to `None`: this CPU's
                (`l2_cache_bytes()`), or 0 (every model spills) when it
                cannot be read.

        Returns:
            The fitted scale (a ratio), intercept (milliseconds) or spill
            cost (milliseconds per MiB).
        """
        if kind not in ("scale", "intercept", "spill"):
            raise ValueError(
                "`kind` must be 'scale', 'intercept' or 'spill'. "
                f"Received: kind={kind!r}"
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
        points = []
        for item in measurements:
            if not isinstance(item, (tuple, list)) or len(item) != 2:
                raise ValueError(
                    "`measurements` must hold (configs, measured_ms) pairs. "
                    f"Received: {item!r}"
                )
            configs, measured = item
            configs = list(configs)
            if isinstance(measured, bool) or not _finite(measured, lambda v: v > 0):
                raise ValueError(
                    "`measured_ms` must be a positive finite number. "
                    f"Received: measured_ms={measured!r}"
                )
            calibrated, self.calibrated = self.calibrated, False
            try:
                raw = self.predict_configs(configs).total_ms
            finally:
                self.calibrated = calibrated
            points.append({"raw_predicted_ms": raw, "measured_ms": float(measured),
                           "spill_mib": self.spill_mib(configs, int(l2_bytes)),
                           "first": self._key(configs[0])})
        scale, intercept, per_mib = 1.0, 0.0, 0.0
        if kind == "intercept":
            value = intercept = float(
                np.median([p["measured_ms"] - p["raw_predicted_ms"] for p in points]))
        elif kind == "scale":
            value = scale = float(
                np.median([p["measured_ms"] / p["raw_predicted_ms"] for p in points]))
        else:
            spilling = [p for p in points if p["spill_mib"] > 0]
            if not spilling:
                raise ValueError(
                    "`kind='spill'` needs at least one model larger than the L2 cache "
                    f"({l2_bytes / 2**20:.2f} MiB, `l2_bytes`) with warm-timed stem or "
                    f"blocks (cache={self.cache!r}); none of the {len(points)} given has. "
                    "Calibrate with a larger model, cache='warm', or kind='scale'."
                )
            # Least squares through the origin: the models that spill most
            # (whose excess is least drowned by timing noise) weigh most.
            value = per_mib = max(0.0, float(
                sum((p["measured_ms"] - p["raw_predicted_ms"]) * p["spill_mib"]
                    for p in spilling) / sum(p["spill_mib"] ** 2 for p in spilling)))
        self.calibration[self.calibration_key] = {
            "kind": kind, "intercept_ms": intercept, "scale": scale,
            "spill_ms_per_mib": per_mib, "l2_bytes": int(l2_bytes), "points": points}
        self.save()
        return value

    # --- Prediction ---

    def predict_configs(self, configs):
        """`LatencyPrediction` for a list of components (missing ones measured first)."""
        configs = list(configs)
        if not configs:
            raise ValueError("`configs` must not be empty. Received: configs=[]")
        self.measure(configs)
        overhead = self.overhead_ms
        components = tuple((c.key, self._stat(c.key)) for c in configs)
        total = overhead + sum(max(ms - overhead, 0.0) for _, ms in components)
        intercept, scale = self.intercept_ms, self.scale
        per_mib = self.spill_ms_per_mib
        spill = self.spill_mib(configs) if per_mib else 0.0
        return LatencyPrediction(
            total_ms=float(scale * total + intercept + per_mib * spill),
            intercept_ms=intercept,
            scale=scale,
            spill_mib=spill,
            spill_ms_per_mib=per_mib,
            overhead_ms=overhead,
            components=components,
            statistic=self.statistic,
            clock=self.clock,
            cache=self.cache,
            fingerprint=dict(self.fingerprint),
        )

    def predict(
        self,
        variant="large",
        alpha=1.0,
        minimalistic=False,
        input_shape=(224, 224, 3),
        top="applications",
        classes=1000,
        include_preprocessing=True,
        output_stride=32,
        reduced_tail=False,
    ):
        """Predicted batch-1 TFLite latency of a MobileNetV3 on this CPU.

        Arguments as for `model_configs`; for the applications,
        `MobileNetV3Small(alpha=a, input_shape=s)` is
        `predict("small", a, input_shape=s)` and `include_top=False` is
        `top="features"`.

        Returns:
            A `LatencyPrediction`.
        """
        return self.predict_configs(
            model_configs(
                variant, alpha, minimalistic, input_shape, top, classes,
                include_preprocessing, output_stride, reduced_tail,
            )
        )

    def __repr__(self):
        return (
            f"LatencyTable(path={self.path!r}, entries={len(self)}, "
            f"statistic={self.statistic!r}, clock={self.clock!r}, cache={self.cache!r}, "
            f"num_threads={self.num_threads})"
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
