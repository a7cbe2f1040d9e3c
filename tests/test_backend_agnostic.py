"""Layers use Keras 3 public API only (keras.layers / keras.ops), never `tf.*`."""

import ast
import pathlib

import pytest

import mnv3_layers

ROOT = pathlib.Path(mnv3_layers.__file__).parent
# Every file of the two lowest levels (layers, architecture) and the plumbing they use.
LAYER_MODULES = sorted(
    str(path.relative_to(ROOT))
    for path in [*ROOT.glob("layers/*.py"), *ROOT.glob("architecture/*.py"),
                 ROOT / "_validation.py", ROOT / "_registry.py"]
)


def test_layer_modules_are_found():
    assert "layers/inverted_residual.py" in LAYER_MODULES
    assert "architecture/block_spec.py" in LAYER_MODULES


@pytest.mark.parametrize("module", LAYER_MODULES)
def test_layer_module_imports_no_backend(module):
    path = ROOT / module
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
