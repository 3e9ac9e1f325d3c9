"""Metrics as formulas over summed per-example statistics: one definition that scores a run and bootstraps it.

Every task type states each of its metrics as a formula over the column sums of its per-example statistics
(`TaskType.statistics`). A formula is plain data, so it is stored in every record (`task.metric_info`) and a
report recomputes a metric, or resamples it for the paired bootstrap, from the record and its predictions
alone, without the task type's code:

    {"mean": "correct"}                          sum(correct) / n               accuracy, QA exact match and F1
    {"ratio": ["correct", "words"]}              sum(correct) / sum(words)      word accuracy
    {"f1": ["tp", "fp", "fn"]}                   2tp / (2tp + fp + fn)          span F1, bitext-mining F1
    {"precision": ["tp", "fp"]}                  tp / (tp + fp)
    {"recall": ["tp", "fn"]}                     tp / (tp + fn)
    {"macro_f1": []}                             mean F1 over the classes that have columns tp_<c>, fp_<c>,
                                                 fn_<c>: the classes in the gold labels or the predictions, as
                                                 sklearn averages by default (a list restricts it to those
                                                 classes); in a resample, a class that drew no example is a 0

A ratio whose denominator is 0 is 0 (seqeval and sklearn do the same). `evaluate` is vectorised: each total
may be an array with one entry per bootstrap resample.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

KINDS = ("mean", "ratio", "f1", "precision", "recall", "macro_f1")


def _ratio(num, den) -> np.ndarray:
    num, den = np.asarray(num, dtype=float), np.asarray(den, dtype=float)
    return np.divide(num, den, out=np.zeros(np.broadcast(num, den).shape), where=den > 0)


def problem(formula: Any) -> str | None:
    """What makes `formula` unusable, or None."""
    if not isinstance(formula, Mapping) or len(formula) != 1:
        return f"a metric formula is a mapping with one of {', '.join(KINDS)}, not {formula!r}"
    (kind, args), = formula.items()
    if kind not in KINDS:
        return f"unknown formula {kind!r}; known: {', '.join(KINDS)}"
    want = {"mean": None, "ratio": 2, "f1": 3, "precision": 2, "recall": 2, "macro_f1": 0}[kind]
    if want is None:
        return None if isinstance(args, str) else f"formula {kind} takes one column name, not {args!r}"
    if not isinstance(args, (list, tuple)) or not all(isinstance(a, str) for a in args) or \
            (want and len(args) != want):
        return f"formula {kind} takes a list of {want or 'class'} names, not {args!r}"
    return None


def columns(formula: Mapping[str, Any]) -> list[str]:
    """The statistics columns a formula reads."""
    (kind, args), = formula.items()
    if kind == "mean":
        return [args]
    if kind == "macro_f1":   # classes that did not occur may lack their columns
        return []
    return list(args)


def evaluate(formula: Mapping[str, Any], totals: Mapping[str, Any], n) -> np.ndarray:
    """The metric from column sums `totals` over `n` examples (module docstring)."""
    (kind, args), = formula.items()
    t = lambda name: np.asarray(totals[name], dtype=float)   # noqa: E731
    if kind == "mean":
        return _ratio(t(args), n)
    if kind == "ratio":
        return _ratio(t(args[0]), t(args[1]))
    if kind == "precision":
        return _ratio(t(args[0]), t(args[0]) + t(args[1]))
    if kind == "recall":
        return _ratio(t(args[0]), t(args[0]) + t(args[1]))
    if kind == "f1":
        tp, fp, fn = (t(a) for a in args)
        return _ratio(2 * tp, 2 * tp + fp + fn)
    if kind == "macro_f1":   # the classes that occurred are those with columns; a listed class without them did not
        classes = [c for c in (args or [k[3:] for k in totals if k.startswith("tp_")]) if f"tp_{c}" in totals]
        f1s = [_ratio(2 * t(f"tp_{c}"), 2 * t(f"tp_{c}") + t(f"fp_{c}") + t(f"fn_{c}")) for c in classes]
        return np.mean(f1s, axis=0) if f1s else np.zeros(np.shape(n))
    raise ValueError(problem(formula) or f"unknown formula {formula!r}")


__all__ = ["KINDS", "evaluate", "columns", "problem"]
