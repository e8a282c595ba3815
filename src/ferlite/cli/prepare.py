"""``ferlite prepare``: the raw fer2013.csv + fer2013new.csv pair to the FER+ folder layout."""

from __future__ import annotations

import warnings
from pathlib import Path

import click

from ferlite.cli._once import OnceCommand


@click.command(cls=OnceCommand, context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("fer2013_csv", type=click.Path(exists=True, dir_okay=False))
@click.argument("ferplus_csv", type=click.Path(exists=True, dir_okay=False))
@click.argument("output_dir", type=click.Path(file_okay=False))
@click.option("--skip-bad", is_flag=True, help="Skip malformed rows (each one reported) instead of stopping.")
def prepare_cmd(fer2013_csv: str, ferplus_csv: str, output_dir: str, skip_bad: bool) -> None:
    """Write FER2013Train/Valid/Test folders (PNGs + label.csv) from FER2013_CSV and FERPLUS_CSV (fer2013new.csv).

    Rows of the two files are matched by position, as in Microsoft's FERPlus scripts; faces
    without a FER+ image name are left out. Nothing is written unless every row is valid
    (or --skip-bad is given).
    """
    from ferlite.datasets import DataError, prepare_ferplus

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            written = prepare_ferplus(fer2013_csv, ferplus_csv, output_dir, skip_bad=skip_bad)
        except (DataError, OSError) as exc:
            raise click.ClickException(str(exc)) from exc
    for w in caught:
        click.echo(f"skipped: {w.message}", err=True)
    for split, n in written.items():
        click.echo(f"{split}: {n} faces -> {Path(output_dir) / split}")
    if caught:
        click.echo(f"{len(caught)} bad row(s) skipped", err=True)
