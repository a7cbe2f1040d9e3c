"""The package's levels: imports point down only, and there is no import circle.

Levels, bottom to top (DESIGN.md): plumbing, layers, architecture, applications,
latency, the tools that use latency (quantization, search, callbacks), training,
cli. Every `mnv3_layers` import in every module, at module level or inside a
function, must name a module of the same level or a lower one.
"""

import ast
import pathlib

import pytest

import mnv3_layers
import mnv3_layers.applications

ROOT = pathlib.Path(mnv3_layers.__file__).parent
APPLICATIONS = pathlib.Path(mnv3_layers.applications.__file__).parent

# First component after `mnv3_layers.` -> level. Old-path re-export modules sit at
# the level of the code they re-export.
LEVELS = {
    "_registry": 0, "_validation": 0, "files": 0, "datasets": 0, "testing": 0,
    "plotting": 0,
    "layers": 1,
    "architecture": 2, "block_spec": 2, "profile": 2,
    "applications": 3,
    "latency": 4, "latency_table": 4,
    "quantization": 5, "search": 5, "callbacks": 5,
    "training": 6,
    "cli": 7, "__main__": 7,
}


def _module_files():
    files = {}
    for path in ROOT.rglob("*.py"):
        parts = path.relative_to(ROOT).with_suffix("").parts
        files[".".join(("mnv3_layers",) + parts).removesuffix(".__init__")] = path
    for path in APPLICATIONS.rglob("*.py"):
        parts = path.relative_to(APPLICATIONS).with_suffix("").parts
        name = ".".join(("mnv3_layers", "applications") + parts).removesuffix(".__init__")
        files[name] = path
    return files


MODULES = _module_files()


def _level(module):
    parts = module.split(".")
    if len(parts) == 1:
        return None  # `mnv3_layers` itself: its __init__ exports layers and architecture
    return LEVELS[parts[1]]


def _imports(path, module, top_level_only):
    tree = ast.parse(path.read_text())
    nodes = tree.body if top_level_only else ast.walk(tree)
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    for node in nodes:
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("mnv3_layers"):
                    yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1]
                                + ([base] if base else []))
            if not base.startswith("mnv3_layers"):
                continue
            for alias in node.names:
                candidate = f"{base}.{alias.name}"
                yield (candidate if candidate in MODULES else base), node.lineno


def test_every_module_has_a_level():
    assert "mnv3_layers.layers.inverted_residual" in MODULES
    assert "mnv3_layers.applications.backbone" in MODULES
    for module in MODULES:
        if module != "mnv3_layers":
            assert module.split(".")[1] in LEVELS, f"{module} has no level in LEVELS"


@pytest.mark.parametrize("module", sorted(MODULES))
def test_imports_point_down(module):
    level = _level(module)
    if level is None:
        return
    upward = [
        f"line {line}: {target} (level {_level(target)})"
        for target, line in _imports(MODULES[module], module, top_level_only=False)
        if target != "mnv3_layers" and _level(target) > level
    ]
    assert not upward, f"{module} (level {level}) imports upward: {upward}"


def _circles(graph):
    """Every circle a depth-first walk of `graph` (module -> imported modules) closes."""
    state, stack, circles = {}, [], []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for target in sorted(graph.get(node, ())):
            if state.get(target) == "open":
                circles.append(stack[stack.index(target):] + [target])
            elif target not in state:
                visit(target)
        stack.pop()
        state[node] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module)
    return circles


def test_no_import_circle():
    graph = {
        module: {
            target for target, _ in _imports(path, module, top_level_only=True)
            if target in MODULES and target != module
        }
        for module, path in MODULES.items()
    }
    circles = _circles(graph)
    assert not circles, "import circles: " + "; ".join(" -> ".join(c) for c in circles)


def test_circle_check_can_fail():
    assert _circles({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == [["a", "b", "c", "a"]]
    assert _circles({"a": {"b"}, "b": set()}) == []


def test_layering_check_can_fail(tmp_path):
    """An upward import in a layer file is reported."""
    path = tmp_path / "bad.py"
    path.write_text("from mnv3_layers.training import train\n")
    targets = [t for t, _ in _imports(path, "mnv3_layers.layers.bad", top_level_only=False)]
    assert targets == ["mnv3_layers.training.train"] or targets == ["mnv3_layers.training"]
    assert all(_level(t) > _level("mnv3_layers.layers.bad") for t in targets)
