"""The sweep grid, resume, and the Ray executor on a real local Ray instance with 4 logical GPUs.

One Ray instance serves the whole module (start-up costs seconds). Jobs here are small top-level functions
(sleeping, raising, dying) passed by import path, exactly as `xlt sweep --job` would; the end-to-end test at
the bottom runs the real runner on tiny local checkpoints through the CLI. Tests assert behaviour, never speed.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from tests.hygiene import isolated_home  # noqa: F401  (the fixture, used through pytestmark)
from tests.factories import SHARED_DATA as SHARED
from tests import factories
from xlt import schedule
from xlt.bench.schedule import overlap_stats
from xlt.errors import XltError
from xlt.results import completed_record, load_predictions, load_records, new_record, read_record, spec_record_path
from xlt.schedule import (InlineExecutor, RayExecutor, SweepConfig, build_grid, headline, load_sweep_file,
                          parse_seeds, parse_sets, plan, run_sweep)
from xlt.spec import RunSpec

ROOT = Path(__file__).resolve().parents[1]
HERE = "tests.test_schedule"

pytestmark = [pytest.mark.timeout(300), pytest.mark.usefixtures("isolated_home")]


# ------------------------------------------------------------------------------ jobs run by the workers

def _ok(spec: RunSpec, value: float = 0.5) -> dict:
    return new_record(spec, status="completed", task={"name": spec.task, "primary_metric": "accuracy"},
                      metrics={"validation": {"en": {"accuracy": value, "n": 10}, "fr": {"accuracy": value / 2,
                                                                                        "n": 10}}})


def sleeping_job(spec: RunSpec, *, seconds: float = 0.5, **_: object):
    time.sleep(seconds)
    preds = pd.DataFrame({"split": ["validation"] * 2, "lang": ["en", "fr"], "idx": [0, 1], "label": [1, 2],
                          "pred": [1, 0]})
    return _ok(spec), preds


def raising_job(spec: RunSpec, **_: object):
    if spec.seed == 2:
        raise ValueError(f"boom from seed {spec.seed}")
    return _ok(spec)


def dying_job(spec: RunSpec, *, marker_dir: str, **_: object):
    """seed 2 dies on every attempt; seed 3 dies on its first attempt only; others complete."""
    folder = Path(marker_dir)
    attempt = len(list(folder.glob(f"seed{spec.seed}-*"))) + 1
    (folder / f"seed{spec.seed}-{uuid.uuid4().hex}").touch()
    if spec.seed == 2 or (spec.seed == 3 and attempt == 1):
        os._exit(3)
    return _ok(spec)


# -------------------------------------------------------------------------------------------- fixtures

@pytest.fixture(scope="module")
def ray_cluster(isolated_home):
    """Started after `isolated_home`, so its workers inherit the module's HOME and XLT_CACHE_DIR."""
    import ray

    if ray.is_initialized():
        ray.shutdown()
    ray.init(num_cpus=2, num_gpus=4, include_dashboard=False, log_to_driver=False, logging_level="warning",
             runtime_env={"env_vars": {"PYTHONPATH": str(ROOT)}})
    yield ray
    ray.shutdown()


def _specs(n: int, task: str = "xnli") -> list[RunSpec]:
    return [factories.spec("tiny-model", task, seed=s) for s in range(1, n + 1)]


def _events():
    seen: list[tuple[str, str]] = []
    return seen, (lambda e: seen.append((e.kind, e.outcome.spec.run_id)))


# ------------------------------------------------------------------------------------- the grid, resume

def test_grid_is_models_x_tasks_x_seeds_with_overrides_in_order_of_precedence():
    config = SweepConfig(models=("mdeberta-v3-base", "xlm-roberta-base"), tasks=("xnli", "pawsx"), seeds=(1, 2, 3),
                         overrides={"epochs": "2", "lr": "1e-5"}, task_overrides={"pawsx": {"lr": 3e-5}},
                         model_overrides={"xlm-roberta-base": {"lr": 7e-6}},
                         spec_fields={"max_train_samples": 100})
    specs = build_grid(config)   # hub data: the task files' pinned revisions, no download needed
    assert len(specs) == 12 and len({s.run_id for s in specs}) == 12
    assert [s.label() for s in specs[:4]] == ["mdeberta-v3-base/xnli/seed1", "mdeberta-v3-base/xnli/seed2",
                                              "mdeberta-v3-base/xnli/seed3", "mdeberta-v3-base/pawsx/seed1"]
    by = {(s.model, s.task, s.seed): s for s in specs}
    assert by["mdeberta-v3-base", "xnli", 1].hparams.lr == 1e-5            # --set over the preset
    assert by["mdeberta-v3-base", "xnli", 1].hparams.warmup_steps == 3000  # preset kept
    assert by["mdeberta-v3-base", "pawsx", 2].hparams.lr == 3e-5           # per-task over --set
    assert by["xlm-roberta-base", "pawsx", 3].hparams.lr == 7e-6           # per-model over per-task
    assert all(s.hparams.epochs == 2 and s.max_train_samples == 100 and s.data_source == "hub" for s in specs)
    assert by["xlm-roberta-base", "xnli", 1].data_revision.startswith("facebook/xnli@b8dd5d7a")
    # The same spec as `xlt run` builds (data identity included), so records are shared between the two commands.
    from xlt.cli.run import build_run_spec

    def run_spec(data_dir):
        return build_run_spec("xlm-roberta-base", "xnli", 1, data_dir=data_dir, overrides={"epochs": 2, "lr": 7e-6},
                          precision="auto", impl="auto", max_train_samples=100, max_eval_samples=None)[0]

    assert by["xlm-roberta-base", "xnli", 1] == run_spec(None)
    local = build_grid(SweepConfig(models=("xlm-roberta-base",), tasks=("xnli",), seeds=(1,),
                                   overrides={"epochs": "2"}, model_overrides={"xlm-roberta-base": {"lr": 7e-6}},
                                   spec_fields={"max_train_samples": 100}), data_dir=SHARED)
    assert local == [run_spec(SHARED)] and local[0].data_revision.startswith("local-sha256:")


def test_seed_and_set_parsing():
    assert parse_seeds("1-3,5") == (1, 2, 3, 5)
    assert parse_seeds([1, 2, 2]) == (1, 2)
    assert parse_seeds(7) == (7,)
    assert parse_sets(["lr=2e-5", "epochs = 3"]) == {"lr": "2e-5", "epochs": "3"}
    with pytest.raises(XltError, match="not an integer"):
        parse_seeds("one")
    with pytest.raises(XltError, match="NAME=VALUE"):
        parse_sets(["lr"])


def test_sweep_file_and_its_errors(tmp_path):
    good = tmp_path / "grid.yaml"
    good.write_text("models: [a, b]\ntasks: xnli,pawsx\nseeds: 1-2\nset: {epochs: 1}\n"
                    "model_overrides: {b: {lr: 1e-5}}\nmax_eval_samples: 50\n")
    config = load_sweep_file(good)
    assert (config.models, config.tasks, config.seeds) == (("a", "b"), ("xnli", "pawsx"), (1, 2))
    specs = build_grid(config)
    assert len(specs) == 8 and all(s.max_eval_samples == 50 and s.hparams.epochs == 1 for s in specs)
    assert {s.hparams.lr for s in specs if s.model == "b"} == {1e-5}

    cases = {"modles: [a]\ntasks: [xnli]\n": "unknown key 'modles'",
             "models: [a]\ntasks: [xnli]\nmodel_overrides: {c: {lr: 1}}\n": "model_overrides name 'c'",
             "models: [a]\ntasks: [xnli]\nset: {learning_rate: 1}\n": "unknown hyperparameter 'learning_rate'",
             "models: [a]\n": "at least one task",
             "models: [a\n": "malformed YAML",
             "- a\n": "must be a mapping"}
    for i, (text, message) in enumerate(cases.items()):
        path = tmp_path / f"bad{i}.yaml"
        path.write_text(text)
        with pytest.raises(XltError, match=message):
            build_grid(load_sweep_file(path))
    with pytest.raises(XltError, match="missing.yaml: cannot read the file"):
        load_sweep_file(tmp_path / "missing.yaml")


def test_plan_marks_completed_records_done_unless_forced(tmp_path):
    specs = _specs(3)
    from xlt.results import write_run

    write_run(tmp_path, _ok(specs[0]))
    write_run(tmp_path, new_record(specs[1], status="failed", error={"type": "X", "message": "m",
                                                                     "traceback_tail": ""}))
    assert [p.done for p in plan(specs, tmp_path)] == [True, False, False]   # a failed record is re-run
    assert [p.done for p in plan(specs, tmp_path, force=True)] == [False, False, False]


def test_headline_is_the_primary_metric_averaged_over_languages():
    spec = _specs(1)[0]
    assert headline(_ok(spec, 0.8)) == ("accuracy (validation, 2 lang)", pytest.approx(0.6))
    assert headline(new_record(spec, status="failed")) is None


def test_inline_executor_records_a_raising_job_as_failed_and_goes_on(tmp_path):
    specs = _specs(3)
    result = run_sweep(specs, tmp_path, executor=InlineExecutor(job=f"{HERE}:raising_job"))
    assert [o.state for o in result.outcomes] == ["completed", "failed", "completed"]
    failed = read_record(spec_record_path(tmp_path, specs[1]))
    assert failed["status"] == "failed" and failed["error"]["type"] == "ValueError"
    assert "boom from seed 2" in failed["error"]["message"] and "raise ValueError" in failed["error"]["traceback_tail"]
    assert not result.ok


def test_a_failure_never_replaces_a_completed_record(tmp_path):
    spec = _specs(2)[1]   # seed 2 raises in raising_job
    from xlt.results import write_run

    path = write_run(tmp_path, _ok(spec, 0.9))
    result = run_sweep([spec], tmp_path, executor=InlineExecutor(job=f"{HERE}:raising_job"), force=True)
    assert result.outcomes[0].state == "failed" and "kept" in result.outcomes[0].note
    assert read_record(path)["status"] == "completed"


def test_executor_options_are_checked():
    with pytest.raises(XltError, match="fractions are only allowed below 1"):
        RayExecutor(gpus_per_job=1.5)
    with pytest.raises(XltError, match="--max-concurrent"):
        RayExecutor(max_concurrent=0)
    with pytest.raises(XltError, match="import path"):
        schedule.resolve_job("no_colon_here")


def test_stop_signals_flag_the_first_signal_abort_on_the_second_and_leave_ignored_ones_ignored():
    """Catches: SIGTERM/SIGHUP killing the driver outright (no clean stop, Ray left behind), a second signal not
    aborting, and a `nohup` sweep stopping when its terminal closes."""
    import signal

    from xlt.schedule.executors import _StopSignals

    before_term = signal.getsignal(signal.SIGTERM)
    before_hup = signal.signal(signal.SIGHUP, signal.SIG_IGN)   # as under nohup
    try:
        with _StopSignals() as stop:
            assert signal.getsignal(signal.SIGHUP) is signal.SIG_IGN
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.1)
            assert stop.signum == signal.SIGTERM
            with pytest.raises(KeyboardInterrupt):
                os.kill(os.getpid(), signal.SIGINT)
                time.sleep(1)
        assert signal.getsignal(signal.SIGTERM) is before_term
        assert signal.getsignal(signal.SIGHUP) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGHUP, before_hup)


# --------------------------------------------------------------------------------------- on real Ray

def test_concurrency_stays_within_the_gpu_budget_and_devices_never_collide(ray_cluster, tmp_path):
    specs = _specs(10)
    seen, on_event = _events()
    executor = RayExecutor(job=f"{HERE}:sleeping_job", job_kwargs={"seconds": 1.0}, retries=0)
    result = run_sweep(specs, tmp_path, executor=executor, on_event=on_event)

    assert result.count("completed") == 10 and result.ok
    assert executor.gpus_per_job == 1.0 and executor.cpus_per_job == 0.0   # defaults on a GPU cluster
    workers = [o.worker for o in result.outcomes]
    assert all(w["cuda_visible_devices"] in {"0", "1", "2", "3"} for w in workers)
    assert all(w["gpu_ids"] == [w["cuda_visible_devices"]] for w in workers)
    peak, collisions = overlap_stats(workers)
    assert 1 <= peak <= 4
    assert collisions == 0
    for o in result.outcomes:   # the driver wrote record and predictions; the record says where it ran
        record = read_record(o.record_path)
        assert record["status"] == "completed"
        assert record["env"]["cuda_visible_devices"] == o.worker["cuda_visible_devices"]
        assert load_predictions(o.record_path)["pred"].tolist() == [1, 0]
    kinds = {k for k, _ in seen}
    assert {"pending", "queued", "completed"} <= kinds
    assert result.gpu_hours == pytest.approx(sum(o.elapsed_s for o in result.outcomes) / 3600)

    # Running it again skips every spec and starts nothing.
    again = run_sweep(specs, tmp_path, executor=executor)
    assert again.count("skipped") == 10 and again.ok


def test_fractional_gpus_and_max_concurrent_cap_the_jobs_in_flight(ray_cluster, tmp_path):
    executor = RayExecutor(job=f"{HERE}:sleeping_job", job_kwargs={"seconds": 0.5}, gpus_per_job=0.5,
                           max_concurrent=3)
    result = run_sweep(_specs(7), tmp_path, executor=executor)
    assert result.count("completed") == 7
    peak, _ = overlap_stats([o.worker for o in result.outcomes])
    assert peak <= 3
    with pytest.raises(XltError, match="cluster has 4"):
        run_sweep(_specs(1), tmp_path / "x", executor=RayExecutor(job=f"{HERE}:sleeping_job", gpus_per_job=8))


def test_a_raising_job_leaves_a_failed_record_while_the_others_complete(ray_cluster, tmp_path):
    specs = _specs(4)
    result = run_sweep(specs, tmp_path, executor=RayExecutor(job=f"{HERE}:raising_job"))
    assert [o.state for o in result.outcomes] == ["completed", "failed", "completed", "completed"]
    assert result.outcomes[1].attempts == 1   # a job's own exception is not retried
    failed = read_record(spec_record_path(tmp_path, specs[1]))
    assert failed["error"]["type"] == "ValueError" and "boom from seed 2" in failed["error"]["message"]
    assert "raising_job" in failed["error"]["traceback_tail"]
    assert [completed_record(tmp_path, s) is not None for s in specs] == [True, False, True, True]


def test_a_dying_worker_is_retried_then_recorded_failed(ray_cluster, tmp_path):
    markers = tmp_path / "markers"
    markers.mkdir()
    specs = _specs(3)
    seen, on_event = _events()
    executor = RayExecutor(job=f"{HERE}:dying_job", job_kwargs={"marker_dir": str(markers)}, retries=2)
    result = run_sweep(specs, tmp_path / "results", executor=executor, on_event=on_event)

    ok, dead, flaky = result.outcomes
    assert ok.state == "completed" and ok.attempts == 1
    assert dead.state == "failed" and dead.attempts == 3                 # 1 + 2 retries
    assert len(list(markers.glob("seed2-*"))) == 3                       # the process really ran 3 times
    assert flaky.state == "completed" and flaky.attempts == 2            # died once, then succeeded
    assert ("retrying", dead.spec.run_id) in seen and ("retrying", flaky.spec.run_id) in seen
    # Each lost attempt is noted for the summary, with its node when the driver heard where it started (a
    # process that dies at once may beat its own start notice).
    assert [x["attempt"] for x in dead.lost] == [1, 2, 3] and [x["attempt"] for x in flaky.lost] == [1]
    assert not ok.lost and result.lost == [dead, flaky]
    this_node = ray_cluster.get_runtime_context().get_node_id()
    assert {x["node_id"] for x in dead.lost + flaky.lost} <= {this_node, None}
    record = read_record(spec_record_path(tmp_path / "results", dead.spec))
    assert record["status"] == "failed" and "died" in record["error"]["message"]
    assert "3 attempt" in record["error"]["message"]


def test_two_models_two_seeds_of_tiny_checkpoints_then_resume_skips_all(ray_cluster, tmp_path, shared_data,
                                                                      tiny_deberta_v3, tiny_xlmr, isolated_home):
    """The real runner (as `xlt run` uses it) through `xlt sweep` on the module's Ray instance.

    Its workers cache features under the module's XLT_CACHE_DIR (a temp dir), never in ~/.cache/xlt.
    Would catch: a sweep job that runs something other than `xlt run`'s runner, records lost on their way
    back from the workers, or completed runs trained again on resume."""
    from xlt.cli import app

    args = ["sweep", "--models", f"{tiny_deberta_v3},{tiny_xlmr}", "--tasks", "xnli", "--seeds", "1,2",
            "--data-dir", str(shared_data), "--results-dir", str(tmp_path), "--max-train-samples", "16",
            "--max-eval-samples", "8", "--set", "epochs=1", "--set", "batch_size=8", "--set", "max_seq_len=32",
            "--set", "warmup_steps=0", "--set", "eval_batch_size=16", "--max-concurrent", "2"]
    first = CliRunner().invoke(app, args)
    assert first.exit_code == 0, first.output
    records = load_records(tmp_path)
    assert len(records.records) == 4 and not records.problems
    assert all(r["status"] == "completed" for r in records.records), json.dumps(
        [r.get("error") for r in records.records], indent=1)
    assert {(Path(r["spec"]["model"]).name, r["spec"]["seed"]) for r in records.records} == {
        (tiny_deberta_v3.name, 1), (tiny_deberta_v3.name, 2), (tiny_xlmr.name, 1), (tiny_xlmr.name, 2)}
    assert all(load_predictions(p) is not None for p in records.paths)
    for path, record in zip(records.paths, records.records):   # found again by its spec's run_id
        assert path.stem == record["run_id"] == RunSpec.from_dict(record["spec"]).run_id
        assert len(record["metrics"]["validation"]) == 15 and record["metrics"]["validation"]["sw"]["n"] == 8
    assert all(r["env"]["cuda_visible_devices"] in {"0", "1", "2", "3"} for r in records.records)
    output = " ".join(first.output.split())
    assert "4 completed" in output and "0 failed" in output and "note" not in output
    assert list(isolated_home.cache_dir.rglob("*.npz")), "the workers did not use the module's feature cache"

    mtimes = [p.stat().st_mtime_ns for p in records.paths]
    second = CliRunner().invoke(app, args)
    assert second.exit_code == 0, second.output
    assert "0 completed, 0 failed, 4 skipped" in " ".join(second.output.split())
    assert [p.stat().st_mtime_ns for p in records.paths] == mtimes
