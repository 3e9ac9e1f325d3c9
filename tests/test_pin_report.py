"""Report statistics against independent computations: the transfer gap and macro average in plain Python,
seed aggregation against `statistics` (mean, sample std), the paired bootstrap against resampling examples by
index, and bold-best per column (highest, lowest for the gap, at display precision)."""

from __future__ import annotations

import math
import statistics

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests import hypothesis_home  # noqa: F401  (hypothesis' files in a temp dir, not ./.hypothesis)

# Imports from xlt in one place.
from tests import factories
from xlt.report import (AVG, GAP, Row, Stat, Table, aggregate, build_table, macro_average, transfer_gap)
from xlt.report import paired_bootstrap as paired_bootstrap_stats
from xlt.report.tables import per_run_table
from xlt.results import load_records, new_record, write_run

PROPERTY = settings(max_examples=150, deadline=None, derandomize=True, database=None)


def _accuracy(metric, totals, n):
    return np.asarray(totals["correct"], dtype=float) / n


def paired_bootstrap(correct_a: dict, correct_b: dict, **kw) -> dict:
    """The bootstrap of an accuracy difference from per-example correctness per language (the form these pins
    were written in), through the report's per-example-statistics API: statistic `correct`, metric sum / n."""
    def frame(correct):
        parts = [pd.DataFrame({"lang": lang, "idx": np.arange(len(v)), "correct": np.asarray(v, dtype=float)})
                 for lang, v in correct.items() if len(v)]
        if not parts:
            return pd.DataFrame({"correct": []}, index=pd.MultiIndex.from_arrays([[], []], names=["lang", "idx"]))
        return pd.concat(parts).set_index(["lang", "idx"])

    return paired_bootstrap_stats(frame(correct_a), frame(correct_b), _accuracy, "accuracy",
                                  languages=list(correct_a), **kw)
LANGS = ["en", "fr", "de", "sw"]
scores = st.floats(0, 100, allow_nan=False)
maybe = st.one_of(scores, st.just(float("nan")), st.none())


@PROPERTY
@given(st.fixed_dictionaries({}, optional={lang: maybe for lang in LANGS}), st.sampled_from(LANGS))
def test_transfer_gap_is_source_minus_the_mean_of_the_other_languages(values, source):
    """Catches a gap that includes the source in the mean, uses the wrong sign, or counts missing (None/NaN)
    languages as zeros."""
    others = [v for lang, v in values.items() if lang != source and v is not None and not math.isnan(v)]
    src = values.get(source)
    expected = None if src is None or math.isnan(src) or not others else src - statistics.fmean(others)
    got = transfer_gap(values, source)
    assert got == pytest.approx(expected, abs=1e-9) if expected is not None else got is None


@PROPERTY
@given(st.fixed_dictionaries({lang: scores for lang in LANGS}, optional={"xx": maybe}),
       st.lists(st.sampled_from(LANGS), min_size=1, max_size=4, unique=True))
def test_macro_average_is_the_unweighted_mean_over_the_listed_languages(values, languages):
    """Catches an average over every language present (here `xx` is extra) or a weighted one."""
    assert macro_average(values, languages) == pytest.approx(statistics.fmean(values[l] for l in languages))
    assert macro_average(values, languages + ["xx"]) == (
        None if values.get("xx") is None or math.isnan(values["xx"]) else
        pytest.approx(statistics.fmean([values[l] for l in languages] + [values["xx"]])))
    assert macro_average(values, []) is None


def test_gap_and_average_on_a_case_where_wrong_formulas_differ():
    values = {"en": 90.0, "fr": 80.0, "de": 60.0, "sw": None}
    assert transfer_gap(values, "en") == pytest.approx(20.0)          # not 90 - 230/3, not 90 - 140/3
    assert transfer_gap(values, "fr") == pytest.approx(5.0)
    assert transfer_gap({"en": 90.0}, "en") is None and transfer_gap({"fr": 1.0}, "en") is None
    assert macro_average(values, ["en", "fr", "de"]) == pytest.approx(230 / 3)
    assert macro_average(values, ["en", "sw"]) is None


@PROPERTY
@given(st.lists(st.lists(st.one_of(scores, st.just(float("nan"))), min_size=3, max_size=3), min_size=1,
                max_size=6))
def test_seed_aggregation_is_mean_and_sample_std(rows):
    """Catches a population std (ddof=0), NaN counted as a seed, and a std reported for a single seed."""
    frame = pd.DataFrame(rows, columns=["a", "b", "c"])
    got = aggregate(frame)
    for col in frame.columns:
        vals = [v for v in frame[col] if not math.isnan(v)]
        if not vals:
            assert col not in got
            continue
        assert got[col].n == len(vals)
        assert got[col].mean == pytest.approx(statistics.fmean(vals), abs=1e-9)
        if len(vals) == 1:
            assert got[col].std is None
        else:
            assert got[col].std == pytest.approx(statistics.stdev(vals), abs=1e-7)


def test_per_run_table_rows_hold_each_runs_average_and_gap():
    frame = pd.DataFrame({"run_id": ["r1"] * 3 + ["r2"] * 2, "lang": ["en", "fr", "de", "en", "fr"],
                          "value": [90.0, 80.0, 70.0, 88.0, 78.0]})
    wide = per_run_table(frame, ["en", "fr", "de"], "en")
    assert wide.loc["r1", AVG] == pytest.approx(80.0) and wide.loc["r1", GAP] == pytest.approx(15.0)
    assert math.isnan(wide.loc["r2", AVG])                       # de missing: no average over a subset
    assert wide.loc["r2", GAP] == pytest.approx(10.0)
    assert list(wide.columns) == ["en", "fr", "de", AVG, GAP]


# --------------------------------------------------------------------------------------------------
# Paired bootstrap


def brute_force_bootstrap(a, b, n_resamples, rng):
    """Resample example indices with replacement; the mean difference (percent) of each resample."""
    d = (np.asarray(a, float) - np.asarray(b, float)) * 100
    idx = rng.integers(0, len(d), size=(n_resamples, len(d)))
    return d[idx].mean(axis=1)


@pytest.mark.parametrize("confidence", [0.95, 0.8, 0.5])
def test_paired_bootstrap_matches_resampling_examples_by_index(confidence):
    """Catches resampling that breaks the pairing, the wrong percentiles, an average that pools examples instead
    of averaging languages, and a difference of the wrong sign. Brute force: each language's examples resampled
    by index, the average being the mean over languages of their resampled differences."""
    rng = np.random.default_rng(7)
    sizes = {"en": 300, "fr": 120, "sw": 40}                   # unequal sizes: pooling and averaging differ
    rates = {"en": (0.85, 0.80), "fr": (0.70, 0.72), "sw": (0.60, 0.45)}
    a = {l: (rng.random(n) < rates[l][0]).astype(float) for l, n in sizes.items()}
    b = {l: np.where(rng.random(n) < 0.7, a[l], (rng.random(n) < rates[l][1]).astype(float))   # correlated
         for l, n in sizes.items()}
    b["fr"] = (b["fr"] + a["fr"]) / 2                          # a mean over seeds: values 0, 0.5, 1
    b["sw"] = a["sw"].copy()
    b["sw"][np.flatnonzero(a["sw"])[:8]] = 0                   # b is wrong on 8 examples a gets right
    R = 20000
    ours = paired_bootstrap(a, b, n_resamples=R, seed=1, confidence=confidence)
    brute = {l: brute_force_bootstrap(a[l], b[l], R, rng) for l in sizes}
    brute[AVG] = np.mean([brute[l] for l in sizes], axis=0)
    tail = (1 - confidence) / 2 * 100
    diffs = {l: 100 * float(np.mean(a[l] - b[l])) for l in sizes}
    for key in [*sizes, AVG]:
        low, high = np.percentile(brute[key], [tail, 100 - tail])
        # Monte Carlo noise, plus one example's worth: a percentile of a mean of n values moves in steps of 100/n
        tol = 0.03 * (high - low) + (100 / sizes[key] if key != AVG else 0)
        got = ours[key]
        assert got.diff == pytest.approx(diffs[key] if key != AVG else statistics.fmean(diffs.values()))
        assert got.low == pytest.approx(low, abs=tol) and got.high == pytest.approx(high, abs=tol)
        assert got.n == (sizes[key] if key != AVG else sum(sizes.values())) and got.n_resamples == R
        # independent of any resampling: the bootstrap distribution of a mean has sd = sd(d) / sqrt(n)
        if key != AVG:
            d = (a[key] - b[key]) * 100
            z = statistics.NormalDist().inv_cdf(1 - tail / 100)
            assert (got.high - got.low) / 2 == pytest.approx(z * d.std() / math.sqrt(len(d)), rel=0.08,
                                                             abs=100 / len(d))
    assert ours["sw"].significant and ours["sw"].low > 0 and ours["sw"].diff == pytest.approx(20.0)
    assert ours["fr"].significant == (confidence < 0.8)           # -1.7 points on 120 examples: only at 50%
    swapped = paired_bootstrap(b, a, n_resamples=R, seed=1, confidence=confidence)
    assert swapped["en"].diff == pytest.approx(-ours["en"].diff)


def test_bootstrap_interval_of_a_binomial_is_its_exact_quantiles():
    """d is 100 on k of n examples and 0 elsewhere, so a resample's mean is 100 Binomial(n, k/n) / n: the
    interval must sit on the binomial's own 2.5% and 97.5% quantiles (scipy), which a shifted percentile
    (e.g. 96.5 instead of 97.5) misses by more than a lattice step."""
    from scipy.stats import binom

    n, k = 2000, 1000
    a, b = np.r_[np.ones(k), np.zeros(n - k)], np.zeros(n)
    got = paired_bootstrap({"x": a}, {"x": b}, n_resamples=40000, seed=2)["x"]
    assert got.low == pytest.approx(100 * binom.ppf(0.025, n, k / n) / n, abs=0.06)
    assert got.high == pytest.approx(100 * binom.ppf(0.975, n, k / n) / n, abs=0.06)


def test_significance_means_the_interval_excludes_zero():
    from xlt.report import Bootstrap

    assert Bootstrap(1.0, 0.5, 2.0, 10, 100).significant and Bootstrap(-1.0, -2.0, -0.01, 10, 100).significant
    assert not Bootstrap(0.5, -0.5, 1.5, 10, 100).significant and not Bootstrap(0.0, 0.0, 0.0, 10, 100).significant


def test_paired_bootstrap_edge_cases():
    assert paired_bootstrap({}, {}) == {}
    got = paired_bootstrap({"fr": np.zeros(0), "en": np.ones(5)}, {"fr": np.zeros(0), "en": np.zeros(5)},
                           n_resamples=50)                      # an empty language first: skipped, not the end
    assert set(got) == {"en", AVG} and got["en"].low == got["en"].high == got["en"].diff == 100.0
    assert got["en"].significant
    for m, k in ((3, 4), (4, 3)):   # only the examples both systems predicted are compared (paired by idx)
        assert paired_bootstrap({"en": np.ones(m)}, {"en": np.zeros(k)}, n_resamples=20)["en"].n == 3
    a = paired_bootstrap({"en": np.r_[np.ones(30), np.zeros(30)]}, {"en": np.r_[np.zeros(30), np.ones(30)]},
                         n_resamples=500, seed=3)
    b = paired_bootstrap({"en": np.r_[np.ones(30), np.zeros(30)]}, {"en": np.r_[np.zeros(30), np.ones(30)]},
                         n_resamples=500, seed=3)
    assert a == b and a["en"].diff == 0 and not a["en"].significant   # seeded: the same interval every time


# --------------------------------------------------------------------------------------------------
# Bold-best


def _row(name, **cells):
    return Row(model=name, kind="measured", split="test", cells={k: Stat(v) for k, v in cells.items()})


def test_bold_best_is_highest_per_column_and_lowest_for_the_gap():
    """Catches a gap ranked like a score (higher = better), a best taken over unrounded values (two rows that
    display the same number must both be bold), and bold in a one-row table."""
    # "sw" sorts after "gap": a test of `col == GAP` written as an ordering would rank it like the gap
    t = Table(task="t", metrics=["accuracy"], split="test", languages=["en", "fr", "sw"], source_lang="en")
    t.rows = [_row("a", en=90.04, fr=70.0, sw=60.0, avg=80.02, gap=20.04),
              _row("b", en=90.01, fr=75.0, sw=50.0, avg=82.5, gap=15.01),
              _row("c", en=85.0, avg=85.0, gap=-1.0 + 16.04)]   # no fr, no sw
    assert t.best() == {"en": 90.0, "fr": 75.0, "sw": 60.0, AVG: 85.0, GAP: 15.0}
    bold = {(r.model, c) for r in t.rows for c in t.columns if t.is_best(r, c)}
    assert bold == {("a", "en"), ("b", "en"), ("b", "fr"), ("a", "sw"), ("c", AVG), ("b", GAP), ("c", GAP)}
    t.rows = t.rows[:2]                                           # two rows: a comparison, so bold
    assert {(r.model, c) for r in t.rows for c in t.columns if t.is_best(r, c)} == {
        ("a", "en"), ("b", "en"), ("b", "fr"), ("a", "sw"), ("b", AVG), ("b", GAP)}
    t.rows = t.rows[:1]
    assert not any(t.is_best(t.rows[0], c) for c in t.columns)


# --------------------------------------------------------------------------------------------------
# A table from records: seeds aggregated, deltas against the baseline, significance from predictions

TASK = {"name": "toy", "type": "pair-classification", "languages": ["en", "fr", "de"], "source_lang": "en",
        "primary_metric": "accuracy", "metrics": ["accuracy"]}


def _write(results, model, seed, correct):
    """A record and its predictions with per-example correctness `correct[lang]` (0/1 arrays)."""
    rows, metrics = [], {}
    for lang, c in correct.items():
        labels = np.random.default_rng([ord(ch) for ch in lang]).integers(0, 3, len(c))   # the same examples
        rows.append(pd.DataFrame({"split": "test", "lang": lang, "idx": np.arange(len(c)), "label": labels,
                                  "pred": np.where(c, labels, (labels + 1) % 3)}))
        # the same examples' validation predictions, all wrong: a test-split comparison must never see them
        rows.append(pd.DataFrame({"split": "validation", "lang": lang, "idx": np.arange(len(c)),
                                  "label": labels, "pred": (labels + 1) % 3}))
        metrics[lang] = {"accuracy": float(np.mean(c)), "n": len(c)}
    from xlt.results import predictions_to_bytes
    spec = factories.spec(model, "toy", seed=seed)
    wrong = {lang: {"accuracy": 0.0, "n": m["n"]} for lang, m in metrics.items()}
    record = new_record(spec, status="completed", model={"name": model}, task=TASK,
                        metrics={"test": metrics, "validation": wrong})
    record, preds = factories.as_written(record, pd.concat(rows, ignore_index=True))
    write_run(results, record, predictions_to_bytes(preds))


def test_table_deltas_and_significance_from_records(tmp_path):
    """Catches deltas of the wrong sign or against the wrong row, seeds not averaged per example before the
    bootstrap, and a significance test that is not the paired bootstrap of the two models' correctness."""
    rng = np.random.default_rng(0)
    n = {"en": 200, "fr": 150, "de": 100}
    base = {s: {l: (rng.random(k) < 0.6).astype(float) for l, k in n.items()} for s in (1, 2)}
    good = {s: {l: (rng.random(k) < 0.8).astype(float) for l, k in n.items()} for s in (1, 2, 3)}
    for s, c in base.items():
        _write(tmp_path, "xlm-roberta-base", s, c)
    for s, c in good.items():
        _write(tmp_path, "better-model", s, c)
    table = build_table("toy", load_records(tmp_path), reference=False, n_resamples=2000, seed=5)
    rows = {r.model: r for r in table.rows}
    assert table.baseline.startswith("xlm-roberta-base")
    for model, runs in (("xlm-roberta-base", base), ("better-model", good)):
        for lang in n:
            per_seed = [100 * runs[s][lang].mean() for s in runs]
            assert rows[model].cells[lang].mean == pytest.approx(statistics.fmean(per_seed))
            assert rows[model].cells[lang].std == pytest.approx(statistics.stdev(per_seed))
    (delta,) = table.deltas
    assert delta.model == "better-model" and delta.baseline == "xlm-roberta-base"
    for col in [*n, AVG, GAP]:
        assert delta.cells[col] == pytest.approx(rows["better-model"].cells[col].mean -
                                                 rows["xlm-roberta-base"].cells[col].mean)
    # the significance is the paired bootstrap of correctness averaged over each model's seeds
    mean_a = {l: np.mean([good[s][l] for s in good], axis=0) for l in n}
    mean_b = {l: np.mean([base[s][l] for s in base], axis=0) for l in n}
    expected = paired_bootstrap(mean_a, mean_b, n_resamples=20000, seed=5)
    for key, want in expected.items():   # the same bootstrap up to Monte Carlo noise (the table's resamples
        got = delta.significance[key]    # also carry the per-class counts macro F1 needs)
        assert got.diff == pytest.approx(want.diff) and got.n == want.n
        assert got.low == pytest.approx(want.low, abs=1.0) and got.high == pytest.approx(want.high, abs=1.0)
    assert all(delta.significance[k].significant for k in [*n, AVG])
    # on the validation split both models are wrong everywhere: nothing of the test split may leak in
    val = build_table("toy", load_records(tmp_path), reference=False, split="validation", n_resamples=200).deltas
    assert val and all(b.diff == 0 and not b.significant for b in val[0].significance.values())


def test_no_significance_when_gold_labels_disagree_and_no_average_over_a_subset(tmp_path):
    """Catches a gold-label check that only notices one direction of disagreement, and an `avg` significance
    reported when predictions cover only some of the table's languages."""
    rng = np.random.default_rng(1)
    n = {"en": 60, "fr": 60, "de": 60}
    for shift in (+1, -1):        # the other model's gold labels moved up, then down: each direction alone
        where = tmp_path / f"shift{shift}"
        for s in (1, 2):
            _write(where, "xlm-roberta-base", s, {l: (rng.random(k) < 0.5).astype(float) for l, k in n.items()})
            _write(where, "other", s, {l: (rng.random(k) < 0.9).astype(float) for l, k in n.items()})
        records = load_records(where)
        for path, record in zip(records.paths, records.records):
            if record["model"]["name"] == "other":
                pq = path.with_name(path.stem + ".predictions.parquet")
                frame = pd.read_parquet(pq)
                frame["label"] = (frame["label"] + shift).clip(0, 2)
                frame.to_parquet(pq)
                # a legitimate record of other data: its predictions' sha256 is its own (else it would be
                # left out as a mismatched pair, a different protection)
                import hashlib
                import json
                record["predictions"]["sha256"] = hashlib.sha256(pq.read_bytes()).hexdigest()
                path.write_text(json.dumps(record))
        table = build_table("toy", load_records(where), reference=False, n_resamples=200)
        assert table.deltas and not table.deltas[0].significance, shift
        assert any("disagree on gold labels" in note for note in table.notes)

    for s in (1, 2):   # predictions for en and fr only, while the table has de too
        _write(tmp_path / "b", "xlm-roberta-base", s, {l: (rng.random(60) < 0.5).astype(float) for l in ("en", "fr")})
        _write(tmp_path / "b", "other", s, {l: (rng.random(60) < 0.9).astype(float) for l in ("en", "fr")})
    sig = build_table("toy", load_records(tmp_path / "b"), reference=False, n_resamples=200).deltas[0].significance
    assert set(sig) == {"en", "fr"}


# --------------------------------------------------------------------------------------------------
# The bootstrap's resampling and a metric of several statistics


def test_resampled_totals_are_sums_of_n_rows_drawn_with_replacement():
    """Each resample is n rows drawn with replacement. With many distinct rows xlt draws examples by index, so
    with the same generator it must equal plain fancy indexing exactly; with few distinct rows it draws their
    counts from a multinomial, whose totals must have the binomial's mean and spread. A column of ones shows
    the resample size (n, never n - 1 or a different count per row)."""
    from xlt.report.statistics import _resampled_totals

    data = np.random.default_rng(3)
    many = np.c_[np.ones(50), data.normal(size=50), data.integers(0, 3, 50)]
    got = _resampled_totals(many, 300, np.random.default_rng(9))
    idx = np.random.default_rng(9).integers(0, 50, size=(300, 50))
    np.testing.assert_allclose(got, many[idx].sum(axis=1), rtol=1e-12, atol=1e-9)
    few = np.c_[np.ones(400), data.random(400) < 0.3]
    got = _resampled_totals(few, 20000, np.random.default_rng(9))
    assert got.shape == (20000, 2) and (got[:, 0] == 400).all()
    p = few[:, 1].mean()
    sd = math.sqrt(400 * p * (1 - p))
    assert got[:, 1].mean() == pytest.approx(400 * p, abs=4 * sd / math.sqrt(20000))
    assert got[:, 1].std() == pytest.approx(sd, rel=0.05)


def test_resampled_totals_when_the_last_resample_never_draws_the_last_distinct_row():
    """Would catch: the draw counts sized from the rows actually drawn (a shorter bincount), which breaks
    exactly when the last resample misses the last distinct row; with 10 distinct rows that happens in about
    a third of the generators tried here."""
    from xlt.report.statistics import _resampled_totals

    rows = np.c_[np.arange(10.0), np.ones(10)]
    for seed in range(12):
        idx = np.random.default_rng(seed).integers(0, 10, size=(5, 10))
        got = _resampled_totals(rows, 5, np.random.default_rng(seed))
        np.testing.assert_allclose(got, rows[idx].sum(axis=1), rtol=0, atol=1e-12)


def test_each_system_is_scored_on_its_own_statistics_columns_whatever_their_order():
    """Would catch: the two systems' columns mixed up when they differ (a class one system never predicted has no
    column for it): each side's metric must read its own columns, in either order."""
    from xlt.report.statistics import paired_bootstrap

    index = pd.MultiIndex.from_tuples([("en", i) for i in range(4)], names=["lang", "idx"])
    a = pd.DataFrame({"tp": [1.0, 0, 1, 1], "fp": [0.0, 1, 0, 0]}, index=index)    # 3 of 4
    b = pd.DataFrame({"correct": [1.0, 0, 0, 0], "n": [1.0, 1, 1, 1]}, index=index)   # 1 of 4

    def share(metric, totals, n):
        column = "tp" if "tp" in totals else "correct"
        return np.asarray(totals[column]) / n

    assert paired_bootstrap(a, b, share, "m", n_resamples=10)["en"].diff == pytest.approx(50.0)
    assert paired_bootstrap(b, a, share, "m", n_resamples=10)["en"].diff == pytest.approx(-50.0)


def resampled_macro_f1(gold, pred):
    """Macro F1 over classes 0..2 of each row of (resamples, n) label arrays (0 where a class has no support)."""
    f1s = []
    for c in range(3):
        tp = ((pred == c) & (gold == c)).sum(1)
        fp = ((pred == c) & (gold != c)).sum(1)
        fn = ((pred != c) & (gold == c)).sum(1)
        f1s.append(np.where(2 * tp + fp + fn > 0, 2 * tp / np.maximum(2 * tp + fp + fn, 1), 0.0))
    return np.mean(f1s, axis=0)


def test_bootstrap_of_macro_f1_from_per_class_counts():
    """Macro F1 from the pair type's per-class tp/fp/fn statistics: the point difference is sklearn's F1 of a
    minus b per language and their mean for `avg`; the interval is brute-force resampling of examples by
    index within Monte Carlo noise. Catches a's and b's columns crossed in the joined table, statistics of
    one system read for both, or the average over languages weighted by size."""
    from sklearn.metrics import f1_score

    from xlt.tasktypes import get_task_type

    tt = get_task_type("pair-classification")
    rng = np.random.default_rng(11)
    sizes = {"en": 240, "sw": 90}
    gold = {l: rng.integers(0, 3, n) for l, n in sizes.items()}
    pred_a = {l: np.where(rng.random(n) < 0.75, gold[l], rng.integers(0, 3, n)) for l, n in sizes.items()}
    pred_b = {l: np.where(rng.random(n) < 0.55, gold[l], 0) for l, n in sizes.items()}

    def stats(preds):
        parts = []
        for lang in sizes:
            frame = pd.DataFrame({"idx": np.arange(sizes[lang]), "label": gold[lang], "pred": preds[lang]})
            s = tt.statistics(frame)
            s.index = pd.MultiIndex.from_arrays([[lang] * len(s), frame["idx"]], names=["lang", "idx"])
            parts.append(s)
        return pd.concat(parts).fillna(0.0)

    a, b = stats(pred_a), stats(pred_b)
    columns = sorted(set(a.columns) | set(b.columns))
    a, b = a.reindex(columns=columns, fill_value=0.0), b.reindex(columns=columns, fill_value=0.0)
    got = paired_bootstrap_stats(a, b, tt.metric_from_totals, "macro_f1", n_resamples=4000, seed=2,
                                 languages=["en", "sw"])
    f1 = lambda g, p: f1_score(g, p, labels=[0, 1, 2], average="macro", zero_division=0)   # noqa: E731
    diffs = {l: 100 * (f1(gold[l], pred_a[l]) - f1(gold[l], pred_b[l])) for l in sizes}
    for lang, n in sizes.items():
        assert got[lang].diff == pytest.approx(diffs[lang], abs=1e-9) and got[lang].n == n
        idx = np.random.default_rng(5).integers(0, n, size=(4000, n))
        g, pa, pb = gold[lang][idx], pred_a[lang][idx], pred_b[lang][idx]
        brute = 100 * (resampled_macro_f1(g, pa) - resampled_macro_f1(g, pb))
        assert brute[0] == pytest.approx(100 * (f1(g[0], pa[0]) - f1(g[0], pb[0])))   # the same F1 as sklearn
        low, high = np.percentile(brute, [2.5, 97.5])
        assert got[lang].low == pytest.approx(low, abs=0.06 * (high - low))
        assert got[lang].high == pytest.approx(high, abs=0.06 * (high - low))
    assert got[AVG].diff == pytest.approx(statistics.fmean(diffs.values())) and got[AVG].n == sum(sizes.values())


def test_a_collapsed_row_does_not_compete_for_the_gap_but_does_for_scores():
    """A row whose predictions collapsed to one class has a tiny gap that is no transfer: it is never bold for
    the gap, and the best gap is the lowest among the other rows. Its scores still compete."""
    t = Table(task="t", metrics=["accuracy"], split="test", languages=["en", "fr", "sw"], source_lang="en")
    t.rows = [_row("collapsed", en=95.0, fr=33.0, sw=75.0, gap=0.5), _row("a", en=90.0, fr=80.0, sw=70.0, gap=10.0),
              _row("b", en=88.0, fr=70.0, sw=60.0, gap=18.0)]
    t.rows[0].collapsed = ["fr"]
    assert t.best()[GAP] == 10.0 and t.best()["en"] == 95.0 and t.best()["sw"] == 75.0
    bold = {(r.model, c) for r in t.rows for c in t.columns if t.is_best(r, c)}
    # sw sorts after "gap": a check that compares column names by order instead of equality loses this cell
    assert bold == {("collapsed", "en"), ("collapsed", "sw"), ("a", "fr"), ("a", GAP)}
