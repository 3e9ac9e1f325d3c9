"""Statistics of the comparison tables: seed aggregates, the macro average, the transfer gap and the
paired bootstrap over examples.

`macro_average` is the one definition of "the average over a task's languages" in xlt; `run_average`
(xlt.report.runs) and the CLI summaries call it.

The paired bootstrap works for every task type through the type's per-example statistics
(`TaskType.statistics`) and `TaskType.metric_from_totals`: accuracy is statistics {correct} with
metric sum/n; span F1 is {tp, fp, fn} with 2tp / (2tp + fp + fn); QA is {em, f1} means.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

import numpy as np
import pandas as pd

N_RESAMPLES = 1000
AVG = "avg"

# metric_from_totals(metric, totals, n): a metric from column sums of per-example statistics; each total
# may be an array with one entry per resample (TaskType.metric_from_totals has this signature).
MetricFromTotals = Callable[[str, Mapping[str, np.ndarray], "int | np.ndarray"], np.ndarray]


@dataclass(frozen=True)
class Stat:
    """One cell: the mean over seeds, the sample standard deviation (None for one seed or a published
    number), and how many seeds it is over (0 for a published number)."""

    mean: float
    std: float | None = None
    n: int = 0


def _missing(v: float | None) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


def macro_average(values: Mapping[str, float | None], languages: Sequence[str]) -> float | None:
    """Unweighted mean over `languages`; None unless every one of them has a value."""
    got = [values.get(lang) for lang in languages]
    if not got or any(_missing(v) for v in got):
        return None
    return float(sum(got) / len(got))


def transfer_gap(values: Mapping[str, float | None], source_lang: str) -> float | None:
    """Source-language score minus the mean of the other languages' scores."""
    others = [v for lang, v in values.items() if lang != source_lang and not _missing(v)]
    src = values.get(source_lang)
    if _missing(src) or not others:
        return None
    return float(src - sum(others) / len(others))


def aggregate(per_run: pd.DataFrame) -> dict[str, Stat]:
    """Per column: mean, sample std (ddof=1) and count over the rows (one row per run/seed)."""
    out = {}
    for col in per_run.columns:
        vals = per_run[col].dropna().astype(float)
        if len(vals) == 0:
            continue
        out[col] = Stat(float(vals.mean()), float(vals.std(ddof=1)) if len(vals) > 1 else None, int(len(vals)))
    return out


@dataclass(frozen=True)
class Bootstrap:
    """The difference a - b (percent points) with its bootstrap confidence interval."""

    diff: float
    low: float
    high: float
    n: int                 # examples compared
    n_resamples: int

    @property
    def significant(self) -> bool:
        """True if the confidence interval of the difference excludes 0."""
        return self.low > 0 or self.high < 0


def _resampled_totals(rows: np.ndarray, n_resamples: int, rng: np.random.Generator) -> np.ndarray:
    """Column sums of `n_resamples` resamples (with replacement, same size) of the rows of `rows`: (R, columns).

    Only how often each distinct row is drawn matters. With few distinct rows (correct is 0/1) those counts
    are drawn directly from their multinomial, O(resamples x distinct rows); with many (F1 statistics
    averaged over seeds) examples are drawn by index and counted, O(resamples x examples), which numpy
    does about five times faster per draw than a multinomial category. Both are exactly the bootstrap."""
    values, inverse, counts = np.unique(rows, axis=0, return_inverse=True, return_counts=True)
    n, distinct = len(rows), len(values)
    if 5 * distinct < n:
        draws = rng.multinomial(n, counts / n, size=n_resamples)                # (R, distinct rows)
    else:
        picked = inverse.reshape(-1)[rng.integers(0, n, size=(n_resamples, n))]   # (R, n) distinct-row ids
        offsets = (np.arange(n_resamples)[:, None] * distinct + picked).ravel()
        draws = np.bincount(offsets, minlength=n_resamples * distinct).reshape(n_resamples, distinct)
    return draws @ values


def paired_bootstrap(stats_a: pd.DataFrame, stats_b: pd.DataFrame, metric_from_totals: MetricFromTotals,
                     metric: str, n_resamples: int = N_RESAMPLES, seed: int = 0, confidence: float = 0.95,
                     languages: Sequence[str] | None = None) -> dict[str, Bootstrap]:
    """Paired bootstrap over examples of metric(a) - metric(b), per language and for the macro average.

    `stats_a` and `stats_b` are per-example statistics of two systems (numeric columns, e.g. averaged over
    seeds), indexed by (lang, idx); only examples both have are compared. A column that is empty (NaN) for a
    language is a statistic that system does not have there (a class it never saw), and is left out. Each
    language's examples are resampled jointly for both systems (the pairing), independently of the other languages; `avg` is the
    macro average over the languages of the per-language resampled differences, so its interval carries
    every language's sampling noise. Differences are in percent points.
    """
    rng = np.random.default_rng(seed)
    tail = (1 - confidence) / 2 * 100
    have = set(stats_a.index.get_level_values(0)) & set(stats_b.index.get_level_values(0))
    langs = list(languages) if languages is not None else \
        [lang for lang in dict.fromkeys(stats_a.index.get_level_values(0)) if lang in have]
    out: dict[str, Bootstrap] = {}
    samples, total = [], 0
    for lang in langs:
        if lang not in have:
            continue
        # each system's own statistics in this language (a class it never saw has no column for it)
        a_rows = stats_a.xs(lang, level=0).dropna(axis=1, how="all")
        b_rows = stats_b.xs(lang, level=0).dropna(axis=1, how="all")
        joined = a_rows.add_suffix("\0a").join(b_rows.add_suffix("\0b"), how="inner")
        if joined.empty:
            continue
        cols_a, cols_b = list(a_rows.columns), list(b_rows.columns)
        k = len(cols_a)
        rows = joined.to_numpy(dtype=float)                                    # (n, ka + kb): a's then b's
        n = len(rows)

        def diff(sums: np.ndarray) -> np.ndarray:
            a = metric_from_totals(metric, {c: sums[..., j] for j, c in enumerate(cols_a)}, n)
            b = metric_from_totals(metric, {c: sums[..., k + j] for j, c in enumerate(cols_b)}, n)
            return (np.asarray(a, dtype=float) - np.asarray(b, dtype=float)) * 100.0

        point = float(diff(rows.sum(axis=0)))
        resampled = diff(_resampled_totals(rows, n_resamples, rng))
        samples.append(resampled)
        total += n
        low, high = np.percentile(resampled, [tail, 100 - tail])
        out[lang] = Bootstrap(point, float(low), float(high), n, n_resamples)
    if samples:
        avg = np.mean(samples, axis=0)
        low, high = np.percentile(avg, [tail, 100 - tail])
        out[AVG] = Bootstrap(float(np.mean([out[l].diff for l in out])), float(low), float(high), total,
                             n_resamples)
    return out
