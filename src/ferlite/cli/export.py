"""``ferlite export``: write a TFLite model (float32, float16 or full-integer int8) and its sidecar."""

from __future__ import annotations

import click

from ferlite.cli._once import OnceCommand
from ferlite.training.export import LEAKY_RELU_FORMS, QUANTIZE_MODES


@click.command(cls=OnceCommand, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--model", default=None, metavar="NAME_OR_PATH",
              help="Registered weights name, alias (default) or .keras file (default: the default pretrained model).")
@click.option("--format", "fmt", type=click.Choice(["tflite"]), default="tflite", show_default=True,
              help="Output format.")
@click.option("--quantize", type=click.Choice(QUANTIZE_MODES), default="none", show_default=True,
              help="none: float32; float16: half-precision weights; int8: full integer, uint8 in and out.")
@click.option("--output", type=click.Path(dir_okay=False), default=None, metavar="FILE",
              help="The .tflite file to write (default: <model>-fp32.tflite, -fp16.tflite or -int8.tflite "
                   "in the current folder). Its sidecar FILE.json is written beside it.")
@click.option("--calibration-data", type=click.Path(exists=True, file_okay=False), default=None, metavar="DIR",
              help="int8 (needed): the calibration faces, a FER+ split folder (e.g. FER2013Train) or a folder of "
                   "face images.")
@click.option("--num-calibration", type=click.IntRange(min=1), default=300, show_default=True,
              help="int8: how many faces calibrate the activation ranges.")
@click.option("--logit-correction/--no-logit-correction", default=True, show_default=True,
              help="int8: scale the last layer so that the int8 logits are not shrunk against the Keras model's "
                   "(measured on the calibration faces; the sidecar records it).")
@click.option("--leaky-relu", type=click.Choice(LEAKY_RELU_FORMS), default="op", show_default=True,
              help="int8: op: TFLite's LEAKY_RELU op; max: maximum(x, slope * x), which scores the same on XNNPACK "
                   "and on TFLite's built-in kernels, and more accurately, 22% to 24% slower.")
def export_cmd(model: str | None, fmt: str, quantize: str, output: str | None, calibration_data: str | None,
               num_calibration: int, logit_correction: bool, leaky_relu: str) -> None:
    """Export a Keras model to TFLite for LiteRT (Raspberry Pi and other edge boxes)."""
    from ferlite import weights
    from ferlite.training.export import default_output, export_tflite

    try:
        out = output or default_output(weights.resolve_model(model), quantize)
        path = export_tflite(model, out, quantize, calibration_data=calibration_data,
                             num_calibration=num_calibration, correct_logits=logit_correction, leaky_relu=leaky_relu)
    except (OSError, ValueError, RuntimeError) as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"wrote {path} ({path.stat().st_size:,} bytes, {fmt}, quantize={quantize}) "
               f"and {path.with_suffix('.json')}")
