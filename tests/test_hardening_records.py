"""Issue 15, records side: bad records (15.9), predictions paired with their record (15.4), litter of killed
writes (15.12) and user text that looks like markup or matplotlib math (15.10). Hand-made records only: no
training here. Each test is named after the defect it would catch."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

import xlt.results as results
from tests import factories
from xlt.atomic import STALE_AFTER_S, atomic_path, remove_stale_temps
from xlt.cli import app
from xlt.report import build_table
from xlt.results import (RecordError, load_predictions, load_records, new_record, predictions_path, read_record,
                         record_problem, write_run)

ROOT = Path(__file__).resolve().parents[1]
LANGS = ["en", "fr", "de"]
TASK = {"name": "xnli", "type": "pair-classification", "languages": LANGS, "source_lang": "en",
        "primary_metric": "accuracy", "metrics": ["accuracy"]}
cli = CliRunner()


def invoke(*args):
    return cli.invoke(app, [str(a) for a in args])


def preds_frame(acc: float, n: int = 200, seed: int = 0) -> pd.DataFrame:
    """Predictions on the same examples for every model (labels from a fixed seed), `acc` of them right."""
    rows = []
    for i, lang in enumerate(LANGS):
        label = np.random.default_rng(100 + i).integers(0, 3, n)
        right = np.random.default_rng(seed * 10 + i).random(n) < acc
        rows.append(pd.DataFrame({"split": "test", "lang": lang, "idx": np.arange(n), "label": label,
                                  "pred": np.where(right, label, (label + 1) % 3)}))
    return pd.concat(rows, ignore_index=True)


def write(results_dir, model, preds: pd.DataFrame | None = None, seed: int = 1, **model_block):
    spec = factories.spec(model, "xnli", seed=seed)
    metrics = {}
    if preds is not None:
        for lang, sub in preds.groupby("lang"):
            metrics[lang] = {"accuracy": float((sub["label"] == sub["pred"]).mean()), "n": len(sub)}
    else:
        metrics = {lang: {"accuracy": 0.5, "n": 10} for lang in LANGS}
    record = new_record(spec, status="completed", model={"name": model, **model_block}, task=TASK,
                        metrics={"test": metrics})
    record, preds = factories.as_written(record, preds)
    return write_run(results_dir, record, preds), record


# --- 15.9: one bad record never breaks a report ------------------------------------------------------------

def _nested(depth: int) -> str:
    return "[" * depth + "]" * depth


BAD_RECORDS = {
    "created_at_number": (lambda r: {**r, "created_at": 12345}, "created_at"),
    "model_null": (lambda r: {**r, "model": None}, "model"),
    "deep_nesting": (lambda r: {**r, "env": {"a": json.loads(_nested(200))}}, "env.a"),
    "json_too_deep_to_parse": (lambda r: {**r, "env": "DEEP"}, "nested too deeply"),
    "accuracy_in_percent": (lambda r: {**r, "metrics": {"test": {"en": {"accuracy": 57.3, "n": 10}}}},
                            "metrics.test.en.accuracy"),
    "nan_metric": (lambda r: {**r, "metrics": {"test": {"en": {"accuracy": float("nan"), "n": 10}}}},
                   "metrics.test.en.accuracy"),
    "infinite_metric": (lambda r: {**r, "metrics": {"test": {"en": {"accuracy": float("inf"), "n": 10}}}},
                        "metrics.test.en.accuracy"),
    "unknown_status": (lambda r: {**r, "status": "finished-ish"}, "status"),
    "seed_as_text": (lambda r: {**r, "spec": {**r["spec"], "seed": "1"}}, "spec.seed"),
    "negative_count": (lambda r: {**r, "metrics": {"test": {"en": {"accuracy": 0.5, "n": -3}}}},
                       "metrics.test.en.n"),
}


@pytest.mark.parametrize("kind", sorted(BAD_RECORDS))
def test_a_bad_record_is_skipped_with_its_file_and_field_by_every_report_command(tmp_path, kind):
    """Would catch: a record with an impossible value crashing `report ...`/`leaderboard build`, or being
    shown (accuracy 57.3 as 5730 %), instead of being skipped with a warning naming file and field."""
    good_path, good = write(tmp_path, "good-model", preds_frame(0.7))
    change, field = BAD_RECORDS[kind]
    bad = change(json.loads(good_path.read_text()))
    bad["run_id"] = "bad000000000"
    bad_path = good_path.with_name("bad000000000.json")
    bad_path.write_text(json.dumps(bad))
    if kind == "json_too_deep_to_parse":   # deeper than Python's JSON parser can go at all
        bad_path.write_text(bad_path.read_text().replace('"DEEP"', _nested(100_000)))
        field = "nested too deeply"
    else:
        field = f"field {field}"
    with pytest.raises(RecordError, match=f"{bad_path.name}.*{field}"):
        read_record(bad_path)
    loaded = load_records(tmp_path)
    assert [r["run_id"] for r in loaded.records] == [good["run_id"]] and len(loaded.problems) == 1

    commands = [("report", "runs"), ("report", "tables", "--task", "xnli", "--no-reference"),
                ("report", "tables", "--task", "xnli", "--format", "md"), ("report", "summary", "--tasks", "xnli"),
                ("report", "show", good["run_id"]), ("leaderboard", "build", "--output", tmp_path / "board")]
    for command in commands:
        res = invoke(*command, "--results-dir", tmp_path)
        assert res.exit_code == 0, (command, res.output)
        assert "Traceback" not in res.output
        assert bad_path.name in res.stderr and field in res.stderr, (command, res.stderr)
        assert "good-model" in res.stdout or command[0] == "leaderboard"
    assert "good-model" in (tmp_path / "board" / "index.html").read_text()
    assert bad_path.exists()   # skipped, never deleted


def test_record_problem_is_the_one_check_and_accepts_what_the_runner_writes(tmp_path):
    """Would catch: the schema refusing the records xlt itself writes (failed ones included)."""
    _, good = write(tmp_path, "m", preds_frame(0.6))
    assert record_problem(good) is None
    failed = new_record(factories.spec("m", "xnli"), status="failed",
                        error={"type": "XltError", "message": "x", "traceback_tail": "", "stage": "train"})
    assert record_problem(failed) is None
    assert "metrics.test.en" in record_problem({**good, "metrics": {"test": {"en": "high"}}})
    from xlt.report import usable_records   # reports use the same check for records built in memory
    hand = results.Records(records=[good, {**good, "model": None}], paths=[Path("a.json"), Path("b.json")])
    kept = usable_records(hand)
    assert kept.paths == [Path("a.json")] and "b.json: invalid record: field model" in kept.problems[0]


# --- 15.4: predictions belong to their record -----------------------------------------------------------------

def test_predictions_that_do_not_match_their_record_are_left_out_of_significance_and_warned_once(tmp_path):
    """Would catch: a record paired with other predictions (sha256 differs) still changing significance marks."""
    write(tmp_path, "xlm-roberta-base", preds_frame(0.55, seed=1))
    other_path, other = write(tmp_path, "other", preds_frame(0.80, seed=2))
    table = build_table("xnli", load_records(tmp_path), reference=False)
    assert table.deltas[0].significance and table.deltas[0].significance["avg"].significant

    predictions_path(other_path).write_bytes(results.predictions_to_bytes(preds_frame(0.80, seed=3)))
    with pytest.raises(results.PredictionsMismatch, match=predictions_path(other_path).name):
        load_predictions(other_path)
    table = build_table("xnli", load_records(tmp_path), reference=False)
    assert table.deltas[0].significance == {}
    assert any("do not match its record" in note for note in table.notes)
    res = invoke("report", "tables", "--task", "xnli", "--no-reference", "--results-dir", tmp_path)
    assert res.exit_code == 0, res.output
    assert res.stderr.count(predictions_path(other_path).name) == 1
    assert "left out of significance tests" in res.stderr


def _kill_during_write_run(monkeypatch, when: str):
    """Make write_run die like a killed process: before the record is written, or right after it."""
    real = results._atomic_write

    def atomic_write(path, data):
        if path.suffix == ".json" and when == "before record":
            raise SystemExit("killed")
        real(path, data)
        if path.suffix == ".json" and when == "after record":
            raise SystemExit("killed")

    monkeypatch.setattr(results, "_atomic_write", atomic_write)


@pytest.mark.parametrize("when", ["before record", "after record"])
def test_a_rerun_killed_between_the_two_writes_leaves_a_consistent_pair(tmp_path, monkeypatch, when):
    """Would catch: a forced re-run killed between writing predictions and record leaving the old record beside
    the new predictions (or the new record beside the old ones): the pair must still match, nothing lost."""
    first, second = preds_frame(0.6, seed=1), preds_frame(0.7, seed=2)
    path, _ = write(tmp_path, "m", first)
    _kill_during_write_run(monkeypatch, when)
    with pytest.raises(SystemExit):
        write(tmp_path, "m", second)
    monkeypatch.undo()
    record = read_record(path)
    expected = first if when == "before record" else second
    assert record["metrics"]["test"]["en"]["accuracy"] == \
        pytest.approx((expected[expected.lang == "en"]["label"] == expected[expected.lang == "en"]["pred"]).mean())
    written = lambda preds: factories.as_written({"task": TASK}, preds)[1]   # noqa: E731  (with statistics)
    pd.testing.assert_frame_equal(load_predictions(path), written(expected))
    write(tmp_path, "m", second)          # the next write of the run leaves exactly the two files
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name, predictions_path(path).name]
    pd.testing.assert_frame_equal(load_predictions(path), written(second))


def test_records_without_a_hash_still_get_their_predictions(tmp_path):
    """Would catch: hand-made or older records (no predictions.sha256) losing their predictions."""
    path, record = write(tmp_path, "m")
    frame = preds_frame(0.5)
    frame.to_parquet(predictions_path(path), index=False)
    assert "predictions" not in read_record(path)
    pd.testing.assert_frame_equal(load_predictions(path), frame)


# --- 15.12: litter of killed writes ---------------------------------------------------------------------------

def test_a_writer_killed_mid_write_leaves_litter_that_the_next_write_removes(tmp_path):
    """Would catch: `kill -9` during a write leaving `.<id>.json.*.tmp` files for ever (and reports tripping
    on them)."""
    path, record = write(tmp_path, "m", preds_frame(0.6))
    code = ("import sys, time; from xlt.atomic import atomic_path\n"
            "with atomic_path(sys.argv[1]) as tmp:\n"
            "    tmp.write_text('{\"half\": '); print('writing', flush=True); time.sleep(120)\n")
    proc = subprocess.Popen([sys.executable, "-c", code, str(path)], stdout=subprocess.PIPE, text=True,
                            cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.stdout.readline().strip() == "writing"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    litter = [p for p in path.parent.iterdir() if p.name.endswith(".tmp")]
    assert len(litter) == 1 and litter[0].name.startswith(f".{path.name}.")
    loaded = load_records(tmp_path)
    assert loaded.problems == [] and len(loaded.records) == 1   # reports never read temp files
    assert invoke("report", "runs", "--results-dir", tmp_path).stderr == ""

    write(tmp_path, "m", preds_frame(0.6))
    assert not litter[0].exists()


def test_only_stale_temp_files_are_removed(tmp_path):
    """Would catch: cleaning away the temp file of a write still in progress (this process, or a young file
    of another machine), or keeping litter for ever."""
    def make(name, age=0.0):
        p = tmp_path / name
        p.write_text("x")
        os.utime(p, (time.time() - age, time.time() - age))
        return p

    from xlt.atomic import _HOST
    live = make(f".a.json.{_HOST}-{os.getpid()}.0123456789ab.tmp")
    other_host = make(".a.json.abcdef-1.0123456789ab.tmp")
    other_host_old = make(".b.json.abcdef-1.0123456789ab.tmp", age=STALE_AFTER_S + 60)
    legacy_young = make(".c.json.0123456789ab.tmp")
    legacy_old = make(".d.json.0123456789ab.tmp", age=120)
    not_ours = make(".notes.tmp", age=10 * STALE_AFTER_S)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    dead_writer = make(f".e.json.{_HOST}-{dead.pid}.0123456789ab.tmp")
    removed = set(remove_stale_temps(tmp_path))
    assert removed == {other_host_old, legacy_old, dead_writer}
    assert all(p.exists() for p in (live, other_host, legacy_young, not_ours))
    with atomic_path(tmp_path / "f.json") as tmp:   # every atomic write cleans its folder first
        tmp.write_text("{}")
    assert (tmp_path / "f.json").read_text() == "{}"


# --- 15.10: text that looks like markup or math -----------------------------------------------------------------

@pytest.mark.parametrize("name", ["[/x] model", "$\\frac{1}$ model", "[bold]x[/bold] [/] $x"])
def test_model_names_with_markup_or_math_never_break_reports_or_the_leaderboard(tmp_path, name):
    """Would catch: rich reading `[/x]` in a model name as a closing tag (MarkupError) and matplotlib reading
    `$\\frac{1}$` as math (ParseFatalException in `leaderboard build`)."""
    write(tmp_path, "xlm-roberta-base", preds_frame(0.55, seed=1))
    _, record = write(tmp_path, "/ckpts/local-model", preds_frame(0.7, seed=2), display_name=name)
    for command in [("report", "runs"), ("report", "tables", "--task", "xnli"), ("report", "summary"),
                    ("report", "show", record["run_id"]), ("leaderboard", "build", "--output", tmp_path / "b")]:
        res = invoke(*command, "--results-dir", tmp_path)
        assert res.exit_code == 0, (command, res.output)
        if command[0] == "report":
            assert name in res.stdout.replace("\n", ""), (command, res.stdout)
    assert (tmp_path / "b" / "xnli.svg").is_file() and name in (tmp_path / "b" / "index.html").read_text() \
        .replace("&lt;", "<").replace("&gt;", ">")


def test_a_yaml_key_that_looks_like_markup_is_printed_as_text(tmp_path):
    """Would catch: `xlt tasks validate` crashing on its own message about a key named `[/x]`."""
    bad = tmp_path / "mytask.yaml"
    bad.write_text((ROOT / "tasks" / "xnli.yaml").read_text().replace("name: xnli", "name: mytask")
                   + "\n'[/x]': 1\n")
    res = invoke("tasks", "validate", bad)
    assert res.exit_code == 1 and "unknown key '[/x]'" in res.output and "Traceback" not in res.output
    res = invoke("run", "--model", "[/x]", "--task", "[/x]")
    assert res.exit_code == 2 and "unknown task '[/x]'" in res.output and "Traceback" not in res.output
