"""Inspect and evaluate TFLite/LiteRT flatbuffers with the LiteRT interpreter.

`inspect_tflite(path)` reports ops, dtypes and weights; `evaluate_tflite(path,
images, labels)` runs a file on data (extra `litert`).
"""

import collections
import dataclasses
import os

import numpy as np

from mnv3_layers._validation import check_positive_int
from mnv3_layers.files import dataclass_to_json
from mnv3_layers.latency import resolve_source
from mnv3_layers.latency.tflite import is_tflite, make_interpreter, read_header

QUANTIZE_OPS = ("QUANTIZE", "DEQUANTIZE")
# Ops whose quantized weights are their input 1 (filter / weights matrix).
WEIGHT_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "TRANSPOSE_CONV")
_FLOAT_DTYPES = ("float32", "float16", "float64")
KERNELS = ("xnnpack", "reference")


# === Report ===


@dataclasses.dataclass(frozen=True)
class TFLiteReport:
    """What `inspect_tflite` found in a TFLite flatbuffer.

    Attributes:
        source, size_bytes: the file (or "flatbuffer bytes") and its size.
        op_histogram: op name -> count, e.g. `{"CONV_2D": 34, "HARD_SWISH": 19}`.
        tensor_dtypes: dtype name -> number of tensors (constants included).
        inputs, outputs: one dict per tensor: `name`, `shape`, `dtype`,
            `scale`, `zero_point` (`0.0`/`0` when not quantized).
        weights: one dict per conv/fully-connected op: `op`, `index`,
            `tensor`, `dtype`, `shape`, `channels`, `num_scales` (> 1:
            per-channel), `zero_points_all_zero`, `zero_channels`.
        float_ops: compute ops with a float input or output, as `"OP#index"`.
        stray_quantize_ops: QUANTIZE/DEQUANTIZE ops between float and integer
            not at the graph boundary, as `"OP#index"`.
        stray_quantize_pairs: DEQUANTIZE/QUANTIZE chains inside the graph (a
            float detour), as `("OP#i", "OP#j")` tuples.
        requantize_ops: int8 -> int8 QUANTIZE ops, as `"QUANTIZE#index"`.
        ops: the op names in execution order.
    """

    source: str
    size_bytes: int
    op_histogram: dict
    tensor_dtypes: dict
    inputs: tuple
    outputs: tuple
    weights: tuple
    float_ops: tuple
    stray_quantize_ops: tuple
    stray_quantize_pairs: tuple
    requantize_ops: tuple
    ops: tuple = dataclasses.field(default=(), repr=False)

    @property
    def num_ops(self):
        """Total number of ops."""
        return sum(self.op_histogram.values())

    @property
    def is_fully_int8(self):
        """No float compute op and no float detour inside the graph."""
        return not self.float_ops and not self.stray_quantize_ops

    @property
    def zeroed_weights(self):
        """The int8 weight tensors with output channels quantized to all zeros.

        Usually a tiny input range beside a large bias: the converter raises
        the weight scale until the int32 bias fits and the weights round to 0.
        """
        return tuple(w for w in self.weights if w.get("zero_channels", 0) > 0)

    @property
    def per_channel_weights(self):
        """Whether every conv weight tensor is int8 with one scale per channel."""
        convs = [w for w in self.weights if w["op"] in ("CONV_2D", "DEPTHWISE_CONV_2D")]
        return bool(convs) and all(
            w["dtype"] == "int8" and w["num_scales"] == w["channels"] and w["channels"] > 1
            or (w["dtype"] == "int8" and w["channels"] == 1)
            for w in convs
        )

    def to_dict(self):
        """The report as a JSON-serializable dict."""
        return dataclass_to_json(self)

    def __str__(self):
        lines = [f"TFLite model {self.source}: {self.size_bytes / 1024:.1f} KiB, "
                 f"{self.num_ops} ops"]
        width = max((len(name) for name in self.op_histogram), default=0)
        lines.append("  ops:")
        for name, count in sorted(self.op_histogram.items(), key=lambda kv: (-kv[1], kv[0])):
            lines.append(f"    {name:<{width}}  {count}")
        lines.append(
            "  tensor dtypes: "
            + ", ".join(f"{k} {v}" for k, v in sorted(self.tensor_dtypes.items()))
        )
        for label, tensors in (("input", self.inputs), ("output", self.outputs)):
            for t in tensors:
                quant = (f", scale {t['scale']:.6g}, zero point {t['zero_point']}"
                         if t["scale"] else "")
                lines.append(f"  {label} {t['name']!r}: {t['dtype']} {list(t['shape'])}{quant}")
        if self.weights:
            kinds = collections.Counter(
                f"{w['op']} {w['dtype']} "
                + ("per-channel" if w["num_scales"] > 1 else
                   "per-tensor" if w["num_scales"] == 1 else "not quantized")
                for w in self.weights
            )
            lines.append("  weights: " + ", ".join(f"{k} x{v}" for k, v in sorted(kinds.items())))
        zeroed = self.zeroed_weights
        if zeroed:
            lines.append(
                f"  weights with all-zero int8 channels: {len(zeroed)} tensors ("
                + ", ".join(f"{w['op']}#{w['index']} {w['zero_channels']}/{w['channels']}"
                            for w in zeroed[:6])
                + (", ..." if len(zeroed) > 6 else "") + ")"
            )
        lines.append(f"  float compute ops: {list(self.float_ops) or 'none'}")
        lines.append(f"  stray quantize/dequantize ops: {list(self.stray_quantize_ops) or 'none'}")
        if self.stray_quantize_pairs:
            lines.append(f"  stray quantize/dequantize pairs: {list(self.stray_quantize_pairs)}")
        if self.requantize_ops:
            lines.append(f"  requantize ops (int8 -> int8): {len(self.requantize_ops)}")
        return "\n".join(lines)


# === Interpreter ===


_interpreter = make_interpreter  # The one LiteRT interpreter setup (`latency.tflite`).


def _load(path_or_bytes, argument="path"):
    """(kind, path_or_content, description) of a TFLite file or flatbuffer bytes."""
    if isinstance(path_or_bytes, (str, os.PathLike)):
        path = os.fspath(path_or_bytes)
        if os.path.isfile(path) and not path.endswith(".tflite"):
            if not is_tflite(read_header(path)):
                raise ValueError(
                    f"`{argument}` must be a TFLite file (flatbuffer identifier 'TFL3'). "
                    f"Received: {argument}={path!r}"
                )
            return "tflite_path", path, f"TFLite file {os.path.basename(path)!r}"
    if not isinstance(path_or_bytes, (str, os.PathLike, bytes, bytearray, memoryview)):
        raise TypeError(
            f"`{argument}` must be a path to a `.tflite` file or TFLite flatbuffer bytes. "
            f"Received: {argument} of type {type(path_or_bytes).__name__}"
        )
    kind, obj, description = resolve_source(path_or_bytes)
    if kind == "keras_path":
        raise ValueError(
            f"`{argument}` must be a TFLite file, not a Keras file; export it first with "
            f"`export_tflite`. Received: {argument}={path_or_bytes!r}"
        )
    return kind, obj, description


def _dtype_name(dtype):
    return np.dtype(dtype).name


def _quant(detail):
    scale, zero_point = detail.get("quantization", (0.0, 0))
    return float(scale), int(zero_point)


def _tensor_summary(detail):
    scale, zero_point = _quant(detail)
    return {
        "name": detail["name"],
        "shape": tuple(int(d) for d in detail["shape"]),
        "dtype": _dtype_name(detail["dtype"]),
        "scale": scale,
        "zero_point": zero_point,
    }


# === Public API ===


def _zero_channels(interpreter, detail, dim):
    """Output channels (along `dim`) of an int8 constant that are all zero."""
    if _dtype_name(detail["dtype"]) != "int8" or len(detail["shape"]) < 2:
        return 0
    try:
        values = np.asarray(interpreter.get_tensor(detail["index"]))
    except ValueError:  # A tensor the interpreter cannot hand out.
        return 0
    if values.ndim <= dim or values.size == 0:
        return 0
    per_channel = np.moveaxis(values, dim, 0).reshape(values.shape[dim], -1)
    return int(np.sum(np.all(per_channel == 0, axis=1)))


def inspect_tflite(path):
    """Reads the ops, tensors and quantization of a TFLite flatbuffer.

    Args:
        path: a `.tflite` file, or TFLite flatbuffer bytes.

    Returns:
        A `TFLiteReport`.

    Raises:
        FileNotFoundError: `path` does not exist.
        ValueError: `path` is not a TFLite flatbuffer.
        ImportError: `ai-edge-litert` is missing (extra `litert`).

    Example:

    >>> import os, tempfile, keras
    >>> from mnv3_layers.quantization import export_tflite, inspect_tflite
    >>> inputs = keras.Input((16, 16, 3))
    >>> x = keras.layers.Conv2D(4, 3, activation="relu")(inputs)
    >>> model = keras.Model(inputs, keras.layers.GlobalAveragePooling2D()(x))
    >>> path = export_tflite(model, os.path.join(tempfile.mkdtemp(), "m.tflite"))
    >>> report = inspect_tflite(path)
    >>> report.op_histogram
    {'CONV_2D': 1, 'MEAN': 1}
    >>> report.float_ops  # a float model: every compute op is float
    ('CONV_2D#0', 'MEAN#1')
    """
    kind, obj, description = _load(path)
    if kind == "tflite_path":
        interpreter = _interpreter(model_path=obj, delegate=False)
        size = os.path.getsize(obj)
    else:
        interpreter = _interpreter(model_content=obj, delegate=False)
        size = len(obj)
        description = "(flatbuffer bytes)"
    graph = _OpGraph(interpreter)
    found = graph.scan()
    dtypes = collections.Counter(_dtype_name(d["dtype"]) for d in graph.tensors.values())
    histogram = collections.Counter(op["op_name"] for op in graph.ops)
    return TFLiteReport(
        source=description,
        size_bytes=int(size),
        op_histogram=dict(sorted(histogram.items())),
        tensor_dtypes=dict(sorted(dtypes.items())),
        inputs=tuple(_tensor_summary(d) for d in interpreter.get_input_details()),
        outputs=tuple(_tensor_summary(d) for d in interpreter.get_output_details()),
        **{key: tuple(value) for key, value in found.items()},
        ops=tuple(op["op_name"] for op in graph.ops),
    )


class _OpGraph:
    """The ops and tensors of a TFLite interpreter, with producers and consumers."""

    def __init__(self, interpreter):
        self.interpreter = interpreter
        self.tensors = {d["index"]: d for d in interpreter.get_tensor_details()}
        self.ops = interpreter._get_ops_details()  # The only op listing LiteRT exposes.
        self.input_ids = {d["index"] for d in interpreter.get_input_details()}
        self.output_ids = {d["index"] for d in interpreter.get_output_details()}
        self.produced = {}
        self.consumers = collections.defaultdict(list)
        for op in self.ops:
            for index in op["outputs"]:
                self.produced[int(index)] = op
            for index in op["inputs"]:
                if index >= 0:
                    self.consumers[int(index)].append(op)

    def dtype_of(self, index):
        return _dtype_name(self.tensors[index]["dtype"]) if index in self.tensors else None

    def is_constant(self, index):
        # Constants have data in the flatbuffer; activations are produced by
        # ops or are graph inputs.
        return index not in self.produced and index not in self.input_ids

    def scan(self):
        """The report's op lists: float ops, stray (de)quantize ops, weights."""
        found = {key: [] for key in ("weights", "float_ops", "stray_quantize_ops",
                                     "stray_quantize_pairs", "requantize_ops")}
        for op in self.ops:
            name = op["op_name"]
            in_ids = [int(i) for i in op["inputs"] if i >= 0]
            out_ids = [int(i) for i in op["outputs"] if i >= 0]
            if name in QUANTIZE_OPS:
                self.quantize_op(op, in_ids, out_ids, found)
                continue
            # A float bias or weight constant also makes the op a float op.
            if any(self.dtype_of(i) in _FLOAT_DTYPES for i in in_ids + out_ids):
                found["float_ops"].append(f"{name}#{op['index']}")
            if name in WEIGHT_OPS and len(in_ids) > 1 and self.is_constant(in_ids[1]):
                found["weights"].append(self.weight_entry(op, self.tensors[in_ids[1]]))
        return found

    def quantize_op(self, op, in_ids, out_ids, found):
        name, label = op["op_name"], f"{op['op_name']}#{op['index']}"
        src, dst = self.dtype_of(in_ids[0]), self.dtype_of(out_ids[0])
        if src not in _FLOAT_DTYPES and dst not in _FLOAT_DTYPES:
            found["requantize_ops"].append(label)
            return
        at_boundary = (
            (name == "QUANTIZE" and in_ids[0] in self.input_ids)
            or (name == "DEQUANTIZE" and out_ids[0] in self.output_ids)
        )
        if not at_boundary:
            found["stray_quantize_ops"].append(label)
        for consumer in self.consumers.get(out_ids[0], []):
            if consumer["op_name"] in QUANTIZE_OPS and consumer["op_name"] != name:
                found["stray_quantize_pairs"].append(
                    (label, f"{consumer['op_name']}#{consumer['index']}")
                )

    def weight_entry(self, op, detail):
        name = op["op_name"]
        params = detail["quantization_parameters"]
        scales = np.asarray(params["scales"])
        zero_points = np.asarray(params["zero_points"])
        dim = int(params["quantized_dimension"]) if scales.size > 1 else (
            3 if name == "DEPTHWISE_CONV_2D" else 0
        )
        return {
            "op": name,
            "index": int(op["index"]),
            "tensor": detail["name"],
            "dtype": _dtype_name(detail["dtype"]),
            "shape": tuple(int(d) for d in detail["shape"]),
            "channels": int(detail["shape"][dim]) if len(detail["shape"]) else 1,
            "num_scales": int(scales.size),
            "zero_points_all_zero": bool(np.all(zero_points == 0)),
            "zero_channels": _zero_channels(self.interpreter, detail, dim),
        }


def _iterate_batches(images, labels, batch_size):
    """Yields `(x, y_or_None)` NumPy batches from arrays or an iterable of batches."""
    if isinstance(images, np.ndarray) or (
        hasattr(images, "shape") and hasattr(images, "dtype")
        and not hasattr(images, "element_spec")
    ):
        images = np.asarray(images)
        if labels is not None:
            labels = np.asarray(labels)
            if len(labels) != len(images):
                raise ValueError(
                    "`labels` must have one entry per image. Received: "
                    f"{len(images)} images and labels of shape {labels.shape}"
                )
        for start in range(0, len(images), batch_size):
            stop = start + batch_size
            yield images[start:stop], None if labels is None else labels[start:stop]
        return
    if labels is not None:
        raise ValueError(
            "`labels` can only be given with an array of `images`; a dataset yields "
            "its own `(x, y)` batches. Received: labels of type "
            f"{type(labels).__name__} with images of type {type(images).__name__}"
        )
    try:
        iterator = iter(images)
    except TypeError:
        raise TypeError(
            "`images` must be an array of images or an iterable (e.g. tf.data.Dataset) "
            f"of `x` or `(x, y)` batches. Received: images of type {type(images).__name__}"
        ) from None
    for element in iterator:
        y = None
        if isinstance(element, (tuple, list)):
            x = element[0]
            y = element[1] if len(element) > 1 else None
        else:
            x = element
        x = np.asarray(x.numpy() if hasattr(x, "numpy") else x)
        if y is not None:
            y = np.asarray(y.numpy() if hasattr(y, "numpy") else y)
        yield x, y


def _class_ids(labels):
    labels = np.asarray(labels)
    if labels.ndim >= 2 and labels.shape[-1] > 1:
        return np.argmax(labels, axis=-1)
    return labels.reshape(labels.shape[0], -1)[:, 0].astype(np.int64)


def evaluate_tflite(path, images, labels=None, batch_size=1, num_threads=1, kernels="xnnpack"):
    """Runs a TFLite file on images with the LiteRT interpreter.

    Integer inputs are quantized and integer outputs dequantized, so the
    predictions are float, comparable with the Keras model's.

    Args:
        path: a `.tflite` file, or TFLite flatbuffer bytes.
        images: an array `(num_images, *input_shape)`, or an iterable (e.g.
            `tf.data.Dataset`) of `x` or `(x, y)` batches.
        labels: class ids or one-hot labels for an array of `images` (a
            dataset's `y` are used otherwise). Defaults to `None`.
        batch_size: images per `invoke()` for an array. Defaults to `1`.
        num_threads: interpreter threads. Defaults to `1`.
        kernels: `"xnnpack"` (LiteRT's default delegate) or `"reference"`
            (TFLite's built-in kernels). Defaults to `"xnnpack"`.

    Returns:
        The predictions `(num_images, ...)`, or `(predictions, accuracy)`
        (top-1, in [0, 1]) when labels are available.

    Raises:
        ValueError: not a TFLite file, several inputs or outputs, wrong
            image shape or label count, or an unknown `kernels`.
        ImportError: `ai-edge-litert` is missing.

    Example:

    >>> import os, tempfile, keras, numpy as np
    >>> from mnv3_layers.quantization import evaluate_tflite, export_tflite
    >>> inputs = keras.Input((8, 8, 3))
    >>> outputs = keras.layers.Dense(2, activation="softmax")(
    ...     keras.layers.GlobalAveragePooling2D()(inputs))
    >>> model = keras.Model(inputs, outputs)
    >>> path = export_tflite(model, os.path.join(tempfile.mkdtemp(), "m.tflite"))
    >>> images = np.random.default_rng(0).uniform(size=(6, 8, 8, 3)).astype("float32")
    >>> predictions, accuracy = evaluate_tflite(path, images, labels=[0, 1, 0, 1, 0, 1])
    >>> predictions.shape, bool(np.allclose(predictions, model(images), atol=1e-5))
    ((6, 2), True)
    """
    batch_size = check_positive_int("batch_size", batch_size)
    num_threads = check_positive_int("num_threads", num_threads)
    if kernels not in KERNELS:
        raise ValueError(f"`kernels` must be one of {KERNELS}. Received: kernels={kernels!r}")
    runner = _Runner(path, num_threads, delegate=kernels == "xnnpack")
    predictions, all_labels, have_labels = [], [], True
    for x, y in _iterate_batches(images, labels, batch_size):
        predictions.extend(runner.predict(x))
        if y is None:
            have_labels = False
        else:
            all_labels.append(y)
    if not predictions:
        raise ValueError("`images` is empty: nothing to evaluate.")
    predictions = np.concatenate(predictions, axis=0)
    if labels is None and (not have_labels or not all_labels):
        return predictions
    class_ids = _class_ids(np.concatenate(all_labels, axis=0))
    accuracy = float(np.mean(np.argmax(predictions.reshape(len(predictions), -1), -1)
                             == class_ids))
    return predictions, accuracy


class _Runner:
    """Runs a single-input, single-output TFLite model on float batches."""

    def __init__(self, path, num_threads, delegate):
        kind, obj, self.description = _load(path)
        if kind == "tflite_path":
            self.interpreter = _interpreter(model_path=obj, num_threads=num_threads,
                                            delegate=delegate)
        else:
            self.interpreter = _interpreter(model_content=obj, num_threads=num_threads,
                                            delegate=delegate)
        input_details = self.interpreter.get_input_details()
        output_details = self.interpreter.get_output_details()
        if len(input_details) != 1 or len(output_details) != 1:
            raise ValueError(
                f"`evaluate_tflite` runs single-input, single-output models; "
                f"{self.description} has {len(input_details)} inputs and "
                f"{len(output_details)} outputs."
            )
        self.input, self.output = input_details[0], output_details[0]
        self.in_dtype = np.dtype(self.input["dtype"])
        self.in_scale, self.in_zero = _quant(self.input)
        self.out_scale, self.out_zero = _quant(self.output)
        self.shape = tuple(int(d) for d in self.input["shape"])
        self.signature = tuple(int(d) for d in self.input.get("shape_signature", self.shape))
        # A file exported at a fixed batch size (export_tflite writes batch 1)
        # is run one fixed-size chunk at a time; a dynamic batch is resized.
        self.fixed_batch = self.shape[0] if self.signature and self.signature[0] > 0 else None
        self.allocated = None

    def predict(self, x):
        """The float predictions of batch `x`, as a list of chunks."""
        if x.ndim == len(self.shape) - 1:
            x = x[None]
        if tuple(x.shape[1:]) != self.shape[1:] and not any(d < 0 for d in self.signature[1:]):
            raise ValueError(
                "`images` must have shape (num_images, "
                f"{', '.join(map(str, self.shape[1:]))}) for {self.description}. "
                f"Received: a batch of shape {tuple(x.shape)}"
            )
        step = self.fixed_batch or x.shape[0]
        chunks = []
        for start in range(0, x.shape[0], step):
            chunk = x[start:start + step]
            if self.fixed_batch and chunk.shape[0] != self.fixed_batch:
                raise ValueError(
                    f"{self.description} has a fixed batch size of {self.fixed_batch}; the "
                    f"number of images must be a multiple of it. Received: {x.shape[0]} images"
                )
            chunks.append(self.run(chunk))
        return chunks

    def run(self, chunk):
        interpreter = self.interpreter
        if self.allocated != chunk.shape:
            if chunk.shape != self.shape or self.allocated is not None:
                interpreter.resize_tensor_input(self.input["index"], list(chunk.shape),
                                                strict=True)
            interpreter.allocate_tensors()
            self.allocated = chunk.shape
        if np.issubdtype(self.in_dtype, np.integer):
            info = np.iinfo(self.in_dtype)
            q = (np.rint(chunk.astype(np.float64) / self.in_scale + self.in_zero)
                 if self.in_scale > 0 else chunk)
            feed = np.clip(q, info.min, info.max).astype(self.in_dtype)
        else:
            feed = chunk.astype(self.in_dtype)
        interpreter.set_tensor(self.input["index"], feed)
        interpreter.invoke()
        out = interpreter.get_tensor(self.output["index"])
        if np.issubdtype(out.dtype, np.integer) and self.out_scale > 0:
            out = (out.astype(np.float32) - self.out_zero) * self.out_scale
        return np.asarray(out, dtype=np.float32).copy()
