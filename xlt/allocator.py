"""Keep freed CPU memory inside the process while training, instead of handing it back to the OS.

A training step frees and re-allocates the same large tensors every step: the word-embedding gradient alone
is 768 MB for mDeBERTa (250k x 768 fp32), and AdamW's temporaries are as large. glibc malloc serves every
block above its mmap threshold (at most 32 MB) with a fresh mmap and unmaps it on free, so the next step
page-faults all of it in again. On the 2-core VMs this project is measured on, that first touch is slow:
the embedding gradient's zero-fill took ~1.0 s of a 3.5 s mDeBERTa train step (batch 8, L=128) instead of
~0.05 s when the memory is reused (see docs/benchmarks.md).

`keep_freed_memory()` switches glibc to serve large blocks from its heap and never to trim it (mallopt
M_MMAP_MAX=0, M_TRIM_THRESHOLD=-1), so freed blocks are reused by the next step, and on exit restores
glibc's defaults and returns the free memory to the OS (malloc_trim). The process's resident memory
stays at its high-water mark while inside, plus fragmentation: measured on mDeBERTa-v3-base training with
AdamW, batch 8 (see docs/benchmarks.md), fixed L=128 steps went from 6.6 s to 3.5 s at the same 6.9 GB
high-water mark; batches of random length 32-128 plateaued at 8.4 GB resident instead. Elsewhere than glibc
(macOS, musl) it does nothing; XLT_KEEP_FREED_MEMORY=0 in the environment turns it off.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import sys
from typing import Iterator

# <malloc.h> parameter numbers and glibc's defaults for them.
M_TRIM_THRESHOLD, M_MMAP_MAX = -1, -4
DEFAULT_TRIM_THRESHOLD, DEFAULT_MMAP_MAX = 128 * 1024, 65536


def _glibc() -> ctypes.CDLL | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.gnu_get_libc_version  # only glibc has it (and mallopt's M_MMAP_MAX semantics)
        return libc
    except (OSError, AttributeError):
        return None


@contextlib.contextmanager
def keep_freed_memory(enabled: bool = True) -> Iterator[bool]:
    """Inside: freed memory stays in the process for reuse. Yields whether that is in effect."""
    enabled = enabled and os.environ.get("XLT_KEEP_FREED_MEMORY", "1") != "0"
    libc = _glibc() if enabled else None
    if libc is None:
        yield False
        return
    libc.mallopt(M_MMAP_MAX, 0)
    libc.mallopt(M_TRIM_THRESHOLD, -1)  # -1: never trim (mallopt(3))
    try:
        yield True
    finally:
        libc.mallopt(M_MMAP_MAX, DEFAULT_MMAP_MAX)
        libc.mallopt(M_TRIM_THRESHOLD, DEFAULT_TRIM_THRESHOLD)
        libc.malloc_trim(0)
