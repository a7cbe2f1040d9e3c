"""MobileNetV3 as a feature-extractor backbone for detection and segmentation heads.

`MobileNetV3Backbone` (keras-hub style) and `feature_taps`, its taps computed
from the block table. Reference: Howard et al., "Searching for MobileNetV3",
ICCV 2019, sections 6.3 (reduced tail) and 6.4 (output stride).
"""

import dataclasses
import math

import keras

from mnv3_layers._registry import register
from mnv3_layers._validation import check_bool, check_fraction, check_optional_name
from mnv3_layers.applications import weights as weights_lib
from mnv3_layers.applications.mobilenet_v3 import (
    build_head,
    build_stem_and_blocks,
    check_input_shape,
)
from mnv3_layers.architecture.block_spec import (
    block_name,
    get_architecture,
    resolve_architecture,
    tail_start_index,
)

STEM_TAP = "conv_activation"
LAST_STAGE_TAP = "last_stage"
KINDS = ("block", "expansion")


@dataclasses.dataclass(frozen=True)
class FeatureInfo:
    """One feature tap of a `MobileNetV3Backbone`.

    Attributes:
        name: the layer whose output this is (`"expanded_conv_12"`, `"last_stage"`).
        stride: real output stride (dilated levels report 16 or 8).
        channels: number of channels.
        kind: `"block"` (the layer's output) or `"expansion"` (the expand
            activation inside `InvertedResidual` `name`, TF-slim's `expansion_output`).
        level: `"P1"` .. `"P5"` when this tap is that pyramid level, else `None`.
    """

    name: str
    stride: int
    channels: int
    kind: str
    level: object = None

    @property
    def key(self):
        """Unique key of the tap: `name`, or `name + "/expansion_output"`."""
        return self.name if self.kind == "block" else f"{self.name}/expansion_output"


def _variant_config(variant):
    if isinstance(variant, str):
        return variant.lower()
    spec = get_architecture(variant)
    return {
        "name": spec.name,
        "stem": dataclasses.asdict(spec.stem),
        "blocks": [row.to_dict() for row in spec.blocks],
        "last_stage": dataclasses.asdict(spec.last_stage),
    }


def _level(stride):
    if stride < 2 or stride & (stride - 1):
        return None
    return f"P{int(math.log2(stride))}"


def feature_taps(
    variant="large", alpha=1.0, minimalistic=False, output_stride=32, reduced_tail=False
):
    """The feature taps of a backbone, computed from the block table alone.

    In network order: the stem activation, every block output (the last-stage
    block's expansion output, SSDLite's C4, just before its own), `last_stage`.
    Level `Pn` is the last block tap of nominal stride `2**n` (at
    `output_stride=32`), so dilated levels stay distinct layers.

    Args:
        variant, alpha, minimalistic, output_stride, reduced_tail: as for
            `MobileNetV3Backbone`.

    Returns:
        A tuple of `FeatureInfo`.

    Example:

    >>> from mnv3_layers.applications.backbone import feature_taps
    >>> [(t.name, t.stride, t.channels) for t in feature_taps("small") if t.level]
    [('conv_activation', 2, 16), ('expanded_conv', 4, 16), ('expanded_conv_2', 8, 24), \
('expanded_conv_7', 16, 48), ('last_stage', 32, 576)]
    """
    spec = get_architecture(variant)
    arch = resolve_architecture(
        spec, alpha, minimalistic, output_stride, reduced_tail=reduced_tail
    )
    nominal = resolve_architecture(spec, alpha, minimalistic, 32, reduced_tail=reduced_tail)
    tail_start = tail_start_index(spec)
    # (FeatureInfo without level, nominal stride) in network order.
    taps = [(FeatureInfo(STEM_TAP, arch.stem.strides, arch.stem.filters, "block"),
             nominal.stem.strides)]
    for block, nominal_block in zip(arch.blocks, nominal.blocks):
        name = block_name(block.index)
        if block.index == tail_start and block.has_expand:
            previous, previous_nominal = taps[-1][0].stride, taps[-1][1]
            taps.append(
                (FeatureInfo(name, previous, block.expanded_filters, "expansion"),
                 previous_nominal)
            )
        taps.append((FeatureInfo(name, block.stride, block.filters, "block"),
                     nominal_block.stride))
    taps.append(
        (FeatureInfo(LAST_STAGE_TAP, arch.blocks[-1].stride, arch.last_stage_filters, "block"),
         nominal.blocks[-1].stride)
    )
    last_of_level = {}
    for index, (tap, nominal_stride) in enumerate(taps):
        level = _level(nominal_stride)
        if tap.kind == "block" and level is not None:
            last_of_level[level] = index
    levels = {index: level for level, index in last_of_level.items()}
    return tuple(
        dataclasses.replace(tap, level=levels.get(index)) for index, (tap, _) in enumerate(taps)
    )


def _check_weights(weights, spec, alpha, minimalistic, reduced_tail):
    if isinstance(weights, str) and weights == "imagenet":
        if spec.name not in ("large", "small") or spec != get_architecture(spec.name):
            raise ValueError(
                "`weights='imagenet'` needs variant 'large' or 'small'; a custom "
                "architecture has other layer shapes. Received: "
                f"variant=<custom ArchitectureSpec {spec.name!r}>, weights='imagenet'"
            )
        if reduced_tail:
            raise ValueError(
                "`reduced_tail=True` halves the last-stage channels, so no ImageNet "
                "weights fit it; pass `weights=None` (or a file saved from a "
                "reduced-tail backbone). Received: reduced_tail=True, weights='imagenet'"
            )
    weights_lib.check_weights_argument(
        weights,
        model_type=spec.name,
        alpha=alpha,
        minimalistic=minimalistic,
        include_top=False,
        classes=1000,
        classifier_activation=None,
    )


@register
class MobileNetV3Backbone(keras.Model):
    """MobileNetV3 feature extractor with keras-cv and keras-hub feature taps.

    A functional model to the last feature map, `(batch, H / s, W / s, 960)`
    for Large (`576` Small, `s = output_stride`), with the layer names and
    weights of `MobileNetV3Large/Small(include_top=False)`. Taps (see
    `feature_taps`): `pyramid_level_inputs` (`"P1".."P5"` -> layer name,
    keras-cv), `pyramid_outputs` (-> tensor, keras-hub), `feature_info`
    (every `FeatureInfo`), `feature_outputs` (`FeatureInfo.key` -> tensor),
    `expansion_tap` (SSDLite's stride-16 C4, or `None`), `get_feature_extractor`.

    Args:
        variant: `"large"`, `"small"` or a custom `ArchitectureSpec` (or its
            dict form, as written by `get_config`). Defaults to `"large"`.
        alpha: width multiplier. Defaults to `1.0`.
        minimalistic: 3x3 kernels, ReLU, no SE. Defaults to `False`.
        input_shape: `(height, width, channels)`; spatial dims may be `None`
            and must be >= 32. Defaults to `(None, None, 3)`.
        include_preprocessing: rescale inputs from [0, 255] to [-1, 1].
            Defaults to `True`.
        output_stride: 32, 16 or 8; past it, stride-2 blocks run dilated at
            stride 1 (weight shapes, so ImageNet weights, unchanged). Defaults to `32`.
        reduced_tail: halve the channels after C4 (paper section 6.3, TF-slim
            `V3_LARGE_DETECTION`). Defaults to `False`.
        weights: `None`, `"imagenet"` (the keras.applications no-top files)
            or a weights file path (see `applications.weights`); not kept in
            the config. Defaults to `None`.
        bn_momentum: batch-norm momentum. Defaults to `0.99`.
        name: model name. Defaults to `None` (Keras picks one).
        **kwargs: `keras.Model` arguments (`trainable`, `dtype`).

    Example:

    >>> from mnv3_layers.applications import MobileNetV3Backbone
    >>> backbone = MobileNetV3Backbone("small", input_shape=(256, 256, 3))
    >>> backbone.pyramid_level_inputs["P3"]
    'expanded_conv_2'
    >>> backbone.output_shape
    (None, 8, 8, 576)
    """

    def __init__(
        self,
        variant="large",
        alpha=1.0,
        minimalistic=False,
        input_shape=(None, None, 3),
        include_preprocessing=True,
        output_stride=32,
        reduced_tail=False,
        weights=None,
        bn_momentum=0.99,
        name=None,
        **kwargs,
    ):
        # === Argument checks (all before anything is built) ===
        if keras.config.image_data_format() != "channels_last":
            raise ValueError(
                "mnv3_layers builds channels_last models only. Received: "
                f"keras.config.image_data_format()={keras.config.image_data_format()!r}"
            )
        spec = get_architecture(variant)
        check_bool("minimalistic", minimalistic)
        check_bool("include_preprocessing", include_preprocessing)
        check_bool("reduced_tail", reduced_tail)
        arch = resolve_architecture(
            spec, alpha, minimalistic, output_stride, reduced_tail=reduced_tail
        )
        taps = feature_taps(spec, alpha, minimalistic, output_stride, reduced_tail)
        check_fraction("bn_momentum", bn_momentum)
        check_optional_name("name", name)
        _check_weights(weights, spec, alpha, minimalistic, reduced_tail)
        input_shape = check_input_shape(
            (None, None, 3) if input_shape is None else input_shape, weights
        )
        expansion_tap = next((t for t in taps if t.kind == "expansion"), None)
        tap_block = tail_start_index(spec) if expansion_tap is not None else None

        # === Layers and Functional Model ===
        # The stem and blocks come from the builder the applications use, so
        # layer names and weights are the same as `MobileNetV3*(include_top=False)`.
        inputs = keras.Input(shape=input_shape)
        outputs = build_stem_and_blocks(
            inputs, arch, bn_momentum, expansion_output_block=tap_block,
            include_preprocessing=include_preprocessing,
        )
        x = build_head(
            list(outputs.values())[-1], arch.last_stage_filters, None,
            arch.last_stage_activation, include_top=False, bn_momentum=bn_momentum,
            name=LAST_STAGE_TAP,
        )
        outputs[LAST_STAGE_TAP] = x
        super().__init__(inputs=inputs, outputs=x, name=name, **kwargs)

        # === Config ===
        # A name stays a name; a custom table is kept as its ArchitectureSpec.
        self.variant = variant.lower() if isinstance(variant, str) else spec
        self.alpha = alpha
        self.minimalistic = minimalistic
        self.image_shape = input_shape
        self.include_preprocessing = include_preprocessing
        self.output_stride = output_stride
        self.reduced_tail = reduced_tail
        self.bn_momentum = bn_momentum
        self.architecture = arch
        self.feature_info = taps
        self.expansion_tap = expansion_tap
        self.feature_outputs = {tap.key: outputs[tap.key] for tap in taps}
        self.pyramid_level_inputs = {t.level: t.name for t in taps if t.level}
        self.pyramid_outputs = {t.level: outputs[t.key] for t in taps if t.level}

        weights_lib.load_weights(
            self,
            weights,
            model_type=spec.name,
            alpha=alpha,
            minimalistic=minimalistic,
            include_top=False,
        )

    def get_feature_extractor(self, keys=None):
        """A `keras.Model` from the backbone's input to a dict `{key: tensor}` of taps.

        Args:
            keys: pyramid levels (`"P3"`) and/or tap keys (`FeatureInfo.key`).
                Defaults to every pyramid level.

        Returns:
            A `keras.Model` sharing this backbone's layers and weights.

        Raises:
            TypeError: `keys` is not a string or an iterable of strings.
            ValueError: `keys` is empty, or a key is neither a level (up to
                `"P5"`) nor a tap of this backbone.

        Example:

        >>> from mnv3_layers.applications import MobileNetV3Backbone
        >>> backbone = MobileNetV3Backbone("small", alpha=0.35, input_shape=(64, 64, 3))
        >>> extractor = backbone.get_feature_extractor(["P3", "P5"])
        >>> {key: tuple(tensor.shape) for key, tensor in extractor.output.items()}
        {'P3': (None, 8, 8, 8), 'P5': (None, 2, 2, 192)}
        """
        if keys is None:
            keys = list(self.pyramid_outputs)
        elif isinstance(keys, str):
            keys = [keys]
        else:
            try:
                keys = list(keys)
            except TypeError:
                raise TypeError(
                    "`keys` must be a string or a list of strings. "
                    f"Received: keys={keys!r}"
                ) from None
            if not keys:
                raise ValueError(
                    "`keys` must name at least one pyramid level or tap. "
                    f"Received: keys={keys!r}"
                )
        outputs = {}
        for key in keys:
            if not isinstance(key, str):
                raise TypeError(
                    "`keys` must be a string or a list of strings. "
                    f"Received: keys={keys!r} (key {key!r} of type {type(key).__name__})"
                )
            if key in self.pyramid_outputs:
                outputs[key] = self.pyramid_outputs[key]
            elif key in self.feature_outputs:
                outputs[key] = self.feature_outputs[key]
            else:
                raise ValueError(
                    "`keys` must be pyramid levels "
                    f"{sorted(self.pyramid_outputs)} or tap keys "
                    f"{list(self.feature_outputs)}. Received: keys={keys!r} "
                    f"(unknown key={key!r})"
                )
        return keras.Model(self.input, outputs)

    def get_config(self):
        return {
            "name": self.name,
            "trainable": self.trainable,
            "variant": _variant_config(self.variant),
            "alpha": self.alpha,
            "minimalistic": self.minimalistic,
            "input_shape": self.image_shape,
            "include_preprocessing": self.include_preprocessing,
            "output_stride": self.output_stride,
            "reduced_tail": self.reduced_tail,
            "weights": None,
            "bn_momentum": self.bn_momentum,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)
