"""``ferlite eval`` / ``ferlite-eval``: score a model on a FER+ split folder or a CSV dataset."""

from __future__ import annotations

import json

import click


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--data", "data_dir", required=True, type=click.Path(exists=True),
              help="FER+ split folder (label.csv + 48x48 PNGs), e.g. FER2013Valid, or a CSV dataset "
                   "(image,<class>,...) whose classes are the model's.")
@click.option("--model", default=None, metavar="NAME_OR_PATH",
              help="Registered weights name or .keras/.tflite file (default: the bundled pretrained model).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object on stdout instead of the report.")
@click.option("--plots", type=click.Path(file_okay=False), default=None, metavar="DIR",
              help="Write confusion_matrix.png and class_mae.png into DIR.")
@click.option("--skip-bad", is_flag=True,
              help="Skip malformed rows and unreadable images (counted and listed on stderr) instead of stopping.")
@click.option("--batch-size", type=click.IntRange(min=1), default=256, show_default=True,
              help="Faces per forward pass.")
def eval_cmd(data_dir: str, model: str | None, as_json: bool, plots: str | None, skip_bad: bool,
             batch_size: int) -> None:
    """Evaluate a model: top-1, class-wise and total MAE and KL, sample counts and the confusion matrix.

    On a FER+ folder the metrics use the seed9 protocol and major8 accuracy the FER+ paper's majority
    protocol; on a CSV dataset they use each row's normalised votes (no major8)."""
    from ferlite.evaluate import evaluate, format_report, plot_report

    try:
        report = evaluate(model, data_dir, skip_bad=skip_bad, batch_size=batch_size)
        written = plot_report(report, plots) if plots else []
    except (OSError, ValueError) as exc:  # DataError is a ValueError; missing files and weights are OSErrors
        raise click.ClickException(str(exc)) from exc
    for file, line, reason in report.skipped:
        click.echo(f"skipped {file}, line {line}: {reason}", err=True)
    for path in written:
        click.echo(f"wrote {path}", err=True)
    click.echo(json.dumps(report.to_json()) if as_json else format_report(report))
