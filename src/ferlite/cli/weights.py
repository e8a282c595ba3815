"""``ferlite weights``: list, fetch and locate the registered pretrained files."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from ferlite.cli._once import OnceGroup

if TYPE_CHECKING:
    from ferlite.weights import WeightsEntry


@click.group(cls=OnceGroup, context_settings={"help_option_names": ["-h", "--help"]})
def weights_cmd() -> None:
    """Pretrained expression models and the face detector: list, fetch, path."""


def _classes(classes: tuple[str, ...] | None) -> str:
    return f"{len(classes)} ({classes[0]} .. {classes[-1]})" if classes else "-"


def _size(entry: WeightsEntry, local: Path | None) -> str:
    """The registered file size, else the local copy's, in KiB; ``-`` when neither is known."""
    size = entry.size if entry.size is not None else (local.stat().st_size if local else None)
    return "-" if size is None else f"{size / 1024:.0f} KiB"


def _figures(entry: WeightsEntry) -> tuple[str, ...]:
    """PARAMS, MACS, MAE, TOP1, MAJOR8 as the registry records them; ``-`` where it records nothing."""
    m = entry.metrics
    values = (entry.params, None if entry.macs is None else entry.macs / 1e6, m.get("mae"), m.get("top1"),
              m.get("major8_acc"))
    return tuple("-" if v is None else format(v, spec) + unit
                 for v, (spec, unit) in zip(values, ((",", ""), (".1f", "M"), (".4f", ""), (".1%", ""), (".1%", ""))))


@weights_cmd.command("list")
def list_cmd() -> None:
    """Registered files: kind, size, parameters, multiply-adds, FER2013Valid metrics, where each would come from now.

    PARAMS and MACS (multiply-adds of one 48x48 face) are the network's; an export has its source model's. MAE and
    TOP1 are under the seed9 protocol, MAJOR8 under the majority protocol, all as the registry records them.
    WHERE is cached, bundled (inside the package), remote (to download) or unavailable
    (not published yet, or a bundled file missing from the package and the cache).
    The aliases below are accepted wherever a model name is (--model fast).
    """
    from ferlite import weights

    rows = [("NAME", "KIND", "PARAMS", "MACS", "SIZE", "MAE", "TOP1", "MAJOR8", "WHERE", "CLASSES")]
    for e in weights.list_weights():
        local = weights.locate(e.name)
        params, macs, mae, top1, major8 = _figures(e)
        rows.append((e.name, e.kind, params, macs, _size(e, local), mae, top1, major8, weights.status(e.name),
                     _classes(e.classes)))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    for r in rows:
        click.echo("  ".join(c.ljust(w) for c, w in zip(r, widths)) + "  " + r[-1])
    click.echo()
    data = sorted({e.metrics["data"] for e in weights.list_weights() if "data" in e.metrics})
    if data:
        click.echo(f"metrics: {'; '.join(data)}; MAE and TOP1 under seed9, MAJOR8 under the majority protocol")
    if weights.ALIASES:
        click.echo("aliases: " + ", ".join(f"{a} = {n}" for a, n in weights.ALIASES.items())
                   + " (wherever a model name goes, e.g. --model fast)")
    click.echo(f"cache: {weights.weights_dir()}")


@weights_cmd.command("fetch")
@click.argument("name", required=False)
@click.option("--all", "fetch_all", is_flag=True, help="Fetch every published entry.")
def fetch_cmd(name: str | None, fetch_all: bool) -> None:
    """Download (or verify the local copy of) NAME, or every published entry with --all, and print its path."""
    from ferlite import weights

    if bool(name) == fetch_all:
        raise click.UsageError("give either a NAME or --all")
    if name:
        click.echo(_fetch_or_fail(name))
        return
    failed = []
    for e in weights.list_weights():
        if not e.published:
            click.echo(f"{e.name}: skipped, not published yet")
            continue
        try:
            click.echo(f"{e.name}: {_fetch_noting(e.name)}")
        except (ValueError, OSError) as exc:
            click.echo(f"{e.name}: FAILED: {exc}", err=True)
            failed.append(e.name)
    if failed:
        raise click.ClickException(f"could not fetch {', '.join(failed)}")


@weights_cmd.command("path")
@click.argument("name")
def path_cmd(name: str) -> None:
    """Print the local path of NAME, fetching it first if it is not cached or bundled."""
    click.echo(_fetch_or_fail(name))


def _fetch_noting(name: str) -> str:
    """``weights.fetch(name)``; its warnings (a local copy failing its sha256, downloaded again) as ``note:`` lines
    on stderr."""
    import warnings

    from ferlite import weights

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            return str(weights.fetch(name, progress=True))
        finally:
            for w in caught:
                click.echo(f"note: {w.message}", err=True)


def _fetch_or_fail(name: str) -> str:
    try:
        return _fetch_noting(name)
    except (ValueError, OSError) as exc:
        raise click.ClickException(str(exc)) from exc
