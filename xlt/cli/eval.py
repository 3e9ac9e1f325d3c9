"""`xlt eval`: how well does a checkpoint someone already fine-tuned do in every language of a task? No training.

    xlt eval --model MoritzLaurer/mDeBERTa-v3-base-mnli-xnli --task xnli
    xlt eval --model 3f2a9c1b2d4e --task americasnli        # the model `xlt run --save-model` kept for that run

Builds a spec with protocol "evaluate" (`xlt.recipes.build_spec`), checks the checkpoint's head and matches its
labels to the task's by name from config.json before any weight is read (xlt.checkpoint_eval, xlt.labelmatch),
then `xlt.runner.run` evaluates every split and language with the checkpoint's own head and writes one record.
`--model` is a registry name, hub id or checkpoint folder, or the id of a run that saved its model (a unique
prefix is enough; looked up under --results-dir). Exit codes as `xlt run`: 0 completed (or skipped), 1 failed,
2 a usage error (a checkpoint whose labels or head do not fit the task), 130 interrupted.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.markup import escape
from rich.table import Table

from xlt.cli.common import DataDirOpt, ResultsDirOpt, TasksDirOpt, app, console, err_console, print_json, print_wide
from xlt.errors import XltError
from xlt.results import DEFAULT_RESULTS_DIR, RecordWriteError
from xlt.spec import PRECISIONS, parse_label_map

# The hyperparameters evaluation uses; the rest only matter to training.
EVAL_HPARAMS = ("max_seq_len", "window_step", "eval_batch_size")


def resolve_model_arg(model: str, results_dir: Path) -> tuple[str, str | None, dict[str, Any]]:
    """(the model to load, its default name in reports, evaluation hyperparameters it comes with): a checkpoint
    folder, registry name or hub id as given; a run id (or unique prefix) of a run that saved its model: that
    folder. A model a run saved is named `<run's model>-<task>` and evaluated with the run's max_seq_len,
    window_step and eval_batch_size (so that it gives the run's numbers back), unless given."""
    from xlt.models.registry import REGISTRY
    from xlt.saved_models import find_saved_model, looks_like_run_id, saved_model_name, saved_model_record

    if Path(model).expanduser().is_dir():
        folder = Path(model).expanduser()
    elif model in REGISTRY or "/" in model or not looks_like_run_id(model):
        return model, None, {}
    else:
        folder = find_saved_model(results_dir, model)
        model = str(folder)
    record = saved_model_record(folder)
    if record is None:
        return model, None, {}
    hparams = record["spec"].get("hparams") or {}
    return model, saved_model_name(record), {k: hparams[k] for k in EVAL_HPARAMS if k in hparams}


def eval_overrides(sets: list[str], max_seq_len: int | None) -> dict[str, Any]:
    from xlt.cli.run import resolve_overrides

    overrides, notes = resolve_overrides(sets, {"max_seq_len": max_seq_len})
    other = [name for name in overrides if name not in EVAL_HPARAMS]
    if other:
        raise XltError(f"--set {', '.join(other)} does not apply to xlt eval (nothing is trained); it takes "
                       f"{', '.join(EVAL_HPARAMS)}")
    for note in notes:
        err_console.print(f"note: {note}", highlight=False, markup=False, soft_wrap=True)
    return overrides


def labels_table(labels: dict[str, Any]) -> Table:
    table = Table(title="labels matched by name (task label <- checkpoint label)", title_justify="left")
    for col in ("task label", "checkpoint label", "how"):
        table.add_column(col)
    for task_label, ckpt in labels["map"].items():
        table.add_row(escape(task_label), escape(ckpt if ckpt is not None else "(none: never predicted)"),
                      escape(str(labels["how"].get(task_label) or "")))
    for ckpt in labels.get("unused_checkpoint_labels") or []:
        table.add_row("(not a task label)", escape(ckpt), "left out: never predicted")
    return table


@app.command("eval")
def eval_command(
    model: Annotated[str, typer.Option("--model", "-m", help="A fine-tuned checkpoint: hub id, local folder, "
                                       "registry name, or the id of a run that saved its model (--save-model).")],
    task: Annotated[str, typer.Option("--task", "-t", help="Task name (xlt tasks list) or a task YAML file.")],
    languages: Annotated[Optional[str], typer.Option(
        help="Evaluate only these languages, comma-separated (the source language always).")] = None,
    split: Annotated[Optional[str], typer.Option(
        "--split", help="Evaluate only these of the task's evaluation splits, comma-separated.")] = None,
    data_dir: DataDirOpt = None,
    results_dir: ResultsDirOpt = DEFAULT_RESULTS_DIR,
    tasks_dir: TasksDirOpt = None,
    max_eval_samples: Annotated[Optional[int], typer.Option(
        help="Evaluate the first N examples of each split and language.")] = None,
    max_seq_len: Annotated[Optional[int], typer.Option(help="Maximum tokens per example (window).")] = None,
    set_: Annotated[Optional[list[str]], typer.Option(
        "--set", help=f"One of {', '.join(EVAL_HPARAMS)} as key=value, repeatable.")] = None,
    label_map: Annotated[Optional[str], typer.Option(
        "--label-map", help="CHECKPOINT_LABEL=TASK_LABEL pairs, comma-separated, where the checkpoint's label "
                            "names do not say, e.g. LABEL_0=entailment,LABEL_1=neutral (docs/eval.md).")]
    = None,
    precision: Annotated[str, typer.Option(help=f"{'|'.join(PRECISIONS)} (as xlt run).")] = "auto",
    impl: Annotated[str, typer.Option(help="auto|native|hf: native DeBERTa or transformers.")] = "auto",
    device: Annotated[Optional[str], typer.Option(help="cpu, cuda, cuda:N (default: cuda if present).")] = None,
    name: Annotated[Optional[str], typer.Option(
        "--name", help="The model's name in reports (shown as '<name> (evaluated)'). Not part of the run id.")]
    = None,
    force: Annotated[bool, typer.Option("--force", help="Evaluate again even if a completed record exists.")]
    = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the spec and how the labels match; run "
                                          "nothing.")] = False,
    json_: Annotated[bool, typer.Option("--json", help="Print JSON: the dry run's plan, or the record.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars or tables.")] = False,
) -> None:
    """Evaluate a fine-tuned checkpoint's own head on every language of a task (no training), write a record."""
    from xlt import runner
    from xlt.checkpoint_eval import check_checkpoint
    from xlt.recipes import build_spec, explain_spec
    from xlt.tasks.registry import resolve_task_arg

    progress = None
    try:
        if name is not None and not name.strip():
            raise XltError("--name is empty; give the model a short name, e.g. --name my-nli-model")
        given = eval_overrides(set_ or [], max_seq_len)
        source, default_name, from_run = resolve_model_arg(model, results_dir)
        overrides = {**from_run, **given}
        task_spec, dirs = resolve_task_arg(task, tasks_dir)
        spec = build_spec(source, task_spec, 1, overrides=overrides, data_dir=data_dir, languages=languages,
                          precision=precision, impl=impl, protocol="evaluate", max_eval_samples=max_eval_samples,
                          label_map=parse_label_map(label_map) if label_map is not None else None, splits=split)
        _, match = check_checkpoint(spec, task_spec, task_spec.task_type)   # before any weight is read
        if dry_run:
            plan = explain_spec(spec, task_spec, overrides)
            plan["hparams_from"] = {k: v for k, v in plan["hparams_from"].items() if k in EVAL_HPARAMS}
            plan["labels"] = match.to_record() if match is not None else None
            if json_:
                print_json(plan)
                return
            table = Table(title=escape(f"eval {plan['run_id']}: {spec.model} · {spec.task} (dry run)"))
            for col in ("hyperparameter", "value", "from"):
                table.add_column(col)
            for key, where in plan["hparams_from"].items():
                table.add_row(key, escape(str(getattr(spec.hparams, key))), escape(where))
            print_wide([table, *([labels_table(plan["labels"])] if plan["labels"] else [])])
            return
        if not quiet:
            err_console.print(f"eval {spec.run_id}: {spec.model} on {spec.task} (no training)", highlight=False,
                              markup=False, soft_wrap=True)
        from xlt.cli.progress import make_progress

        progress = None if quiet or json_ else make_progress(err_console)
        try:
            done = runner.run(spec, task=task_spec, data_dir=data_dir, results_dir=results_dir, device=device,
                              force=force, tasks_dir=dirs or None, progress=progress,
                              display_name=(name.strip() if name else default_name))
        finally:
            if progress is not None:
                progress.close()
    except KeyboardInterrupt:
        err_console.print("interrupted", highlight=False, markup=False)
        raise typer.Exit(130)
    except RecordWriteError as exc:
        err_console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
        raise typer.Exit(1)
    except XltError as exc:
        err_console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
        raise typer.Exit(2)
    _render(done, json_, quiet)


def _render(done, json_: bool, quiet: bool) -> None:
    from xlt.cli.run import _footer, summary_table

    record = done.record
    if done.skipped and not json_:
        console.print(f"a completed record for eval {record['run_id']} exists: {done.path} (skipped; pass --force "
                      "to evaluate again)", highlight=False, markup=False, soft_wrap=True)
    if record["status"] != "completed":
        err = record.get("error") or {}
        err_console.print("[bold red]eval failed[/] " + escape(f"({err.get('stage', '?')}): {err.get('type')}: "
                                                              f"{err.get('message')}"), highlight=False, soft_wrap=True)
        raise typer.Exit(2 if err.get("stage") == "setup" and err.get("type") == "XltError" else 1)
    if json_:
        print_json({"file": str(done.path), "record": record})
    elif quiet:
        console.print(str(done.path), highlight=False, markup=False, soft_wrap=True)
    else:
        labels = (record.get("model") or {}).get("labels")
        print_wide([summary_table(record), *([labels_table(labels)] if labels else [])])
        console.print(_footer(record, done.path), highlight=False, soft_wrap=True)
