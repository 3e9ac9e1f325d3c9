"""Atomic file writes: a reader sees the old file or the new one, never half of either.

Records, feature caches, training checkpoints and saved weights all go through `atomic_path`.
Standard library only, so the native model path can use it without pulling anything in.

A writer killed mid-write (kill -9, power loss) leaves its temp file `.<name>.<host>-<pid>.<random>.tmp`
behind. The next write to the same folder removes such litter: a temp file whose writer was a process on
this machine that no longer runs, or any temp file older than `STALE_AFTER_S` (its writer may be on another
machine sharing the folder; no write takes that long). Readers never look at these files (they end in .tmp).
"""

from __future__ import annotations

import os
import re
import secrets
import socket
import time
import zlib
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

STALE_AFTER_S = 3600.0     # a temp file this old is litter whoever wrote it
LEGACY_STALE_AFTER_S = 60.0   # temp files named before the writer's pid was part of the name
_HOST = f"{zlib.crc32(socket.gethostname().encode()) & 0xFFFFFF:06x}"
_TEMP = re.compile(r"^\..+?\.(?:(?P<host>[0-9a-f]{6})-(?P<pid>\d+)\.)?[0-9a-f]{12}\.tmp$")


def _new_temp(path: Path) -> Path:
    """Create an empty temp file beside `path` with the permissions the umask gives any new file (0644 under
    the usual umask 022). tempfile.mkstemp would create it 0600, and the rename would keep that, leaving
    records and predictions readable by their owner only."""
    while True:
        tmp = path.with_name(f".{path.name}.{_HOST}-{os.getpid()}.{secrets.token_hex(6)}.tmp")
        try:
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
        except FileExistsError:
            continue
        return tmp


def _pid_running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:   # it exists, owned by someone else
        return True
    return True


def is_stale_temp(path: Path, now: float | None = None) -> bool:
    """Whether `path` is a temp file of `atomic_path` whose writer is gone (see the module docstring)."""
    match = _TEMP.match(path.name)
    if match is None:
        return False
    try:
        age = (now if now is not None else time.time()) - path.stat().st_mtime
    except OSError:
        return False
    if match["pid"] is None:
        return age > LEGACY_STALE_AFTER_S
    if age > STALE_AFTER_S:
        return True
    return match["host"] == _HOST and int(match["pid"]) != os.getpid() and not _pid_running(int(match["pid"]))


def remove_stale_temps(folder: Path) -> list[Path]:
    """Delete the stale temp files in `folder` (not below it); return what was removed."""
    removed = []
    try:
        candidates = [p for p in folder.iterdir() if p.name.startswith(".") and p.name.endswith(".tmp")]
    except OSError:
        return removed
    now = time.time()
    for p in candidates:
        if is_stale_temp(p, now):
            try:
                p.unlink()
                removed.append(p)
            except OSError:   # another writer cleaned it first, or it is not ours to remove
                pass
    return removed


@contextmanager
def atomic_path(path: Path | str) -> Iterator[Path]:
    """Yield a temp path beside `path`; on success fsync it and rename it over `path`, else remove it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(path.parent)
    tmp = _new_temp(path)
    try:
        yield tmp
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
