"""`xlt bench search` and `xlt bench retrieval`: parse, call xlt.bench.search / xlt.bench.retrieval, render."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.markup import escape
from rich.table import Table

from xlt.cli.common import DataDirOpt, JsonOpt, TasksDirOpt, bench_app, console, err_console
from xlt.errors import XltError


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


@bench_app.command("retrieval")
def bench_retrieval_command(
    model: Annotated[str, typer.Option("--model", help="Registry name, hub id or local checkpoint directory.")],
    task: Annotated[str, typer.Option("--task", help="A retrieval task (tatoeba, bucc2018).")] = "tatoeba",
    data_dir: DataDirOpt = None,
    languages: Annotated[Optional[str], typer.Option(help="Languages, comma-separated (default: all readable).")]
    = None,
    batch_size: Annotated[int, typer.Option(min=1, max=1 << 16, help="Sentences per batch (both pipelines).")] = 64,
    precision: Annotated[str, typer.Option(help="fp32 or bf16 (autocast), the same in both pipelines.")] = "fp32",
    repeats: Annotated[int, typer.Option(min=1, max=100, help="Timed passes per pipeline (median).")] = 3,
    search_size: Annotated[int, typer.Option(
        min=0, max=2_000_000, help="Also time a k=4 search both ways over N x N random embeddings (0: no).")] = 0,
    tasks_dir: TasksDirOpt = None,
    json_path: JsonOpt = None,
) -> None:
    """Embedding throughput (xlt's encoder head, length-bucketed, vs a plain transformers AutoModel loop) and
    search throughput."""
    from xlt.bench.retrieval import bench_retrieval

    if precision not in ("fp32", "bf16"):
        err_console.print(f"[bold red]error:[/] --precision {escape(precision)} is not fp32 or bf16", highlight=False)
        raise typer.Exit(2)
    langs = [x.strip() for x in languages.split(",") if x.strip()] if languages else None
    try:
        res = bench_retrieval(model, task, data_dir=data_dir, languages=langs, batch_size=batch_size,
                              precision=precision, repeats=repeats, search_size=search_size, tasks_dir=tasks_dir,
                              say=lambda msg: err_console.print(msg, style="dim", highlight=False, markup=False))
    except XltError as exc:
        err_console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
        raise typer.Exit(2)
    table = Table(title=escape(f"{res['model']} · {res['task']} {res['split']} · {len(res['languages'])} languages, "
                               f"{res['sentences']:,} sentences · layer {res['layer']} · batch {res['batch_size']} · "
                               f"{res['precision']} · {res['threads']} threads · {res['cpu']}"))
    for col in ("pipeline", "embed s", "sentences/s", "tokens/s", "padding efficiency", "tokenise s"):
        table.add_column(col, justify="left" if col == "pipeline" else "right")
    for name, row in res["pipelines"].items():
        table.add_row(name, f"{row['embed_s']:.2f}", f"{row['sentences_per_s']:,.0f}", f"{row['tokens_per_s']:,.0f}",
                      f"{row['padding_efficiency']:.2f}", f"{row['tokenise_s']:.2f}")
    console.print(table)
    console.print(f"xlt / plain embedding speed: {res['speedup']:.2f}x; max abs difference of the embeddings: "
                  f"{max(res['max_abs_difference'].values()):.2e}", highlight=False)
    for row in res["search"]:
        console.print(escape(f"search {row['lang']}: {row['sentences']} x {row['pivots']}: top-1 both ways "
                             f"{row['top1_both_s'] * 1000:.1f} ms, mining {row['mine_s'] * 1000:.1f} ms"),
                      highlight=False)
    if res["scaled_search"]:
        s = res["scaled_search"]
        console.print(f"search at scale: {s['n']:,} x {s['n']:,}, dim {s['dim']}, k=4 both ways: {s['seconds']:.1f} s "
                      f"({s['queries_per_s']:,.0f} queries/s)", highlight=False)
    if json_path is not None:
        Path(json_path).parent.mkdir(parents=True, exist_ok=True)
        Path(json_path).write_text(json.dumps({k: v for k, v in res.items() if not k.endswith("_embeddings")},
                                              indent=2))
        console.print(f"wrote {json_path}", highlight=False, markup=False)
