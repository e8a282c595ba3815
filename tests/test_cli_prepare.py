"""`ferlite prepare` through click's CliRunner, and `--help` of every registered command and console script."""

import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner
from conftest import write_raw_pair

from ferlite.cli import demo_main, eval_main, main, train_main
from ferlite.datasets import read_ferplus_folder


def _run(*args):
    return CliRunner().invoke(main, [str(a) for a in args], prog_name="ferlite")


def test_prepare_writes_the_splits(ferplus_valid, tmp_path):
    write_raw_pair(ferplus_valid, tmp_path, n=30)
    r = _run("prepare", tmp_path / "fer2013.csv", tmp_path / "fer2013new.csv", tmp_path / "out")
    assert r.exit_code == 0, r.output
    assert f"FER2013Train: 10 faces -> {tmp_path / 'out' / 'FER2013Train'}" in r.output
    assert "FER2013Valid: 10 faces" in r.output and "FER2013Test: 9 faces" in r.output
    assert len(read_ferplus_folder(tmp_path / "out" / "FER2013Test", use_cache=False)) == 9


def test_prepare_bad_input(ferplus_valid, tmp_path):
    write_raw_pair(ferplus_valid, tmp_path, n=30)
    fer, new = tmp_path / "fer2013.csv", tmp_path / "fer2013new.csv"
    r = _run("prepare", fer, tmp_path / "missing.csv", tmp_path / "out")
    assert r.exit_code == 2 and "missing.csv" in r.output and "does not exist" in r.output

    lines = fer.read_text().splitlines()
    lines[1] = "0,1 2 3,Training"  # line 2: 3 pixels
    fer.write_text("\n".join(lines) + "\n")
    r = _run("prepare", fer, new, tmp_path / "out")
    assert r.exit_code == 1 and "Error: fer2013.csv/fer2013new.csv, line 2: pixels must be 2304" in r.output
    assert not (tmp_path / "out").exists()

    r = _run("prepare", fer, new, tmp_path / "out", "--skip-bad")
    assert r.exit_code == 0, r.output
    assert "skipped: fer2013.csv/fer2013new.csv, line 2: pixels must be 2304" in r.output
    assert "FER2013Train: 9 faces" in r.output and "1 bad row(s) skipped" in r.output


def _all_commands(group: click.Group, prefix=()):
    for name, cmd in sorted(group.commands.items()):
        yield (*prefix, name)
        if isinstance(cmd, click.Group):
            yield from _all_commands(cmd, (*prefix, name))


def test_help_of_every_command():
    r = _run("--help")
    assert r.exit_code == 0 and "Usage: ferlite" in r.output
    commands = list(_all_commands(main))
    assert {("train",), ("eval",), ("demo",), ("prepare",)} <= set(commands)
    for path in commands:
        if len(path) == 1:
            assert path[0] in r.output  # listed in the group's help
        sub = _run(*path, "--help")
        assert sub.exit_code == 0 and f"Usage: ferlite {' '.join(path)}" in sub.output, (path, sub.output)
    for alias in (train_main, eval_main, demo_main):
        a = CliRunner().invoke(alias, ["--help"])
        assert a.exit_code == 0 and "Usage: " in a.output


@pytest.mark.parametrize("script", ["ferlite", "ferlite-train", "ferlite-eval", "ferlite-demo"])
def test_console_scripts_installed(script):
    exe = Path(sys.executable).parent / script
    assert exe.is_file(), f"console script {exe} is missing: install the project with pip install -e '.[test]'"
    r = subprocess.run([str(exe), "--help"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and r.stdout.startswith("Usage: "), r.stderr
