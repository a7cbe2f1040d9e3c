"""Every `Example:` in the package's modules runs and prints what it says.

The modules come from walking the installed package (`pkgutil`), so a new module
is checked without being listed here.
"""

import doctest
import importlib
import inspect
import pkgutil

import keras
import pytest

import mnv3_layers
import mnv3_layers.applications


def _modules():
    # `mnv3_layers.applications` is installed from its own folder, so it is walked
    # on its own path (an editable install does not place it under mnv3_layers/).
    names = {"mnv3_layers", "mnv3_layers.applications"}
    for package in (mnv3_layers, mnv3_layers.applications):
        prefix = package.__name__ + "."
        names.update(info.name for info in pkgutil.walk_packages(package.__path__, prefix))
    return sorted(names)


MODULES = _modules()


def _public_layers(module):
    """The public Keras layers and models a module defines (not the QAT engines' own,
    which `quantize_model` creates, never the user)."""
    if module.__name__.startswith("mnv3_layers.quantization."):
        return []
    return [
        obj for name, obj in vars(module).items()
        if inspect.isclass(obj) and not name.startswith("_")
        and obj.__module__ == module.__name__ and issubclass(obj, keras.layers.Layer)
    ]


def test_walk_finds_every_level():
    for name in ("mnv3_layers.layers.inverted_residual", "mnv3_layers.applications.lraspp",
                 "mnv3_layers.latency.table", "mnv3_layers.training.loop"):
        assert name in MODULES


@pytest.mark.parametrize("name", MODULES)
def test_examples_in_docstrings(name):
    module = importlib.import_module(name)
    result = doctest.testmod(
        module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE, verbose=False
    )
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples failed in {name}"


@pytest.mark.parametrize("name", MODULES)
def test_public_layers_have_examples(name):
    """Every public layer and model shows how it is used."""
    module = importlib.import_module(name)
    finder = doctest.DocTestFinder()
    missing = [
        cls.__name__ for cls in _public_layers(module)
        if not any(test.examples for test in finder.find(cls, cls.__name__, module=module))
    ]
    assert not missing, f"{name}: public layers without an `Example:`: {missing}"
