"""Click commands that refuse an option given twice, instead of keeping its last value without a word.

Click lets a later ``--model b`` silently replace an earlier ``--model a``. Every ferlite command is an
:class:`OnceCommand` (``@click.command(cls=OnceCommand)``, or a subcommand of an :class:`OnceGroup`): an
option that takes one value and is repeated is a usage error naming the option and how often it came.
Options meant to repeat say so with ``multiple=True`` (``ferlite demo --image a.jpg --image b.jpg``).
"""

from __future__ import annotations

import click


def repeated_options(params: list[click.Parameter]) -> dict[click.Option, int]:
    """The options of ``params`` (in parse order, one entry per occurrence) that take one value and came more than
    once, with how many times each came. A plain flag (``--no-display``) cannot take two values: it is left out;
    an on/off pair (``--logit-correction/--no-logit-correction``) is one option that can."""
    counts: dict[click.Parameter, int] = {}
    for param in params:
        counts[param] = counts.get(param, 0) + 1
    return {param: n for param, n in counts.items()
            if n > 1 and isinstance(param, click.Option) and not param.multiple and not param.count
            and not (param.is_flag and not param.secondary_opts)}


class OnceCommand(click.Command):
    """A click command whose single-value options may be given once only (see the module's docstring)."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        """Refuse a repeated single-value option, then parse as click does."""
        if not ctx.resilient_parsing:
            _, _, order = self.make_parser(ctx).parse_args(args=list(args))
            repeated = repeated_options(order)
            if repeated:
                given = ", ".join(f"{' / '.join(repr(name) for name in (*param.opts, *param.secondary_opts))} {n} times"
                                  for param, n in repeated.items())
                raise click.UsageError(f"got {given} (an option that takes one value is expected once)", ctx)
        return super().parse_args(ctx, args)


class OnceGroup(click.Group):
    """A click group whose subcommands are :class:`OnceCommand`."""

    command_class = OnceCommand
