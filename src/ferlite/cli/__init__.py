"""ferlite's command line: thin click commands over library functions.

``ferlite`` is a click group; ``ferlite-train``, ``ferlite-eval`` and ``ferlite-demo``
run the same commands directly.
"""

from __future__ import annotations

import click

from ferlite.cli.train import train_cmd


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="ferlite")
def main() -> None:
    """ferlite: tiny facial expression recognition models trained on FER+ soft labels."""


main.add_command(train_cmd, "train")

train_main = train_cmd
