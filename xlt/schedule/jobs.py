"""The worker side of a sweep: job functions, and `execute_job`, which runs one in a worker process.

A job function is called as `fn(spec, **job_kwargs)` and returns a RunOutcome-like object (`.record`,
`.predictions`), a `(record, predictions)` pair or a bare record dict; predictions may be a DataFrame, parquet
bytes or None. It is named by an import path "pkg.module:function" (or is a picklable callable), so benchmarks
and tests schedule sleeping, raising or dying jobs through exactly the path real runs take. The default,
`run_spec_job`, runs the same `xlt.runner.execute` as `xlt run`.

`execute_job` never raises for a job's own error: the exception becomes a `failed` record (type, message,
traceback tail). It returns plain values (record, predictions as parquet bytes, where the job ran) that the
driver writes, so no worker ever touches the results folder.
"""

from __future__ import annotations

import importlib
import os
import socket
import time
from typing import Any, Callable, Mapping

from xlt.errors import XltError
from xlt.results import new_record, predictions_to_bytes
from xlt.spec import RunSpec

DEFAULT_JOB = "xlt.schedule:run_spec_job"   # an import path stored in configs: keep it stable

JobFn = Callable[..., Any]


def run_spec_job(spec: RunSpec, *, data_dir: str | None = None, tasks_dir: str | None = None,
                 device: str | None = None, cache_dir: str | None = None,
                 display_names: dict[str, str] | None = None) -> Any:
    """The default job: what `xlt run` does, quietly, returning the outcome instead of writing it.

    `cache_dir` is the driver's feature cache (XLT_CACHE_DIR) when it set one: a worker on another node does
    not inherit the driver's environment, so the setting travels with the job.
    """
    from xlt.runner import execute

    kwargs: dict[str, Any] = dict(data_dir=data_dir, device=device, quiet=True,
                                  display_name=(display_names or {}).get(spec.model))
    if tasks_dir is not None:
        kwargs["tasks_dir"] = tasks_dir
    if cache_dir is not None:
        kwargs["cache_dir"] = cache_dir
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
    """A failed job's `error`: the runner's own serialiser (one definition for runs and jobs)."""
    from xlt.runner import error_info as run_error_info

    return run_error_info(exc)


def failed_record(spec: RunSpec, error: BaseException | Mapping[str, str]) -> dict[str, Any]:
    info = error_info(error) if isinstance(error, BaseException) else dict(error)
    return new_record(spec, status="failed", error=info)


def worker_info() -> dict[str, Any]:
    """Where a job ran: host, pid, the devices it could see (Ray sets CUDA_VISIBLE_DEVICES per GPU task) and,
    on Ray, the node's id and IP (on a cluster, which machine; in tests, which of several local nodes)."""
    info: dict[str, Any] = {"host": socket.gethostname(), "pid": os.getpid(),
                            "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES")}
    try:
        import ray

        if ray.is_initialized():
            info["gpu_ids"] = [str(g) for g in ray.get_gpu_ids()]
            info["node_id"] = ray.get_runtime_context().get_node_id()
            info["node_ip"] = ray.util.get_node_ip_address()
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
        try:
            progress.started.remote(spec.run_id, attempt, worker)
        except Exception:  # noqa: BLE001 - the start notice is informational; the job runs regardless
            pass
    predictions: bytes | None = None
    try:
        record, preds = _unpack(resolve_job(job)(spec, **dict(job_kwargs or {})))
        if preds is not None:
            predictions = preds if isinstance(preds, bytes) else predictions_to_bytes(preds)
    except Exception as exc:  # noqa: BLE001 - the job's failure is data, the sweep goes on
        record = failed_record(spec, exc)
    worker["end"] = time.time()
    return {"record": record, "predictions": predictions, "worker": worker}
