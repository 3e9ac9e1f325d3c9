"""One line per run (`xlt report runs`) and one run in full (`xlt report show`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import pandas as pd

from xlt.errors import XltError
from xlt.report.records import AVG, is_count, model_name, protocol_of
from xlt.report.statistics import macro_average
from xlt.results import Records

RUNS_COLUMNS = ["run_id", "task", "model", "seed", "protocol", "status", "avg", "split", "created"]


def run_average(record: Mapping[str, Any], split: str | None = None) -> tuple[float | None, str | None]:
    """(macro average in percent of the primary metric over the languages the run evaluated, split used):
    the given split, else test, else validation."""
    task = record.get("task") or {}
    metric = task.get("primary_metric") or "accuracy"
    metrics = record.get("metrics") or {}
    for s in ([split] if split else ["test", "validation"]):
        by_lang = {lang: v.get(metric) for lang, v in (metrics.get(s) or {}).items() if isinstance(v, Mapping)}
        by_lang = {lang: float(v) for lang, v in by_lang.items() if isinstance(v, (int, float))}
        avg = macro_average(by_lang, list(by_lang))
        if avg is not None:
            return 100.0 * avg, s
    return None, None


def runs_table(records: Records) -> pd.DataFrame:
    """Every record, one row: run_id, task, model, seed, protocol, status, avg (percent), split, created."""
    rows = []
    for r in records.records:
        avg, split = run_average(r)
        rows.append(dict(run_id=r["run_id"], task=r["spec"]["task"], model=model_name(r), seed=r["spec"]["seed"],
                         protocol=protocol_of(r["spec"]), status=r["status"], avg=avg, split=split,
                         created=r.get("created_at")))
    return pd.DataFrame(rows, columns=RUNS_COLUMNS)


def find_run(records: Records, run_id: str) -> tuple[Path, dict[str, Any]]:
    """The record whose run_id is `run_id` or starts with it; a clear error if none or several match."""
    run_id = run_id.strip()
    if not run_id:
        raise XltError("give a run id (or a prefix of one); `xlt report runs` lists them")
    hits = [(p, r) for p, r in zip(records.paths, records.records) if r["run_id"] == run_id]
    hits = hits or [(p, r) for p, r in zip(records.paths, records.records) if r["run_id"].startswith(run_id)]
    if not hits:
        raise XltError(f"no run record matches {run_id!r}; `xlt report runs` lists the run ids")
    if len({r["run_id"] for _, r in hits}) > 1:
        ids = ", ".join(sorted({r["run_id"] for _, r in hits}))
        raise XltError(f"run id prefix {run_id!r} is ambiguous ({ids}); give more characters")
    return hits[0]


def run_detail(record: Mapping[str, Any]) -> pd.DataFrame:
    """One run's metrics: one row per (split, metric), then one per count ("n" = examples, "n_<unit>"), columns
    = languages (the record's task order where it has one) then avg; metric values in percent."""
    order = list((record.get("task") or {}).get("languages") or [])
    rows = []
    for split, by_lang in (record.get("metrics") or {}).items():
        langs = [l for l in order + [l for l in by_lang if l not in order] if l in by_lang]
        keys = list(dict.fromkeys(k for l in langs for k in by_lang[l]))
        for m in (k for k in keys if not is_count(k)):
            vals = {l: 100.0 * by_lang[l][m] for l in langs if isinstance(by_lang[l].get(m), (int, float))}
            rows.append({"split": split, "metric": m, **vals, AVG: macro_average(vals, list(vals))})
        for count in (k for k in keys if is_count(k)):
            rows.append({"split": split, "metric": count, **{l: by_lang[l].get(count) for l in langs}})
    return pd.DataFrame(rows)
