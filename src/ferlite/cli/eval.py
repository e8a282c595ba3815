"""``ferlite eval`` / ``ferlite-eval``: score a model on a FER+ split."""

from __future__ import annotations

import json

import click


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--data", "data_dir", required=True, type=click.Path(file_okay=False),
              help="FER+ split folder (label.csv + PNGs).")
@click.option("--model", default=None, help="Registered name or .keras/.tflite path (default: the bundled model).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object on stdout instead of the report.")
@click.option("--plots", type=click.Path(file_okay=False), default=None,
              help="Write confusion_matrix.png and class_mae.png here.")
@click.option("--skip-bad", is_flag=True, help="Skip unreadable images and malformed rows (counted) instead of stopping.")
@click.option("--batch-size", default=256, show_default=True)
def eval_cmd(data_dir, model, as_json, plots, skip_bad, batch_size) -> None:
    """Evaluate a model: top-1, class-wise and total MAE (seed9), major8 accuracy, KL, confusion matrix."""
    from ferlite.data import DataError
    from ferlite.evaluate import evaluate, format_report, plot_report

    try:
        report = evaluate(model, data_dir, skip_bad=skip_bad, batch_size=batch_size)
    except (DataError, FileNotFoundError, ValueError, OSError) as exc:
        raise click.ClickException(str(exc)) from exc
    for file, line, reason in report.skipped:
        click.echo(f"skipped {file}, line {line}: {reason}", err=True)
    if plots:
        for p in plot_report(report, plots):
            click.echo(f"wrote {p}", err=True)
    click.echo(json.dumps(report.to_json()) if as_json else format_report(report))
