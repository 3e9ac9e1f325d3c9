"""`xlt run`: fine-tune one model on one task's source language, evaluate every language, write a RunRecord.

Parses options into a `RunSpec` (preset for the model and task, then any hyperparameter given, then the
identity of the data it will read), calls `xlt.runner.run`, and renders a per-language summary. Exit codes:
0 completed (or skipped: a completed record exists), 1 the run failed (its record says why) or its record
could not be written, 2 a usage error, 130 interrupted (Ctrl-C; the training checkpoint is kept).
Everything printed that a user wrote (model, task, names, messages) is escaped: it is never read as markup.
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.markup import escape
from rich.table import Table

from xlt.cli.common import DataDirOpt, ResultsDirOpt, TasksDirOpt, app, console, err_console, print_wide
from xlt.errors import XltError
from xlt.results import DEFAULT_RESULTS_DIR, RecordWriteError, display_name
from xlt.spec import PRECISIONS, PROTOCOLS, RunSpec, check_hparams, parse_sets


def build_run_spec(model: str, task: str, seed: int, *, data_dir: Path | None, overrides: dict[str, Any],
                   precision: str, impl: str, max_train_samples: int | None, max_eval_samples: int | None,
                   tasks_dir: Path | None = None, languages: Any = None, protocol: str = "zero-shot",
                   shots: int | None = None) -> tuple[RunSpec, Any, list[Path]]:
    """The `--task` resolved once (a name, or a task file's path recorded by its name), the spec
    (`xlt.recipes.build_spec`), and the task folders the run searches (a path adds its own folder)."""
    from xlt.recipes import build_spec
    from xlt.tasks.registry import resolve_task_arg

    task_spec, dirs = resolve_task_arg(task, tasks_dir)
    spec = build_spec(model, task_spec, seed, overrides=overrides, data_dir=data_dir, languages=languages,
                      precision=precision, impl=impl, max_train_samples=max_train_samples,
                      max_eval_samples=max_eval_samples, protocol=protocol, shots=shots)
    return spec, task_spec, dirs


def resolve_overrides(sets: list[str], flags: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """Hyperparameters from `--set` and the dedicated flags, and a note for each `--set` a flag replaced.

    Every `--set` value is checked even when a flag replaces it (`--set epochs=abc --epochs 2` is an error,
    not silently ignored); a dedicated flag (`--epochs 2`) takes precedence over `--set` of the same name."""
    overrides: dict[str, Any] = check_hparams(parse_sets(sets))
    notes = []
    for name, value in flags.items():
        if value is None:
            continue
        if name in overrides and overrides[name] != check_hparams({name: value})[name]:
            flag = {"warmup_steps": "warmup"}.get(name, name).replace("_", "-")
            notes.append(f"--{flag} {value} takes precedence over --set {name}={overrides[name]}")
        overrides[name] = value
    return overrides, notes


def resume_command(spec: RunSpec, task_arg: str, overrides: dict[str, Any], *, data_dir: Path | None,
                   results_dir: Path, tasks_dir: Path | None, name: str | None, device: str | None,
                   checkpoint_every: int, save_model: bool = False) -> str:
    """The `xlt run ... --resume` command that continues this run (the same spec, so the same run id)."""
    args = ["xlt", "run", "--model", spec.model, "--task", task_arg, "--seed", str(spec.seed)]
    for flag, value, default in (("--data-dir", data_dir, None), ("--results-dir", results_dir, DEFAULT_RESULTS_DIR),
                                 ("--tasks-dir", tasks_dir, None), ("--precision", spec.precision, "auto"),
                                 ("--protocol", spec.protocol, "zero-shot"), ("--shots", spec.shots, None),
                                 ("--impl", spec.impl, "auto"), ("--max-train-samples", spec.max_train_samples, None),
                                 ("--max-eval-samples", spec.max_eval_samples, None), ("--name", name, None),
                                 ("--device", device, None), ("--checkpoint-every", checkpoint_every, 500)):
        if value is not None and value != default:
            args += [flag, str(value)]
    if spec.languages is not None:
        args += ["--languages", ",".join(spec.languages)]
    for key, value in overrides.items():
        args += ["--set", f"{key}={value}"]
    return shlex.join([*args, *(["--save-model"] if save_model else []), "--resume"])


def render_dry_run(plan: dict[str, Any]) -> Table:
    spec = plan["spec"]
    protocol = "" if spec["protocol"] == "zero-shot" else f" · {spec['protocol']}" + \
        (f" ({spec['shots']} shots)" if spec.get("shots") else "")
    table = Table(title=escape(f"run {plan['run_id']}: {spec['model']} · {spec['task']} · seed {spec['seed']}"
                               f"{protocol} (dry run)"))
    table.add_column("hyperparameter")
    table.add_column("value", justify="right")
    table.add_column("from")
    for name, value in spec["hparams"].items():
        table.add_row(name, escape(str(value)), escape(plan["hparams_from"][name]))
    return table


def summary_table(record: dict[str, Any]) -> Table:
    """One row per language; per evaluated split, each metric of the task and the example count."""
    metrics = record.get("metrics") or {}
    names = (record.get("task") or {}).get("metrics") or sorted(
        {m for by_lang in metrics.values() for v in by_lang.values() for m in v if m != "n"})
    langs = (record.get("task") or {}).get("languages") or list(
        dict.fromkeys(lang for by_lang in metrics.values() for lang in by_lang))
    spec = record["spec"]
    protocol = "" if spec.get("protocol", "zero-shot") == "zero-shot" else f" · {spec['protocol']}" + \
        (f" ({spec['shots']} shots)" if spec.get("shots") else "")
    title = f"{display_name(record)} · {spec['task']} · seed {spec['seed']}{protocol} · {record['status']}"
    table = Table(title=escape(title))
    table.add_column("lang")
    for split in metrics:
        for name in names:
            table.add_column(escape(f"{split} {name}"), justify="right")
        table.add_column(escape(f"{split} n"), justify="right")
    for lang in langs:
        if not any(lang in by_lang for by_lang in metrics.values()):
            continue
        row = [escape(lang)]
        for split, by_lang in metrics.items():
            values = by_lang.get(lang, {})
            row += [f"{values[n] * 100:.2f}" if n in values else "-" for n in names]
            row.append(str(values.get("n", "-")))
        table.add_row(*row)
    if len(langs) > 1:
        from xlt.report import macro_average

        row = ["avg"]
        for split, by_lang in metrics.items():
            for n in names:
                avg = macro_average({lang: v.get(n) for lang, v in by_lang.items()}, list(by_lang))
                row.append(f"{avg * 100:.2f}" if avg is not None else "-")
            row.append("")
        table.add_row(*row, style="bold")
    return table


def protocol_lines(block: dict[str, Any] | None) -> list[str]:
    """What a record of a protocol beyond zero-shot says of its models (rich markup, escaped)."""
    if not block:
        return []
    lines = []
    for key, model in block.get("models", {}).items():
        parts = ", ".join(f"{p['split']}/{p['lang']} ({p['n']})" for p in model.get("train", []))
        chosen = (model.get("selection") or {}).get("criterion", "-")
        start = f" from model {model['continues']}" if model.get("continues") else ""
        lines.append(escape(f"model {key}{start}: trained on {parts}; selected by {chosen}; evaluates "
                            f"{', '.join(model.get('languages', []))}"))
    if block.get("missing"):
        lines.append("[yellow]warning:[/] " + escape("left out for lack of data: " + "; ".join(
            f"{lang} ({', '.join(what)})" for lang, what in block["missing"].items())))
    return lines


def _footer(record: dict[str, Any], path: Path | None) -> str:
    """The lines under the summary table (rich markup; every value from the record escaped)."""
    sel, timing, env = record.get("selection") or {}, record.get("timing") or {}, record.get("env") or {}
    lines = []
    if sel.get("best_step") is not None:
        lines.append(escape(f"selected step {sel['best_step']} of {sel.get('total_steps')} by "
                            f"{sel.get('criterion')} = {sel['best_value']:.4f}"))
    if timing:
        rates = [f"{v:,.0f} {k[5:-6]}/s" for k, v in timing.items()
                 if k.startswith("eval_") and k.endswith("_per_s") and k != "eval_examples_per_s"] or \
            [f"{timing.get('eval_examples_per_s', 0):.0f} ex/s"]
        trained = (f"train {timing.get('train_s', 0):.1f}s ({timing.get('train_tokens_per_s', 0):.0f} tok/s), "
                   if "train_s" in timing else "")   # `xlt eval` and types that do not train: no training
        lines.append(escape(f"{trained}eval {timing.get('eval_s', 0):.1f}s ({', '.join(rates)}) on "
                            f"{env.get('device')} {env.get('precision', '')} ({env.get('precision_reason', '')})"))
    lines += protocol_lines(record.get("protocol"))
    if record.get("calibration"):
        lines.append(escape("decided across splits: " + "; ".join(f"{k} {json.dumps(v, ensure_ascii=False)}"
                                                                     for k, v in record["calibration"].items())))
    data = record.get("data") or {}
    for split, langs in (data.get("skipped") or {}).items():
        looked = (data.get("looked_for") or {}).get(split)
        lines.append(escape(f"not evaluated: split {split} for {len(langs)} language(s) ("
                            + (f"no file {looked})" if looked else "no data found)")))
    collapsed = [f.split(":", 1)[1] for f in record.get("flags") or [] if f.startswith("collapsed_predictions:")]
    if collapsed:
        lines.append("[yellow]warning:[/] " + escape(f"predictions collapsed to one class on {len(collapsed)} "
                                                     f"split/language(s): {', '.join(collapsed[:6])}"
                                                     f"{' ...' if len(collapsed) > 6 else ''}"))
    if path is not None:
        lines.append(escape(f"record: {path}"))
    return "\n".join(lines)


@app.command("run")
def run_command(
    model: Annotated[str, typer.Option("--model", "-m", help="Registry name, hub id or local checkpoint dir.")],
    task: Annotated[str, typer.Option("--task", "-t", help="Task name (xlt tasks list) or a task YAML file.")],
    seed: Annotated[int, typer.Option(help="Seed for initialisation, dropout and data order.")] = 1,
    data_dir: DataDirOpt = None,
    results_dir: ResultsDirOpt = DEFAULT_RESULTS_DIR,
    tasks_dir: TasksDirOpt = None,
    max_train_samples: Annotated[Optional[int], typer.Option(
        help="Train on the first N examples of each language's training data.")] = None,
    max_eval_samples: Annotated[Optional[int], typer.Option(
        help="Evaluate (and select) on the first N examples of each split and language.")] = None,
    epochs: Annotated[Optional[float], typer.Option(help="Training epochs (may be fractional).")] = None,
    lr: Annotated[Optional[float], typer.Option(help="Peak learning rate.")] = None,
    batch_size: Annotated[Optional[int], typer.Option(help="Effective batch size (per step x grad-accum).")] = None,
    grad_accum: Annotated[Optional[int], typer.Option(help="Gradient accumulation steps.")] = None,
    max_seq_len: Annotated[Optional[int], typer.Option(help="Maximum tokens per pair.")] = None,
    warmup: Annotated[Optional[int], typer.Option(help="Linear warmup steps.")] = None,
    precision: Annotated[str, typer.Option(
        help=f"{'|'.join(PRECISIONS)}; auto = bf16 on a GPU that supports it, else fp32 (never fp16 "
             "for mDeBERTa).")] = "auto",
    impl: Annotated[str, typer.Option(help="auto|native|hf: native DeBERTa or transformers.")] = "auto",
    protocol: Annotated[str, typer.Option(
        help=f"{'|'.join(PROTOCOLS)}: what is trained on which language's data and what is evaluated "
             "(docs/protocols.md).")] = "zero-shot",
    shots: Annotated[Optional[int], typer.Option(
        help="--protocol few-shot: examples per target language (K), drawn with the seed.")] = None,
    sift: Annotated[Optional[bool], typer.Option("--sift/--no-sift", help="Scale-invariant fine-tuning.")] = None,
    sift_lambda: Annotated[Optional[float], typer.Option(help="Weight of the SiFT symmetric-KL term.")] = None,
    sift_lr: Annotated[Optional[float], typer.Option(help="SiFT ascent step size.")] = None,
    sift_init: Annotated[Optional[float], typer.Option(help="Std of SiFT's initial perturbation.")] = None,
    eval_every: Annotated[Optional[int], typer.Option(
        help="Evaluate on the source dev set every N steps (0 = once per epoch).")] = None,
    gradient_checkpointing: Annotated[Optional[bool], typer.Option(
        "--gradient-checkpointing/--no-gradient-checkpointing", help="Trade compute for memory.")] = None,
    set_: Annotated[Optional[list[str]], typer.Option(
        "--set", help="Any hyperparameter as key=value (e.g. --set weight_decay=0), repeatable.")] = None,
    device: Annotated[Optional[str], typer.Option(help="cpu, cuda, cuda:N (default: cuda if present).")] = None,
    checkpoint_every: Annotated[int, typer.Option(
        min=0, max=1 << 40, help="Also write a resumable training checkpoint every N steps (one is written at every dev "
             "evaluation; 0 = only then).")] = 500,
    force: Annotated[bool, typer.Option("--force", help="Re-run even if a completed record exists.")] = False,
    resume: Annotated[bool, typer.Option("--resume", help="Continue a killed run from its last checkpoint.")] = False,
    save_model: Annotated[bool, typer.Option("--save-model", help="Keep the selected model and its tokenizer in "
                                             "<results>/models/<task>/<model>/<run_id>/ (transformers-loadable; "
                                             "xlt eval --model <run_id> evaluates it). Not part of the run id.")]
    = False,
    languages: Annotated[Optional[str], typer.Option(
        help="Evaluate only these languages, comma-separated (the source language always).")] = None,
    name: Annotated[Optional[str], typer.Option(
        "--name", help="The model's name in reports and the leaderboard (default: the registry name, a local "
                       "folder's name, a hub snapshot's repo name). Not part of the run id.")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the effective spec and where each value "
                                          "came from (task default, model rule, override); run nothing.")] = False,
    json_: Annotated[bool, typer.Option("--json", help="With --dry-run: print it as JSON.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars or tables.")] = False,
) -> None:
    """Fine-tune on the source language, select on its dev set, evaluate every language, write a record
    (other protocols: --protocol)."""
    from xlt import runner

    progress = spec = resume_cmd = None
    try:
        overrides, notes = resolve_overrides(set_ or [], {
            "epochs": epochs, "lr": lr, "batch_size": batch_size, "grad_accum": grad_accum,
            "max_seq_len": max_seq_len, "warmup_steps": warmup, "sift": sift, "sift_lambda": sift_lambda,
            "sift_lr": sift_lr, "sift_init": sift_init, "eval_every": eval_every,
            "gradient_checkpointing": gradient_checkpointing})
        if name is not None and not name.strip():
            raise XltError("--name is empty; give the model a short name, e.g. --name my-mdeberta")
        spec, task_spec, dirs = build_run_spec(model, task, seed, data_dir=data_dir, overrides=overrides,
                                               precision=precision, impl=impl, max_train_samples=max_train_samples,
                                               max_eval_samples=max_eval_samples, tasks_dir=tasks_dir,
                                               languages=languages, protocol=protocol, shots=shots)
        for note in notes:
            err_console.print(f"note: {note}", highlight=False, markup=False, soft_wrap=True)
        if dry_run:
            from xlt.recipes import explain_spec

            plan = explain_spec(spec, task_spec, overrides, data_dir=data_dir)
            if json_:
                console.print_json(data=plan)
            else:
                console.print(render_dry_run(plan))
                for key, model in (plan.get("models") or {}).items():
                    console.print(escape(f"model {key}: trains on {', '.join(model['train'])}; selected on "
                                         f"{model['selected_on'] or 'nothing (the last step)'}; predicts "
                                         f"{', '.join(model['predicts'])}"), highlight=False, soft_wrap=True)
                for lang, what in (plan.get("missing") or {}).items():
                    console.print(escape(f"left out: {lang} (no {', '.join(what)})"), highlight=False,
                                  soft_wrap=True)
            return
        resume_cmd = resume_command(spec, task, overrides, data_dir=data_dir, results_dir=results_dir,
                                    tasks_dir=tasks_dir, name=name, device=device, checkpoint_every=checkpoint_every,
                                    save_model=save_model)
        _check_checkpoint(runner, results_dir, spec, resume=resume, force=force, quiet=quiet)
        if not quiet:
            hp = spec.hparams
            recipe = f"lr {hp.lr:g}, batch {hp.batch_size}, epochs {hp.epochs:g}" if task_spec.task_type.trains \
                else f"no training: layer {hp.layer}, {hp.pooling} pooling"
            err_console.print(f"run {spec.run_id}: {spec.label()} ({recipe}, max len {hp.max_seq_len})",
                              highlight=False, markup=False, soft_wrap=True)
        from xlt.cli.progress import make_progress

        progress = None if quiet else make_progress(err_console)
        try:
            done = runner.run(spec, task=task_spec, data_dir=data_dir, results_dir=results_dir, device=device,
                              force=force, resume=resume, tasks_dir=dirs or None, checkpoint_every=checkpoint_every,
                              progress=progress, display_name=name.strip() if name else None,
                              save_model=save_model)
        finally:
            if progress is not None:
                progress.close()
    except KeyboardInterrupt:
        if spec is not None and resume_cmd is not None:
            _interrupted(runner, results_dir, spec, resume_cmd)
        else:
            err_console.print("interrupted", highlight=False, markup=False)
        raise typer.Exit(130)
    except RecordWriteError as exc:
        err_console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
        raise typer.Exit(1)
    except XltError as exc:
        err_console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
        raise typer.Exit(2)

    record = done.record
    if done.skipped:
        console.print(f"a completed record for run {record['run_id']} exists: {done.path} "
                      "(skipped; pass --force to run again)", highlight=False, markup=False, soft_wrap=True)
    if record["status"] != "completed":
        err = record.get("error") or {}
        err_console.print("[bold red]run failed[/] " + escape(f"({err.get('stage', '?')}): {err.get('type')}: "
                                                             f"{err.get('message')}"), highlight=False, soft_wrap=True)
        if done.path is not None:
            err_console.print(f"failed record: {done.path}", highlight=False, markup=False, soft_wrap=True)
        raise typer.Exit(1)
    if not quiet:
        print_wide([summary_table(record)])
        console.print(_footer(record, done.path), highlight=False, soft_wrap=True)
    else:
        console.print(str(done.path), highlight=False, markup=False, soft_wrap=True)
    if save_model:
        _say_saved(record, results_dir, quiet)


def _say_saved(record: dict[str, Any], results_dir: Path, quiet: bool) -> None:
    """Where `--save-model` kept the model, or why there is none (a completed record found and skipped)."""
    saved = record.get("saved_model")
    if saved:
        if not quiet:
            console.print(f"saved model: {results_dir / saved['path']} ({saved['bytes'] / 1e6:,.1f} MB); evaluate it "
                          f"with: xlt eval --model {record['run_id']} --task TASK", highlight=False, markup=False,
                          soft_wrap=True)
    else:
        err_console.print(f"note: run {record['run_id']} did not save its model (" + (
            "its completed record was found and kept; add --force to run it again and save the model)"
            if "model_not_saved" not in (record.get("flags") or []) else "it could not be written)"),
            highlight=False, markup=False, soft_wrap=True)


def _check_checkpoint(runner, results_dir: Path, spec: RunSpec, *, resume: bool, force: bool, quiet: bool) -> None:
    """Before any work: a checkpoint that cannot be loaded safely is refused with --resume (XltError) and
    otherwise announced as not used; a usable one is pointed out when the run starts over."""
    try:
        step = runner.resumable_step(results_dir, spec)
    except XltError as exc:
        if resume:
            raise
        err_console.print(f"note: {exc}. It is not used: this run starts over and replaces it", highlight=False,
                          markup=False, soft_wrap=True)
        return
    if step is not None and not resume and not force and not quiet:
        err_console.print(f"note: a checkpoint of this run at step {step} exists; pass --resume to continue from it "
                          "(starting over now)", highlight=False, markup=False, soft_wrap=True)


def _interrupted(runner, results_dir: Path, spec: RunSpec, resume_cmd: str) -> None:
    """What Ctrl-C leaves: the checkpoint (if one was written yet) and the command that continues from it."""
    folder = runner.checkpoint_dir(results_dir, spec)
    try:
        step = runner.resumable_step(results_dir, spec)
    except XltError:
        step = None
    if step is None:
        err_console.print(f"interrupted before the first training checkpoint of run {spec.run_id}; nothing to "
                          "resume: run the same command again to start over", highlight=False, markup=False,
                          soft_wrap=True)
        return
    err_console.print(f"interrupted: the checkpoint of run {spec.run_id} at step {step} is kept in {folder}; "
                      f"continue with:\n  {resume_cmd}", highlight=False, markup=False, soft_wrap=True)
