"""The task-type seam: a type is one module, recipes come from what a checkpoint is, old records still read."""

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

from tests import factories
from xlt import runner, tasktypes
from xlt.cli import app
from xlt.errors import XltError
from xlt.models.registry import REGISTRY
from xlt.recipes import build_spec
from xlt.tasks import get_task
from xlt.spec import RunSpec
from xlt.tasktypes.base import TaskType

ROOT = Path(__file__).resolve().parents[1]
cli = CliRunner()


pytestmark = pytest.mark.usefixtures("one_torch_thread")   # tests/conftest.py


# ------------------------------------------------------------------------------------------------------------
# A toy type written here, outside xlt: single-sentence classification (is the hypothesis a contradiction?).

class ToySentence(TaskType):
    """One text in, one of two labels out; its metric is the error rate's complement, from its own statistics."""

    name = "toy-sentence"
    columns = ("text", "label")
    extensions = {"tsv": "tsv"}
    head = "classification"
    metrics = ("hit_rate",)
    default_metrics = ("hit_rate",)
    report_metrics = ("hit_rate",)

    def prepare(self, frame, source, task, where):
        frame["text"] = frame["text"].astype(str)
        frame["label"] = (frame["label"].astype(int) == 2).astype(np.int64)   # contradiction or not
        return frame

    def featurize(self, split, tokenizer, params):
        from xlt.data import Features, pad_id, ragged

        enc = tokenizer(split.frame["text"].tolist(), truncation=True, max_length=params["max_seq_len"])
        ids, offsets = ragged(enc["input_ids"], np.int32)
        rows = {"index": np.arange(len(split), dtype=np.int64), "target": split.frame["label"].to_numpy()}
        return Features(offsets, {"input_ids": ids}, rows, {"input_ids": pad_id(tokenizer)})

    def loss(self, logits, batch):
        return torch.nn.functional.cross_entropy(logits.float(), batch["target"])

    def decode(self, logits, batch, feats):
        return batch["row"].numpy(), logits.argmax(-1).numpy()

    def predictions(self, split, feats, decoded):
        pred = np.zeros(len(feats), dtype=np.int64)
        for rows, values in decoded:
            pred[rows] = values
        return pd.DataFrame({"idx": feats.index, "label": feats.rows["target"], "pred": pred})

    def statistics(self, predictions):
        return pd.DataFrame({"hit": (predictions["label"] == predictions["pred"]).astype(float)})

    def metric_formulas(self, task=None):
        return {"hit_rate": {"mean": "hit"}}


TOY_TASK = """\
name: toysent
type: toy-sentence
version: 1
labels: [other, contradiction]
source_lang: en
languages: [en, fr, sw]
eval_splits: [validation]
hyperparameters: {lr: 5.0e-3, epochs: 1, batch_size: 16, max_seq_len: 32, eval_every: 2}
source:
  hub: facebook/xnli
  revision: b8dd5d7af51114dbda02c0e3f6133f332186418e
  data_dir_name: xnli
  columns: {text: hypothesis, label: label}
"""


@pytest.fixture
def toy_type():
    tt = tasktypes.register(ToySentence())
    yield tt
    tasktypes._REGISTRY.pop(tt.name, None)


def test_a_task_type_is_one_module_registered_from_outside_xlt(toy_type, tiny_deberta_v3, shared_data, tmp_path):
    """The proof that a type is one module: a type defined in this test file runs end to end through
    `execute` with no change to xlt. Would catch: runner/train/evaluate branching on a type or assuming
    pair-classification (its columns, its `labels` batch key, its metrics)."""
    (tmp_path / "tasks").mkdir()
    (tmp_path / "tasks" / "toysent.yaml").write_text(TOY_TASK, encoding="utf-8")
    spec = factories.spec(str(tiny_deberta_v3), "toysent", tasks_dir=tmp_path / "tasks", data_source="local",
                          max_train_samples=48, max_eval_samples=20)
    assert spec.hparams.lr == 5e-3 and spec.hparams.max_seq_len == 32    # the task file's recipe
    out = runner.execute(spec, data_dir=shared_data, tasks_dir=tmp_path / "tasks")
    rec = out.record
    assert rec["status"] == "completed", rec["error"]
    assert rec["task"]["type"] == "toy-sentence" and rec["selection"]["criterion"] == "validation/en/hit_rate"
    assert set(rec["metrics"]["validation"]) == {"en", "fr", "sw"}
    preds = out.predictions
    assert list(preds.columns) == ["split", "lang", "idx", "label", "pred", "stat_hit"] and len(preds) == 60
    gold = pd.read_csv(shared_data / "xnli" / "validation-sw.tsv", sep="\t", quoting=3, dtype=str)["label"]
    sw = preds[preds.lang == "sw"]
    assert sw["label"].tolist() == (gold.astype(int)[:20] == 2).astype(int).tolist()
    for lang, values in rec["metrics"]["validation"].items():
        part = preds[preds.lang == lang]
        assert values == {"hit_rate": (part["label"] == part["pred"]).mean(), "n": 20}


class ToySimilarity(TaskType):
    """A type that does not train: the encoder's mean-pooled hidden states of both texts of a pair, and whether
    their cosine similarity is above 0.5 (scored against "not a contradiction"). It reads no train or dev split."""

    name = "toy-similarity"
    columns = ("text_a", "text_b", "label")
    extensions = {"tsv": "tsv"}
    head = "encoder"
    trains = False
    uses_labels = False
    metrics = default_metrics = report_metrics = ("agreement",)

    def head_options(self, task, hparams):
        return {"output_layer": 1}                      # the first layer's output, not the last

    def prepare(self, frame, source, task, where):
        frame["label"] = (frame["label"].astype(int) != 2).astype(np.int64)
        return frame

    def featurize(self, split, tokenizer, params):
        from xlt.data import Features, pad_id, ragged

        texts = split.frame["text_a"].tolist() + split.frame["text_b"].tolist()
        enc = tokenizer(texts, truncation=True, max_length=params["max_seq_len"])
        ids, offsets = ragged(enc["input_ids"], np.int32)
        n = len(split)
        rows = {"index": np.tile(np.arange(n), 2), "side": np.repeat([0, 1], n)}
        return Features(offsets, {"input_ids": ids}, rows, {"input_ids": pad_id(tokenizer)})

    def decode(self, hidden, batch, feats):
        mask = batch["attention_mask"].unsqueeze(-1).float()
        return batch["row"].numpy(), ((hidden * mask).sum(1) / mask.sum(1)).numpy()

    def predictions(self, split, feats, decoded):
        emb = np.zeros((len(feats), decoded[0][1].shape[1]))
        for rows, values in decoded:
            emb[rows] = values
        emb /= np.linalg.norm(emb, axis=1, keepdims=True)
        n = len(split)
        cosine = (emb[:n] * emb[n:]).sum(1)
        return pd.DataFrame({"idx": np.arange(n), "label": split.frame["label"].to_numpy(),
                             "pred": (cosine > 0.5).astype(np.int64)})

    def statistics(self, predictions):
        return pd.DataFrame({"agree": (predictions["label"] == predictions["pred"]).astype(float)})

    def metric_formulas(self, task=None):
        return {"agreement": {"mean": "agree"}}


SIMILARITY_TASK = """\
name: toysim
type: toy-similarity
version: 1
source_lang: en
languages: [fr, sw]
eval_splits: [validation]
hyperparameters: {max_seq_len: 32}
source:
  files: data/{split}-{lang}.tsv
  columns: {text_a: premise, text_b: hypothesis, label: label}
"""


def test_a_type_that_does_not_train_runs_without_train_or_dev_data(tiny_deberta_v3, shared_data, tmp_path):
    """Would catch: a runner that always trains (or reads a train or dev split, or selects) whatever the type
    says, or that ignores the type's head options. The task has no English data at all."""
    tt = tasktypes.register(ToySimilarity())
    try:
        folder = tmp_path / "tasks"
        (folder / "data").mkdir(parents=True)
        (folder / "toysim.yaml").write_text(SIMILARITY_TASK, encoding="utf-8")
        for lang in ("fr", "sw"):
            lines = (shared_data / "xnli" / f"validation-{lang}.tsv").read_text(encoding="utf-8").splitlines()
            (folder / "data" / f"validation-{lang}.tsv").write_text("\n".join(lines[:31]) + "\n", encoding="utf-8")
        task = get_task("toysim", folder)
        spec = build_spec(str(tiny_deberta_v3), task, 1)
        events = []
        out = runner.execute(spec, task=task, progress=events.append)
        rec = out.record
        assert rec["status"] == "completed", rec["error"]
        assert rec["selection"] is None and "train" not in rec["data"] and "selection" not in rec["data"]
        assert rec["steps"]["train"].startswith("skipped: type toy-similarity does not train")
        assert rec["steps"]["select"].startswith("skipped") and rec["steps"]["evaluate"] == "ran"
        assert {e["stage"] for e in events if e.get("skipped")} == {"train", "select"}
        assert not any(e["event"] in ("train_start", "step") for e in events)
        assert rec["model"]["head"] == "encoder" and set(rec["metrics"]["validation"]) == {"fr", "sw"}
        assert rec["metrics"]["validation"]["fr"]["n"] == 30
    finally:
        tasktypes._REGISTRY.pop(tt.name, None)


def test_type_names_are_spelled_only_in_the_type_modules_and_the_registry():
    """Would catch: code in runner/train/evaluate/results/report dispatching on a type's name."""
    names = re.compile(r"pair-classification|token-classification|extractive-qa")
    offenders = []
    for path in (ROOT / "xlt").rglob("*.py"):
        if path.parent.name == "tasktypes":
            continue
        offenders += [f"{path.relative_to(ROOT)}:{i}" for i, line in enumerate(path.read_text().splitlines(), 1)
                      if names.search(line)]
    assert offenders == []


def test_unknown_type_lists_the_known_ones():
    with pytest.raises(XltError, match="unknown task type 'no-such'.*pair-classification"):
        tasktypes.get_task_type("no-such")


# ------------------------------------------------------------------------------------------------------------
# Recipes


def _config_folder(path: Path, registry_name: str) -> Path:
    path.mkdir(parents=True)
    (path / "config.json").write_text(json.dumps(REGISTRY[registry_name].config), encoding="utf-8")
    return path


def _dry_run(model: Path, *extra: str) -> dict:
    res = cli.invoke(app, ["run", "--model", str(model), "--task", "xnli", "--dry-run", "--json", *extra])
    assert res.exit_code == 0, res.output
    return json.loads(res.output)


def test_two_copies_of_one_checkpoint_get_the_same_effective_spec(tmp_path):
    """Model rules match config.json, not the folder name: a hub snapshot named by a hash gets the same
    recipe as a folder called mdeberta-v3-base. Would catch: presets keyed by name again."""
    named = _config_folder(tmp_path / "mdeberta-v3-base", "mdeberta-v3-base")
    hashed = _config_folder(tmp_path / "snapshots" / "3f2a9c0d1e", "mdeberta-v3-base")
    a, b = _dry_run(named), _dry_run(hashed)
    assert a["spec"]["hparams"] == b["spec"]["hparams"] and a["hparams_from"] == b["hparams_from"]
    hp = a["spec"]["hparams"]
    assert (hp["lr"], hp["batch_size"], hp["epochs"], hp["warmup_steps"], hp["max_seq_len"]) == (2e-5, 32, 6, 3000, 256)
    assert a["hparams_from"]["warmup_steps"].startswith("model rule: mDeBERTa-v3 XNLI recipe")
    assert a["hparams_from"]["weight_decay"] == "default"
    # a folder whose config is XLM-R large gets XTREME's lr for it, whatever it is called
    large = _dry_run(_config_folder(tmp_path / "mdeberta-looking-name", "xlm-roberta-large"))
    assert large["spec"]["hparams"]["lr"] == 3e-5 and large["spec"]["hparams"]["warmup_steps"] == 0
    assert large["hparams_from"]["epochs"].startswith("task xnli")


def test_dry_run_says_where_each_value_came_from(tmp_path):
    out = _dry_run(_config_folder(tmp_path / "ckpt", "xlm-roberta-base"), "--epochs", "2", "--set", "weight_decay=0")
    where = out["hparams_from"]
    assert where["epochs"] == where["weight_decay"] == "override"
    assert where["lr"].startswith("task xnli") and where["adam_eps"] == "default"
    assert out["spec"]["hparams"]["epochs"] == 2.0 and out["run_id"] == RunSpec.from_dict(out["spec"]).run_id
    assert not (tmp_path / "results").exists()


@pytest.mark.parametrize("overrides, message", [
    ({"epochs": 0}, "epochs=0.0 is out of range"), ({"epochs": "-1"}, "out of range"),
    ({"epochs": "1e400"}, "not a valid float"), ({"warmup_steps": -5}, "out of range"),
    ({"eval_every": -1}, "out of range"), ({"max_grad_norm": -1}, "out of range"), ({"lr": 0}, "out of range"),
    ({"batch_size": 2.5}, "not a valid int"), ({"sift": "maybe"}, "not a valid bool"),
])
def test_out_of_range_hyperparameters_are_refused(overrides, message):
    with pytest.raises(XltError, match=message):
        factories.spec("m", "xnli", overrides=overrides)


@pytest.mark.parametrize("fields, message", [({"seed": -1}, "seed -1"), ({"max_eval_samples": 0}, "max-eval-samples")])
def test_out_of_range_spec_fields_are_refused(fields, message):
    with pytest.raises(XltError, match=message):
        factories.spec("m", "xnli", **fields)


def test_task_hyperparameters_are_validated_with_their_line(tmp_path):
    from xlt.tasks import check_task_file

    text = (ROOT / "tasks" / "xnli.yaml").read_text().replace("epochs: 5", "epochs: -5")
    (tmp_path / "xnli.yaml").write_text(text)
    _, problems = check_task_file(tmp_path / "xnli.yaml")
    assert len(problems) == 1 and "epochs=-5.0 is out of range" in problems[0].message
    assert text.splitlines()[problems[0].line - 1].startswith("hyperparameters:")


# ------------------------------------------------------------------------------------------------------------
# Records written before the seam


OLD_RECORD = {
    "schema_version": 1, "run_id": "0123456789ab", "status": "completed",
    "spec": {"model": "xlm-roberta-base", "task": "xnli", "seed": 1, "protocol": "zero-shot", "impl": "auto",
             "precision": "auto", "data_source": "local", "data_revision": None, "max_train_samples": None,
             "max_eval_samples": None, "hparams": {"lr": 2e-5, "epochs": 5, "batch_size": 32, "grad_accum": 1,
                                                  "max_seq_len": 128, "warmup_steps": 0, "weight_decay": 0.01,
                                                  "max_grad_norm": 1.0, "adam_eps": 1e-6, "eval_every": 0,
                                                  "eval_batch_size": 64, "gradient_checkpointing": False,
                                                  "sift": False, "sift_lambda": 1.0, "sift_lr": 1e-4,
                                                  "sift_init": 1e-5}},
    "model": {"name": "xlm-roberta-base", "hub_id": "FacebookAI/xlm-roberta-base", "family": "xlm-roberta",
              "impl": "hf"},
    "task": {"name": "xnli", "version": 1, "type": "pair-classification", "source_lang": "en",
             "languages": ["en", "fr"], "label_names": ["entailment", "neutral", "contradiction"],
             "primary_metric": "accuracy", "metrics": ["accuracy", "macro_f1"]},
    "metrics": {"validation": {"en": {"accuracy": 0.75, "macro_f1": 0.7, "n": 4},
                               "fr": {"accuracy": 0.5, "macro_f1": 0.4, "n": 4}}},
    "selection": {}, "timing": {}, "env": {}, "data": {}, "flags": [], "error": None,
    "created_at": "2026-11-01T10:00:00+00:00",
}


def test_a_record_written_before_the_seam_is_still_read(tmp_path):
    folder = tmp_path / "runs" / "xnli" / "xlm-roberta-base"
    folder.mkdir(parents=True)
    record = dict(OLD_RECORD)
    spec = RunSpec.from_dict(record["spec"])
    record["run_id"] = spec.run_id
    (folder / f"{spec.run_id}.json").write_text(json.dumps(record))
    pd.DataFrame({"split": ["validation"] * 8, "lang": ["en"] * 4 + ["fr"] * 4, "idx": [0, 1, 2, 3] * 2,
                  "label": [0, 1, 2, 0, 0, 1, 2, 0], "pred": [0, 1, 2, 1, 0, 0, 2, 1]}).to_parquet(
        folder / f"{spec.run_id}.predictions.parquet")
    tables = cli.invoke(app, ["report", "tables", "--task", "xnli", "--split", "validation", "--format", "md",
                              "--results-dir", str(tmp_path)])
    assert tables.exit_code == 0, tables.output
    assert "75.0" in tables.output and "50.0" in tables.output
    show = cli.invoke(app, ["report", "show", spec.run_id[:6], "--results-dir", str(tmp_path)])
    assert show.exit_code == 0, show.output
    assert "75.0" in show.output
