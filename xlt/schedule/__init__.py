"""Sweeps: the grid of RunSpecs, resume, and the executors that run them (Ray, or inline in this process).

This package maps specs onto Ray and nothing else: no training logic lives here.

- `grid`: what a sweep covers (SweepConfig, sweep YAML files), the specs it expands to, the task and model
  name checks made before anything runs, and which specs are already done (`plan`).
- `jobs`: the worker side. Each spec becomes one job that calls a *job function* in a worker process, by
  default `run_spec_job`, which runs the same `xlt.runner.execute` as `xlt run` with progress quieted.
- `outcomes`: the driver's bookkeeping (JobOutcome, Event, SweepResult) and `store_payload`: the worker sends
  the record and its predictions (parquet bytes) back and the driver writes them with `results.write_run`, so
  a cluster needs no shared filesystem.
- `executors`: InlineExecutor, RayExecutor and `run_sweep`.

    specs = build_grid(SweepConfig(models=("a", "b"), tasks=("xnli",), seeds=(1, 2)), data_dir=...)
    result = run_sweep(specs, results_dir, executor=RayExecutor(gpus_per_job=1), on_event=print)

The names below are re-exported so `from xlt.schedule import ...` and the job path
"xlt.schedule:run_spec_job" (DEFAULT_JOB, stored in configs) keep working.
"""

from xlt.schedule.executors import InlineExecutor, RayExecutor, run_sweep
from xlt.schedule.grid import (SPEC_FIELDS, SWEEP_FILE_KEYS, ModelCheck, PlannedSpec, SweepConfig, build_grid,
                               check_models, load_sweep_file, parse_seeds, plan, require_models, task_folders,
                               split_list)
from xlt.schedule.jobs import (DEFAULT_JOB, error_info, execute_job, failed_record, resolve_job, run_spec_job,
                               worker_info)
from xlt.schedule.outcomes import Event, JobOutcome, SweepResult, headline, store_payload
from xlt.spec import parse_sets

__all__ = ["DEFAULT_JOB", "Event", "InlineExecutor", "JobOutcome", "ModelCheck", "PlannedSpec", "RayExecutor",
           "SPEC_FIELDS", "SWEEP_FILE_KEYS", "SweepConfig", "SweepResult", "build_grid", "check_models",
           "error_info", "execute_job", "failed_record", "headline", "load_sweep_file",
           "parse_seeds", "parse_sets", "plan", "require_models", "resolve_job", "run_spec_job", "run_sweep",
           "task_folders",
           "split_list", "store_payload", "worker_info"]
