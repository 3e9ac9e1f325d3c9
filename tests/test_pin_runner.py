"""Pins on the runner's split/language routing, end to end on the tiny DeBERTa-v3 checkpoint: every
(split, language) is evaluated on its own file, selection uses the source language's dev file only, and a
missing file is recorded as skipped rather than filled with another split's data."""

from __future__ import annotations

import textwrap

import pandas as pd
import pytest

# Imports from xlt in one place.
from tests import factories
from xlt import evaluate as xeval
from xlt import runner
from xlt.results import spec_record_path
from xlt.spec import RunSpec

SIZES = {("train", "en"): 32, ("validation", "en"): 24, ("test", "en"): 20, ("validation", "fr"): 18,
         ("test", "fr"): 16}


pytestmark = pytest.mark.usefixtures("one_torch_thread")   # tests/conftest.py


@pytest.fixture
def pin_task(tmp_path, shared_data):
    """A two-language task whose files are disjoint slices of real XNLI data, each of a different size."""
    tasks = tmp_path / "tasks"
    tasks.mkdir()
    (tasks / "pin.yaml").write_text(textwrap.dedent("""\
        name: pin
        type: pair-classification
        version: 1
        labels: [entailment, neutral, contradiction]
        source_lang: en
        languages: [en, fr]
        eval_splits: [test, validation]
        metrics: [accuracy, macro_f1]
        source:
          hub: facebook/xnli
          config: "{lang}"
          revision: b8dd5d7af51114dbda02c0e3f6133f332186418e
          columns: {text_a: premise, text_b: hypothesis, label: label}
        """))
    read = lambda name: pd.read_csv(shared_data / "xnli" / name, sep="\t", quoting=3, dtype=str,   # noqa: E731
                                    keep_default_na=False)
    sources = {"en": read("validation-en.tsv"), "fr": read("validation-fr.tsv")}
    data = tmp_path / "data" / "pin"
    data.mkdir(parents=True)
    start = {"validation": 0, "test": 1000}
    read("train-en.tsv").head(SIZES["train", "en"]).to_csv(data / "train-en.tsv", sep="\t", index=False)
    for (split, lang), n in SIZES.items():
        if split != "train":
            sources[lang].iloc[start[split]:start[split] + n].to_csv(data / f"{split}-{lang}.tsv", sep="\t",
                                                                     index=False)
    return tasks, tmp_path / "data"


def _execute(model, tasks, data, tmp_path):
    spec = factories.spec(str(model), "pin", seed=1, data_source="local",
                          overrides=dict(epochs=1, batch_size=16, max_seq_len=40, lr=1e-3, eval_every=1))
    out = runner.execute(spec, data_dir=data, tasks_dir=tasks, cache_dir=tmp_path / "features", quiet=True)
    assert out.record["status"] == "completed", out.record["error"]
    return out


# --------------------------------------------------------------------------------------------------
# The read-data step alone (no model): what each (split, language) holds


def _read(pin_task, **spec_fields):
    from xlt.tasks import get_task

    tasks, data = pin_task
    spec = RunSpec("m", "pin", data_source="local", **spec_fields)
    events = []
    st = runner.RunState(spec=spec, emit=events.append, data_dir=data, tasks_dir=tasks)
    st.task, st.ddir = get_task("pin", tasks), data
    runner.read_data(st)
    return st, events


def test_read_data_gives_each_split_and_language_its_own_rows_and_the_dev_split_once(pin_task):
    """Catches the source dev split loaded twice (or another split served from it), the sample limits applied
    to the wrong splits, and the record's data section saying something else than what was read."""
    st, _ = _read(pin_task, max_train_samples=10, max_eval_samples=17)
    assert sorted(st.eval_data) == [("test", "en"), ("test", "fr"), ("validation", "en"), ("validation", "fr")]
    assert st.eval_data[("validation", "en")] is st.dev
    assert len(st.train) == 10 and (st.train.split, st.train.lang) == ("train", "en")
    assert (st.dev.split, st.dev.lang, len(st.dev)) == ("validation", "en", 17)
    for (split, lang), got in st.eval_data.items():
        assert (got.split, got.lang, len(got)) == (split, lang, min(17, SIZES[split, lang]))
    info = st.info["data"]
    assert info["train"]["n"] == 10 and info["selection"]["n"] == 17 and info["evaluated"] == ["test", "validation"]
    assert info["skipped"] == {} and info["languages"] == ["en", "fr"] and st.info["flags"] == []
    full, _ = _read(pin_task)
    assert len(full.train) == 32 and {k: len(v) for k, v in full.eval_data.items()} == \
        {k: n for k, n in SIZES.items() if k[0] != "train"}


def test_read_data_skips_a_missing_file_once_per_split_and_refuses_changed_data(pin_task):
    tasks, data = pin_task
    (data / "pin" / "test-fr.tsv").unlink()
    st, events = _read(pin_task, languages=("fr",))
    assert sorted(st.eval_data) == [("test", "en"), ("validation", "en"), ("validation", "fr")]
    assert st.info["flags"] == ["split_not_evaluated:test/fr"] and st.info["data"]["skipped"] == {"test": ["fr"]}
    assert [e["message"].split(":")[0] for e in events if e["event"] == "warning"] == \
        ["split test not evaluated for 1 language(s)"]
    from xlt.tasks.sources import plan_data
    from xlt.tasks import get_task

    revision = plan_data(get_task("pin", tasks), data).revision
    assert st.info["env"]["data_revision"] == revision
    _read(pin_task, data_revision=revision)                      # the data the spec was made for: fine
    with pytest.raises(Exception, match="changed since this run's spec was made"):
        _read(pin_task, data_revision="local-sha256:0000")
    for name in ("test-en.tsv", "validation-fr.tsv"):
        (data / "pin" / name).unlink()
    st, _ = _read(pin_task, languages=("fr",))                   # only the source dev split is left to evaluate
    assert list(st.eval_data) == [("validation", "en")]


def test_evaluated_languages_keep_the_task_order_and_always_the_source():
    from types import SimpleNamespace

    from xlt.errors import XltError

    task = SimpleNamespace(name="t", languages=("en", "de", "fr", "sw"), source_lang="en")
    assert runner.evaluated_languages(RunSpec("m", "t"), task) == ["en", "de", "fr", "sw"]
    assert runner.evaluated_languages(RunSpec("m", "t", languages=("sw", "de")), task) == ["en", "de", "sw"]
    assert runner.evaluated_languages(RunSpec("m", "t", languages=("en",)), task) == ["en"]
    with pytest.raises(XltError, match="unknown language\\(s\\) xx, yy for task 't'; valid: en, de, fr, sw"):
        runner.evaluated_languages(RunSpec("m", "t", languages=("xx", "fr", "yy")), task)


# --------------------------------------------------------------------------------------------------
# End to end on the tiny checkpoint


def test_every_split_and_language_is_evaluated_on_its_own_file(tiny_deberta_v3, pin_task, tmp_path):
    """Catches the source language's test split silently reading its dev data (or any other mix-up): sizes and
    gold labels of every (split, language) must be those of its file."""
    tasks, data = pin_task
    out = _execute(tiny_deberta_v3, tasks, data, tmp_path)
    rec, preds = out.record, out.predictions
    for (split, lang), n in SIZES.items():
        if split == "train":
            continue
        assert rec["metrics"][split][lang]["n"] == n, (split, lang)
        gold = pd.read_csv(data / "pin" / f"{split}-{lang}.tsv", sep="\t", dtype=str)["label"].astype(int)
        got = preds[(preds.split == split) & (preds.lang == lang)].sort_values("idx")
        assert got["label"].tolist() == gold.tolist(), (split, lang)
    # training and selection: the source language's train and dev files only
    assert rec["data"]["train"]["n"] == 32 and rec["data"]["train"]["origin"].endswith("pin/train-en.tsv")
    sel = rec["data"]["selection"]
    assert (sel["split"], sel["lang"], sel["n"]) == ("validation", "en", 24)
    assert sel["origin"].endswith("pin/validation-en.tsv")
    assert rec["selection"]["best_value"] == pytest.approx(rec["metrics"]["validation"]["en"]["accuracy"])


def test_a_missing_file_is_skipped_not_filled_with_another_split(tiny_deberta_v3, pin_task, tmp_path):
    """Without test-en.tsv, English has no test metrics (never the dev numbers under the test name) and the
    record says what was skipped.
    Catches a split without its file filled with another split's data, or skipped without a record of it."""
    tasks, data = pin_task
    (data / "pin" / "test-en.tsv").unlink()
    rec = _execute(tiny_deberta_v3, tasks, data, tmp_path).record
    assert list(rec["metrics"]["test"]) == ["fr"] and rec["metrics"]["test"]["fr"]["n"] == 16
    assert rec["data"]["skipped"] == {"test": ["en"]}
    assert "split_not_evaluated:test/en" in rec["flags"]
    assert set(rec["metrics"]["validation"]) == {"en", "fr"}


def test_a_local_spec_without_a_data_directory_fails_before_anything_runs(tmp_path, pin_task, monkeypatch):
    """Catches a local-data spec silently falling back to the hub when no --data-dir is given (and the
    reverse: a data directory with a hub spec)."""
    tasks, data = pin_task
    local = factories.spec("no-model-needed", "pin", data_source="local")
    out = runner.execute(local, tasks_dir=tasks, quiet=True)
    assert out.record["status"] == "failed" and out.record["error"]["stage"] == "setup"
    assert "no data directory was given" in out.record["error"]["message"]
    hub = factories.spec("no-model-needed", "pin")
    out = runner.execute(hub, data_dir=data, tasks_dir=tasks, quiet=True)
    assert out.record["status"] == "failed" and "data_source='hub'" in out.record["error"]["message"]
    monkeypatch.setenv("XLT_DATA_DIR", str(data))              # the environment's directory counts as given
    out = runner.execute(local, tasks_dir=tasks, quiet=True)
    assert out.record["status"] == "failed" and "data dir" not in out.record["error"]["message"].replace(
        "directory", "dir")
    monkeypatch.delenv("XLT_DATA_DIR")
    out = runner.execute(hub, tasks_dir=tasks, quiet=True)      # hub data needs no directory: it gets further
    assert out.record["status"] == "failed" and "data dir" not in out.record["error"]["message"].replace(
        "directory", "dir")


def test_run_writes_a_failed_evaluation_and_a_run_that_never_checkpointed(tiny_deberta_v3, pin_task, tmp_path,
                                                                        monkeypatch):
    """Catches `run` dropping the record of a run that failed after training (only a setup failure, where
    nothing ran, goes unrecorded), and `run` crashing on a completed run that wrote no checkpoint (one step)."""
    tasks, data = pin_task
    spec = factories.spec(str(tiny_deberta_v3), "pin", seed=1, data_source="local", max_train_samples=16,
                          overrides=dict(epochs=1, batch_size=16, max_seq_len=40, lr=1e-3))
    done = runner.run(spec, data_dir=data, tasks_dir=tasks, results_dir=tmp_path / "ok", quiet=True,
                      cache_dir=tmp_path / "features")
    assert done.ok and done.record["selection"]["total_steps"] == 1 and done.path.is_file()
    assert not runner.checkpoint_dir(tmp_path / "ok", spec).exists()

    def broken(*args, **kwargs):
        raise RuntimeError("simulated evaluation crash")

    monkeypatch.setattr(xeval, "evaluate_splits", broken)
    failed = runner.run(spec, data_dir=data, tasks_dir=tasks, results_dir=tmp_path / "bad", quiet=True,
                        cache_dir=tmp_path / "features")
    assert failed.record["status"] == "failed" and failed.record["error"]["stage"] == "evaluate"
    assert failed.path == spec_record_path(tmp_path / "bad", spec) and failed.path.is_file()
    assert runner.checkpoint_dir(tmp_path / "bad", spec).is_dir()     # kept for --resume: only success clears it
