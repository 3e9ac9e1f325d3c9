"""One run at a time per run id: an exclusive file lock in the run's own checkpoint folder.

    with run_lock(checkpoint_folder, spec.run_id):
        ...  # train, evaluate, write the record

Two processes running the same spec would share one checkpoint folder and interleave their writes (after kills
and `--resume`, a record whose selection block contradicts its metrics). The lock is `flock` on
`<folder>/run.lock`: the kernel releases it when the holder exits in any way (kill -9 included), so a stale
lock never blocks a later run. The holder writes its pid, host and start time into the file; a second run
reads them and stops with a message naming that process.
"""

from __future__ import annotations

import datetime as _dt
import os
import socket
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from xlt.errors import XltError

LOCK_FILE = "run.lock"


class RunLocked(XltError):
    """Another process is running the same spec."""


@contextmanager
def run_lock(folder: Path | str, run_id: str) -> Iterator[Path]:
    """Hold the lock of run `run_id` (its checkpoint folder) for the duration of the block."""
    try:
        import fcntl
    except ImportError:   # pragma: no cover - not a POSIX system: no lock, as before
        yield Path(folder) / LOCK_FILE
        return
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / LOCK_FILE
    with open(path, "a+", encoding="utf-8") as fh:
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            holder = fh.read().strip() or "another process"
            raise RunLocked(f"run {run_id} is already running ({holder}; lock {path}); wait for it to finish, or "
                            "stop it and continue with --resume") from None
        fh.seek(0)
        fh.truncate()
        started = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
        fh.write(f"pid {os.getpid()} on {socket.gethostname()} since {started}\n")
        fh.flush()
        try:
            yield path
        finally:
            fh.seek(0)
            fh.truncate()
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


__all__ = ["run_lock", "RunLocked", "LOCK_FILE"]
