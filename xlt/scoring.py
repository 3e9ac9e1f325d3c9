"""Score predictions xlt did not make, and export the predictions it did make, in each field's own format.

    s = score_file("xquad", "es", "preds.json", data_dir="../shared/data")   # {id: answer} JSON for QA
    s.metrics                      -> {"f1": 0.82, "exact_match": 0.64, "n": 1190}
    export_run(record, predictions, "out/")   -> [out/validation-en.json, ...] (QA: {id: answer} per language)

The format is the task type's (`TaskType.external_predictions` reads it, `export_predictions` writes it):
`{question id: answer}` JSON for extractive QA, two-column CoNLL for tagging, an `id,pred` table for sentence
pairs. Metrics are the ones a run records (the task's `metrics:`), computed by the same code, so a system
trained elsewhere sits beside xlt's runs on equal terms.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Mapping

import pandas as pd

from xlt.errors import XltError


@dataclass
class Score:
    task: str
    split: str
    lang: str
    predictions: str                                  # the file scored
    metrics: dict[str, float | int]                   # fractions, and "n" (examples), as in a run record
    metric_names: list[str]                           # the task's metrics, primary first
    unit: str = "examples"                            # what an example is (questions, pairs, sentences)
    notes: list[str] = field(default_factory=list)    # e.g. unanswered questions, ids not in the split

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def score_file(task: str, lang: str, predictions: str | Path, split: str | None = None,
               data_dir: str | Path | None = None, tasks_dir: str | Path | None = None) -> Score:
    """Score one language's predictions file against the task's gold data (default split: the task's first
    evaluation split), with the metrics a run of that task records."""
    from xlt.tasks import get_task, load_split

    spec = get_task(task, tasks_dir)
    split = split or spec.eval_splits[0]
    spec.check_split_lang(split, lang)
    path = Path(predictions)
    if not path.is_file():
        raise XltError(f"predictions file {path} does not exist")
    gold = load_split(spec, split, lang, data_dir)
    ttype = spec.task_type
    frame = ttype.external_predictions(gold, path)
    notes = list(frame.attrs.get("notes", []))
    metrics = ttype.score(frame, list(spec.metrics))
    return Score(task=spec.name, split=split, lang=lang, predictions=str(path), metrics=metrics,
                 metric_names=[spec.primary_metric, *[m for m in spec.metrics if m != spec.primary_metric]],
                 unit=ttype.example_unit, notes=notes)


def export_run(record: Mapping[str, Any], predictions: pd.DataFrame, out_dir: str | Path) -> list[Path]:
    """Write a run's predictions (its parquet frame) in its task type's format, one file per (split, language),
    into `out_dir`: what `xlt report show RUN --export DIR` writes. Returns the files written."""
    from xlt.tasktypes import FIRST_TYPE, get_task_type

    if predictions is None or len(predictions) == 0:
        raise XltError(f"run {record.get('run_id', '?')} has no predictions to export (a failed run, or its "
                       ".predictions.parquet is missing beside the record)")
    ttype = get_task_type((record.get("task") or {}).get("type") or FIRST_TYPE)
    try:
        return ttype.export_predictions(predictions, out_dir)
    except OSError as exc:
        raise XltError(f"cannot write the predictions into {out_dir}: {exc}") from None


__all__ = ["Score", "score_file", "export_run"]
