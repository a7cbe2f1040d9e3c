"""Parameter and multiply-add profile of a MobileNetV3 variant, from its table alone.

`profile(...)` returns, for the stem, every bneck block, the last stage and the
classifier: sizes, channels, parameters and multiply-adds, without building a
model. `params` counts as `model.count_params()` does (batch norms included);
`ParamCount` and the `*_params` helpers are that counter per component (also
used by `mnv3_layers.latency`). Sizes use `"same"` padding (`ceil(n / stride)`).

Formula (`madds`, multiply-accumulates of weight layers, biases not counted):

    conv: H_out * W_out * k * k * C_in * C_out    depthwise: H_out * W_out * k * k * C
    SE (on the pooled map): 2 * C * C_squeeze      pooled 1x1 / classifier: C_in * C_out

Pools, SE multiplies and residual adds are counted as `elementwise_ops` (one
per element); batch norms and activations in neither. Comparison with the
published numbers: `benchmarks/README.md` (`mnv3 summary`).

Example:

>>> from mnv3_layers.profile import profile
>>> report = profile("large", alpha=1.0, input_size=224)
>>> report.params, report.madds
(5507432, 216589760)
>>> report.rows[1].name, report.rows[1].output_size
('expanded_conv', (112, 112))

Reference: Howard et al., "Searching for MobileNetV3", ICCV 2019, Table 3.
"""

import dataclasses
import math
import numbers

from mnv3_layers.architecture.block_spec import (
    block_name,
    get_architecture,
    resolve_architecture,
)
from mnv3_layers.layers.make_divisible import make_divisible

# Rounding multiple used by the layers for expanded and squeeze widths.
_DIVISOR = 8


@dataclasses.dataclass(frozen=True)
class LayerProfile:
    """One row of a `Profile`: a stem, bneck, last-stage or classifier layer.

    Attributes:
        name: layer name in `mnv3_layers.applications` (`"conv"`,
            `"expanded_conv"`, ..., `"last_stage"`, `"logits"`).
        kind: `"stem"`, `"bneck"`, `"last_stage"` or `"classifier"`.
        description: short operator summary.
        input_size, output_size: `(height, width)`; input_channels,
            output_channels; params, trainable_params, madds,
            elementwise_ops: see the module.
    """

    name: str
    kind: str
    description: str
    input_size: tuple
    input_channels: int
    output_size: tuple
    output_channels: int
    params: int
    trainable_params: int
    madds: int
    elementwise_ops: int

    @property
    def non_trainable_params(self):
        return self.params - self.trainable_params

    def to_dict(self):
        out = dataclasses.asdict(self)
        out["input_size"] = list(self.input_size)
        out["output_size"] = list(self.output_size)
        out["non_trainable_params"] = self.non_trainable_params
        return out


@dataclasses.dataclass(frozen=True)
class Profile:
    """Per-layer and total parameters and multiply-adds of one model.

    Attributes:
        variant: architecture name (`"large"`, `"small"` or a spec's name).
        alpha, minimalistic, include_top, output_stride: as given;
            `input_size` as `(height, width)`.
        classes: classifier width (`None` when `include_top` is False).
        rows: tuple of `LayerProfile`, in model order.
    """

    variant: str
    alpha: float
    minimalistic: bool
    input_size: tuple
    include_top: bool
    classes: object
    output_stride: int
    rows: tuple

    @property
    def params(self):
        """All weights, equal to `model.count_params()`."""
        return sum(row.params for row in self.rows)

    @property
    def trainable_params(self):
        return sum(row.trainable_params for row in self.rows)

    @property
    def non_trainable_params(self):
        return self.params - self.trainable_params

    @property
    def madds(self):
        return sum(row.madds for row in self.rows)

    @property
    def elementwise_ops(self):
        return sum(row.elementwise_ops for row in self.rows)

    def __getitem__(self, name):
        """The row named `name` (e.g. `report["expanded_conv_3"]`)."""
        for row in self.rows:
            if row.name == name:
                return row
        raise KeyError(
            f"No layer named {name!r}. Layers: {[row.name for row in self.rows]}"
        )

    def to_dict(self):
        """Plain-Python (JSON-serializable) form: settings, rows and totals."""
        return {
            "variant": self.variant,
            "alpha": self.alpha,
            "minimalistic": self.minimalistic,
            "input_size": list(self.input_size),
            "include_top": self.include_top,
            "classes": self.classes,
            "output_stride": self.output_stride,
            "rows": [row.to_dict() for row in self.rows],
            "totals": {
                "params": self.params,
                "trainable_params": self.trainable_params,
                "non_trainable_params": self.non_trainable_params,
                "madds": self.madds,
                "elementwise_ops": self.elementwise_ops,
            },
        }

    def __str__(self):
        def size(hw, channels):
            return f"{hw[0]}x{hw[1]}x{channels}"

        header = ("layer", "operator", "input", "output", "params", "MAdds")
        lines = [
            (
                row.name,
                row.description,
                size(row.input_size, row.input_channels),
                size(row.output_size, row.output_channels),
                f"{row.params:,}",
                f"{row.madds:,}",
            )
            for row in self.rows
        ]
        total = ("total", "", "", "", f"{self.params:,}", f"{self.madds:,}")
        widths = [
            max(len(line[i]) for line in [header, total] + lines) for i in range(len(header))
        ]
        right = {4, 5}

        def fmt(line):
            cells = [
                cell.rjust(w) if i in right else cell.ljust(w)
                for i, (cell, w) in enumerate(zip(line, widths))
            ]
            return "  ".join(cells).rstrip()

        rule = "  ".join("-" * w for w in widths)
        title = (
            f"MobileNetV3-{self.variant} alpha={self.alpha} "
            f"minimalistic={self.minimalistic} input={self.input_size[0]}x{self.input_size[1]}"
            f" include_top={self.include_top}"
            + (f" classes={self.classes}" if self.include_top else "")
            + (f" output_stride={self.output_stride}" if self.output_stride != 32 else "")
        )
        footer = (
            f"params: {self.params:,} ({self.trainable_params:,} trainable, "
            f"{self.non_trainable_params:,} batch-norm statistics); "
            f"MAdds: {self.madds / 1e6:.1f} M "
            f"(+ {self.elementwise_ops / 1e6:.1f} M pool/SE-multiply/residual-add ops)"
        )
        return "\n".join(
            [title, fmt(header), rule]
            + [fmt(line) for line in lines]
            + [rule, fmt(total), footer]
        )


def _is_int(value):
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _check_input_size(input_size):
    if _is_int(input_size):
        size = (int(input_size), int(input_size))
    elif (
        isinstance(input_size, (tuple, list))
        and len(input_size) == 2
        and all(_is_int(v) for v in input_size)
    ):
        size = (int(input_size[0]), int(input_size[1]))
    else:
        size = None
    if size is None or min(size) < 1:
        raise ValueError(
            "`input_size` must be a positive int or a (height, width) pair of "
            f"positive ints. Received: input_size={input_size!r}"
        )
    return size


def _check_arguments(input_size, include_top, classes):
    size = _check_input_size(input_size)
    if not isinstance(include_top, bool):
        raise ValueError(
            f"`include_top` must be a bool. Received: include_top={include_top!r}"
        )
    if include_top and (not _is_int(classes) or classes < 1):
        raise ValueError(f"`classes` must be a positive int. Received: classes={classes!r}")
    return size


def _downsample(size, strides):
    return tuple(math.ceil(n / strides) for n in size)


# === Parameter counts (the one counter: the profile and the latency tables use it) ===


@dataclasses.dataclass(frozen=True)
class ParamCount:
    """The weights of one component: kernels, explicit biases, batch-norm channels.

    A batch-norm channel is 4 Keras weights (2 trainable) and one bias once
    folded at inference (`folded_params`, what a TFLite model stores).
    """

    kernel: int = 0
    bias: int = 0
    batch_norm: int = 0

    @property
    def params(self):
        """All weights, as `model.count_params()` counts them."""
        return self.kernel + self.bias + 4 * self.batch_norm

    @property
    def trainable_params(self):
        return self.kernel + self.bias + 2 * self.batch_norm

    @property
    def folded_params(self):
        """Weights after folding each batch norm into one bias per channel (TFLite)."""
        return self.kernel + self.bias + self.batch_norm

    def __add__(self, other):
        return ParamCount(self.kernel + other.kernel, self.bias + other.bias,
                          self.batch_norm + other.batch_norm)


def stem_params(in_channels, filters, kernel_size):
    """`ParamCount` of the stem: a `kernel_size` convolution without bias, then BN."""
    return ParamCount(kernel=kernel_size**2 * in_channels * filters, batch_norm=filters)


def squeeze_channels(channels, se_ratio):
    """Width of the squeeze-and-excite bottleneck over `channels`."""
    return make_divisible(channels * se_ratio, _DIVISOR)


def bneck_params(in_channels, expanded_filters, filters, kernel_size, se_ratio=None):
    """`ParamCount` of an inverted-residual block with absolute widths.

    The 1x1 expand convolution exists when `expanded_filters != in_channels`;
    `se_ratio` `None` (or 0) means no squeeze-and-excite.
    """
    e = expanded_filters
    count = ParamCount(kernel=kernel_size**2 * e + e * filters, batch_norm=e + filters)
    if e != in_channels:
        count += ParamCount(kernel=in_channels * e, batch_norm=e)
    if se_ratio:
        squeeze = squeeze_channels(e, se_ratio)
        count += ParamCount(kernel=2 * e * squeeze, bias=squeeze + e)
    return count


def last_stage_params(in_channels, filters, last_point_filters=None):
    """`ParamCount` of the last stage: 1x1 conv + BN [, pooled 1x1 conv with bias]."""
    count = ParamCount(kernel=in_channels * filters, batch_norm=filters)
    if last_point_filters:
        count += ParamCount(kernel=filters * last_point_filters, bias=last_point_filters)
    return count


def classifier_params(in_channels, classes):
    """`ParamCount` of the classifier: a 1x1 convolution (or `Dense`) with bias."""
    return ParamCount(kernel=in_channels * classes, bias=classes)


# === Rows ===


def _short_activation(activation):
    return {"relu": "RE", "hard_swish": "HS"}.get(activation, activation)


def _stem_row(arch, size, in_channels):
    stem = arch.stem
    out_size = _downsample(size, stem.strides)
    k = stem.kernel_size
    count = stem_params(in_channels, stem.filters, k)
    return LayerProfile(
        name="conv",
        kind="stem",
        description=(
            f"conv2d {k}x{k} /{stem.strides}, {_short_activation(arch.stem_activation)}"
        ),
        input_size=size,
        input_channels=in_channels,
        output_size=out_size,
        output_channels=stem.filters,
        params=count.params,
        trainable_params=count.trainable_params,
        madds=out_size[0] * out_size[1] * count.kernel,
        elementwise_ops=0,
    )


def _block_madds(block, size, out_size):
    """Multiply-adds and elementwise ops (pool, SE multiply, residual add) of a block."""
    c_in, e, c_out, k = (
        block.in_channels, block.expanded_filters, block.filters, block.kernel_size
    )
    out_pixels = out_size[0] * out_size[1]
    madds = out_pixels * (k * k * e + e * c_out)
    elementwise = out_pixels * c_out if block.use_residual else 0
    if block.has_expand:
        madds += size[0] * size[1] * c_in * e
    if block.se_ratio:
        madds += 2 * e * squeeze_channels(e, block.se_ratio)
        elementwise += 2 * out_pixels * e  # global pool adds + gate multiply
    return madds, elementwise


def _block_description(block):
    parts = [f"bneck {block.kernel_size}x{block.kernel_size} exp {block.expanded_filters}"]
    if block.se_ratio:
        parts.append("SE")
    parts.append(_short_activation(block.activation))
    if block.strides != 1:
        parts.append(f"/{block.strides}")
    if block.dilation_rate != 1:
        parts.append(f"dilation {block.dilation_rate}")
    if block.use_residual:
        parts.append("+res")
    return ", ".join(parts)


def _block_row(block, size):
    out_size = _downsample(size, block.strides)
    count = bneck_params(block.in_channels, block.expanded_filters, block.filters,
                         block.kernel_size, block.se_ratio)
    madds, elementwise = _block_madds(block, size, out_size)
    return LayerProfile(
        name=block_name(block.index),
        kind="bneck",
        description=_block_description(block),
        input_size=size,
        input_channels=block.in_channels,
        output_size=out_size,
        output_channels=block.filters,
        params=count.params,
        trainable_params=count.trainable_params,
        madds=madds,
        elementwise_ops=elementwise,
    )


def _last_stage_row(arch, size, in_channels, include_top):
    f = arch.last_stage_filters
    pixels = size[0] * size[1]
    p = arch.last_point_filters if include_top else None
    count = last_stage_params(in_channels, f, p)
    act = _short_activation(arch.last_stage_activation)
    description = f"conv2d 1x1 {f}, {act}"
    out_size, out_channels, elementwise = size, f, 0
    madds = pixels * in_channels * f
    if include_top:
        madds += f * p
        elementwise += pixels * f  # global average pool adds
        description += f", pool, conv2d 1x1 {p} (bias), {act}"
        out_size, out_channels = (1, 1), p
    return LayerProfile(
        name="last_stage",
        kind="last_stage",
        description=description,
        input_size=size,
        input_channels=in_channels,
        output_size=out_size,
        output_channels=out_channels,
        params=count.params,
        trainable_params=count.trainable_params,
        madds=madds,
        elementwise_ops=elementwise,
    )


def _classifier_row(in_channels, classes):
    count = classifier_params(in_channels, classes)
    return LayerProfile(
        name="logits",
        kind="classifier",
        description=f"conv2d 1x1 {classes} (bias)",
        input_size=(1, 1),
        input_channels=in_channels,
        output_size=(1, 1),
        output_channels=classes,
        params=count.params,
        trainable_params=count.trainable_params,
        madds=count.kernel,
        elementwise_ops=0,
    )


def profile(
    variant="large",
    alpha=1.0,
    minimalistic=False,
    input_size=224,
    include_top=True,
    classes=1000,
    output_stride=32,
):
    """Parameters and multiply-adds of a MobileNetV3 variant, layer by layer.

    `params` equals `model.count_params()` of `MobileNetV3Large/Small` with
    the same arguments (3 input channels).

    Args:
        variant: `"large"`, `"small"`, an `ArchitectureSpec` or its dict
            form. Defaults to `"large"`.
        alpha: width multiplier. Defaults to `1.0`.
        minimalistic: 3x3 kernels, ReLU, no SE. Defaults to `False`.
        input_size: image size, an int or `(height, width)`. Defaults to `224`.
        include_top: include the pooled head (1280/1024) and the classifier.
            Defaults to `True`.
        classes: classifier width when `include_top`. Defaults to `1000`.
        output_stride: 32, 16 or 8 (dilated backbone). Defaults to `32`.

    Returns:
        A frozen `Profile` (`rows`, totals, `to_dict()`, a table as `str`).

    Example:

    >>> from mnv3_layers.profile import profile
    >>> report = profile("small")
    >>> round(report.madds / 1e6, 1), round(report.params / 1e6, 2)
    (56.5, 2.55)
    """
    spec = get_architecture(variant)  # ValueError naming `variant` when unknown.
    image_size = _check_arguments(input_size, include_top, classes)
    arch = resolve_architecture(
        spec, alpha=alpha, minimalistic=minimalistic, output_stride=output_stride
    )
    in_channels = 3
    rows = [_stem_row(arch, image_size, in_channels)]
    size, channels = rows[-1].output_size, rows[-1].output_channels
    for block in arch.blocks:
        rows.append(_block_row(block, size))
        size, channels = rows[-1].output_size, rows[-1].output_channels
    rows.append(_last_stage_row(arch, size, channels, include_top))
    if include_top:
        rows.append(_classifier_row(rows[-1].output_channels, classes))
    return Profile(
        variant=arch.name,
        alpha=alpha,
        minimalistic=minimalistic,
        input_size=image_size,
        include_top=include_top,
        classes=classes if include_top else None,
        output_stride=output_stride,
        rows=tuple(rows),
    )
