"""nox sessions: tests, lint, docs."""

import nox

nox.options.sessions = ["tests", "lint"]


@nox.session
def tests(session: nox.Session) -> None:
    """Run the test suite."""
    session.install("-e", ".[test]")
    session.run("python", "-m", "pytest", "-q", *session.posargs, env={"TF_CPP_MIN_LOG_LEVEL": "3"})


@nox.session
def lint(session: nox.Session) -> None:
    """ruff over the code, tests, benchmarks, experiments, examples and tools."""
    session.install("ruff")
    session.run("ruff", "check", "src", "tests", "benchmarks", "experiments", "examples", "tools", "noxfile.py")


@nox.session
def docs(session: nox.Session) -> None:
    """Build the documentation site with mkdocs --strict (API from docstrings, CLI from the click commands)."""
    session.install("-e", ".[docs]")
    session.run("mkdocs", "build", "--strict", "--site-dir", "site", *session.posargs)
