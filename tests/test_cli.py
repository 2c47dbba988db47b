"""The ``augkit`` command: exit codes, the words users read, and files written."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import cv2
import pytest
from click.testing import CliRunner

from augkit.cli import cli

REPO = Path(__file__).resolve().parent.parent
STANDARD = REPO / "recipes" / "standard.yaml"
CAT_PHOTO = REPO / "sample_data" / "cat" / "cat_01.jpg"
SAMPLE_DATA = REPO / "sample_data"
GAP = 4  # pixels between preview tiles


@pytest.fixture
def runner():
    return CliRunner()


@pytest.fixture
def bad_recipe(tmp_path):
    """A recipe with a 1.x argument on its fourth line."""
    path = tmp_path / "bad.yaml"
    path.write_text("transforms:\n  - HorizontalFlip: {p: 0.5}\n  - CoarseDropout:\n      max_holes: 8\n")
    return path


def _assert_one_line_error(result, *words: str) -> None:
    assert "Traceback" not in result.output
    assert result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith("Error: ")
    for word in words:
        assert word in result.stderr


# --- the group ------------------------------------------------------------------------------


@pytest.mark.parametrize("args", [["--help"], ["--version"], ["recipe", "--help"], ["preview", "--help"]])
def test_help_and_version_do_not_import_albumentations_or_opencv(args):
    code = (
        "import sys\n"
        "from click.testing import CliRunner\n"
        "from augkit.cli import cli\n"
        f"result = CliRunner().invoke(cli, {args!r})\n"
        "assert result.exit_code == 0, result.output\n"
        "print(result.output)\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('albumentations', 'cv2'))\n"
        "print('HEAVY:', heavy)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "HEAVY: []" in proc.stdout


CTRL_C_AT_START = """
import signal, sys


class CtrlCAtClick:  # the terminal's Ctrl-C, arriving while the command imports click
    def find_spec(self, name, path=None, target=None):
        if name == "click":
            sys.meta_path.remove(self)
            signal.raise_signal(signal.SIGINT)
        return None


sys.meta_path.insert(0, CtrlCAtClick())
from augkit.cli import main  # what the augkit console script does
main()
"""


def test_ctrl_c_while_the_command_starts_prints_one_line_and_no_traceback():
    import signal

    proc = subprocess.run([sys.executable, "-c", CTRL_C_AT_START, "--help"], capture_output=True, text=True,
                          timeout=120, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    assert (proc.returncode, proc.stdout, proc.stderr) == (130, "", "\ninterrupted\n")


@pytest.mark.parametrize("handler", ["signal.default_int_handler", "lambda *args: None", "signal.SIG_IGN"])
def test_importing_the_cli_leaves_a_program_s_ctrl_c_handler_as_it_was(handler):
    code = (f"import signal; handler = {handler}; signal.signal(signal.SIGINT, handler); import augkit.cli; "
            "print(signal.getsignal(signal.SIGINT) is handler)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.stdout == "True\n", proc.stderr


def test_python_m_augkit_shows_the_version():
    from augkit._version import __version__

    proc = subprocess.run([sys.executable, "-m", "augkit", "--version"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0
    assert proc.stdout.strip() == f"augkit, version {__version__}"


def test_help_lists_the_commands(runner):
    result = runner.invoke(cli, ["--help"])
    assert result.exit_code == 0
    for command in ("recipe", "transforms", "preview"):
        assert command in result.output


@pytest.mark.parametrize("command", ["cache-features", "stats", "augment"])
def test_help_of_commands_that_read_tar_shards_says_src_may_be_tar_shards(runner, command):
    text = " ".join(runner.invoke(cli, [command, "--help"], terminal_width=200).output.split())
    assert "or WebDataset tar shards (a .tar, a folder of them, or data/shard-{000000..000099}.tar" in text


def test_preview_help_says_max_images_applies_to_a_manifest_too(runner):
    text = " ".join(runner.invoke(cli, ["preview", "--help"], terminal_width=200).output.split())
    assert "When IMAGE is a folder, a manifest or tar shards: how many of its images to show" in text


@pytest.mark.parametrize("command, argument", [("augment", "SRC"), ("stats", "SRC"), ("preview", "IMAGE")])
def test_help_of_split_and_label_key_names_the_command_s_own_argument(runner, command, argument):
    text = " ".join(runner.invoke(cli, [command, "--help"], terminal_width=200).output.split())
    assert f"With a split manifest as {argument}:" in text and f"With WebDataset tar shards as {argument}:" in text


def test_help_of_shard_images_states_its_default_in_images(runner):
    text = " ".join(runner.invoke(cli, ["cache-features", "--help"], terminal_width=200).output.split())
    assert "Images per shard file (default: 4096 // --views, at least 1, so that a shard holds up to 4096 rows" in text


# --- augkit recipe check / export -----------------------------------------------------------------


def test_recipe_check_prints_the_resolved_pipeline(runner):
    result = runner.invoke(cli, ["recipe", "check", str(STANDARD)])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == f"{STANDARD}: seed (none)"
    assert lines[1].startswith("  SmallestMaxSize(")
    (crop,) = [line for line in lines if line.startswith("  RandomCrop(")]
    assert "height=224" in crop and "width=224" in crop
    assert "noise_type" not in result.stdout  # RGBShift's internals are no argument of it
    assert "num_holes_range=(1, 2)" in result.stdout  # a default the recipe did not write
    assert lines[-1] == f"OK: {STANDARD} is valid"


def test_recipe_check_of_a_bad_recipe_exits_2_with_one_line_naming_file_and_line(runner, bad_recipe):
    result = runner.invoke(cli, ["recipe", "check", str(bad_recipe)])
    assert result.exit_code == 2
    _assert_one_line_error(result, f"{bad_recipe}:4:", "'max_holes'", "num_holes_range")


def test_recipe_check_of_a_missing_file_exits_2(runner, tmp_path):
    result = runner.invoke(cli, ["recipe", "check", str(tmp_path / "nope.yaml")])
    assert result.exit_code == 2
    _assert_one_line_error(result, "nope.yaml: recipe file not found")


def test_recipe_export_writes_json_that_albumentations_loads(runner, tmp_path):
    from augkit.core._albu import albumentations

    A = albumentations()
    out = tmp_path / "standard.json"
    result = runner.invoke(cli, ["recipe", "export", str(STANDARD), str(out)])
    assert result.exit_code == 0, result.output
    assert result.stdout == f"{out}\n"
    assert json.loads(out.read_text())["__version__"] == A.__version__
    compose = A.load(str(out))
    assert [type(t).__name__ for t in compose.transforms][:3] == ["SmallestMaxSize", "RandomCrop", "HorizontalFlip"]


def test_recipe_export_replaces_only_its_own_file_and_never_the_recipe(runner, tmp_path):
    recipe, mine, out = tmp_path / "r.yaml", tmp_path / "notes.json", tmp_path / "r.json"
    recipe.write_text(STANDARD.read_text())
    mine.write_text('{"my": "notes"}')
    for args in (["--overwrite"], []):
        result = runner.invoke(cli, ["recipe", "export", str(recipe), str(recipe), *args])
        assert result.exit_code == 2
        _assert_one_line_error(result, f"OUT {recipe}: is one of the input files", "never writes over its inputs")
    result = runner.invoke(cli, ["recipe", "export", str(recipe), str(mine)])
    assert result.exit_code == 2
    _assert_one_line_error(result, "exists and is not a pipeline augkit recipe export wrote", "--overwrite")
    assert recipe.read_text() == STANDARD.read_text() and mine.read_text() == '{"my": "notes"}'
    for _ in range(2):  # its own file, the second time
        assert runner.invoke(cli, ["recipe", "export", str(recipe), str(out)]).exit_code == 0
    assert runner.invoke(cli, ["recipe", "export", str(recipe), str(mine), "--overwrite"]).exit_code == 0
    assert json.loads(mine.read_text())["written_by"] == "augkit recipe export"


def test_recipe_export_yaml_by_suffix(runner, tmp_path):
    from augkit.core._albu import albumentations

    out = tmp_path / "standard.yml"
    result = runner.invoke(cli, ["recipe", "export", str(STANDARD), str(out)])
    assert result.exit_code == 0, result.output
    assert isinstance(albumentations().load(str(out), data_format="yaml"), albumentations().Compose)


# --- augkit transforms -------------------------------------------------------------------------


def test_transforms_lists_albumentations_and_augkit_names(runner):
    result = runner.invoke(cli, ["transforms"])
    assert result.exit_code == 0
    names = [line.split()[0] for line in result.stdout.splitlines() if line.strip()]
    assert "HorizontalFlip" in names and "PCAColor" in names and "OneOf" in names
    assert "BBoxSafeRandomCrop" not in names
    assert "PCAColor" in result.stdout and "[augkit]" in result.stdout


def test_transforms_name_shows_arguments_and_defaults(runner):
    result = runner.invoke(cli, ["transforms", "CoarseDropout"])
    assert result.exit_code == 0
    assert result.stdout.startswith("CoarseDropout (transform)")
    assert "  num_holes_range: default (1, 2)" in result.stdout
    assert "max_holes" not in result.stdout


def test_transforms_shows_required_arguments(runner):
    result = runner.invoke(cli, ["transforms", "RandomCrop"])
    assert result.exit_code == 0
    assert "  height: (required)" in result.stdout


def test_transforms_unknown_name_exits_2_with_a_suggestion(runner):
    result = runner.invoke(cli, ["transforms", "horizontalflp"])
    assert result.exit_code == 2
    _assert_one_line_error(result, "unknown transform 'horizontalflp'", "did you mean HorizontalFlip")


# --- augkit preview ---------------------------------------------------------------------------------


def _png_size(path: Path) -> tuple[int, int]:
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    height, width = cv2.imread(str(path)).shape[:2]
    return height, width


def test_preview_of_one_photo_writes_a_png_grid(runner, tmp_path):
    out = tmp_path / "x.png"
    result = runner.invoke(cli, ["preview", str(STANDARD), str(CAT_PHOTO), "-o", str(out), "-n", "3", "--tile", "64"])
    assert result.exit_code == 0, result.output
    assert result.stdout == f"{out}\n"
    height, width = _png_size(out)
    columns = math.ceil(math.sqrt(3 + 1))
    assert width == columns * (64 + GAP) + GAP
    assert (height - GAP) % 2 == 0 and (height - GAP) // 2 > 64 + GAP  # two rows of tile + caption


def test_preview_with_the_same_seed_writes_the_same_file(runner, tmp_path):
    outs = [tmp_path / "a.png", tmp_path / "b.png"]
    for out in outs:
        result = runner.invoke(cli, ["preview", str(STANDARD), str(CAT_PHOTO), "-o", str(out), "-n", "2",
                                     "--tile", "64", "--seed", "5"])
        assert result.exit_code == 0, result.output
    assert outs[0].read_bytes() == outs[1].read_bytes()


def test_preview_of_a_folder_shows_one_row_per_chosen_image(runner, tmp_path):
    out = tmp_path / "grid.png"
    result = runner.invoke(cli, ["preview", str(STANDARD), str(SAMPLE_DATA), "-o", str(out), "-n", "2",
                                 "--tile", "64", "--max-images", "3"])
    assert result.exit_code == 0, result.output
    height, width = _png_size(out)
    assert width == (2 + 1) * (64 + GAP) + GAP
    assert (height - GAP) % 3 == 0


def test_preview_of_a_non_image_exits_1_with_one_line_reason(runner, tmp_path):
    notes = tmp_path / "notes.jpg"
    notes.write_text("these are notes, not pixels\n")
    out = tmp_path / "x.png"
    result = runner.invoke(cli, ["preview", str(STANDARD), str(notes), "-o", str(out)])
    assert result.exit_code == 1
    _assert_one_line_error(result, str(notes))
    assert not out.exists()


def test_preview_refuses_to_overwrite_its_input(runner, tmp_path):
    photo = tmp_path / "cat.png"
    photo.write_bytes(b"not even read")
    result = runner.invoke(cli, ["preview", str(STANDARD), str(photo), "-o", str(photo)])
    assert result.exit_code == 2
    _assert_one_line_error(result, "is one of the input images", "-o")
    assert photo.read_bytes() == b"not even read"


def test_preview_with_a_bad_recipe_exits_2(runner, bad_recipe, tmp_path):
    result = runner.invoke(cli, ["preview", str(bad_recipe), str(CAT_PHOTO), "-o", str(tmp_path / "x.png")])
    assert result.exit_code == 2
    _assert_one_line_error(result, f"{bad_recipe}:4:")


@pytest.mark.parametrize("recipe", sorted((REPO / "recipes").glob("*.yaml")), ids=lambda p: p.stem)
def test_preview_works_with_every_ready_recipe(runner, tmp_path, recipe):
    out = tmp_path / f"{recipe.stem}.png"
    result = runner.invoke(cli, ["preview", str(recipe), str(CAT_PHOTO), "-o", str(out), "-n", "2", "--tile", "96"])
    assert result.exit_code == 0, result.output
    height, width = _png_size(out)
    assert width == 2 * (96 + GAP) + GAP and height > 2 * 96


# --- a full, read-only or forbidden disk: one line, exit 1, nothing half-written -------------


def refuse_writes(monkeypatch, code: int, after: int = 0):
    """Every file augkit writes whole (images and reports alike) fails with ``code`` once
    ``after`` writes have gone through, as a disk that fills up or turns read-only does."""
    import errno as errno_names
    import os

    import augkit.core.files
    import augkit.input.encoding

    real = augkit.core.files.write_bytes_atomic
    done = [0]

    def write(path, data, **kw):
        done[0] += 1
        if done[0] > after:
            raise OSError(code, os.strerror(code), os.fspath(path))
        return real(path, data, **kw)

    monkeypatch.setattr(augkit.core.files, "write_bytes_atomic", write)
    monkeypatch.setattr(augkit.input.encoding, "write_bytes_atomic", write)
    return errno_names.errorcode[code]


@pytest.mark.parametrize("code, fix", [(28, "free some space"), (30, "read-only"), (13, "permission denied")])
def test_a_disk_that_refuses_writes_is_one_line_and_exit_1_in_every_command(runner, tmp_path, monkeypatch, code, fix):
    refuse_writes(monkeypatch, code)
    commands = [
        ["augment", STANDARD, SAMPLE_DATA, tmp_path / "out", "-w", 0],
        ["stats", SAMPLE_DATA, "-o", tmp_path / "stats.json", "-w", 0],
        ["preview", STANDARD, CAT_PHOTO, "-o", tmp_path / "preview.png"],
        ["split", SAMPLE_DATA, "-o", tmp_path / "split.csv"],
    ]
    for args in commands:
        result = runner.invoke(cli, [str(a) for a in args])
        assert result.exit_code == 1, (args, result.output)
        _assert_one_line_error(result)
        assert fix in result.stderr
    assert not [p for p in tmp_path.rglob("*") if p.is_file() and p.name != ".augkit-lock"]  # nothing half-written


def test_augment_on_a_disk_that_fills_up_resumes_to_the_same_result_once_space_is_freed(runner, tmp_path,
                                                                                         monkeypatch):
    out = tmp_path / "out"
    refuse_writes(monkeypatch, 28, after=8)  # the run records, then a few images, then full

    result = runner.invoke(cli, ["augment", str(STANDARD), str(SAMPLE_DATA), str(out), "-w", "0"])

    assert result.exit_code == 1 and "No space left on device" in result.stderr
    assert "Traceback" not in result.output
    monkeypatch.undo()
    assert runner.invoke(cli, ["augment", str(STANDARD), str(SAMPLE_DATA), str(out), "-w", "0"]).exit_code == 0
    assert runner.invoke(cli, ["augment", str(STANDARD), str(SAMPLE_DATA), str(tmp_path / "fresh"), "-w", "0"]).exit_code == 0
    written = {p.relative_to(out): p.read_bytes() for p in out.rglob("*.jpg")}
    fresh = {p.relative_to(tmp_path / "fresh"): p.read_bytes() for p in (tmp_path / "fresh").rglob("*.jpg")}
    assert written == fresh and len(written) == 20


@pytest.mark.parametrize("args", [
    ["augment", STANDARD, SAMPLE_DATA, ""],
    ["augment", STANDARD, "", "out"],
    ["stats", SAMPLE_DATA, "-o", ""],
    ["split", SAMPLE_DATA, "-o", ""],
    ["cache-features", SAMPLE_DATA, "-o", ""],
])
def test_an_empty_path_is_a_usage_error_not_the_current_folder(runner, tmp_path, monkeypatch, args):
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(cli, [str(a) for a in args])
    assert result.exit_code == 2 and "is empty" in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_ctrl_c_in_any_command_is_one_line_and_exit_130(runner, monkeypatch):
    import augkit.stages.preview

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(augkit.stages.preview, "preview", interrupted)
    monkeypatch.setattr(augkit.stages.preview, "sample_captions", interrupted, raising=False)
    result = runner.invoke(cli, ["preview", str(STANDARD), str(CAT_PHOTO), "-o", "x.png"])
    assert result.exit_code == 130 and result.stderr == "\ninterrupted\n"


def _commands_with(option: str):
    import click

    found = []
    for name, command in sorted(cli.commands.items()):
        subcommands = command.commands.items() if isinstance(command, click.Group) else [("", command)]
        for sub, each in subcommands:
            found += [(f"{name} {sub}".strip(), p) for p in each.params if option in getattr(p, "opts", ())]
    return found


def test_max_pixels_0_is_no_limit_in_every_command_that_takes_the_option(runner, tmp_path, monkeypatch):
    import click

    taking = _commands_with("--max-pixels")
    assert {name for name, _ in taking} >= {"augment", "stats", "preview", "stream", "cache-features", "predict"}
    for name, param in taking:
        assert param.type_cast_value(click.Context(click.Command(name)), "0") == 0, name
    monkeypatch.setenv("AUGKIT_MAX_IMAGE_PIXELS", "100")  # every sample photo is larger
    limited = runner.invoke(cli, ["stats", str(SAMPLE_DATA), "-o", str(tmp_path / "a.json"), "-w", "0"])
    assert limited.exit_code == 1 and json.loads((tmp_path / "a.json").read_text())["ok"] == 0
    unlimited = runner.invoke(cli, ["stats", str(SAMPLE_DATA), "-o", str(tmp_path / "b.json"), "-w", "0",
                                    "--max-pixels", "0"])
    assert unlimited.exit_code == 0, unlimited.output
    assert json.loads((tmp_path / "b.json").read_text())["failed"] == 0


@pytest.mark.parametrize("value", ["abc", "-5", "1.5"])
@pytest.mark.parametrize("command", [
    ["augment", STANDARD, SAMPLE_DATA, "{tmp}/out", "-w", 2],
    ["stats", SAMPLE_DATA, "-o", "{tmp}/stats.json", "-w", 2],
    ["cache-features", SAMPLE_DATA, "-o", "{tmp}/cache", "--weights", "{tmp}/none.onnx"],
])
def test_a_bad_max_pixels_variable_is_one_usage_error_not_a_row_per_image(runner, tmp_path, monkeypatch, value,
                                                                          command):
    monkeypatch.setenv("AUGKIT_MAX_IMAGE_PIXELS", value)
    result = runner.invoke(cli, [str(a).replace("{tmp}", str(tmp_path)) for a in command])
    assert result.exit_code == 2, result.output
    _assert_one_line_error(result)
    assert "AUGKIT_MAX_IMAGE_PIXELS" in result.stderr and list(tmp_path.iterdir()) == []
