"""TaskSpec and Source: one task file, built and checked key by key (every problem reported with its line).

The file's `type:` names a task type (xlt.tasktypes); the type decides which `columns:` a source maps, which
local formats it reads, which metrics exist, whether `labels:` is needed and which `options:` it takes. A
`hyperparameters:` block holds the task's training defaults (XTREME's recipe for tagging, say), checked
against xlt.spec.Hyperparams.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from xlt.errors import XltError
from xlt.names import check_name
from xlt.paths import reference_file
from xlt.tasks.yamlfile import Checker, Problem, TaskFileError, read_yaml


@dataclass(frozen=True)
class Source:
    """Where (some of) a task's splits come from: a hub dataset or local files, and how to read them."""

    hub: str | None = None                 # namespaced hub id, e.g. "facebook/xnli"
    config: str | None = None              # config name pattern, "{lang}" expands to the language code
    revision: str | None = None            # commit sha (or a ref such as refs/convert/parquet)
    data_files: str | None = None          # hub file pattern with {lang}/{split} (parquet exports)
    files: str | None = None               # local pattern with {split} and {lang}, relative to the YAML
    format: str | None = None              # format of local files (default: from the extension, per type)
    columns: tuple[tuple[str, str], ...] = ()      # (role, source column), e.g. ("text_a", "premise")
    label_map: tuple[tuple[str, str], ...] = ()    # (source value as text, label name)
    drop_labels: tuple[str, ...] = ()              # source label values whose rows are dropped (e.g. "-1")
    split_names: tuple[tuple[str, str], ...] = ()  # (xlt split, source split) where they differ
    lang_codes: tuple[tuple[str, str], ...] = ()   # (xlt language, source language code) where they differ
    languages: tuple[str, ...] | None = None       # only these languages (None: all)
    splits: tuple[str, ...] | None = None          # only these splits (None: all)
    data_dir_name: str | None = None       # folder under --data-dir (default: the task name)
    id_prefix: str | None = None           # keep only rows whose `id` starts with this ({lang} expands)

    def matches(self, split: str, lang: str) -> bool:
        return (self.languages is None or lang in self.languages) and (self.splits is None or split in self.splits)

    def source_split(self, split: str) -> str:
        return dict(self.split_names).get(split, split)

    def source_lang(self, lang: str) -> str:
        return dict(self.lang_codes).get(lang, lang)

    def config_for(self, lang: str) -> str | None:
        return None if self.config is None else self.config.replace("{lang}", self.source_lang(lang))

    def prefix_for(self, lang: str) -> str | None:
        return None if self.id_prefix is None else self.id_prefix.replace("{lang}", self.source_lang(lang))

    def column(self, role: str) -> str:
        return dict(self.columns)[role]

    def describe(self, split: str, lang: str) -> str:
        if self.hub:
            rev = self.revision or "main (unpinned)"
            cfg = self.config_for(lang)
            return f"hub:{self.hub}" + (f" config={cfg}" if cfg else "") + \
                (f" files={self.data_files_for(split, lang)}" if self.data_files else "") + \
                f" split={self.source_split(split)} revision={rev}"
        return str(self.local_path(split, lang))

    def data_files_for(self, split: str, lang: str) -> str | None:
        if self.data_files is None:
            return None
        return self.data_files.replace("{split}", self.source_split(split)).replace("{lang}", self.source_lang(lang))

    def local_path(self, split: str, lang: str) -> Path:
        assert self.files is not None
        return Path(self.files.replace("{split}", self.source_split(split)).replace("{lang}", self.source_lang(lang)))

    def to_dict(self) -> dict:
        return {k: v for k, v in (
            ("hub", self.hub), ("config", self.config), ("revision", self.revision),
            ("data_files", self.data_files), ("files", self.files),
            ("format", self.format), ("columns", dict(self.columns)), ("label_map", dict(self.label_map)),
            ("drop_labels", list(self.drop_labels)),
            ("split_names", dict(self.split_names)), ("lang_codes", dict(self.lang_codes)),
            ("languages", list(self.languages) if self.languages else None),
            ("splits", list(self.splits) if self.splits else None), ("data_dir_name", self.data_dir_name),
            ("id_prefix", self.id_prefix),
        ) if v not in (None, {}, [])}


SOURCE_KEYS = ("hub", "config", "revision", "data_files", "files", "format", "columns", "label_map", "drop_labels",
               "split_names", "lang_codes", "languages", "splits", "data_dir_name", "id_prefix")


def _build_source(ck: Checker, raw: Any, path: tuple, yaml_dir: Path, ttype, label_names: list[str] | None
                  ) -> Source | None:
    if not isinstance(raw, dict):
        ck.add(path, f"{ck.where(path)} must be a mapping with `hub:` or `files:`",
               "write e.g. `hub: facebook/xnli` and `columns: {...}` under it")
        return None
    n_before = len(ck.problems)
    ck.unknown_keys(raw, path, SOURCE_KEYS)
    hub = ck.str_(raw, path, "hub", required=False)
    files = ck.str_(raw, path, "files", required=False)
    if (hub is None) == (files is None):
        ck.add(path, f"{ck.where(path)} needs exactly one of `hub:` (a dataset id) or `files:` (a local pattern)",
               "e.g. `hub: facebook/xnli` or `files: data/{split}-{lang}.tsv`")
    if hub is not None and "/" not in hub:
        ck.add(path + ("hub",), f"hub id {hub!r} is not namespaced",
               "write the full id, e.g. `facebook/xnli` rather than `xnli`")
    config = ck.str_(raw, path, "config", required=False)
    revision = ck.str_(raw, path, "revision", required=False)
    data_files = ck.str_(raw, path, "data_files", required=False)
    if data_files is not None and hub is None:
        ck.add(path + ("data_files",), "`data_files:` only applies to `hub:` sources",
               "use `files:` for local files")
    if hub is not None and revision is None:
        ck.add(path, f"{ck.where(path)} has no `revision:`",
               "pin a commit sha (or write `revision: main` with a comment that it is unpinned)")
    fmt = ck.str_(raw, path, "format", required=False)
    formats = sorted(set(ttype.extensions.values())) if ttype is not None else []
    if fmt is not None and ttype is not None and fmt not in formats:
        ck.add(path + ("format",), f"format {fmt!r} is not one type {ttype.name} reads",
               f"use one of: {', '.join(formats)}")
    if files is not None:
        if "{lang}" not in files:
            ck.add(path + ("files",), f"files pattern {files!r} has no {{lang}} placeholder",
                   "write e.g. `files: data/{split}-{lang}.tsv`")
        ext = Path(files).suffix.lstrip(".")
        if fmt is None and ttype is not None and ext not in ttype.extensions:
            ck.add(path + ("files",), f"cannot tell the file format of {files!r}",
                   f"use an extension among {', '.join(ttype.extensions)} or a `format:` among {', '.join(formats)}")
        if not Path(files).is_absolute():
            files = str((yaml_dir / files))
    columns = ck.mapping(raw, path, "columns")
    cols: list[tuple[str, str]] = []
    if columns is not None and ttype is not None:
        for role in ttype.columns:
            if role not in columns or not isinstance(columns[role], str):
                ck.add(path + ("columns",), f"columns has no {role!r} entry (type {ttype.name} needs "
                       f"{', '.join(ttype.columns)})", f"add `{role}: <column name in the source>`")
            else:
                cols.append((role, columns[role]))
        ck.unknown_keys(columns, path + ("columns",), ttype.columns)
    label_map: list[tuple[str, str]] = []
    lm = ck.mapping(raw, path, "label_map", required=False)
    if lm is not None:
        for key, value in lm.items():
            if label_names is not None and str(value) not in label_names:
                ck.add(path + ("label_map", key), f"label_map maps {key!r} to {value!r}, not one of the labels "
                       f"{label_names}", "map each source value to one of `labels:`")
            label_map.append((str(key), str(value)))
    drop_labels = ck.str_list(raw, path, "drop_labels", required=False) or []
    pairs = {}
    for key in ("split_names", "lang_codes"):
        m = ck.mapping(raw, path, key, required=False) or {}
        pairs[key] = tuple((str(k), str(v)) for k, v in m.items())
    langs = ck.str_list(raw, path, "languages", required=False)
    splits = ck.str_list(raw, path, "splits", required=False)
    data_dir_name = ck.str_(raw, path, "data_dir_name", required=False)
    for key, value, what in (("languages", langs, "language"), ("splits", splits, "split"),
                             ("data_dir_name", data_dir_name, "data_dir_name")):
        ck.names(path + (key,), value, what)
    for key, what in (("split_names", "split"), ("lang_codes", "language")):
        for xlt_name, source_name in pairs[key]:
            ck.names(path + (key, xlt_name), [xlt_name, source_name], what)
    id_prefix = ck.str_(raw, path, "id_prefix", required=False)
    if len(ck.problems) > n_before:
        return None
    return Source(hub=hub, config=config, revision=revision, data_files=data_files, files=files, format=fmt,
                  columns=tuple(cols), label_map=tuple(label_map), drop_labels=tuple(drop_labels),
                  split_names=pairs["split_names"], lang_codes=pairs["lang_codes"],
                  languages=tuple(langs) if langs else None, splits=tuple(splits) if splits else None,
                  data_dir_name=data_dir_name, id_prefix=id_prefix)


TASK_KEYS = ("name", "type", "version", "description", "citation", "labels", "source_lang", "train_split",
             "dev_split", "languages", "eval_splits", "metrics", "primary_metric", "reference", "source",
             "sources", "hyperparameters", "options")


@dataclass(frozen=True)
class TaskSpec:
    """One task, as its YAML file declares it. Build it with `TaskSpec.from_yaml(path)`."""

    name: str
    type: str
    version: int
    description: str
    citation: str
    source_lang: str
    train_split: str
    dev_split: str
    languages: tuple[str, ...]
    eval_splits: tuple[str, ...]
    label_names: tuple[str, ...]
    metrics: tuple[str, ...]
    primary_metric: str
    reference: Path | None          # results/reference/<file> if it exists in this installation
    sources: tuple[Source, ...] = field(repr=False)
    path: Path | None = field(default=None, compare=False)   # the YAML file it came from
    hyperparameters: tuple[tuple[str, Any], ...] = ()         # the task's training defaults
    options: tuple[tuple[str, Any], ...] = ()                 # type-specific settings (`options:`)

    def __post_init__(self) -> None:
        # A TaskSpec built in code gets the cross-field checks a YAML file gets.
        from xlt.tasktypes import get_task_type

        ttype = get_task_type(self.type)
        for what, values in (("task name", [self.name]), ("language", self.languages), ("split", self.splits)):
            for value in values:
                check_name(what, value)
        if ttype.trains and self.source_lang not in self.languages:
            raise XltError(f"task {self.name!r}: source_lang {self.source_lang!r} is not in languages")
        if self.primary_metric not in self.metrics:
            raise XltError(f"task {self.name!r}: primary_metric {self.primary_metric!r} is not in metrics")
        unknown = [m for m in self.metrics if m not in ttype.metrics]
        if unknown:
            raise XltError(f"task {self.name!r}: unknown metric(s) {unknown} for type {self.type}")
        if not self.sources:
            raise XltError(f"task {self.name!r} has no source")

    @property
    def task_type(self):
        from xlt.tasktypes import get_task_type

        return get_task_type(self.type)

    @property
    def num_labels(self) -> int:
        return len(self.label_names)

    @property
    def hparams(self) -> dict[str, Any]:
        return dict(self.hyperparameters)

    @property
    def option_values(self) -> dict[str, Any]:
        return dict(self.options)

    @property
    def splits(self) -> tuple[str, ...]:
        """Every split the task reads: train and dev (source language) when its type trains, and the evaluation
        splits."""
        return tuple(dict.fromkeys((*self.task_type.required_splits(self), *self.eval_splits)))

    @property
    def fingerprint(self) -> str:
        """`task-sha256:<hash>` of everything in the file that reaches the data or the metrics: type, version,
        labels, languages, splits, metrics, options and every source (hub, revision, columns, label maps, file
        pattern). Not the description, citation, reference or hyperparameters (the spec has those itself),
        nor where the file lies. A run's spec carries it, so an edited task file is a new run id."""
        data = self.to_dict()
        for key in ("description", "citation", "reference", "hyperparameters", "path"):
            data.pop(key)
        for src in data["sources"]:
            if "files" in src:
                src["files"] = Path(src["files"]).name   # the pattern, not the folder it was found in
        canonical = json.dumps(data, sort_keys=True, separators=(",", ":"), default=str)
        return "task-sha256:" + hashlib.sha256(canonical.encode()).hexdigest()[:16]

    def source_for(self, split: str, lang: str) -> Source:
        """The first source that serves this split and language."""
        self.check_split_lang(split, lang)
        for src in self.sources:
            if src.matches(split, lang):
                return src
        raise XltError(f"task {self.name!r} has no source for split {split!r} in language {lang!r}; "
                       f"add one to `sources:` in {self.path or 'its task file'}")

    def check_split_lang(self, split: str, lang: str) -> None:
        if lang not in self.languages:
            raise XltError(f"unknown language {lang!r} for task {self.name!r}; valid: {', '.join(self.languages)}")
        if split not in self.splits:
            raise XltError(f"unknown split {split!r} for task {self.name!r}; valid: {', '.join(self.splits)}")

    def to_dict(self) -> dict:
        """The spec as plain data (what `xlt tasks show --json` prints and a record can embed)."""
        return {
            "name": self.name, "type": self.type, "version": self.version, "description": self.description,
            "citation": self.citation, "labels": list(self.label_names), "source_lang": self.source_lang,
            "train_split": self.train_split, "dev_split": self.dev_split, "languages": list(self.languages),
            "eval_splits": list(self.eval_splits), "metrics": list(self.metrics),
            "primary_metric": self.primary_metric, "reference": str(self.reference) if self.reference else None,
            "hyperparameters": self.hparams, "options": self.option_values,
            "sources": [s.to_dict() for s in self.sources], "path": str(self.path) if self.path else None,
        }

    @classmethod
    def from_yaml(cls, path: str | Path) -> "TaskSpec":
        """Build a TaskSpec from a task file; raise TaskFileError listing every problem found."""
        spec, problems = check_task_file(path)
        if problems:
            raise TaskFileError(problems)
        assert spec is not None
        return spec


def _check_hyperparameters(ck: Checker, raw: Mapping) -> tuple[tuple[str, Any], ...]:
    from xlt.spec import check_hparams

    values = []
    for key, value in raw.items():
        try:
            values += list(check_hparams({key: value}).items())
        except XltError as exc:
            ck.add(("hyperparameters", key), str(exc), "see `xlt run --help` for the hyperparameters and ranges")
    return tuple(values)


def check_task_file(path: str | Path) -> tuple[TaskSpec | None, list[Problem]]:
    """Read one task file and return (spec or None, every problem found). Never raises for bad input."""
    from xlt import tasktypes

    path = Path(path)
    data, marks, problems = read_yaml(path)
    if data is None:
        return None, problems
    ck = Checker(path, marks)
    ck.problems.extend(problems)
    if not isinstance(data, dict):
        ck.add((), "a task file must be a mapping of keys (name:, type:, ...)", "see docs/tasks.md for the schema")
        return None, ck.problems
    ck.unknown_keys(data, (), TASK_KEYS)

    name = ck.str_(data, (), "name")
    if name is not None and name != path.stem:
        ck.add(("name",), f"name {name!r} differs from the file name {path.name!r}",
               f"rename the file to {name}.yaml or set `name: {path.stem}`")
    type_name = ck.str_(data, (), "type")
    ttype = None
    if type_name is not None:
        try:
            ttype = tasktypes.get_task_type(type_name)
        except XltError:
            ck.add(("type",), f"unknown type {type_name!r}", f"use one of: {', '.join(tasktypes.names())}")
    version = data.get("version", None)
    if version is None:
        ck.add((), "missing required key 'version'", "add `version: 1` (bump it when the data or labels change)")
    elif isinstance(version, bool) or not isinstance(version, int) or version < 1:
        ck.add(("version",), f"version must be a positive integer, got {version!r}", "write `version: 1`")
        version = None
    description = ck.str_(data, (), "description", required=False, default="")
    citation = ck.str_(data, (), "citation", required=False, default="")
    uses_labels = ttype is None or ttype.uses_labels
    labels = ck.str_list(data, (), "labels", required=uses_labels)
    if labels is not None and uses_labels and len(labels) < 2:
        ck.add(("labels",), "a classification task needs at least two labels", "list every label name")
    source_lang = ck.str_(data, (), "source_lang")
    train_split = ck.str_(data, (), "train_split", required=False, default="train")
    dev_split = ck.str_(data, (), "dev_split", required=False, default="validation")
    languages = ck.str_list(data, (), "languages")
    # a type that trains evaluates its source language too; one that does not (retrieval) may only pivot on it
    if languages is not None and source_lang is not None and source_lang not in languages and \
            (ttype is None or ttype.trains):
        ck.add(("source_lang",), f"source_lang {source_lang!r} is not in languages",
               f"add {source_lang!r} to `languages:`")
    eval_splits = ck.str_list(data, (), "eval_splits")
    ck.names(("name",), name, "name")
    for key, value, what in (("languages", languages, "language"), ("source_lang", source_lang, "source_lang"),
                             ("train_split", train_split, "train_split"), ("dev_split", dev_split, "dev_split"),
                             ("eval_splits", eval_splits, "split")):
        ck.names((key,), value, what)
    default_metrics = list(ttype.default_metrics) if ttype is not None else []
    metrics = ck.str_list(data, (), "metrics", required=False) or default_metrics
    if ttype is not None:
        for i, m in enumerate(metrics):
            if m not in ttype.metrics:
                ck.add(("metrics", i), f"unknown metric {m!r} for type {ttype.name}",
                       f"use one of: {', '.join(ttype.metrics)}")
    primary = ck.str_(data, (), "primary_metric", required=False, default=metrics[0] if metrics else None)
    if primary is not None and primary not in metrics:
        ck.add(("primary_metric",), f"primary_metric {primary!r} is not in metrics {metrics}",
               "pick one of the listed metrics")
    reference_name = ck.str_(data, (), "reference", required=False)
    reference = None
    if reference_name is not None:
        ref = Path(reference_name)
        reference = ref if ref.is_absolute() else (reference_file(reference_name) or (path.parent / ref))
        reference = reference if reference.is_file() else None  # optional: absent numbers are not an error
    hparams = ()
    raw_hp = ck.mapping(data, (), "hyperparameters", required=False)
    if raw_hp is not None:
        hparams = _check_hyperparameters(ck, raw_hp)
    options = ()
    raw_opts = ck.mapping(data, (), "options", required=False)
    if raw_opts is not None and ttype is not None:
        for message in ttype.check_options(raw_opts):
            ck.add(("options",), message, f"see docs/task-types.md for the options of {ttype.name}")
        options = tuple(sorted(raw_opts.items()))

    sources: list[Source] = []
    if ("source" in data) == ("sources" in data):
        ck.add((), "a task needs exactly one of `source:` (one source) or `sources:` (a list)",
               "add a `source:` block with `hub:` or `files:`")
    else:
        raw_list = [data["source"]] if "source" in data else data["sources"]
        base = ("source",) if "source" in data else ("sources",)
        if not isinstance(raw_list, list) or not raw_list:
            ck.add(base, "`sources:` must be a non-empty list", "write `sources:` then `- hub: ...` items")
        else:
            for i, raw in enumerate(raw_list):
                p = base if "source" in data else base + (i,)
                src = _build_source(ck, raw, p, path.resolve().parent, ttype, labels)
                if src is None:
                    continue
                if languages is not None:
                    for lang in src.languages or ():
                        if lang not in languages:
                            ck.add(p + ("languages",), f"source language {lang!r} is not in the task's languages",
                                   "add it to `languages:` or remove it here")
                sources.append(src)
            # every (split, language) the task will read must be served by some source
            if len(sources) == len(raw_list) and languages and eval_splits and train_split and dev_split \
                    and source_lang:
                needed = [(s, l) for s in eval_splits for l in languages]
                if ttype is None or ttype.trains:   # a type that does not train reads no train or dev split
                    needed += [(train_split, source_lang), (dev_split, source_lang)]
                gaps = [(s, l) for s, l in needed if not any(src.matches(s, l) for src in sources)]
                if gaps:
                    ck.add(base, f"no source serves {', '.join(f'{s}/{l}' for s, l in gaps[:6])}"
                           + (" ..." if len(gaps) > 6 else ""),
                           "add a catch-all source (without `languages:`/`splits:`) or widen a selector")
    if ck.problems:
        return None, ck.problems
    try:
        spec = TaskSpec(name=name, type=type_name, version=version, description=description.strip(),
                        citation=citation.strip(), source_lang=source_lang, train_split=train_split,
                        dev_split=dev_split, languages=tuple(languages), eval_splits=tuple(eval_splits),
                        label_names=tuple(labels or ()), metrics=tuple(metrics), primary_metric=primary,
                        reference=reference, sources=tuple(sources), path=path.resolve(),
                        hyperparameters=hparams, options=options)
    except XltError as exc:  # a cross-field check the per-key checks above missed
        return None, [Problem(str(path), 1, str(exc), "see docs/tasks.md")]
    return spec, []
