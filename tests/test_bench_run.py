"""`xlt bench run`: both pipelines on a tiny checkpoint, and an honest transformers baseline."""

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from xlt.bench.run import read_rows, transformers_pipeline
from xlt.cli import app

cli = CliRunner()
PHASES = ("tokenise", "train", "evaluate")


@pytest.fixture(autouse=True)
def quiet_env(tmp_path, monkeypatch):
    monkeypatch.setenv("XLT_CACHE_DIR", str(tmp_path / "features"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv("XLT_DATA_DIR", raising=False)


@pytest.mark.slow
def test_bench_run_times_both_pipelines_and_writes_json(tiny_deberta_v3, shared_data, tmp_path):
    """Would catch: a bench run that times only one pipeline, trains a different number of steps in each, or
    writes a JSON without every phase's time, padding share and memory."""
    out = tmp_path / "bench.json"
    res = cli.invoke(app, ["bench", "run", "--model", str(tiny_deberta_v3), "--data-dir", str(shared_data),
                           "--train-steps", "2", "--eval-samples", "16", "--batch-size", "8", "--languages",
                           "en,fr", "--json", str(out)])
    assert res.exit_code == 0, res.output
    data = json.loads(out.read_text())
    rows = {r["pipeline"]: r for r in data["rows"]}
    assert set(rows) == {"xlt", "transformers"} and data["languages"] == ["en", "fr"]
    for row in rows.values():
        assert row["train_steps"] == 2 and set(row["accuracy"]) == {"en", "fr"}
        for phase in PHASES:
            assert row[f"{phase}_s"] > 0 and 0 <= row[f"{phase}_padding_share"] < 1
        assert row["peak_mem_bytes"] > 0
    # the baseline pads every pair to max_seq_len; xlt pads a batch to its longest pair only
    assert rows["transformers"]["evaluate_padding_share"] > rows["xlt"]["evaluate_padding_share"]
    assert set(data["speedup"]) == {"tokenise", "train", "evaluate", "total"}
    assert "xlt / transformers speed" in res.output


def test_the_transformers_baseline_reports_what_trainer_evaluate_gives(tiny_deberta_v3, shared_data, tmp_path):
    """The baseline is honest: its per-language accuracies equal a direct `Trainer.evaluate` of the model it
    trained, on the dataset run_xnli.py's preprocessing builds. Would catch: a baseline that scores the wrong
    rows, the wrong labels or an untrained model."""
    import datasets
    from transformers import (AutoModelForSequenceClassification, AutoTokenizer, Trainer, TrainingArguments,
                              default_data_collator)

    rows = read_rows("xnli", shared_data, 16, 24, ["en", "sw"], None)
    hp = {"lr": 5e-3, "batch_size": 8, "grad_accum": 1, "max_seq_len": 64, "warmup_steps": 0, "weight_decay": 0.01,
          "max_grad_norm": 1.0, "adam_eps": 1e-6, "eval_batch_size": 16, "_steps": 2}
    kept = tmp_path / "trained"
    res = transformers_pipeline(str(tiny_deberta_v3), rows, hp, "fp32", 1, 0, keep_dir=str(kept))
    tok = AutoTokenizer.from_pretrained(kept)
    model = AutoModelForSequenceClassification.from_pretrained(kept)
    args = TrainingArguments(output_dir=str(tmp_path / "eval"), per_device_eval_batch_size=5, use_cpu=True,
                             report_to=[], disable_tqdm=True)
    trainer = Trainer(model=model, args=args, data_collator=default_data_collator,
                      compute_metrics=lambda p: {"accuracy": float((np.argmax(p.predictions, 1) == p.label_ids).mean())})
    for lang, split in rows["eval"].items():
        frame = split.frame.rename(columns={"text_a": "premise", "text_b": "hypothesis"})
        ds = datasets.Dataset.from_pandas(frame[["premise", "hypothesis", "label"]], preserve_index=False).map(
            lambda ex: tok(ex["premise"], ex["hypothesis"], padding="max_length", max_length=64, truncation=True),
            batched=True)
        assert trainer.evaluate(eval_dataset=ds)["eval_accuracy"] == pytest.approx(res["accuracy"][lang], abs=1e-9)
    assert res["train_steps"] == 2


def test_bench_run_refuses_what_it_cannot_compare(tiny_deberta_v3, shared_data):
    res = cli.invoke(app, ["bench", "run", "--model", str(tiny_deberta_v3), "--data-dir", str(shared_data),
                           "--precision", "fp16"])
    assert res.exit_code == 2 and "fp32 or bf16" in res.output
    res = cli.invoke(app, ["bench", "run", "--model", str(tiny_deberta_v3), "--data-dir", str(shared_data),
                           "--train-steps", "1000", "--batch-size", "32"])
    assert res.exit_code == 2 and "training rows give fewer than 1000 steps" in res.output
