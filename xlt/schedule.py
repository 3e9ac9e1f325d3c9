"""Sweeps: the grid of RunSpecs, resume, and the executors that run them (Ray, or inline in this process).

This module maps specs onto Ray and nothing else: no training logic lives here. Each spec becomes one Ray
task that calls a *job function* in a worker process, by default `run_spec_job`, which runs the same
`xlt.runner.execute` as `xlt run` with progress quieted. The worker sends the record and its predictions
(parquet bytes) back; the driver writes them with `results.write_run`, so a cluster needs no shared
filesystem.

    specs = build_grid(SweepConfig(models=("a", "b"), tasks=("xnli",), seeds=(1, 2)), data_dir=...)
    result = run_sweep(specs, results_dir, executor=RayExecutor(gpus_per_job=1), on_event=print)

Job functions are injectable (an import path "pkg.module:function" or a picklable callable) so benchmarks and
tests can schedule sleeping, raising or dying jobs through exactly the same path. A job function is called as
`fn(spec, **job_kwargs)` and returns a RunOutcome-like object (`.record`, `.predictions`), a
`(record, predictions)` pair or a bare record dict; predictions may be a DataFrame, parquet bytes or None.

Faults: a job that raises becomes a `failed` record (error type, message, traceback tail) and the sweep goes
on. A worker process that dies (killed, out of memory, `os._exit`) surfaces as a Ray system error; the driver
resubmits the spec up to `retries` times (Ray's own `max_retries` is left at 0 so every attempt is visible),
then records it failed. SIGINT stops submitting, collects results that are already finished, force-cancels the
running jobs and returns with `interrupted=True`; every record written before stays. A second SIGINT aborts at
once. A failed run never overwrites a completed record of the same spec.
"""

from __future__ import annotations

import importlib
import math
import os
import re
import signal
import socket
import threading
import time
import traceback
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import pandas as pd

from xlt.errors import XltError
from xlt.results import (completed_record, new_record, predictions_to_bytes, spec_record_path, write_run)
from xlt.spec import RunSpec, coerce_hparams, parse_sets

DEFAULT_JOB = "xlt.schedule:run_spec_job"
TRACEBACK_TAIL_LINES = 25

# Spec fields other than model/task/seed/hparams that a sweep may set for every run.
SPEC_FIELDS = ("protocol", "impl", "precision", "data_revision", "max_train_samples", "max_eval_samples")
SWEEP_FILE_KEYS = ("models", "tasks", "seeds", "set", "model_overrides", "task_overrides", *SPEC_FIELDS)

JobFn = Callable[..., Any]


# --------------------------------------------------------------------------------------------- the grid

@dataclass(frozen=True)
class SweepConfig:
    """What a sweep covers. Hyperparameters: preset < `overrides` < per-task < per-model."""

    models: tuple[str, ...]
    tasks: tuple[str, ...]
    seeds: tuple[int, ...] = (1,)
    overrides: Mapping[str, Any] = field(default_factory=dict)                   # every run
    task_overrides: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    model_overrides: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    spec_fields: Mapping[str, Any] = field(default_factory=dict)                 # impl, precision, max_*_samples

    def __post_init__(self) -> None:
        if not self.models:
            raise XltError("a sweep needs at least one model: --models a,b or `models:` in the sweep file")
        if not self.tasks:
            raise XltError("a sweep needs at least one task: --tasks xnli,pawsx or `tasks:` in the sweep file")
        if not self.seeds:
            raise XltError("a sweep needs at least one seed: --seeds 1,2,3 or `seeds:` in the sweep file")
        for kind, names, known in (("model", self.model_overrides, self.models),
                                   ("task", self.task_overrides, self.tasks)):
            stray = [n for n in names if n not in known]
            if stray:
                raise XltError(f"{kind}_overrides name {', '.join(map(repr, stray))}, which the sweep does not "
                               f"include ({kind}s: {', '.join(known)}); fix the name or add it to {kind}s")
        bad = [k for k in self.spec_fields if k not in SPEC_FIELDS]
        if bad:
            raise XltError(f"unknown sweep setting {', '.join(map(repr, bad))}; valid: {', '.join(SPEC_FIELDS)}")


def split_list(text: str | Sequence[str] | None) -> tuple[str, ...]:
    """'a,b, c' (or a list of such strings) -> ('a', 'b', 'c')."""
    if text is None:
        return ()
    items = [text] if isinstance(text, str) else list(text)
    return tuple(p.strip() for item in items for p in str(item).split(",") if p.strip())


def parse_seeds(text: str | int | Sequence[Any] | None) -> tuple[int, ...]:
    """'1,2,3' or '1-3' (or a list of ints) -> (1, 2, 3)."""
    if text is None:
        return ()
    items = [text] if isinstance(text, (str, int)) else list(text)
    seeds: list[int] = []
    for part in split_list([str(s) for s in items]):
        span = re.fullmatch(r"(-?\d+)-(-?\d+)", part)
        try:
            seeds.extend(range(int(span[1]), int(span[2]) + 1) if span else [int(part)])
        except ValueError:
            raise XltError(f"seed {part!r} is not an integer or a range like 1-3") from None
    return tuple(dict.fromkeys(seeds))


def load_sweep_file(path: Path | str) -> SweepConfig:
    """Read a sweep YAML:

        models: [mdeberta-v3-base, xlm-roberta-base]
        tasks: [xnli, pawsx]
        seeds: [1, 2, 3]                 # or "1-3"
        set: {epochs: 3}                 # every run
        task_overrides: {pawsx: {lr: 1e-5}}
        model_overrides: {xlm-roberta-base: {lr: 1e-5}}
        max_train_samples: 2000          # also impl, precision, protocol, data_revision, max_eval_samples
    """
    import yaml

    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise XltError(f"cannot read sweep file {path}: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        raise XltError(f"sweep file {path} is not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise XltError(f"sweep file {path} must be a mapping with models, tasks and seeds")
    unknown = [k for k in data if k not in SWEEP_FILE_KEYS]
    if unknown:
        raise XltError(f"sweep file {path}: unknown key {', '.join(map(repr, unknown))}; "
                       f"valid keys: {', '.join(SWEEP_FILE_KEYS)}")

    def mapping(key: str) -> dict:
        value = data.get(key) or {}
        if not isinstance(value, dict):
            raise XltError(f"sweep file {path}: {key} must be a mapping, not {type(value).__name__}")
        return value

    nested = {}
    for key in ("model_overrides", "task_overrides"):
        nested[key] = {str(k): v for k, v in mapping(key).items()}
        for name, values in nested[key].items():
            if not isinstance(values, dict):
                raise XltError(f"sweep file {path}: {key}.{name} must map hyperparameters to values")
    try:
        return SweepConfig(models=split_list(data.get("models")), tasks=split_list(data.get("tasks")),
                           seeds=parse_seeds(data.get("seeds", [1])), overrides=mapping("set"),
                           spec_fields={k: data[k] for k in SPEC_FIELDS if k in data}, **nested)
    except XltError as exc:
        raise XltError(f"sweep file {path}: {exc}") from None


def build_grid(config: SweepConfig, *, data_dir: Path | str | None = None) -> list[RunSpec]:
    """Every (model, task, seed) as a RunSpec, in that nesting order, duplicates removed.

    `data_dir` only decides `data_source` ("local" or "hub"), as for `xlt run`; the path is not part of a
    spec's identity.
    """
    fields = dict(config.spec_fields)
    fields.setdefault("data_source", "local" if data_dir is not None else "hub")
    specs: dict[str, RunSpec] = {}
    for model in config.models:
        for task in config.tasks:
            overrides = {**coerce_hparams(config.overrides),
                         **coerce_hparams(config.task_overrides.get(task, {})),
                         **coerce_hparams(config.model_overrides.get(model, {}))}
            for seed in config.seeds:
                spec = RunSpec.create(model, task, seed=seed, overrides=overrides, **fields)
                specs.setdefault(spec.run_id, spec)
    return list(specs.values())


def check_tasks(specs: Iterable[RunSpec], tasks_dir: Path | str | None = None) -> None:
    """Fail before scheduling anything if a task name is unknown (when the task registry is available)."""
    try:
        from xlt.tasks import get_task
    except ImportError:
        return
    for name in dict.fromkeys(s.task for s in specs):
        get_task(name, tasks_dir=tasks_dir)


@dataclass(frozen=True)
class PlannedSpec:
    spec: RunSpec
    done: bool               # a completed record exists (and --force was not given)
    record_path: Path


def plan(specs: Iterable[RunSpec], results_dir: Path | str, *, force: bool = False) -> list[PlannedSpec]:
    """Which specs already have a completed record. With `force`, nothing counts as done."""
    return [PlannedSpec(s, (not force) and completed_record(results_dir, s) is not None,
                        spec_record_path(results_dir, s)) for s in specs]


# ---------------------------------------------------------------------------------------------- jobs

def run_spec_job(spec: RunSpec, *, data_dir: str | None = None, tasks_dir: str | None = None,
                 device: str | None = None) -> Any:
    """The default job: what `xlt run` does, quietly, returning the outcome instead of writing it."""
    from xlt.runner import execute

    kwargs: dict[str, Any] = dict(data_dir=data_dir, device=device, quiet=True)
    if tasks_dir is not None:
        kwargs["tasks_dir"] = tasks_dir
    return execute(spec, **kwargs)


def resolve_job(job: str | JobFn) -> JobFn:
    """A callable, or an import path 'package.module:function'."""
    if callable(job):
        return job
    module_name, sep, attr = str(job).partition(":")
    if not sep:
        raise XltError(f"job {job!r} is not an import path like 'package.module:function'")
    try:
        fn = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise XltError(f"cannot import job function {job!r}: {exc}") from None
    if not callable(fn):
        raise XltError(f"job {job!r} is not callable")
    return fn


def error_info(exc: BaseException) -> dict[str, str]:
    lines = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)).rstrip().splitlines()
    return {"type": type(exc).__name__, "message": str(exc),
            "traceback_tail": "\n".join(lines[-TRACEBACK_TAIL_LINES:])}


def failed_record(spec: RunSpec, error: BaseException | Mapping[str, str]) -> dict[str, Any]:
    info = error_info(error) if isinstance(error, BaseException) else dict(error)
    return new_record(spec, status="failed", error=info)


def worker_info() -> dict[str, Any]:
    """Where a job ran: host, pid and the devices it could see (Ray sets CUDA_VISIBLE_DEVICES per GPU task)."""
    info: dict[str, Any] = {"host": socket.gethostname(), "pid": os.getpid(),
                            "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES")}
    try:
        import ray

        if ray.is_initialized():
            info["gpu_ids"] = [str(g) for g in ray.get_gpu_ids()]
    except Exception:   # noqa: BLE001 - informational only
        pass
    return info


def _unpack(result: Any) -> tuple[dict[str, Any], Any]:
    if hasattr(result, "record"):
        return result.record, getattr(result, "predictions", None)
    if isinstance(result, tuple) and len(result) == 2:
        return result[0], result[1]
    if isinstance(result, dict):
        return result, None
    raise TypeError(f"a job must return a RunOutcome, (record, predictions) or a record dict, "
                    f"not {type(result).__name__}")


def execute_job(job: str | JobFn, spec_dict: dict[str, Any], job_kwargs: Mapping[str, Any] | None = None,
                progress: Any = None, attempt: int = 1) -> dict[str, Any]:
    """Worker side of one job. Never raises for a job's own error: that becomes a failed record.

    Returns {"record", "predictions" (parquet bytes or None), "worker": {host, pid, cuda_visible_devices,
    gpu_ids, start, end}}. `progress` is the driver's progress actor (it learns when the job really starts).
    """
    spec = RunSpec.from_dict(spec_dict)
    worker = worker_info()
    worker["start"] = time.time()
    if progress is not None:
        progress.started.remote(spec.run_id, attempt, worker)
    predictions: bytes | None = None
    try:
        record, preds = _unpack(resolve_job(job)(spec, **dict(job_kwargs or {})))
        if preds is not None:
            predictions = preds if isinstance(preds, bytes) else predictions_to_bytes(preds)
    except Exception as exc:  # noqa: BLE001 - the job's failure is data, the sweep goes on
        record = failed_record(spec, exc)
    worker["end"] = time.time()
    return {"record": record, "predictions": predictions, "worker": worker}


# ------------------------------------------------------------------------------------------ results

@dataclass
class JobOutcome:
    spec: RunSpec
    state: str = "pending"   # pending|running|retrying|completed|failed|skipped|cancelled
    record: dict[str, Any] | None = None
    record_path: Path | None = None
    attempts: int = 0
    elapsed_s: float | None = None
    worker: dict[str, Any] | None = None
    note: str | None = None  # e.g. why a failure did not replace a completed record
    submitted_at: float | None = None
    started_at: float | None = None

    @property
    def error(self) -> dict[str, Any] | None:
        return (self.record or {}).get("error")


@dataclass(frozen=True)
class Event:
    """What the executor tells its caller: `kind` is the job's new state."""

    kind: str
    outcome: JobOutcome


@dataclass
class SweepResult:
    outcomes: list[JobOutcome]
    wall_s: float
    gpus_per_job: float = 0.0
    cpus_per_job: float = 0.0
    interrupted: bool = False

    def count(self, state: str) -> int:
        return sum(o.state == state for o in self.outcomes)

    @property
    def ok(self) -> bool:
        return not self.interrupted and not any(o.state in ("failed", "cancelled") for o in self.outcomes)

    @property
    def gpu_hours(self) -> float:
        """GPU time the jobs held: each executed job's elapsed time x the GPUs it requested."""
        return sum((o.elapsed_s or 0.0) for o in self.outcomes if o.state in ("completed", "failed")) \
            * self.gpus_per_job / 3600

    @property
    def cpu_hours(self) -> float:
        return sum((o.elapsed_s or 0.0) for o in self.outcomes if o.state in ("completed", "failed")) \
            * self.cpus_per_job / 3600


def headline(record: Mapping[str, Any] | None) -> tuple[str, float] | None:
    """The record's primary metric averaged over languages, on 'test' if evaluated else the last split."""
    if not record or record.get("status") != "completed":
        return None
    metrics = record.get("metrics") or {}
    if not metrics:
        return None
    split = "test" if "test" in metrics else list(metrics)[-1]
    by_lang = metrics[split] or {}
    metric = (record.get("task") or {}).get("primary_metric")
    if metric is None:
        names = [m for values in by_lang.values() for m in values if m != "n"]
        if not names:
            return None
        metric = names[0]
    values = [v[metric] for v in by_lang.values() if isinstance(v.get(metric), (int, float))]
    if not values:
        return None
    return f"{metric} ({split}, {len(values)} lang)", sum(values) / len(values)


def _store(results_dir: Path | str, outcome: JobOutcome, payload: Mapping[str, Any]) -> None:
    """Write what a worker sent back; a failure never replaces an existing completed record."""
    record = dict(payload["record"])
    worker = payload.get("worker") or {}
    env = dict(record.get("env") or {})
    env.setdefault("host", worker.get("host"))
    env.setdefault("cuda_visible_devices", worker.get("cuda_visible_devices"))
    record["env"] = env
    outcome.record, outcome.worker = record, dict(worker)
    if worker.get("start") is not None and worker.get("end") is not None:
        outcome.elapsed_s = worker["end"] - worker["start"]
    elif outcome.submitted_at is not None:
        outcome.elapsed_s = time.time() - outcome.submitted_at
    status = record.get("status")
    outcome.state = "completed" if status == "completed" else "failed"
    if record.get("run_id") != outcome.spec.run_id:
        outcome.note = (f"the job returned a record for run {record.get('run_id')} instead of "
                        f"{outcome.spec.run_id}; resume will not recognise it")
    if status != "completed" and completed_record(results_dir, outcome.spec) is not None:
        outcome.record_path = spec_record_path(results_dir, outcome.spec)
        outcome.note = "failed again; the earlier completed record was kept"
        return
    outcome.record_path = write_run(results_dir, record, payload.get("predictions"))


class _Interrupt:
    """First SIGINT sets a flag (the driver stops cleanly); a second one raises KeyboardInterrupt."""

    def __init__(self) -> None:
        self.requested = False
        self._previous: Any = None

    def _handle(self, signum, frame) -> None:  # noqa: ARG002
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def __enter__(self) -> "_Interrupt":
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)


# --------------------------------------------------------------------------------------- executors

class InlineExecutor:
    """Runs jobs one after another in this process (a single run, or debugging without Ray)."""

    def __init__(self, *, job: str | JobFn = DEFAULT_JOB, job_kwargs: Mapping[str, Any] | None = None) -> None:
        self.job, self.job_kwargs = job, dict(job_kwargs or {})
        self.gpus_per_job, self.cpus_per_job = 0.0, 0.0

    def run(self, outcomes: Sequence[JobOutcome], results_dir: Path | str,
            emit: Callable[[str, JobOutcome], None]) -> bool:
        """Returns True if interrupted."""
        for outcome in outcomes:
            outcome.attempts, outcome.submitted_at = 1, time.time()
            outcome.state, outcome.started_at = "running", outcome.submitted_at
            emit("running", outcome)
            try:
                payload = execute_job(self.job, outcome.spec.to_dict(), self.job_kwargs)
            except KeyboardInterrupt:
                outcome.state = "cancelled"
                emit("cancelled", outcome)
                return True
            _store(results_dir, outcome, payload)
            emit(outcome.state, outcome)
        return False


class _Progress:
    """A tiny actor workers tell when they start, so the driver can tell queued jobs from running ones."""

    def __init__(self) -> None:
        self._started: list[tuple[str, int, dict]] = []

    def started(self, run_id: str, attempt: int, info: dict) -> None:
        self._started.append((run_id, attempt, info))

    def drain(self) -> list[tuple[str, int, dict]]:
        out, self._started = self._started, []
        return out


class RayExecutor:
    """One Ray task per spec, at most `max_concurrent` in flight, results written by the driver.

    address: None starts a local Ray instance unless RAY_ADDRESS is set; "auto" or "ray://host:10001" joins an
        existing cluster. If Ray is already initialised in this process, that instance is used as it is.
    gpus_per_job: GPUs each job requests (fractions allowed); None = 1 if the cluster has GPUs, else 0.
    cpus_per_job: CPUs each job requests; None = 1 on a CPU-only cluster and 0 for GPU jobs (the GPU is the
        unit of scheduling; requesting a core per GPU job would let a small host cap GPU concurrency).
    max_concurrent: cap on jobs in flight; None = as many as Ray can place (the rest wait in Ray's queue).
    retries: resubmissions after the worker process died (killed, OOM). A job's own exception is not retried.
    """

    def __init__(self, *, address: str | None = None, gpus_per_job: float | None = None,
                 cpus_per_job: float | None = None, max_concurrent: int | None = None, retries: int = 2,
                 job: str | JobFn = DEFAULT_JOB, job_kwargs: Mapping[str, Any] | None = None,
                 init_kwargs: Mapping[str, Any] | None = None, poll_s: float = 0.25,
                 shutdown: bool = True) -> None:
        if gpus_per_job is not None and gpus_per_job < 0:
            raise XltError(f"--gpus-per-job {gpus_per_job} must be >= 0")
        if gpus_per_job is not None and gpus_per_job > 1 and not float(gpus_per_job).is_integer():
            raise XltError(f"--gpus-per-job {gpus_per_job}: fractions are only allowed below 1 (Ray's rule)")
        if cpus_per_job is not None and cpus_per_job < 0:
            raise XltError(f"--cpus-per-job {cpus_per_job} must be >= 0")
        if max_concurrent is not None and max_concurrent < 1:
            raise XltError(f"--max-concurrent {max_concurrent} must be at least 1")
        if retries < 0:
            raise XltError(f"--retries {retries} must be >= 0")
        self.address = address
        self.gpus_per_job, self.cpus_per_job = gpus_per_job, cpus_per_job
        self.max_concurrent, self.retries = max_concurrent, retries
        self.job, self.job_kwargs = job, dict(job_kwargs or {})
        self.init_kwargs = dict(init_kwargs or {})
        self.poll_s, self.shutdown = poll_s, shutdown
        self.init_s: float | None = None   # time ray.init took (None if Ray was already up)

    # -- Ray set-up

    def connect(self) -> bool:
        """Initialise Ray if needed; returns True if this call started/joined it (and should shut it down)."""
        import ray

        if ray.is_initialized():
            return False
        address = self.address or os.environ.get("RAY_ADDRESS") or None
        kwargs: dict[str, Any] = dict(log_to_driver=False, logging_level="warning")
        if address is None:
            kwargs["include_dashboard"] = False
        kwargs.update(self.init_kwargs)
        start = time.perf_counter()
        try:
            ray.init(address=address, **kwargs)
        except ConnectionError as exc:
            raise XltError(f"cannot join the Ray cluster at {address!r}: {exc}; check --address / RAY_ADDRESS "
                           f"(e.g. 'auto' on a cluster node, or ray://<head>:10001)") from None
        self.init_s = time.perf_counter() - start
        return True

    def resources(self) -> tuple[float, float]:
        """(gpus, cpus) each job requests, resolving the defaults against the cluster."""
        import ray

        total_gpus = ray.cluster_resources().get("GPU", 0.0)
        gpus = self.gpus_per_job if self.gpus_per_job is not None else (1.0 if total_gpus > 0 else 0.0)
        if gpus > 0 and gpus > total_gpus:
            raise XltError(f"each job requests {gpus:g} GPU(s) but the Ray cluster has {total_gpus:g}; lower "
                           f"--gpus-per-job, or use --gpus-per-job 0 to run on CPUs")
        cpus = self.cpus_per_job if self.cpus_per_job is not None else (0.0 if gpus > 0 else 1.0)
        total_cpus = ray.cluster_resources().get("CPU", 0.0)
        if cpus > total_cpus:
            raise XltError(f"each job requests {cpus:g} CPU(s) but the Ray cluster has {total_cpus:g}; "
                           f"lower --cpus-per-job")
        return float(gpus), float(cpus)

    # -- the driver loop

    def run(self, outcomes: Sequence[JobOutcome], results_dir: Path | str,
            emit: Callable[[str, JobOutcome], None]) -> bool:
        """Run every outcome's spec; returns True if interrupted (SIGINT)."""
        import ray

        started_here = self.connect()
        try:
            return self._run(ray, outcomes, results_dir, emit)
        finally:
            if started_here and self.shutdown:
                ray.shutdown()

    def _run(self, ray: Any, outcomes: Sequence[JobOutcome], results_dir: Path | str,
             emit: Callable[[str, JobOutcome], None]) -> bool:
        gpus, cpus = self.resources()
        self.gpus_per_job, self.cpus_per_job = gpus, cpus
        remote = ray.remote(execute_job).options(num_gpus=gpus, num_cpus=cpus, max_retries=0,
                                                 retry_exceptions=False)
        progress = ray.remote(_Progress).options(num_cpus=0).remote()
        by_id = {o.spec.run_id: o for o in outcomes}
        queue: deque[JobOutcome] = deque(outcomes)
        inflight: dict[Any, JobOutcome] = {}
        drain_ref = None

        def submit(outcome: JobOutcome) -> None:
            outcome.attempts += 1
            outcome.submitted_at, outcome.started_at = time.time(), None
            ref = remote.remote(self.job, outcome.spec.to_dict(), self.job_kwargs, progress, outcome.attempts)
            inflight[ref] = outcome
            if outcome.state != "retrying":
                outcome.state = "queued"
                emit("queued", outcome)

        def note_starts(timeout: float) -> None:
            nonlocal drain_ref
            if drain_ref is None:
                drain_ref = progress.drain.remote()
            ready, _ = ray.wait([drain_ref], timeout=timeout)
            if not ready:
                return
            started, drain_ref = ray.get(drain_ref), None
            for run_id, attempt, info in started:
                outcome = by_id.get(run_id)
                if outcome is not None and outcome.attempts == attempt and outcome.state in ("queued", "retrying"):
                    outcome.state, outcome.started_at = "running", info.get("start")
                    emit("running", outcome)

        def collect(ref: Any, stopping: bool = False) -> None:
            outcome = inflight.pop(ref)
            try:
                payload = ray.get(ref)
            except (ray.exceptions.TaskCancelledError, ray.exceptions.RayError) as exc:
                # While stopping, a job that ended badly was most likely hit by the same Ctrl-C (a terminal
                # sends SIGINT to the workers too): cancelled, neither retried nor recorded as failed.
                if stopping or isinstance(exc, ray.exceptions.TaskCancelledError) or isinstance(
                        getattr(exc, "cause", None), KeyboardInterrupt):
                    outcome.state = "cancelled"
                    emit("cancelled", outcome)
                    return
                payload = self._failure(ray, exc, outcome, submit, emit)
                if payload is None:
                    return
            _store(results_dir, outcome, payload)
            emit(outcome.state, outcome)

        limit = self.max_concurrent or math.inf
        interrupted = False
        with _Interrupt() as interrupt:
            try:
                while queue or inflight:
                    if interrupt.requested:
                        interrupted = True
                        break
                    while queue and len(inflight) < limit:
                        submit(queue.popleft())
                    ready, _ = ray.wait(list(inflight), num_returns=1, timeout=self.poll_s)
                    if ready:
                        rest = [r for r in inflight if r not in ready]
                        more, _ = ray.wait(rest, num_returns=len(rest), timeout=0) if rest else ([], [])
                        ready = ready + more
                    note_starts(timeout=0 if ready else 0.01)
                    for ref in ready:
                        collect(ref, stopping=interrupt.requested)
            except KeyboardInterrupt:
                interrupted = True
            if interrupted:
                self._stop(ray, inflight, collect, emit)
            for outcome in queue:
                outcome.state = "cancelled" if interrupted else outcome.state
        try:
            ray.kill(progress)
        except Exception:  # noqa: BLE001
            pass
        return interrupted

    def _failure(self, ray: Any, exc: BaseException, outcome: JobOutcome, submit: Callable,
                 emit: Callable) -> dict[str, Any] | None:
        """A failed record for a Ray error, or None if the job was resubmitted."""
        if not isinstance(exc, ray.exceptions.RayTaskError) and outcome.attempts <= self.retries:
            # A system failure: the worker process died (os._exit, kill -9, OOM killer) or its node went away.
            outcome.state = "retrying"
            outcome.note = f"worker died ({type(exc).__name__}); attempt {outcome.attempts + 1}"
            emit("retrying", outcome)
            submit(outcome)
            return None
        # Out of retries, or the worker-side wrapper itself failed (e.g. the job could not be imported).
        return {"record": failed_record(outcome.spec, _ray_error(exc, outcome.attempts))}

    def _stop(self, ray: Any, inflight: dict, collect: Callable, emit: Callable) -> None:
        """Keep whatever already finished, force-cancel the rest."""
        if inflight:
            done, _ = ray.wait(list(inflight), num_returns=len(inflight), timeout=0)
            for ref in done:
                try:
                    collect(ref, stopping=True)
                except Exception:  # noqa: BLE001 - a result we cannot store now is simply re-run on resume
                    pass
        for ref, outcome in list(inflight.items()):
            try:
                ray.cancel(ref, force=True)
            except Exception:  # noqa: BLE001 - already finished or gone
                pass
            outcome.state = "cancelled"
            emit("cancelled", outcome)
        inflight.clear()


def _ray_error(exc: BaseException, attempts: int) -> dict[str, str]:
    info = error_info(exc)
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if not isinstance(exc, _ray_task_error_type()):
        info["message"] = f"worker process died on each of {attempts} attempt(s); last error: {first}"
    else:
        info["message"] = first
    return info


def _ray_task_error_type() -> type:
    import ray

    return ray.exceptions.RayTaskError


# ------------------------------------------------------------------------------------------- sweep

def run_sweep(specs: Sequence[RunSpec], results_dir: Path | str, *, executor: Any, force: bool = False,
              on_event: Callable[[Event], None] | None = None) -> SweepResult:
    """Skip specs with a completed record (unless `force`), run the rest on `executor`, write every result."""
    start = time.perf_counter()
    outcomes = [JobOutcome(p.spec, state="skipped" if p.done else "pending",
                           record_path=p.record_path if p.done else None)
                for p in plan(specs, results_dir, force=force)]

    def emit(kind: str, outcome: JobOutcome) -> None:
        if on_event is not None:
            on_event(Event(kind, outcome))

    for o in outcomes:
        emit(o.state, o)
    todo = [o for o in outcomes if o.state == "pending"]
    interrupted = executor.run(todo, results_dir, emit) if todo else False
    return SweepResult(outcomes, wall_s=time.perf_counter() - start,
                       gpus_per_job=float(getattr(executor, "gpus_per_job", 0) or 0),
                       cpus_per_job=float(getattr(executor, "cpus_per_job", 0) or 0), interrupted=interrupted)


__all__ = ["DEFAULT_JOB", "Event", "InlineExecutor", "JobOutcome", "PlannedSpec", "RayExecutor", "SweepConfig",
           "SweepResult", "build_grid", "check_tasks", "execute_job", "failed_record", "headline",
           "load_sweep_file", "parse_seeds", "parse_sets", "plan", "resolve_job", "run_spec_job", "run_sweep",
           "split_list", "worker_info"]
