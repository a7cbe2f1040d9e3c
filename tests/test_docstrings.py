"""Every `Example:` in the public modules runs and prints what it says."""

import doctest
import importlib

import pytest

MODULES = [
    "mnv3_layers.activations",
    "mnv3_layers.hard_sigmoid",
    "mnv3_layers.hard_swish",
    "mnv3_layers.make_divisible",
    "mnv3_layers.squeeze_excite",
    "mnv3_layers.inverted_residual",
    "mnv3_layers.efficient_last_stage",
    "mnv3_layers.profile",
    "mnv3_layers.datasets.shapes",
    "mnv3_layers.testing.layer_test",
    "mnv3_layers.latency",
    "mnv3_layers.callbacks",
    "mnv3_layers.latency_table",
    "mnv3_layers.search",
    "mnv3_layers.plotting",
    "mnv3_layers.training",
    "mnv3_layers.cli",
    "mnv3_layers.applications.ssdlite",
    "mnv3_layers.applications.mobilenet_v3",
    "mnv3_layers.applications.backbone",
    "mnv3_layers.quantization",
    "mnv3_layers.quantization.keras_engine",
    "mnv3_layers.quantization.export",
    "mnv3_layers.quantization.inspect",
]


@pytest.mark.parametrize("name", MODULES)
def test_examples_in_docstrings(name):
    module = importlib.import_module(name)
    result = doctest.testmod(
        module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE, verbose=False
    )
    assert result.attempted > 0, f"{name} has no examples"
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples failed in {name}"
