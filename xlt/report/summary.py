"""`xlt report summary`: one row per model, one column per task, the suite's group averages and overall score.

A task's column is the cell of its comparison table's `avg` column (the type's metrics, each averaged over
the task's languages, mean over seeds), so the summary never disagrees with `xlt report tables`. The suite
(xlt/report/suites.yaml; XTREME by default) says how tasks group and which metrics make a task's score, as
XTREME's scorer (google-research/xtreme evaluate.py) computes them: a task scores its language-averaged
accuracy or F1, a QA task (F1 + EM) / 2; a group is the mean of its tasks' scores; the overall score is the
mean of all the suite's task scores (XTREME: 9), never of fewer. A group or overall score exists only when
every task it needs has a score; otherwise the cell names what is missing.

A published cell says where its number comes from: the source's own average (`published avg`), the mean of
the per-language values it prints (`mean of printed`, only when they cover every language), or a `subset`
(some languages printed, no average published), which has no score: its mean is not the task's.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from xlt.report.records import AVG, normalize_model_name, split_label, usable_records
from xlt.report.statistics import Stat
from xlt.report.suites import DEFAULT_SUITE, Group, Suite, get_suite, suites   # noqa: F401 (re-exported)
from xlt.report.tables import (DEFAULT_SPLIT, PRINTED_MEAN, PUBLISHED_AVG, Row, Table, build_table,
                               why_no_rows)
from xlt.results import Records, load_records

OVERALL = "overall"
SUBSET = "subset"


@dataclass
class TaskCell:
    stats: list[Stat | None]        # per shown metric: the language average (mean over seeds)
    score: float | None             # the suite's score of this task
    seeds: int = 0
    split: str = ""
    missing: str = ""               # why there is no score
    avg_kind: str = ""              # published cells: PUBLISHED_AVG, PRINTED_MEAN or SUBSET
    coverage: str = ""              # published cells printing some of the languages: "3 of 15 languages"


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

    @property
    def complete(self) -> bool:
        """Does the summary show every task of its suite? The overall score needs them all."""
        return set(self.suite.tasks) <= set(self.tasks)

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
        scored = [t for t in self.tasks if t in s.task_info]
        by_score: dict[str, list[str]] = {}
        for t in scored:
            by_score.setdefault(" and ".join(s.score_metrics(t)), []).append(t)
        parts.append(f"Scores as in {s.citation}: a task scores its language-averaged "
                     + "; ".join(f"{ms} ({', '.join(ts)})" for ms, ts in by_score.items())
                     + ", two metrics counting as their mean; a group is the mean of its tasks' scores"
                     + (" (" + "; ".join(f"{g.name}: {', '.join(g.tasks)}" for g in self.groups) + ")"
                        if self.groups else "") + ".")
        n = len(s.tasks)
        parts.append(f"overall = {s.title}'s score, the mean of all {n} task scores (not of the group scores), "
                     f"only when all {n} are present"
                     + ("." if self.complete else f"; this summary shows {len(scored)} of them, so it has none."))
        if any(r.kind == "published" for r in self.rows):
            parts.append(f"Published rows: results/reference/<task>.csv (sources below). A published cell is "
                         f"marked {PUBLISHED_AVG} (the source's average over all the task's languages), "
                         f"{PRINTED_MEAN} (the mean of the per-language values it prints, every language "
                         f"printed) or {SUBSET} (k of N languages printed, no average published: no score, "
                         "since their mean is not the task's average).")
        if any(c.split and c.split != self.split for r in self.rows for c in r.cells.values()):
            parts.append(f"A cell marked (dev set) is not a {self.split} number.")
        where = "the dev set" if self.split == "validation" else f"the {self.split} split"
        parts.append(f"Measured rows: runs on {where}.")
        return " ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        def stat(s: Stat | None) -> dict[str, Any] | None:
            return None if s is None else {"mean": s.mean, "std": s.std, "n": s.n}

        return {"suite": self.suite.name, "split": self.split, "tasks": self.tasks, "metrics": self.metrics,
                "groups": [{"name": g.name, "tasks": list(g.tasks)} for g in self.groups],
                "scores": {t: list(self.suite.score_metrics(t)) for t in self.tasks if t in self.suite.task_info},
                "complete": self.complete, "caption": self.caption(), "missing": self.missing,
                "rows": [{"model": r.model, "kind": r.kind, "overall": r.overall, "groups": r.groups,
                          "missing": r.missing, "sources": r.sources,
                          "tasks": {t: {"metrics": dict(zip(self.metrics[t], map(stat, c.stats))),
                                        "score": c.score, "seeds": c.seeds, "split": c.split,
                                        "missing": c.missing, "avg_kind": c.avg_kind or None,
                                        "coverage": c.coverage or None} for t, c in r.cells.items()}}
                         for r in self.rows]}


def _mean(values: Sequence[float | None]) -> float | None:
    return None if not values or any(v is None for v in values) else float(sum(values) / len(values))


def _cell(table: Table, row: Row, score_metrics: Sequence[str]) -> TaskCell:
    stats = [row.stat(i, table.metrics, AVG) for i in range(len(table.metrics))]
    by_metric = dict(zip(table.metrics, stats))
    want = list(score_metrics) or [table.metric]
    lacking = [m for m in want if by_metric.get(m) is None]
    score = _mean([by_metric[m].mean for m in want]) if not lacking else None
    kind = row.avg_kind if row.kind == "published" else ""
    if not lacking:
        missing = ""
    elif stats[0] is not None:
        missing = f"no {', '.join(lacking)}"
    elif row.subset:   # languages printed, no average: a mean of some of them is not the task's score
        kind, missing = SUBSET, f"{row.coverage}, no average published"
    else:
        missing = "no average over all languages"
    # the table's own evaluation split stands for the summary's (XQuAD's only split is its "validation")
    return TaskCell(stats, score, row.seeds, row.split if row.split != table.split or row.is_dev else "", missing,
                    kind, row.coverage if row.subset else "")


def build_summary(results_dir: Path | str, tasks: Sequence[str] | None = None, *, suite: str = DEFAULT_SUITE,
                  split: str = DEFAULT_SPLIT, reference: bool = True, reference_dir: Path | None = None,
                  records: Records | None = None) -> Summary:
    """The summary of `tasks` (default: the suite's) from the records under `results_dir` and the
    reference files: one row per measured model (configuration) and one per published model as the reference
    files label it ("XLM-R large (XTREME)" and "XLM-R large (XLM-R paper)" are two rows, never mixed)."""
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
        # XTREME's all_task: the mean over every task of the suite, only when the summary has all of them
        srow.overall = _mean([scores[t] for t in the_suite.tasks]) if summary.complete else None
    summary.rows = sorted(by_key.values(), key=lambda r: (r.kind != "published", r.overall is None,
                                                          -(r.overall or 0.0)))
    return summary
