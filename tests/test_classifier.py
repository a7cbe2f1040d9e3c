"""The one classifier builder (`mnv3_layers.applications.build_classifier`) and its two callers."""

import numpy as np
import pytest

from mnv3_layers import search, training
from mnv3_layers.applications import MobileNetV3Small, build_classifier
from mnv3_layers.applications.classifier import HEADS

SHAPE = (32, 32, 3)


def names(model):
    return [layer.name for layer in model.layers[1:]]  # Input layer names are numbered.


def same_weights(a, b):
    wa, wb = a.get_weights(), b.get_weights()
    return len(wa) == len(wb) and all(x.shape == y.shape for x, y in zip(wa, wb))


def test_dense_head_layers_and_shapes():
    model = build_classifier("small", SHAPE, 4, head="dense", alpha=0.35, dropout_rate=0.1)
    assert names(model) == ["backbone", "avg_pool", "dropout", "classifier"]
    assert model.output_shape == (None, 4) and model.name == "mobilenet_v3_classifier"
    assert model.get_layer("classifier").activation.__name__ == "softmax"
    no_dropout = build_classifier("small", SHAPE, 4, head="dense", alpha=0.35, dropout_rate=0.0)
    assert names(no_dropout) == ["backbone", "avg_pool", "classifier"]


def test_search_builder_is_the_dense_head():
    spec = search.flatten_architecture("small", alpha=0.35)
    ours = search.build_classifier(spec, SHAPE, 3)
    direct = build_classifier(spec, SHAPE, 3, head="dense", bn_momentum=0.9, dropout_rate=0.0,
                              name="netadapt_classifier")
    assert ours.name == direct.name == "netadapt_classifier"
    assert names(ours) == names(direct)
    assert same_weights(ours, direct)
    assert ours.get_layer("backbone").get_config()["bn_momentum"] == 0.9
    direct.set_weights(ours.get_weights())
    x = np.random.default_rng(0).uniform(0, 255, (2,) + SHAPE).astype("float32")
    np.testing.assert_allclose(direct(x), ours(x), atol=1e-6)


def test_training_builder_is_the_applications_head():
    ours = training.build_classifier("small", 3, 32, alpha=0.35)
    application = MobileNetV3Small(input_shape=SHAPE, alpha=0.35, include_top=True, weights=None,
                                   classes=3)
    assert ours.name == application.name
    assert names(ours) == names(application)
    assert same_weights(ours, application)
    named = build_classifier("small", SHAPE, 3, alpha=0.35, name="mine")
    assert named.name == "mine"


def test_applications_head_copies_backbone_weights_from_a_file(tmp_path):
    source = MobileNetV3Small(input_shape=(224, 224, 3), alpha=0.35, include_top=False,
                              weights=None)
    path = str(tmp_path / "backbone.weights.h5")
    source.save_weights(path)
    model = build_classifier("small", SHAPE, 3, alpha=0.35, weights=path)
    for name in ("conv", "expanded_conv_3"):
        for a, b in zip(model.get_layer(name).get_weights(),
                        source.get_layer(name).get_weights()):
            np.testing.assert_array_equal(a, b)
    last, source_last = model.get_layer("last_stage"), source.get_layer("last_stage")
    np.testing.assert_array_equal(last.conv.get_weights()[0], source_last.conv.get_weights()[0])


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(head="flat"), ValueError, "`head` must be one of"),
    (dict(variant="medium"), ValueError, "`variant` must be one of"),
    (dict(num_classes=1), ValueError, "`num_classes` must be >= 2"),
    (dict(num_classes=2.5), TypeError, "`num_classes` must be a positive integer"),
    (dict(head="dense", weights="imagenet"), ValueError, "needs head='applications'"),
])
def test_bad_arguments(kwargs, error, match):
    arguments = {**dict(variant="small", input_shape=SHAPE, num_classes=3), **kwargs}
    with pytest.raises(error, match=match):
        build_classifier(**arguments)


def test_heads_are_the_latency_table_tops():
    from mnv3_layers.latency.components import HEAD_TOPS

    assert set(HEADS) <= set(HEAD_TOPS)
