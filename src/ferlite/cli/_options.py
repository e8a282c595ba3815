"""Click options shared by several commands, defined once."""

from __future__ import annotations

from collections.abc import Callable

import click

_BALANCE = ("Strength of the class-balanced decision: the outputs divided by the model's training class prior to this "
            "power (0: the model's own outputs, FER+'s vote distribution; 1: the full correction)")


def balance_option(default_help: str = "the model's recorded strength, 0.7 for the bundled models; 0 for a model "
                                       "that records none") -> Callable:
    """The ``--balance`` option (None when not given), its default described by ``default_help``."""
    return click.option("--balance", type=click.FloatRange(0.0, 1.0), default=None,
                        help=f"{_BALANCE}  [default: {default_help}]")
