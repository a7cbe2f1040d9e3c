"""The components of a MobileNetV3 for latency tables: stem, bneck and head configurations.

`model_configs(...)` lists a model's components, `build_component` builds one
as a batch-1 Keras model, `component_weight_bytes` counts its float32 weights.
"""

import contextlib
import dataclasses
import numbers

from mnv3_layers._validation import (
    check_activation,
    check_bool,
    check_choice,
    check_strides,
)
from mnv3_layers.architecture.block_spec import (
    BN_EPSILON,
    SE_RATIO,
    get_architecture,
    resolve_architecture,
)
from mnv3_layers.architecture.profile import (
    ParamCount,
    bneck_params,
    classifier_params,
    last_stage_params,
    stem_params,
)
from mnv3_layers.latency import measure as latency_lib

OVERHEAD_KEY = "overhead/relu/1x1x8"

HEAD_TOPS = ("features", "avg", "applications", "dense")

# === Configurations ===


@contextlib.contextmanager
def _config_errors(config):
    """Prefixes the errors of a configuration's checks with its class name."""
    try:
        yield
    except (TypeError, ValueError) as e:
        raise type(e)(f"{type(config).__name__}: {e}") from None


def _check_int(field, value, low=1):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
        raise ValueError(f"`{field}` must be an int >= {low}. Received: {field}={value!r}")


def _hwc(config):
    return f"{config.height}x{config.width}x{config.in_channels}"


@dataclasses.dataclass(frozen=True)
class StemConfig:
    """The stem: [rescaling] -> `kernel_size` conv (stride `strides`) -> BN -> activation.

    Attributes:
        height, width, in_channels: input size.
        filters, kernel_size, strides, activation, preprocessing: as named.
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
        with _config_errors(self):
            for field in ("height", "width", "in_channels", "filters", "kernel_size",
                          "strides"):
                _check_int(field, getattr(self, field))
            check_activation("activation", self.activation)
            check_bool("preprocessing", self.preprocessing)

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
        expanded_filters, filters: depthwise width (`in_channels`: no expand
            conv) and output width.
        kernel_size, strides, dilation_rate: of the depthwise convolution.
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
        with _config_errors(self):
            for field in ("height", "width", "in_channels", "expanded_filters", "filters",
                          "kernel_size", "dilation_rate"):
                _check_int(field, getattr(self, field))
            check_strides("strides", self.strides)
            check_bool("se", self.se)
            check_activation("activation", self.activation)

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
        filters, activation: of the last stage's 1x1 conv (960 / 576 at alpha 1).
        top: `"features"`, `"avg"`, `"applications"` or `"dense"` (`model_configs`).
        last_point_filters, classes: pooled 1x1 conv and classifier widths
            (0 where `top` has none).
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
        with _config_errors(self):
            for field in ("height", "width", "in_channels", "filters"):
                _check_int(field, getattr(self, field))
            check_activation("activation", self.activation)
            check_choice("top", self.top, HEAD_TOPS)
            self._check_top()

    def _check_top(self):
        needs_classes = self.top in ("applications", "dense")
        _check_int("classes", self.classes, 1 if needs_classes else 0)
        if not needs_classes and self.classes:
            raise ValueError(
                f"top={self.top!r} has no classifier, so `classes` must be 0. "
                f"Received: classes={self.classes!r}"
            )
        if self.top == "applications":
            _check_int("last_point_filters", self.last_point_filters, 1)
        elif self.last_point_filters:
            raise ValueError(
                "only top='applications' has `last_point_filters`. "
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
    """The component configurations of a MobileNetV3, in network order (nothing is built).

    Args:
        variant: `"large"`, `"small"`, an `ArchitectureSpec` or its dict form.
            Defaults to `"large"`.
        alpha, minimalistic, output_stride, reduced_tail: as for
            `resolve_architecture`.
        input_shape: `(height, width, channels)`. Defaults to `(224, 224, 3)`.
        top: `"applications"` (`include_top=True`), `"features"`
            (`include_top=False`), `"avg"` (`pooling="avg"`) or `"dense"`
            (the search's classifier). Defaults to `"applications"`.
        classes: classifier width. Defaults to `1000`.
        include_preprocessing: the input rescaling is part of the stem.
            Defaults to `True`.

    Returns:
        `(StemConfig, BneckConfig per block..., HeadConfig)`.

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
    spec = get_architecture(variant)
    height, width, channels = _check_image_shape(input_shape)
    check_choice("top", top, HEAD_TOPS)
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


def component_params(config):
    """`architecture.profile.ParamCount` of one component (none for `OVERHEAD_KEY`)."""
    if config == OVERHEAD_KEY:
        return ParamCount()
    if isinstance(config, StemConfig):
        return stem_params(config.in_channels, config.filters, config.kernel_size)
    if isinstance(config, BneckConfig):
        return bneck_params(config.in_channels, config.expanded_filters, config.filters,
                            config.kernel_size, SE_RATIO if config.se else None)
    if isinstance(config, HeadConfig):
        applications = config.top == "applications"
        count = last_stage_params(config.in_channels, config.filters,
                                  config.last_point_filters if applications else None)
        if applications:
            count += classifier_params(config.last_point_filters, config.classes)
        elif config.top == "dense":
            count += classifier_params(config.filters, config.classes)
        return count
    raise TypeError(
        "`config` must be a StemConfig, BneckConfig or HeadConfig. "
        f"Received: config of type {type(config).__name__}"
    )


def component_weight_bytes(config):
    """Bytes of float32 parameters the component's TFLite model reads per inference.

    Batch norms count as one folded bias per channel. `OVERHEAD_KEY` has none.

    Example:

    >>> from mnv3_layers.latency_table import StemConfig, component_weight_bytes
    >>> component_weight_bytes(StemConfig(224, 224, 3, 16))  # 3x3x3x16 kernel + 16 biases
    1792
    """
    return 4 * component_params(config).folded_params


# === Building and converting one component ===


def build_component(config):
    """A batch-1 Keras model of one component, built by the applications' own builders.

    The `"dense"` top is global average pooling and a softmax `Dense`.
    """
    import keras

    from mnv3_layers.applications.mobilenet_v3 import build_head, build_stem
    from mnv3_layers.layers.inverted_residual import InvertedResidual

    if config == OVERHEAD_KEY:
        inputs = keras.Input((1, 1, 8), batch_size=1)
        return keras.Model(inputs, keras.layers.ReLU()(inputs))
    inputs = keras.Input((config.height, config.width, config.in_channels), batch_size=1)
    if isinstance(config, StemConfig):
        x = build_stem(inputs, config.filters, config.kernel_size, config.strides,
                       config.activation, include_preprocessing=config.preprocessing)
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
        x = layer(inputs)
    elif isinstance(config, HeadConfig):
        x = build_head(
            inputs, config.filters, config.last_point_filters, config.activation,
            include_top=config.top == "applications", classes=config.classes,
            pooling="avg" if config.top in ("avg", "dense") else None,
        )
        if config.top == "dense":
            x = keras.layers.Dense(config.classes, activation="softmax")(x)
    else:
        raise TypeError(
            "`config` must be a StemConfig, BneckConfig or HeadConfig. "
            f"Received: config of type {type(config).__name__}"
        )
    return keras.Model(inputs, x)
