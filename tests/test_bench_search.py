"""`xlt bench search`: the blocked search keeps its memory bounded, and the command prints and writes JSON.
Behaviour only: no test asserts a speed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from xlt.bench.search import bench_search
from xlt.cli import app
from xlt.errors import XltError


def _can_reset_high_water_mark() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


@pytest.mark.skipif(not _can_reset_high_water_mark(), reason="/proc/self/clear_refs is not writable here: the "
                    "peak of the search alone cannot be measured")
def test_search_memory_stays_bounded_by_the_block_not_the_matrix():
    """Would catch: the N x M similarity matrix built whole (here 2.3 GB; the search may add a tenth of it),
    or a block size that is not honoured in one of the two dimensions."""
    res = bench_search(n_queries=24_000, n_targets=24_000, dim=16, block_size=1024, k=4)
    assert res["mem_method"].startswith("VmHWM")
    assert res["full_matrix_bytes"] == 24_000 * 24_000 * 4
    assert 0 < res["peak_increase_bytes"] < res["full_matrix_bytes"] / 10
    assert res["queries_per_s"] > 0 and res["n_queries"] == 24_000


def test_bench_search_command_prints_and_writes_json(tmp_path):
    out = tmp_path / "bench" / "search.json"
    result = CliRunner().invoke(app, ["bench", "search", "--queries", "300", "--targets", "500", "--dim", "8",
                                      "--block-size", "128", "--json", str(out)])
    assert result.exit_code == 0, result.output
    assert "queries/s" in result.output and f"wrote {out}" in result.output.replace("\n", "")
    data = json.loads(Path(out).read_text())
    assert (data["n_queries"], data["n_targets"], data["dim"], data["block_size"], data["k"]) == (300, 500, 8, 128, 4)
    assert {"seconds", "peak_increase_bytes", "cpu", "mem_method"} <= set(data)


@pytest.mark.parametrize("args, message", [(["--dtype", "fp16"], "unknown dtype 'fp16'"),
                                           (["--block-size", "0"], "block_size must be a positive integer")])
def test_bench_search_refuses_bad_options(args, message):
    """One clear XltError (which `xlt`'s main prints as one line and exits 2 on), before anything is drawn."""
    result = CliRunner().invoke(app, ["bench", "search", "--queries", "10", "--targets", "10", "--dim", "4", *args])
    assert result.exit_code != 0
    assert isinstance(result.exception, XltError) and message in str(result.exception)
