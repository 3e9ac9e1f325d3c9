"""`xlt sweep` and `xlt bench schedule` through the CLI: dry run, model and usage errors, exit codes, signals.

The signal tests run `xlt sweep` in a subprocess (its own local Ray instance, CPU-only) with jobs that sleep:
SIGINT or SIGHUP once the first record has landed (that record stays intact, the message says how to resume),
and Ctrl-C while Ray is still starting. Each checks that no process the sweep started outlives it (Ray's agents
linger for a minute when the driver dies without shutting Ray down). The real-runner sweep on tiny checkpoints
is in test_schedule.py (it shares that module's Ray), the multi-node one in test_ray_cluster.py.
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

from tests.hygiene import isolated_home  # noqa: F401  (the fixture, used through pytestmark)
from xlt.cli import app
from xlt.errors import XltError
from xlt.results import load_predictions, load_records, new_record, read_record, spec_record_path, write_run
from xlt.spec import RunSpec

ROOT = Path(__file__).resolve().parents[1]
runner = CliRunner()

pytestmark = [pytest.mark.timeout(240), pytest.mark.usefixtures("isolated_home")]


def slow_job(spec: RunSpec, **_: object):
    """Seed 1 finishes at once; every other seed sleeps long enough to be interrupted."""
    import pandas as pd

    time.sleep(0.2 if spec.seed == 1 else 120)
    preds = pd.DataFrame({"split": ["validation"], "lang": ["en"], "idx": [0], "label": [1], "pred": [1]})
    return new_record(spec, status="completed", metrics={"validation": {"en": {"accuracy": 1.0, "n": 1}}}), preds


def _ok(spec: RunSpec) -> dict:
    return new_record(spec, status="completed", metrics={"validation": {"en": {"accuracy": 0.5, "n": 4}}})


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"   # a zombie is dead, only not yet reaped


def _processes() -> dict[int, tuple[int, int]]:
    """pid -> (parent pid, process group) for every process (Linux /proc)."""
    out = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            out[int(entry.name)] = (int(fields[1]), int(fields[2]))
    return out


def _started_by(pid: int) -> set[int]:
    """The process and everything it started (Ray's GCS, raylet, agents, workers): the processes of its group,
    and their descendants wherever they moved (Ray's workers start sessions of their own)."""
    table = _processes()
    found = {p for p, (_, group) in table.items() if group == pid} | {pid}
    while True:
        more = {p for p, (parent, _) in table.items() if parent in found} - found
        if not more:
            return found
        found |= more


def _wait_until_gone(pids: set[int], seconds: float = 20.0) -> set[int]:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        left = {p for p in pids if _alive(p)}
        if not left:
            return left
        time.sleep(0.5)
    return {p for p in pids if _alive(p)}


def _sweep_process(results: Path, seeds: str = "1-4", columns: int = 200) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(ROOT), COLUMNS=str(columns))
    env.pop("RAY_ADDRESS", None)
    cmd = [str(Path(sys.executable).with_name("xlt")), "sweep", "--models", "tiny", "--tasks", "xnli",
           "--seeds", seeds, "--results-dir", str(results), "--job", "tests.test_sweep_cli:slow_job"]
    return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)


def test_dry_run_lists_every_spec_and_which_are_done(tmp_path):
    args = ["sweep", "--models", "mdeberta-v3-base,xlm-roberta-base", "--tasks", "xnli", "--seeds", "1,2",
            "--set", "epochs=2", "--results-dir", str(tmp_path), "--dry-run"]
    from xlt.cli.run import build_run_spec

    done = build_run_spec("xlm-roberta-base", "xnli", 2, data_dir=None, overrides={"epochs": 2}, precision="auto",
                      impl="auto", max_train_samples=None, max_eval_samples=None)[0]   # what `xlt run` would write
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


def test_dry_run_reports_every_unknown_model_with_the_valid_names(tmp_path):
    args = ["sweep", "--models", "mdeberta-v3-bse,xlm-roberta-base,xlm-robreta-large", "--tasks", "xnli",
            "--results-dir", str(tmp_path), "--dry-run"]
    result = runner.invoke(app, args)
    assert isinstance(result.exception, XltError), result.output
    message = str(result.exception)
    assert "2 model name(s) cannot be resolved" in message
    assert "unknown model 'mdeberta-v3-bse'" in message and "did you mean mdeberta-v3-base" in message
    assert "unknown model 'xlm-robreta-large'" in message and "xlm-roberta-large" in message
    assert "registry names: mdeberta-v3-base," in message
    assert "to run" not in result.output


def test_an_unknown_model_exits_2_with_one_message_and_no_traceback(tmp_path, monkeypatch, capsys):
    from xlt.cli import main

    monkeypatch.setattr(sys, "argv", ["xlt", "sweep", "--models", "mdeberta-v3-bse", "--tasks", "xnli",
                                      "--results-dir", str(tmp_path), "--dry-run"])
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "unknown model 'mdeberta-v3-bse'" in err and "Traceback" not in err


def test_a_real_sweep_checks_model_names_before_running_anything(tmp_path):
    result = runner.invoke(app, ["sweep", "--models", "xlm-roberta-bse", "--tasks", "xnli", "--inline",
                                 "--results-dir", str(tmp_path)])
    assert isinstance(result.exception, XltError) and "unknown model 'xlm-roberta-bse'" in str(result.exception)
    assert not any(tmp_path.rglob("*.json"))


def test_dry_run_resolves_local_checkpoints_and_says_a_hub_id_is_not_checked_offline(tmp_path, tiny_xlmr):
    no_config = tmp_path / "not-a-checkpoint"
    no_config.mkdir()
    bad = runner.invoke(app, ["sweep", "--models", f"{tiny_xlmr},{no_config}", "--tasks", "xnli",
                              "--results-dir", str(tmp_path), "--dry-run"])
    assert isinstance(bad.exception, XltError)
    assert f"{no_config} is a directory but has no config.json" in str(bad.exception)
    assert str(tiny_xlmr) not in str(bad.exception)   # the real checkpoint resolved

    good = runner.invoke(app, ["sweep", "--models", f"{tiny_xlmr},someorg/some-encoder", "--tasks", "xnli",
                               "--results-dir", str(tmp_path), "--dry-run"])
    assert good.exit_code == 0, good.output
    output = " ".join(good.output.split())
    assert "0 done, 2 to run" in output
    assert "model someorg/some-encoder: hub id, not checked offline" in output


def _grid_spec(model: str, task: str, seed: int) -> RunSpec:
    """The spec a sweep builds (the data's identity included) for one (model, task, seed)."""
    from xlt.schedule import SweepConfig, build_grid

    return build_grid(SweepConfig(models=(model,), tasks=(task,), seeds=(seed,)))[0]


def test_inline_sweep_exits_non_zero_when_a_job_failed(tmp_path):
    result = runner.invoke(app, ["sweep", "--models", "tiny", "--tasks", "xnli", "--seeds", "1-3", "--inline",
                                 "--results-dir", str(tmp_path), "--job", "tests.test_schedule:raising_job"])
    assert result.exit_code == 1, result.output
    output = " ".join(result.output.split())
    assert "2 completed" in output and "1 failed" in output
    assert "boom from seed 2" in output
    failed = read_record(spec_record_path(tmp_path, _grid_spec("tiny", "xnli", 2)))
    assert failed["status"] == "failed" and "ValueError" in failed["error"]["traceback_tail"]


@pytest.mark.parametrize("target, signum, code", [("driver", signal.SIGINT, 130),
                                                  ("process-group", signal.SIGINT, 130),
                                                  ("driver", signal.SIGHUP, 129)])
def test_a_signal_cancels_running_jobs_keeps_completed_records_and_says_how_to_resume(tmp_path, target, signum,
                                                                                     code):
    """SIGINT to the driver only, to the whole process group as a terminal's Ctrl-C does (workers too), and SIGHUP
    (the terminal closed). Catches: a record lost or half-written, no resume hint, and Ray's processes left behind
    (SIGHUP used to end the driver at once, and Ray's agents then lingered for a minute)."""
    results = tmp_path / "results"
    proc = _sweep_process(results, columns=60)   # narrower than the resume command
    first = spec_record_path(results, _grid_spec("tiny", "xnli", 1))
    try:
        deadline = time.monotonic() + 150
        while not first.exists():
            assert proc.poll() is None, proc.communicate()[0]
            assert time.monotonic() < deadline, "the first record never landed"
            time.sleep(0.2)
        time.sleep(1.0)   # the other jobs are running now
        started = _started_by(proc.pid)
        if target == "driver":
            proc.send_signal(signum)
        else:
            os.killpg(proc.pid, signum)
        output, _ = proc.communicate(timeout=90)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
    assert proc.returncode == code, output
    assert "interrupted" in output and "Resume" in output and "Traceback" not in output
    if signum != signal.SIGINT:
        assert f"interrupted by {signal.Signals(signum).name}" in " ".join(output.split())
    assert "xlt sweep --models tiny --tasks xnli --seeds 1-4" in output
    assert f"--results-dir {results} --job" in output    # on one line: never wrapped mid-path
    assert len(started) > 3 and not _wait_until_gone(started), "Ray processes outlived the sweep"
    record = read_record(first)
    assert record["status"] == "completed" and record["metrics"]["validation"]["en"]["accuracy"] == 1.0
    assert load_predictions(first) is not None
    written = sorted(p.name for p in results.rglob("*") if p.is_file())
    assert written == [f"{record['run_id']}.json", f"{record['run_id']}.predictions.parquet"]

    # Re-running (as a dry run here) would do exactly the three missing specs.
    listing = runner.invoke(app, ["sweep", "--models", "tiny", "--tasks", "xnli", "--seeds", "1-4",
                                  "--results-dir", str(results), "--job", "tests.test_sweep_cli:slow_job",
                                  "--dry-run"])
    assert "1 done, 3 to run" in listing.output


def test_ctrl_c_while_ray_starts_stops_cleanly_with_exit_130(tmp_path):
    """Ctrl-C (to the whole process group, as a terminal sends it) while `ray.init` is still starting Ray.
    Catches: Ray's traceback or a silent exit instead of one message, the sweep going on regardless, and Ray's
    half-started processes left running."""
    results = tmp_path / "results"
    proc = _sweep_process(results, seeds="1-2")
    try:
        deadline = time.monotonic() + 120
        while True:   # the GCS is Ray's first process: from here until ray.init returns, Ray is starting
            assert proc.poll() is None, proc.communicate()[0]
            assert time.monotonic() < deadline, "Ray never started"
            started = _started_by(proc.pid)
            if any("gcs_server" in Path(f"/proc/{p}/cmdline").read_bytes().decode(errors="replace")
                   for p in started if _alive(p)):
                break
            time.sleep(0.05)
        os.killpg(proc.pid, signal.SIGINT)
        output, _ = proc.communicate(timeout=90)
        started |= _started_by(proc.pid)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
    assert proc.returncode == 130, output
    assert "Traceback" not in output and "KeyboardInterrupt" not in output, output
    text = " ".join(output.split())
    assert "interrupted: no job had started" in text and "Resume" in text, output
    assert not results.exists() or not any(results.rglob("*.json"))
    assert not _wait_until_gone(started), "Ray processes outlived the sweep"


def test_bench_schedule_writes_its_json(tmp_path):
    import ray

    ray.shutdown()   # the benchmark starts its own local instance (a no-op when none is running)
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


def test_sweep_takes_languages_and_display_names_like_xlt_run(tmp_path, tiny_deberta_v3, shared_data, monkeypatch):
    """Would catch: sweep specs that differ from `xlt run`'s for the same command (a language subset or the
    data's identity missing), or a display name that is lost on the way to the record."""
    monkeypatch.setenv("XLT_CACHE_DIR", str(tmp_path / "features"))
    args = ["sweep", "--models", str(tiny_deberta_v3), "--tasks", "xnli", "--seeds", "1", "--inline",
            "--data-dir", str(shared_data), "--results-dir", str(tmp_path), "--languages", "sw,fr",
            "--name", f"{tiny_deberta_v3}=tiny-v3", "--max-train-samples", "16", "--max-eval-samples", "8",
            "--set", "epochs=1", "--set", "batch_size=8", "--set", "max_seq_len=32"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    records = load_records(tmp_path).records
    assert len(records) == 1
    record = records[0]
    assert record["model"]["display_name"] == "tiny-v3" and record["model"]["hub_id"] == str(tiny_deberta_v3)
    assert list(record["metrics"]["validation"]) == ["en", "fr", "sw"]          # task order, source included
    from xlt.cli.run import build_run_spec

    same = build_run_spec(str(tiny_deberta_v3), "xnli", 1, data_dir=shared_data, precision="auto", impl="auto",
                      overrides={"epochs": 1, "batch_size": 8, "max_seq_len": 32}, max_train_samples=16,
                      max_eval_samples=8, languages=("sw", "fr"))[0]
    assert record["run_id"] == same.run_id and same.data_revision.startswith("local-sha256:")
    bad = runner.invoke(app, [*args[:-6], "--name", "no-equals-sign"])
    assert isinstance(bad.exception, XltError) and "MODEL=NAME" in str(bad.exception)   # main() exits 2 on it
