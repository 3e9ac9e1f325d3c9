"""`xlt score`: score an external system's predictions with xlt's metrics, one language at a time."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.markup import escape
from rich.table import Table

from xlt.cli.common import DataDirOpt, TasksDirOpt, app, console, err_console


def score_table(score) -> Table:
    """The per-language line of `xlt run`'s summary: lang, each metric in percent, n."""
    table = Table(title=escape(f"{Path(score.predictions).name} · {score.task} · {score.split} · "
                               "external predictions"), title_justify="left")   # every user string escaped
    table.add_column("lang")
    for name in score.metric_names:
        table.add_column(escape(f"{score.split} {name}"), justify="right")
    table.add_column(escape(f"{score.split} n"), justify="right")
    table.add_row(escape(score.lang), *[f"{score.metrics[m] * 100:.2f}" for m in score.metric_names],
                  str(score.metrics["n"]))
    return table


@app.command("score")
def score_command(
    task: Annotated[str, typer.Option("--task", "-t", help="Task name (xlt tasks list) or a task YAML file.")],
    lang: Annotated[str, typer.Option("--lang", "-l", help="Language of the predictions.")],
    predictions: Annotated[Path, typer.Option(
        "--predictions", "-p", help="Predictions file: {id: answer} JSON (QA), two-column CoNLL (tagging), an "
                                    "id,pred table (sentence pairs).")],
    split: Annotated[Optional[str], typer.Option(
        "--split", help="Split scored against (default: the task's first evaluation split).")] = None,
    data_dir: DataDirOpt = None,
    tasks_dir: TasksDirOpt = None,
    json_: Annotated[bool, typer.Option("--json", help="Print the scores as JSON instead of a table.")] = False,
) -> None:
    """Score another system's predictions for one language with the metrics an `xlt run` records."""
    from xlt.scoring import score_file

    result = score_file(task, lang, predictions, split=split, data_dir=data_dir, tasks_dir=tasks_dir)
    for note in result.notes:
        err_console.print(f"[yellow]note:[/] {escape(note)}", highlight=False, soft_wrap=True)
    if json_:
        typer.echo(json.dumps(result.to_dict(), indent=2, ensure_ascii=False))
        return
    console.print(score_table(result))
