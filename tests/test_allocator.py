"""keep_freed_memory: a freed large tensor stays resident inside and is handed back to the OS on exit; by
default glibc unmaps it at once. Measured with the process's VmRSS (Linux, glibc). Whether the next step
reuses it depends on the heap's history (pytest's heap is busier than a training loop's); that, and the
time it saves, is measured by `xlt bench model --keep-freed-memory` and docs/benchmarks.md, not here."""

from __future__ import annotations

import pytest
import torch

from xlt.allocator import _glibc, keep_freed_memory

MB = 2**20
SIZE = 256 * MB

pytestmark = pytest.mark.skipif(_glibc() is None, reason="needs Linux with glibc")


def rss() -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def allocate_touch_free() -> int:
    """RSS growth left behind by a touched-then-freed SIZE-byte tensor."""
    before = rss()
    t = torch.ones(SIZE // 4)
    del t
    return rss() - before


def test_default_glibc_returns_a_freed_large_block_at_once():
    assert allocate_touch_free() < SIZE // 4


def test_inside_a_freed_block_stays_resident_and_exit_returns_it():
    with keep_freed_memory() as kept:
        assert kept
        assert allocate_touch_free() > SIZE * 3 // 4  # still resident after the free
        resident = rss()
    assert rss() < resident - SIZE // 2  # malloc_trim on exit gave it back
    assert allocate_touch_free() < SIZE // 4  # and glibc's defaults are back


def test_disabled_is_a_no_op(monkeypatch):
    with keep_freed_memory(enabled=False) as kept:
        assert not kept
        assert allocate_touch_free() < SIZE // 4
    monkeypatch.setenv("XLT_KEEP_FREED_MEMORY", "0")
    with keep_freed_memory() as kept:
        assert not kept
        assert allocate_touch_free() < SIZE // 4
