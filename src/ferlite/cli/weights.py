"""``ferlite weights``: list, fetch and locate the registered pretrained files."""

from __future__ import annotations

import click


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def weights_cmd() -> None:
    """Pretrained models and the face detector: list, fetch, path."""


@weights_cmd.command("list")
def list_cmd() -> None:
    """Registered files and where each would come from now (cached, bundled or remote)."""
    from ferlite import weights

    for e in weights.list_weights():
        click.echo(f"{e.name:26s} {e.kind:9s} {weights.status(e.name):8s} {e.filename}  {e.description}")


@weights_cmd.command("fetch")
@click.argument("name", required=False)
@click.option("--all", "fetch_all", is_flag=True, help="Fetch every registered file.")
def fetch_cmd(name, fetch_all) -> None:
    """Download (or verify) NAME, or --all, into the cache."""
    from ferlite import weights

    if bool(name) == fetch_all:
        raise click.UsageError("give a NAME or --all")
    for n in [e.name for e in weights.list_weights()] if fetch_all else [name]:
        try:
            click.echo(f"{n}: {weights.fetch(n, progress=True)}")
        except (ValueError, OSError) as exc:
            raise click.ClickException(str(exc)) from exc


@weights_cmd.command("path")
@click.argument("name")
def path_cmd(name) -> None:
    """Print the local path of NAME (fetching it if needed)."""
    from ferlite import weights

    try:
        click.echo(str(weights.fetch(name)))
    except (ValueError, OSError) as exc:
        raise click.ClickException(str(exc)) from exc
