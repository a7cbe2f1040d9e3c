"""Quantization: the Keras QAT engine, TFLite export and inspection.

Conversion checks share one small model built from this package's layers
(stem, four `InvertedResidual` blocks with and without SE / residual /
expansion, `EfficientLastStage`, a `Dense` classifier, see `qat_shared`) at
64x64: it is trained in float on generated shapes until it predicts every
class, made QAT, fine-tuned 4 steps (eagerly: tracing a QAT step costs more
than the steps), and exported to int8 once per test run (the tfmot tests
reuse all three). The application models (MobileNetV3-Small
alpha 0.35) are quantized without training for the structure checks, exported
post-training, and exported after QAT by the example's smoke run.
"""

import importlib.util
import os
import pathlib
import types
import warnings

import keras
import numpy as np
import pytest
import qat_shared
from random_weights import randomize_weights

from mnv3_layers import (
    HardSigmoid,
    HardSwish,
    InvertedResidual,
    SqueezeExcite,
)
from mnv3_layers.applications import MobileNetV3Backbone, MobileNetV3Small
from mnv3_layers.datasets import make_shapes_classification
from mnv3_layers.quantization import (
    evaluate_tflite,
    export_tflite,
    inspect_tflite,
    quantize_model,
)
from mnv3_layers.quantization import keras_engine
from mnv3_layers.quantization.keras_engine import (
    ActivationQuantizer,
    QuantActivation,
    QuantAdd,
    QuantConv,
    QuantMultiply,
)

SIZE = qat_shared.APPLICATION_SIZE
CLASSES = qat_shared.CLASSES
EXAMPLES = pathlib.Path(__file__).resolve().parent.parent / "examples"


def _small(**kwargs):
    options = dict(input_shape=(SIZE, SIZE, 3), alpha=0.35, weights=None, classes=CLASSES,
                   dropout_rate=0.0, bn_momentum=0.9)
    options.update(kwargs)
    return MobileNetV3Small(**options)


_predict = qat_shared.predict


def _files(folder):
    return sorted(os.listdir(folder))


# === Shared model, QAT copy and int8 export ===


@pytest.fixture(scope="module")
def data():
    return qat_shared.data()


@pytest.fixture(scope="module")
def small():
    """MobileNetV3-Small alpha 0.35, 32x32, untrained (structure checks)."""
    keras.utils.set_random_seed(0)
    return _small()


@pytest.fixture(scope="module")
def trained():
    """The small classifier trained in float (shared with the tfmot tests)."""
    return qat_shared.trained()


@pytest.fixture(scope="module")
def qat():
    """Its Keras-engine QAT copy after 4 steps of 32 images."""
    return qat_shared.keras_qat()


@pytest.fixture(scope="module")
def qat_export():
    """`(path, report)` of the QAT copy exported to int8 (int8 input and output)."""
    return qat_shared.keras_export()


# === Placement rules (no training, no conversion) ===


def test_qat_model_structure_follows_the_rules(small):
    qat = quantize_model(small)
    layers = {layer.name: layer for layer in qat.layers}
    # Batch norms are folded into the convolutions: none is left.
    assert not any(isinstance(l, keras.layers.BatchNormalization) for l in qat.layers)
    convs = [l for l in qat.layers if isinstance(l, QuantConv)]
    # One QAT conv per Conv2D/DepthwiseConv2D of the float model: stem 1,
    # 11 blocks (10 expand convs, 11 depthwise, 11 project), 9 SEs x 2,
    # last stage 2, logits 1.
    assert len(convs) == 1 + 10 + 11 + 11 + 18 + 2 + 1
    assert sum(c.depthwise for c in convs) == 11
    assert sum(c.batch_norm for c in convs) == 1 + 10 + 11 + 11 + 1
    # ReLU fuses into the conv; hard-swish is its own op (after a fake-quant);
    # the SE gate's +3 stays in the conv (no fake-quant before it).
    block0 = "expanded_conv"  # Small block 0: depthwise ReLU, SE.
    assert layers[f"{block0}_depthwise_activation"].activation == "relu"
    assert layers[f"{block0}_squeeze_excite_relu"].activation == "relu"
    gate = layers[f"{block0}_squeeze_excite_hard_sigmoid"]
    assert isinstance(gate, QuantConv) and gate.activation == "hard_sigmoid"
    assert gate.mid_quantizer is not None and gate.input_quantizer is None
    assert isinstance(layers[f"{block0}_squeeze_excite"], QuantMultiply)
    assert isinstance(layers["expanded_conv_3_expand_activation"], QuantActivation)
    assert layers["expanded_conv_3_expand_activation"].activation == "hard_swish"
    assert layers["expanded_conv_3_expand_bn"].activation == "linear"
    # Block outputs keep the block names (taps still work).
    assert isinstance(layers["expanded_conv_2"], QuantAdd)
    assert isinstance(layers["expanded_conv_1"], QuantConv)
    # Softmax output has TFLite's fixed range.
    assert layers["predictions"].output_quantizer.fixed_range == (0.0, 255.0 / 256.0)
    assert qat.output_shape == small.output_shape


def test_folded_conv_equals_conv_then_batch_norm(rng):
    inputs = keras.Input((8, 8, 4))
    h = keras.layers.Conv2D(6, 3, padding="same", use_bias=True)(inputs)
    h = keras.layers.BatchNormalization(epsilon=1e-3)(h)
    h = keras.layers.ReLU()(h)
    h = keras.layers.DepthwiseConv2D(3, strides=2, padding="same", depth_multiplier=2,
                                     use_bias=False)(h)
    h = keras.layers.BatchNormalization()(h)
    model = keras.Model(inputs, h)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            n = layer.gamma.shape[0]
            layer.set_weights([rng.uniform(0.5, 2, n), rng.normal(size=n),
                               rng.normal(size=n), rng.uniform(0.2, 3, n)])
    qat = quantize_model(model)
    convs = [l for l in qat.layers if isinstance(l, QuantConv)]
    assert [c.activation for c in convs] == ["relu", "linear"]
    x = rng.normal(size=(2, 8, 8, 4)).astype("float32")
    # The folded float kernel and bias reproduce conv -> BN exactly.
    y = keras.ops.convert_to_tensor(x)
    for conv, (src, bn) in zip(convs, [(model.layers[1], model.layers[2]),
                                       (model.layers[4], model.layers[5])]):
        kernel, bias = conv.folded_kernel_and_bias()
        op = keras.ops.depthwise_conv if conv.depthwise else keras.ops.conv
        folded = op(y, kernel, strides=conv.strides, padding=conv.padding) + bias
        expected = bn(src(y), training=False)
        np.testing.assert_allclose(np.asarray(folded), np.asarray(expected),
                                   rtol=1e-4, atol=1e-4)
        y = keras.ops.relu(expected) if conv.activation == "relu" else expected


def test_fake_quant_weights_per_channel_symmetric():
    kernel = np.stack([np.linspace(-1, 1, 9), np.linspace(-0.01, 0.02, 9)], -1)
    kernel = kernel.reshape(1, 1, 9, 2).astype("float32")
    q = np.asarray(keras_engine.fake_quant_weights(kernel, per_channel=True))
    for c in range(2):
        scale = np.abs(kernel[..., c]).max() / 127.0
        levels = q[..., c] / scale
        np.testing.assert_allclose(levels, np.round(levels), atol=1e-3)
        assert np.abs(levels).max() <= 127.0 + 1e-3
        np.testing.assert_allclose(q[..., c], kernel[..., c], atol=scale / 2 + 1e-7)


def test_activation_quantizer_moving_average_range():
    quantizer = ActivationQuantizer(momentum=0.5)
    quantizer(np.array([[-1.0, 3.0]], "float32"), training=True)
    assert quantizer.get_range() == pytest.approx((-1.0, 3.0))
    quantizer(np.array([[1.0, 1.0]], "float32"), training=True)  # range includes 0
    assert quantizer.get_range() == pytest.approx((-0.5, 2.0))
    assert keras_engine.ranges_initialized(quantizer)
    fresh = ActivationQuantizer()
    fresh.build((None, 2))
    assert not keras_engine.ranges_initialized(fresh)
    # At inference the stored range quantizes (8 bits over [-0.5, 2.0]).
    y = np.asarray(quantizer(np.array([[0.3, 5.0]], "float32"), training=False))
    scale = 2.5 / 255.0
    assert y[0, 1] == pytest.approx(2.0, abs=scale)
    assert abs(y[0, 0] / scale - round(y[0, 0] / scale)) < 1e-3


def test_users_own_functional_model_and_backbone_models():
    inputs = keras.Input((32, 32, 3))
    x = keras.layers.Rescaling(1 / 255.0)(inputs)
    x = keras.layers.Conv2D(16, 3, strides=2, padding="same", use_bias=False)(x)
    x = keras.layers.BatchNormalization()(x)
    x = HardSwish()(x)
    x = InvertedResidual(16, expansion=3, se_ratio=0.25, activation="hard_swish")(x)
    x = SqueezeExcite()(x)
    x = keras.layers.Conv2D(16, 1, activation="relu")(x)
    x = keras.layers.MaxPooling2D()(x)
    x = HardSigmoid()(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    x = keras.layers.Dropout(0.1)(x)
    x = keras.layers.Dense(8, activation="relu")(x)
    outputs = keras.layers.Dense(4, activation="softmax")(x)
    model = keras.Model(inputs, outputs)
    qat = quantize_model(model)
    assert qat.output_shape == (None, 4)
    kinds = [type(l).__name__ for l in qat.layers]
    assert kinds.count("QuantDense") == 2
    assert "MaxPooling2D" in kinds and "Dropout" in kinds

    backbone = MobileNetV3Backbone("small", alpha=0.35, input_shape=(32, 32, 3))
    head = keras.layers.GlobalAveragePooling2D()(backbone.output)
    classifier = keras.Model(backbone.input, keras.layers.Dense(2)(head))
    qat = quantize_model(classifier)
    assert qat.output_shape == (None, 2)
    # The backbone's tap names still name layers of the QAT model.
    names = {layer.name for layer in qat.layers}
    assert set(backbone.pyramid_level_inputs.values()) <= names
    nested = keras.Sequential([backbone, keras.layers.GlobalAveragePooling2D(),
                               keras.layers.Dense(2)])
    assert quantize_model(nested).output_shape == (None, 2)


# === Bad input ===


def test_elementwise_hard_swish_option_is_recorded_and_validated(small):
    qat = quantize_model(small, hard_swish="elementwise")
    forms = {l.name: (l.activation, l.hard_swish) for l in qat.layers
             if isinstance(l, keras_engine._QuantLayer)}
    # Only the hard-swish layers change form; every other layer keeps "op".
    hard_swish_layers = [n for n, (a, _) in forms.items() if a == "hard_swish"]
    assert len(hard_swish_layers) == 19  # Small: stem, 8 blocks x 2, last stage x 2
    assert all(forms[n][1] == "elementwise" for n in hard_swish_layers)
    assert all(f == "op" for a, f in forms.values() if a != "hard_swish")
    # No new variables: the element-wise form's intermediate ranges are fixed.
    default = quantize_model(small)
    assert [w.shape for w in qat.weights] == [w.shape for w in default.weights]
    layer = qat.get_layer("expanded_conv_3_expand_activation")
    assert type(layer).from_config(layer.get_config()).hard_swish == "elementwise"
    x = np.random.default_rng(0).uniform(-5.0, 5.0, (2, 8, 8, 4)).astype("float32")
    op = QuantActivation(activation="hard_swish", hard_swish="op")
    elementwise = QuantActivation(activation="hard_swish", hard_swish="elementwise")
    op(x, training=True)
    elementwise(x, training=True)
    # The same function up to the fixed [0, 1] quantization of the gate (steps of 1/255).
    step = (np.max(x) - np.min(x)) / 255
    diff = np.abs(np.asarray(op(x)) - np.asarray(elementwise(x)))
    assert diff.max() <= step + 5.0 * 0.5 / 255 + 1e-6
    with pytest.raises(ValueError, match=r"`hard_swish` must be one of \('op', "
                                         r"'elementwise'\). Received: hard_swish='fused'"):
        quantize_model(small, hard_swish="fused")
    with pytest.raises(ValueError, match=r"Received: hard_swish=None"):
        quantize_model(small, hard_swish=None)


def test_bad_engine_and_unsupported_layers(small):
    with pytest.raises(ValueError, match=r"`engine` must be one of .*engine='tflite'"):
        quantize_model(small, engine="tflite")
    inputs = keras.Input((16, 16, 3))
    x = keras.layers.Conv2D(4, 3)(inputs)
    x = keras.layers.LayerNormalization(name="my_norm")(x)
    with pytest.raises(ValueError, match=r"'my_norm' \(LayerNormalization\).*Supported layers"):
        quantize_model(keras.Model(inputs, x))
    x = keras.layers.Conv2D(4, 3, activation="gelu", name="gelu_conv")(inputs)
    with pytest.raises(ValueError, match=r"'gelu_conv'.*activation 'gelu'"):
        quantize_model(keras.Model(inputs, x))
    x = keras.layers.BatchNormalization(name="lonely_bn")(inputs)
    with pytest.raises(ValueError, match=r"'lonely_bn'.*must directly follow a Conv2D"):
        quantize_model(keras.Model(inputs, x))
    shared = keras.layers.Conv2D(3, 1, padding="same", name="shared")
    with pytest.raises(ValueError, match=r"'shared'.*more than once"):
        quantize_model(keras.Model(inputs, shared(shared(inputs))))
    with pytest.raises(TypeError, match="`model` must be a Keras 3"):
        quantize_model("model.keras")
    with pytest.raises(ValueError, match="range_momentum"):
        quantize_model(small, range_momentum=1.5)


def test_export_refuses_bad_arguments_before_converting(small, tmp_path, data):
    x = data[0][:4]
    path = tmp_path / "m.tflite"
    with pytest.raises(ValueError, match=r"Did you mean 'int8'\?.*quantization='int-8'"):
        export_tflite(small, path, quantization="int-8")
    with pytest.raises(ValueError, match=r"Did you mean 'dynamic'"):
        export_tflite(small, path, quantization="dynamc")
    with pytest.raises(ValueError, match=r"`path` must end in '.tflite'"):
        export_tflite(small, tmp_path / "m.tfl")
    with pytest.raises(ValueError, match="folder of `path` does not exist"):
        export_tflite(small, tmp_path / "missing" / "m.tflite")
    with pytest.raises(ValueError, match="`representative_data`.*Received: representative_data"):
        export_tflite(small, path, quantization="int8")
    with pytest.raises(ValueError, match=r"`representative_data` as an array must have shape "
                                         r"\(num_samples, 32, 32, 3\).*\(4, 64, 64, 3\)"):
        export_tflite(small, path, quantization="int8",
                      representative_data=np.zeros((4, 64, 64, 3), "float32"))

    def wrong_generator():
        yield [np.zeros((1, 16, 16, 3), "float32")]

    with pytest.raises(ValueError, match="`representative_data` must hold model inputs"):
        export_tflite(small, path, quantization="int8",
                      representative_data=wrong_generator)
    with pytest.raises(ValueError, match="`representative_data` is empty"):
        export_tflite(small, path, quantization="int8", representative_data=[])
    with pytest.raises(ValueError, match="only used with quantization='int8'"):
        export_tflite(small, path, quantization="dynamic", representative_data=x)
    with pytest.raises(ValueError, match="`int8_io=True` needs"):
        export_tflite(small, path, int8_io=True)
    with pytest.raises(TypeError, match="`model` must be a Keras 3"):
        export_tflite(object(), path)
    assert _files(tmp_path) == []


def test_export_refuses_untrained_qat_model(small, tmp_path):
    qat = quantize_model(small)
    path = tmp_path / "qat.tflite"
    with pytest.raises(ValueError, match="never trained"):
        export_tflite(qat, path, quantization="int8")
    with pytest.raises(ValueError, match="export it with quantization='int8'"):
        export_tflite(qat, path, quantization="dynamic")
    assert _files(tmp_path) == []


# === QAT -> int8 export (slow: training and conversion) ===


@pytest.mark.slow
def test_int8_export_is_fully_integer(qat_export):
    path, report = qat_export
    assert report.float_ops == ()
    assert report.stray_quantize_ops == () and report.stray_quantize_pairs == ()
    assert report.requantize_ops == ()
    # One op per MobileNetV3 op: hard-swish is one HARD_SWISH (stem, last
    # block's expand and depthwise, last stage x2); the SE gate leaves no ADD
    # (+3 folds into the conv bias): ADDs are the 2 residuals + the rescaling
    # offset; MULs are 2 per SE (x 1/6, scaling) + the rescaling scale.
    assert report.op_histogram == {
        "ADD": 3, "CONV_2D": 14, "DEPTHWISE_CONV_2D": 4, "FULLY_CONNECTED": 1,
        "HARD_SWISH": 5, "MEAN": 3, "MUL": 5, "SOFTMAX": 1,
    }
    # Conv weights: int8, one scale per output channel, zero points 0; the
    # dense layer: int8, one scale.
    convs = [w for w in report.weights if w["op"] in ("CONV_2D", "DEPTHWISE_CONV_2D")]
    assert len(convs) == 18
    assert all(w["dtype"] == "int8" and w["num_scales"] == w["channels"] > 1
               and w["zero_points_all_zero"] for w in convs)
    (dense,) = [w for w in report.weights if w["op"] == "FULLY_CONNECTED"]
    assert dense["dtype"] == "int8" and dense["num_scales"] == 1
    assert report.per_channel_weights and report.is_fully_int8
    assert report.zeroed_weights == ()  # no channel lost to the int32 bias constraint
    assert all(w["zero_channels"] == 0 for w in report.weights)
    assert report.inputs[0]["dtype"] == "int8" and report.outputs[0]["dtype"] == "int8"
    assert report.outputs[0]["scale"] == pytest.approx(1 / 256)
    assert report.outputs[0]["zero_point"] == -128
    assert "HARD_SWISH" in str(report)


def test_int8_export_warns_about_weight_channels_quantized_to_zero(tmp_path):
    # A conv whose input range is tiny (1e-7 x the input) next to its bias
    # (50): to fit the int32 bias (scale = input scale x weight scale) the
    # converter raises the weight scale until every weight rounds to zero.
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.ReLU()(keras.layers.Conv2D(4, 1, name="tiny")(inputs))
    x = keras.layers.Conv2D(6, 1, name="big_bias")(x)
    model = keras.Model(inputs, keras.layers.GlobalAveragePooling2D()(x))
    rng = np.random.default_rng(0)
    model.get_layer("tiny").set_weights([np.full((1, 1, 3, 4), 1e-7, "float32"),
                                         np.zeros(4, "float32")])
    model.get_layer("big_bias").set_weights([
        rng.normal(size=(1, 1, 4, 6)).astype("float32"), np.full(6, 50.0, "float32")])
    path = tmp_path / "zeroed.tflite"
    with pytest.warns(UserWarning, match=r"1 weight tensor\(s\) with output channels whose "
                                         r"int8 weights are all zero: CONV_2D#\d+ .*6/6"):
        export_tflite(model, path, quantization="int8",
                      representative_data=rng.uniform(0, 1, (8, 8, 8, 3)).astype("float32"))
    assert path.is_file()  # a warning, not a refusal: the file is written
    report = inspect_tflite(path)
    (zeroed,) = report.zeroed_weights
    assert (zeroed["zero_channels"], zeroed["channels"]) == (6, 6)
    (healthy,) = [w for w in report.weights if w is not zeroed]
    assert healthy["zero_channels"] == 0 and healthy["channels"] == 4
    assert "weights with all-zero int8 channels: 1 tensors" in str(report)


@pytest.mark.slow
def test_qat_and_int8_export_agree(qat, qat_export):
    qat_shared.check_qat_int8_agreement(qat, qat_export[0], "Keras")


@pytest.mark.slow
def test_default_int8_export_leaves_hard_swish_outside_xnnpack(qat_export):
    # LiteRT's XNNPACK delegate does not take an int8 HARD_SWISH: each one
    # runs on TFLite's own kernel and splits the graph (5 of them here).
    partitions, undelegated = qat_shared.xnnpack_partitions(qat_export[0])
    assert undelegated == ["HARD_SWISH"] * 5, (
        f"undelegated ops {undelegated}: if this LiteRT now runs int8 HARD_SWISH in XNNPACK, "
        "update the README, the engine docstrings and the `hard_swish` advice")
    assert partitions >= 2


@pytest.mark.slow
def test_elementwise_hard_swish_export_runs_in_one_xnnpack_partition(qat, qat_export, tmp_path):
    qat_elementwise = qat_shared.keras_qat_elementwise()
    path, report = qat_shared.keras_export_elementwise()
    assert report.float_ops == ()
    assert report.stray_quantize_ops == () and report.stray_quantize_pairs == ()
    assert report.requantize_ops == ()
    assert report.is_fully_int8 and report.per_channel_weights
    # Each of the 5 HARD_SWISH ops becomes ADD (+3, fused ReLU6), MUL (x 1/6), MUL (x).
    expected = dict(qat_export[1].op_histogram)
    del expected["HARD_SWISH"]
    expected["ADD"] += 5
    expected["MUL"] += 10
    assert report.op_histogram == expected
    assert qat_shared.xnnpack_partitions(path) == (1, [])
    # Same trained weights and ranges: the two QAT models predict the same
    # classes (the gate's [0, 1] range adds at most half a step of 1/255).
    x, _ = qat_shared.agreement_data()
    assert qat_shared.top1_agreement(_predict(qat, x), _predict(qat_elementwise, x)) >= 0.99
    qat_shared.check_qat_int8_agreement(qat_elementwise, path, "Keras (element-wise hard-swish)")
    # The option survives .keras saving.
    saved = tmp_path / "qat_elementwise.keras"
    qat_elementwise.save(saved)
    loaded = keras.saving.load_model(saved)
    np.testing.assert_array_equal(_predict(qat_elementwise, x[:16]), _predict(loaded, x[:16]))


@pytest.mark.slow
def test_qat_model_keras_round_trip(qat, data, tmp_path):
    path = tmp_path / "qat.keras"
    qat.save(path)
    loaded = keras.saving.load_model(path)
    x = data[2][:16]
    np.testing.assert_array_equal(_predict(qat, x), _predict(loaded, x))
    assert [type(l).__name__ for l in loaded.layers] == [type(l).__name__ for l in qat.layers]
    # The learned ranges are saved too: the loaded model exports as it is.
    from mnv3_layers.quantization.export import qat_state

    assert qat_state(loaded) == {"engine": "keras", "untrained": []}


@pytest.mark.slow
def test_post_training_int8_and_dynamic(small, trained, data, tmp_path):
    x, _, x_test, y_test = data
    # The application model takes smaller images than the shared classifier.
    x_small = make_shapes_classification(32, image_size=SIZE, seed=3)[0]
    # Untrained weights: the SE squeeze vectors of late blocks are tiny next to
    # the gate's +3 bias, so the converter zeroes those gate convolutions
    # (int32 bias constraint) - the export says so and still writes the file.
    with pytest.warns(UserWarning, match="int8 weights are all zero"):
        path = export_tflite(small, tmp_path / "ptq.tflite", quantization="int8",
                             representative_data=x_small[:16])
    report = inspect_tflite(path)
    assert report.is_fully_int8 and report.per_channel_weights
    assert report.zeroed_weights
    assert all("squeeze_excite" in w["tensor"] and "expand" in w["tensor"]
               and w["zero_channels"] == w["channels"] for w in report.zeroed_weights)
    assert report.op_histogram["HARD_SWISH"] == 19
    # Float input/output: one QUANTIZE at the input, one DEQUANTIZE at the output.
    assert report.op_histogram["QUANTIZE"] == 1 and report.op_histogram["DEQUANTIZE"] == 1
    probs = evaluate_tflite(path, x_small[16:])
    assert probs.shape == (16, CLASSES)
    np.testing.assert_allclose(probs.sum(-1), 1.0, atol=0.05)
    # Dynamic range of the trained model: int8 weights, float activations,
    # same predictions as the float model.
    dynamic_path = export_tflite(trained, tmp_path / "dyn.tflite", quantization="dynamic")
    dynamic = inspect_tflite(dynamic_path)
    # (The converter keeps weights under 1024 values in float.)
    large = [w for w in dynamic.weights if np.prod(w["shape"]) >= 1024]
    assert dynamic.float_ops and large and all(w["dtype"] == "int8" for w in large)
    dynamic_probs, _ = evaluate_tflite(dynamic_path, x_test, y_test, batch_size=8)
    agreement = np.mean(dynamic_probs.argmax(-1) == _predict(trained, x_test).argmax(-1))
    assert agreement >= 0.97
    # Post-training int8 of the trained model loses no channel and agrees
    # with the float model.
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*int8 weights are all zero")
        trained_path = export_tflite(trained, tmp_path / "ptq_trained.tflite",
                                     quantization="int8", representative_data=x[:64])
    assert inspect_tflite(trained_path).zeroed_weights == ()
    ptq_probs, _ = evaluate_tflite(trained_path, x_test, y_test, batch_size=8)
    agreement = np.mean(ptq_probs.argmax(-1) == _predict(trained, x_test).argmax(-1))
    assert agreement >= 0.95, agreement
    assert _files(tmp_path) == ["dyn.tflite", "ptq.tflite", "ptq_trained.tflite"]


# === Example ===


@pytest.mark.slow
def test_qat_example_smoke(tmp_path):
    spec = importlib.util.spec_from_file_location("qat_int8", EXAMPLES / "qat_int8.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    report = module.main(["--smoke", "--output", str(tmp_path)])
    rows = {row["model"]: row for row in report["rows"]}
    assert set(rows) == {"float", "tflite_float", "qat", "tflite_int8"}
    assert all(0.0 <= row["accuracy"] <= 1.0 for row in rows.values())
    # The float model and its float TFLite file predict the same classes.
    assert report["float_tflite_agreement"] >= 0.95
    assert rows["tflite_int8"]["size_bytes"] < 0.5 * rows["tflite_float"]["size_bytes"]
    assert rows["tflite_int8"]["latency_ms"] > 0
    # The QAT MobileNetV3-Small export is fully int8 with one op per
    # MobileNetV3 op: HARD_SWISH 19 (stem, 8 blocks x 2, last stage x 2), ADD
    # 7 residuals + the rescaling offset (no hard-sigmoid +3 left), MUL 2 per
    # SE (9) + the rescaling scale, per-channel int8 conv weights.
    int8 = report["int8_report"]
    assert int8["float_ops"] == [] and int8["stray_quantize_ops"] == []
    histogram = int8["op_histogram"]
    assert histogram["HARD_SWISH"] == 19 and histogram["ADD"] == 8 and histogram["MUL"] == 19
    assert histogram["CONV_2D"] == 1 + 10 + 11 + 18 + 2 + 1
    assert histogram["DEPTHWISE_CONV_2D"] == 11
    assert set(histogram) <= {"CONV_2D", "DEPTHWISE_CONV_2D", "HARD_SWISH", "MUL", "ADD",
                              "MEAN", "RESHAPE", "SOFTMAX"}
    convs = [w for w in int8["weights"] if w["op"] in ("CONV_2D", "DEPTHWISE_CONV_2D")]
    assert all(w["dtype"] == "int8" and w["num_scales"] == w["channels"] for w in convs)
    assert (tmp_path / "model_int8.tflite").is_file()
    assert (tmp_path / "report.json").is_file()


@pytest.mark.slow
def test_qat_example_smoke_with_elementwise_hard_swish(tmp_path):
    spec = importlib.util.spec_from_file_location("qat_int8", EXAMPLES / "qat_int8.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    report = module.main(["--smoke", "--hard-swish", "elementwise", "--output", str(tmp_path)])
    assert report["hard_swish"] == "elementwise"
    int8 = report["int8_report"]
    assert int8["float_ops"] == [] and int8["stray_quantize_ops"] == []
    # The 19 HARD_SWISH ops become ADD (+3, fused ReLU6), MUL (x 1/6), MUL (x).
    histogram = int8["op_histogram"]
    assert "HARD_SWISH" not in histogram
    assert histogram["ADD"] == 8 + 19 and histogram["MUL"] == 19 + 2 * 19
    assert qat_shared.xnnpack_partitions(tmp_path / "model_int8.tflite") == (1, [])


# === Detection and segmentation heads (slow: conversion) ===


def _litert_outputs(path, x):
    """Runs an int8-io TFLite file on float images, one at a time; dequantized outputs by name."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(path))
    interpreter.allocate_tensors()
    (inp,) = interpreter.get_input_details()
    scale, zero = inp["quantization"]
    results = {}
    for image in x:
        q = np.clip(np.rint(image / scale + zero), -128, 127).astype(np.int8)[None]
        interpreter.set_tensor(inp["index"], q)
        interpreter.invoke()
        for out in interpreter.get_output_details():
            o_scale, o_zero = out["quantization"]
            value = (interpreter.get_tensor(out["index"]).astype(np.float32) - o_zero) * o_scale
            results.setdefault(tuple(out["shape"][1:]), []).append(value[0])
    return {shape: np.stack(values) for shape, values in results.items()}


def _count_hard_swish(model):
    return sum(isinstance(layer, HardSwish)
               for layer in model._flatten_layers(include_self=False, recursive=True))


@pytest.mark.slow
def test_ssdlite_qat_to_int8(tmp_path):
    from mnv3_layers.applications.ssdlite import SSDLite
    from mnv3_layers.datasets import make_shapes_detection

    keras.utils.set_random_seed(0)
    ssd = SSDLite.from_variant("small", input_shape=(64, 64, 3), alpha=0.35, num_classes=3,
                               bounding_box_format="xyxy")
    # Random weights with O(1) activations everywhere: a freshly initialized
    # detector's deep features are ~1e-6, which int8 cannot represent next to
    # the class-prior bias (-4.6) of the predictors (the int32 bias overflows).
    leaves = [layer for layer in ssd._flatten_layers(include_self=False, recursive=True)
              if not list(layer._flatten_layers(include_self=False, recursive=False))]
    randomize_weights(types.SimpleNamespace(layers=leaves), np.random.default_rng(7))
    qat = quantize_model(ssd, engine="keras")
    assert set(qat.output) == {"box", "classification"}
    assert qat.output["classification"].shape == (None, ssd.num_anchors, 3)
    # Every convolution of the detector (backbone, extra layers, predictors)
    # is one QAT conv; batch norms are folded.
    float_convs = [l for l in ssd._flatten_layers(include_self=False, recursive=True)
                   if isinstance(l, (keras.layers.Conv2D, keras.layers.DepthwiseConv2D))]
    assert sum(isinstance(l, QuantConv) for l in qat.layers) == len(float_convs)
    # A short QAT run on the detector's own training targets.
    images, labels = make_shapes_detection(16, image_size=64, seed=5)
    box_targets, class_targets = ssd.encode_labels(labels)
    class_targets = np.asarray(class_targets)
    one_hot = np.eye(3, dtype="float32")[np.maximum(class_targets, 0).astype(int)]
    one_hot *= (class_targets >= 0)[..., None]
    qat.compile(optimizer=keras.optimizers.Adam(1e-3),
                loss={"box": keras.losses.Huber(),
                      "classification": keras.losses.BinaryCrossentropy(from_logits=True)},
                jit_compile=False, run_eagerly=True)
    qat.fit(images, {"box": np.asarray(box_targets), "classification": one_hot},
            batch_size=8, epochs=1, verbose=0)
    path = export_tflite(qat, tmp_path / "ssd_int8.tflite", quantization="int8",
                         int8_io=True)
    report = inspect_tflite(path)
    assert report.float_ops == () and report.stray_quantize_ops == ()
    assert report.stray_quantize_pairs == () and report.is_fully_int8
    assert report.per_channel_weights
    histogram = report.op_histogram
    assert histogram["HARD_SWISH"] == _count_hard_swish(ssd.backbone)
    assert histogram["CONV_2D"] + histogram["DEPTHWISE_CONV_2D"] == len(float_convs)
    # The only QUANTIZE ops are int8 -> int8 rescales of the per-level
    # outputs into the two concatenations (TFLite's CONCATENATION wants one
    # scale); no float tensor anywhere.
    assert histogram.get("QUANTIZE", 0) == len(report.requantize_ops)
    assert len(report.requantize_ops) <= 2 * len(ssd.levels)
    assert histogram["CONCATENATION"] == 2 and "DEQUANTIZE" not in histogram
    # The int8 file computes what the QAT model computes.
    x = images[:4]
    tflite = _litert_outputs(path, x)
    expected = qat(x, training=False)
    class_scale = report.outputs[[o["shape"][-1] for o in report.outputs].index(3)]["scale"]
    got = tflite[(ssd.num_anchors, 3)]
    diff = np.abs(got - np.asarray(expected["classification"]))
    assert diff.mean() < 2 * class_scale, (diff.mean(), class_scale)


@pytest.mark.slow
def test_lraspp_segmenter_qat_to_int8(tmp_path):
    from mnv3_layers.applications.lraspp import LRASPPSegmenter
    from mnv3_layers.datasets import make_shapes_segmentation

    keras.utils.set_random_seed(0)
    backbone = MobileNetV3Backbone("small", alpha=0.35, input_shape=(64, 64, 3),
                                   output_stride=16, reduced_tail=True)
    segmenter = LRASPPSegmenter(num_classes=4, backbone=backbone, filters=16)
    qat = quantize_model(segmenter, engine="keras")
    assert qat.output_shape == (None, 64, 64, 4)
    names = {layer.name: layer for layer in qat.layers}
    # The head: ReLU fused into the main conv, the sigmoid gate a LOGISTIC
    # with TFLite's fixed range, the resizes keep their input's scale.
    assert names["lraspp_head_main_relu"].activation == "relu"
    gate = names["lraspp_head_gate_activation"]
    assert gate.activation == "sigmoid"
    assert gate.output_quantizer.fixed_range == (0.0, 255.0 / 256.0)
    assert isinstance(names["lraspp_head_gate_multiply"], QuantMultiply)
    assert isinstance(names["lraspp_head"], QuantAdd)
    images, masks = make_shapes_segmentation(16, image_size=64, seed=6)
    qat.compile(optimizer=keras.optimizers.Adam(1e-3),
                loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                jit_compile=False, run_eagerly=True)
    qat.fit(images, masks, batch_size=8, epochs=1, verbose=0)
    path = export_tflite(qat, tmp_path / "seg_int8.tflite", quantization="int8",
                         int8_io=True)
    report = inspect_tflite(path)
    assert report.float_ops == () and report.stray_quantize_ops == ()
    assert report.stray_quantize_pairs == () and report.requantize_ops == ()
    assert report.is_fully_int8 and report.per_channel_weights
    histogram = report.op_histogram
    assert histogram["HARD_SWISH"] == _count_hard_swish(backbone)
    assert histogram["LOGISTIC"] == 1 and histogram["RESIZE_BILINEAR"] == 2
    assert "QUANTIZE" not in histogram and "DEQUANTIZE" not in histogram
    x = images[:4]
    got = evaluate_tflite(path, x)
    expected = _predict(qat, x)
    assert got.shape == expected.shape == (4, 64, 64, 4)
    scale = report.outputs[0]["scale"]
    assert np.abs(got - expected).mean() < 2 * scale, (np.abs(got - expected).mean(), scale)
    # Pixel classes agree where the QAT model is not on a tie.
    agreement = np.mean(got.argmax(-1) == expected.argmax(-1))
    assert agreement >= 0.95, agreement
