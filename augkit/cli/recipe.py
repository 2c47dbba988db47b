"""``augkit recipe check|export`` and ``augkit transforms``."""

from __future__ import annotations

import inspect

import click


@click.group()
def recipe() -> None:
    """Check a recipe, or export it in albumentations' own format."""


@recipe.command()
@click.argument("recipe_path", metavar="RECIPE")
def check(recipe_path: str) -> None:
    """Validate RECIPE and print the resolved pipeline (every argument, defaults included)
    and what it returns: augkit's commands use only a recipe that returns uint8 RGB."""
    from augkit.recipes import load_recipe

    loaded = load_recipe(recipe_path)
    click.echo(loaded.describe())
    click.echo(f"output: {loaded.describe_output()}")
    click.echo(f"OK: {recipe_path} is valid")


@recipe.command()
@click.argument("recipe_path", metavar="RECIPE")
@click.argument("out", type=click.Path(dir_okay=False))
@click.option("--format", "data_format", type=click.Choice(["json", "yaml"]), default=None,
              help="Default: from OUT's suffix (.yaml/.yml is yaml, else json).")
def export(recipe_path: str, out: str, data_format: str | None) -> None:
    """Write RECIPE as albumentations' A.save would, for A.load(OUT) in any script."""
    from augkit.recipes import load_recipe, save_albumentations

    save_albumentations(load_recipe(recipe_path), out, data_format)
    click.echo(out)


@click.command()
@click.argument("name", required=False)
def transforms(name: str | None) -> None:
    """List the transforms a recipe can name, or show NAME's arguments and defaults."""
    from augkit.errors import UsageError
    from augkit.transforms import close_matches, registry

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
