"""Atomic file writes: a file appears complete, or not at all (no partial file after an error)."""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

# the temporary names atomic_path makes: .<name>.<pid>.<8 hex digits>.tmp[<suffix>]
_TEMPORARY = re.compile(r"^\..+\.\d+\.[0-9a-f]{8}\.tmp(\.\w+)?$")


@contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = "") -> Iterator[Path]:
    """A temporary path beside ``path`` to write to: moved onto ``path`` when the block ends normally,
    removed when it raises. ``suffix`` ends the temporary name (e.g. ``".keras"``, which Keras requires)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp{suffix}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_npz(path: str | os.PathLike, *arrays: np.ndarray, **named: np.ndarray) -> None:
    """``numpy.savez`` to ``path`` atomically, creating its folder."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez(f, *arrays, **named)


def remove_temporaries(folder: str | os.PathLike) -> list[Path]:
    """Delete the temporary files :func:`atomic_path` left in ``folder`` when a process was killed mid-write
    (SIGKILL, power loss); return them. Only for a folder no other process is writing to."""
    folder = Path(folder)
    stale = [p for p in folder.iterdir() if p.is_file() and _TEMPORARY.match(p.name)] if folder.is_dir() else []
    for p in stale:
        p.unlink(missing_ok=True)
    return stale
