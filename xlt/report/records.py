"""What reports read: run records (validated by xlt.results on load), reference CSVs and the task description that the
records carry (`record["task"]`: name, type, languages, source_lang, primary_metric, metrics).

Units: records store fractions (0..1); `runs_frame` is the one place that turns them into percent.
Reference CSVs hold numbers as printed (percent) and are never rescaled.
"""

from __future__ import annotations

import csv
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import pandas as pd

from xlt.errors import XltError
from xlt.paths import reference_dir
from xlt.results import Records, display_name, load_records, metrics_frame, record_problem
from xlt.tasktypes import TaskType, get_task_type

AVG = "avg"
REFERENCE_COLUMNS = ["model", "source", "split", "lang", "metric", "value"]


def is_count(key: str) -> bool:
    """Keys of a per-language metrics dict that are counts, not metrics: "n" and "n_<unit>"."""
    return key == "n" or key.startswith("n_")


def default_reference_dir() -> Path:
    """`results/reference` of this installation (see xlt.paths)."""
    return reference_dir() or Path(__file__).resolve().parents[2] / "results" / "reference"


def split_label(split: str) -> str:
    return {"validation": "dev set", "dev": "dev set"}.get(split, split)


def normalize_model_name(name: str) -> str:
    """Compare model names loosely: 'xlm-roberta-base', 'FacebookAI/xlm-roberta-base' and 'XLM-R base' match."""
    name = str(name).rstrip("/").split("/")[-1].lower().replace("xlm-roberta", "xlm-r")
    return re.sub(r"[^a-z0-9]", "", name)


# --------------------------------------------------------------------------------------------------
# Reference numbers


def load_reference(path: Path | str) -> pd.DataFrame:
    """A reference CSV (model,source,split,lang,metric,value), values in percent as published."""
    path = Path(path)
    try:
        with path.open(newline="", encoding="utf-8") as f:
            rows = list(csv.reader(f))
    except (OSError, UnicodeDecodeError) as exc:
        raise XltError(f"{path}: cannot read reference numbers ({exc})") from None
    if not rows or [c.strip() for c in rows[0]] != REFERENCE_COLUMNS:
        raise XltError(f"{path}: the header must be {','.join(REFERENCE_COLUMNS)}")
    out = []
    for line, row in enumerate(rows[1:], start=2):
        if not any(c.strip() for c in row):
            continue
        if len(row) != len(REFERENCE_COLUMNS):
            raise XltError(f"{path}:{line}: expected {len(REFERENCE_COLUMNS)} fields, found {len(row)} "
                           "(quote a source that contains commas)")
        rec = dict(zip(REFERENCE_COLUMNS, (c.strip() for c in row)))
        try:
            rec["value"] = float(rec["value"])
        except ValueError:
            raise XltError(f"{path}:{line}: value {rec['value']!r} is not a number") from None
        if not rec["source"]:
            raise XltError(f"{path}:{line}: every reference row must cite its source")
        out.append(rec)
    return pd.DataFrame(out, columns=REFERENCE_COLUMNS)


def empty_reference() -> pd.DataFrame:
    return pd.DataFrame(columns=REFERENCE_COLUMNS)


def reference_for(task: str, reference_dir: Path | None = None, tasks_dir: Path | None = None) -> pd.DataFrame:
    """The published rows of `task`: `<reference_dir>/<task>.csv`; without an explicit `reference_dir`, a
    task file's own `reference:` when the built-in folder has no `<task>.csv`. Empty when there is none."""
    path = Path(reference_dir if reference_dir is not None else default_reference_dir()) / f"{task}.csv"
    if not path.is_file() and reference_dir is None:
        path = Path(_registry_info(task, tasks_dir).get("reference") or path)
    return load_reference(path) if path.is_file() else empty_reference()


# --------------------------------------------------------------------------------------------------
# Records


def usable_records(records: Records) -> Records:
    """`records` without those that break the record schema (`results.record_problem`, the one check): each
    one dropped is added to `problems`, naming its file and the field. `load_records` already checks every
    file it reads; this covers Records built by hand."""
    out = Records(problems=list(records.problems))
    for path, record in zip(records.paths, records.records):
        problem = record_problem(record)
        if problem:
            out.problems.append(f"{path}: invalid record: {problem}")
        else:
            out.paths.append(path)
            out.records.append(record)
    return out


def load_usable_records(results_dir: Path | str) -> Records:
    """The valid records under `results_dir` (`results.load_records`): what reports read."""
    return load_records(results_dir)


def model_name(record: Mapping[str, Any]) -> str:
    """The row label of a record's model (`results.display_name`)."""
    return display_name(record)


def runs_frame(records: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """`metrics_frame` of the completed records with values in percent points: the one place records'
    fractions (0..1) become percent. Count keys ("n_<unit>") are dropped; `config` is the run's spec
    without its seed, to group runs."""
    records = [r for r in records if r.get("status") == "completed"]
    frame = metrics_frame(records)
    frame = frame.loc[~frame["metric"].map(is_count).astype(bool)].copy()
    frame["value"] = pd.to_numeric(frame["value"], errors="coerce") * 100.0
    configs = {r["run_id"]: json.dumps({k: v for k, v in r["spec"].items() if k != "seed"}, sort_keys=True)
               for r in records}
    frame["config"] = frame["run_id"].map(configs)
    return frame


# --------------------------------------------------------------------------------------------------
# What a task looks like, from its records


def task_type(name: str | None) -> TaskType | None:
    """The registered task type `name`, or None when this installation does not have it. A record can
    name a type whose module is not importable here (a plugin that is not installed): its numbers are
    still shown, only the type's extras (several metrics, significance) are not. A record that names no
    type is from before types existed: the default (sentence-pair) type."""
    from xlt.tasktypes import DEFAULT

    try:
        if not name:
            return get_task_type(DEFAULT)
        return get_task_type(name)
    except (XltError, ImportError):
        return None


@dataclass
class TaskView:
    """How a task's table is laid out: languages in order, source language, the metrics shown in a cell
    (the first ranks rows and carries Δ and significance) and the task type."""

    name: str
    languages: list[str]
    source_lang: str
    metrics: list[str]
    type_name: str | None = None
    info: dict[str, Any] = field(default_factory=dict)   # the records' task block (or the registry's)

    @property
    def metric(self) -> str:
        return self.metrics[0]

    @property
    def type(self) -> TaskType | None:
        return task_type(self.type_name)

    def evaluation_split(self, split: str) -> str:
        """The split asked for, except that "test" of a task with one evaluation split that is not called
        test (XQuAD's hub split is "validation") means that split: the task's held-out evaluation set."""
        splits = self.info.get("eval_splits") or []
        if split == "test" and len(splits) == 1 and splits[0] != "test":
            return splits[0]
        return split

    def is_dev(self, split: str) -> bool:
        """Is `split` a dev set beside a test set? A task whose only evaluation split the hub calls
        "validation" (XQuAD, TyDiQA-GoldP) evaluates on it: that split is its test set."""
        splits = self.info.get("eval_splits") or ["test", "validation"]
        return split != "test" and len(splits) > 1

    def metric_caption(self) -> str:
        tt = self.type
        return tt.metric_caption({**self.info, "primary_metric": self.metric}) if tt else self.metric


def _registry_info(task: str, tasks_dir: Path | None) -> dict[str, Any]:
    """The task block the runner would write, from the task registry: only used when no record has one."""
    from xlt.tasks import get_task

    try:
        spec = get_task(task, tasks_dir=tasks_dir)
    except XltError:
        return {}
    return {"name": spec.name, "type": spec.type, "languages": list(spec.languages),
            "source_lang": spec.source_lang, "primary_metric": spec.primary_metric, "metrics": list(spec.metrics),
            "eval_splits": list(spec.eval_splits), "reference": str(spec.reference) if spec.reference else None}


def task_view(task: str, records: Sequence[Mapping[str, Any]], reference: pd.DataFrame, frame: pd.DataFrame,
              tasks_dir: Path | None = None, also: Sequence[str] = ()) -> TaskView:
    """The layout of `task`'s table: from the newest record's task block that lists languages, else from
    the task registry, completed by the reference file's and the measured languages."""
    infos = [dict(r.get("task") or {}) for r in records if r["spec"]["task"] == task]
    info = next((i for i in reversed(infos) if i.get("languages")), None)
    if info is None:
        info = _registry_info(task, tasks_dir) or (infos[-1] if infos else {})
    languages = list(info.get("languages") or [])
    for lang in [*reference["lang"], *frame["lang"]]:
        if lang != AVG and lang not in languages:
            languages.append(lang)
    source = info.get("source_lang") or ("en" if "en" in languages else (languages[0] if languages else ""))
    available = list(dict.fromkeys([*frame["metric"], *reference["metric"]]))
    primary = info.get("primary_metric") or ("accuracy" if (not available or "accuracy" in available)
                                             else available[0])
    tt = task_type(info.get("type"))
    shown = list(dict.fromkeys([primary, *(m for m in [*(tt.report_metrics if tt else ()), *also]
                                           if m in available)]))
    return TaskView(task, languages, source, shown, info.get("type"), info)
