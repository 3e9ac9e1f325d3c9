"""`xlt run` through Typer's CliRunner: tiny native DeBERTa-v3 and tiny XLM-R on the real local XNLI files."""

import json

import pytest
from typer.testing import CliRunner

from xlt.tasktypes import get_task_type
from xlt.cli import app
from xlt.evaluate import metrics_from_predictions
from xlt.results import load_predictions, load_records

LANGS = ["en", "fr", "es", "de", "el", "bg", "ru", "tr", "ar", "vi", "th", "zh", "hi", "sw", "ur"]
cli = CliRunner()


pytestmark = pytest.mark.usefixtures("one_torch_thread")   # tests/conftest.py


def _args(model, shared_data, results, *extra):
    return ["run", "--model", str(model), "--task", "xnli", "--data-dir", str(shared_data), "--results-dir",
            str(results), "--max-train-samples", "48", "--max-eval-samples", "20", "--epochs", "1",
            "--batch-size", "16", "--lr", "5e-3", "--max-seq-len", "48", "--eval-every", "2", *extra]


def _only_record(results):
    loaded = load_records(results)
    assert loaded.problems == [] and len(loaded.records) == 1
    return loaded.paths[0], loaded.records[0]


def _check_complete(path, record):
    assert record["status"] == "completed", record["error"]
    assert list(record["metrics"]) == ["validation"] and list(record["metrics"]["validation"]) == LANGS
    assert record["data"]["evaluated"] == ["validation"] and sorted(record["data"]["skipped"]) == ["test"]
    preds = load_predictions(path)
    assert len(preds) == 15 * 20 and set(preds["split"]) == {"validation"}
    recomputed = metrics_from_predictions(preds, record["task"]["metrics"], get_task_type(record["task"]["type"]))
    for lang in LANGS:
        acc = (preds[preds.lang == lang]["label"] == preds[preds.lang == lang]["pred"]).mean()
        assert record["metrics"]["validation"][lang]["accuracy"] == pytest.approx(acc, abs=0)
    assert recomputed == record["metrics"]


def test_xlt_run_native_deberta_end_to_end(tiny_deberta_v3, shared_data, tmp_path):
    """Would catch: `xlt run` losing a flag on its way to the spec (--impl, --sift, --set), a record without the
    local data's identity, or a summary that leaves out a language or the skipped test split."""
    results = tmp_path / "results"
    res = cli.invoke(app, _args(tiny_deberta_v3, shared_data, results, "--impl", "native", "--sift",
                                "--set", "sift_init=1e-3", "--set", "weight_decay=0"))
    assert res.exit_code == 0, res.output
    path, record = _only_record(results)
    _check_complete(path, record)
    assert record["model"]["impl"] == "native" and record["spec"]["impl"] == "native"
    hp = record["spec"]["hparams"]
    assert hp["sift"] and hp["sift_init"] == 1e-3 and hp["weight_decay"] == 0.0 and hp["lr"] == 5e-3
    assert record["spec"]["data_source"] == "local" and record["env"]["data_revision"].startswith("local-sha256:")
    for lang in ("en", "sw", "ur", "avg"):
        assert f"│ {lang} " in res.output            # the per-language summary table
    assert "not evaluated: split test" in res.output and str(path) in res.output


def test_xlt_run_xlmr_end_to_end_then_skip_and_force(tiny_xlmr, shared_data, tmp_path):
    """Would catch: a completed run trained again (or its record rewritten) without --force, or --force giving
    other numbers for the same spec and seed (a run that is not deterministic on CPU)."""
    results = tmp_path / "results"
    args = _args(tiny_xlmr, shared_data, results, "--quiet")
    first = cli.invoke(app, args)
    assert first.exit_code == 0, first.output
    path, record = _only_record(results)
    _check_complete(path, record)
    assert record["model"]["impl"] == "hf" and record["model"]["family"] == "xlm-roberta"
    assert first.output.strip() == str(path)                # --quiet: just the record's path

    again = cli.invoke(app, args)
    assert again.exit_code == 0 and "exists" in again.output and "--force" in again.output
    assert json.loads(path.read_text())["created_at"] == record["created_at"]   # untouched

    forced = cli.invoke(app, [*args, "--force"])
    assert forced.exit_code == 0, forced.output
    rerun = json.loads(path.read_text())
    assert rerun["metrics"] == record["metrics"]            # same spec, same seed: the same numbers


def test_a_diverging_run_exits_non_zero_with_a_failed_record(tiny_deberta_v3, shared_data, tmp_path):
    """Would catch: a NaN run exiting 0, leaving no failed record, or suggesting --precision fp32 to an fp32 run."""
    results = tmp_path / "results"
    res = cli.invoke(app, _args(tiny_deberta_v3, shared_data, results, "--lr", "1e30", "--warmup", "0",
                                "--set", "max_grad_norm=0", "--precision", "fp32", "--quiet"))
    assert res.exit_code == 1
    assert "run failed" in res.output and "at step" in res.output and "lower --lr" in res.output and "--precision fp32" not in res.output
    _, record = _only_record(results)
    assert record["status"] == "failed" and record["error"]["type"] == "TrainingDiverged"


@pytest.mark.parametrize("extra, message", [
    (["--set", "nonsense"], "NAME=VALUE"),
    (["--set", "learning_rate=1"], "unknown hyperparameter 'learning_rate'"),
    (["--precision", "fp8"], "unknown precision"),
    (["--batch-size", "30", "--grad-accum", "4"], "multiple of --grad-accum"),
])
def test_usage_errors_exit_2_with_one_line(tiny_deberta_v3, shared_data, tmp_path, extra, message):
    res = cli.invoke(app, [*_args(tiny_deberta_v3, shared_data, tmp_path), *extra])
    assert res.exit_code == 2 and message in res.output and "Traceback" not in res.output


def test_an_unknown_model_is_a_clear_failure_and_writes_nothing(shared_data, tmp_path):
    res = cli.invoke(app, _args(tmp_path / "missing-model", shared_data, tmp_path / "results"))
    assert res.exit_code == 1 and "run failed (setup)" in res.output and "Traceback" not in res.output
    assert not (tmp_path / "results" / "runs").exists()
