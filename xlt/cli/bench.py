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
    task: Annotated[str, typer.Option("--task", help="Any task with a transformers example-script baseline: "
                                      "sentence pairs (xnli, pawsx: run_xnli.py), tagging (panx, udpos: "
                                      "run_ner.py), extractive QA (xquad, mlqa: run_qa.py).")] = "xnli",
    data_dir: DataDirOpt = None,
    tokenizer: Annotated[Optional[str], typer.Option(
        help="Tokenizer folder or hub id (default: the model's own; offline, pass a local folder).")] = None,
    seed: Annotated[int, typer.Option(help="The run's seed (weights of a random checkpoint, data order).")] = 1,
    train_steps: Annotated[int, typer.Option(help="Optimizer steps in each pipeline.")] = 20,
    eval_samples: Annotated[int, typer.Option(help="Evaluation examples per language.")] = 200,
    batch_size: Annotated[Optional[int], typer.Option(
        help="Effective training batch size (default: the run's recipe, as xlt run).")] = None,
    grad_accum: Annotated[Optional[int], typer.Option(help="Gradient accumulation steps (default: the recipe's).")]
    = None,
    eval_batch_size: Annotated[Optional[int], typer.Option(help="Evaluation batch size (default: the recipe's).")]
    = None,
    max_seq_len: Annotated[Optional[int], typer.Option(
        help="Maximum tokens per model row (default: the recipe's, e.g. 128 for XNLI and PAN-X, 384 for QA).")]
    = None,
    set_: Annotated[Optional[list[str]], typer.Option(
        "--set", help="Any hyperparameter as KEY=VALUE, as in xlt run (repeatable).")] = None,
    precision: Annotated[str, typer.Option(help="fp32 or bf16, the same in both pipelines.")] = "fp32",
    threads: Annotated[Optional[int], typer.Option(
        help="torch threads in each pipeline (default: torch's own). On a machine other jobs share, 1 avoids "
             "OpenMP threads waiting on a busy core.")] = None,
    languages: Annotated[Optional[str], typer.Option(
        help="Evaluate only these languages, comma-separated (default: every language with data).")] = None,
    split: Annotated[Optional[str], typer.Option(
        help="Evaluation split (default: the dev split if reported, else the task's first reported split).")]
    = None,
    pipelines: Annotated[str, typer.Option(help="Comma-separated: xlt,transformers.")] = "xlt,transformers",
    interleave: Annotated[bool, typer.Option(
        "--interleave/--one-at-a-time", help="Take turns phase by phase (default), or run one pipeline to the end "
                                             "before the other.")] = True,
    tasks_dir: TasksDirOpt = None,
    json_path: Annotated[Optional[Path], typer.Option(
        "--json", help="Also write the results as JSON here ('-': only the JSON, on stdout).")] = None,
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", help="The run id and hyperparameters the benchmark would use; run nothing.")] = False,
) -> None:
    """A whole run, xlt against the transformers example script's Trainer set-up: tokenise, train, evaluate.
    The hyperparameters are those of the run `xlt run` makes with the same model, task, seed, overrides,
    languages and precision (its run id is printed), cut to --train-steps optimizer steps."""
    import json

    from xlt.bench.run import run_bench
    from xlt.cli.run import resolve_overrides

    try:
        overrides, override_notes = resolve_overrides(set_ or [], {
            "batch_size": batch_size, "grad_accum": grad_accum, "eval_batch_size": eval_batch_size,
            "max_seq_len": max_seq_len})
        res = run_bench(model, task, data_dir=data_dir, tokenizer=tokenizer, seed=seed, overrides=overrides,
                        train_steps=train_steps, eval_samples=eval_samples, precision=precision, threads=threads,
                        languages=languages, split=split, tasks_dir=tasks_dir, interleave=interleave,
                        pipelines=tuple(p.strip() for p in pipelines.split(",") if p.strip()), dry_run=dry_run)
    except XltError as exc:
        err_console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
        raise typer.Exit(2)
    res["notes"] = override_notes + res["notes"]
    if json_path is not None and str(json_path) == "-":   # the JSON alone, on stdout
        print(json.dumps(res, indent=2))
        return
    console.print(f"hyperparameters of run {res['run_id'] or '(none)'}: " + ", ".join(
        f"{k} {res['hparams'][k]}" for k in ("lr", "batch_size", "grad_accum", "max_seq_len", "window_step",
                                             "warmup_steps", "weight_decay", "adam_eps", "eval_batch_size"))
        + f"; {res['train_steps']} optimizer steps (warmup {res['warmup_steps_used']})",
        highlight=False, markup=False, soft_wrap=True)
    if not dry_run:
        console.print(results_table(res))
    for note in res["notes"]:
        console.print(f"note: {note}", highlight=False, markup=False, soft_wrap=True)
    if res.get("speedup"):
        console.print("xlt / transformers speed: " + ", ".join(f"{k} {v:.2f}x" for k, v in res["speedup"].items()),
                      highlight=False)
    for row in res.get("rows", []):
        metric = res["primary_metric"]
        scores = " ".join(f"{lang} {v[metric]:.3f}" for lang, v in row["scores"].items())
        console.print(f"{row['pipeline']} {metric}: {scores}", highlight=False, markup=False, soft_wrap=True)
        if "words_lost" in row:
            lost = ", ".join(f"{lang} {n:,} of {row['words'][lang]:,}" for lang, n in row["words_lost"].items())
            console.print(f"{row['pipeline']} words lost to truncation at {res['max_seq_len']} (scored with the "
                          f"unaligned tag): {lost}", highlight=False, markup=False, soft_wrap=True)
    if json_path is not None:
        json_path.write_text(json.dumps(res, indent=2) + "\n", encoding="utf-8")
        console.print(f"wrote {json_path}", highlight=False, markup=False)


def results_table(res: dict) -> Table:
    """One row per pipeline and phase: seconds, examples/s, padding, model rows; memory on the total row."""
    table = Table(title=escape(f"{res['model']} · {res['task']} {res['split']} · {len(res['languages'])} languages "
                               f"· {res['train_steps']} steps x {res['batch_size']} · max len {res['max_seq_len']} "
                               f"· {res['precision']} · {res['threads']} threads"))
    for col in ("pipeline", "phase", "seconds", "examples/s", "padding", "model rows", "peak memory"):
        table.add_column(col, justify="left" if col in ("pipeline", "phase") else "right")
    for row in res["rows"]:
        model_rows = {"train": row.get("train_rows"), "evaluate": row.get("eval_rows")}
        for phase in ("tokenise", "train", "evaluate"):
            n = model_rows.get(phase)
            table.add_row(row["pipeline"], phase, f"{row[f'{phase}_s']:.2f}", f"{row[f'{phase}_examples_per_s']:,.1f}",
                          f"{row.get(f'{phase}_padding_share', 0):.0%}", f"{n:,}" if n is not None else "", "")
        table.add_row(row["pipeline"], "total", f"{row['total_s']:.2f}", "", "", "",
                      f"{row['peak_mem_bytes'] / 2**30:.2f} GB", style="bold")
    return table
