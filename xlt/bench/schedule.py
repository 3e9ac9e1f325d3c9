"""`xlt bench schedule`: how close the Ray executor gets to the ideal makespan with sleeping jobs.

N jobs of S seconds each on G logical GPUs can at best finish in ceil(N/G) * S. The benchmark starts a local
Ray instance with G logical GPUs (`ray.init(num_gpus=G)`, no real GPU needed), runs the jobs through exactly
the path a sweep takes (`schedule.run_sweep` with a `RayExecutor`, one GPU per job, records written by the
driver into a temporary folder) and reports the makespan, its ratio to the ideal, the highest number of jobs
that overlapped and whether any two overlapping jobs saw the same CUDA_VISIBLE_DEVICES.

Ray's start-up is not part of the makespan; it is reported separately as `startup_s` (ray.init, then one no-op
task per GPU so the worker processes exist, as they do a few seconds into any real sweep).
"""

from __future__ import annotations

import math
import tempfile
import time
from typing import Any

from xlt.errors import XltError
from xlt.results import new_record
from xlt.spec import RunSpec


def sleep_job(spec: RunSpec, *, seconds: float) -> dict[str, Any]:
    """A job that holds its GPU for `seconds` and returns a completed record with no metrics."""
    time.sleep(seconds)
    return new_record(spec, status="completed", timing={"train_s": seconds})


def _noop() -> None:
    return None


def overlap_stats(workers: list[dict[str, Any]]) -> tuple[int, int]:
    """(largest number of jobs running at once, pairs of overlapping jobs that shared a visible device)."""
    events = sorted([(w["start"], 1) for w in workers] + [(w["end"], -1) for w in workers])
    peak = running = 0
    for _, step in events:   # ends sort before starts at equal times
        running += step
        peak = max(peak, running)
    collisions = 0
    for i, a in enumerate(workers):
        for b in workers[i + 1:]:
            if a["start"] < b["end"] and b["start"] < a["end"]:
                devs_a = set(str(a.get("cuda_visible_devices") or "").split(",")) - {""}
                devs_b = set(str(b.get("cuda_visible_devices") or "").split(",")) - {""}
                collisions += bool(devs_a & devs_b)
    return peak, collisions


def bench_schedule(jobs: int = 16, gpus: int = 4, job_seconds: float = 5.0, *, warmup: bool = True) -> dict[str, Any]:
    """Run the benchmark; `warmup=False` leaves worker start-up inside the makespan."""
    import ray

    from xlt.schedule import RayExecutor, run_sweep

    if jobs < 1 or gpus < 1 or job_seconds < 0:
        raise XltError("--jobs and --gpus must be at least 1 and --job-seconds at least 0")
    if ray.is_initialized():
        raise XltError("xlt bench schedule starts its own local Ray instance; run it in a fresh process")
    start = time.perf_counter()
    ray.init(num_gpus=gpus, include_dashboard=False, log_to_driver=False, logging_level="warning")
    try:
        init_s = time.perf_counter() - start
        warm = time.perf_counter()
        if warmup:
            ray.get([ray.remote(_noop).options(num_gpus=1, num_cpus=0).remote() for _ in range(gpus)])
        warmup_s = time.perf_counter() - warm
        specs = [RunSpec(model=f"sleep-{i:03d}", task="bench", seed=i) for i in range(jobs)]
        executor = RayExecutor(gpus_per_job=1, job="xlt.bench.schedule:sleep_job",
                               job_kwargs={"seconds": job_seconds}, shutdown=False)
        with tempfile.TemporaryDirectory(prefix="xlt-bench-schedule-") as results_dir:
            t0 = time.perf_counter()
            result = run_sweep(specs, results_dir, executor=executor)
            makespan = time.perf_counter() - t0
    finally:
        ray.shutdown()
    workers = [o.worker for o in result.outcomes if o.worker]
    peak, collisions = overlap_stats(workers)
    ideal = math.ceil(jobs / gpus) * job_seconds
    return {"jobs": jobs, "gpus": gpus, "job_seconds": job_seconds, "makespan_s": round(makespan, 3),
            "ideal_s": ideal, "overhead_ratio": round(makespan / ideal, 4) if ideal else None,
            "startup_s": round(init_s + warmup_s, 3), "ray_init_s": round(init_s, 3),
            "worker_warmup_s": round(warmup_s, 3) if warmup else None, "completed": result.count("completed"),
            "failed": result.count("failed"), "max_concurrent_observed": peak,
            "device_collisions": collisions, "ray": ray.__version__}
