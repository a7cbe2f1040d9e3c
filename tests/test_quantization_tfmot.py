"""The tfmot QAT engine: tf_keras twin, QuantizeConfigs, checkpoints, int8 export.

Conversion checks share one small classifier built from this package's
layers (stem, four `InvertedResidual` blocks with and without SE / residual /
expansion / hard-swish, `EfficientLastStage`, a `Dense` softmax head, so
every MobileNetV3 op type is there) at 64x64, trained in float on generated
shapes until it predicts every class, made QAT with the tfmot engine,
fine-tuned four steps (eagerly: tracing a tfmot QAT step costs far more than
running a few) and exported to int8 once. The float model and the Keras
engine's QAT export (same four steps) come from `qat_shared`, shared with
tests/test_quantization.py, for the cross-engine checks. The
applications are checked through their twins (float outputs) and the QAT
structure of MobileNetV3-Small.
"""

import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import qat_shared
from random_weights import randomize_weights

from mnv3_layers import HardSwish, InvertedResidual, SqueezeExcite
from mnv3_layers.applications import MobileNetV3Backbone, MobileNetV3Large, MobileNetV3Small
from mnv3_layers.quantization import (
    evaluate_tflite,
    export_tflite,
    inspect_tflite,
    quantize_model,
)
from mnv3_layers.quantization import tfmot_engine as te

SIZE = qat_shared.APPLICATION_SIZE
CLASSES = qat_shared.CLASSES
_tiny_model = qat_shared.tiny_model
_predict = qat_shared.predict
_qat_steps = qat_shared.qat_steps


def _sublayers(model, kind):
    return [
        layer for layer in model._flatten_layers(include_self=False, recursive=True)
        if isinstance(layer, kind)
    ]


# === Shared models ===


@pytest.fixture(scope="module")
def data():
    return qat_shared.data()


@pytest.fixture(scope="module")
def trained():
    """The small classifier trained in float (shared with tests/test_quantization.py)."""
    return qat_shared.trained()


@pytest.fixture(scope="module")
def tfmot_qat(trained, data):
    tfk, _ = te._import_tfmot()
    x, y, _, _ = data
    qat = quantize_model(trained, engine="tfmot")
    qat.compile(optimizer=tfk.optimizers.Adam(qat_shared.QAT_LEARNING_RATE),
                loss="sparse_categorical_crossentropy", run_eagerly=True)
    return _qat_steps(qat, x, y)


@pytest.fixture(scope="module")
def tfmot_export(tfmot_qat, tmp_path_factory):
    path = tmp_path_factory.mktemp("tfmot") / "tfmot_int8.tflite"
    export_tflite(tfmot_qat, path, quantization="int8", int8_io=True)
    return str(path), inspect_tflite(path)


@pytest.fixture(scope="module")
def tfmot_qat_elementwise(trained, tfmot_qat):
    """`tfmot_qat` rebuilt with `hard_swish="elementwise"`, same trained weights and ranges."""
    qat = quantize_model(trained, engine="tfmot", hard_swish="elementwise")
    qat.set_weights(tfmot_qat.get_weights())
    return qat


@pytest.fixture(scope="module")
def small_twin():
    keras.utils.set_random_seed(0)
    model = MobileNetV3Small(input_shape=(SIZE, SIZE, 3), weights=None, classes=10,
                             classifier_activation=None)
    randomize_weights(model, np.random.default_rng(0))
    return model, te.build_tf_keras_twin(model)


# === Importing the engine leaves Keras 3 alone ===


_KERAS3_SCRIPT = textwrap.dedent(
    """
    import os, sys, tempfile
    os.environ.pop("TF_USE_LEGACY_KERAS", None)
    import keras
    import numpy as np
    from mnv3_layers import HardSwish, InvertedResidual
    from mnv3_layers.quantization import tfmot_engine

    # Importing the engine imports neither tf_keras nor tfmot.
    assert "tf_keras" not in sys.modules and "tensorflow_model_optimization" not in sys.modules

    inputs = keras.Input((32, 32, 3))
    h = keras.layers.Conv2D(8, 3, strides=2, padding="same", use_bias=False)(inputs)
    h = keras.layers.BatchNormalization()(h)
    h = HardSwish()(h)
    h = InvertedResidual(8, 3, 1, expansion=2, se_ratio=0.25, activation="hard_swish")(h)
    h = keras.layers.GlobalAveragePooling2D()(h)
    model = keras.Model(inputs, keras.layers.Dense(2)(h))
    x = np.random.default_rng(0).uniform(0, 1, (4, 32, 32, 3)).astype("float32")
    qat = tfmot_engine.quantize_model_tfmot(model)
    qat.compile("adam", "mse", run_eagerly=True)
    qat.train_on_batch(x, np.zeros((4, 2), "float32"))
    assert "tensorflow_model_optimization" in sys.modules  # tfmot really ran

    # tfmot sets TF_USE_LEGACY_KERAS=1 when imported; the engine restores it,
    # and tf.keras is still Keras 3.
    assert "TF_USE_LEGACY_KERAS" not in os.environ, os.environ["TF_USE_LEGACY_KERAS"]
    import tensorflow as tf
    assert tf.keras.layers.Dense is keras.layers.Dense, tf.keras
    assert keras.__version__.startswith("3.")

    # Keras 3 models still build, train and save.
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3), HardSwish()])
    model.compile(optimizer="adam", loss="mse", jit_compile=False)
    history = model.fit(np.ones((8, 4)), np.ones((8, 3)), epochs=2, verbose=0)
    assert len(history.history["loss"]) == 2
    path = os.path.join(tempfile.mkdtemp(), "model.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert isinstance(loaded, keras.Model) and not hasattr(loaded, "_is_graph_network")
    np.testing.assert_array_equal(model.predict(np.ones((2, 4)), verbose=0),
                                  loaded.predict(np.ones((2, 4)), verbose=0))
    print("KERAS3-OK")
    """
)


@pytest.mark.slow
def test_engine_does_not_change_keras3_in_the_same_process(tmp_path):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", KERAS_BACKEND="tensorflow")
    env.pop("TF_USE_LEGACY_KERAS", None)
    result = subprocess.run(
        [sys.executable, "-c", _KERAS3_SCRIPT], capture_output=True, text=True,
        env=env, cwd=tmp_path, timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "KERAS3-OK" in result.stdout


def test_missing_tfmot_raises_import_error_naming_the_extra(monkeypatch):
    monkeypatch.setattr(te.loader, "_CACHE", {})
    monkeypatch.setitem(sys.modules, "tensorflow_model_optimization", None)
    with pytest.raises(ImportError, match=r"mnv3-layers\[qat\]"):
        te.build_tf_keras_twin(_tiny_model())
    with pytest.raises(ImportError, match=r"mnv3-layers\[qat\]"):
        te.HardSwishQuantizeConfig  # noqa: B018  (lazy names import tfmot too)


# === The tf_keras twin ===


@pytest.mark.parametrize("variant", ["small", "large"])
def test_twin_of_application_is_flat_and_equal_in_float(variant, small_twin, rng):
    if variant == "small":
        model, twin = small_twin
    else:
        keras.utils.set_random_seed(0)
        model = MobileNetV3Large(input_shape=(SIZE, SIZE, 3), weights=None, classes=10,
                                 classifier_activation=None)
        randomize_weights(model, np.random.default_rng(1))
        twin = te.build_tf_keras_twin(model)
    tfk, _ = te._import_tfmot()
    # Every convolution and batch norm is a top-level tf_keras layer.
    for kind, tf_kind in (
        (keras.layers.Conv2D, tfk.layers.Conv2D),
        (keras.layers.DepthwiseConv2D, tfk.layers.DepthwiseConv2D),
        (keras.layers.BatchNormalization, tfk.layers.BatchNormalization),
        (HardSwish, te.TFKerasHardSwish),
    ):
        expected = len(_sublayers(model, kind))
        assert expected > 0
        assert sum(type(layer) is tf_kind for layer in twin.layers) == expected, kind
    assert sum(isinstance(layer, te.TFKerasHardSigmoid) for layer in twin.layers) == len(
        _sublayers(model, SqueezeExcite)
    )
    assert twin.get_layer("expanded_conv_3/squeeze_excite/expand").kernel.shape[-1] > 0
    x = rng.uniform(0, 255, (4, SIZE, SIZE, 3)).astype("float32")
    expected = np.asarray(model(x, training=False))
    assert np.abs(expected).max() > 0.1  # not a trivially small output
    np.testing.assert_allclose(np.asarray(twin(x, training=False)), expected, atol=1e-5, rtol=0)


def test_twin_of_backbone_based_and_multi_output_models(rng):
    backbone = MobileNetV3Backbone("small", alpha=0.35, input_shape=(64, 64, 3))
    randomize_weights(backbone, np.random.default_rng(2))
    inputs = keras.Input((64, 64, 3))
    features = backbone(inputs)
    logits = keras.layers.Dense(4)(keras.layers.GlobalAveragePooling2D()(features))
    classifier = keras.Model(inputs, logits)
    x = rng.uniform(0, 255, (2, 64, 64, 3)).astype("float32")
    twin = te.build_tf_keras_twin(classifier)
    np.testing.assert_allclose(
        np.asarray(twin(x)), np.asarray(classifier(x)), atol=1e-5, rtol=0
    )
    # The backbone's layers were flattened into the twin (no nested model).
    assert "expanded_conv_3/depthwise" in [layer.name for layer in twin.layers]
    # A dict of taps, including the SSDLite C4 expansion output, keeps its keys.
    extractor = backbone.get_feature_extractor(["P3", backbone.expansion_tap.key])
    twin = te.build_tf_keras_twin(extractor)
    got, expected = twin(x), extractor(x)
    assert set(got) == set(expected) == {"P3", backbone.expansion_tap.key}
    for key in expected:
        np.testing.assert_allclose(np.asarray(got[key]), np.asarray(expected[key]),
                                   atol=1e-5, rtol=0)


def test_unsupported_layers_and_bad_arguments_raise_clear_errors():
    inputs = keras.Input((32, 32, 3))
    h = keras.layers.Conv2D(8, 3)(inputs)
    bad = keras.Model(inputs, keras.layers.LayerNormalization(name="my_norm")(h))
    with pytest.raises(ValueError, match=r"'my_norm'.*LayerNormalization.*engine='keras'"):
        quantize_model(bad, engine="tfmot")
    op_model = keras.Model(inputs, keras.ops.sin(keras.layers.Conv2D(8, 3)(inputs)))
    with pytest.raises(ValueError, match=r"operation, not a layer"):
        te.build_tf_keras_twin(op_model)
    fused = keras.Model(inputs, keras.layers.Conv2D(8, 3, activation="hard_silu",
                                                    name="fused")(inputs))
    with pytest.raises(ValueError, match=r"'fused'.*activation='hard_silu'"):
        te.build_tf_keras_twin(fused)

    class Subclassed(keras.Model):
        def call(self, x):
            return x

    with pytest.raises(ValueError, match=r"subclassed"):
        te.build_tf_keras_twin(Subclassed())
    with pytest.raises(TypeError, match=r"Received: model of type str"):
        te.build_tf_keras_twin("model")
    good = keras.Model(inputs, keras.layers.Conv2D(8, 3)(inputs))
    with pytest.raises(ValueError, match=r"range_momentum=1\.0"):
        te.quantize_model_tfmot(good, range_momentum=1.0)
    with pytest.raises(TypeError, match=r"freeze_batch_norm='yes'"):
        te.quantize_model_tfmot(good, freeze_batch_norm="yes")


# === QAT model structure ===


@pytest.mark.slow
def test_small_application_qat_places_configs_by_the_rules(small_twin):
    model, twin = small_twin
    qat = te.quantize_model_tfmot(twin)
    tfk, _ = te._import_tfmot()
    configs = {
        layer.layer.name: layer.quantize_config
        for layer in qat.layers if hasattr(layer, "quantize_config")
    }
    # Every twin layer but the input is wrapped (with a config or tfmot's no-op).
    assert set(configs) == {layer.name for layer in twin.layers[1:]}
    num_se = len(_sublayers(model, SqueezeExcite))
    gates = [n for n, c in configs.items() if isinstance(c, te.GateConvQuantizeConfig)]
    assert len(gates) == num_se == 9
    assert all(n.endswith("squeeze_excite/expand") for n in gates)
    for name in gates:  # no fake quant between the gate conv and the +3
        layer = qat.get_layer("quant_" + name).layer
        assert configs[name].get_output_quantizers(layer) == []
        assert configs[name].get_activations_and_quantizers(layer) == []
    assert sum(isinstance(c, te.HardSwishQuantizeConfig) for c in configs.values()) == len(
        _sublayers(model, HardSwish)
    )
    assert sum(isinstance(c, te.HardSigmoidQuantizeConfig) for c in configs.values()) == num_se
    assert sum(isinstance(c, te.MultiplyQuantizeConfig) for c in configs.values()) == num_se
    # Depthwise weights get one range per channel (tfmot's default: one per tensor).
    depthwise = qat.get_layer("quant_expanded_conv_3/depthwise")
    ranges = [w for w in depthwise.weights if w.name.split("/")[-1].startswith("depthwise_kernel_m")]
    assert [tuple(w.shape) for w in ranges] == [(depthwise.layer.depthwise_kernel.shape[2],)] * 2
    # SE reduce conv -> ReLU: weights still fake-quantized, output left to the ReLU.
    reduce_config = configs["expanded_conv_3/squeeze_excite/reduce"]
    assert isinstance(reduce_config, te.ConvQuantizeConfig)
    assert not reduce_config.quantize_activation
    # Batch norms are frozen (inference mode) by default.
    norms = [l.layer for l in qat.layers if isinstance(getattr(l, "layer", None),
                                                          tfk.layers.BatchNormalization)]
    assert len(norms) == len(_sublayers(model, keras.layers.BatchNormalization))
    assert not any(norm.trainable for norm in norms)
    assert all(norm.trainable for norm in twin.layers
               if isinstance(norm, tfk.layers.BatchNormalization))


def test_quantize_scope_and_configs_annotate_a_users_tf_keras_model(rng):
    tfk, tfmot = te._import_tfmot()
    annotate = tfmot.quantization.keras.quantize_annotate_layer
    inputs = tfk.Input((16, 16, 3))
    x = tfk.layers.Conv2D(8, 3, padding="same", use_bias=False)(inputs)
    x = tfk.layers.BatchNormalization()(x)
    x = annotate(te.TFKerasHardSwish(), te.HardSwishQuantizeConfig())(x)
    s = tfk.layers.GlobalAveragePooling2D(keepdims=True)(x)
    s = annotate(tfk.layers.Conv2D(8, 1), te.GateConvQuantizeConfig())(s)
    s = annotate(te.TFKerasHardSigmoid(), te.HardSigmoidQuantizeConfig())(s)
    x = annotate(tfk.layers.Multiply(), te.MultiplyQuantizeConfig())([x, s])
    model = tfmot.quantization.keras.quantize_annotate_model(tfk.Model(inputs, x))
    with te.quantize_scope():
        qat = tfmot.quantization.keras.quantize_apply(model, te.MobileNetV3QuantizeScheme())
        clone = tfk.models.clone_model(qat)  # every config and quantizer (de)serializes
    clone.set_weights(qat.get_weights())
    x = rng.uniform(-4, 4, (2, 16, 16, 3)).astype("float32")
    qat(x, training=True)  # sets the ranges from this batch
    clone.set_weights(qat.get_weights())
    np.testing.assert_array_equal(np.asarray(qat(x)), np.asarray(clone(x)))
    # The first training batch set the hard-swish output range (tfmot's start is -6..6).
    (wrapper,) = [l for l in qat.layers if isinstance(getattr(l, "layer", None),
                                                      te.TFKerasHardSwish)]
    ranges = {w.name.split("/")[-1].split(":")[0]: float(w.numpy()) for w in wrapper.weights
              if w.name.split("/")[-1].startswith("output_")}
    hard_swish = np.asarray(clone.get_layer(wrapper.name).layer(
        clone.layers[3](clone.layers[2](clone.layers[1](x)))))
    assert ranges["output_initialized"] == 1.0
    assert ranges["output_min"] == pytest.approx(min(hard_swish.min(), 0.0), abs=0.05)
    assert ranges["output_max"] == pytest.approx(hard_swish.max(), abs=0.05)
    assert ranges["output_max"] != 6.0


# === Checkpoints ===


@pytest.mark.slow
def test_checkpoint_restore_gives_identical_outputs(tfmot_qat, trained, data, tmp_path):
    import tensorflow as tf

    _, _, x_test, _ = data
    expected = _predict(tfmot_qat, x_test[:64])
    tfmot_qat.save_weights(str(tmp_path / "weights" / "qat"))
    restored = quantize_model(trained, engine="tfmot")
    # A fresh QAT model is refused by the exporter (no file written) ...
    with pytest.raises(ValueError, match="never trained"):
        export_tflite(restored, tmp_path / "fresh.tflite", quantization="int8")
    assert not (tmp_path / "fresh.tflite").exists()
    # ... and differs (ranges and weights not yet trained) ...
    assert not np.array_equal(_predict(restored, x_test[:64]), expected)
    restored.load_weights(str(tmp_path / "weights" / "qat")).assert_existing_objects_matched(
    ).expect_partial()  # the optimizer slots stay behind (quietly)
    np.testing.assert_array_equal(_predict(restored, x_test[:64]), expected)
    # ... and tf.train.Checkpoint restores every variable too.
    checkpoint_path = tf.train.Checkpoint(model=tfmot_qat).write(str(tmp_path / "ckpt" / "qat"))
    for variable in restored.variables:
        variable.assign(tf.zeros_like(variable))
    assert not np.array_equal(_predict(restored, x_test[:64]), expected)
    # The checkpoint also holds the optimizer state, which `restored` (not
    # compiled) does not have: every variable of the model must be matched.
    tf.train.Checkpoint(model=restored).read(checkpoint_path).assert_existing_objects_matched(
    ).expect_partial()
    np.testing.assert_array_equal(_predict(restored, x_test[:64]), expected)


# === int8 export ===


@pytest.mark.slow
def test_int8_export_is_fully_integer_with_fused_hard_swish(tfmot_export, trained):
    _, report = tfmot_export
    ops = report.op_histogram
    assert report.is_fully_int8, (report.float_ops, report.stray_quantize_ops)
    assert not report.stray_quantize_pairs and not report.requantize_ops
    assert "QUANTIZE" not in ops and "DEQUANTIZE" not in ops  # int8 input and output
    assert set(report.tensor_dtypes) <= {"int8", "int32"}
    # One HARD_SWISH op per hard-swish layer.
    assert ops["HARD_SWISH"] == len(_sublayers(trained, HardSwish)) == 5
    # ADD: the rescaling offset and the residual adds only; the hard-sigmoid's
    # +3 folded into the SE gate convolution's bias.
    residual = sum(block.use_residual for block in _sublayers(trained, InvertedResidual))
    assert ops["ADD"] == 1 + residual == 3
    # MUL: the rescaling scale, and per SE its hard-sigmoid's 1/6 and the scaling.
    num_se = len(_sublayers(trained, SqueezeExcite))
    assert ops["MUL"] == 1 + 2 * num_se == 5
    assert ops["CONV_2D"] == len(_sublayers(trained, keras.layers.Conv2D)) == 14
    assert ops["DEPTHWISE_CONV_2D"] == 4
    # Conv weights are int8 per channel, symmetric.
    assert report.per_channel_weights and report.zeroed_weights == ()
    assert all(w["zero_points_all_zero"] for w in report.weights)
    assert report.inputs[0]["dtype"] == "int8" and report.outputs[0]["dtype"] == "int8"


@pytest.mark.slow
def test_qat_model_and_int8_export_agree(tfmot_qat, tfmot_export):
    qat_shared.check_qat_int8_agreement(tfmot_qat, tfmot_export[0], "tfmot")


@pytest.mark.slow
def test_both_engines_export_the_same_graph_and_agree(tfmot_qat, tfmot_export):
    # The Keras engine's QAT copy of the same float model, after the same
    # 4 steps (shared with tests/test_quantization.py).
    keras_path, keras_report = qat_shared.keras_export()
    tfmot_path, tfmot_report = tfmot_export
    assert keras_report.op_histogram == tfmot_report.op_histogram
    assert keras_report.ops == tfmot_report.ops  # the same ops in the same order
    x, _ = qat_shared.agreement_data()
    tfmot_probs = evaluate_tflite(tfmot_path, x, batch_size=20)
    keras_probs = evaluate_tflite(keras_path, x, batch_size=20)
    assert np.bincount(keras_probs.argmax(-1), minlength=CLASSES).min() >= 100
    agreement = qat_shared.top1_agreement(tfmot_probs, keras_probs)
    # The two QAT models already differ (each engine learned its own ranges in
    # its 4 steps): the int8 files agree about as well as the models do.
    qat_agreement = qat_shared.top1_agreement(
        _predict(tfmot_qat, x), _predict(qat_shared.keras_qat(), x))
    print(f"engines: int8 files {agreement:.3f}, QAT models {qat_agreement:.3f}")
    assert agreement >= 0.95, agreement
    assert agreement >= qat_agreement - 0.01, (agreement, qat_agreement)


def test_heads_lraspp_is_refused_by_name():
    # The LR-ASPP head (bilinear resizes, broadcast gate) has no tf_keras
    # twin: the tfmot engine names it and points to the Keras engine.
    from mnv3_layers.applications.lraspp import LRASPPSegmenter

    backbone = MobileNetV3Backbone("small", alpha=0.35, input_shape=(32, 32, 3),
                                   output_stride=16, reduced_tail=True)
    segmenter = LRASPPSegmenter(num_classes=2, backbone=backbone, filters=8)
    with pytest.raises(ValueError, match=r"'lraspp_head' of type LRASPPHead.*engine='keras'"):
        quantize_model(segmenter, engine="tfmot")


@pytest.mark.slow
def test_elementwise_hard_swish_matches_the_keras_engine(tfmot_qat, tfmot_qat_elementwise,
                                                         tmp_path):
    twin_layers = [l for l in tfmot_qat_elementwise.layers
                   if isinstance(getattr(l, "layer", None), te.TFKerasHardSwish)]
    assert len(twin_layers) == 5 and all(l.layer.form == "elementwise" for l in twin_layers)
    path = tmp_path / "tfmot_int8_elementwise.tflite"
    export_tflite(tfmot_qat_elementwise, path, quantization="int8", int8_io=True)
    report = inspect_tflite(path)
    keras_path, keras_report = qat_shared.keras_export_elementwise()
    assert report.is_fully_int8 and report.float_ops == ()
    assert report.stray_quantize_ops == () and report.stray_quantize_pairs == ()
    assert "HARD_SWISH" not in report.op_histogram
    assert report.op_histogram == keras_report.op_histogram
    assert report.ops == keras_report.ops
    assert qat_shared.xnnpack_partitions(path) == (1, [])
    qat_shared.check_qat_int8_agreement(tfmot_qat_elementwise, str(path),
                                        "tfmot (element-wise hard-swish)")
    x, _ = qat_shared.agreement_data()
    assert qat_shared.top1_agreement(
        _predict(tfmot_qat, x), _predict(tfmot_qat_elementwise, x)) >= 0.99
    agreement = qat_shared.top1_agreement(evaluate_tflite(path, x, batch_size=20),
                                          evaluate_tflite(keras_path, x, batch_size=20))
    qat_agreement = qat_shared.top1_agreement(
        _predict(tfmot_qat_elementwise, x), _predict(qat_shared.keras_qat_elementwise(), x))
    print(f"engines, element-wise hard-swish: int8 files {agreement:.3f}, "
          f"QAT models {qat_agreement:.3f}")
    assert agreement >= 0.95, agreement
    assert agreement >= qat_agreement - 0.01, (agreement, qat_agreement)


def test_hard_swish_form_is_validated(trained):
    with pytest.raises(ValueError, match=r"`hard_swish` must be one of \('op', "
                                         r"'elementwise'\). Received: hard_swish='fast'"):
        quantize_model(trained, engine="tfmot", hard_swish="fast")
    with pytest.raises(ValueError, match=r"`form` must be one of .*Received: form='HS'"):
        te.TFKerasHardSwish(form="HS")
    twin = te.build_tf_keras_twin(trained, hard_swish="elementwise")
    forms = [l.form for l in twin.layers if isinstance(l, te.TFKerasHardSwish)]
    assert forms == ["elementwise"] * 5
    config = twin.get_layer(
        [l.name for l in twin.layers if isinstance(l, te.TFKerasHardSwish)][0]).get_config()
    assert te.TFKerasHardSwish.from_config(config).form == "elementwise"
    with pytest.raises(ValueError, match=r"for a tf_keras model, set `form=\"elementwise\"`"
                                         r".*Received: hard_swish='elementwise'"):
        quantize_model(twin, engine="tfmot", hard_swish="elementwise")
