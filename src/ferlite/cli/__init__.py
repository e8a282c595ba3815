"""ferlite's command line: thin click commands over library functions.

``ferlite`` is a click group; ``ferlite-train``, ``ferlite-eval`` and ``ferlite-demo`` run the same commands
directly.

Errors: every command ends a failure with one ``Error: ...`` line on stderr and a non-zero exit status (2 for a
usage error, after click's usage lines; 1 otherwise), never a Python traceback. ``ferlite --debug COMMAND`` or
the environment variable ``FERLITE_DEBUG=1`` (which also works for ``ferlite-train`` and the other direct
scripts) shows the traceback and the full message instead. This is implemented once, by :func:`_guard`, which
wraps the callback of every command below. A command that needs an extra which is not installed (``train``,
``ferlite export``, ``eval`` of a ``.keras`` model without TensorFlow, ...) says in that one line which
``pip install "ferlite[...]"`` to run.
"""

from __future__ import annotations

import functools
import os
import traceback
from collections.abc import Callable

import click

from ferlite._extras import MissingExtraError, extra_for, extra_message
from ferlite.cli.bulk import bulk_cmd
from ferlite.cli.demo import demo_cmd
from ferlite.cli.eval import eval_cmd
from ferlite.cli.export import export_cmd
from ferlite.cli.prepare import prepare_cmd
from ferlite.cli.serve import serve_cmd
from ferlite.cli.train import train_cmd
from ferlite.cli.weights import weights_cmd

DEBUG_ENV = "FERLITE_DEBUG"
_DEBUG_HINT = f"--debug or {DEBUG_ENV}=1 shows"


def debug_enabled() -> bool:
    """Whether tracebacks are wanted: ``FERLITE_DEBUG`` set (to anything but ``0``) or ``ferlite --debug``."""
    if os.environ.get(DEBUG_ENV, "").strip() not in ("", "0"):
        return True
    ctx = click.get_current_context(silent=True)
    return bool(ctx and ctx.meta.get("ferlite.debug"))


def _one_line(message: str, *, also: str = "") -> str:
    """The first non-empty line of ``message`` and one hint at what debugging shows: ``also`` (e.g. "the
    traceback") and the other lines of the message, if any. An error is one ``Error:`` line."""
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    shown = [also] if also else []
    if len(lines) > 1:
        shown.append(f"the other {len(lines) - 1} line(s) of the message")
    hint = f"({_DEBUG_HINT} {' and '.join(shown)})" if shown else ""
    return " ".join(part for part in (lines[0] if lines else "", hint) if part)


def _type_name(exc: BaseException) -> str:
    """An exception's type as a reader can look it up: ``ValueError``, but ``cv2.error`` (not a bare ``error``)."""
    kind = type(exc)
    return kind.__qualname__ if kind.__module__ == "builtins" else f"{kind.__module__}.{kind.__qualname__}"


def _guard(callback: Callable) -> Callable:
    """Wrap a command callback: an expected error (ClickException) keeps to one line; any other exception becomes
    one ``Error:`` line naming its type, unless debugging, when it propagates with its traceback."""

    @functools.wraps(callback)
    def guarded(*args, **kwargs):
        try:
            return callback(*args, **kwargs)
        except click.ClickException as exc:
            if debug_enabled():
                if exc.__cause__ is not None:
                    traceback.print_exception(exc.__cause__)
            else:
                exc.message = _one_line(exc.message)
            raise
        except ImportError as exc:  # a part of ferlite whose extra is not installed: say which to install
            extra = extra_for(exc.name)
            if extra is None or debug_enabled():
                raise
            message = str(exc) if isinstance(exc, MissingExtraError) else extra_message(extra, exc.name)
            raise click.ClickException(message) from exc
        except Exception as exc:
            if debug_enabled():
                raise
            text = _one_line(str(exc), also="the traceback")
            sep = ": " if str(exc).strip() else " "  # KeyError() and the like have no message
            raise click.ClickException(f"unexpected {_type_name(exc)}{sep}{text}") from exc

    guarded.ferlite_guarded = True
    return guarded


def _guard_all(command: click.Command) -> None:
    """Apply :func:`_guard` to ``command`` and, for a group, to every command under it (once each)."""
    if command.callback is not None and not getattr(command.callback, "ferlite_guarded", False):
        command.callback = _guard(command.callback)
    for sub in getattr(command, "commands", {}).values():
        _guard_all(sub)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="ferlite")
@click.option("--debug", is_flag=True, help=f"On an error, show the Python traceback (also: {DEBUG_ENV}=1).")
@click.pass_context
def main(ctx: click.Context, debug: bool) -> None:
    """ferlite: tiny facial expression recognition models trained on FER+ soft labels."""
    ctx.meta["ferlite.debug"] = debug


main.add_command(train_cmd, "train")
main.add_command(eval_cmd, "eval")
main.add_command(demo_cmd, "demo")
main.add_command(prepare_cmd, "prepare")
main.add_command(weights_cmd, "weights")
main.add_command(export_cmd, "export")
main.add_command(bulk_cmd, "bulk")
main.add_command(serve_cmd, "serve")
_guard_all(main)

train_main = train_cmd
eval_main = eval_cmd
demo_main = demo_cmd
