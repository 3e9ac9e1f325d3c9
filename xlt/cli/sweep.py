"""`xlt sweep`: a model x task x seed grid as Ray jobs, resumable; and `xlt bench schedule`.

Parses options (or a sweep YAML) into RunSpecs with `xlt.schedule`, runs them with `schedule.run_sweep` on a
`RayExecutor` (or `InlineExecutor` with --inline) and renders a live table and a closing summary.
Exit codes: 0 everything completed or was skipped, 1 a job failed, 2 a usage error (an unknown model or task
included), 128 + the signal when stopped by one: 130 Ctrl-C, 143 SIGTERM, 129 SIGHUP.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.live import Live
from rich.markup import escape
from rich.table import Table

from xlt.cli.common import DataDirOpt, JsonOpt, ResultsDirOpt, TasksDirOpt, app, bench_app, console, err_console
from xlt.errors import XltError
from xlt.results import DEFAULT_RESULTS_DIR
from xlt.spec import IMPLS, PRECISIONS

STATE_STYLE = {"pending": "dim", "queued": "cyan", "running": "bold cyan", "retrying": "yellow",
               "completed": "green", "failed": "bold red", "skipped": "dim green", "cancelled": "magenta"}


def _fmt_s(seconds: float | None) -> str:
    if seconds is None:
        return ""
    seconds = int(seconds)
    h, rest = divmod(seconds, 3600)
    return f"{h}:{rest // 60:02d}:{rest % 60:02d}" if h else f"{rest // 60}:{rest % 60:02d}"


class SweepTable:
    """The live table: one row per spec (state, attempts, elapsed, headline metric). Rendered on refresh."""

    def __init__(self, outcomes: list[Any] | None = None) -> None:
        self.outcomes: list[Any] = outcomes or []
        self._lock = threading.Lock()

    def update(self, event: Any) -> None:
        with self._lock:
            if not any(o is event.outcome for o in self.outcomes):
                self.outcomes.append(event.outcome)

    def __rich__(self) -> Table:
        from xlt.schedule import headline

        now = time.time()
        with self._lock:
            outcomes = list(self.outcomes)
        done = sum(o.state in ("completed", "failed", "skipped") for o in outcomes)
        table = Table(title=f"xlt sweep: {done}/{len(outcomes)} done", title_justify="left")
        table.add_column("spec", overflow="fold", min_width=20)
        for name, justify in (("run_id", "left"), ("state", "left"), ("try", "right"), ("elapsed", "right")):
            table.add_column(name, justify=justify, no_wrap=True)
        table.add_column("headline", justify="right", overflow="fold")
        for o in outcomes:
            if o.elapsed_s is not None:
                elapsed = o.elapsed_s
            elif o.state == "running" and o.started_at:
                elapsed = now - o.started_at
            else:
                elapsed = None
            head = headline(o.record) if o.state != "skipped" else None
            if o.state == "failed" and o.error:
                head_text = f"[red]{escape(str(o.error.get('type', 'error')))}[/]"
            elif head:
                head_text = escape(f"{head[1] * 100:.2f} {head[0]}")   # e.g. 71.30 accuracy (test, 15 lang)
            else:
                head_text = ""
            table.add_row(escape(o.spec.label()), o.spec.run_id, f"[{STATE_STYLE.get(o.state, '')}]{o.state}[/]",
                          str(o.attempts or ""), _fmt_s(elapsed), head_text)
        return table


def _model_notes(checks: list[Any]) -> None:
    """Say which names could not be checked offline (hub ids), so "to run" is not read as "exists"."""
    for check in checks:
        if check.kind == "hub":
            err_console.print(f"[yellow]note[/] model {escape(check.name)}: {escape(check.detail)}", highlight=False)


def _dry_run(planned: list[Any], results_dir: Path, as_json: bool) -> None:
    if as_json:
        console.print_json(data=[p.to_dict() for p in planned])
        return
    table = Table(title=f"xlt sweep --dry-run: {len(planned)} spec(s)", title_justify="left")
    table.add_column("spec", overflow="fold", min_width=20)
    for name in ("run_id", "lr", "epochs", "batch", "max_len", "status"):
        table.add_column(name, no_wrap=True)
    shown = {"done": "[green]done[/]", "stale": "[yellow]stale[/]", "to run": "to run"}
    for p in planned:
        h = p.spec.hparams
        table.add_row(escape(p.spec.label()), p.spec.run_id, f"{h.lr:g}", f"{h.epochs:g}", str(h.batch_size),
                      str(h.max_seq_len), shown[p.status])
    console.print(table)
    todo = sum(not p.done for p in planned)
    console.print(escape(f"{len(planned) - todo} done, {todo} to run (records under {results_dir}/runs)"))
    stale = [p for p in planned if p.stale]
    if stale:
        console.print(escape(f"{len(stale)} to run have a completed record of the same experiment under an earlier "
                             f"run id ({', '.join(p.stale[0] for p in stale[:3])}{' ...' if len(stale) > 3 else ''}): "
                             "the task file, the checkpoint or the data changed since, or the record predates run "
                             "ids that cover them; it stays in reports, and is not reused"), soft_wrap=True)


def _print_command(command: str) -> None:
    """A command on a line of its own, never wrapped (a path cut in two cannot be pasted back)."""
    console.print(f"  {command}", markup=False, highlight=False, soft_wrap=True)


def _resume_command() -> str:
    args = [a for a in sys.argv[1:] if a != "--force"]
    return shlex.join(["xlt", *args])


def _short(node_id: str | None) -> str:
    return (node_id or "?")[:8]


def _lost_lines(result: Any) -> list[str]:
    """What happened to jobs whose worker process or node died: grouped by node, then each job's end."""
    by_node: dict[tuple, list[tuple[Any, dict]]] = {}
    for o in result.lost:
        for loss in o.lost:
            by_node.setdefault((loss.get("node_id"), loss.get("node_ip"), loss.get("error")), []).append((o, loss))
    lines = []
    for (node_id, node_ip, error), losses in by_node.items():
        where = f"node {_short(node_id)} ({node_ip})" if node_id else "an unknown node"
        what = "node died" if error == "NodeDiedError" else "worker process died"
        lines.append(f"[yellow]lost[/] {len(losses)} running job(s) on {where}: {what} ({error})")
    for o in result.lost:
        attempts = ", ".join(str(loss["attempt"]) for loss in o.lost)
        if o.state == "completed":
            node = (o.worker or {}).get("node_id")
            end = f"re-run, completed on attempt {o.attempts}" + (f" on node {_short(node)}" if node else "")
        elif o.state == "failed":
            end = f"failed after {o.attempts} attempt(s)"
        else:
            end = o.state
        lines.append(f"  {escape(o.spec.label())}: attempt {attempts} lost; {end}")
    if lines:
        lines.append("  the driver writes each record as its job returns: what finished before is kept, only the "
                     "lost attempts ran again")
    return lines


def _summary(result: Any, results_dir: Path) -> None:
    parts = [f"[green]{result.count('completed')} completed[/]", f"[red]{result.count('failed')} failed[/]",
             f"{result.count('skipped')} skipped"]
    if result.count("cancelled"):
        parts.append(f"[magenta]{result.count('cancelled')} cancelled[/]")
    usage = f"GPU-hours {result.gpu_hours:.3f}"
    if not result.gpus_per_job and result.cpus_per_job:
        usage += f", CPU-hours {result.cpu_hours:.3f}"
    console.print(", ".join(parts) + f"; wall time {_fmt_s(result.wall_s)} ({result.wall_s:.1f}s); {usage}")
    for o in result.outcomes:
        if o.state == "failed":
            err = o.error or {}
            console.print(f"[red]failed[/] {escape(o.spec.label())} ({o.spec.run_id}, {o.attempts} attempt(s)): "
                          + escape(f"{err.get('type', '')}: {err.get('message', '')}"), highlight=False)
        if o.note:
            console.print(f"[yellow]note[/] {escape(o.spec.label())}: {escape(o.note)}", highlight=False)
    for line in _lost_lines(result):
        console.print(line, highlight=False)
    console.print(escape(f"records: {results_dir}/runs"))


def _parse_names(items: list[str]) -> dict[str, str]:
    out = {}
    for item in items:
        model, sep, name = item.rpartition("=")
        if not sep or not model.strip() or not name.strip():
            raise XltError(f"--name {item!r} is not MODEL=NAME, e.g. --name /ckpts/run-17=my-model")
        out[model.strip()] = name.strip()
    return out


@app.command("sweep")
def sweep_command(
    file: Annotated[Optional[Path], typer.Argument(
        metavar="[FILE.yaml]", help="Sweep YAML (models, tasks, seeds, set, model_overrides, task_overrides, max_train_samples, ...). "
             "--models/--tasks/--seeds replace its lists; --set applies on top.")] = None,
    models: Annotated[Optional[str], typer.Option("--models", help="Comma-separated models.")] = None,
    tasks: Annotated[Optional[str], typer.Option("--tasks", help="Comma-separated tasks.")] = None,
    seeds: Annotated[Optional[str], typer.Option("--seeds", help="Seeds: 1,2,3 or 1-3.")] = None,
    sets: Annotated[Optional[list[str]], typer.Option(
        "--set", help="Hyperparameter NAME=VALUE for every run (repeatable), e.g. --set lr=2e-5.")] = None,
    data_dir: DataDirOpt = None,
    tasks_dir: TasksDirOpt = None,
    results_dir: ResultsDirOpt = DEFAULT_RESULTS_DIR,
    max_train_samples: Annotated[Optional[int], typer.Option(
        "--max-train-samples", help="Train on at most N source-language examples (smoke tests).")] = None,
    max_eval_samples: Annotated[Optional[int], typer.Option(
        "--max-eval-samples", help="Evaluate at most N examples per language and split.")] = None,
    precision: Annotated[Optional[str], typer.Option(
        "--precision", help=f"One of {', '.join(PRECISIONS)} (default auto).")] = None,
    impl: Annotated[Optional[str], typer.Option("--impl", help=f"One of {', '.join(IMPLS)} (default auto).")] = None,
    languages: Annotated[Optional[str], typer.Option(
        "--languages", help="Evaluate only these languages, comma-separated (the source language always).")] = None,
    names: Annotated[Optional[list[str]], typer.Option(
        "--name", help="MODEL=NAME: the display name of a model in reports (repeatable; default: a readable "
                       "form of the model's folder or hub name). Not part of any run's identity.")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="List the specs and which are done; run nothing.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="With --dry-run: the specs as JSON (run id, model, task, "
                                                         "seed, status).")] = False,
    force: Annotated[bool, typer.Option("--force", help="Re-run specs that already have a completed record.")] = False,
    address: Annotated[Optional[str], typer.Option(
        "--address", envvar="RAY_ADDRESS",
        help="Join an existing Ray cluster ('auto' on a cluster node, or ray://HEAD:10001). "
             "Default: start a local Ray instance.")] = None,
    gpus_per_job: Annotated[Optional[float], typer.Option(
        "--gpus-per-job", min=0, max=1024, help="GPUs per job, fractions allowed (e.g. 0.5). Default 1 if the cluster has GPUs, "
                               "else 0.")] = None,
    cpus_per_job: Annotated[Optional[float], typer.Option(
        "--cpus-per-job", min=0, max=1 << 16, help="CPUs per job. Default 1 on a CPU-only cluster, 0 for GPU jobs.")] = None,
    max_concurrent: Annotated[Optional[int], typer.Option(
        "--max-concurrent", min=1, max=1 << 20, help="At most N jobs in flight (default: as many as the cluster fits).")] = None,
    retries: Annotated[int, typer.Option(
        "--retries", min=0, max=100, help="Re-submit a job whose worker process died (killed, out of memory) up to N times.")] = 2,
    inline: Annotated[bool, typer.Option(
        "--inline", help="Run the jobs one by one in this process instead of on Ray.")] = False,
    job: Annotated[Optional[str], typer.Option(
        "--job", hidden=True, help="Job function 'module:function' (tests and benchmarks).")] = None,
) -> None:
    """Run a model x task x seed grid as Ray jobs; completed specs are skipped, so re-running resumes."""
    from xlt import schedule

    base = schedule.load_sweep_file(file) if file is not None else None
    spec_fields = dict(base.spec_fields) if base else {}
    for name, value in (("max_train_samples", max_train_samples), ("max_eval_samples", max_eval_samples),
                        ("precision", precision), ("impl", impl), ("languages", languages)):
        if value is not None:
            spec_fields[name] = value
    config = schedule.SweepConfig(
        models=schedule.split_list(models) or (base.models if base else ()),
        tasks=schedule.split_list(tasks) or (base.tasks if base else ()),
        seeds=schedule.parse_seeds(seeds) or (base.seeds if base else (1,)),
        overrides={**(base.overrides if base else {}), **schedule.parse_sets(sets or [])},
        task_overrides=base.task_overrides if base else {},
        model_overrides=base.model_overrides if base else {},
        spec_fields=spec_fields, names={**(base.names if base else {}), **_parse_names(names or [])})
    specs = schedule.build_grid(config, data_dir=data_dir, tasks_dir=tasks_dir)
    if job is None:   # model names mean models only to the real runner; a --job may use them as it likes
        _model_notes(schedule.require_models(specs))
    if dry_run:
        _dry_run(schedule.plan(specs, results_dir, force=force), results_dir, as_json)
        return

    # Paths travel with each job: a worker on another node does not share the driver's environment.
    cache_dir = os.environ.get("XLT_CACHE_DIR")
    job_kwargs = {"data_dir": str(data_dir.resolve()) if data_dir else None,
                  "tasks_dir": [str(p.resolve()) for p in schedule.task_folders(config, tasks_dir)] or None,
                  "cache_dir": str(Path(cache_dir).expanduser().resolve()) if cache_dir else None}
    if config.names and job is None:
        job_kwargs["display_names"] = dict(config.names)
    job_fn = job or schedule.DEFAULT_JOB
    if inline:
        executor: Any = schedule.InlineExecutor(job=job_fn, job_kwargs=job_kwargs)
    else:
        executor = schedule.RayExecutor(address=address, gpus_per_job=gpus_per_job, cpus_per_job=cpus_per_job,
                                        max_concurrent=max_concurrent, retries=retries, job=job_fn,
                                        job_kwargs=job_kwargs)
    view = SweepTable()
    try:
        with Live(view, console=console, refresh_per_second=2, transient=False):
            result = schedule.run_sweep(specs, results_dir, executor=executor, force=force, on_event=view.update)
    except KeyboardInterrupt:   # outside the executor's own handling, e.g. a second Ctrl-C while stopping
        console.print("\n[magenta]interrupted[/]: records written so far are kept. Resume (completed specs are "
                      "skipped) with:", highlight=False)
        _print_command(_resume_command())
        raise typer.Exit(130) from None
    console.print()
    _summary(result, results_dir)
    if result.interrupted:
        signum = result.stop_signal or signal.SIGINT
        by = "" if signum == signal.SIGINT else f" by {signal.Signals(signum).name}"
        what = ("running jobs were cancelled" if any(o.attempts for o in result.outcomes)
                else "no job had started")
        console.print(f"[magenta]interrupted{by}[/]: {what}; the "
                      f"{result.count('completed')} completed record(s) written so far are kept. "
                      "Resume (completed specs are skipped) with:", highlight=False)
        _print_command(_resume_command())
        raise typer.Exit(128 + signum)
    if not result.ok:
        raise typer.Exit(1)


@bench_app.command("schedule")
def bench_schedule_command(
    jobs: Annotated[int, typer.Option("--jobs", help="Number of sleeping jobs.")] = 16,
    gpus: Annotated[int, typer.Option("--gpus", help="Logical GPUs of the local Ray instance.")] = 4,
    job_seconds: Annotated[float, typer.Option("--job-seconds", help="How long each job sleeps.")] = 5.0,
    warmup: Annotated[bool, typer.Option(
        "--warmup/--no-warmup", help="Start one worker per GPU before the clock starts (default) or count "
                                     "worker start-up in the makespan.")] = True,
    json_path: JsonOpt = None,
) -> None:
    """Makespan of N sleeping one-GPU jobs on G logical GPUs against the ideal ceil(N/G) x S."""
    from xlt.bench.schedule import bench_schedule

    err_console.print(f"starting a local Ray instance with {gpus} logical GPU(s); {jobs} job(s) of {job_seconds:g}s")
    out = bench_schedule(jobs=jobs, gpus=gpus, job_seconds=job_seconds, warmup=warmup)
    table = Table(title="xlt bench schedule", title_justify="left")
    table.add_column("measure")
    table.add_column("value", justify="right")
    rows = [("jobs x seconds on GPUs", f"{jobs} x {job_seconds:g}s on {gpus}"),
            ("makespan", f"{out['makespan_s']:.2f}s"), ("ideal ceil(N/G)*S", f"{out['ideal_s']:.2f}s"),
            ("ratio", f"{out['overhead_ratio']:.3f}" if out["overhead_ratio"] is not None else "-"),
            ("Ray start-up (excluded)", f"{out['startup_s']:.2f}s (init {out['ray_init_s']:.2f}s"
             + (f" + workers {out['worker_warmup_s']:.2f}s)" if warmup else "; workers start inside the makespan)")),
            ("completed / failed", f"{out['completed']} / {out['failed']}"),
            ("max jobs at once", str(out["max_concurrent_observed"])),
            ("device collisions", str(out["device_collisions"]))]
    for row in rows:
        table.add_row(*row)
    console.print(table)
    if json_path is not None:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(out, indent=2) + "\n")
        console.print(f"wrote {json_path}", highlight=False, markup=False)
