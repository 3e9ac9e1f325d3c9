"""Pins on recipes: which layer each hyperparameter comes from (xlt's default < the task file < a model rule
< the user's override), which model rules apply (config.json keys, heads, task names), and where a model's
config.json is found without the network (registry, local folder, the Hugging Face cache)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from xlt.models.registry import REGISTRY
from xlt.recipes import MODEL_RULES, ModelRule, effective_hparams, model_config
from xlt.spec import Hyperparams

MDEBERTA = {**REGISTRY["mdeberta-v3-base"].config, "family": "deberta-v3"}
XLMR_LARGE = {**REGISTRY["xlm-roberta-large"].config, "family": "xlm-roberta"}


def fake_task(hparams=None, head="classification", name="pin", path="/tasks/pin.yaml"):
    return SimpleNamespace(name=name, hparams=dict(hparams or {}), task_type=SimpleNamespace(head=head),
                           path=Path(path) if path else None)


@pytest.mark.parametrize("heads, tasks, config, head, task, expected", [
    (None, None, {"a": 1, "b": 2}, "qa", "x", True),
    (None, None, {"a": 1, "b": 3}, "qa", "x", False),           # every match key must hold, not any
    (None, None, {"a": 1}, "qa", "x", False),                   # a missing key does not match
    (("classification",), None, {"a": 1, "b": 2}, "classification", "x", True),
    (("classification",), None, {"a": 1, "b": 2}, "token", "x", False),
    (("classification",), None, {"a": 1, "b": 2}, None, "x", False),
    (None, ("xnli", "pawsx"), {"a": 1, "b": 2}, "qa", "pawsx", True),
    (None, ("xnli",), {"a": 1, "b": 2}, "qa", "pawsx", False),
    (("token",), ("panx",), {"a": 1, "b": 2}, "token", "panx", True),
    (("token",), ("panx",), {"a": 1, "b": 2}, "classification", "panx", False),
])
def test_a_rule_applies_when_every_key_matches_and_its_head_and_task_fit(heads, tasks, config, head, task, expected):
    rule = ModelRule("r", {"a": 1, "b": 2}, {"lr": 1e-5}, "src", heads=heads, tasks=tasks)
    assert rule.applies(config, head, task) is expected


def test_layers_in_order_each_value_saying_where_it_came_from():
    """A value set in every layer takes the last; each layer keeps what later ones leave alone. Would catch a
    layer applied before an earlier one, a rule applied for the wrong head, or `where` naming the wrong layer."""
    task = fake_task({"lr": 5e-5, "epochs": 4.0, "eval_every": 7, "max_seq_len": 200})
    hp, where = effective_hparams("m", task, {"epochs": "2", "max-seq-len": 64}, config=MDEBERTA)
    rule = next(r for r in MODEL_RULES if r.name == "mDeBERTa-v3 XNLI recipe")
    assert hp == dataclasses.replace(Hyperparams(), lr=2e-5, batch_size=32, warmup_steps=3000, eval_every=7,
                                     epochs=2.0, max_seq_len=64)
    assert where["lr"] == where["batch_size"] == where["warmup_steps"] == \
        f"model rule: mDeBERTa-v3 XNLI recipe ({rule.source})"
    assert where["eval_every"] == "task pin (hyperparameters: in pin.yaml)"
    assert where["epochs"] == where["max_seq_len"] == "override"
    assert where["adam_eps"] == where["weight_decay"] == "default"
    assert isinstance(hp.epochs, float) and isinstance(hp.max_seq_len, int)


def test_a_rule_for_another_head_leaves_the_task_values():
    task = fake_task({"lr": 5e-5, "epochs": 3.0}, head="token", path=None)
    hp, where = effective_hparams("m", task, None, config=MDEBERTA)
    assert (hp.lr, hp.epochs, hp.warmup_steps, hp.batch_size) == (5e-5, 3.0, 0, 32)
    assert where["lr"] == "task pin (hyperparameters: in its file)" and where["warmup_steps"] == "default"


def test_rule_values_are_coerced_like_any_other_value():
    """Rules write epochs as ints (6); the spec must hold 6.0 either way, or the same run gets two ids."""
    hp, _ = effective_hparams("m", fake_task(), None, config=MDEBERTA)
    assert type(hp.epochs) is float and hp.epochs == 6.0 and type(hp.warmup_steps) is int
    hp, where = effective_hparams("m", fake_task(), None, config=XLMR_LARGE)
    assert hp.lr == 3e-5 and where["lr"].startswith("model rule: XLM-R large") and hp.epochs == 5.0


def test_no_task_and_no_config_is_xlts_defaults_and_the_overrides():
    hp, where = effective_hparams("nowhere/unknown-model", None, {"lr": "1e-4"}, config={})
    assert hp == dataclasses.replace(Hyperparams(), lr=1e-4)
    assert where["lr"] == "override" and set(where.values()) == {"default", "override"}
    assert effective_hparams("nowhere/unknown-model", None)[0] == Hyperparams()


def test_the_config_of_a_registry_name_or_its_hub_id_in_any_case():
    got = model_config("mdeberta-v3-base")
    assert got == MDEBERTA
    assert model_config("Microsoft/MDeBERTa-v3-base") == MDEBERTA
    assert model_config("xlm-roberta-large")["family"] == "xlm-roberta"


def test_the_config_of_a_local_folder_by_its_config_not_its_name(tmp_path, monkeypatch):
    folder = tmp_path / "xlm-roberta-large"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(REGISTRY["mdeberta-v3-base"].config))
    assert model_config(str(folder)) == MDEBERTA
    monkeypatch.setenv("HOME", str(tmp_path))
    assert model_config("~/xlm-roberta-large") == MDEBERTA
    (folder / "config.json").write_text(json.dumps({"hidden_size": 8}))       # no model_type
    assert model_config(str(folder)) is None
    (folder / "config.json").write_text("{not json")
    assert model_config(str(folder)) is None
    (folder / "config.json").unlink()
    assert model_config(str(folder)) is None


def test_the_config_of_a_hub_id_from_the_local_hub_cache_only(tmp_path, monkeypatch):
    """A hub id that is not a registry entry is looked up in the Hugging Face cache (never downloaded)."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    assert model_config("someone/tiny-deberta") is None
    snapshot = tmp_path / "hub" / "models--someone--tiny-deberta" / "snapshots" / "0123abc"
    snapshot.mkdir(parents=True)
    (snapshot.parents[1] / "refs").mkdir()
    (snapshot.parents[1] / "refs" / "main").write_text("0123abc")
    (snapshot / "config.json").write_text(json.dumps({**REGISTRY["deberta-v3-base"].config}))
    assert model_config("someone/tiny-deberta") == {**REGISTRY["deberta-v3-base"].config, "family": "deberta-v3"}
    hp, where = effective_hparams("someone/tiny-deberta", fake_task(), None)
    assert hp.lr == 1.5e-5 and where["lr"].startswith("model rule: DeBERTa-v3 English MNLI recipe")
    assert model_config("someone/other") is None
