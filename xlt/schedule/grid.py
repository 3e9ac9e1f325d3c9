"""The sweep grid: what a sweep covers (SweepConfig, sweep YAML files), the RunSpecs it expands to, the
checks that run before anything is scheduled (task and model names), and which specs are already done."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from xlt.errors import XltError
from xlt.results import completed_record, spec_record_path
from xlt.spec import RunSpec, check_hparams

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
    """Every (model, task, seed) as a RunSpec, in that nesting order, duplicates removed. Each task is resolved
    once (a name, or a task file's path recorded by its name, as `xlt run` does) and every spec comes from
    `xlt.recipes.build_spec`, the builder `xlt run` uses, so the two share run ids and records. An unknown task
    is an XltError before anything is scheduled."""
    from xlt.recipes import build_spec, model_config
    from xlt.tasks.registry import resolve_task_arg

    fields = dict(config.spec_fields)
    if fields.get("languages") is not None and not isinstance(fields["languages"], (list, tuple)):
        fields["languages"] = split_list(fields["languages"])
    tasks = {name: resolve_task_arg(name, tasks_dir)[0] for name in config.tasks}
    configs = {model: model_config(model) for model in config.models}
    specs: dict[str, RunSpec] = {}
    for model in config.models:
        for name, task in tasks.items():
            overrides = {**check_hparams(config.overrides), **check_hparams(config.task_overrides.get(name, {})),
                         **check_hparams(config.model_overrides.get(model, {}))}
            for seed in config.seeds:
                spec = build_spec(model, task, seed, overrides=overrides, data_dir=data_dir, config=configs[model],
                                  **fields)
                specs.setdefault(spec.run_id, spec)
    return list(specs.values())


def task_folders(config: SweepConfig, tasks_dir: Path | str | None = None) -> list[Path]:
    """The task folders a sweep's jobs search: --tasks-dir and the folder of every task given as a file."""
    from xlt.tasks.registry import resolve_task_arg

    folders = [] if tasks_dir is None else [Path(tasks_dir)]
    for name in config.tasks:
        for folder in resolve_task_arg(name, tasks_dir)[1]:
            if folder.resolve() not in [f.resolve() for f in folders]:
                folders.append(folder)
    return folders


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
    stale: tuple[str, ...] = ()   # run ids of completed records of the same experiment under an earlier identity

    @property
    def status(self) -> str:
        return "done" if self.done else ("stale" if self.stale else "to run")

    def to_dict(self) -> dict[str, Any]:
        s = self.spec
        return {"run_id": s.run_id, "model": s.model, "task": s.task, "seed": s.seed, "status": self.status,
                "stale": list(self.stale), "record": str(self.record_path)}


IDENTITY_FIELDS = ("data_revision", "task_revision", "model_revision")


def _experiment(spec: Mapping[str, Any]) -> str:
    """A spec without the identity of what it read (data, task file, checkpoint): the same experiment."""
    import json

    out = {k: v for k, v in spec.items() if k not in IDENTITY_FIELDS}
    if out.get("languages") is not None:
        out["languages"] = sorted(set(out["languages"]))
    return json.dumps(out, sort_keys=True, default=str)


def plan(specs: Iterable[RunSpec], results_dir: Path | str, *, force: bool = False) -> list[PlannedSpec]:
    """Which specs already have a completed record. With `force`, nothing counts as done. A completed record
    of the same experiment under another run id (written before the task file, the checkpoint or the data
    changed, or by an xlt whose run ids did not cover them) is not done: it is listed as `stale`."""
    from xlt.results import RecordError, read_record

    folders: dict[Path, list[dict]] = {}
    out = []
    for s in specs:
        path = spec_record_path(results_dir, s)
        done = (not force) and completed_record(results_dir, s) is not None
        if path.parent not in folders:
            found = []
            for file in sorted(path.parent.glob("*.json")) if path.parent.is_dir() else []:
                try:
                    found.append(read_record(file))
                except RecordError:
                    continue
            folders[path.parent] = [r for r in found if r["status"] == "completed"]
        key = _experiment(s.to_dict())
        stale = tuple(r["run_id"] for r in folders[path.parent]
                      if r["run_id"] != s.run_id and _experiment(r["spec"]) == key)
        out.append(PlannedSpec(s, done, path, () if done else stale))
    return out
