"""The driver side of a sweep's bookkeeping: each spec's outcome, the events an executor reports, the sweep's
result, and `store_payload`, which writes what a worker sent back (the only place a sweep writes records)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from xlt.results import completed_record, spec_record_path, write_run
from xlt.spec import RunSpec


@dataclass
class JobOutcome:
    spec: RunSpec
    state: str = "pending"   # pending|queued|running|retrying|completed|failed|skipped|cancelled
    record: dict[str, Any] | None = None
    record_path: Path | None = None
    attempts: int = 0
    elapsed_s: float | None = None
    worker: dict[str, Any] | None = None   # where it runs/ran (worker_info); set when the job starts
    note: str | None = None  # e.g. why a failure did not replace a completed record
    submitted_at: float | None = None
    started_at: float | None = None
    # Attempts whose worker process or node died: {"attempt", "error", "node_id", "node_ip", "host"}.
    lost: list[dict[str, Any]] = field(default_factory=list)

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
    stop_signal: int | None = None   # which signal interrupted it (SIGINT, SIGTERM, SIGHUP)

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

    @property
    def lost(self) -> list[JobOutcome]:
        """Jobs that lost a worker process or node on at least one attempt (and were re-run or failed)."""
        return [o for o in self.outcomes if o.lost]


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


def store_payload(results_dir: Path | str, outcome: JobOutcome, payload: Mapping[str, Any]) -> None:
    """Write what a worker sent back; a failure never replaces an existing completed record."""
    record = dict(payload["record"])
    worker = payload.get("worker") or {}
    env = dict(record.get("env") or {})
    env.setdefault("host", worker.get("host"))
    env.setdefault("cuda_visible_devices", worker.get("cuda_visible_devices"))
    for key in ("node_id", "node_ip"):   # only on Ray
        if key in worker:
            env.setdefault(key, worker[key])
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
