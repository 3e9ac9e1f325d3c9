"""`xlt tasks list|show|validate` and `xlt bench data`: parse, call one library function, render."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.markup import escape
from rich.table import Table

from xlt.cli.common import DataDirOpt, JsonOpt, TasksDirOpt, bench_app, console, err_console, tasks_app


def _write_json(path: Optional[Path], payload) -> None:
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(payload, indent=2, default=str) + "\n", encoding="utf-8")
        console.print(f"wrote {path}", style="dim", highlight=False, markup=False)


def _source_summary(spec) -> str:
    parts = []
    for src in spec.sources:
        where = src.hub or src.files or f"--data-dir only ({src.data_dir_name or spec.name}/)"
        if src.languages or src.splits:
            where += " (" + ", ".join(filter(None, [",".join(src.languages or ()), ",".join(src.splits or ())])) + ")"
        parts.append(where)
    return "; ".join(parts)


@tasks_app.command("list")
def list_cmd(tasks_dir: TasksDirOpt = None, json_path: JsonOpt = None) -> None:
    """Every registered task: built-in, XLT_TASKS_PATH and --tasks-dir."""
    from xlt.tasks import list_tasks

    problems: list = []
    specs = list_tasks(tasks_dir, problems)
    for p in problems:   # reported and skipped: one broken user file must not hide every other task
        err_console.print("[yellow]warning:[/] skipped " + escape(f"{p}"), highlight=False, soft_wrap=True)
    table = Table(title="xlt tasks")
    for col in ("name", "type", "languages", "source", "file"):
        table.add_column(col, overflow="fold")
    for s in specs:
        table.add_row(*map(escape, (s.name, s.type, f"{len(s.languages)}: {' '.join(s.languages)}",
                                    _source_summary(s), str(s.path) if s.path else "")))
    console.print(table)
    _write_json(json_path, [s.to_dict() for s in specs])


@tasks_app.command("show")
def show_cmd(
    name: Annotated[str, typer.Argument(help="Task name (or a path to a task YAML file).")],
    tasks_dir: TasksDirOpt = None,
    data_dir: DataDirOpt = None,
    json_path: JsonOpt = None,
) -> None:
    """The full task spec and where each split of each language comes from (hub or --data-dir file)."""
    from xlt.tasks import describe_sources, get_task

    spec = get_task(name, tasks_dir)
    d = spec.to_dict()
    table = Table(title=escape(f"task {spec.name} (version {spec.version})"), show_header=False)
    table.add_column("field", style="bold")
    table.add_column("value", overflow="fold")
    for key in ("type", "description", "citation", "labels", "source_lang", "train_split", "dev_split",
                "languages", "eval_splits", "metrics", "primary_metric", "reference", "path"):
        if key in ("train_split", "dev_split") and not spec.task_type.trains:
            continue   # a type that does not train reads no train or dev split
        value = d[key]
        table.add_row(key, escape(" ".join(value) if isinstance(value, list) else str(value) if value is not None
                                  else "-"))
    console.print(table)
    rows = describe_sources(spec, data_dir)
    st = Table(title=escape("where each split comes from" + (f" (--data-dir {data_dir})" if data_dir else "")))
    for col in ("split", "lang", "from"):
        st.add_column(col, overflow="fold")
    for r in rows:
        st.add_row(escape(r["split"]), escape(r["lang"]), escape(r["from"]))
    console.print(st)
    _write_json(json_path, d | {"splits": rows})


@tasks_app.command("validate")
def validate_cmd(
    files: Annotated[Optional[list[Path]], typer.Argument(
        help="Task YAML files or folders of them (default: every registered task file).")] = None,
    tasks_dir: TasksDirOpt = None,
) -> None:
    """Build each task file through TaskSpec; print every problem with file, line and fix; exit 1 if any."""
    from xlt.errors import XltError
    from xlt.tasks import task_files, validate_files

    paths: list[Path] = []
    for f in files or []:
        paths.extend(sorted(p for p in f.glob("*.y*ml") if p.suffix in (".yaml", ".yml")) if f.is_dir() else [f])
    if not files:
        paths = task_files(tasks_dir)
    elif not paths:
        raise XltError(f"no task files (*.yaml) in {', '.join(map(str, files))}")
    specs, problems = validate_files(paths)
    for p in problems:
        err_console.print(f"[red]{escape(p.file)}{':' + str(p.line) if p.line else ''}[/]: {escape(p.message)}\n"
                          f"    fix: {escape(p.fix)}", highlight=False, soft_wrap=True)
    bad = {p.file for p in problems}
    for s in specs:
        if str(s.path) not in bad:
            console.print("[green]ok[/] " + escape(f"{s.path}: {s.name} ({s.type}, {len(s.languages)} languages)"),
                          highlight=False, soft_wrap=True)
    if problems:
        err_console.print(f"{len(problems)} problem(s) in {len(bad)} file(s)", highlight=False, soft_wrap=True)
        raise typer.Exit(1)


@bench_app.command("data")
def bench_data_cmd(
    task: Annotated[str, typer.Option("--task", help="Task whose dev split is featurised, every language.")]
    = "xnli",
    data_dir: DataDirOpt = None,
    tokenizer: Annotated[str, typer.Option(
        "--tokenizer", help="Registry name, hub id or local tokenizer folder (offline: a folder).")]
    = "mdeberta-v3-base",
    batch_size: Annotated[int, typer.Option("--batch-size")] = 32,
    max_seq_len: Annotated[Optional[int], typer.Option(
        "--max-seq-len", help="Default: the task's own (its hyperparameters: block).")] = None,
    split: Annotated[Optional[str], typer.Option(
        "--split", help="Split to featurise in every language (default: the task's dev split).")] = None,
    repeats: Annotated[int, typer.Option("--repeats", help="Cached passes (the median is reported).")] = 3,
    langs: Annotated[Optional[str], typer.Option(
        "--langs", help="Comma-separated subset of the task's languages (default: all).")] = None,
    tasks_dir: TasksDirOpt = None,
    json_path: JsonOpt = None,
) -> None:
    """Tokenisation throughput cold vs cached, and padding efficiency of bucketed vs fixed-128 batches."""
    from xlt.bench.data import run_data_bench

    res = run_data_bench(task, data_dir, tokenizer, batch_size=batch_size, max_seq_len=max_seq_len,
                         repeats=repeats, tasks_dir=tasks_dir, split=split,
                         languages=[l.strip() for l in langs.split(",") if l.strip()] if langs else None)
    unit = res["unit"]
    table = Table(title=escape(f"{res['task']} {res['split']}: {res['examples']:,} {unit} in "
                               f"{len(res['languages'])} languages, {res['tokenizer_class']}, batch {batch_size}, "
                               f"max len {res['max_seq_len']}"))
    table.add_column("measure")
    table.add_column("value", justify="right")
    table.add_row("read split files", f"{res['read_s']:.2f} s")
    table.add_row("cold featurize (tokenise + write cache)", f"{res['cold_s']:.2f} s, {res['cold_pairs_per_s']:,.0f} {unit}/s")
    table.add_row("cached featurize (median)", f"{res['cached_s']:.3f} s, {res['cached_pairs_per_s']:,.0f} {unit}/s")
    table.add_row("cached speedup", f"{res['cached_speedup']:.0f}x")
    table.add_row("tokenise only (no cache, median)",
                  f"{res['tokenise_s']:.3f} s, {res['tokenise_us_per_example']:,.0f} us per {unit[:-1]}")
    table.add_row("model rows (windows) per example", f"{res['rows_per_example']:.2f} (max {res['max_rows_per_example']})")
    table.add_row("mean tokens per example", f"{res['mean_tokens_per_pair']:.1f}")
    table.add_row("rows at max len (truncated, windowed or exactly full)", f"{res['pairs_at_max_len']:,}")
    table.add_row("padding efficiency: bucketed (train)", f"{res['padding_efficiency_bucketed']:.3f}")
    table.add_row("padding efficiency: sorted (eval)", f"{res['padding_efficiency_sorted']:.3f}")
    table.add_row("padding efficiency: random batches, dynamic", f"{res['padding_efficiency_random']:.3f}")
    table.add_row(f"padding efficiency: fixed {res['max_seq_len']}", f"{res['padding_efficiency_fixed']:.3f}")
    console.print(table)
    for target, ok in res["targets"].items():
        console.print(f"target {target}: {'[green]met[/]' if ok else '[red]missed[/]'}", highlight=False)
    _write_json(json_path, res)
