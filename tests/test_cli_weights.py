"""``ferlite weights list | fetch | path`` against a real loopback HTTP server (never the internet)."""

from __future__ import annotations

import json

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


def list_rows(output: str) -> tuple[list[str], dict[str, list[str]]]:
    """The header and the table rows of `weights list` (split on whitespace, by NAME), before the notes below it."""
    lines = output.split("\n\n")[0].splitlines()
    return lines[0].split(), {line.split()[0]: line.split() for line in lines[1:]}


def test_list_real_registry(ferlite_home):
    """Every entry with params, MACs, size and FER2013Valid metrics as the registry records them; the aliases."""
    res = run("list")
    assert res.exit_code == 0, res.output
    header, rows = list_rows(res.output)
    assert header == ["NAME", "KIND", "PARAMS", "MACS", "SIZE", "MAE", "TOP1", "MAJOR8", "WHERE", "CLASSES"]
    assert set(rows) == {e.name for e in weights.list_weights()}
    default = rows[weights.DEFAULT_MODEL]
    assert default[:2] == [weights.DEFAULT_MODEL, "keras"] and default[9] == weights.status(weights.DEFAULT_MODEL)
    assert default[10:] == ["9", "(neutral", "..", "unknown)"]
    for e in weights.list_weights():
        if e.classes:
            m = e.metrics
            assert rows[e.name][1:9] == [e.kind, f"{e.params:,}", f"{e.macs / 1e6:.1f}M", f"{e.size / 1024:.0f}",
                                         "KiB", f"{m['mae']:.4f}", f"{100 * m['top1']:.1f}%",
                                         f"{100 * m['major8_acc']:.1f}%"]
    assert rows["ferplus-mfn-1.0"][2:9] == ["211,465", "11.0M", "1199", "KiB", "0.0520", "82.7%", "86.9%"]
    assert rows["ferplus-mfn-0.5-int8"][2:5] == ["60,681", "3.1M", "120"]
    blaze = weights.registry_entry("blaze-face-short-range").bundled_path  # bundled: the cache is empty
    size = f"{blaze.stat().st_size / 1024:.0f}"
    assert rows["blaze-face-short-range"][1:] == ["detector", "-", "-", size, "KiB", "-", "-", "-", "bundled", "-"]
    lines = res.output.splitlines()
    assert "metrics: FER2013Valid (3,579 faces); MAE and TOP1 under seed9, MAJOR8 under the majority protocol" in lines
    assert lines[-2].startswith("aliases: default = ferplus-mfn-1.0, fast = ferplus-mfn-0.5-int8 ")
    assert lines[-1] == f"cache: {ferlite_home / 'weights'}"


def test_list_shows_where_and_size(mirror):
    assert run("fetch", "served").exit_code == 0
    _, rows = list_rows(run("list").output)
    assert set(rows) == {"served", "missing", "pending"}
    assert rows["served"][1:10] == ["keras", "-", "-", "1", "KiB", "-", "-", "-", "cached"]  # size of the local file
    assert rows["missing"][1:10] == ["keras", "-", "-", "-", "-", "-", "-", "remote", "2"]
    assert rows["pending"][1:10] == ["keras", "-", "-", "-", "-", "-", "-", "unavailable", "2"]


def test_aliases_on_the_command_line(small_valid_folder):
    """`--model fast` in `ferlite eval` on real FER+ faces, and `weights path fast`: the bundled int8 file."""
    fast = weights.registry_entry("ferplus-mfn-0.5-int8").bundled_path
    res = run("path", "fast")
    assert res.exit_code == 0 and res.stdout.strip() == str(fast)
    data = small_valid_folder(60)
    res = CliRunner().invoke(main, ["eval", "--data", str(data), "--model", "fast", "--json"])
    assert res.exit_code == 0, res.output
    report = json.loads(res.stdout)
    assert report["model_path"] == str(fast) and report["backend"] == "litert" and report["n"] == 60


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
