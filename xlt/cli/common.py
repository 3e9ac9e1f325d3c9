"""Typer apps shared by the command groups, and the options several commands use.

Each group lives in its own module (models.py, tasks.py, run.py, sweep.py, report.py) and registers its
commands on the apps defined here; `xlt bench` gathers one sub-command from each group.
"""

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

app = typer.Typer(help="Zero-shot cross-lingual transfer of multilingual encoders.", no_args_is_help=True,
                  pretty_exceptions_enable=False)
models_app = typer.Typer(help="Model registry and native-implementation checks.", no_args_is_help=True)
tasks_app = typer.Typer(help="Task suites: list, show and validate task YAML files.", no_args_is_help=True)
report_app = typer.Typer(help="Comparison tables from run records and published numbers.", no_args_is_help=True)
leaderboard_app = typer.Typer(help="Static leaderboard site.", no_args_is_help=True)
bench_app = typer.Typer(help="Performance benchmarks (print a table, optionally write JSON).", no_args_is_help=True)

app.add_typer(models_app, name="models")
app.add_typer(tasks_app, name="tasks")
app.add_typer(report_app, name="report")
app.add_typer(leaderboard_app, name="leaderboard")
app.add_typer(bench_app, name="bench")

console = Console()
err_console = Console(stderr=True)

# Options shared by several commands, defined once.
DataDirOpt = Annotated[Optional[Path], typer.Option(
    "--data-dir", envvar="XLT_DATA_DIR",
    help="Read task data from DIR/<task>/<split>-<lang>.<tsv|csv|jsonl|parquet> instead of the hub.")]
TasksDirOpt = Annotated[Optional[Path], typer.Option(
    "--tasks-dir", help="Extra directory of task YAML files (also XLT_TASKS_PATH, ':'-separated).")]
ResultsDirOpt = Annotated[Path, typer.Option(
    "--results-dir", envvar="XLT_RESULTS_DIR", help="Where run records live (runs/<task>/<model>/<run_id>.json).")]
JsonOpt = Annotated[Optional[Path], typer.Option("--json", help="Also write the results as JSON to this path.")]
