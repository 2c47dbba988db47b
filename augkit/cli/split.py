"""``augkit split SRC``: a train/val/test manifest, stratified, exact and reproducible."""

from __future__ import annotations

import os

import click

from augkit.cli import options
from augkit.core.words import plural


@click.command()
@click.argument("src", callback=options.not_empty)
@click.option("-o", "--output", default=None, type=click.Path(dir_okay=False), callback=options.not_empty,
              help="Manifest to write (path, label, split), paths relative to its folder "
                   "[default: SRC/split.csv, next to the images, so their keys stay the same].")
@click.option("--val", type=float, default=0.2, show_default=True, help="Fraction of each class for validation.")
@click.option("--test", type=float, default=0.1, show_default=True, help="Fraction of each class for test.")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True, help="Same seed, same split.")
@click.option("--stratify/--no-stratify", default=True, show_default=True,
              help="Split each class separately (exact counts per class), or the dataset as a whole.")
@click.option("--materialize", "materialize_dir", default=None, metavar="DIR",
              help="Also build DIR/<split>/<class>/ from hard links (copies where linking fails).")
@click.option("--copy", "copy_files", is_flag=True, help="With --materialize: copy files instead of hard-linking.")
@click.option("--overwrite", is_flag=True, help="Replace an existing manifest that holds another split.")
@options.split
def split(src, output, val, test, seed, stratify, materialize_dir, copy_files, overwrite, split) -> None:
    """Assign every image of SRC to train, val or test and write the manifest OUTPUT.

    Each class of n images gets floor(n * fraction) per split, and the images left over
    go to the splits with the largest remainders (ties: train, val, test). Use the
    manifest as SRC of `augkit augment` or `augkit stats` with `--split train`.
    Files are never moved; --materialize links (or copies) them into a new folder.
    """
    from augkit.input.discovery import discover
    from augkit.core.errors import UsageError
    from augkit.stages.split import (SPLITS, check_manifest_path, check_materialize_target, check_not_part_of_a_split,
                                     materialize, split_samples, write_manifest)

    if copy_files and not materialize_dir:
        raise UsageError("--copy only applies with --materialize DIR")
    if split is None:
        check_not_part_of_a_split(src)
    dataset = discover(src, split=split, for_training=False)  # its own earlier manifest, say
    if dataset.kind == "shards":  # a manifest lists files; a shard's members are not
        raise UsageError(f"{src}: is tar shards; split lists image files in a CSV manifest: split the folder the "
                         f"shards were made from, then make shards of each split (augkit augment --output-format "
                         f"webdataset)")
    if materialize_dir:
        check_materialize_target(materialize_dir, dataset.root)
    if output is None:
        output = os.path.join(dataset.root, "split.csv")
    check_manifest_path(output, overwrite, dataset)  # before the work
    result = split_samples(dataset.samples, val=val, test=test, seed=seed, stratify=stratify)
    written = write_manifest(result, output, overwrite=overwrite, dataset=dataset)
    totals = {s: sum(c[s] for c in result.counts.values()) for s in SPLITS}  # images: they add up to the rows
    labelled = any(g for g in result.counts)
    how = "stratified by class" if stratify and labelled else "not stratified"
    click.echo(f"{len(result.rows)} images -> " + ", ".join(f"{totals[s]} {s}" for s in SPLITS) + f" ({how}, seed {seed})")
    if stratify and labelled and len(result.counts) <= 20:
        for group, counts in result.counts.items():
            click.echo(f"  {group or '(unlabelled)'}: " + " / ".join(str(counts[s]) for s in SPLITS))
    if result.duplicates:
        click.echo(f"{plural(result.duplicates, 'path is', 'paths are')} the same file as another (same inode or "
                   f"bytes): {plural(result.duplicate_groups, 'group')} of identical files, each kept whole in one "
                   f"split", err=True)
    if result.empty:
        where = ", ".join(f"{g or '(unlabelled)'} {s}" for g, s in result.empty[:5])
        more = f" and {len(result.empty) - 5} more" if len(result.empty) > 5 else ""
        click.echo(f"warning: too few images to give every class a file in every split: none for {where}{more}",
                   err=True)
    click.echo(f"{'wrote' if written else 'unchanged:'} {output}")
    if materialize_dir:
        done = materialize(result, materialize_dir, dataset.root, copy=copy_files)
        click.echo(f"materialized {materialize_dir}: {done['linked']} hard links, {done['copied']} copies")
