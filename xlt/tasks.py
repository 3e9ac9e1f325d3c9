"""Tasks as data: `TaskSpec` from `tasks/*.yaml`, the registry, and the sources a split is read from.

A task file says everything that differs between tasks (see docs/tasks.md for the schema):

    name: xnli                          # equals the file name (xnli.yaml)
    type: pair-classification           # code dispatches on this, never on the name
    version: 1
    description: ...
    citation: ...
    labels: [entailment, neutral, contradiction]
    source_lang: en
    train_split: train                  # source language only
    dev_split: validation               # model selection, source language only
    languages: [en, fr, ...]            # every language evaluated, source language included
    eval_splits: [test, validation]
    metrics: [accuracy, macro_f1]
    primary_metric: accuracy
    reference: xnli.csv                 # results/reference/<file>, optional
    source:                             # or `sources:`, a list tried in order (first match wins)
      hub: facebook/xnli                # or `files: data/{split}-{lang}.tsv` (relative to the YAML)
      config: "{lang}"
      revision: <commit sha>
      columns: {text_a: premise, text_b: hypothesis, label: label}

A source in a `sources:` list may restrict itself with `languages:` and/or `splits:`, so a task can take
its English training data from one dataset and its target languages from another (americasnli.yaml).

`--data-dir DIR` replaces hub sources with local files `DIR/<data_dir_name>/<split>-<lang>.<ext>` (ext
tsv, csv, jsonl or parquet; `data_dir_name` defaults to the task name). Files named by `files:` are read
as they are.

Every problem in a file is reported with the file, the line and the fix; a broken or duplicate task file
is an error, never skipped.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import yaml

from xlt.errors import XltError
from xlt.paths import builtin_tasks_dir, reference_file

LOCAL_FORMATS = ("tsv", "csv", "jsonl", "parquet")
KNOWN_METRICS = ("accuracy", "macro_f1")


@dataclass(frozen=True)
class TaskType:
    """What a `type:` needs from its sources, and whether this version of xlt can run it."""

    name: str
    columns: tuple[str, ...]     # column roles each source must map (`columns:`), label last
    implemented: bool


TASK_TYPES: dict[str, TaskType] = {
    "pair-classification": TaskType("pair-classification", ("text_a", "text_b", "label"), True),
    # Declared so task files can name them; loading one is a clear error until they are implemented.
    "token-classification": TaskType("token-classification", ("tokens", "tags"), False),
    "extractive-qa": TaskType("extractive-qa", ("question", "context", "answers"), False),
}


# --------------------------------------------------------------------------------------------------
# Problems and the YAML reader that keeps line numbers


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a task file: where, what, and how to fix it."""

    file: str
    line: int | None
    message: str
    fix: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.message} (fix: {self.fix})"


class TaskFileError(XltError):
    """A task file (or several) could not be built; `problems` holds every one found."""

    def __init__(self, problems: Sequence[Problem]):
        self.problems = list(problems)
        lines = "\n  ".join(str(p) for p in self.problems)
        super().__init__(f"{len(self.problems)} problem(s) in task files:\n  {lines}")


def _read_yaml(path: Path) -> tuple[Any, dict[tuple, int], list[Problem]]:
    """Parse a YAML file; return its data, the line of every key/item (by path) and parse problems."""
    file = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return None, {}, [Problem(file, None, f"cannot read the file: {exc}", "check the path and encoding (UTF-8)")]
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        what = " ".join(str(x) for x in (getattr(exc, "context", None), getattr(exc, "problem", None)) if x)
        return None, {}, [Problem(file, mark.line + 1 if mark else None, f"malformed YAML: {what or exc}",
                                  "fix the YAML syntax at that line (indentation, quoting, a missing ':')")]
    if node is None:
        return None, {}, [Problem(file, 1, "the file is empty", "write a task mapping (see docs/tasks.md)")]
    marks: dict[tuple, int] = {(): node.start_mark.line + 1}
    problems: list[Problem] = []

    def walk(n: yaml.Node, path: tuple) -> None:
        if isinstance(n, yaml.MappingNode):
            seen: set = set()
            for key_node, value_node in n.value:
                key = key_node.value
                if key in seen:
                    problems.append(Problem(file, key_node.start_mark.line + 1, f"duplicate key {key!r}",
                                            "keep one of them"))
                seen.add(key)
                marks[path + (key,)] = key_node.start_mark.line + 1
                walk(value_node, path + (key,))
        elif isinstance(n, yaml.SequenceNode):
            for i, item in enumerate(n.value):
                marks[path + (i,)] = item.start_mark.line + 1
                walk(item, path + (i,))

    walk(node, ())
    try:
        data = yaml.SafeLoader(text).get_single_data()
    except yaml.YAMLError as exc:  # e.g. a bad tag; composing succeeded so this is rare
        mark = getattr(exc, "problem_mark", None)
        return None, marks, [Problem(file, mark.line + 1 if mark else None, f"malformed YAML: {exc}",
                                     "fix the YAML at that line")]
    return data, marks, problems


class _Checker:
    """Collects problems for one file, each located at the line of the key it concerns."""

    def __init__(self, path: Path, marks: dict[tuple, int]):
        self.file = str(path)
        self.marks = marks
        self.problems: list[Problem] = []

    def line(self, path: tuple) -> int | None:
        while path not in self.marks and path:
            path = path[:-1]
        return self.marks.get(path)

    def add(self, path: tuple, message: str, fix: str) -> None:
        self.problems.append(Problem(self.file, self.line(path), message, fix))

    def where(self, path: tuple) -> str:
        return ".".join(str(p) for p in path) or "<top level>"

    # typed getters: each returns the value (or the default) and records a problem when it is wrong
    def str_(self, data: Mapping, path: tuple, key: str, required: bool = True, default: str | None = None):
        if key not in data or data[key] is None:
            if required:
                self.add(path, f"missing required key {self.where(path + (key,))!r}", f"add `{key}: ...`")
            return default
        value = data[key]
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            self.add(path + (key,), f"{self.where(path + (key,))} must be a string, got {type(value).__name__}",
                     f"write `{key}: some text`")
            return default
        return str(value)

    def str_list(self, data: Mapping, path: tuple, key: str, required: bool = True) -> list[str] | None:
        if key not in data or data[key] is None:
            if required:
                self.add(path, f"missing required key {self.where(path + (key,))!r}", f"add `{key}: [a, b]`")
            return None
        value = data[key]
        if not isinstance(value, list) or not value:
            self.add(path + (key,), f"{self.where(path + (key,))} must be a non-empty list",
                     f"write `{key}: [a, b]`")
            return None
        out = []
        for i, item in enumerate(value):
            if isinstance(item, bool) or not isinstance(item, (str, int)) or str(item).strip() == "":
                self.add(path + (key, i), f"{self.where(path + (key, i))} must be a non-empty string, got {item!r}",
                         "quote the value")
                continue
            out.append(str(item))
        seen: set[str] = set()
        for i, item in enumerate(out):
            if item in seen:
                self.add(path + (key, i), f"{item!r} appears twice in {self.where(path + (key,))}",
                         "list each value once")
            seen.add(item)
        return out

    def mapping(self, data: Mapping, path: tuple, key: str, required: bool = True) -> dict | None:
        if key not in data or data[key] is None:
            if required:
                self.add(path, f"missing required key {self.where(path + (key,))!r}", f"add a `{key}:` mapping")
            return None
        value = data[key]
        if not isinstance(value, dict):
            self.add(path + (key,), f"{self.where(path + (key,))} must be a mapping (key: value lines)",
                     f"indent `{key}:` entries as `name: value`")
            return None
        return value

    def unknown_keys(self, data: Mapping, path: tuple, allowed: Iterable[str]) -> None:
        allowed = tuple(allowed)
        for key in data:
            if key not in allowed:
                self.add(path + (key,), f"unknown key {self.where(path + (key,))!r}",
                         f"remove it or use one of: {', '.join(allowed)}")


# --------------------------------------------------------------------------------------------------
# Sources


@dataclass(frozen=True)
class Source:
    """Where (some of) a task's splits come from: a hub dataset or local files, and how to read them."""

    hub: str | None = None                 # namespaced hub id, e.g. "facebook/xnli"
    config: str | None = None              # config name pattern, "{lang}" expands to the language code
    revision: str | None = None            # commit sha (or a ref such as refs/convert/parquet)
    data_files: str | None = None          # hub file pattern with {lang}/{split} (parquet exports)
    files: str | None = None               # local pattern with {split} and {lang}, relative to the YAML
    format: str | None = None              # tsv|csv|jsonl|parquet for `files:` (default: the extension)
    columns: tuple[tuple[str, str], ...] = ()      # (role, source column), e.g. ("text_a", "premise")
    label_map: tuple[tuple[str, str], ...] = ()    # (source value as text, label name)
    drop_labels: tuple[str, ...] = ()              # source label values whose rows are dropped (e.g. "-1")
    split_names: tuple[tuple[str, str], ...] = ()  # (xlt split, source split) where they differ
    lang_codes: tuple[tuple[str, str], ...] = ()   # (xlt language, source language code) where they differ
    languages: tuple[str, ...] | None = None       # only these languages (None: all)
    splits: tuple[str, ...] | None = None          # only these splits (None: all)
    data_dir_name: str | None = None       # folder under --data-dir (default: the task name)

    def matches(self, split: str, lang: str) -> bool:
        return (self.languages is None or lang in self.languages) and (self.splits is None or split in self.splits)

    def source_split(self, split: str) -> str:
        return dict(self.split_names).get(split, split)

    def source_lang(self, lang: str) -> str:
        return dict(self.lang_codes).get(lang, lang)

    def config_for(self, lang: str) -> str | None:
        return None if self.config is None else self.config.replace("{lang}", self.source_lang(lang))

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
        ) if v not in (None, {}, [])}


_SOURCE_KEYS = ("hub", "config", "revision", "data_files", "files", "format", "columns", "label_map", "drop_labels",
                "split_names",
                "lang_codes", "languages", "splits", "data_dir_name")


def _build_source(ck: _Checker, raw: Any, path: tuple, yaml_dir: Path, type_: TaskType | None,
                  label_names: list[str] | None) -> Source | None:
    if not isinstance(raw, dict):
        ck.add(path, f"{ck.where(path)} must be a mapping with `hub:` or `files:`",
               "write e.g. `hub: facebook/xnli` and `columns: {...}` under it")
        return None
    n_before = len(ck.problems)
    ck.unknown_keys(raw, path, _SOURCE_KEYS)
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
    if files is not None:
        if "{lang}" not in files:
            ck.add(path + ("files",), f"files pattern {files!r} has no {{lang}} placeholder",
                   "write e.g. `files: data/{split}-{lang}.tsv`")
        ext = fmt or Path(files).suffix.lstrip(".")
        if ext not in LOCAL_FORMATS:
            ck.add(path + ("files",), f"cannot tell the file format of {files!r}",
                   f"use an extension or `format:` among {', '.join(LOCAL_FORMATS)}")
        if not Path(files).is_absolute():
            files = str((yaml_dir / files))
    elif fmt is not None:
        ck.add(path + ("format",), "`format:` only applies to `files:` sources", "remove it")
    columns = ck.mapping(raw, path, "columns")
    cols: list[tuple[str, str]] = []
    if columns is not None and type_ is not None:
        for role in type_.columns:
            if role not in columns or not isinstance(columns[role], str):
                ck.add(path + ("columns",), f"columns has no {role!r} entry (type {type_.name} needs "
                       f"{', '.join(type_.columns)})", f"add `{role}: <column name in the source>`")
            else:
                cols.append((role, columns[role]))
        ck.unknown_keys(columns, path + ("columns",), type_.columns)
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
    if len(ck.problems) > n_before:
        return None
    return Source(hub=hub, config=config, revision=revision, data_files=data_files, files=files, format=fmt, columns=tuple(cols),
                  label_map=tuple(label_map), drop_labels=tuple(drop_labels), split_names=pairs["split_names"],
                  lang_codes=pairs["lang_codes"],
                  languages=tuple(langs) if langs else None, splits=tuple(splits) if splits else None,
                  data_dir_name=data_dir_name)


# --------------------------------------------------------------------------------------------------
# TaskSpec


_TASK_KEYS = ("name", "type", "version", "description", "citation", "labels", "source_lang", "train_split",
              "dev_split", "languages", "eval_splits", "metrics", "primary_metric", "reference", "source",
              "sources")


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

    def __post_init__(self) -> None:
        # A TaskSpec built in code gets the cross-field checks a YAML file gets.
        if self.type not in TASK_TYPES:
            raise XltError(f"task {self.name!r}: unknown type {self.type!r}; known: {', '.join(TASK_TYPES)}")
        if self.source_lang not in self.languages:
            raise XltError(f"task {self.name!r}: source_lang {self.source_lang!r} is not in languages")
        if self.primary_metric not in self.metrics:
            raise XltError(f"task {self.name!r}: primary_metric {self.primary_metric!r} is not in metrics")
        if not self.sources:
            raise XltError(f"task {self.name!r} has no source")

    @property
    def num_labels(self) -> int:
        return len(self.label_names)

    @property
    def splits(self) -> tuple[str, ...]:
        """Every split the task reads: train and dev (source language) and the evaluation splits."""
        return tuple(dict.fromkeys((self.train_split, self.dev_split, *self.eval_splits)))

    @property
    def revision(self) -> str | None:
        """The pinned revision of the task's main (last, catch-all) hub source; each SplitData has its own."""
        return self.sources[-1].revision

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


def check_task_file(path: str | Path) -> tuple[TaskSpec | None, list[Problem]]:
    """Read one task file and return (spec or None, every problem found). Never raises for bad input."""
    path = Path(path)
    data, marks, problems = _read_yaml(path)
    if data is None:
        return None, problems
    ck = _Checker(path, marks)
    ck.problems.extend(problems)
    if not isinstance(data, dict):
        ck.add((), "a task file must be a mapping of keys (name:, type:, ...)", "see docs/tasks.md for the schema")
        return None, ck.problems
    ck.unknown_keys(data, (), _TASK_KEYS)

    name = ck.str_(data, (), "name")
    if name is not None and name != path.stem:
        ck.add(("name",), f"name {name!r} differs from the file name {path.name!r}",
               f"rename the file to {name}.yaml or set `name: {path.stem}`")
    type_name = ck.str_(data, (), "type")
    type_ = None
    if type_name is not None:
        type_ = TASK_TYPES.get(type_name)
        if type_ is None:
            ck.add(("type",), f"unknown type {type_name!r}", f"use one of: {', '.join(TASK_TYPES)}")
        elif not type_.implemented:
            ck.add(("type",), f"type {type_name!r} is declared but not implemented in xlt yet",
                   f"use one of the implemented types: "
                   f"{', '.join(t for t, v in TASK_TYPES.items() if v.implemented)}")
    version = data.get("version", None)
    if version is None:
        ck.add((), "missing required key 'version'", "add `version: 1` (bump it when the data or labels change)")
    elif isinstance(version, bool) or not isinstance(version, int) or version < 1:
        ck.add(("version",), f"version must be a positive integer, got {version!r}", "write `version: 1`")
        version = None
    description = ck.str_(data, (), "description", required=False, default="")
    citation = ck.str_(data, (), "citation", required=False, default="")
    labels = ck.str_list(data, (), "labels")
    if labels is not None and len(labels) < 2:
        ck.add(("labels",), "a classification task needs at least two labels", "list every label name")
    source_lang = ck.str_(data, (), "source_lang")
    train_split = ck.str_(data, (), "train_split", required=False, default="train")
    dev_split = ck.str_(data, (), "dev_split", required=False, default="validation")
    languages = ck.str_list(data, (), "languages")
    if languages is not None and source_lang is not None and source_lang not in languages:
        ck.add(("source_lang",), f"source_lang {source_lang!r} is not in languages",
               f"add {source_lang!r} to `languages:`")
    eval_splits = ck.str_list(data, (), "eval_splits")
    metrics = ck.str_list(data, (), "metrics", required=False) or ["accuracy"]
    for i, m in enumerate(metrics):
        if m not in KNOWN_METRICS:
            ck.add(("metrics", i), f"unknown metric {m!r}", f"use one of: {', '.join(KNOWN_METRICS)}")
    primary = ck.str_(data, (), "primary_metric", required=False, default=metrics[0])
    if primary is not None and primary not in metrics:
        ck.add(("primary_metric",), f"primary_metric {primary!r} is not in metrics {metrics}",
               "pick one of the listed metrics")
    reference_name = ck.str_(data, (), "reference", required=False)
    reference = None
    if reference_name is not None:
        ref = Path(reference_name)
        reference = ref if ref.is_absolute() else (reference_file(reference_name) or (path.parent / ref))
        reference = reference if reference.is_file() else None  # optional: absent numbers are not an error

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
                src = _build_source(ck, raw, p, path.resolve().parent, type_, labels)
                if src is None:
                    continue
                if languages is not None:
                    for lang in src.languages or ():
                        if lang not in languages:
                            ck.add(p + ("languages",), f"source language {lang!r} is not in the task's languages",
                                   f"add it to `languages:` or remove it here")
                sources.append(src)
            # every (split, language) the task will read must be served by some source
            if len(sources) == len(raw_list) and languages and eval_splits and train_split and dev_split \
                    and source_lang:
                needed = [(s, l) for s in eval_splits for l in languages]
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
                        label_names=tuple(labels), metrics=tuple(metrics), primary_metric=primary,
                        reference=reference, sources=tuple(sources), path=path.resolve())
    except XltError as exc:  # a cross-field check the per-key checks above missed
        return None, [Problem(str(path), 1, str(exc), "see docs/tasks.md")]
    return spec, []


# --------------------------------------------------------------------------------------------------
# Registry


def task_dirs(tasks_dir: str | Path | Sequence[str | Path] | None = None) -> list[Path]:
    """Directories searched for task files: built-in, then XLT_TASKS_PATH, then `tasks_dir`."""
    dirs: list[Path] = []
    builtin = builtin_tasks_dir()
    if builtin is not None:
        dirs.append(builtin)
    for entry in os.environ.get("XLT_TASKS_PATH", "").split(os.pathsep):
        if entry.strip():
            dirs.append(Path(entry.strip()))
    if tasks_dir is not None:
        dirs.extend(Path(d) for d in ([tasks_dir] if isinstance(tasks_dir, (str, Path)) else tasks_dir))
    out: list[Path] = []
    for d in dirs:
        if not d.is_dir():
            raise XltError(f"task directory {d} does not exist; fix --tasks-dir / XLT_TASKS_PATH")
        if d.resolve() not in [o.resolve() for o in out]:
            out.append(d)
    return out


def task_files(tasks_dir: str | Path | Sequence[str | Path] | None = None) -> list[Path]:
    return [f for d in task_dirs(tasks_dir) for f in sorted(d.glob("*.y*ml")) if f.suffix in (".yaml", ".yml")]


def validate_files(paths: Iterable[str | Path]) -> tuple[list[TaskSpec], list[Problem]]:
    """Build every file; return the specs that built and every problem (duplicate names included)."""
    specs: list[TaskSpec] = []
    problems: list[Problem] = []
    by_name: dict[str, Path] = {}
    for p in paths:
        p = Path(p)
        if not p.is_file():
            problems.append(Problem(str(p), None, "no such file", "check the path"))
            continue
        spec, probs = check_task_file(p)
        problems.extend(probs)
        if spec is None:
            continue
        if spec.name in by_name:
            problems.append(Problem(str(p), 1, f"duplicate task name {spec.name!r}, also defined in "
                                    f"{by_name[spec.name]}", "rename one task or remove one directory "
                                    "from --tasks-dir / XLT_TASKS_PATH"))
            continue
        by_name[spec.name] = p
        specs.append(spec)
    return specs, problems


def list_tasks(tasks_dir: str | Path | Sequence[str | Path] | None = None) -> list[TaskSpec]:
    """Every registered task. A broken or duplicate task file is an error, never skipped."""
    specs, problems = validate_files(task_files(tasks_dir))
    if problems:
        raise TaskFileError(problems)
    return specs


def get_task(name: str | Path | TaskSpec, tasks_dir: str | Path | Sequence[str | Path] | None = None) -> TaskSpec:
    """A task by name (or a path to a task file). Unknown names list the valid ones."""
    if isinstance(name, TaskSpec):
        return name
    if str(name).endswith((".yaml", ".yml")) and Path(name).is_file():
        return TaskSpec.from_yaml(name)
    specs = list_tasks(tasks_dir)
    for spec in specs:
        if spec.name == str(name):
            return spec
    raise XltError(f"unknown task {str(name)!r}; valid: {', '.join(s.name for s in specs) or '(none)'}; "
                   "add your own with --tasks-dir DIR or XLT_TASKS_PATH")


# --------------------------------------------------------------------------------------------------
# Reading splits


@dataclass(frozen=True)
class SplitData:
    """One split of one language, in the task type's standard columns (pair-classification:
    text_a, text_b, label as int 0..num_labels-1), rows in source order."""

    task: str
    task_type: str
    split: str
    lang: str
    frame: Any = field(repr=False)      # pandas.DataFrame
    origin: str                          # "hub:<id>@<revision>[/<config>/<split>]" or the local file path
    revision: str | None                 # pinned hub revision, None for local files
    label_names: tuple[str, ...]
    source_key: str = field(repr=False, default="")   # identifies the exact bytes read (for feature caching)
    dropped: int = 0                     # rows removed by the source's `drop_labels` (e.g. PAWS-X's -1)

    def __len__(self) -> int:
        return len(self.frame)

    def head(self, n: int | None) -> "SplitData":
        """The first n rows (all if n is None): for `max_train_samples`-style limits."""
        if n is None or n >= len(self.frame):
            return self
        return dataclasses.replace(self, frame=self.frame.iloc[:n].reset_index(drop=True),
                                   source_key=f"{self.source_key}|head={n}")


def _data_dir(data_dir: str | Path | None) -> Path | None:
    if data_dir is None:
        env = os.environ.get("XLT_DATA_DIR")
        data_dir = env if env else None
    return Path(data_dir).expanduser() if data_dir is not None else None


def local_candidates(task: TaskSpec, split: str, lang: str, data_dir: str | Path | None) -> list[Path]:
    """The files that may hold a split: the `files:` path, or DIR/<name>/<split>-<lang>.<ext>."""
    src = task.source_for(split, lang)
    if src.files is not None:
        return [src.local_path(split, lang)]
    ddir = _data_dir(data_dir)
    if ddir is None:
        return []
    folder = ddir / (src.data_dir_name or task.name)
    return [folder / f"{split}-{lang}.{ext}" for ext in LOCAL_FORMATS]


def _local_file(task: TaskSpec, split: str, lang: str, data_dir: str | Path | None) -> Path | None:
    """The local file to read, None when the split comes from the hub; an error if expected but absent."""
    cands = local_candidates(task, split, lang, data_dir)
    if not cands:
        return None
    found = [c for c in cands if c.is_file()]
    if len(found) > 1:
        raise XltError(f"several files hold {task.name} {split}-{lang}: {', '.join(map(str, found))}; keep one")
    if found:
        return found[0]
    src = task.source_for(split, lang)
    if src.files is not None:
        raise XltError(f"task {task.name!r}: expected {cands[0]} for split {split!r}, language {lang!r} "
                       f"(from `files:` in {task.path}); create it or fix the pattern")
    folder = cands[0].parent
    present = sorted(p.name for p in folder.glob("*-*.*")) if folder.is_dir() else []
    hint = f"; {folder} has: {', '.join(present[:20])}" if present else f"; {folder} does not exist"
    hub = f" (the hub has it: {src.describe(split, lang)}; drop --data-dir to download it)" if src.hub else ""
    raise XltError(f"missing local data for task {task.name!r} split {split!r} language {lang!r}: expected "
                   f"{cands[0]} (or .{'/.'.join(LOCAL_FORMATS[1:])}){hint}{hub}")


def available_splits(task: TaskSpec | str, data_dir: str | Path | None = None,
                     splits: Sequence[str] | None = None) -> dict[str, tuple[str, ...]]:
    """For each split (default: the task's eval_splits), the languages that can be read.

    Hub sources count as available (the hub has every declared split); local sources only where the file
    exists. A runner evaluates what is here and records what is missing, e.g. with ../shared/data, which
    has validation files but no test split.
    """
    task = get_task(task)
    out: dict[str, tuple[str, ...]] = {}
    for split in splits or task.eval_splits:
        langs = []
        for lang in task.languages:
            cands = local_candidates(task, split, lang, data_dir)
            if not cands or any(c.is_file() for c in cands):
                langs.append(lang)
        out[split] = tuple(langs)
    return out


def read_table(path: Path, fmt: str | None = None):
    """Read a local file exactly as it is: every value as text, no quote handling in TSV, no NA guessing."""
    import pandas as pd

    fmt = fmt or path.suffix.lstrip(".")
    try:
        if fmt == "tsv":
            # XNLI's TSV is unquoted and its fields contain `"`; "NA"/"null" are words, not missing values.
            return pd.read_csv(path, sep="\t", quoting=csv.QUOTE_NONE, dtype=str, keep_default_na=False,
                               na_filter=False, encoding="utf-8")
        if fmt == "csv":
            return pd.read_csv(path, dtype=str, keep_default_na=False, na_filter=False, encoding="utf-8")
        if fmt == "jsonl":
            with open(path, encoding="utf-8") as fh:
                rows = [json.loads(line) for line in fh if line.strip()]
            return pd.DataFrame.from_records(rows)
        if fmt == "parquet":
            return pd.read_parquet(path)
    except (ValueError, OSError, UnicodeDecodeError, pd.errors.ParserError) as exc:
        raise XltError(f"cannot read {path} as {fmt}: {exc}; check the file's format") from None
    raise XltError(f"unsupported data file format {fmt!r} for {path}; use one of {', '.join(LOCAL_FORMATS)}")


def _hub_unreachable(exc: BaseException) -> bool:
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on") or \
            os.environ.get("HF_DATASETS_OFFLINE", "").lower() in ("1", "true", "yes", "on"):
        return True
    text = f"{type(exc).__name__} {exc}".lower()
    if isinstance(exc, (ConnectionError, TimeoutError)):
        return True
    return any(w in text for w in ("connection", "offline", "timed out", "timeout", "resolve", "network",
                                   "couldn't reach", "unreachable", "max retries"))


def _load_hub(task: TaskSpec, src: Source, split: str, lang: str):
    try:
        import datasets
    except ImportError:  # pragma: no cover - a dependency
        raise XltError("the `datasets` package is needed to read from the hub; pip install datasets, "
                       "or pass --data-dir DIR") from None
    config, hub_split = src.config_for(lang), src.source_split(split)
    data_files = src.data_files_for(split, lang)
    what = f"{src.hub}" + (f" config {config}" if config else "") + (f" files {data_files}" if data_files else "") \
        + f" split {hub_split}"
    local = f"{src.data_dir_name or task.name}/{split}-{lang}.tsv"
    try:
        kwargs = {"data_files": {hub_split: data_files}} if data_files else {}
        ds = datasets.load_dataset(src.hub, name=config, split=hub_split, revision=src.revision, **kwargs)
    except Exception as exc:  # datasets raises many types; classify them into one clear message
        if _hub_unreachable(exc):
            raise XltError(f"cannot reach the Hugging Face hub to load {what} ({type(exc).__name__}); "
                           f"you are offline or HF_HUB_OFFLINE is set. Pass --data-dir DIR (or set "
                           f"XLT_DATA_DIR) with the split as DIR/{local}") from None
        raise XltError(f"could not load {what} at revision {src.revision}: {type(exc).__name__}: {exc}; check "
                       f"the task file {task.path} (hub id, config, revision) or pass --data-dir DIR") from None
    origin = f"hub:{src.hub}@{src.revision or 'main'}/{data_files or config or ''}/{hub_split}"
    # datasets' fingerprint follows the files it read, so an unpinned revision that moves changes the key
    return ds.to_pandas(), origin, f"{origin}#{getattr(ds, '_fingerprint', '')}"


def _labels_to_ids(values, src: Source, label_names: tuple[str, ...]):
    """Map source label values (ints, digit strings, names or label_map words) to 0..n-1; -1 if unknown."""
    import numpy as np

    label_map = dict(src.label_map)
    index = {name: i for i, name in enumerate(label_names)}
    lookup: dict = {}
    out = np.empty(len(values), dtype=np.int64)
    for i, v in enumerate(values):
        if v in lookup:
            out[i] = lookup[v]
            continue
        text = "" if v is None else str(v).strip()
        if isinstance(v, float) and v.is_integer():
            text = str(int(v))
        if label_map:
            name = label_map.get(text)
            label = index[name] if name is not None else -1
        elif text in index:
            label = index[text]
        elif text.lstrip("-").isdigit() and 0 <= int(text) < len(label_names):
            label = int(text)
        else:
            label = -1
        lookup[v] = label
        out[i] = label
    return out


def load_split(task: TaskSpec | str, split: str, lang: str, data_dir: str | Path | None = None) -> SplitData:
    """Read one split of one language into the task type's standard columns.

    With `data_dir` (or XLT_DATA_DIR), hub sources are replaced by DIR/<name>/<split>-<lang>.<ext>.
    """
    import pandas as pd

    task = get_task(task)
    ttype = TASK_TYPES[task.type]
    if not ttype.implemented:  # only reachable for a TaskSpec built in code
        raise XltError(f"task type {task.type!r} is not implemented yet")
    src = task.source_for(split, lang)
    local = _local_file(task, split, lang, data_dir)
    if local is not None:
        raw = read_table(local, src.format if src.files else None)
        st = local.stat()
        origin, revision = str(local.resolve()), None
        source_key = f"file:{origin}:{st.st_size}:{st.st_mtime_ns}"
    else:
        raw, origin, source_key = _load_hub(task, src, split, lang)
        revision = src.revision or "main"
    where = f"{task.name} {split}-{lang} ({origin})"
    if len(raw) == 0:
        raise XltError(f"empty split: {where} has no rows; check the file or the source's split name")
    missing = [src.column(role) for role in ttype.columns if src.column(role) not in raw.columns]
    if missing:
        raise XltError(f"column(s) {', '.join(map(repr, missing))} missing from {where}; it has: "
                       f"{', '.join(map(str, raw.columns))}. Fix `columns:` in {task.path} or the file's header")
    frame = pd.DataFrame({role: raw[src.column(role)].reset_index(drop=True) for role in ttype.columns})
    for role in ttype.columns[:-1]:
        col = frame[role]
        if col.isna().any():
            col = col.fillna("")
        frame[role] = col.astype(str)
    dropped = 0
    if src.drop_labels:
        raw_labels = frame["label"].map(lambda v: str(int(v)) if isinstance(v, float) and v.is_integer()
                                        else str(v).strip())
        keep = ~raw_labels.isin(src.drop_labels).to_numpy()
        dropped = int((~keep).sum())
        raw = raw.loc[keep].reset_index(drop=True)
        frame = frame.loc[keep].reset_index(drop=True)
        if len(frame) == 0:
            raise XltError(f"empty split: every row of {where} has a label in drop_labels {list(src.drop_labels)}")
    labels = _labels_to_ids(frame["label"].tolist(), src, task.label_names)
    bad = labels < 0
    if bad.any():
        i = int(bad.argmax())
        sample = {src.column(r): raw.iloc[i][src.column(r)] for r in ttype.columns}
        values = sorted({str(v) for v in frame["label"][bad]})[:10]
        raise XltError(f"{int(bad.sum())} row(s) of {where} have a label outside {list(task.label_names)}: values "
                       f"{values}; first at row {i}: {sample}. Add a `label_map:` to the source in {task.path} "
                       "or fix the data")
    frame["label"] = labels
    key = hashlib.sha256(json.dumps([source_key, src.to_dict(), task.label_names, task.version],
                                    sort_keys=True, default=str).encode()).hexdigest()
    return SplitData(task=task.name, task_type=task.type, split=split, lang=lang, frame=frame, origin=origin,
                     revision=revision, label_names=task.label_names, source_key=key, dropped=dropped)


def describe_sources(task: TaskSpec, data_dir: str | Path | None = None) -> list[dict]:
    """Where each (split, language) comes from: for `xlt tasks show`."""
    rows = []
    for split in task.splits:
        langs = [task.source_lang] if split in (task.train_split, task.dev_split) and split not in \
            task.eval_splits else list(task.languages)
        for lang in langs:
            src = task.source_for(split, lang)
            cands = local_candidates(task, split, lang, data_dir)
            if cands:
                found = [c for c in cands if c.is_file()]
                where = str(found[0]) if found else f"{cands[0]} (missing)"
            else:
                where = src.describe(split, lang)
            rows.append({"split": split, "lang": lang, "from": where})
    return rows
