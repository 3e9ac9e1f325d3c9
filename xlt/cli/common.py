"""Typer apps shared by the command groups, the options several commands use, and table printing.

Each group lives in its own module (models.py, tasks.py, run.py, sweep.py, report.py, bench.py) and registers its
commands on the apps defined here; `xlt bench` gathers one sub-command from each group.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Iterable, Optional

import typer
from rich.console import Console

import xlt

# Help is click's plain formatter (rich_markup_mode=None): rich's option panel truncates long option names
# at 80 columns ("--max-train-sam…"); click's never cuts a name and wraps the help text instead.
_APP = dict(no_args_is_help=True, rich_markup_mode=None)
app = typer.Typer(help="Zero-shot cross-lingual transfer of multilingual encoders.", pretty_exceptions_enable=False,
                  **_APP)
models_app = typer.Typer(help="Model registry and native-implementation checks.", **_APP)
tasks_app = typer.Typer(help="Task suites: list, show and validate task YAML files.", **_APP)
report_app = typer.Typer(help="Comparison tables and suite summaries from run records and published numbers.",
                         **_APP)
leaderboard_app = typer.Typer(help="Static leaderboard site.", **_APP)
bench_app = typer.Typer(help="Performance benchmarks (print a table, optionally write JSON).", **_APP)

app.add_typer(models_app, name="models")
app.add_typer(tasks_app, name="tasks")
app.add_typer(report_app, name="report")
app.add_typer(leaderboard_app, name="leaderboard")
app.add_typer(bench_app, name="bench")

console = Console()
err_console = Console(stderr=True)


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"xlt {xlt.__version__}")
        raise typer.Exit()


@app.callback()
def _root(version: Annotated[bool, typer.Option("--version", callback=_print_version, is_eager=True,
                                                help="Print xlt's version and exit.")] = False) -> None:
    """Zero-shot cross-lingual transfer of multilingual encoders."""


# Options shared by several commands, defined once.
DataDirOpt = Annotated[Optional[Path], typer.Option(
    "--data-dir", envvar="XLT_DATA_DIR",
    help="Read task data from DIR/<task>/<split>-<lang>.<tsv|csv|jsonl|parquet> instead of the hub.")]
TasksDirOpt = Annotated[Optional[Path], typer.Option(
    "--tasks-dir", help="Extra directory of task YAML files (also XLT_TASKS_PATH, ':'-separated).")]
ResultsDirOpt = Annotated[Path, typer.Option(
    "--results-dir", envvar="XLT_RESULTS_DIR", help="Where run records live (runs/<task>/<model>/<run_id>.json).")]
JsonOpt = Annotated[Optional[Path], typer.Option("--json", help="Also write the results as JSON to this path.")]
JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table (for scripts and jq).")]


def print_json(data: Any) -> None:
    """Machine-readable output on stdout: indented JSON, never wrapped or styled."""
    typer.echo(json.dumps(data, indent=2, default=str))


def print_wide(renderables: Iterable[Any], target: Console | None = None) -> None:
    """Print each rich table at its natural width when the console is narrower or is not a terminal: rich
    fits a table to 80 columns when writing into a pipe and cuts names ("mdeberta-…"), so
    `xlt models list | grep mdeberta-v3-base` would find nothing; a wrapped line is easier to read, too,
    than a table whose columns rich squeezed away."""
    from rich.measure import Measurement

    target = target or console
    for renderable in renderables:
        width = Measurement.get(target, target.options.update(width=10_000), renderable).maximum
        if width <= target.width:
            target.print(renderable)
        else:   # rich never prints wider than its console, so print through a wider one on the same file
            Console(file=target.file, width=width, color_system=target.color_system,
                    force_terminal=target.is_terminal, soft_wrap=True).print(renderable)
