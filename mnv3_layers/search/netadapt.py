"""NetAdapt-style latency-targeted width search (Howard et al. 2019, section 4.2).

`netadapt_search(...)` starts from a block table (e.g. MobileNetV3-Small at
some alpha), and, until the predicted latency meets the target, repeats:

1. Proposals. Every proposal shrinks one channel count, in steps of 8
   (channels stay multiples of 8):
   (a) `"expansion"`: the expanded width of one block that has an expand
       convolution, or (`"last_stage"`) the width of the last stage's 1x1
       conv, which is the network's last expansion layer;
   (b) `"bottleneck"`: the bottleneck width shared by all tensors joined by
       residual connections (the stem output belongs to the first group;
       a group may be a single tensor).
   Each proposal is sized with the latency table (`LatencyTable`) to the
   *largest* width that cuts at least `delta = min(delta_ratio x current
   latency, current - target)`; proposals that cannot cut that much, or
   that would add or remove an expand convolution or a residual
   connection, are dropped.
2. Each proposal is built (`MobileNetV3Backbone(variant=spec)` + global
   average pooling + softmax `Dense`), inherits the current model's weights
   (NetAdapt's filter pruning: per channel group, the channels with the
   largest L2 weight norm are kept and every tensor touching them is
   sliced; SE squeeze widths follow `make_divisible(E / 4, 8)`), and is
   fine-tuned `finetune_steps` steps on the training data, then evaluated
   on the validation data.
3. The proposal with the best accuracy change per latency change
   (`(acc - acc_current) / (latency_current - latency)`) becomes the new
   current model (with its fine-tuned weights).

When the table says the target is met, the current model is converted and
measured end to end (with `target_ratio`: interleaved with the starting
model, and their ratio is what counts); if it is still above `target_ms x (1 +
latency_tolerance)`, the ratio measured / predicted becomes the new
calibration and the search goes on. Then the result is fine-tuned
`final_finetune_steps` steps, evaluated, measured and saved.

Latency calibration (`calibrate=True`): the starting model is measured end
to end once, and every table prediction is multiplied by
`measured / predicted` of that model, so the search works in measured
milliseconds and a target given as a fraction of the starting model's
measured latency means what it says.

Output folder
-------------
- `architecture.json`: the new block table, exactly the dict form
  `MobileNetV3Backbone(variant=...)` accepts
  (`MobileNetV3Backbone(variant=json.load(open(path)))`).
- `model.keras`: the fine-tuned classifier (loads without custom objects).
- `search_log.jsonl`: one JSON object per event (`start`, `proposal`,
  `iteration`, `verify`, `final`).
- `result.json`: the summary returned as `SearchResult`.
- `state.json` + `*.weights.h5`: the resumable state, written atomically
  after every iteration. Calling `netadapt_search` again with the same
  `output_dir` and settings continues from the last finished iteration
  (the log is cut back to that point); a finished search returns its
  result without training again. Different settings raise a ValueError.

Reference: Howard et al., "Searching for MobileNetV3", ICCV 2019, section
4.2; Yang et al., "NetAdapt", ECCV 2018.
"""

import contextlib
import dataclasses
import gc
import json
import math
import numbers
import os
import tempfile
import time
import warnings

import numpy as np

from mnv3_layers._validation import check_fraction, check_positive_int
from mnv3_layers.architecture import block_spec
from mnv3_layers.files import save_model_atomic
from mnv3_layers.architecture.block_spec import (
    ArchitectureSpec,
    BlockSpec,
    LastStageSpec,
    StemSpec,
    block_name,
    get_architecture,
    resolve_architecture,
)
from mnv3_layers.latency.components import model_configs
from mnv3_layers.latency.table import LatencyTable, write_json_atomic
from mnv3_layers.latency.tflite import (
    TFLiteTimer,
    _batch_one,
    convert_float_tflite,
    measure_tflite,
    time_runners,
)

STATE_VERSION = 1
STEP = 8
PROPOSAL_KINDS = ("expansion", "bottleneck")
STATE_FILE = "state.json"
LOG_FILE = "search_log.jsonl"
ARCHITECTURE_FILE = "architecture.json"
MODEL_FILE = "model.keras"
RESULT_FILE = "result.json"


class SearchInterrupted(Exception):
    """Raise from `on_iteration_end` to stop a search; rerun to continue it."""


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
    """A block table with absolute widths, alpha and minimalistic applied once.

    `resolve_architecture(flatten_architecture(v, a, m))` has the same
    widths, kernels, activations and SE as `resolve_architecture(v, a, m)`,
    so the search edits absolute channel counts with `alpha=1.0`.

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


def _structure(spec):
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
    """One channel count the search may shrink.

    Attributes:
        kind: `"expansion"` (block `index`'s expanded width),
            `"last_stage"` (the last stage's 1x1 conv) or `"bottleneck"`
            (group `index` of `bottleneck_groups`).
        index: block or group index (`None` for `"last_stage"`).
    """

    kind: str
    index: object = None

    @property
    def name(self):
        return self.kind if self.index is None else f"{self.kind}[{self.index}]"


def _widths(spec, proposal):
    """Current width of the channel count `proposal` edits."""
    if proposal.kind == "expansion":
        return spec.blocks[proposal.index].exp_size
    if proposal.kind == "last_stage":
        return spec.last_stage.exp_size
    tensor = bottleneck_groups(spec)[proposal.index][0]
    return spec.stem.filters if tensor == 0 else spec.blocks[tensor - 1].filters


def apply_proposal(spec, proposal, width, structure=None):
    """`spec` with the channel count of `proposal` set to `width`.

    Returns `None` when the result would add or remove an expand
    convolution or a residual connection (compared with `structure`,
    default: `spec`'s own), so weights can be inherited one to one.
    """
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
    if _structure(new) != (structure or _structure(spec)):
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
    current = _widths(spec, proposal)
    result = []
    for width in range(current - STEP, STEP - 1, -STEP):
        new = apply_proposal(spec, proposal, width, structure)
        if new is not None:
            result.append((width, new))
    return result


def minimal_architecture(spec, kinds=PROPOSAL_KINDS):
    """The smallest table the search can reach: every proposal at its smallest valid width."""
    structure = _structure(spec)
    # Bottlenecks first: an expanded width may not equal its block's input
    # width, so narrow inputs first and expansions fit around them.
    proposals = enumerate_proposals(spec, kinds)
    proposals.sort(key=lambda p: p.kind != "bottleneck")
    for proposal in proposals:
        candidates = candidate_widths(spec, proposal, structure)
        if candidates:
            spec = candidates[-1][1]
    return spec


# === Models and weight inheritance ===


def build_classifier(spec, input_shape, num_classes, bn_momentum=0.9, dropout_rate=0.0,
                     name="netadapt_classifier"):
    """`MobileNetV3Backbone(variant=spec)` + global average pooling + softmax `Dense`.

    The backbone is the nested layer `"backbone"`, the classifier the
    `Dense` layer `"classifier"`.

    Args:
        spec: an `ArchitectureSpec` (or its dict form), used at alpha 1.0.
        input_shape: `(height, width, channels)`.
        num_classes: classifier width.
        bn_momentum: batch-norm momentum; 0.9 suits short fine-tunes.
            Defaults to `0.9`.
        dropout_rate: dropout before the classifier. Defaults to `0.0`.
        name: model name. Defaults to `"netadapt_classifier"`.

    Returns:
        A functional `keras.Model` (inputs in [0, 255]).
    """
    import keras

    from mnv3_layers.applications import MobileNetV3Backbone

    spec = get_architecture(spec)
    inputs = keras.Input(tuple(input_shape))
    backbone = MobileNetV3Backbone(
        variant=spec, input_shape=tuple(input_shape), bn_momentum=bn_momentum,
        name="backbone",
    )
    x = backbone(inputs)
    x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
    if dropout_rate:
        x = keras.layers.Dropout(dropout_rate, name="dropout")(x)
    outputs = keras.layers.Dense(num_classes, activation="softmax", name="classifier")(x)
    return keras.Model(inputs, outputs, name=name)


def _bn_axes(layer, space):
    return [(v, [space]) for v in layer.weights]


def _conv_axes(layer, kernel_axes, bias_space=None):
    pairs = [(layer.kernel, kernel_axes)]
    if getattr(layer, "bias", None) is not None:
        pairs.append((layer.bias, [bias_space]))
    return pairs


def _variable_axes(model, spec):
    """Every variable of a `build_classifier` model with the channel space of each axis."""
    arch = resolve_architecture(spec)
    group_of = {}
    for g, tensors in enumerate(bottleneck_groups(spec)):
        for t in tensors:
            group_of[t] = f"g{g}"
    backbone = model.get_layer("backbone")
    stem = group_of[0]
    pairs = _conv_axes(backbone.get_layer("conv"), [None, None, None, stem])
    pairs += _bn_axes(backbone.get_layer("conv_bn"), stem)
    for block in arch.blocks:
        layer = backbone.get_layer(block_name(block.index))
        space_in, space_out = group_of[block.index], group_of[block.index + 1]
        exp = f"e{block.index}" if block.has_expand else space_in
        if layer.expand is not None:
            pairs += _conv_axes(layer.expand, [None, None, space_in, exp])
            pairs += _bn_axes(layer.expand_bn, exp)
        pairs += _conv_axes(layer.depthwise, [None, None, exp, None])
        pairs += _bn_axes(layer.depthwise_bn, exp)
        if layer.squeeze_excite is not None:
            se = f"s{block.index}"
            pairs += _conv_axes(layer.squeeze_excite.reduce, [None, None, exp, se], se)
            pairs += _conv_axes(layer.squeeze_excite.expand, [None, None, se, exp], exp)
        pairs += _conv_axes(layer.project, [None, None, exp, space_out])
        pairs += _bn_axes(layer.project_bn, space_out)
    last_stage = backbone.get_layer("last_stage")
    last_in = group_of[len(arch.blocks)]
    pairs += _conv_axes(last_stage.conv, [None, None, last_in, "last"])
    pairs += _bn_axes(last_stage.conv_bn, "last")
    pairs += _conv_axes(model.get_layer("classifier"), ["last", None], None)
    return pairs


def inherit_weights(parent, child, parent_spec, child_spec):
    """Copies `parent`'s weights into the narrower `child` (NetAdapt-style pruning).

    Both are `build_classifier` models with the same structure (same
    expand convolutions and residuals). For each channel space (a
    bottleneck group, a block's expanded width, its SE squeeze width, the
    last stage), the channels kept are those with the largest L2 norm of the
    parent's kernels along that channel (normalized per kernel and summed
    over every kernel touching it), in their original order; every variable
    is sliced along each axis accordingly.

    Raises:
        ValueError: the two models do not have the same structure or a child
            space is wider than the parent's.
    """
    parent_spec, child_spec = get_architecture(parent_spec), get_architecture(child_spec)
    if _structure(parent_spec) != _structure(child_spec):
        raise ValueError(
            "`parent_spec` and `child_spec` must have the same expand convolutions and "
            "residual connections to inherit weights."
        )
    parent_pairs = _variable_axes(parent, parent_spec)
    child_pairs = _variable_axes(child, child_spec)
    if len(parent_pairs) != len(child_pairs):
        raise ValueError("The parent and child models have different variable lists.")
    values = [np.asarray(v.numpy() if hasattr(v, "numpy") else v) for v, _ in parent_pairs]
    importance = {}
    for value, (variable, axes) in zip(values, parent_pairs):
        if value.ndim < 2:
            continue
        for axis, space in enumerate(axes):
            if space is None:
                continue
            other = tuple(a for a in range(value.ndim) if a != axis)
            norms = np.sqrt(np.sum(np.square(value.astype(np.float64)), axis=other))
            norms = norms / (norms.mean() + 1e-12)
            importance[space] = importance.get(space, 0.0) + norms
    widths = {}
    for (cvar, axes) in child_pairs:
        for axis, space in enumerate(axes):
            if space is not None:
                widths[space] = int(cvar.shape[axis])
    keep = {}
    for space, width in widths.items():
        scores = importance.get(space)
        if scores is None:
            raise ValueError(f"No parent kernel covers channel space {space!r}.")
        if width > scores.size:
            raise ValueError(
                f"The child is wider than the parent in {space!r}: {width} > {scores.size}."
            )
        order = np.argsort(-scores, kind="stable")[:width]
        keep[space] = np.sort(order)
    for value, (cvar, axes) in zip(values, child_pairs):
        for axis, space in enumerate(axes):
            if space is not None and value.shape[axis] != cvar.shape[axis]:
                value = np.take(value, keep[space], axis=axis)
        if tuple(value.shape) != tuple(cvar.shape):
            raise ValueError(
                f"Cannot slice {tuple(value.shape)} into {tuple(cvar.shape)} ({cvar.path})."
            )
        cvar.assign(value.astype(cvar.dtype))


# === Data ===


def _is_dataset(data):
    try:
        import tensorflow as tf
    except ImportError:  # pragma: no cover
        return False
    return isinstance(data, tf.data.Dataset)


def _check_arrays(name, data):
    if not isinstance(data, (tuple, list)) or len(data) != 2:
        raise TypeError(
            f"`{name}` must be a tf.data.Dataset of (images, labels) batches or a tuple "
            f"(images, labels) of arrays. Received: {name} of type {type(data).__name__}"
        )
    x, y = np.asarray(data[0]), np.asarray(data[1])
    if x.shape[0] == 0 or y.shape[0] == 0:
        raise ValueError(
            f"`{name}` is empty: it must hold at least one image. "
            f"Received: images of shape {x.shape}, labels of shape {y.shape}"
        )
    if x.ndim != 4:
        raise ValueError(
            f"`{name}` images must be a 4D array (N, height, width, channels). "
            f"Received: shape {x.shape}"
        )
    if y.shape[0] != x.shape[0]:
        raise ValueError(
            f"`{name}` has {x.shape[0]} images but {y.shape[0]} labels."
        )
    return x.astype("float32"), y


def _first_batch(name, dataset):
    for batch in dataset.take(1):
        if not isinstance(batch, (tuple, list)) or len(batch) < 2:
            raise ValueError(
                f"`{name}` must yield (images, labels) batches. Received an element "
                f"spec {dataset.element_spec}"
            )
        return batch
    raise ValueError(f"`{name}` is empty: the dataset yields no batch. Received: {name}={dataset}")


class _Data:
    """Training and validation data, as arrays or batched datasets."""

    def __init__(self, train_data, validation_data, validation_split, batch_size, seed):
        self.batch_size = batch_size
        self.seed = seed
        if _is_dataset(train_data):
            images, labels = _first_batch("train_data", train_data)[:2]
            if validation_data is None:
                raise ValueError(
                    "`validation_data` is required when `train_data` is a tf.data.Dataset "
                    "(the search ranks proposals on held-out data). Received: "
                    "validation_data=None"
                )
            self.train = train_data
            self.train_arrays = None
            image_shape = tuple(images.shape[1:])
            label_shape = tuple(labels.shape[1:])
        else:
            x, y = _check_arrays("train_data", train_data)
            if validation_data is None:
                check_fraction("validation_split", validation_split, allow_zero=False)
                n_val = int(round(len(x) * validation_split))
                if n_val < 1 or n_val >= len(x):
                    raise ValueError(
                        f"`validation_split` leaves no training or no validation image for "
                        f"{len(x)} images. Received: validation_split={validation_split!r}"
                    )
                validation_data = (x[-n_val:], y[-n_val:])
                x, y = x[:-n_val], y[:-n_val]
            self.train_arrays = (x, y)
            self.train = None
            image_shape, label_shape = x.shape[1:], y.shape[1:]
        if _is_dataset(validation_data):
            _first_batch("validation_data", validation_data)
            self.validation = validation_data
        else:
            self.validation = _check_arrays("validation_data", validation_data)
        self.image_shape = tuple(int(d) if d is not None else None for d in image_shape)
        self.one_hot = len(label_shape) == 1 and label_shape[0] not in (None, 1)

    def infer_num_classes(self):
        if self.one_hot:
            for _, labels in self._labels():
                return int(labels.shape[-1])
        top = -1
        for labels in self._labels():
            labels = np.asarray(labels)
            if labels.size:
                top = max(top, int(labels.max()))
        return top + 1

    def _labels(self):
        if self.train_arrays is not None:
            yield self.train_arrays[1]
        else:
            for batch in self.train:
                yield np.asarray(batch[1])
        if isinstance(self.validation, tuple):
            yield self.validation[1]
        else:
            for batch in self.validation:
                yield np.asarray(batch[1])

    def training_dataset(self, seed):
        import tensorflow as tf

        if self.train is not None:
            return self.train.repeat()
        x, y = self.train_arrays
        return (
            tf.data.Dataset.from_tensor_slices((x, y))
            .shuffle(len(x), seed=seed, reshuffle_each_iteration=True)
            .batch(self.batch_size)
            .repeat()
            .prefetch(2)
        )


# === Files ===


def _save_weights_atomic(model, path):
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".weights.h5", dir=folder)
    os.close(fd)
    try:
        model.save_weights(tmp, overwrite=True)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        raise


def _save_model_atomic(model, path):
    save_model_atomic(model, path)


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"Not JSON-serializable: {type(value).__name__}")


class _Log:
    """Append-only JSON-lines log whose committed length is kept in the state."""

    def __init__(self, path, committed):
        self.path = path
        lines = []
        if os.path.exists(path):
            with open(path, encoding="utf-8") as f:
                lines = f.read().splitlines()
        lines = lines[:committed]
        write_lines = "".join(line + "\n" for line in lines)
        folder = os.path.dirname(os.path.abspath(path))
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".jsonl", dir=folder)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(write_lines)
        os.replace(tmp, path)
        self.count = len(lines)
        self.records = [json.loads(line) for line in lines]

    def write(self, record):
        line = json.dumps(record, default=_json_default, sort_keys=True)
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(line + "\n")
        self.count += 1
        self.records.append(record)


# === Result ===


@dataclasses.dataclass
class SearchResult:
    """What `netadapt_search` returns (also written to `result.json`).

    Attributes:
        spec: the searched `ArchitectureSpec`.
        model: the fine-tuned classifier (`keras.Model`).
        output_dir: the output folder; `architecture_path`, `model_path`,
            `log_path` are files in it.
        target_ms: the latency target (table clock, measured milliseconds
            when calibrated).
        floor_ms: predicted latency of the smallest reachable table.
        start_latency_ms, final_latency_ms: measured end to end (`None` when
            `calibrate=False`). With `target_ratio`, the result is timed
            interleaved with the starting model and `final_latency_ms` is
            `start_latency_ms x` their ratio, so background load that
            changed since the start does not count.
        start_predicted_ms, final_predicted_ms: calibrated table predictions.
        start_accuracy: validation accuracy of the starting model.
        search_accuracy: validation accuracy at the end of the search,
            before the final fine-tune.
        final_accuracy: validation accuracy after the final fine-tune.
        iterations: number of search iterations done.
        history: one dict per iteration (chosen proposal, latency, accuracy).
        reached: whether the target was met.
    """

    spec: object
    model: object
    output_dir: str
    architecture_path: str
    model_path: str
    log_path: str
    target_ms: float
    floor_ms: float
    start_latency_ms: object
    final_latency_ms: object
    start_predicted_ms: float
    final_predicted_ms: float
    start_accuracy: float
    search_accuracy: float
    final_accuracy: float
    iterations: int
    history: list
    reached: bool

    def summary(self):
        """The JSON-serializable fields; `architecture` (a dict) replaces `spec` and `model`."""
        fields = {
            f.name: getattr(self, f.name) for f in dataclasses.fields(self)
            if f.name not in ("spec", "model")
        }
        fields["architecture"] = architecture_to_dict(self.spec)
        return fields

    def __str__(self):
        def ms(v):
            return "n/a" if v is None else f"{v:.3f} ms"

        return (
            f"NetAdapt search ({self.iterations} iterations, target {self.target_ms:.3f} ms, "
            f"{'reached' if self.reached else 'NOT reached'}): latency "
            f"{ms(self.start_latency_ms)} -> {ms(self.final_latency_ms)} measured "
            f"({self.start_predicted_ms:.3f} -> {self.final_predicted_ms:.3f} ms predicted), "
            f"accuracy {self.start_accuracy:.4f} -> {self.final_accuracy:.4f} "
            f"(after the final fine-tune; {self.search_accuracy:.4f} before). "
            f"Architecture: {self.architecture_path}"
        )


# === Search ===


def _check_nonneg_int(name, value):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0:
        raise ValueError(f"`{name}` must be a non-negative integer. Received: {name}={value!r}")
    return int(value)


def _check_target(target_ms, target_ratio):
    if (target_ms is None) == (target_ratio is None):
        raise ValueError(
            "Pass exactly one of `target_ms` (milliseconds) and `target_ratio` (fraction "
            "of the starting model's latency). "
            f"Received: target_ms={target_ms!r}, target_ratio={target_ratio!r}"
        )
    name, value = ("target_ms", target_ms) if target_ms is not None else (
        "target_ratio", target_ratio)
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise TypeError(f"`{name}` must be a positive number. Received: {name}={value!r}")
    if value <= 0:
        raise ValueError(f"`{name}` must be a positive number. Received: {name}={value!r}")
    if name == "target_ratio" and value >= 1:
        raise ValueError(
            "`target_ratio` must be in (0, 1): a fraction of the starting model's "
            f"latency. Received: target_ratio={value!r}"
        )


class _Latency:
    """Calibrated table predictions of `build_classifier` models."""

    def __init__(self, table, input_shape, num_classes, scale=1.0):
        self.table = table
        self.input_shape = input_shape
        self.num_classes = num_classes
        self.scale = scale

    def raw(self, spec):
        configs = model_configs(spec, 1.0, False, self.input_shape, "dense", self.num_classes)
        return self.table.predict_configs(configs).total_ms

    def __call__(self, spec):
        return self.raw(spec) * self.scale

    def measure(self, model):
        stats = measure_tflite(
            model, warmup=self.table.warmup, runs=self.table.runs,
            num_threads=self.table.num_threads,
        )
        return float(stats[self._stat_key])

    @property
    def _stat_key(self):
        prefix = "cpu_" if self.table.clock == "cpu" else ""
        return f"{prefix}{self.table.statistic}_ms"

    def measure_pair(self, reference, model):
        """Both models' latency, timed interleaved (one run each per round)."""
        timers = [TFLiteTimer(convert_float_tflite(_batch_one(m)), self.table.num_threads)
                  for m in (reference, model)]
        stats = time_runners(timers, self.table.warmup, self.table.runs,
                             rounds=self.table.runs)
        return float(stats[0][self._stat_key]), float(stats[1][self._stat_key])


def _size_proposal(spec, proposal, latency, current_ms, required_ms, structure):
    """Largest candidate width cutting >= `required_ms`: `(width, spec, ms, tried)` or None."""
    candidates = candidate_widths(spec, proposal, structure)
    if not candidates:
        return None, 0
    tried = {}

    def predicted(i):
        if i not in tried:
            tried[i] = latency(candidates[i][1])
        return tried[i]

    last = len(candidates) - 1
    max_cut = current_ms - predicted(last)
    if max_cut < required_ms:
        return None, len(tried)
    # Latency is roughly linear in one width: start from the interpolated guess.
    current_width = _widths(spec, proposal)
    span = current_width - candidates[last][0]
    guess_width = current_width - span * required_ms / max_cut
    i = min(range(len(candidates)), key=lambda j: abs(candidates[j][0] - guess_width))
    if current_ms - predicted(i) >= required_ms:
        while i > 0 and current_ms - predicted(i - 1) >= required_ms:
            i -= 1
    else:
        while current_ms - predicted(i) < required_ms:
            i += 1  # Ends at `last` at the latest.
    width, new_spec = candidates[i]
    return (width, new_spec, predicted(i)), len(tried)


def netadapt_search(
    train_data,
    output_dir,
    *,
    target_ms=None,
    target_ratio=None,
    validation_data=None,
    validation_split=0.2,
    variant="small",
    alpha=1.0,
    minimalistic=False,
    num_classes=None,
    latency_table=None,
    delta_ratio=0.05,
    finetune_steps=50,
    final_finetune_steps=200,
    pretrain_steps=0,
    start_weights=None,
    batch_size=32,
    learning_rate=1e-3,
    bn_momentum=0.9,
    proposal_kinds=PROPOSAL_KINDS,
    max_iterations=50,
    calibrate=True,
    latency_tolerance=0.02,
    run_eagerly="auto",
    seed=0,
    on_iteration_end=None,
    verbose=1,
):
    """Shrinks a MobileNetV3's widths until it meets a latency target on this CPU.

    NetAdapt as used for MobileNetV3 (paper section 4.2); see the module
    docstring for the proposals, the weight inheritance, the calibration
    and the files written to `output_dir`.

    Args:
        train_data: `(images, labels)` arrays (images `(N, H, W, C)` in
            [0, 255], integer labels or one-hot) or a `tf.data.Dataset` of
            such batches.
        output_dir: folder for the results and the resumable state; rerun
            with the same folder and settings to continue an interrupted
            search.
        target_ms: latency target in milliseconds (the table's clock and
            statistic). Pass this or `target_ratio`.
        target_ratio: target as a fraction in (0, 1) of the starting
            model's latency (measured when `calibrate`, else predicted).
        validation_data: held-out data in the same form, used to rank
            proposals and report accuracy. Required for datasets; for arrays
            the last `validation_split` of `train_data` is used when `None`.
        validation_split: see above. Defaults to `0.2`.
        variant: starting table: `"large"`, `"small"`, an `ArchitectureSpec`
            or its dict form (e.g. a previous search's `architecture.json`).
            Defaults to `"small"`.
        alpha, minimalistic: applied to `variant` once
            (`flatten_architecture`). Defaults to `1.0`, `False`.
        num_classes: classifier width; inferred from the labels when `None`.
        latency_table: a `LatencyTable`, a path to its cache file, or `None`
            (`LatencyTable()` at its default path). For small inputs (say
            <= 96 px), where the whole model's weights stay in cache between
            inferences, use `cache="warm"`: the default `"mixed"` times the
            head cold and then over-rates cuts that touch the head.
        delta_ratio: each iteration cuts at least this fraction of the
            current latency (less on the last one, to land on the target).
            Defaults to `0.05`.
        finetune_steps: training steps per proposal. Defaults to `50`.
        final_finetune_steps: training steps of the result. Defaults to `200`.
        pretrain_steps: training steps of the starting model before the
            search (0 when it comes pre-trained via `start_weights`).
            Defaults to `0`.
        start_weights: a `.weights.h5` file of
            `build_classifier(starting spec, ...)` to start from, or `None`.
        batch_size: batch size for array data. Defaults to `32`.
        learning_rate: Adam learning rate of every fine-tune. Defaults to `1e-3`.
        bn_momentum: batch-norm momentum of the models. Defaults to `0.9`.
        proposal_kinds: subset of `("expansion", "bottleneck")`.
        max_iterations: stop after this many iterations. Defaults to `50`.
        calibrate: measure the starting model end to end and scale the
            table's predictions to it; also verify the result end to end.
            Defaults to `True`.
        latency_tolerance: when verifying, measured latency may exceed the
            target by this fraction. Defaults to `0.02`.
        run_eagerly: `True` / `False`: compile every model with this
            `run_eagerly`; `"auto"`: the proposals (fine-tuned only a few
            steps each, where tracing the train and test functions of a new
            model costs more than the steps) run eagerly when
            `finetune_steps <= 20`, the pre-training and final fine-tune are
            traced. Defaults to `"auto"`.
        seed: random seed. Defaults to `0`.
        on_iteration_end: optional callable receiving each iteration's
            record after the state is saved; raising (e.g.
            `SearchInterrupted`) stops the search, which a rerun continues.
        verbose: 0 (silent) or 1 (one line per proposal and iteration).

    Returns:
        A `SearchResult`.

    Raises:
        ValueError: a non-positive target, a target below the smallest
            reachable latency (the message gives that floor), empty data,
            an `output_dir` holding a search with other settings, bad
            arguments.

    Example:

    >>> from mnv3_layers.datasets import make_shapes_classification
    >>> from mnv3_layers.latency_table import LatencyTable
    >>> from mnv3_layers.search import netadapt_search
    >>> data = make_shapes_classification(600, image_size=64)
    >>> result = netadapt_search(  # doctest: +SKIP
    ...     data, "out/search", target_ratio=0.8, variant="small", alpha=0.75,
    ...     latency_table=LatencyTable("out/latency_table.json"), pretrain_steps=300)
    >>> print(result)  # doctest: +SKIP
    NetAdapt search (4 iterations, target 1.9 ms, reached): latency 2.4 ms -> 1.9 ms ...
    """
    import keras

    # === Argument checks (before any work) ===
    _check_target(target_ms, target_ratio)
    if not isinstance(output_dir, (str, os.PathLike)):
        raise TypeError(
            "`output_dir` must be a folder path. "
            f"Received: output_dir of type {type(output_dir).__name__}"
        )
    output_dir = os.fspath(output_dir)
    delta_ratio = check_fraction("delta_ratio", delta_ratio, allow_zero=False)
    finetune_steps = _check_nonneg_int("finetune_steps", finetune_steps)
    final_finetune_steps = _check_nonneg_int("final_finetune_steps", final_finetune_steps)
    pretrain_steps = _check_nonneg_int("pretrain_steps", pretrain_steps)
    batch_size = check_positive_int("batch_size", batch_size)
    max_iterations = check_positive_int("max_iterations", max_iterations)
    if isinstance(learning_rate, bool) or not isinstance(learning_rate, numbers.Real) or not (
        learning_rate > 0
    ):
        raise ValueError(
            f"`learning_rate` must be a positive number. Received: learning_rate={learning_rate!r}"
        )
    check_fraction("bn_momentum", bn_momentum)
    if isinstance(latency_tolerance, bool) or not isinstance(latency_tolerance, numbers.Real) or (
        latency_tolerance < 0
    ):
        raise ValueError(
            "`latency_tolerance` must be a number >= 0. "
            f"Received: latency_tolerance={latency_tolerance!r}"
        )
    kinds = tuple(proposal_kinds) if not isinstance(proposal_kinds, str) else (proposal_kinds,)
    if not kinds or any(k not in PROPOSAL_KINDS for k in kinds):
        raise ValueError(
            f"`proposal_kinds` must be a non-empty subset of {PROPOSAL_KINDS}. "
            f"Received: proposal_kinds={proposal_kinds!r}"
        )
    if run_eagerly not in (True, False, "auto"):
        raise ValueError(
            f"`run_eagerly` must be True, False or 'auto'. Received: run_eagerly={run_eagerly!r}"
        )
    if on_iteration_end is not None and not callable(on_iteration_end):
        raise TypeError("`on_iteration_end` must be callable or None.")
    if start_weights is not None and not os.path.isfile(os.fspath(start_weights)):
        raise FileNotFoundError(
            f"`start_weights` must be an existing .weights.h5 file. "
            f"Received: start_weights={start_weights!r}"
        )
    start_spec = flatten_architecture(variant, alpha, minimalistic)
    if latency_table is None:
        latency_table = LatencyTable()
    elif isinstance(latency_table, (str, os.PathLike)):
        latency_table = LatencyTable(latency_table)
    elif not isinstance(latency_table, LatencyTable):
        raise TypeError(
            "`latency_table` must be a LatencyTable, a path to its file or None. "
            f"Received: latency_table of type {type(latency_table).__name__}"
        )
    data = _Data(train_data, validation_data, validation_split, batch_size, seed)
    input_shape = data.image_shape
    if len(input_shape) != 3 or any(d is None for d in input_shape):
        raise ValueError(
            "The images must have a known (height, width, channels) shape. "
            f"Received: image shape {input_shape}"
        )
    if num_classes is None:
        num_classes = data.infer_num_classes()
    num_classes = check_positive_int("num_classes", num_classes)
    if num_classes < 2:
        raise ValueError(f"`num_classes` must be >= 2. Received: num_classes={num_classes!r}")

    def say(message):
        if verbose:
            print(message, flush=True)

    settings = {
        "start_architecture": architecture_to_dict(start_spec),
        "target_ms": target_ms,
        "target_ratio": target_ratio,
        "input_shape": list(input_shape),
        "num_classes": num_classes,
        "delta_ratio": delta_ratio,
        "finetune_steps": finetune_steps,
        "final_finetune_steps": final_finetune_steps,
        "pretrain_steps": pretrain_steps,
        "batch_size": batch_size,
        "learning_rate": float(learning_rate),
        "bn_momentum": float(bn_momentum),
        "proposal_kinds": list(kinds),
        "calibrate": bool(calibrate),
        "latency_tolerance": float(latency_tolerance),
        "seed": seed,
        "table_fingerprint": latency_table.fingerprint,
        "table_clock": latency_table.clock,
        "table_statistic": latency_table.statistic,
    }
    os.makedirs(output_dir, exist_ok=True)
    state_path = os.path.join(output_dir, STATE_FILE)
    state = None
    if os.path.exists(state_path):
        with open(state_path, encoding="utf-8") as f:
            state = json.load(f)
        if state.get("version") != STATE_VERSION or state.get("settings") != json.loads(
            json.dumps(settings, default=_json_default)
        ):
            raise ValueError(
                f"`output_dir` {output_dir!r} holds a search with other settings "
                f"({STATE_FILE}); use a new `output_dir` or delete it to start over. "
                f"Stored settings: {state.get('settings')!r}"
            )
    log = _Log(os.path.join(output_dir, LOG_FILE), state["log_lines"] if state else 0)
    latency = _Latency(latency_table, input_shape, num_classes)
    one_hot = data.one_hot

    def path(name):
        return os.path.join(output_dir, name)

    def compile_model(model, proposal=False):
        eager = run_eagerly if run_eagerly != "auto" else (
            proposal and finetune_steps <= 20)
        loss = (keras.losses.CategoricalCrossentropy() if one_hot
                else keras.losses.SparseCategoricalCrossentropy())
        metric = (keras.metrics.CategoricalAccuracy(name="accuracy") if one_hot
                  else keras.metrics.SparseCategoricalAccuracy(name="accuracy"))
        model.compile(
            optimizer=keras.optimizers.Adam(learning_rate), loss=loss, metrics=[metric],
            jit_compile=False, run_eagerly=eager,
        )

    def train(model, steps, train_seed):
        if steps:
            keras.utils.set_random_seed(train_seed)
            model.fit(data.training_dataset(train_seed), steps_per_epoch=steps, epochs=1,
                      shuffle=False, verbose=0)  # The dataset shuffles.

    def evaluate(model):
        if isinstance(data.validation, tuple):
            x, y = data.validation
            result = model.evaluate(x, y, batch_size=batch_size, verbose=0, return_dict=True)
        else:
            result = model.evaluate(data.validation, verbose=0, return_dict=True)
        return float(result["accuracy"])

    def build(spec, weights_path=None):
        model = build_classifier(spec, input_shape, num_classes, bn_momentum)
        if weights_path is not None:
            model.load_weights(weights_path)  # Before compiling: no optimizer state.
        compile_model(model)
        return model

    def measure_now(model):
        """Measured latency of `model` for comparison with the target.

        With `target_ratio`, the starting model is timed again, interleaved
        with `model`, and the ratio of the two is applied to the starting
        model's first measurement: on a machine with changing background
        load, the ratio is what the target means, and two measurements
        minutes apart are not comparable.
        """
        if target_ratio is None:
            return latency.measure(model), {}
        reference = build(start_spec, path("start.weights.h5"))
        start_now, model_now = latency.measure_pair(reference, model)
        del reference
        measured = state["start"]["measured_ms"] * model_now / start_now
        return measured, {"start_measured_now_ms": start_now, "measured_now_ms": model_now}

    def save_state(new_state):
        new_state["log_lines"] = log.count
        write_json_atomic(state_path, new_state)

    # === Start: starting model, calibration, target, floor ===
    if state is None:
        t0 = time.perf_counter()
        keras.utils.set_random_seed(seed)
        model = build(start_spec, start_weights)
        # Latency does not depend on the weights: calibrate and check the
        # target before spending time on training.
        raw = latency.raw(start_spec)
        measured = latency.measure(model) if calibrate else None
        scale = measured / raw if calibrate else 1.0
        latency.scale = scale
        start_ms = raw * scale
        target = target_ms if target_ms is not None else target_ratio * start_ms
        floor_spec = minimal_architecture(start_spec, kinds)
        floor_ms = latency(floor_spec)
        if target < floor_ms:
            raise ValueError(
                f"The target {target:.4f} ms is below the smallest latency this search can "
                f"reach from {start_spec.name!r} at input {input_shape}: {floor_ms:.4f} ms "
                "(every searched width at its smallest valid multiple of 8, predicted by the "
                "latency table"
                + (", calibrated" if calibrate else "")
                + f"). Received: target_ms={target_ms!r}, target_ratio={target_ratio!r}"
            )
        train(model, pretrain_steps, seed)
        accuracy = evaluate(model)
        _save_weights_atomic(model, path("start.weights.h5"))
        start = {
            "accuracy": accuracy, "measured_ms": measured, "predicted_ms": start_ms,
            "raw_predicted_ms": raw,
        }
        log.write({"event": "start", "iteration": 0, **start, "target_ms": target,
                   "floor_ms": floor_ms, "scale": scale,
                   "architecture": architecture_to_dict(start_spec),
                   "seconds": time.perf_counter() - t0})
        state = {
            "version": STATE_VERSION, "settings": settings, "phase": "search",
            "iteration": 0, "architecture": architecture_to_dict(start_spec),
            "weights": "start.weights.h5", "accuracy": accuracy, "predicted_ms": start_ms,
            "scale": scale, "target_ms": target, "floor_ms": floor_ms, "start": start,
            "history": [],
        }
        save_state(state)
        say(f"start: {start_spec.name}, accuracy {accuracy:.4f}, latency "
            f"{start_ms:.3f} ms ({'measured' if calibrate else 'predicted'}), target "
            f"{target:.3f} ms, floor {floor_ms:.3f} ms")
        del model
    latency.scale = state["scale"]
    target = state["target_ms"]
    structure = _structure(start_spec)

    # === Search iterations ===
    while state["phase"] == "search":
        spec = architecture_from_dict(state["architecture"])
        current_ms = latency(spec)
        if current_ms <= target:
            if not calibrate:
                break
            model = build(spec, path(state["weights"]))
            measured, detail = measure_now(model)
            del model
            log.write({"event": "verify", "iteration": state["iteration"],
                       "predicted_ms": current_ms, "measured_ms": measured,
                       "target_ms": target, **detail})
            say(f"verify: predicted {current_ms:.3f} ms, measured {measured:.3f} ms, "
                f"target {target:.3f} ms")
            if measured <= target * (1 + latency_tolerance):
                break
            state["scale"] = latency.scale = latency.scale * measured / current_ms
            save_state(state)
            continue
        if state["iteration"] >= max_iterations:
            warnings.warn(
                f"The search stopped after max_iterations={max_iterations} iterations at "
                f"{current_ms:.3f} ms, above the target {target:.3f} ms.",
                RuntimeWarning, stacklevel=2,
            )
            break
        iteration = state["iteration"] + 1
        t0 = time.perf_counter()
        required = max(min(delta_ratio * current_ms, current_ms - target), 1e-9)
        parent = build(spec, path(state["weights"]))
        best = None
        evaluated = 0
        for p_index, proposal in enumerate(enumerate_proposals(spec, kinds)):
            sized, measured_count = _size_proposal(
                spec, proposal, latency, current_ms, required, structure
            )
            if sized is None:
                log.write({"event": "proposal", "iteration": iteration,
                           "proposal": proposal.name, "feasible": False})
                continue
            width, new_spec, new_ms = sized
            child = build_classifier(new_spec, input_shape, num_classes, bn_momentum)
            inherit_weights(parent, child, spec, new_spec)
            compile_model(child, proposal=True)
            train(child, finetune_steps, seed + 1000 * iteration + p_index)
            accuracy = evaluate(child)
            evaluated += 1
            score = (accuracy - state["accuracy"]) / max(current_ms - new_ms, 1e-9)
            record = {
                "event": "proposal", "iteration": iteration, "proposal": proposal.name,
                "feasible": True, "from": _widths(spec, proposal), "to": width,
                "predicted_ms": new_ms, "accuracy": accuracy, "score": score,
            }
            log.write(record)
            say(f"  iteration {iteration} {proposal.name}: {record['from']} -> {width}, "
                f"{new_ms:.3f} ms, accuracy {accuracy:.4f}, score {score:+.4f}")
            if best is None or score > best[0]["score"]:
                best = (record, child, new_spec)
            del child
            gc.collect()
        del parent
        if best is None:
            warnings.warn(
                f"No proposal can cut {required:.4f} ms from {current_ms:.3f} ms; the search "
                f"stops above the target {target:.3f} ms.", RuntimeWarning, stacklevel=2,
            )
            break
        record, child, new_spec = best
        weights_name = f"iteration_{iteration}.weights.h5"
        _save_weights_atomic(child, path(weights_name))
        del child
        previous_weights = state["weights"]
        summary = {
            "event": "iteration", "iteration": iteration, "chosen": record["proposal"],
            "from": record["from"], "to": record["to"],
            "predicted_ms": record["predicted_ms"], "accuracy": record["accuracy"],
            "previous_ms": current_ms, "previous_accuracy": state["accuracy"],
            "proposals_evaluated": evaluated, "seconds": time.perf_counter() - t0,
            "architecture": architecture_to_dict(new_spec),
        }
        log.write(summary)
        state.update({
            "iteration": iteration, "architecture": architecture_to_dict(new_spec),
            "weights": weights_name, "accuracy": record["accuracy"],
            "predicted_ms": record["predicted_ms"],
        })
        state["history"].append({k: v for k, v in summary.items() if k != "architecture"})
        save_state(state)
        if previous_weights != "start.weights.h5":
            with contextlib.suppress(OSError):
                os.remove(path(previous_weights))
        say(f"iteration {iteration}: {record['proposal']} {record['from']} -> {record['to']}, "
            f"{current_ms:.3f} -> {record['predicted_ms']:.3f} ms, accuracy "
            f"{record['accuracy']:.4f} ({time.perf_counter() - t0:.0f} s)")
        gc.collect()
        if on_iteration_end is not None:
            on_iteration_end(dict(summary))

    # === Final fine-tune and outputs ===
    spec = architecture_from_dict(state["architecture"])
    if state["phase"] != "done":
        model = build(spec, path(state["weights"]))
        search_accuracy = state["accuracy"]
        train(model, final_finetune_steps, seed + 7)
        final_accuracy = evaluate(model)
        final_predicted = latency(spec)
        final_measured, final_detail = measure_now(model) if calibrate else (None, {})
        reached = (final_predicted <= target) if not calibrate else (
            final_measured <= target * (1 + latency_tolerance))
        write_json_atomic(path(ARCHITECTURE_FILE), architecture_to_dict(spec))
        _save_model_atomic(model, path(MODEL_FILE))
        result_fields = {
            "target_ms": target, "floor_ms": state["floor_ms"],
            "start_latency_ms": state["start"]["measured_ms"],
            "final_latency_ms": final_measured,
            "start_predicted_ms": state["start"]["predicted_ms"],
            "final_predicted_ms": final_predicted,
            "start_accuracy": state["start"]["accuracy"],
            "search_accuracy": search_accuracy, "final_accuracy": final_accuracy,
            "iterations": state["iteration"], "reached": bool(reached),
        }
        log.write({"event": "final", "iteration": state["iteration"], **result_fields,
                   **final_detail})
        write_json_atomic(path(RESULT_FILE), {
            **result_fields, "architecture": architecture_to_dict(spec),
            "history": state["history"],
        })
        state.update({"phase": "done", "result": result_fields})
        save_state(state)
        say(f"final: accuracy {search_accuracy:.4f} -> {final_accuracy:.4f} after "
            f"{final_finetune_steps} steps; latency {final_predicted:.3f} ms predicted"
            + (f", {final_measured:.3f} ms measured" if calibrate else ""))
    else:
        model = keras.saving.load_model(path(MODEL_FILE), compile=False)
    fields = state["result"]
    return SearchResult(
        spec=spec, model=model, output_dir=output_dir,
        architecture_path=path(ARCHITECTURE_FILE), model_path=path(MODEL_FILE),
        log_path=path(LOG_FILE), history=list(state["history"]), **fields,
    )
