"""Layers use Keras 3 public API only (keras.layers / keras.ops), never `tf.*`."""

import ast
import pathlib

import pytest

import mnv3_layers

LAYER_MODULES = [
    "activations", "hard_sigmoid", "hard_swish", "squeeze_excite", "inverted_residual",
    "efficient_last_stage", "make_divisible", "block_spec", "_activation_layer",
    "_validation", "_registry",
]


@pytest.mark.parametrize("module", LAYER_MODULES)
def test_layer_module_imports_no_backend(module):
    path = pathlib.Path(mnv3_layers.__file__).parent / f"{module}.py"
    tree = ast.parse(path.read_text())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module.split(".")[0])
    assert not imported & {"tensorflow", "tf_keras", "jax", "torch"}, (module, imported)
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("keras."):
            assert not node.module.startswith("keras.src"), (module, node.module)
