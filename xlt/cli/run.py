"""`xlt run`: fine-tune one model on one task's source language, evaluate every language, write a RunRecord.

Parses options into a `RunSpec` (preset for the model and task, then any hyperparameter given), calls
`xlt.runner.run`, and renders a per-language summary. Exit codes: 0 completed (or skipped: a completed record
exists), 1 the run failed (its record says why), 2 a usage error.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.markup import escape
from rich.table import Table

from xlt.cli.common import (DataDirOpt, ResultsDirOpt, TasksDirOpt, app, bench_app, console, err_console,
                            print_wide)
from xlt.errors import XltError
from xlt.results import DEFAULT_RESULTS_DIR
from xlt.spec import PRECISIONS, RunSpec, parse_sets


def build_spec(model: str, task: str, seed: int, *, data_dir: Path | None, overrides: dict[str, Any],
               precision: str, impl: str, max_train_samples: int | None, max_eval_samples: int | None,
               tasks_dir: Path | None = None, languages: tuple[str, ...] | None = None) -> RunSpec:
    return RunSpec.create(model, task, seed=seed, overrides=overrides, precision=precision, impl=impl,
                          data_source="local" if data_dir is not None else "hub", tasks_dir=tasks_dir,
                          max_train_samples=max_train_samples, max_eval_samples=max_eval_samples,
                          languages=languages)


def effective_spec(spec: RunSpec, overrides: dict[str, Any], tasks_dir: Path | None) -> dict[str, Any]:
    """The spec a run would use and where each hyperparameter came from (`--dry-run`)."""
    from xlt.recipes import effective_hparams, model_config
    from xlt.spec import find_task

    config = model_config(spec.model)
    _, where = effective_hparams(spec.model, find_task(spec.task, tasks_dir), overrides, config=config)
    matched = {k: config.get(k) for k in ("model_type", "family", "hidden_size", "num_hidden_layers",
                                          "vocab_size")} if config else None
    return {"run_id": spec.run_id, "spec": spec.to_dict(), "hparams_from": where, "model_config": matched}


def render_dry_run(plan: dict[str, Any]) -> Table:
    spec = plan["spec"]
    table = Table(title=f"run {plan['run_id']}: {spec['model']} · {spec['task']} · seed {spec['seed']} (dry run)")
    table.add_column("hyperparameter")
    table.add_column("value", justify="right")
    table.add_column("from")
    for name, value in spec["hparams"].items():
        table.add_row(name, str(value), plan["hparams_from"][name])
    return table


def summary_table(record: dict[str, Any]) -> Table:
    """One row per language; per evaluated split, each metric of the task and the example count."""
    metrics = record.get("metrics") or {}
    names = (record.get("task") or {}).get("metrics") or sorted(
        {m for by_lang in metrics.values() for v in by_lang.values() for m in v if m != "n"})
    langs = (record.get("task") or {}).get("languages") or list(
        dict.fromkeys(lang for by_lang in metrics.values() for lang in by_lang))
    spec = record["spec"]
    table = Table(title=f"{spec['model']} · {spec['task']} · seed {spec['seed']} · {record['status']}")
    table.add_column("lang")
    for split in metrics:
        for name in names:
            table.add_column(f"{split} {name}", justify="right")
        table.add_column(f"{split} n", justify="right")
    for lang in langs:
        if not any(lang in by_lang for by_lang in metrics.values()):
            continue
        row = [lang]
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


def _footer(record: dict[str, Any], path: Path | None) -> str:
    sel, timing, env = record.get("selection") or {}, record.get("timing") or {}, record.get("env") or {}
    lines = []
    if sel.get("best_step") is not None:
        lines.append(f"selected step {sel['best_step']} of {sel.get('total_steps')} by {sel.get('criterion')} "
                     f"= {sel['best_value']:.4f}")
    if timing:
        lines.append(f"train {timing.get('train_s', 0):.1f}s ({timing.get('train_tokens_per_s', 0):.0f} tok/s), "
                     f"eval {timing.get('eval_s', 0):.1f}s ({timing.get('eval_examples_per_s', 0):.0f} ex/s) "
                     f"on {env.get('device')} {env.get('precision', '')}")
    skipped = (record.get("data") or {}).get("skipped") or {}
    for split, langs in skipped.items():
        lines.append(f"not evaluated: split {split} for {len(langs)} language(s) (no data found)")
    collapsed = [f.split(":", 1)[1] for f in record.get("flags") or [] if f.startswith("collapsed_predictions:")]
    if collapsed:
        lines.append(f"[yellow]warning:[/] predictions collapsed to one class on {len(collapsed)} split/language(s): "
                     f"{', '.join(collapsed[:6])}{' ...' if len(collapsed) > 6 else ''}")
    if path is not None:
        lines.append(f"record: {path}")
    return "\n".join(lines)


@app.command("run")
def run_command(
    model: Annotated[str, typer.Option("--model", "-m", help="Registry name, hub id or local checkpoint dir.")],
    task: Annotated[str, typer.Option("--task", "-t", help="Task name (xlt tasks list) or a task YAML file.")],
    seed: Annotated[int, typer.Option(help="Seed for initialisation, dropout and data order.")] = 1,
    data_dir: DataDirOpt = None,
    results_dir: ResultsDirOpt = DEFAULT_RESULTS_DIR,
    tasks_dir: TasksDirOpt = None,
    max_train_samples: Annotated[Optional[int], typer.Option(help="Train on the first N source pairs.")] = None,
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
        help="Also write a resumable training checkpoint every N steps (one is written at every dev "
             "evaluation; 0 = only then).")] = 500,
    force: Annotated[bool, typer.Option("--force", help="Re-run even if a completed record exists.")] = False,
    resume: Annotated[bool, typer.Option("--resume", help="Continue a killed run from its last checkpoint.")] = False,
    languages: Annotated[Optional[str], typer.Option(
        help="Evaluate only these languages, comma-separated (the source language always).")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the effective spec and where each value "
                                          "came from (task default, model rule, override); run nothing.")] = False,
    json_: Annotated[bool, typer.Option("--json", help="With --dry-run: print it as JSON.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars or tables.")] = False,
) -> None:
    """Fine-tune on the source language, select on its dev set, evaluate every language, write a record."""
    from xlt import runner

    try:
        overrides: dict[str, Any] = parse_sets(set_ or [])
        for name, value in [("epochs", epochs), ("lr", lr), ("batch_size", batch_size), ("grad_accum", grad_accum),
                            ("max_seq_len", max_seq_len), ("warmup_steps", warmup), ("sift", sift),
                            ("sift_lambda", sift_lambda), ("sift_lr", sift_lr), ("sift_init", sift_init),
                            ("eval_every", eval_every), ("gradient_checkpointing", gradient_checkpointing)]:
            if value is not None:
                overrides[name] = value
        langs = tuple(x.strip() for x in languages.split(",") if x.strip()) if languages is not None else None
        spec = build_spec(model, task, seed, data_dir=data_dir, overrides=overrides, precision=precision,
                          impl=impl, max_train_samples=max_train_samples, max_eval_samples=max_eval_samples,
                          tasks_dir=tasks_dir, languages=langs)
        if dry_run:
            plan = effective_spec(spec, overrides, tasks_dir)
            if json_:
                console.print_json(data=plan)
            else:
                console.print(render_dry_run(plan))
            return
        if not resume and not force:
            step = runner.resumable_step(results_dir, spec)
            if step is not None and not quiet:
                err_console.print(f"note: a checkpoint of this run at step {step} exists; pass --resume to continue "
                                  "from it (starting over now)", highlight=False, soft_wrap=True)
        if not quiet:
            err_console.print(f"run {spec.run_id}: {spec.label()} (lr {spec.hparams.lr:g}, batch "
                              f"{spec.hparams.batch_size}, epochs {spec.hparams.epochs:g}, max len "
                              f"{spec.hparams.max_seq_len})", highlight=False, soft_wrap=True)
        from xlt.cli.progress import RichProgress

        progress = None if quiet else RichProgress(err_console)
        try:
            done = runner.run(spec, data_dir=data_dir, results_dir=results_dir, device=device, force=force,
                              resume=resume, tasks_dir=tasks_dir, checkpoint_every=checkpoint_every,
                              progress=progress)
        finally:
            if progress is not None:
                progress.close()
    except XltError as exc:
        err_console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        raise typer.Exit(2)

    record = done.record
    if done.skipped:
        console.print(f"a completed record for run {record['run_id']} exists: {done.path} "
                      "(skipped; pass --force to run again)", highlight=False, soft_wrap=True)
    if record["status"] != "completed":
        err = record.get("error") or {}
        err_console.print(f"[bold red]run failed[/] ({err.get('stage', '?')}): {err.get('type')}: {err.get('message')}",
                          highlight=False, soft_wrap=True)
        if done.path is not None:
            err_console.print(f"failed record: {done.path}", highlight=False, soft_wrap=True)
        raise typer.Exit(1)
    if not quiet:
        print_wide([summary_table(record)])
        console.print(_footer(record, done.path), highlight=False, soft_wrap=True)
    else:
        console.print(str(done.path), highlight=False, soft_wrap=True)


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
    table = Table(title=f"{res['model']} · {res['task']} {res['split']} · {len(res['languages'])} languages · "
                        f"{res['train_steps']} steps x {res['batch_size']} · {res['precision']} · "
                        f"{res['threads']} threads")
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
                      highlight=False, soft_wrap=True)
    if json_path is not None:
        json_path.write_text(json.dumps(res, indent=2) + "\n", encoding="utf-8")
        console.print(f"wrote {json_path}", highlight=False)
