"""Executors: run a sweep's pending jobs and write what comes back. `InlineExecutor` runs them one by one in this
process; `RayExecutor` runs one Ray task per spec; `run_sweep` plans (skips done specs) and calls one of them.

    specs = build_grid(SweepConfig(models=("a", "b"), tasks=("xnli",), seeds=(1, 2)), data_dir=...)
    result = run_sweep(specs, results_dir, executor=RayExecutor(gpus_per_job=1), on_event=print)

Faults: a job that raises becomes a `failed` record and the sweep goes on. A worker process that dies (killed,
out of memory, `os._exit`) or whose node goes away surfaces as a Ray system error; the driver resubmits the spec
up to `retries` times (Ray's own `max_retries` is left at 0 so every attempt is visible), then records it
failed; each lost attempt is noted on the outcome with the node it ran on. On Ray, SIGINT, SIGTERM or SIGHUP
(also while Ray is starting) stops submitting, collects results that are already finished, force-cancels the
running jobs, shuts Ray down and returns with `interrupted=True`; every record written before stays. A second
signal aborts at once. A failed run never overwrites a completed record of the same spec.
"""

from __future__ import annotations

import math
import os
import re
import signal
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from xlt.errors import XltError
from xlt.schedule.grid import plan
from xlt.schedule.jobs import DEFAULT_JOB, JobFn, error_info, execute_job, failed_record
from xlt.schedule.outcomes import Event, JobOutcome, SweepResult, store_payload
from xlt.spec import RunSpec


class _StopSignals:
    """SIGINT (Ctrl-C), SIGTERM (`kill`, a batch scheduler) and SIGHUP (a closed terminal) ask the driver to stop
    cleanly: cancel the running jobs, keep every record, shut Ray down. Without this, SIGHUP would end the driver
    at once and leave Ray's agents behind. A second signal raises KeyboardInterrupt (abort at once)."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)

    def __init__(self) -> None:
        self.signum: int | None = None
        self._previous: dict[int, Any] = {}

    @property
    def requested(self) -> bool:
        return self.signum is not None

    def _handle(self, signum, frame) -> None:  # noqa: ARG002
        if self.requested:
            raise KeyboardInterrupt
        self.signum = signum

    def install(self) -> None:
        """(Re)install the handlers; `ray.init` sets its own SIGTERM handler, so this runs again after it.
        A signal the process was started with ignored stays ignored (`nohup xlt sweep ... &` survives logout)."""
        if threading.current_thread() is not threading.main_thread():
            return
        for signum in self.SIGNALS:
            self._previous.setdefault(signum, signal.getsignal(signum))
            if self._previous[signum] is not signal.SIG_IGN:
                signal.signal(signum, self._handle)

    def __enter__(self) -> "_StopSignals":
        self.install()
        return self

    def __exit__(self, *exc: Any) -> None:
        for signum, previous in self._previous.items():
            if previous is not None:   # None: a handler not set from Python, which cannot be put back
                signal.signal(signum, previous)


class InlineExecutor:
    """Runs jobs one after another in this process (a single run, or debugging without Ray)."""

    def __init__(self, *, job: str | JobFn = DEFAULT_JOB, job_kwargs: Mapping[str, Any] | None = None) -> None:
        self.job, self.job_kwargs = job, dict(job_kwargs or {})
        self.gpus_per_job, self.cpus_per_job = 0.0, 0.0
        self.stop_signal: int | None = None   # the signal that interrupted the last run

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
                self.stop_signal = signal.SIGINT
                return True
            store_payload(results_dir, outcome, payload)
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


def _start_progress(ray: Any) -> Any:
    """The progress actor, placed on the driver's own node when Ray can say which that is: a worker node that
    dies mid-sweep must not take the start notices with it."""
    options: dict[str, Any] = {"num_cpus": 0}
    try:
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        node_id = ray.get_runtime_context().get_node_id()
        options["scheduling_strategy"] = NodeAffinitySchedulingStrategy(node_id=node_id, soft=True)
    except Exception:  # noqa: BLE001 - e.g. Ray Client has no local node: any node will do
        pass
    return ray.remote(_Progress).options(**options).remote()


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
        self.stop_signal: int | None = None   # the signal that interrupted the last run

    # -- Ray set-up

    def connect(self) -> bool:
        """Initialise Ray if needed; returns True if this call started/joined it (and should shut it down).

        A local instance starts without the dashboard UI (`include_dashboard=False`: fewer processes to start and
        to leave behind). Interrupted half-way (a second Ctrl-C), whatever Ray had started is shut down again.
        """
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
        except BaseException:
            ray.shutdown()
            raise
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
        """Run every outcome's spec; returns True if a signal interrupted it (see `_StopSignals`)."""
        self.stop_signal = None
        # The handlers go in before Ray is imported and started, so a Ctrl-C while Ray starts up stops the
        # sweep cleanly (nothing is submitted, Ray is shut down) instead of surfacing from inside Ray's code.
        with _StopSignals() as stop:
            try:
                import ray

                started_here = self.connect()
            except KeyboardInterrupt:
                return self._interrupted(outcomes, signal.SIGINT, emit)
            stop.install()
            try:
                return self._run(ray, outcomes, results_dir, emit, stop)
            finally:
                if started_here and self.shutdown:
                    ray.shutdown()

    def _interrupted(self, outcomes: Sequence[JobOutcome], signum: int, emit: Callable) -> bool:
        self.stop_signal = signum
        for outcome in outcomes:
            if outcome.state in ("pending", "queued", "running", "retrying"):
                outcome.state = "cancelled"
                emit("cancelled", outcome)
        return True

    def _run(self, ray: Any, outcomes: Sequence[JobOutcome], results_dir: Path | str,
             emit: Callable[[str, JobOutcome], None], stop: _StopSignals) -> bool:
        gpus, cpus = self.resources()
        self.gpus_per_job, self.cpus_per_job = gpus, cpus
        remote = ray.remote(execute_job).options(num_gpus=gpus, num_cpus=cpus, max_retries=0,
                                                 retry_exceptions=False)
        progress: Any = _start_progress(ray)
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
            nonlocal drain_ref, progress
            if progress is None:
                return
            if drain_ref is None:
                drain_ref = progress.drain.remote()
            ready, _ = ray.wait([drain_ref], timeout=timeout)
            if not ready:
                return
            try:
                started, drain_ref = ray.get(drain_ref), None
            except ray.exceptions.RayError:
                # The start notices are informational: without them jobs go from queued straight to done.
                progress = drain_ref = None
                return
            for run_id, attempt, info in started:
                outcome = by_id.get(run_id)
                if outcome is not None and outcome.attempts == attempt and outcome.state in ("queued", "retrying"):
                    outcome.state, outcome.started_at, outcome.worker = "running", info.get("start"), dict(info)
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
                if outcome.worker is None:   # its start notice (where it ran) may still be on its way
                    for _ in range(2):       # a drain already in flight may predate the notice
                        note_starts(timeout=1.0)
                payload = self._failure(ray, exc, outcome, submit, emit)
                if payload is None:
                    return
            store_payload(results_dir, outcome, payload)
            emit(outcome.state, outcome)

        limit = self.max_concurrent or math.inf
        interrupted = False
        try:
            while queue or inflight:
                if stop.requested:
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
                    collect(ref, stopping=stop.requested)
        except KeyboardInterrupt:
            interrupted = True
        if interrupted:
            self.stop_signal = stop.signum or signal.SIGINT
            self._stop(ray, inflight, collect, emit)
            for outcome in queue:
                outcome.state = "cancelled"
        if progress is not None:
            try:
                ray.kill(progress)
            except Exception:  # noqa: BLE001
                pass
        return interrupted

    def _failure(self, ray: Any, exc: BaseException, outcome: JobOutcome, submit: Callable,
                 emit: Callable) -> dict[str, Any] | None:
        """A failed record for a Ray error, or None if the job was resubmitted."""
        if not isinstance(exc, ray.exceptions.RayTaskError):
            # A system failure: the worker process died (os._exit, kill -9, OOM killer) or its node went away.
            outcome.lost.append({"attempt": outcome.attempts, "error": type(exc).__name__,
                                 **_where_lost(outcome.worker, str(exc))})
        if not isinstance(exc, ray.exceptions.RayTaskError) and outcome.attempts <= self.retries:
            outcome.state, outcome.worker = "retrying", None
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


def _where_lost(worker: Mapping[str, Any] | None, message: str) -> dict[str, Any]:
    """The node a lost attempt ran on: from its start notice, else from Ray's error ("Node IP: .., node ID: ..",
    when the job died before the driver heard that it started)."""
    where = dict(worker or {})
    node_id = re.search(r"node ID: ([0-9a-f]+)", message)
    node_ip = re.search(r"Node IP: ([0-9A-Fa-f.:]+?)[,\s]", message)
    return {"node_id": where.get("node_id") or (node_id[1] if node_id else None),
            "node_ip": where.get("node_ip") or (node_ip[1] if node_ip else None), "host": where.get("host")}


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
                       cpus_per_job=float(getattr(executor, "cpus_per_job", 0) or 0), interrupted=interrupted,
                       stop_signal=getattr(executor, "stop_signal", None) if interrupted else None)
