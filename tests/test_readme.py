"""The README's Python snippets: each compiles, each import in them works, and the
self-contained ones run as written."""

import ast
import os
import pathlib
import re

import pytest

README = pathlib.Path(__file__).resolve().parent.parent / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), re.S)


def _first_line(block):
    return block.strip().splitlines()[0]


def test_readme_has_python_blocks():
    assert len(BLOCKS) >= 10


@pytest.mark.parametrize("block", BLOCKS, ids=_first_line)
def test_snippet_compiles_and_its_imports_work(block):
    tree = ast.parse(block)
    imports = [node for node in ast.walk(tree) if isinstance(node, (ast.Import, ast.ImportFrom))]
    module = ast.Module(body=imports, type_ignores=[])
    exec(compile(module, "<README imports>", "exec"), {})


def _runs_as_written(block):
    """Blocks that need no data, network or trained model of the reader's."""
    return "custom.keras" in block or "from mnv3_layers.profile import profile" in block


@pytest.mark.parametrize("block", [b for b in BLOCKS if _runs_as_written(b)], ids=_first_line)
def test_self_contained_snippet_runs(block, tmp_path, capsys):
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        exec(compile(block, "<README>", "exec"), {})
    finally:
        os.chdir(cwd)
    assert capsys.readouterr().out or (tmp_path / "custom.keras").is_file()
