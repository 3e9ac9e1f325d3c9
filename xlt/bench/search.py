"""`xlt bench search`: the exact blocked cosine search of the retrieval tasks, at BUCC's scale.

Searches random embeddings (n_queries x dim against n_targets x dim, standard normal, float32) for every
query's k nearest targets with `xlt.tasktypes.retrieval_search.knn`, the function BUCC mining and Tatoeba use,
and reports queries/s, the matmul rate it reached, and peak memory.

Peak memory is the resident set's high-water mark (VmHWM in /proc/self/status), reset through
/proc/self/clear_refs just before the search, minus the resident set at that moment: what the search itself
added on top of the embeddings already held (their normalised copies, the similarity blocks, the running
top-k). tracemalloc would not see it: torch allocates tensor memory outside Python's allocator. Where
clear_refs cannot be written, the process-lifetime ru_maxrss is used instead, and the result says so.
For scale: the full n_queries x n_targets float32 similarity matrix, which the search never holds, is
`full_matrix_bytes`.
"""

from __future__ import annotations

import platform
import resource
import time
from typing import Any, Callable

import torch

from xlt.errors import XltError
from xlt.tasktypes.retrieval_search import knn

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}


def _status_kb(field: str) -> int | None:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def _reset_high_water_mark() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def cpu_model() -> str:
    """The CPU's model name (/proc/cpuinfo), else what the platform says."""
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def bench_search(n_queries: int = 200_000, n_targets: int = 200_000, dim: int = 768, block_size: int = 4096,
                 k: int = 4, dtype: str = "fp32", seed: int = 0,
                 say: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Time one exact k-nearest-neighbour search over random embeddings and measure its peak memory."""
    for name, value in (("n_queries", n_queries), ("n_targets", n_targets), ("dim", dim),
                        ("block_size", block_size), ("k", k)):
        if value < 1:
            raise XltError(f"{name} must be a positive integer, got {value}")
    if dtype not in DTYPES:
        raise XltError(f"unknown dtype {dtype!r}; use one of: {', '.join(DTYPES)}")
    say = say or (lambda message: None)
    generator = torch.Generator().manual_seed(seed)
    say(f"drawing {n_queries:,} + {n_targets:,} random embeddings of dim {dim}")
    queries = torch.randn(n_queries, dim, generator=generator)
    targets = torch.randn(n_targets, dim, generator=generator)
    base_kb = _status_kb("VmRSS")
    exact = base_kb is not None and _reset_high_water_mark()
    if not exact:
        base_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    say(f"searching the {k} nearest of each query in {block_size} x {block_size} blocks ({dtype}, "
        f"{torch.get_num_threads()} threads)")
    start = time.perf_counter()
    neighbours = knn(queries, targets, k, block_size=block_size, dtype=DTYPES[dtype])
    seconds = time.perf_counter() - start
    peak_kb = _status_kb("VmHWM") if exact else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    assert neighbours.indices.shape == (n_queries, min(k, n_targets))
    return {
        "n_queries": n_queries, "n_targets": n_targets, "dim": dim, "k": k, "block_size": block_size,
        "dtype": dtype, "threads": torch.get_num_threads(), "seconds": seconds,
        "queries_per_s": n_queries / seconds,
        "matmul_gflop_per_s": 2 * n_queries * n_targets * dim / seconds / 1e9,
        "embeddings_bytes": (n_queries + n_targets) * dim * 4,
        "peak_rss_bytes": (peak_kb or 0) * 1024,
        "peak_increase_bytes": max(0, (peak_kb or 0) - (base_kb or 0)) * 1024,
        "block_bytes": block_size * block_size * 4,
        "full_matrix_bytes": n_queries * n_targets * 4,
        "mem_method": "VmHWM after clear_refs, minus VmRSS before the search" if exact
        else "ru_maxrss (process lifetime), minus ru_maxrss before the search",
        "cpu": cpu_model(), "torch": torch.__version__,
    }
