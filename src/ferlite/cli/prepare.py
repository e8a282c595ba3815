"""``ferlite prepare``: the raw fer2013.csv + fer2013new.csv pair to the FER+ folder layout."""

from __future__ import annotations

import click


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("fer2013_csv", type=click.Path(exists=True, dir_okay=False))
@click.argument("ferplus_csv", type=click.Path(exists=True, dir_okay=False))
@click.argument("output_dir", type=click.Path(file_okay=False))
@click.option("--skip-bad", is_flag=True, help="Skip malformed rows (reported) instead of stopping.")
def prepare_cmd(fer2013_csv, ferplus_csv, output_dir, skip_bad) -> None:
    """Write FER2013Train/Valid/Test folders (PNGs + label.csv) from FER2013_CSV and FERPLUS_CSV (fer2013new.csv)."""
    from ferlite.data import DataError, prepare_ferplus

    try:
        written = prepare_ferplus(fer2013_csv, ferplus_csv, output_dir, skip_bad=skip_bad)
    except DataError as exc:
        raise click.ClickException(str(exc)) from exc
    for split, n in written.items():
        click.echo(f"{split}: {n} faces")
