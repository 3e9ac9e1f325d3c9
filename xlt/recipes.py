"""Recipes: where a run's hyperparameters come from, and why.

    hp, where = effective_hparams("mdeberta-v3-base", task, overrides={"epochs": 2})
    where["lr"]  -> "model rule: mDeBERTa-v3-base XNLI recipe (microsoft/DeBERTa README, experiments/xnli)"

Layers, later ones winning: xlt's defaults (`spec.Hyperparams`), the task file's `hyperparameters:` block,
the model rules below, then the user's overrides. Model rules match what a checkpoint *is* (its config.json:
model_type, family, sizes, vocabulary), never what its folder is called, so a hub snapshot in a folder named
by a hash gets the same recipe as `mdeberta-v3-base`. A rule may be limited to heads (sentence-level
`classification`, `token` tagging, `qa`) or to task names.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from xlt.spec import Hyperparams, check_hparams


@dataclass(frozen=True)
class ModelRule:
    name: str
    match: Mapping[str, Any]                   # config.json keys (plus "family") and the values they must have
    values: Mapping[str, Any]
    source: str
    heads: tuple[str, ...] | None = None       # only tasks whose type uses one of these heads
    tasks: tuple[str, ...] | None = None       # only these task names

    def applies(self, config: Mapping[str, Any], head: str | None, task: str) -> bool:
        if self.heads is not None and head not in self.heads:
            return False
        if self.tasks is not None and task not in self.tasks:
            return False
        return all(config.get(k) == v for k, v in self.match.items())


MODEL_RULES: tuple[ModelRule, ...] = (
    ModelRule("XLM-R large (XTREME)", {"model_type": "xlm-roberta", "hidden_size": 1024, "num_hidden_layers": 24},
              {"lr": 3e-5}, "XTREME (Hu et al., 2020) scripts/train_xnli.sh and train_pawsx.sh: lr 3e-5 for "
              "xlm-roberta-large", heads=("classification",)),
    ModelRule("DeBERTa-v3 English MNLI recipe", {"family": "deberta-v3", "vocab_size": 128100},
              {"lr": 1.5e-5, "batch_size": 64, "epochs": 3, "warmup_steps": 1000, "max_seq_len": 256},
              "microsoft/DeBERTa experiments/glue/mnli.sh (base): lr 1.5e-5, batch 64, 3 epochs, warmup 1000, "
              "length 256", heads=("classification",)),
    ModelRule("mDeBERTa-v3 XNLI recipe", {"family": "deberta-v3", "vocab_size": 251000},
              {"lr": 2e-5, "batch_size": 32, "epochs": 6, "warmup_steps": 3000, "max_seq_len": 256},
              "microsoft/DeBERTa README, experiments/xnli (mdeberta-v3-base zero-shot): lr 2e-5, batch 32, "
              "6 epochs, warmup 3000, length 256", heads=("classification",)),
)


def model_config(model: str) -> dict[str, Any] | None:
    """The checkpoint's config.json (+ "family") without touching the network: a registry entry (by name or
    hub id), a local checkpoint directory, or a hub id already in the Hugging Face cache. None if unknown."""
    from xlt.errors import XltError
    from xlt.models.registry import REGISTRY, family_of, read_config

    config = None
    entry = REGISTRY.get(model) or next((i for i in REGISTRY.values() if i.hub_id.lower() == model.lower()), None)
    try:
        if entry is not None:
            config = dict(entry.config)
        elif (Path(model).expanduser() / "config.json").is_file():
            config = read_config(Path(model).expanduser())
        elif "/" in model and not Path(model).expanduser().exists():
            from huggingface_hub import try_to_load_from_cache

            cached = try_to_load_from_cache(model, "config.json")
            config = read_config(Path(cached).parent) if isinstance(cached, str) else None
    except (XltError, OSError, ValueError):   # unreadable: the run itself will say why when it loads the model
        config = None
    if not isinstance(config, dict) or "model_type" not in config:
        return None
    return {**config, "family": family_of(config)}


def effective_hparams(model: str, task: Any | None, overrides: Mapping[str, Any] | None = None,
                      config: Mapping[str, Any] | None = None) -> tuple[Hyperparams, dict[str, str]]:
    """The hyperparameters a run uses and, for each, the layer it came from (module docstring).

    `task` is a TaskSpec (None: an unknown task, only defaults and overrides apply); `config` the model's
    config.json (default: `model_config(model)`)."""
    config = model_config(model) if config is None else {**config}
    values = dataclasses.asdict(Hyperparams())
    where = {name: "default" for name in values}
    if task is not None:
        for name, value in task.hparams.items():
            values[name], where[name] = value, f"task {task.name} (hyperparameters: in {Path(task.path).name if task.path else 'its file'})"
    head = task.task_type.head if task is not None else None
    task_name = task.name if task is not None else ""
    for rule in MODEL_RULES if config else ():
        if rule.applies(config, head, task_name):
            for name, value in check_hparams(rule.values).items():
                values[name], where[name] = value, f"model rule: {rule.name} ({rule.source})"
    for name, value in check_hparams(overrides or {}).items():
        values[name], where[name] = value, "override"
    return Hyperparams(**values), where
