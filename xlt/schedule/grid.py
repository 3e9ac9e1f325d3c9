"""The sweep grid: what a sweep covers (SweepConfig, sweep YAML files), the RunSpecs it expands to, the
checks that run before anything is scheduled (task and model names), and which specs are already done."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from xlt.errors import XltError
from xlt.results import completed_record, spec_record_path
from xlt.spec import RunSpec, coerce_hparams

# Spec fields other than model/task/seed/hparams that a sweep may set for every run.
SPEC_FIELDS = ("protocol", "impl", "precision", "max_train_samples", "max_eval_samples", "languages")
SWEEP_FILE_KEYS = ("models", "tasks", "seeds", "set", "model_overrides", "task_overrides", "names", *SPEC_FIELDS)


@dataclass(frozen=True)
class SweepConfig:
    """What a sweep covers. Hyperparameters: the recipe (task file, model rules) < `overrides` < per-task <
    per-model. `names` gives models display names in reports (not part of any run's identity)."""

    models: tuple[str, ...]
    tasks: tuple[str, ...]
    seeds: tuple[int, ...] = (1,)
    overrides: Mapping[str, Any] = field(default_factory=dict)                   # every run
    task_overrides: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    model_overrides: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    spec_fields: Mapping[str, Any] = field(default_factory=dict)                 # impl, precision, max_*_samples
    names: Mapping[str, str] = field(default_factory=dict)                       # model -> display name

    def __post_init__(self) -> None:
        if not self.models:
            raise XltError("a sweep needs at least one model: --models a,b or `models:` in the sweep file")
        if not self.tasks:
            raise XltError("a sweep needs at least one task: --tasks xnli,pawsx or `tasks:` in the sweep file")
        if not self.seeds:
            raise XltError("a sweep needs at least one seed: --seeds 1,2,3 or `seeds:` in the sweep file")
        for kind, names, known in (("model", self.model_overrides, self.models),
                                   ("task", self.task_overrides, self.tasks), ("model", self.names, self.models)):
            stray = [n for n in names if n not in known]
            if stray:
                raise XltError(f"{kind}_overrides name {', '.join(map(repr, stray))}, which the sweep does not "
                               f"include ({kind}s: {', '.join(known)}); fix the name or add it to {kind}s")
        bad = [k for k in self.spec_fields if k not in SPEC_FIELDS]
        if bad:
            raise XltError(f"unknown sweep setting {', '.join(map(repr, bad))}; valid: {', '.join(SPEC_FIELDS)}")


def split_list(text: str | Sequence[str] | None) -> tuple[str, ...]:
    """'a,b, c' (or a list of such strings) -> ('a', 'b', 'c')."""
    if text is None:
        return ()
    items = [text] if isinstance(text, str) else list(text)
    return tuple(p.strip() for item in items for p in str(item).split(",") if p.strip())


MAX_SEEDS = 1000   # seeds in one sweep: each is a fine-tune per (model, task)


def parse_seeds(text: str | int | Sequence[Any] | None) -> tuple[int, ...]:
    """'1,2,3' or '1-3' (or a list of ints) -> (1, 2, 3); at most MAX_SEEDS, each a valid RunSpec seed."""
    if text is None:
        return ()
    items = [text] if isinstance(text, (str, int)) and not isinstance(text, bool) else list(text)
    seeds: list[int] = []
    for part in split_list([str(s) for s in items]):
        span = re.fullmatch(r"([0-9]+)-([0-9]+)", part)
        if span is None and re.fullmatch(r"[0-9]+", part) is None:
            raise XltError(f"seed {part!r} is not an integer from 0 to {2**32 - 1} or a range like 1-3")
        low, high = (int(span[1]), int(span[2])) if span else (int(part), int(part))
        if high >= 2**32 or high - low + 1 + len(seeds) > MAX_SEEDS:
            raise XltError(f"seeds {part!r}: a sweep takes at most {MAX_SEEDS} seeds, each from 0 to {2**32 - 1}")
        seeds.extend(range(low, high + 1))
    return tuple(dict.fromkeys(seeds))


def load_sweep_file(path: Path | str) -> SweepConfig:
    """Read a sweep YAML:

        models: [mdeberta-v3-base, xlm-roberta-base]
        tasks: [xnli, pawsx]
        seeds: [1, 2, 3]                 # or "1-3"
        set: {epochs: 3}                 # every run
        task_overrides: {pawsx: {lr: 1e-5}}
        model_overrides: {xlm-roberta-base: {lr: 1e-5}}
        max_train_samples: 2000          # also impl, precision, protocol, max_eval_samples
        languages: [en, de, sw]          # evaluate only these (the source language always)
        names: {/ckpts/run-17: my-model} # display names in reports
    """
    from xlt.tasks.yamlfile import read_yaml

    path = Path(path)
    data, _, problems = read_yaml(path, what="sweep file")   # the task files' limits: size, aliases, depth, ...
    if problems:
        raise XltError("sweep file " + "; ".join(map(str, problems)))
    if not isinstance(data, dict):
        raise XltError(f"sweep file {path} must be a mapping with models, tasks and seeds")
    unknown = [k for k in data if k not in SWEEP_FILE_KEYS]
    if unknown:
        raise XltError(f"sweep file {path}: unknown key {', '.join(map(repr, unknown))}; "
                       f"valid keys: {', '.join(SWEEP_FILE_KEYS)}")

    def mapping(key: str) -> dict:
        value = data.get(key) or {}
        if not isinstance(value, dict):
            raise XltError(f"sweep file {path}: {key} must be a mapping, not {type(value).__name__}")
        return value

    nested = {}
    for key in ("model_overrides", "task_overrides"):
        nested[key] = {str(k): v for k, v in mapping(key).items()}
        for name, values in nested[key].items():
            if not isinstance(values, dict):
                raise XltError(f"sweep file {path}: {key}.{name} must map hyperparameters to values")
    try:
        return SweepConfig(models=split_list(data.get("models")), tasks=split_list(data.get("tasks")),
                           seeds=parse_seeds(data.get("seeds", [1])), overrides=mapping("set"),
                           spec_fields={k: data[k] for k in SPEC_FIELDS if k in data},
                           names={str(k): str(v) for k, v in mapping("names").items()}, **nested)
    except XltError as exc:
        raise XltError(f"sweep file {path}: {exc}") from None


def build_grid(config: SweepConfig, *, data_dir: Path | str | None = None,
               tasks_dir: Path | str | None = None) -> list[RunSpec]:
    """Every (model, task, seed) as a RunSpec, in that nesting order, duplicates removed: the same specs `xlt
    run` builds, so the two share records. `data_dir` decides `data_source` ("local" or "hub"); the path is not
    part of a spec's identity, but the data is: each spec of a known task carries `data_revision`, the hub
    revisions or a fingerprint of the local files it will read (xlt.tasks.sources.plan_data)."""
    fields = dict(config.spec_fields)
    fields.setdefault("data_source", "local" if data_dir is not None else "hub")
    if fields.get("languages") is not None:
        fields["languages"] = split_list(fields["languages"])
    specs: dict[str, RunSpec] = {}
    for model in config.models:
        for task in config.tasks:
            overrides = {**coerce_hparams(config.overrides),
                         **coerce_hparams(config.task_overrides.get(task, {})),
                         **coerce_hparams(config.model_overrides.get(model, {}))}
            for seed in config.seeds:
                spec = RunSpec.create(model, task, seed=seed, overrides=overrides, tasks_dir=tasks_dir, **fields)
                spec = _with_data_revision(spec, data_dir, tasks_dir)
                specs.setdefault(spec.run_id, spec)
    return list(specs.values())


_REVISIONS: dict[tuple, str | None] = {}


def _with_data_revision(spec: RunSpec, data_dir, tasks_dir) -> RunSpec:
    """`spec` with the identity of the data it reads, computed once per (task, data, languages)."""
    import dataclasses

    from xlt.runner import effective_data_dir, evaluated_languages
    from xlt.spec import find_task
    from xlt.tasks.sources import plan_data

    task = find_task(spec.task, tasks_dir)
    if task is None:   # an unknown task: check_tasks says so; test jobs may use made-up ones
        return spec
    ddir = effective_data_dir(spec, data_dir)
    key = (task.path, str(ddir), spec.languages, spec.data_source)
    if key not in _REVISIONS:
        _REVISIONS[key] = plan_data(task, ddir, evaluated_languages(spec, task)).revision
    return dataclasses.replace(spec, data_revision=_REVISIONS[key])


def check_tasks(specs: Iterable[RunSpec], tasks_dir: Path | str | None = None) -> None:
    """Fail before scheduling anything if a task name is unknown."""
    from xlt.tasks import get_task

    for name in dict.fromkeys(s.task for s in specs):
        get_task(name, tasks_dir=tasks_dir)


@dataclass(frozen=True)
class ModelCheck:
    """What a sweep's model name resolved to before anything ran."""

    name: str
    kind: str          # "registry" | "local" | "hub" (not checkable offline) | "error"
    detail: str        # the hub id or directory it resolves to, what could not be checked, or the problem


def _goes_to_hub(name: str) -> bool:
    """True for the names `resolve_model` would look up on the hub (an org/name that is no registry entry,
    no registry hub id and no path here). Those are not fetched at check time: the check must work offline."""
    from xlt.models.registry import REGISTRY

    if name in REGISTRY or any(info.hub_id == name for info in REGISTRY.values()):
        return False
    if name.startswith((".", "/", "~")) or Path(name).expanduser().exists():
        return False   # a path: resolve_model reads it, or says it is not a checkpoint
    return "/" in name or "\\" in name   # org/name; a bare name is a registry name or unknown


def _hub_cached(hub_id: str) -> bool:
    try:
        from huggingface_hub import try_to_load_from_cache

        return isinstance(try_to_load_from_cache(hub_id, "config.json"), str)
    except Exception:  # noqa: BLE001 - an id the hub client rejects is simply "not cached"
        return False


def check_models(names: Iterable[str]) -> list[ModelCheck]:
    """Resolve every model name the way a run does (`xlt.models.registry.resolve_model`), without the network.

    A hub id cannot be confirmed offline, so it is reported as "hub" (not checked) rather than claimed to exist.
    """
    from xlt.models.registry import resolve_model

    checks = []
    for name in dict.fromkeys(names):
        if _goes_to_hub(name):
            where = "its config.json is in the local hub cache" if _hub_cached(name) else "not in the local hub cache"
            checks.append(ModelCheck(name, "hub", f"hub id, not checked offline ({where}); the job fetches it"))
            continue
        try:
            info = resolve_model(name)
        except XltError as exc:
            checks.append(ModelCheck(name, "error", str(exc)))
            continue
        checks.append(ModelCheck(name, "local" if info.is_local else "registry", info.hub_id))
    return checks


def require_models(specs: Iterable[RunSpec]) -> list[ModelCheck]:
    """`check_models` for a sweep's specs; every name that cannot be resolved in one XltError."""
    from xlt.models.registry import known_names

    checks = check_models(s.model for s in specs)
    bad = [c for c in checks if c.kind == "error"]
    if bad:
        lines = "\n".join(f"  {c.detail}" for c in bad)
        raise XltError(f"{len(bad)} model name(s) cannot be resolved; nothing was run:\n{lines}\n"
                       f"registry names: {', '.join(known_names())}; or pass a hub id (org/name) or a local "
                       f"checkpoint directory with config.json")
    return checks


@dataclass(frozen=True)
class PlannedSpec:
    spec: RunSpec
    done: bool               # a completed record exists (and --force was not given)
    record_path: Path


def plan(specs: Iterable[RunSpec], results_dir: Path | str, *, force: bool = False) -> list[PlannedSpec]:
    """Which specs already have a completed record. With `force`, nothing counts as done."""
    return [PlannedSpec(s, (not force) and completed_record(results_dir, s) is not None,
                        spec_record_path(results_dir, s)) for s in specs]

