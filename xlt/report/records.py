"""What reports read: run records (validated by xlt.results on load), their predictions, and reference CSVs. A task
is known from the block its records carry (`record["task"]`: languages, source language, metrics, captions and
formulas; xlt.results), never from the task file or the task type, so a report works wherever the records are.

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
from xlt.report.suites import suite_languages
from xlt.results import Records, display_name, load_records, metrics_frame, record_problem

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


def reference_for(task: str, reference_dir: Path | None = None, file_name: str | None = None) -> pd.DataFrame:
    """The published rows of `task`: `<reference_dir>/<task>.csv`, else the file its records name
    (`task.reference`) in the same folder. Empty when there is none."""
    folder = Path(reference_dir if reference_dir is not None else default_reference_dir())
    for name in dict.fromkeys([f"{task}.csv", *([file_name] if file_name else [])]):
        path = folder / Path(name).name
        if path.is_file():
            return load_reference(path)
    return empty_reference()


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


@dataclass
class TaskView:
    """How a task's table is laid out: languages in order, source language, the metrics shown in a cell
    (the first ranks rows and carries Δ and significance), all from the records' task block; for a task with no
    records, from a suite's language list (xlt.report.suites) and the reference file."""

    name: str
    languages: list[str]
    source_lang: str
    metrics: list[str]
    type_name: str | None = None
    info: dict[str, Any] = field(default_factory=dict)   # the newest record's task block ({} without records)
    task_languages: list[str] = field(default_factory=list)   # the task's own languages, [] if unknown
    eval_splits: list[str] = field(default_factory=list)      # the splits the task is evaluated on, [] if unknown

    @property
    def metric(self) -> str:
        return self.metrics[0]

    def formula(self, metric: str | None = None) -> dict | None:
        """How `metric` (default: the first) is computed from per-example statistics, as the records say."""
        return ((self.info.get("metric_info") or {}).get(metric or self.metric) or {}).get("formula")

    def evaluation_split(self, split: str) -> str:
        """The split asked for, except that "test" of a task with one evaluation split that is not called
        test (XQuAD's hub split is "validation") means that split: the task's held-out evaluation set."""
        if split == "test" and len(self.eval_splits) == 1 and self.eval_splits[0] != "test":
            return self.eval_splits[0]
        return split

    def is_dev(self, split: str) -> bool:
        """Is `split` a dev set beside a test set? A task whose only evaluation split the hub calls
        "validation" (XQuAD, TyDiQA-GoldP) evaluates on it: that split is its test set."""
        splits = self.eval_splits or ["test", "validation"]
        return split != "test" and len(splits) > 1

    def metric_caption(self) -> str:
        return ((self.info.get("metric_info") or {}).get(self.metric) or {}).get("caption") or self.metric


def task_view(task: str, records: Sequence[Mapping[str, Any]], reference: pd.DataFrame, frame: pd.DataFrame,
              also: Sequence[str] = ()) -> TaskView:
    """The layout of `task`'s table: from the newest record's task block that lists languages. A task with no
    runs takes its languages from a suite (XTREME's scorer lists every task's languages), else from the reference
    file and the measured languages, and its evaluation splits from the splits its published rows are on (XQuAD's
    one split, "validation", is its test set)."""
    infos = [dict(r.get("task") or {}) for r in records if r["spec"]["task"] == task]
    info = next((i for i in reversed(infos) if i.get("languages")), infos[-1] if infos else {})
    known = list(info.get("languages") or []) or suite_languages(task)
    # no record or suite says which: the languages measured or published
    languages = known or [lang for lang in dict.fromkeys([*reference["lang"], *frame["lang"]]) if lang != AVG]
    splits = list(info.get("eval_splits") or ([] if info else dict.fromkeys(reference["split"])))
    source = info.get("source_lang") or ("en" if "en" in languages else (languages[0] if languages else ""))
    available = list(dict.fromkeys([*frame["metric"], *reference["metric"]]))
    primary = info.get("primary_metric") or ("accuracy" if (not available or "accuracy" in available)
                                             else available[0])
    # a task with no runs shows the metrics its reference file has
    cell = info.get("report_metrics") or ([] if info else available)
    shown = list(dict.fromkeys([primary, *(m for m in [*cell, *also] if m in available)]))
    return TaskView(task, languages, source, shown, info.get("type"), info, known, splits)
