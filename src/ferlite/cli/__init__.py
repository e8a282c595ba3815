"""ferlite's command line: thin click commands over library functions.

``ferlite`` is a click group; ``ferlite-train``, ``ferlite-eval`` and ``ferlite-demo``
run the same commands directly.
"""

from __future__ import annotations

import click

from ferlite.cli.bulk import bulk_cmd
from ferlite.cli.demo import demo_cmd
from ferlite.cli.eval import eval_cmd
from ferlite.cli.export import export_cmd
from ferlite.cli.prepare import prepare_cmd
from ferlite.cli.train import train_cmd
from ferlite.cli.weights import weights_cmd


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="ferlite")
def main() -> None:
    """ferlite: tiny facial expression recognition models trained on FER+ soft labels."""


main.add_command(train_cmd, "train")
main.add_command(eval_cmd, "eval")
main.add_command(demo_cmd, "demo")
main.add_command(prepare_cmd, "prepare")
main.add_command(weights_cmd, "weights")
main.add_command(export_cmd, "export")
main.add_command(bulk_cmd, "bulk")

train_main = train_cmd
eval_main = eval_cmd
demo_main = demo_cmd
