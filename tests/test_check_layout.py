"""tools/check_layout.py: the layers of docs/architecture.md hold, with no import circle and no
oversized module or function without a written reason."""

import importlib.util
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TOOL = ROOT / "tools" / "check_layout.py"

spec = importlib.util.spec_from_file_location("check_layout", TOOL)
check_layout = importlib.util.module_from_spec(spec)
sys.modules["check_layout"] = check_layout  # dataclasses look their module up
spec.loader.exec_module(check_layout)

LAYERS = """\
# Architecture

## Layers

| layer | modules | what |
|---|---|---|
| core | `augkit/core/` | basics |
| stages | `augkit/stages/`, `augkit/api.py`, `augkit/__init__.py` | work |

## Rules
"""


def make_project(tmp_path, files: dict[str, str], doc: str = LAYERS) -> Path:
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "architecture.md").write_text(doc)
    for name, text in {"augkit/__init__.py": "", "augkit/core/__init__.py": "",
                       "augkit/stages/__init__.py": "", **files}.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return tmp_path


def test_augkit_itself_keeps_its_layers_and_limits():
    result = subprocess.run([sys.executable, str(TOOL)], capture_output=True, text=True)
    assert result.stdout == "" and result.returncode == 0, result.stdout


def test_a_clean_project_passes(tmp_path):
    root = make_project(tmp_path, {"augkit/core/a.py": "X = 1\n",
                                   "augkit/stages/b.py": "from augkit.core.a import X\n"})
    assert check_layout.problems(root) == []


def test_an_import_from_a_higher_layer_is_named_with_its_line(tmp_path):
    root = make_project(tmp_path, {"augkit/core/a.py": "def f():\n    from augkit.stages import b\n",
                                   "augkit/stages/b.py": "Y = 2\n"})
    assert check_layout.problems(root) == [
        "augkit/core/a.py:2: imports augkit.stages.b (stages) from the lower layer core; "
        "move what both need down, or the caller up"]


def test_a_type_only_import_from_above_still_counts_as_upward(tmp_path):
    root = make_project(tmp_path, {
        "augkit/core/a.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from augkit.api import Z\n",
        "augkit/api.py": "Z = 3\n"})
    assert [p.split(":")[0] for p in check_layout.problems(root)] == ["augkit/core/a.py"]


def test_a_circle_through_a_function_level_import_is_found(tmp_path):
    root = make_project(tmp_path, {"augkit/stages/b.py": "from augkit.stages.c import g\n",
                                   "augkit/stages/c.py": "def g():\n    from augkit.stages import b\n"})
    assert check_layout.problems(root) == [
        "import circle: augkit.stages.b -> augkit.stages.c; move what they share into one module both import"]


def test_a_circle_only_under_type_checking_is_not_a_circle(tmp_path):
    root = make_project(tmp_path, {
        "augkit/stages/b.py": "from augkit.stages.c import g\n",
        "augkit/stages/c.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from augkit.stages.b import B\ng = 1\n"})
    assert check_layout.problems(root) == []


def test_relative_imports_resolve_like_absolute_ones(tmp_path):
    root = make_project(tmp_path, {"augkit/core/a.py": "from ..stages import b\n",
                                   "augkit/stages/b.py": "Y = 2\n"})
    assert check_layout.problems(root)[0].startswith("augkit/core/a.py:1: imports augkit.stages.b (stages)")


def test_a_module_outside_every_layer_is_reported(tmp_path):
    root = make_project(tmp_path, {"augkit/loose.py": "X = 1\n"})
    assert check_layout.problems(root) == [
        "augkit/loose.py: in no layer of docs/architecture.md; add it to the '## Layers' table"]


def long_function(lines: int, docstring: str = "") -> str:
    body = "".join(f"    x{i} = {i}\n" for i in range(lines - 2))
    return f"def f():\n    \"\"\"{docstring}\"\"\"\n{body}"


@pytest.mark.parametrize("docstring, problems", [("Short.", 1), ("Does f.\n\n    Long because: one table.", 0)])
def test_a_function_over_60_lines_needs_a_written_reason(tmp_path, docstring, problems):
    root = make_project(tmp_path, {"augkit/core/a.py": long_function(61, docstring)})
    found = check_layout.problems(root)
    assert len(found) == problems
    if found:
        assert found[0] == ("augkit/core/a.py:1: f() is 61 lines (limit 60); split it, "
                            "or write 'Long because ...' in its docstring")


def test_a_function_of_exactly_60_lines_is_fine(tmp_path):
    root = make_project(tmp_path, {"augkit/core/a.py": long_function(60)})
    assert check_layout.problems(root) == []


@pytest.mark.parametrize("docstring, problems", [('"""A module."""\n', 1),
                                                 ('"""A module.\n\nLong because: a table.\n"""\n', 0)])
def test_a_module_over_500_lines_needs_a_written_reason(tmp_path, docstring, problems):
    root = make_project(tmp_path, {"augkit/core/a.py": docstring + "x = 1\n" * 501})
    found = check_layout.problems(root)
    assert len(found) == problems
    if found:
        assert found[0].startswith("augkit/core/a.py: 50")


def test_the_layers_come_from_the_document_so_a_missing_table_is_an_error(tmp_path):
    root = make_project(tmp_path, {}, doc="# Architecture\n")
    with pytest.raises(SystemExit, match="no '## Layers' section"):
        check_layout.problems(root)


def test_the_command_exits_1_and_counts_the_problems(tmp_path):
    root = make_project(tmp_path, {"augkit/loose.py": "X = 1\n"})
    result = subprocess.run([sys.executable, str(TOOL), str(root)], capture_output=True, text=True)
    assert result.returncode == 1
    assert result.stderr == "check_layout: 1 problem\n"
