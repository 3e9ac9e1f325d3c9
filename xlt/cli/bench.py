"""`xlt bench run`: a whole run, xlt against the transformers Trainer path, phase by phase (xlt/bench/run.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.markup import escape
from rich.table import Table

from xlt.cli.common import DataDirOpt, TasksDirOpt, bench_app, console, err_console
from xlt.errors import XltError


@bench_app.command("run")
def bench_run_command(
    model: Annotated[str, typer.Option("--model", help="Registry name, hub id or local checkpoint directory.")],
    task: Annotated[str, typer.Option("--task", help="A sentence-pair task (xnli, pawsx, ...).")] = "xnli",
    data_dir: DataDirOpt = None,
    tokenizer: Annotated[Optional[str], typer.Option(
        help="Tokenizer folder or hub id (default: the model's own; offline, pass a local folder).")] = None,
    train_steps: Annotated[int, typer.Option(help="Optimizer steps in each pipeline.")] = 20,
    eval_samples: Annotated[int, typer.Option(help="Evaluation rows per language.")] = 200,
    batch_size: Annotated[int, typer.Option(help="Training batch size (both pipelines).")] = 32,
    eval_batch_size: Annotated[int, typer.Option(help="Evaluation batch size (both pipelines).")] = 64,
    max_seq_len: Annotated[int, typer.Option(help="Maximum tokens per pair (run_xnli.py pads every pair to it).")]
    = 128,
    precision: Annotated[str, typer.Option(help="fp32 or bf16, the same in both pipelines.")] = "fp32",
    languages: Annotated[Optional[str], typer.Option(help="Evaluate only these languages, comma-separated.")] = None,
    pipelines: Annotated[str, typer.Option(help="Comma-separated: xlt,transformers.")] = "xlt,transformers",
    tasks_dir: TasksDirOpt = None,
    json_path: Annotated[Optional[Path], typer.Option("--json", help="Also write the results as JSON here.")] = None,
) -> None:
    """A whole run, xlt against the transformers Trainer path (run_xnli.py's set-up): tokenise, train, evaluate."""
    import json

    from xlt.bench.run import run_bench

    langs = [x.strip() for x in languages.split(",") if x.strip()] if languages else None
    try:
        res = run_bench(model, task, data_dir=data_dir, tokenizer=tokenizer, train_steps=train_steps,
                        eval_samples=eval_samples, batch_size=batch_size, eval_batch_size=eval_batch_size,
                        max_seq_len=max_seq_len, precision=precision, languages=langs, tasks_dir=tasks_dir,
                        pipelines=tuple(p.strip() for p in pipelines.split(",") if p.strip()))
    except XltError as exc:
        err_console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
        raise typer.Exit(2)
    table = Table(title=escape(f"{res['model']} · {res['task']} {res['split']} · {len(res['languages'])} languages "
                               f"· {res['train_steps']} steps x {res['batch_size']} · {res['precision']} · "
                               f"{res['threads']} threads"))
    for col in ("pipeline", "phase", "seconds", "examples/s", "padding", "peak memory"):
        table.add_column(col, justify="left" if col in ("pipeline", "phase") else "right")
    for row in res["rows"]:
        for phase in ("tokenise", "train", "evaluate"):
            n = row.get(f"{phase}_examples_per_s")
            table.add_row(row["pipeline"], phase, f"{row[f'{phase}_s']:.2f}", f"{n:,.1f}",
                          f"{row[f'{phase}_padding_share']:.0%}", "")
        table.add_row(row["pipeline"], "total", f"{row['total_s']:.2f}", "", "",
                      f"{row['peak_mem_bytes'] / 2**30:.2f} GB", style="bold")
    console.print(table)
    if res["speedup"]:
        console.print("xlt / transformers speed: " + ", ".join(f"{k} {v:.2f}x" for k, v in res["speedup"].items()),
                      highlight=False)
    for row in res["rows"]:
        accs = row["accuracy"]
        console.print(f"{row['pipeline']} accuracy: " + " ".join(f"{k} {v:.3f}" for k, v in accs.items()),
                      highlight=False, markup=False, soft_wrap=True)
    if json_path is not None:
        json_path.write_text(json.dumps(res, indent=2) + "\n", encoding="utf-8")
        console.print(f"wrote {json_path}", highlight=False, markup=False)
