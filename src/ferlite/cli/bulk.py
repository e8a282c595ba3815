"""``ferlite bulk``: annotate a folder, a glob, a list of paths or a video on Ray Data into one Parquet file."""

from __future__ import annotations

import json

import click

from ferlite.cli._once import OnceCommand
from ferlite.detect import DETECTORS


@click.command(cls=OnceCommand, context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("input_path", metavar="INPUT")
@click.option("--output", "-o", required=True, type=click.Path(dir_okay=False), metavar="OUT.parquet",
              help="The Parquet file to write: source, frame, face, x, y, w, h, score, one column per class, error.")
@click.option("--address", default=None, metavar="ADDRESS",
              help="Ray cluster to run on, e.g. ray://head:10001 or auto  "
                   "[default: a local Ray on this machine's cores]")
@click.option("--model", default=None, metavar="NAME_OR_PATH",
              help="Registered weights name, alias (fast, default) or .keras/.tflite file  "
                   "[default: the bundled float16 TFLite model]")
@click.option("--detector", type=click.Choice(DETECTORS), default="auto", show_default=True,
              help="Face detector; auto is yunet (bundled); mediapipe needs the mediapipe extra.")
@click.option("--actors", type=click.IntRange(min=1), default=None,
              help="Actors in the pool, each with the model loaded once  [default: one per CPU of the cluster]")
@click.option("--batch-size", type=click.IntRange(min=1), default=16, show_default=True,
              help="Images or video frames per actor call.")
@click.option("--overwrite", is_flag=True, help="Replace OUT.parquet if it exists (otherwise the run is refused).")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as one JSON object on stdout.")
def bulk_cmd(input_path: str, output: str, address: str | None, model: str | None, detector: str,
             actors: int | None, batch_size: int, overwrite: bool, as_json: bool) -> None:
    """Detect and classify every face of INPUT on Ray Data; write the rows to one Parquet file.

    INPUT is a folder (its files), a glob pattern (quote it; ** recurses), a .txt file of paths (one per
    line, relative to it) or an image or video file. Unreadable files are counted and get a row with
    the reason in the error column; they never stop the run. Needs: pip install "ferlite[bulk]".
    """
    from ferlite.bulk import annotate

    try:
        if model is not None:  # a damaged or foreign model file is refused here, not by every Ray actor
            from ferlite.modelfile import check_model_file
            from ferlite.weights import resolve_model

            check_model_file(resolve_model(model))
        summary = annotate(input_path, output, address=address, model=model, detector=detector,
                           num_actors=actors, batch_size=batch_size, overwrite=overwrite)
    except (ImportError, OSError, ValueError, RuntimeError) as exc:  # no Ray; output exists; bad input; job failed
        raise click.ClickException(str(exc)) from exc
    if as_json:
        click.echo(json.dumps(summary.to_json()))
        return
    click.echo(f"{summary.inputs} input(s): {summary.images} image(s) and {summary.frames} video frame(s) read, "
               f"{summary.unreadable} unreadable, {summary.no_face} without a face")
    click.echo(f"{summary.faces} face(s) written to {summary.output} in {summary.seconds:.1f} s "
               f"(detector: {summary.detector})")
