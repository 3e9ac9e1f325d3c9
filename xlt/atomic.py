"""Atomic file writes: a reader sees the old file or the new one, never half of either.

Records, feature caches, training checkpoints and saved weights all go through `atomic_path`.
Standard library only, so the native model path can use it without pulling anything in.
"""

from __future__ import annotations

import os
import secrets
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


def _new_temp(path: Path) -> Path:
    """Create an empty temp file beside `path` with the permissions the umask gives any new file (0644 under
    the usual umask 022). tempfile.mkstemp would create it 0600, and the rename would keep that, leaving
    records and predictions readable by their owner only."""
    while True:
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
        try:
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
        except FileExistsError:
            continue
        return tmp


@contextmanager
def atomic_path(path: Path | str) -> Iterator[Path]:
    """Yield a temp path beside `path`; on success fsync it and rename it over `path`, else remove it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _new_temp(path)
    try:
        yield tmp
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
