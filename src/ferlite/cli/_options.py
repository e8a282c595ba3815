"""Click options shared by several commands, defined once."""

from __future__ import annotations

import click

balance_option = click.option(
    "--balance", type=click.FloatRange(0.0, 1.0), default=None,
    help="Strength of the class-balanced decision: the outputs divided by the model's training class prior to this "
         "power (0: the model's own outputs, FER+'s vote distribution; 1: the full correction)  "
         "[default: the model's recorded strength, 0.7 for the bundled models; 0 for a model that records none]")
