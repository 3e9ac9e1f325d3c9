"""runner.execute / runner.run on the real pieces: tiny checkpoints, the real XNLI files in ../shared/data."""

import hashlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pandas as pd
import pytest
import torch

from tests import factories
from xlt.tasktypes import get_task_type
from xlt import evaluate as xeval
from xlt import runner
from xlt.results import load_predictions, load_records, new_record, spec_record_path, write_run

LANGS = ["en", "fr", "es", "de", "el", "bg", "ru", "tr", "ar", "vi", "th", "zh", "hi", "sw", "ur"]
ROOT = Path(__file__).resolve().parents[1]


pytestmark = pytest.mark.usefixtures("one_torch_thread")   # tests/conftest.py


def tiny_spec(model, **overrides):
    hp = dict(epochs=2, batch_size=16, max_seq_len=48, lr=5e-3, eval_every=3, warmup_steps=1)
    hp.update(overrides)
    return factories.spec(str(model), "xnli", seed=1, overrides=hp, data_source="local", max_train_samples=64,
                          max_eval_samples=24)


def test_execute_writes_a_complete_record_and_selects_on_english_dev_only(tiny_deberta_v3, shared_data,
                                                                          monkeypatch):
    """Would catch: a target language's data seen during selection, a record missing a field or a language, metrics
    that are not what the shipped predictions give, or a selected step other than the best dev evaluation."""
    seen, phase = [], ["train"]
    real_predict = xeval.predict

    def spy(model, feats, **kw):
        seen.append((phase[0], feats.meta["split"], feats.meta["lang"]))
        return real_predict(model, feats, **kw)

    monkeypatch.setattr(xeval, "predict", spy)

    def progress(event):
        if event["event"] == "train_end":
            phase[0] = "final"

    spec = tiny_spec(tiny_deberta_v3)
    out = runner.execute(spec, data_dir=shared_data, progress=progress)
    rec = out.record
    assert rec["status"] == "completed", rec["error"]
    assert set(rec) >= {"schema_version", "run_id", "status", "spec", "model", "task", "metrics", "selection",
                        "timing", "env", "data", "flags", "error", "created_at"}
    assert rec["run_id"] == spec.run_id and rec["error"] is None
    # zero-shot protocol: during training only the English dev split was ever predicted
    train_calls = [c for c in seen if c[0] == "train"]
    assert train_calls and set(train_calls) == {("train", "validation", "en")}
    assert {c[2] for c in seen if c[0] == "final"} == set(LANGS)
    # every language, the splits that exist locally, and what was skipped
    assert list(rec["metrics"]) == ["validation"] and list(rec["metrics"]["validation"]) == LANGS
    assert rec["data"]["evaluated"] == ["validation"] and rec["data"]["skipped"] == {"test": LANGS}
    assert all(v["n"] == 24 and set(v) == {"accuracy", "macro_f1", "n"} for v in rec["metrics"]["validation"].values())
    # the numbers are what the predictions give
    preds = out.predictions
    assert list(preds.columns) == ["split", "lang", "idx", "label", "pred", "stat_correct",
                                   *sorted(f"stat_{k}_{c}" for c in range(3) for k in ("fn", "fp", "tp"))]
    assert len(preds) == 15 * 24
    assert preds.groupby("lang")["idx"].apply(list).map(lambda ix: ix == list(range(24))).all()
    assert xeval.metrics_from_predictions(preds, ["accuracy", "macro_f1"], get_task_type("pair-classification")) == rec["metrics"]
    gold = pd.read_csv(shared_data / "xnli" / "validation-fr.tsv", sep="\t", quoting=3, dtype=str)["label"]
    assert preds[preds.lang == "fr"]["label"].tolist() == gold.astype(int).tolist()[:24]
    # selection: the selected state is what was evaluated, so its dev score reappears in the metrics
    sel = rec["selection"]
    assert sel["criterion"] == "validation/en/accuracy" and [h["step"] for h in sel["history"]] == [3, 6, 8]
    assert sel["best_value"] == max(h["value"] for h in sel["history"])
    assert sel["best_value"] == pytest.approx(rec["metrics"]["validation"]["en"]["accuracy"])
    t, env = rec["timing"], rec["env"]
    assert t["train_tokens_per_s"] > 0 and t["eval_examples_per_s"] > 0 and t["eval_examples"] == 15 * 24
    assert env["data_revision"].startswith("local-sha256:") and env["device"] == "cpu"
    from xlt.device import precision_reason   # "auto": bf16 on a CPU with native bf16 units, else fp32
    assert (env["precision"], env["precision_reason"]) == precision_reason("auto", torch.device("cpu"))
    assert env["torch"] and env["transformers"]
    assert rec["model"]["impl"] == "native" and rec["model"]["family"] == "deberta-v3"
    assert rec["task"]["version"] == 1 and rec["task"]["languages"] == LANGS
    json.dumps(rec)   # plain JSON all the way down


def test_failures_come_back_as_failed_records(tiny_deberta_v3, shared_data, tmp_path):
    """Would catch: an exception escaping `execute`, a setup failure written as a record, or a diverged run
    recorded without its stage and step."""
    missing = runner.execute(tiny_spec(tmp_path / "no-such-model"), data_dir=shared_data, quiet=True)
    assert missing.record["status"] == "failed" and missing.predictions is None
    assert missing.record["error"]["stage"] == "setup" and missing.record["error"]["type"] == "XltError"
    # a setup failure is not written; nothing ran
    res = runner.run(tiny_spec(tmp_path / "no-such-model"), data_dir=shared_data, results_dir=tmp_path, quiet=True)
    assert res.path is None and not (tmp_path / "runs").exists()

    # a forced overflow: lr 1e30 turns the weights into inf within a step, the loss into NaN
    nan = runner.run(tiny_spec(tiny_deberta_v3, lr=1e30, warmup_steps=0, max_grad_norm=0.0),
                     data_dir=shared_data, results_dir=tmp_path, quiet=True)
    err = nan.record["error"]
    assert nan.record["status"] == "failed" and err["type"] == "TrainingDiverged" and err["stage"] == "train"
    assert f"at step {err['step']} of 8" in err["message"] and "lower --lr" in err["message"]
    assert "Traceback" in err["traceback_tail"] or "TrainingDiverged" in err["traceback_tail"]
    assert json.loads(nan.path.read_text())["status"] == "failed"     # a failed run leaves its record


class Killed(BaseException):
    """Stands in for SIGKILL: not an Exception, so nothing catches it and no record is written."""


def test_resume_skips_a_completed_run_and_continues_a_killed_one(tiny_deberta_v3, shared_data, tmp_path):
    """Would catch: a resumed run that differs from the uninterrupted one (selection history, metrics or
    predictions), steps run twice, checkpoints left behind, or a completed run trained again."""
    spec = tiny_spec(tiny_deberta_v3)
    whole = runner.run(spec, data_dir=shared_data, results_dir=tmp_path / "a", quiet=True, checkpoint_every=2)
    assert whole.ok and not whole.skipped

    def kill_at_7(step):
        if step == 7:
            raise Killed()

    b = tmp_path / "b"
    with pytest.raises(Killed):
        runner.run(spec, data_dir=shared_data, results_dir=b, quiet=True, checkpoint_every=2, on_step=kill_at_7)
    assert not spec_record_path(b, spec).exists()
    assert runner.resumable_step(b, spec) == 6          # checkpoints at 2, 3 (dev), 4, 6: the last one is 6
    events = []
    resumed = runner.run(spec, data_dir=shared_data, results_dir=b, quiet=True, resume=True,
                         progress=events.append)
    assert resumed.ok and "resumed_from_step:6" in resumed.record["flags"]
    assert [e["step"] for e in events if e["event"] == "step"] == [7, 8]     # only the remaining steps ran
    # the continued run is the uninterrupted one: same selection, same metrics, same predictions
    assert resumed.record["selection"]["history"] == whole.record["selection"]["history"]
    assert resumed.record["metrics"] == whole.record["metrics"]
    pd.testing.assert_frame_equal(load_predictions(resumed.path), load_predictions(whole.path))
    parquet = resumed.path.with_name(resumed.path.stem + ".predictions.parquet").read_bytes()
    assert resumed.record["predictions"] == {"sha256": hashlib.sha256(parquet).hexdigest(), "rows": 15 * 24}
    assert not runner.checkpoint_dir(b, spec).exists()  # checkpoints go once the record is written

    again = runner.run(spec, data_dir=shared_data, results_dir=b, quiet=True)
    assert again.skipped and again.record == json.loads(resumed.path.read_text())


def test_a_failed_forced_rerun_never_replaces_a_completed_record(tiny_deberta_v3, shared_data, tmp_path,
                                                                 monkeypatch):
    spec = tiny_spec(tiny_deberta_v3)
    path = spec_record_path(tmp_path, spec)
    write_run(tmp_path, new_record(spec, status="completed", metrics={"validation": {"en": {"accuracy": 0.5, "n": 1}}}))
    before = path.read_text()

    def boom(*args, **kwargs):
        raise RuntimeError("simulated crash in training")

    monkeypatch.setattr("xlt.train.fit", boom)
    res = runner.run(spec, data_dir=shared_data, results_dir=tmp_path, quiet=True, force=True)
    assert res.record["status"] == "failed" and "simulated crash" in res.record["error"]["message"]
    assert res.path is None and path.read_text() == before


CHILD = textwrap.dedent("""
    import os, sys, time
    from tests import factories
    from xlt import results
    real_replace = os.replace
    def slow_replace(src, dst):
        if str(dst).endswith(".json"):          # the record: its bytes are in the temp file, not renamed yet
            print("WRITING", flush=True)
            time.sleep(120)
        real_replace(src, dst)
    os.replace = slow_replace
    spec = factories.spec("tiny", "xnli", seed=7)
    rec = results.new_record(spec, status="completed", metrics={"validation": {"en": {"accuracy": 0.99, "n": 3}}})
    results.write_run(sys.argv[1], rec)
""")


def test_a_record_is_never_half_written(tmp_path):
    spec = factories.spec("tiny", "xnli", seed=7)
    old = new_record(spec, status="completed", metrics={"validation": {"en": {"accuracy": 0.5, "n": 3}}})
    path = write_run(tmp_path, old)
    before = path.read_bytes()
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(tmp_path)], stdout=subprocess.PIPE, text=True,
                             cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        deadline = time.time() + 120
        line = child.stdout.readline()
        assert line.strip() == "WRITING", f"child did not reach the write (got {line!r}, rc {child.poll()})"
        assert time.time() < deadline
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
    assert child.returncode == -signal.SIGKILL
    assert path.read_bytes() == before                               # the old record survives, byte for byte
    loaded = load_records(tmp_path)
    assert loaded.problems == [] and [r["metrics"] for r in loaded.records] == [old["metrics"]]
    leftovers = [p.name for p in path.parent.iterdir() if p != path]
    assert leftovers and all(name.startswith(".") and name.endswith(".tmp") for name in leftovers)
