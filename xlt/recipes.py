"""Recipes: the one place a RunSpec is built, and where its hyperparameters come from, and why.

    spec = build_spec("mdeberta-v3-base", get_task("xnli"), seed=2, overrides={"epochs": 2}, data_dir=DIR)
    hp, where = effective_hparams("mdeberta-v3-base", task, overrides={"epochs": 2})
    where["lr"]  -> "model rule: mDeBERTa-v3-base XNLI recipe (microsoft/DeBERTa README, experiments/xnli)"

`build_spec` is what `xlt run`, `xlt eval`, `xlt sweep` and `xlt bench run` call, so the same inputs give the same
run id everywhere: the recipe (below), the overrides, the languages (normalised), and the identity of what the
run reads: the data (`data_revision`: pinned hub revisions or a fingerprint of local files), the task file's
content (`task_revision`) and the checkpoint (`model_revision`).

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

from xlt.errors import XltError
from xlt.spec import Hyperparams, RunSpec, check_hparams
from xlt.tasks import TaskSpec, data_dir_from_env
from xlt.tasks.sources import plan_data


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


def normalise_languages(task: TaskSpec, languages) -> tuple[str, ...] | None:
    """`--languages` as one canonical value: each a language of the task (else an XltError listing them), the
    source language added (when the task evaluates it), None when that is every language of the task."""
    if languages is None:
        return None
    if isinstance(languages, str):
        languages = [x.strip() for x in languages.split(",")]
    wanted = [str(x).strip() for x in languages]
    if not any(wanted) or not all(wanted):
        raise XltError(f"--languages {','.join(wanted)!r} names an empty language; list codes of task "
                       f"{task.name!r}: {', '.join(task.languages)}")
    unknown = [lang for lang in dict.fromkeys(wanted) if lang not in task.languages]
    if unknown:
        raise XltError(f"unknown language(s) {', '.join(unknown)} for task {task.name!r}; valid: "
                       f"{', '.join(task.languages)}")
    chosen = {*wanted, *([task.source_lang] if task.source_lang in task.languages else [])}
    return None if chosen == set(task.languages) else tuple(sorted(chosen))


def normalise_splits(task: TaskSpec, splits) -> tuple[str, ...] | None:
    """`--split` as one canonical value: each an evaluation split of the task (else an XltError listing them),
    None when that is every one of them."""
    if splits is None:
        return None
    if isinstance(splits, str):
        splits = [x.strip() for x in splits.split(",")]
    wanted = [str(x).strip() for x in splits]
    unknown = [s for s in dict.fromkeys(wanted) if s not in task.eval_splits]
    if not wanted or unknown:
        raise XltError(f"unknown split(s) {', '.join(unknown) or repr('')} for task {task.name!r}; its evaluation "
                       f"splits: {', '.join(task.eval_splits)}")
    return None if set(wanted) == set(task.eval_splits) else tuple(sorted(set(wanted)))


def evaluated_splits(spec: RunSpec, task: TaskSpec) -> list[str]:
    """The evaluation splits a run reads, in the task's order: all, or the spec's subset."""
    chosen = set(normalise_splits(task, spec.splits) or task.eval_splits)
    return [split for split in task.eval_splits if split in chosen]


def evaluated_languages(spec: RunSpec, task: TaskSpec) -> list[str]:
    """The languages a run evaluates, in the task's order: all, or the spec's subset (source language always)."""
    chosen = set(normalise_languages(task, spec.languages) or task.languages)
    return [lang for lang in task.languages if lang in chosen]


def effective_data_dir(spec: RunSpec, data_dir: Path | str | None) -> Path | None:
    """The data directory a spec reads (--data-dir or XLT_DATA_DIR), checked against its data_source."""
    ddir = data_dir_from_env(data_dir)
    if spec.data_source == "local" and ddir is None:
        raise XltError("this spec reads local data (data_source='local') but no data directory was given; "
                       "pass --data-dir DIR or set XLT_DATA_DIR")
    if spec.data_source == "hub" and ddir is not None:
        raise XltError(f"a data directory is set ({ddir}) but the spec says data_source='hub'; build the spec "
                       "with data_source='local' (xlt run does so for --data-dir) or unset XLT_DATA_DIR")
    return ddir


def build_spec(model: str, task: TaskSpec, seed: int = 1, *, overrides: Mapping[str, Any] | None = None,
               data_dir: Path | str | None = None, languages=None, precision: str = "auto", impl: str = "auto",
               protocol: str = "zero-shot", max_train_samples: int | None = None,
               max_eval_samples: int | None = None, config: Mapping[str, Any] | None = None,
               label_map=None, splits=None) -> RunSpec:
    """The RunSpec of (model, task, seed): the recipe, the overrides and the identity of everything the run
    reads (module docstring). `data_dir` (or XLT_DATA_DIR) means local data; the files the run needs must be
    there (an XltError naming them otherwise). `config`: the model's config.json when the caller has it.
    `protocol` "evaluate" (`xlt eval`) evaluates the checkpoint's own head, with `label_map` (checkpoint label,
    task label) pairs where its label names do not say (xlt.labelmatch). `splits`: evaluate only these of the
    task's evaluation splits (`--split`)."""
    from xlt.models.fingerprint import model_revision

    hparams, _ = effective_hparams(model, task, overrides, config=config)
    ddir = data_dir_from_env(data_dir)
    spec = RunSpec(model=str(model), task=task.name, seed=seed, protocol=protocol, impl=impl, precision=precision,
                   data_source="local" if ddir is not None else "hub", max_train_samples=max_train_samples,
                   max_eval_samples=max_eval_samples, hparams=hparams,
                   languages=normalise_languages(task, languages), task_revision=task.fingerprint,
                   label_map=label_map, splits=normalise_splits(task, splits))
    plan = plan_data(task, ddir, evaluated_languages(spec, task), fine_tunes=spec.fine_tunes,
                     splits=evaluated_splits(spec, task))
    return dataclasses.replace(spec, data_revision=plan.revision, model_revision=model_revision(str(model)))


def explain_spec(spec: RunSpec, task: TaskSpec, overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """What `--dry-run` prints: the spec, its run id, where each hyperparameter came from and the config.json
    values the model rules matched on."""
    config = model_config(spec.model)
    _, where = effective_hparams(spec.model, task, overrides, config=config)
    matched = {k: config.get(k) for k in ("model_type", "family", "hidden_size", "num_hidden_layers",
                                          "vocab_size")} if config else None
    return {"run_id": spec.run_id, "spec": spec.to_dict(), "hparams_from": where, "model_config": matched}
