"""``ferlite weights list | fetch | path`` against a real loopback HTTP server (never the internet)."""

from __future__ import annotations

import pytest
from click.testing import CliRunner
from conftest import LoopbackServer, make_entry

from ferlite import weights
from ferlite.cli import main

PAYLOAD = b"ferlite cli test weights\n" * 50


@pytest.fixture
def mirror(tmp_path, monkeypatch):
    """A registry of three test entries (served, missing on the server, unpublished) and the server."""
    root = tmp_path / "www"
    root.mkdir()
    (root / "served.keras").write_bytes(PAYLOAD)
    entries = [make_entry("served", PAYLOAD), make_entry("missing", b"not on the server"),
               make_entry("pending", PAYLOAD, published=False)]
    monkeypatch.setattr(weights, "REGISTRY", {e.name: e for e in entries})
    server = LoopbackServer(root)
    monkeypatch.setenv("FERLITE_BASE_URL", server.url)
    yield server
    server.close()


def run(*args: str):
    return CliRunner().invoke(main, ["weights", *args])


def test_list_real_registry(ferlite_home):
    res = run("list")
    assert res.exit_code == 0, res.output
    lines = res.output.splitlines()
    assert lines[0].split() == ["NAME", "KIND", "SIZE", "WHERE", "CLASSES"]
    rows = {line.split()[0]: line.split() for line in lines[1:] if line.strip() and not line.startswith("cache:")}
    assert set(rows) == {e.name for e in weights.list_weights()}
    default = rows[weights.DEFAULT_MODEL]
    assert default[1] == "keras" and default[4] == weights.status(weights.DEFAULT_MODEL)
    assert default[5:] == ["9", "(neutral", "..", "unknown)"]
    blaze = weights.registry_entry("blaze-face-short-range").bundled_path  # bundled: the cache is empty
    size = f"{blaze.stat().st_size / 1024:.0f}"
    assert rows["blaze-face-short-range"][1:] == ["detector", size, "KiB", "bundled", "-"]
    assert lines[-1] == f"cache: {ferlite_home / 'weights'}"


def test_list_shows_where_and_size(mirror):
    assert run("fetch", "served").exit_code == 0
    rows = {line.split()[0]: line.split() for line in run("list").output.splitlines()[1:] if line.strip()}
    assert rows["served"][1:5] == ["keras", "1", "KiB", "cached"]
    assert rows["missing"][1:4] == ["keras", "-", "remote"]
    assert rows["pending"][1:4] == ["keras", "-", "unavailable"]


def test_fetch_then_path(mirror, ferlite_home):
    res = run("fetch", "served")
    assert res.exit_code == 0, res.output
    expected = str(ferlite_home / "weights" / "served.keras")
    assert res.stdout.strip() == expected and mirror.requests == ["/served.keras"]
    res = run("path", "served")
    assert res.exit_code == 0 and res.stdout.strip() == expected
    assert mirror.requests == ["/served.keras"]  # path used the cache


def test_fetch_all_reports_each_entry(mirror, ferlite_home):
    res = run("fetch", "--all")
    assert res.exit_code == 1
    assert f"served: {ferlite_home / 'weights' / 'served.keras'}" in res.stdout
    assert "pending: skipped, not published yet" in res.stdout
    assert "missing: FAILED" in res.stderr and "404" in res.stderr
    assert "could not fetch missing" in res.stderr
    assert sorted(mirror.requests) == ["/missing.keras", "/served.keras"]


@pytest.mark.parametrize("args", [("fetch",), ("fetch", "served", "--all")])
def test_fetch_usage_errors(mirror, args):
    res = run(*args)
    assert res.exit_code == 2 and "give either a NAME or --all" in res.output
    assert mirror.requests == []


def test_errors_name_the_problem(mirror, ferlite_home):
    res = run("path", "nope")
    assert res.exit_code == 1 and "unknown weights 'nope'; registered: served, missing, pending" in res.stderr
    res = run("fetch", "pending")
    assert res.exit_code == 1 and "not published yet" in res.stderr
    mirror.close()
    res = run("fetch", "served")
    assert res.exit_code == 1
    for part in (mirror.url + "served.keras", str(ferlite_home / "weights"), "ferlite weights fetch served"):
        assert part in res.stderr
