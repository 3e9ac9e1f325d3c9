"""`xlt report tables|summary|runs|show` and `xlt leaderboard build`: parse, call xlt.report /
xlt.leaderboard, render."""

from __future__ import annotations

import math
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table as RichTable

from xlt.cli.common import (JsonFlag, ResultsDirOpt, console, err_console, leaderboard_app, print_json,
                            print_wide, report_app)
from xlt.errors import XltError
from xlt.report import DEFAULT_BASELINE, load_usable_records
from xlt.results import DEFAULT_RESULTS_DIR, display_name


class Format(str, Enum):
    console = "console"
    md = "md"
    csv = "csv"
    latex = "latex"
    html = "html"
    json = "json"


class Split(str, Enum):
    test = "test"
    validation = "validation"


SplitOpt = Annotated[Split, typer.Option("--split", help="Split of the measured runs.")]
FormatOpt = Annotated[Format, typer.Option("--format", help="Output format.")]
OutputOpt = Annotated[Optional[Path], typer.Option("--output", help="Write to this file instead of stdout.")]
NoReferenceOpt = Annotated[bool, typer.Option("--no-reference", help="Leave out the published numbers.")]


def _warn(problems: list[str], prefix: str = "skipped ") -> None:
    for problem in problems:
        err_console.print(f"[yellow]warning:[/] {prefix}{escape(problem)}", highlight=False, soft_wrap=True)


def _num(value: object, digits: int = 1) -> str:
    return "–" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


def _format(fmt: Format, as_json: bool) -> Format:
    if as_json and fmt not in (Format.console, Format.json):
        raise XltError(f"--json and --format {fmt.value} ask for two formats; give one")
    return Format.json if as_json else fmt


def _emit(text: str | None, renderables: list, output: Path | None) -> None:
    """Print `text` (or the rich `renderables`) to stdout, or write it to `output`."""
    if output is None:
        if text is None:
            print_wide(renderables)
        else:
            typer.echo(text, nl=False)
        return
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
        if text is None:
            with output.open("w", encoding="utf-8") as f:
                print_wide(renderables, Console(file=f, width=100, color_system=None))
        else:
            output.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise XltError(f"cannot write {output}: {exc}") from None
    err_console.print(f"wrote {escape(str(output))}", highlight=False)


@report_app.command("tables")
def tables(
    task: Annotated[Optional[str], typer.Option("--task", help="One task (default: every task with results).")] = None,
    baseline: Annotated[str, typer.Option(
        "--baseline", help="Model the Δ rows compare against; also matches a published row ('XLM-R base').")
    ] = DEFAULT_BASELINE,
    split: SplitOpt = Split.test,
    fmt: FormatOpt = Format.console,
    as_json: JsonFlag = False,
    output: OutputOpt = None,
    results_dir: ResultsDirOpt = DEFAULT_RESULTS_DIR,
    no_reference: NoReferenceOpt = False,
    resamples: Annotated[int, typer.Option("--resamples", min=100, max=100_000,
                                           help="Paired-bootstrap resamples.")] = 1000,
) -> None:
    """Per task: one row per model (runs: mean ± std over seeds; published rows with their split), Δ vs baseline."""
    from xlt.report import build_report, console_tables, render
    from xlt.report.render import missing_note

    fmt = _format(fmt, as_json)
    records = load_usable_records(results_dir)
    _warn(records.problems)   # before anything can fail, so a skipped file is always named
    report = build_report(results_dir, task, baseline=baseline, split=split.value, reference=not no_reference,
                          n_resamples=resamples, records=records)
    _warn(report.warnings, prefix="")
    if not report.tables and fmt is not Format.json:
        raise XltError(f"nothing to report: no completed runs under {results_dir / 'runs'}"
                       + ("" if no_reference else " and no reference numbers")
                       + (f". {missing_note(report.missing)}" if report.missing else ""))
    if fmt is Format.console:
        if report.missing:
            err_console.print(f"[yellow]note:[/] {escape(missing_note(report.missing))}", highlight=False)
        _emit(None, console_tables(report.tables), output)
    else:
        _emit(render(report.tables, fmt.value, report.missing), [], output)


@report_app.command("summary")
def summary(
    tasks: Annotated[Optional[str], typer.Option(
        "--tasks", help="Comma-separated tasks (default: every task of the suite).")] = None,
    suite: Annotated[str, typer.Option("--suite", help="Task groups and scoring (xlt/report/suites.yaml).")
                     ] = "xtreme",
    split: SplitOpt = Split.test,
    fmt: FormatOpt = Format.console,
    as_json: JsonFlag = False,
    output: OutputOpt = None,
    results_dir: ResultsDirOpt = DEFAULT_RESULTS_DIR,
    no_reference: NoReferenceOpt = False,
) -> None:
    """One row per model, one column per task (its language average), the suite's group averages and overall."""
    from xlt.report.render_summary import console_summary, render_summary
    from xlt.report.summary import build_summary

    fmt = _format(fmt, as_json)
    records = load_usable_records(results_dir)
    _warn(records.problems)
    names = [t.strip() for t in tasks.split(",") if t.strip()] if tasks else None
    result = build_summary(results_dir, names, suite=suite, split=split.value, reference=not no_reference,
                           records=records)
    if not result.rows and fmt is not Format.json:
        raise XltError(f"nothing to summarise: no completed runs of {', '.join(result.tasks)} under "
                       f"{results_dir / 'runs'}" + ("" if no_reference else " and no reference numbers"))
    if fmt is Format.console:
        _emit(None, [console_summary(result)], output)
    else:
        _emit(render_summary(result, fmt.value), [], output)


@report_app.command("runs")
def runs(
    results_dir: ResultsDirOpt = DEFAULT_RESULTS_DIR,
    task: Annotated[Optional[str], typer.Option("--task", help="Only this task.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Every run record: task, model, seed, status, average (primary metric, %), created."""
    from xlt.report import runs_table

    records = load_usable_records(results_dir)
    _warn(records.problems)
    frame = runs_table(records)
    if task:
        frame = frame[frame["task"] == task]
    if as_json:
        print_json([{k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in row.items()}
                    for row in frame.to_dict("records")])
        return
    if frame.empty:
        console.print(f"no run records under {escape(str(results_dir / 'runs'))}", highlight=False)
        return
    table = RichTable(title=f"{len(frame)} run record{'s' if len(frame) != 1 else ''}", title_justify="left")
    for name, justify in (("run_id", "left"), ("task", "left"), ("model", "left"), ("seed", "right"),
                          ("status", "left"), ("avg", "right"), ("split", "left"), ("created", "left")):
        table.add_column(name, justify=justify, no_wrap=name in ("run_id", "created", "model", "task"))
    for row in frame.itertuples(index=False):
        status = escape(row.status) if row.status == "completed" else f"[red]{escape(row.status)}[/]"
        table.add_row(escape(row.run_id), escape(str(row.task)), escape(str(row.model)), str(row.seed), status,
                      _num(row.avg), escape(str(row.split or "")), escape(str(row.created or "")))
    print_wide([table])


@report_app.command("show")
def show(
    run_id: Annotated[str, typer.Argument(help="A run id or a unique prefix of one.")],
    results_dir: ResultsDirOpt = DEFAULT_RESULTS_DIR,
    as_json: JsonFlag = False,
    export: Annotated[Optional[Path], typer.Option(
        "--export", help="Also write the run's predictions into DIR in the field's format, one file per split "
                         "and language (QA: {id: answer} JSON, as the official scripts read).")] = None,
) -> None:
    """One run in full: spec, status, environment, selection and the per-language table."""
    from xlt.report import find_run, run_detail

    records = load_usable_records(results_dir)
    _warn(records.problems)
    path, record = find_run(records, run_id)
    if export is not None:
        from xlt.results import load_predictions
        from xlt.scoring import export_run

        for written in export_run(record, load_predictions(path, record), export):
            err_console.print(f"wrote {escape(str(written))}", highlight=False)
    if as_json:
        print_json({"file": str(path), "record": record})
        return
    spec = record["spec"]
    model = record.get("model") or {}
    info = RichTable.grid(padding=(0, 2))
    info.add_column(style="bold")
    info.add_column(overflow="fold")   # long paths wrap, never cut
    fields = [("run_id", record["run_id"]), ("file", str(path)), ("status", record["status"]),
              ("task", spec["task"]), ("model", display_name(record)), ("spec model", spec["model"]),
              ("hub_id", model.get("hub_id")), ("impl", model.get("impl") or spec.get("impl")),
              ("seed", spec["seed"]), ("protocol", spec.get("protocol")), ("precision", spec.get("precision")),
              ("hparams", ", ".join(f"{k}={v}" for k, v in (spec.get("hparams") or {}).items())),
              ("selection", ", ".join(f"{k}={v}" for k, v in (record.get("selection") or {}).items()
                                      if k != "history")),
              ("timing", ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                                   for k, v in (record.get("timing") or {}).items())),
              ("env", ", ".join(f"{k}={v}" for k, v in (record.get("env") or {}).items() if v is not None)),
              ("flags", ", ".join(record.get("flags") or []) or None), ("created", record.get("created_at"))]
    fields += _model_fields(record, results_dir)
    error = record.get("error")
    if error:
        fields.append(("error", f"{error.get('type')}: {error.get('message')}"))
    for name, value in fields:
        if value not in (None, ""):
            info.add_row(name, escape(str(value)))
    console.print(info)
    detail = run_detail(record)
    if detail.empty:
        console.print("no metrics recorded")
        return
    langs = [c for c in detail.columns if c not in ("split", "metric")]
    table = RichTable(title="per language (metrics in %, n = examples)", title_justify="left")
    table.add_column("split")
    table.add_column("metric")
    for lang in langs:
        table.add_column(escape(str(lang)), justify="right")
    for row in detail.to_dict("records"):
        count = row["metric"] == "n" or str(row["metric"]).startswith("n_")
        cells = []
        for lang in langs:
            v = row.get(lang)
            cells.append("–" if v is None or (isinstance(v, float) and math.isnan(v)) else
                         (str(int(v)) if count else f"{v:.1f}"))
        table.add_row(escape(str(row["split"])), escape(str(row["metric"])), *cells)
    print_wide([table])


def _model_fields(record: dict, results_dir: Path) -> list[tuple[str, object]]:
    """Where a run's saved model lives and its size (`xlt run --save-model`), and how an evaluated checkpoint's
    labels were matched to the task's (`xlt eval`), as the record says."""
    out: list[tuple[str, object]] = []
    saved = record.get("saved_model") or {}
    if saved.get("path"):
        folder = results_dir / str(saved["path"])
        size = saved.get("bytes")
        out.append(("saved model", f"{folder}" + (f" ({size / 1e6:,.1f} MB)" if isinstance(size, int) else "")
                    + ("" if folder.is_dir() else " (no longer there)")))
    labels = (record.get("model") or {}).get("labels") or {}
    if labels.get("map"):
        how = labels.get("how") or {}
        out.append(("labels", ", ".join(f"{task} <- {ckpt if ckpt is not None else '(none)'}"
                                        + (f" ({how[task]})" if how.get(task) else "")
                                        for task, ckpt in labels["map"].items())
                    + (f"; left out: {', '.join(labels['unused_checkpoint_labels'])}"
                       if labels.get("unused_checkpoint_labels") else "")))
    return out


@leaderboard_app.command("build")
def build(
    output: Annotated[Path, typer.Option("--output", help="Folder to write the site into.")] = Path("leaderboard"),
    results_dir: ResultsDirOpt = DEFAULT_RESULTS_DIR,
    split: SplitOpt = Split.test,
    baseline: Annotated[str, typer.Option("--baseline", help="Model the Δ rows compare against.")
                        ] = DEFAULT_BASELINE,
) -> None:
    """Static site: summary and sortable per-task tables, charts, README.md; opens from disk."""
    from xlt.leaderboard import build_leaderboard

    board = build_leaderboard(results_dir, output, split=split.value, baseline=baseline)
    _warn(board.problems)
    _warn(board.warnings, prefix="")
    console.print(f"wrote {len(board.files)} files to {escape(str(board.output))} "
                  f"({len(board.tables)} task tables): open {escape(str(board.output / 'index.html'))}",
                  highlight=False)
