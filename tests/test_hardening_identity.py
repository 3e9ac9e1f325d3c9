"""Issue 26, the run-identity and report cases: one run at a time per run id, reports that verify a record before
they show it, only the task's languages in a table, a subset run's gap kept apart, typed hyperparameters."""

import hashlib
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from tests import factories
from tests.test_hardening_records import LANGS, TASK, preds_frame, write
from xlt.cli import app
from xlt.report import build_table
from xlt.results import load_records, predictions_path, predictions_to_bytes, record_path
from xlt.runlock import run_lock

ROOT = Path(__file__).resolve().parents[1]
cli = CliRunner()

HOLDER = textwrap.dedent("""
    import sys, time
    from xlt.runlock import run_lock
    with run_lock(sys.argv[1], "abc"):
        print("HOLDING", flush=True)
        time.sleep(60)
""")


def test_two_runs_of_the_same_spec_at_once_the_second_names_the_holder_and_stops(tmp_path, tiny_deberta_v3,
                                                                                   shared_data):
    """Would catch: two processes sharing one checkpoint folder (after kills and --resume, a record whose
    selection contradicts its metrics). The lock goes with the process, kill -9 included."""
    results = tmp_path / "results"
    args = ["run", "--model", str(tiny_deberta_v3), "--task", "xnli", "--data-dir", str(shared_data),
            "--results-dir", str(results), "--max-train-samples", "8", "--max-eval-samples", "4", "--epochs", "1",
            "--languages", "en", "-q"]
    spec_id = json.loads(cli.invoke(app, [*args, "--dry-run", "--json"]).stdout)["run_id"]
    folder = results / "checkpoints" / "xnli" / tiny_deberta_v3.name / spec_id
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(folder)], stdout=subprocess.PIPE, text=True,
                              cwd=ROOT)
    try:
        assert holder.stdout.readline().strip() == "HOLDING"
        second = cli.invoke(app, args)
        assert second.exit_code == 2 and f"run {spec_id} is already running (pid {holder.pid}" in second.output
        assert not results.joinpath("runs").exists()
    finally:
        holder.kill()
        holder.wait(timeout=30)
    third = cli.invoke(app, args)                      # the holder died: its lock died with it
    assert third.exit_code == 0, third.output


TAKER = "import sys; from xlt.runlock import run_lock\nwith run_lock(sys.argv[1], 'r1'): print('TOOK')"


def test_the_lock_is_released_on_any_exit(tmp_path):
    """Would catch: a lock left behind when the run ends by an exception (a failed run would block the next)."""
    def take():
        return subprocess.run([sys.executable, "-c", TAKER, str(tmp_path)], capture_output=True, text=True,
                              cwd=ROOT, timeout=60)

    with pytest.raises(ValueError):
        with run_lock(tmp_path, "r1"):
            refused = take()
            assert refused.returncode != 0 and "run r1 is already running" in refused.stderr
            raise ValueError("the run fails")
    assert take().stdout.strip() == "TOOK"


def test_predictions_rewritten_with_a_matching_sha256_are_caught_against_the_metrics(tmp_path):
    """Would catch: a report trusting predictions whose sha256 was updated in the record but which contradict the
    record's metrics (every prediction of one language flipped)."""
    path, record = write(tmp_path, "m", preds_frame(0.6))
    frame = factories.as_written(record, preds_frame(0.6))[1]
    wrong = frame["lang"] == LANGS[1]
    frame.loc[wrong, "pred"] = (frame.loc[wrong, "label"] + 1) % 3
    frame.loc[wrong, "stat_correct"] = 0.0
    data = predictions_to_bytes(frame)
    predictions_path(path).write_bytes(data)
    stored = json.loads(path.read_text())
    stored["predictions"]["sha256"] = hashlib.sha256(data).hexdigest()
    path.write_text(json.dumps(stored))
    loaded = load_records(tmp_path)
    assert loaded.records == [] and f"field metrics.test.{LANGS[1]}.accuracy" in loaded.problems[0]
    assert "its predictions give 0" in loaded.problems[0]


def test_a_record_filed_under_another_task_is_left_out(tmp_path):
    """Would catch: a record whose spec says task `xnli` but which sits in another task's folder being shown in
    that task's table."""
    path, record = write(tmp_path, "m", preds_frame(0.6))
    moved = record_path(tmp_path, "pawsx", path.parent.name, record["run_id"])
    moved.parent.mkdir(parents=True)
    path.rename(moved)
    predictions_path(path).rename(predictions_path(moved))
    loaded = load_records(tmp_path)
    assert loaded.records == [] and "its spec (task 'xnli'" in loaded.problems[0]
    assert build_table("pawsx", loaded, reference=False).rows == []


def test_a_language_that_is_not_the_tasks_never_enters_the_table_or_its_gap(tmp_path):
    """Would catch: a record with metrics for a language its task does not have adding a column and moving the
    average and the gap."""
    frame = preds_frame(0.6)
    extra = frame[frame["lang"] == LANGS[1]].assign(lang="xx")
    write(tmp_path, "m", pd.concat([frame, extra], ignore_index=True))
    table = build_table("xnli", load_records(tmp_path), reference=False)
    assert "xx" not in table.languages and table.languages == LANGS
    row = table.rows[0]
    assert "xx" not in row.cells and any("Left out: xx" in note for note in table.notes)


def test_a_subset_runs_gap_is_marked_and_never_compared_with_a_full_run(tmp_path):
    """Would catch: a `--languages` subset run's gap (over fewer languages) bolded against or subtracted from the
    gap of a run of every language."""
    full, _ = write(tmp_path, "xlm-roberta-base", preds_frame(0.6))
    part = preds_frame(0.7, seed=3)
    part = part[part["lang"].isin(LANGS[:2])]
    spec = factories.spec("subset-model", "xnli", languages=tuple(LANGS[:2]))
    metrics = {lang: {"accuracy": float((sub["label"] == sub["pred"]).mean()), "n": len(sub)}
               for lang, sub in part.groupby("lang")}
    from xlt.results import new_record, write_run

    record = new_record(spec, status="completed", model={"name": "subset-model"}, task=TASK,
                        metrics={"test": metrics})
    write_run(tmp_path, *factories.as_written(record, part))
    table = build_table("xnli", load_records(tmp_path), reference=False)
    subset = next(r for r in table.rows if r.model.startswith("subset-model"))
    assert subset.only_languages == tuple(LANGS[:2]) and "gap" in subset.cells and not table.is_best(subset, "gap")
    (delta,) = table.deltas
    assert "gap" not in delta.cells and LANGS[0] in delta.cells
    assert any("evaluated on" in note and "never bolded or compared" in note for note in table.notes)


def test_a_string_hyperparameter_is_refused_by_the_record_schema(tmp_path):
    """Would catch: lr "2e-5" (a string) read as another configuration, splitting one model into two rows."""
    path, _ = write(tmp_path, "m", preds_frame(0.6))
    stored = json.loads(path.read_text())
    stored["spec"]["hparams"]["lr"] = "2e-5"
    path.write_text(json.dumps(stored))
    loaded = load_records(tmp_path)
    assert loaded.records == [] and "field spec.hparams.lr" in loaded.problems[0]


def test_an_empty_languages_option_is_refused():
    result = cli.invoke(app, ["run", "--model", "xlm-roberta-base", "--task", "xnli", "--languages", "",
                              "--dry-run"])
    assert result.exit_code == 2 and "empty language" in result.output
