"""`xlt report summary`: one row per model, one column per task, the suite's group averages and overall score.

A task's column is the cell of its comparison table's `avg` column (the type's metrics, each averaged over
the task's languages, mean over seeds), so the summary never disagrees with `xlt report tables`. The suite
(xlt/report/suites.yaml; XTREME by default) says how tasks group and which metrics make a task's score:
XTREME scores QA tasks as (F1 + EM) / 2. A group average and the overall score exist only when every task
they need has a value; otherwise the cell names what is missing, so nothing is averaged over fewer tasks.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from importlib.resources import files
from pathlib import Path
from typing import Any, Sequence

import yaml

from xlt.errors import XltError
from xlt.report.records import AVG, normalize_model_name, split_label, usable_records
from xlt.report.statistics import Stat
from xlt.report.tables import DEFAULT_SPLIT, Row, Table, build_table, why_no_rows
from xlt.results import Records, load_records

DEFAULT_SUITE = "xtreme"
OVERALL = "overall"


@dataclass(frozen=True)
class Group:
    name: str
    tasks: tuple[str, ...]
    score: tuple[str, ...] = ()     # metrics averaged into a task's score; () = the task's primary metric


@dataclass(frozen=True)
class Suite:
    name: str
    title: str
    citation: str
    groups: tuple[Group, ...]
    not_included: str = ""

    @property
    def tasks(self) -> list[str]:
        return [t for g in self.groups for t in g.tasks]

    def score_metrics(self, task: str) -> tuple[str, ...]:
        return next((g.score for g in self.groups if task in g.tasks), ())


@cache
def suites() -> dict[str, Suite]:
    """The suites of xlt/report/suites.yaml."""
    data = yaml.safe_load(files("xlt.report").joinpath("suites.yaml").read_text(encoding="utf-8"))
    return {name: Suite(name, s["title"], s["citation"],
                        tuple(Group(g["name"], tuple(g["tasks"]), tuple(g.get("score") or ())) for g in s["groups"]),
                        s.get("not_included", ""))
            for name, s in data.items()}


def get_suite(name: str) -> Suite:
    if name not in suites():
        raise XltError(f"unknown suite {name!r}; known: {', '.join(suites())}")
    return suites()[name]


@dataclass
class TaskCell:
    stats: list[Stat | None]        # per shown metric: the language average (mean over seeds)
    score: float | None             # the suite's score of this task
    seeds: int = 0
    split: str = ""
    missing: str = ""               # why there is no score


@dataclass
class SummaryRow:
    model: str
    kind: str                       # "measured" | "published"
    cells: dict[str, TaskCell] = field(default_factory=dict)
    groups: dict[str, float | None] = field(default_factory=dict)
    overall: float | None = None
    missing: list[str] = field(default_factory=list)   # tasks without a score
    sources: dict[str, str] = field(default_factory=dict)   # task -> citation (published rows)

    @property
    def label(self) -> str:
        return "published" if self.kind == "published" else "xlt"


@dataclass
class Summary:
    suite: Suite
    tasks: list[str]
    metrics: dict[str, list[str]]   # task -> shown metrics (first = primary)
    groups: list[Group]             # the suite's groups whose tasks are all shown
    split: str
    rows: list[SummaryRow] = field(default_factory=list)
    missing: dict[str, str] = field(default_factory=dict)   # task with records but no rows -> why
    tables: list[Table] = field(default_factory=list)

    def caption(self) -> str:
        s = self.suite
        shown = {t.task: t.metrics for t in self.tables if t.rows}
        parts = [f"{s.title} summary. Task columns: each task's table avg (its metrics averaged over its "
                 "languages; measured rows: mean over n seeds)"
                 + (", showing " + "; ".join(f"{t} {' / '.join(ms)}" for t, ms in shown.items()) if shown else "")
                 + ". – = no run (measured) or not published."]
        empty = [t for t in self.tasks if t not in shown]
        if empty:
            parts.append(f"No runs or published numbers yet: {', '.join(empty)}.")
        qa = [t for t in self.tasks if len(s.score_metrics(t)) > 1]
        if qa:
            parts.append(f"Groups and scores as in {s.citation}: {', '.join(qa)} count as the mean of "
                         f"{' and '.join(s.score_metrics(qa[0]))}; a group is the mean of its tasks' scores"
                         + (" (" + "; ".join(f"{g.name}: {', '.join(g.tasks)}" for g in self.groups) + ")"
                            if self.groups else "") + ".")
        parts.append(f"overall = mean of the {len(self.tasks)} task scores, only when all are present"
                     + (f"; {s.title}'s published average also includes {s.not_included}, so the two differ."
                        if s.not_included else "."))
        if any(r.kind == "published" for r in self.rows):
            parts.append("Published rows: results/reference/<task>.csv, the average as published (sources "
                         "below).")
        if any(c.split and c.split != self.split for r in self.rows for c in r.cells.values()):
            parts.append(f"A cell marked (dev set) is not a {self.split} number.")
        where = "the dev set" if self.split == "validation" else f"the {self.split} split"
        parts.append(f"Measured rows: runs on {where}.")
        return " ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        def stat(s: Stat | None) -> dict[str, Any] | None:
            return None if s is None else {"mean": s.mean, "std": s.std, "n": s.n}

        return {"suite": self.suite.name, "split": self.split, "tasks": self.tasks, "metrics": self.metrics,
                "groups": [{"name": g.name, "tasks": list(g.tasks), "score": list(g.score)} for g in self.groups],
                "caption": self.caption(), "missing": self.missing,
                "rows": [{"model": r.model, "kind": r.kind, "overall": r.overall, "groups": r.groups,
                          "missing": r.missing, "sources": r.sources,
                          "tasks": {t: {"metrics": dict(zip(self.metrics[t], map(stat, c.stats))),
                                        "score": c.score, "seeds": c.seeds, "split": c.split,
                                        "missing": c.missing} for t, c in r.cells.items()}}
                         for r in self.rows]}


def _mean(values: Sequence[float | None]) -> float | None:
    return None if not values or any(v is None for v in values) else float(sum(values) / len(values))


def _cell(table: Table, row: Row, score_metrics: Sequence[str]) -> TaskCell:
    stats = [row.stat(i, table.metrics, AVG) for i in range(len(table.metrics))]
    by_metric = dict(zip(table.metrics, stats))
    want = list(score_metrics) or [table.metric]
    lacking = [m for m in want if by_metric.get(m) is None]
    score = _mean([by_metric[m].mean for m in want]) if not lacking else None
    missing = "" if not lacking else (f"no {', '.join(lacking)}" if stats[0] is not None
                                      else "no average over all languages")
    # the table's own evaluation split stands for the summary's (XQuAD's only split is its "validation")
    return TaskCell(stats, score, row.seeds, row.split if row.split != table.split or row.is_dev else "", missing)


def build_summary(results_dir: Path | str, tasks: Sequence[str] | None = None, *, suite: str = DEFAULT_SUITE,
                  split: str = DEFAULT_SPLIT, reference: bool = True, reference_dir: Path | None = None,
                  records: Records | None = None) -> Summary:
    """The summary of `tasks` (default: the suite's) from the records under `results_dir` and the
    reference files: one row per measured model (configuration) and per published model."""
    the_suite = get_suite(suite)
    records = usable_records(records if records is not None else load_records(results_dir))
    tasks = list(dict.fromkeys(tasks or the_suite.tasks))
    tables = [build_table(t, records, baseline=None, split=split, reference=reference,
                          reference_dir=reference_dir, also=the_suite.score_metrics(t))
              for t in tasks]
    with_records = {r["spec"]["task"] for r in records.records}
    summary = Summary(the_suite, tasks, {t.task: list(t.metrics) for t in tables},
                      [g for g in the_suite.groups if set(g.tasks) <= set(tasks)], split, tables=tables,
                      missing={t.task: why_no_rows(t.task, t, records) for t in tables
                               if t.task in with_records and not any(r.kind == "measured" for r in t.rows)})
    by_key: dict[tuple[str, str], SummaryRow] = {}
    for table in tables:
        for row in table.rows:
            key = (row.kind, normalize_model_name(row.model) if row.kind == "published" else row.model)
            srow = by_key.setdefault(key, SummaryRow(row.model, row.kind))
            srow.cells[table.task] = _cell(table, row, the_suite.score_metrics(table.task))
            if row.source:
                srow.sources[table.task] = f"{row.source} ({split_label(row.split) if row.is_dev else row.split})"
    for srow in by_key.values():
        scores = {t: (srow.cells[t].score if t in srow.cells else None) for t in tasks}
        srow.missing = [t for t in tasks if scores[t] is None]
        srow.groups = {g.name: _mean([scores[t] for t in g.tasks]) for g in summary.groups}
        srow.overall = _mean([scores[t] for t in tasks])
    summary.rows = sorted(by_key.values(), key=lambda r: (r.kind != "published", r.overall is None,
                                                          -(r.overall or 0.0)))
    return summary
