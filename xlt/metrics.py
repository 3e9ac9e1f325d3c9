"""Metrics for classification tasks. Each score comes with the number of examples it was computed on.

    score(["accuracy", "macro_f1"], labels, preds) -> {"accuracy": 0.71, "macro_f1": 0.70, "n": 2490}
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from xlt.errors import XltError


def accuracy(labels: np.ndarray, preds: np.ndarray) -> float:
    return float((labels == preds).mean())


def macro_f1(labels: np.ndarray, preds: np.ndarray, num_labels: int | None = None) -> float:
    """Unweighted mean of per-class F1 over the classes present in labels or predictions (sklearn's
    default); pass num_labels to average over every class 0..num_labels-1 instead."""
    classes = np.arange(num_labels) if num_labels else np.union1d(labels, preds)
    f1s = []
    for c in classes:
        tp = int(((preds == c) & (labels == c)).sum())
        fp = int(((preds == c) & (labels != c)).sum())
        fn = int(((preds != c) & (labels == c)).sum())
        denom = 2 * tp + fp + fn
        f1s.append(2 * tp / denom if denom else 0.0)
    return float(np.mean(f1s)) if f1s else 0.0


METRICS: dict[str, Callable[[np.ndarray, np.ndarray], float]] = {"accuracy": accuracy, "macro_f1": macro_f1}


def score(names: Sequence[str], labels, preds) -> dict[str, float | int]:
    """Every named metric over the same examples, plus their count under "n"."""
    labels = np.asarray(labels).reshape(-1)
    preds = np.asarray(preds).reshape(-1)
    if labels.shape != preds.shape:
        raise XltError(f"{len(labels)} labels but {len(preds)} predictions; they must pair up one to one")
    if len(labels) == 0:
        raise XltError("cannot score zero examples; the split is empty")
    out: dict[str, float | int] = {}
    for name in names:
        if name not in METRICS:
            raise XltError(f"unknown metric {name!r}; known: {', '.join(METRICS)}")
        out[name] = METRICS[name](labels, preds)
    out["n"] = int(len(labels))
    return out
