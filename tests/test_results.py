import json

import pandas as pd
import pytest

from tests import factories
from xlt.errors import XltError
from xlt.results import (SCHEMA_VERSION, load_predictions, load_records, metrics_frame, new_record,
                         spec_record_path, write_run, completed_record)
from xlt.spec import RunSpec


def test_run_id_is_stable_and_sensitive_to_every_field():
    a = factories.spec("mdeberta-v3-base", "xnli", seed=1)
    assert a.run_id == factories.spec("mdeberta-v3-base", "xnli", seed=1).run_id
    assert a.run_id != factories.spec("mdeberta-v3-base", "xnli", seed=2).run_id
    assert a.run_id != factories.spec("mdeberta-v3-base", "xnli", seed=1, overrides={"lr": 3e-5}).run_id
    assert RunSpec.from_dict(json.loads(json.dumps(a.to_dict()))).run_id == a.run_id


def test_presets_follow_the_published_recipes():
    m = factories.spec("mdeberta-v3-base", "xnli").hparams
    assert (m.lr, m.batch_size, m.epochs, m.warmup_steps, m.max_seq_len) == (2e-5, 32, 6, 3000, 256)
    x = factories.spec("xlm-roberta-base", "pawsx").hparams
    assert (x.lr, x.batch_size, x.epochs, x.max_seq_len) == (2e-5, 32, 5, 128)
    assert factories.spec("xlm-roberta-large", "xnli").hparams.lr == 3e-5
    d = factories.spec("deberta-v3-base", "xnli").hparams
    assert (d.lr, d.batch_size, d.epochs, d.warmup_steps) == (1.5e-5, 64, 3, 1000)
    assert factories.spec("mdeberta-v3-base", "xnli", overrides={"epochs": "2", "sift": "true"}).hparams.sift


def test_bad_hyperparameters_name_the_problem():
    with pytest.raises(XltError, match="unknown hyperparameter 'learning_rate'.*lr"):
        factories.spec("m", "xnli", overrides={"learning_rate": 1e-5})
    with pytest.raises(XltError, match="not a valid float"):
        factories.spec("m", "xnli", overrides={"lr": "fast"})
    with pytest.raises(XltError, match="multiple of --grad-accum"):
        factories.spec("m", "xnli", overrides={"batch_size": 30, "grad_accum": 4})


def _record(spec, acc=0.5):
    return new_record(spec, status="completed", metrics={"validation": {"en": {"accuracy": acc, "n": 4}}})


def test_write_and_load_round_trip(tmp_path):
    spec = factories.spec("tiny", "xnli", seed=3)
    preds = pd.DataFrame({"split": ["validation"] * 4, "lang": ["en"] * 4, "idx": range(4),
                          "label": [0, 1, 2, 0], "pred": [0, 1, 1, 0]})
    path = write_run(tmp_path, _record(spec, 0.75), preds)
    assert path == spec_record_path(tmp_path, spec)
    assert completed_record(tmp_path, spec)["metrics"]["validation"]["en"]["accuracy"] == 0.75
    assert load_predictions(path)["pred"].tolist() == [0, 1, 1, 0]
    frame = metrics_frame(load_records(tmp_path).records)
    assert frame.loc[0, ["lang", "metric", "value", "n", "seed"]].tolist() == ["en", "accuracy", 0.75, 4, 3]
    assert not list(path.parent.glob("*.tmp"))


def test_corrupt_and_foreign_records_are_reported_not_deleted(tmp_path):
    good = write_run(tmp_path, _record(factories.spec("tiny", "xnli")))
    bad = good.with_name("truncated.json")
    bad.write_text(good.read_text()[:40])
    future = good.with_name("future.json")
    future.write_text(json.dumps({**json.loads(good.read_text()), "schema_version": SCHEMA_VERSION + 1}))
    loaded = load_records(tmp_path)
    assert len(loaded.records) == 1
    assert any("truncated.json" in p for p in loaded.problems)
    assert any("future.json" in p and "schema version" in p for p in loaded.problems)
    assert bad.exists() and future.exists()
