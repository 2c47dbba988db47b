"""``augkit recipe check|export`` and ``augkit transforms``."""

from __future__ import annotations

import inspect
import os

import click


@click.group()
def recipe() -> None:
    """Check a recipe, or export it in albumentations' own format."""


@recipe.command()
@click.argument("recipe_path", metavar="RECIPE")
@click.option("--no-dry-run", is_flag=True,
              help="Only build the recipe; do not run its transforms on synthetic images.")
def check(recipe_path: str, no_dry_run: bool) -> None:
    """Validate RECIPE and print the resolved pipeline (every argument, defaults included),
    what it returns (augkit's commands use only a recipe that returns uint8 RGB) and the
    image size it needs. Then a dry run: each transform alone and the whole recipe on a
    synthetic image, 3 seeds, in a child process limited in time and memory. Every
    problem is reported at once, one line each, with its line in RECIPE (exit 2)."""
    from augkit.core.errors import RecipeError
    from augkit.recipes.probe import PROBE_SEEDS, probe_isolated
    from augkit.recipes import load_recipe

    loaded = load_recipe(recipe_path)
    click.echo(loaded.describe())
    click.echo(f"output: {loaded.describe_output()}")
    for need in loaded.describe_input():
        click.echo(f"input: {need}")
    if not no_dry_run:
        report = probe_isolated(recipe_path)
        for note in report.notes:
            click.echo(f"dry run: {note}")
        if report.problems:
            raise RecipeError("\n".join(f"{recipe_path}:{line}: {message}" if line else f"{recipe_path}: {message}"
                                        for line, message in sorted(report.problems, key=lambda p: p[0] or 0)))
        if report.ran:
            what = "the rest" if report.notes else "each transform and the whole recipe"
            click.echo(f"dry run: {what} ran on a {report.side}x{report.side} synthetic image, "
                       f"{len(PROBE_SEEDS)} seeds")
    click.echo(f"OK: {recipe_path} is valid")


@recipe.command()
@click.argument("recipe_path", metavar="RECIPE")
@click.argument("out", type=click.Path(dir_okay=False))
@click.option("--format", "data_format", type=click.Choice(["json", "yaml"]), default=None,
              help="Default: from OUT's suffix (.yaml/.yml is yaml, else json).")
@click.option("--overwrite", is_flag=True, help="Replace a file at OUT that augkit recipe export did not write.")
def export(recipe_path: str, out: str, data_format: str | None, overwrite: bool) -> None:
    """Write RECIPE as albumentations' A.save would, for A.load(OUT) in any script. A file
    at OUT that an export did not write is replaced only with --overwrite, RECIPE never."""
    from augkit.core.files import check_output_file
    from augkit.recipes import is_exported, load_recipe, save_albumentations

    def is_the_recipe(path) -> bool:
        return os.path.exists(path) and os.path.exists(recipe_path) and os.path.samefile(path, recipe_path)

    check_output_file(out, option="OUT", what="a pipeline augkit recipe export wrote", ours=is_exported,
                      overwrite=overwrite, inside_source=is_the_recipe, source=recipe_path, inputs="files")
    loaded = load_recipe(recipe_path)
    save_albumentations(loaded, out, data_format)
    from augkit.recipes.transforms import registry

    ours = sorted(name for name in loaded.names() if registry()[name].kind == "augkit")
    if ours:
        # albumentations finds a class by the name the file gives, among the classes imported.
        modules = ", ".join(sorted({registry()[name].cls.__module__ for name in ours}))
        click.echo(f"note: the file uses augkit's {', '.join(ours)}: `import {modules}` before albumentations' "
                   f"A.load reads it", err=True)
    click.echo(out)


@click.command()
@click.argument("name", required=False)
def transforms(name: str | None) -> None:
    """List the transforms a recipe can name, or show NAME's arguments and defaults."""
    from augkit.core.errors import UsageError
    from augkit.core.words import close_matches
    from augkit.recipes.transforms import registry

    entries = registry()
    if name is None:
        width = max(len(n) for n in entries)
        for entry in entries.values():
            tag = {"composition": " [composition]", "augkit": " [augkit]"}.get(entry.kind, "")
            summary = entry.summary
            if len(summary) > 90:
                summary = summary[:87] + "..."
            click.echo(f"{entry.name:<{width}}  {summary}{tag}")
        click.echo(f"\n{len(entries)} transforms; `augkit transforms NAME` shows one's arguments.")
        return
    entry = entries.get(name)
    if entry is None:
        hint = close_matches(name, list(entries))
        raise UsageError(f"unknown transform {name!r}; " + (f"did you mean {' or '.join(hint)}?" if hint else "run `augkit transforms`"))
    click.echo(f"{entry.name} ({entry.kind})\n  {entry.summary}\n\narguments:")
    for arg, default in entry.arguments.items():
        shown = "(required)" if default is inspect.Parameter.empty else f"default {default!r}"
        click.echo(f"  {arg}: {shown}")
