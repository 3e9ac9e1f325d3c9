"""`xlt bench search`: parse, call xlt.bench.search.bench_search, render."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from xlt.cli.common import JsonOpt, bench_app, console, err_console


def _size(n: float) -> str:
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= scale:
            return f"{n / scale:,.1f} {unit}"
    return f"{n:,.0f} B"


@bench_app.command("search")
def bench_search_command(
    queries: Annotated[int, typer.Option("--queries", help="Query embeddings (BUCC test: ~400k a side).")] = 200_000,
    targets: Annotated[int, typer.Option("--targets", help="Target embeddings searched.")] = 200_000,
    dim: Annotated[int, typer.Option("--dim", help="Embedding size (768 for base models).")] = 768,
    block_size: Annotated[int, typer.Option(
        "--block-size", help="Queries and targets per similarity block; memory ~ block_size^2 floats.")] = 4096,
    k: Annotated[int, typer.Option("--k", help="Neighbours per query (BUCC's margin: 4).")] = 4,
    dtype: Annotated[str, typer.Option("--dtype", help="Matmul dtype picking candidates: fp32 or bf16.")] = "fp32",
    seed: Annotated[int, typer.Option("--seed")] = 0,
    json_path: JsonOpt = None,
) -> None:
    """Exact blocked cosine k-NN over random embeddings: queries/s and peak memory (never the full matrix)."""
    from xlt.bench.search import bench_search

    res = bench_search(queries, targets, dim, block_size, k, dtype, seed,
                       say=lambda msg: err_console.print(msg, style="dim", highlight=False, markup=False))
    table = Table(title=f"exact cosine {k}-NN search: {queries:,} x {targets:,}, dim {dim}, {res['cpu']}, "
                        f"{res['threads']} threads")
    for col in ("dtype", "block", "seconds", "queries/s", "GFLOP/s", "peak memory added", "full matrix"):
        table.add_column(col, justify="left" if col == "dtype" else "right")
    table.add_row(dtype, str(block_size), f"{res['seconds']:.1f}", f"{res['queries_per_s']:,.0f}",
                  f"{res['matmul_gflop_per_s']:.1f}", _size(res["peak_increase_bytes"]),
                  _size(res["full_matrix_bytes"]))
    console.print(table)
    console.print(f"embeddings {_size(res['embeddings_bytes'])}; peak memory: {res['mem_method']}", style="dim",
                  highlight=False, markup=False)
    if json_path is not None:
        Path(json_path).parent.mkdir(parents=True, exist_ok=True)
        Path(json_path).write_text(json.dumps(res, indent=2))
        console.print(f"wrote {json_path}", highlight=False, markup=False)
