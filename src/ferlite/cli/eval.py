"""``ferlite eval`` / ``ferlite-eval``: score a model on a FER+ split folder, a CSV dataset or a folder per class."""

from __future__ import annotations

import json

import click

from ferlite.cli._once import OnceCommand
from ferlite.cli._options import balance_option
from ferlite.detect import DETECTORS


def _class_map(ctx: click.Context, param: click.Parameter, value: str | None) -> dict[str, str]:
    from ferlite.datasets import parse_class_map

    try:
        return parse_class_map(value) if value is not None else {}
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


def _class_list(ctx: click.Context, param: click.Parameter, value: str | None) -> tuple[str, ...]:
    names = tuple(name.strip() for name in value.split(",")) if value is not None else ()
    if any(not name for name in names):
        raise click.BadParameter(f"expected class names separated by commas, e.g. contempt or contempt,disgust; got "
                                 f"{value!r}")
    return names


@click.command(cls=OnceCommand, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--data", "data_dir", required=True, type=click.Path(exists=True),
              help="FER+ split folder (label.csv + 48x48 PNGs), e.g. FER2013Valid; a CSV dataset "
                   "(image,<class>,...) whose classes are the model's; or a folder with one sub-folder of "
                   "images per class (DIR/<class>/*.jpg), named as the model's classes.")
@click.option("--model", default=None, metavar="NAME_OR_PATH",
              help="Registered weights name or .keras/.tflite file (default: the bundled pretrained model).")
@click.option("--class-map", default=None, metavar="FOLDER=CLASS,...", callback=_class_map,
              help="Folder per class: rename folders to the model's classes, e.g. happy=happiness,angry=anger "
                   "(other folder names must be classes already).")
@click.option("--detect", is_flag=True,
              help="Folder per class: the images are whole photos; score the largest face the detector finds "
                   "(cropped as ferlite demo does) and count the photos without one.")
@click.option("--detector", type=click.Choice(DETECTORS), default="auto", show_default=True,
              help="Face detector for --detect; auto is yunet (bundled); mediapipe needs the mediapipe extra.")
@click.option("--min-images", type=click.IntRange(min=1), default=None, metavar="N",
              help="Folder per class: score only the classes with at least N images (default 20); the others are "
                   "listed as left out.")
@click.option("--exclude", default=None, metavar="CLASS,...", callback=_class_list,
              help="Folder per class: leave these classes out by name, e.g. contempt when comparing with models "
                   "that have no contempt.")
@balance_option("on a folder per class, what Recognizer gives, the model's recorded strength (0.7 for the "
                "bundled models); on FER+ and CSV votes, 0")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object on stdout instead of the report.")
@click.option("--plots", type=click.Path(file_okay=False), default=None, metavar="DIR",
              help="Write confusion_matrix.png and class_mae.png (class_recall.png for a folder per class) into DIR.")
@click.option("--skip-bad", is_flag=True,
              help="Skip malformed rows and unreadable images (counted and listed on stderr) instead of stopping.")
@click.option("--batch-size", type=click.IntRange(min=1), default=256, show_default=True,
              help="Faces per forward pass.")
def eval_cmd(data_dir: str, model: str | None, class_map: dict[str, str], detect: bool, detector: str,
             min_images: int | None, exclude: tuple[str, ...], balance: float | None, as_json: bool,
             plots: str | None, skip_bad: bool, batch_size: int) -> None:
    """Evaluate a model: top-1, class-wise and total MAE and KL, sample counts and the confusion matrix.

    On a FER+ folder the metrics use the seed9 protocol and major8 accuracy the FER+ paper's majority
    protocol; on a CSV dataset they use each row's normalised votes (no major8). On a folder per class
    (DIR/<class>/*.jpg) they follow the real-photo protocol: the classes with at least --min-images images
    are scored (less --exclude), the predicted class is the argmax over them, a photo without a face (--detect)
    is a miss; the balanced accuracy (mean class-wise recall) comes first, then the accuracy, the recall of
    each class, the confusion matrix and the photos without a face (no MAE, KL or major8). Photos are scored
    under the decision Recognizer gives (the model's class-balanced strength), votes under the model's own
    outputs, unless --balance says otherwise."""
    from ferlite.evaluate import evaluate
    from ferlite.report import format_report, plot_report

    try:
        report = evaluate(model, data_dir, skip_bad=skip_bad, batch_size=batch_size, class_map=class_map,
                          detect=detect, detector=detector, min_images=min_images, exclude=exclude, balance=balance)
        written = plot_report(report, plots) if plots else []
    except (OSError, ValueError) as exc:  # DataError is a ValueError; missing files and weights are OSErrors
        raise click.ClickException(str(exc)) from exc
    for file, line, reason in report.skipped:
        click.echo(f"skipped {file}" + (f", line {line}" if line else "") + f": {reason}", err=True)
    for path in written:
        click.echo(f"wrote {path}", err=True)
    click.echo(json.dumps(report.to_json()) if as_json else format_report(report))
