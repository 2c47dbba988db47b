"""augkit.recipes.source: only regular files, bounded in size, as YAML bounded in depth and
alias expansion; each refusal is one line that names the limit. Hostile inputs are built
here in code, and refused long before they could cost time or memory."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap

import pytest

from augkit.core.errors import RecipeError
from augkit.recipes.source import (
    MAX_RECIPE_BYTES,
    MAX_YAML_DEPTH,
    MAX_YAML_VALUES,
    FileRefused,
    YAMLProblem,
    check_data_bounds,
    parse_yaml,
    read_regular_file,
)
from augkit.recipes import MAX_COMPOSITION_DEPTH, MAX_TRANSFORMS, load_recipe


def billion_laughs(levels: int = 9, fan_out: int = 10) -> str:
    """2.5 KB-ish of anchors, each level ten aliases of the one before: 10^9 values."""
    lines = ["l0: &l0 [ha, ha, ha, ha, ha, ha, ha, ha, ha, ha]"]
    for i in range(1, levels + 1):
        lines.append(f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * fan_out)}]")
    return "\n".join(lines) + f"\ntransforms:\n  - Blur: {{blur_limit: *l{levels}}}\n"


def nested_one_of(levels: int) -> str:
    text, indent = "transforms:\n", "  "
    for _ in range(levels):
        text += f"{indent}- OneOf:\n{indent}    p: 1\n{indent}    transforms:\n"
        indent += "      "
    return text + f"{indent}- HorizontalFlip\n"


def load_in_a_child(path) -> subprocess.CompletedProcess:
    """load_recipe(path) in a child process that cannot hang this test (old code read a
    FIFO's path and waited forever for a writer)."""
    code = ("import sys\nfrom augkit.core.errors import RecipeError\nfrom augkit.recipes import load_recipe\n"
            "try:\n    load_recipe(sys.argv[1])\nexcept RecipeError as e:\n    print(e)\n    sys.exit(2)\n")
    return subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, timeout=60)


# --- only regular files -----------------------------------------------------------------------


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="named pipes are POSIX")
def test_a_named_pipe_as_the_recipe_is_refused_without_waiting_for_a_writer(tmp_path):
    fifo = tmp_path / "recipe.yaml"
    os.mkfifo(fifo)

    result = load_in_a_child(fifo)

    assert result.returncode == 2
    assert result.stdout == f"{fifo}: is a named pipe (FIFO), not a regular file; give the path of a recipe file\n"


def test_a_folder_as_the_recipe_is_refused(tmp_path):
    with pytest.raises(RecipeError, match=r"^.*: is a folder, not a regular file; give the path of a recipe file$"):
        load_recipe(tmp_path)


@pytest.mark.skipif(not hasattr(socket, "AF_UNIX"), reason="Unix sockets")
def test_a_socket_as_the_recipe_is_refused(tmp_path):
    path = tmp_path / "s.yaml"
    with socket.socket(socket.AF_UNIX) as server:
        server.bind(str(path))
        with pytest.raises(RecipeError, match=r"is a socket, not a regular file"):
            load_recipe(path)


@pytest.mark.skipif(not os.path.exists("/dev/zero"), reason="needs /dev/zero")
def test_a_device_as_the_recipe_is_refused():
    # /dev/zero never ends: reading it whole would fill memory.
    with pytest.raises(RecipeError, match=r"^/dev/zero: is a character device, not a regular file"):
        load_recipe("/dev/zero")


def test_a_recipe_over_the_size_limit_is_refused_before_it_is_parsed(tmp_path):
    path = tmp_path / "huge.yaml"
    path.write_text("transforms:\n" + "  - HorizontalFlip\n" * (MAX_RECIPE_BYTES // 18 + 1))
    assert path.stat().st_size > MAX_RECIPE_BYTES

    with pytest.raises(RecipeError) as info:
        load_recipe(path)

    assert str(info.value) == f"{path}: is larger than 1 MiB; a recipe is a few hundred lines of YAML"


def test_read_regular_file_reads_a_file_up_to_the_limit_exactly(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(b"x" * 10)
    assert read_regular_file(path, 10) == b"x" * 10
    with pytest.raises(FileRefused, match="larger than 9 bytes"):
        read_regular_file(path, 9)


# --- YAML within limits ---------------------------------------------------------------------------


def test_billion_laughs_is_refused_at_the_alias_that_passes_the_value_limit(tmp_path):
    path = tmp_path / "laughs.yaml"
    path.write_text(billion_laughs())
    assert path.stat().st_size < 1000

    with pytest.raises(RecipeError) as info:
        load_recipe(path)

    assert str(info.value) == (f"{path}:5: more than {MAX_YAML_VALUES:,} values (through aliases: *name repeats "
                               f"what &name marks); a recipe has hundreds")


def test_a_flat_recipe_with_too_many_values_is_refused_where_it_passes_the_limit():
    text = "transforms:\n" + "  - Blur: {blur_limit: [3, 5], p: 0.5}\n" * (MAX_YAML_VALUES // 4)
    with pytest.raises(YAMLProblem, match=f"more than {MAX_YAML_VALUES:,} values; a recipe has hundreds") as info:
        parse_yaml(text)
    assert "aliases" not in info.value.problem
    assert 1 < info.value.line < MAX_YAML_VALUES // 4


def test_a_recursive_alias_is_refused():
    with pytest.raises(YAMLProblem, match="a recursive alias"):
        parse_yaml("transforms: &t [Blur, *t]\n")


def test_a_few_aliases_are_fine():
    data = parse_yaml("common: &c {p: 0.5}\ntransforms:\n  - Blur: *c\n  - CLAHE: *c\n")
    assert data["transforms"][1] == {"CLAHE": {"p": 0.5}}


@pytest.mark.parametrize("text", [
    "transforms:\n  - Blur: {blur_limit: " + "[" * 5000 + "3" + "]" * 5000 + "}\n",
    "transforms:\n  - Blur: {blur_limit: " + "{a: " * 5000 + "3" + "}" * 5000 + "}\n",
    "transforms:\n" + "".join("  " * i + "- \n" for i in range(1, 500)),
], ids=["flow-lists", "flow-mappings", "block-lists"])
def test_yaml_nested_past_the_depth_limit_is_one_line_not_a_recursion_error(text, tmp_path):
    path = tmp_path / "deep.yaml"
    path.write_text(text)
    with pytest.raises(RecipeError) as info:
        load_recipe(path)
    assert str(info.value).endswith(f": nested deeper than {MAX_YAML_DEPTH} levels")
    assert "\n" not in str(info.value)


def test_compositions_nest_up_to_the_limit_and_no_further(tmp_path, small_rgb):
    deepest = tmp_path / "deepest.yaml"
    deepest.write_text(nested_one_of(MAX_COMPOSITION_DEPTH))
    too_deep = tmp_path / "too_deep.yaml"
    too_deep.write_text(nested_one_of(MAX_COMPOSITION_DEPTH + 1))

    recipe = load_recipe(deepest)
    assert recipe(small_rgb, seed=0).shape == small_rgb.shape and recipe.fingerprint

    with pytest.raises(RecipeError) as info:
        load_recipe(too_deep)
    line = 2 + 3 * MAX_COMPOSITION_DEPTH  # the OneOf that is one too deep
    assert str(info.value) == f"{too_deep}:{line}: OneOf: compositions nested deeper than {MAX_COMPOSITION_DEPTH} levels"


def test_150_nested_one_ofs_are_one_line(tmp_path):
    path = tmp_path / "150.yaml"
    path.write_text(nested_one_of(150))
    with pytest.raises(RecipeError, match=f": nested deeper than {MAX_YAML_DEPTH} levels$"):
        load_recipe(path)


def test_more_transforms_than_the_limit_are_refused_once():
    data = {"transforms": ["HorizontalFlip"] * (MAX_TRANSFORMS + 5)}
    with pytest.raises(RecipeError) as info:
        load_recipe(data)
    assert str(info.value) == f"<dict>: more than {MAX_TRANSFORMS} transforms; a recipe lists tens (is this a recipe?)"


# --- the same bounds for a recipe given as Python data ---------------------------------------------


def test_a_recipe_dict_that_contains_itself_is_refused():
    data = {"transforms": []}
    data["transforms"].append(data)
    with pytest.raises(RecipeError, match=r"^<dict>: the recipe contains itself"):
        load_recipe(data)


def test_a_recipe_dict_nested_past_the_depth_limit_is_refused():
    value = 3
    for _ in range(5000):
        value = [value]
    with pytest.raises(RecipeError, match=f"^<dict>: the recipe is nested deeper than {MAX_YAML_DEPTH} levels$"):
        load_recipe({"transforms": [{"Blur": {"blur_limit": value}}]})


def test_check_data_bounds_counts_shared_values_at_their_full_size():
    level = ["ha"] * 10
    for _ in range(6):
        level = [level] * 10  # 10^7 values, a few hundred objects
    assert check_data_bounds({"transforms": level}) == f"holds more than {MAX_YAML_VALUES:,} values"
    assert check_data_bounds({"transforms": [["ha"] * 10] * 10}) is None


def test_lines_are_remembered_for_keys_and_items():
    data = parse_yaml(textwrap.dedent("""\
        seed: 1
        transforms:
          - Blur
          - CLAHE: {p: 1}
        """))
    assert data.key_lines == {"seed": 1, "transforms": 2}
    assert data["transforms"].item_lines == [3, 4]
