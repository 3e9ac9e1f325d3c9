"""`xlt sweep` and `xlt bench schedule` through the CLI: dry run, usage errors, exit codes, Ctrl-C.

The Ctrl-C test runs `xlt sweep` in a subprocess (its own local Ray instance, CPU-only) with jobs that sleep,
sends SIGINT once the first record has landed, and checks that record is intact and the message says how to
resume. The real-runner sweep on tiny checkpoints is in test_schedule.py (it shares that module's Ray).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from xlt.cli import app
from xlt.errors import XltError
from xlt.results import load_predictions, new_record, read_record, spec_record_path, write_run
from xlt.spec import RunSpec

ROOT = Path(__file__).resolve().parents[1]
runner = CliRunner()

pytestmark = pytest.mark.timeout(240)


def slow_job(spec: RunSpec, **_: object):
    """Seed 1 finishes at once; every other seed sleeps long enough to be interrupted."""
    import pandas as pd

    time.sleep(0.2 if spec.seed == 1 else 120)
    preds = pd.DataFrame({"split": ["validation"], "lang": ["en"], "idx": [0], "label": [1], "pred": [1]})
    return new_record(spec, status="completed", metrics={"validation": {"en": {"accuracy": 1.0, "n": 1}}}), preds


def _ok(spec: RunSpec) -> dict:
    return new_record(spec, status="completed", metrics={"validation": {"en": {"accuracy": 0.5, "n": 4}}})


def test_dry_run_lists_every_spec_and_which_are_done(tmp_path):
    args = ["sweep", "--models", "mdeberta-v3-base,xlm-roberta-base", "--tasks", "xnli", "--seeds", "1,2",
            "--set", "epochs=2", "--results-dir", str(tmp_path), "--dry-run"]
    done = RunSpec.create("xlm-roberta-base", "xnli", seed=2, overrides={"epochs": 2})
    write_run(tmp_path, _ok(done))
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "1 done, 3 to run" in result.output
    assert done.run_id in result.output and "4 spec(s)" in result.output
    forced = runner.invoke(app, [*args, "--force"])
    assert "0 done, 4 to run" in forced.output


def test_sweep_file_with_command_line_seeds_on_top(tmp_path):
    grid = tmp_path / "grid.yaml"
    grid.write_text("models: [xlm-roberta-base]\ntasks: [xnli, pawsx]\nseeds: [1, 2, 3]\n"
                    "task_overrides: {pawsx: {lr: 1e-5}}\n")
    result = runner.invoke(app, ["sweep", str(grid), "--seeds", "7", "--results-dir", str(tmp_path), "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "2 spec(s)" in result.output and "1e-05" in result.output and "2e-05" in result.output


@pytest.mark.parametrize("args, message", [
    (["--tasks", "xnli"], "at least one model"),
    (["--models", "m", "--tasks", "xnli", "--set", "lr"], "NAME=VALUE"),
    (["--models", "m", "--tasks", "xnli", "--set", "learning_rate=1"], "unknown hyperparameter"),
    (["--models", "m", "--tasks", "no-such-task"], "no-such-task"),
    (["--models", "m", "--tasks", "xnli", "--seeds", "a-b"], "not an integer"),
])
def test_usage_errors_are_xlt_errors_naming_the_problem(tmp_path, args, message):
    result = runner.invoke(app, ["sweep", *args, "--results-dir", str(tmp_path), "--dry-run"])
    assert isinstance(result.exception, XltError), result.output
    assert message in str(result.exception)


def test_inline_sweep_exits_non_zero_when_a_job_failed(tmp_path):
    result = runner.invoke(app, ["sweep", "--models", "tiny", "--tasks", "xnli", "--seeds", "1-3", "--inline",
                                 "--results-dir", str(tmp_path), "--job", "tests.test_schedule:raising_job"])
    assert result.exit_code == 1, result.output
    output = " ".join(result.output.split())
    assert "2 completed" in output and "1 failed" in output
    assert "boom from seed 2" in output
    failed = read_record(spec_record_path(tmp_path, RunSpec.create("tiny", "xnli", seed=2)))
    assert failed["status"] == "failed" and "ValueError" in failed["error"]["traceback_tail"]


@pytest.mark.parametrize("target", ["driver", "process-group"])
def test_ctrl_c_cancels_running_jobs_keeps_completed_records_and_says_how_to_resume(tmp_path, target):
    """SIGINT to the driver only, and to the whole process group as a terminal's Ctrl-C does (workers too)."""
    results = tmp_path / "results"
    env = dict(os.environ, PYTHONPATH=str(ROOT), COLUMNS="200")
    env.pop("RAY_ADDRESS", None)
    cmd = [str(Path(sys.executable).with_name("xlt")), "sweep", "--models", "tiny", "--tasks", "xnli",
           "--seeds", "1-4", "--results-dir", str(results), "--job", "tests.test_sweep_cli:slow_job"]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    first = spec_record_path(results, RunSpec.create("tiny", "xnli", seed=1))
    try:
        deadline = time.monotonic() + 150
        while not first.exists():
            assert proc.poll() is None, proc.communicate()[0]
            assert time.monotonic() < deadline, "the first record never landed"
            time.sleep(0.2)
        time.sleep(1.0)   # the other jobs are running now
        if target == "driver":
            proc.send_signal(signal.SIGINT)
        else:
            os.killpg(proc.pid, signal.SIGINT)
        output, _ = proc.communicate(timeout=90)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
    assert proc.returncode == 130, output
    assert "interrupted" in output and "Resume" in output
    assert "xlt sweep --models tiny --tasks xnli --seeds 1-4" in output
    record = read_record(first)
    assert record["status"] == "completed" and record["metrics"]["validation"]["en"]["accuracy"] == 1.0
    assert load_predictions(first) is not None
    written = sorted(p.name for p in results.rglob("*") if p.is_file())
    assert written == [f"{record['run_id']}.json", f"{record['run_id']}.predictions.parquet"]

    # Re-running (as a dry run here) would do exactly the three missing specs.
    listing = runner.invoke(app, ["sweep", "--models", "tiny", "--tasks", "xnli", "--seeds", "1-4",
                                  "--results-dir", str(results), "--dry-run"])
    assert "1 done, 3 to run" in listing.output


def test_bench_schedule_writes_its_json(tmp_path):
    pytest.importorskip("ray")
    import ray

    if ray.is_initialized():
        pytest.skip("another test left Ray running in this process")
    out = tmp_path / "bench.json"
    result = runner.invoke(app, ["bench", "schedule", "--jobs", "4", "--gpus", "2", "--job-seconds", "0.2",
                                 "--json", str(out)])
    assert result.exit_code == 0, result.output
    data = json.loads(out.read_text())
    for key in ("jobs", "gpus", "job_seconds", "makespan_s", "ideal_s", "overhead_ratio", "startup_s"):
        assert key in data
    assert (data["jobs"], data["gpus"], data["ideal_s"], data["completed"]) == (4, 2, 0.4, 4)
    assert data["max_concurrent_observed"] <= 2 and data["device_collisions"] == 0
    assert "makespan" in result.output and "ratio" in result.output
