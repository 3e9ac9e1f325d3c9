import csv
import io
import json
import statistics

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from tests import factories
from xlt.cli import app
from xlt.errors import XltError
from xlt.report import (AVG, GAP, build_report, build_table, default_reference_dir, load_reference,
                        normalize_model_name, paired_bootstrap, render, transfer_gap)
from xlt.names import is_name
from xlt.results import SCHEMA_VERSION, load_records, new_record, record_path, write_run
from xlt.tasktypes import TaskType, register


class ToyAccuracy(TaskType):
    """An accuracy-like type defined here, not in xlt: the report must work through the interface alone."""

    name = "toy-accuracy"
    metrics = default_metrics = report_metrics = ("accuracy",)

    def statistics(self, predictions):
        return pd.DataFrame({"correct": (predictions["label"] == predictions["pred"]).astype(float)})

    def metric_formulas(self, task=None):
        return {"accuracy": {"mean": "correct"}}

    def metric_caption(self, task_info):
        return "toy accuracy over examples"


TOY_ACCURACY = register(ToyAccuracy())

XNLI_LANGS = "en fr es de el bg ru tr ar vi th zh hi sw ur".split()
# The issue's numbers, as printed (percent): per-language values in XNLI_LANGS order, then the average.
PUBLISHED_XNLI = {
    ("XLM-R base (XLM-R paper)", "test"): "85.8 79.7 80.7 78.7 77.5 79.6 78.1 74.2 73.8 76.5 74.6 76.7 72.4 66.5 68.3 76.2",
    ("XLM-R large (XLM-R paper)", "test"): "89.1 84.1 85.1 83.9 82.9 84.0 81.2 79.6 79.8 80.8 78.1 80.2 76.9 73.9 73.8 80.9",
    ("mDeBERTa-v3-base", "validation"):
        "88.2 82.6 84.4 82.7 82.3 82.4 80.8 79.5 78.5 78.1 76.4 79.5 75.9 73.9 72.4 79.8",
}
PAWSX_LANGS = "en de es fr ja ko zh".split()
PUBLISHED_PAWSX = {
    ("XLM-R large (XTREME)", "test"): "94.7 89.7 90.1 90.4 78.7 79.0 82.3 86.4",
    ("mBERT (XTREME)", "test"): "94.0 85.7 87.4 87.0 73.0 69.6 77.0 81.9",
}

TOY_LANGS = ["en", "fr", "de"]
TOY_TASK = {"name": "toy", "type": "toy-accuracy", "languages": TOY_LANGS, "source_lang": "en",
            "primary_metric": "accuracy", "metrics": ["accuracy"]}

runner = CliRunner()


def write_toy_run(results, model, seed, values, split="test", status="completed", predictions=None, task=None):
    """A hand-made record: `values` maps language -> accuracy as a fraction (as runs store it)."""
    task = task or TOY_TASK
    hostile = not is_name(task["name"])   # xlt never writes such a record; one written by hand is still read
    spec = factories.spec(model, "toy" if hostile else task["name"], seed=seed)
    record = new_record(spec, status=status, model={"name": model}, task=task,
                        metrics={split: {lang: {"accuracy": v, "n": 400 if predictions is None else
                                                int((predictions["lang"] == lang).sum())}
                                         for lang, v in values.items()}})
    record, predictions = factories.as_written(record, predictions)
    if hostile:
        record["spec"]["task"] = task["name"]
        path = record_path(results, task["name"], spec.model_slug, spec.run_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(record))
        return path
    return write_run(results, record, predictions)


def predictions(correct_by_lang, split="test", seed=0):
    """A predictions frame whose per-example correctness is the given 0/1 arrays (3 labels)."""
    rows = []
    rng = np.random.default_rng(seed)
    for lang, correct in correct_by_lang.items():
        labels = rng.integers(0, 3, len(correct))
        preds = np.where(correct, labels, (labels + 1) % 3)
        rows.append(pd.DataFrame({"split": split, "lang": lang, "idx": np.arange(len(correct)),
                                  "label": labels, "pred": preds}))
    return pd.concat(rows, ignore_index=True)


def invoke(*args):
    return runner.invoke(app, list(args))


# --------------------------------------------------------------------------------------------------
# Published numbers


def test_reference_files_hold_the_issue_numbers_with_split_and_source():
    for task, langs, published in (("xnli", XNLI_LANGS, PUBLISHED_XNLI), ("pawsx", PAWSX_LANGS, PUBLISHED_PAWSX)):
        ref = load_reference(default_reference_dir() / f"{task}.csv")
        assert (ref["source"].str.len() > 10).all() and set(ref["metric"]) == {"accuracy"}
        got = {}
        for (model, split), sub in ref.groupby(["model", "split"], sort=False):
            if (model, split) not in published:   # other sources' rows: tests/test_reference_xtreme.py
                continue
            assert sub["lang"].tolist() == [*langs, "avg"]
            got[(model, split)] = " ".join(f"{v:.1f}" for v in sub["value"])
        assert got == published


def test_no_runs_csv_is_exactly_the_reference_rows(tmp_path):
    result = invoke("report", "tables", "--task", "xnli", "--format", "csv", "--results-dir", str(tmp_path))
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    got = {(r["model"], r["split"]): " ".join(r[c] for c in [*XNLI_LANGS, "avg"]) for r in rows}
    assert {k: v for k, v in got.items() if k in PUBLISHED_XNLI} == PUBLISHED_XNLI
    assert {r["result"] for r in rows} == {"published"} and all(r["source"] for r in rows)
    # the gap is computed from the printed per-language values
    base = next(r for r in rows if r["model"] == "XLM-R base (XLM-R paper)")
    assert float(base["gap"]) == pytest.approx(85.8 - statistics.mean(
        float(base[c]) for c in XNLI_LANGS[1:]), abs=0.05)


def _md_rows(text):
    out = {}
    for line in text.splitlines():
        if line.startswith("| ") and not line.startswith("| Model"):
            cells = [c.strip().replace("**", "") for c in line.strip().strip("|").split("|")]
            out[cells[0]] = cells
    return out


def test_no_runs_md_reproduces_the_deberta_readme_xnli_table(tmp_path):
    result = invoke("report", "tables", "--task", "xnli", "--format", "md", "--results-dir", str(tmp_path))
    assert result.exit_code == 0, result.output
    rows = _md_rows(result.stdout)
    header = next(l for l in result.stdout.splitlines() if l.startswith("| Model"))
    columns = [c.strip() for c in header.strip().strip("|").split("|")]
    assert columns == ["Model", "Result", "Seeds", *XNLI_LANGS, "avg", "gap"]
    for (model, split), values in PUBLISHED_XNLI.items():
        cells = dict(zip(columns, rows[model]))
        assert " ".join(cells[c] for c in [*XNLI_LANGS, "avg"]) == values
        assert cells["Result"] == ("published, dev set" if split == "validation" else "published, test")
    assert dict(zip(columns, rows["XLM-R base (XLM-R paper)"]))["avg"] == "76.2"
    assert dict(zip(columns, rows["mDeBERTa-v3-base"]))["avg"] == "79.8"
    # the delta row against the default baseline ("XLM-R base (XLM-R paper)" matches --baseline xlm-roberta-base)
    delta = dict(zip(columns, rows["Δ mDeBERTa-v3-base"]))
    # a dev-set row minus a test row says so in the row
    assert delta["Result"] == "vs XLM-R base (XLM-R paper) (dev set − test)"
    assert delta["en"] == "+2.4" and delta["avg"] == "+3.6"
    assert "**80.9**" in result.stdout   # best avg in bold (XLM-R large)
    assert "dev-set number is not a test number" in result.stdout


def test_every_format_renders_the_reference_table(tmp_path):
    tables = build_report(tmp_path, "xnli").tables
    latex = render(tables, "latex")
    assert r"\textbf{80.9}" in latex and r"\toprule" in latex and "dev set" in latex and r"$\Delta$" in latex
    page = render(tables, "html")
    assert "<strong>80.9</strong>" in page and "published, dev set" in page and "<table" in page
    result = invoke("report", "tables", "--task", "xnli", "--results-dir", str(tmp_path))
    assert result.exit_code == 0 and "76.2" in result.stdout and "published, dev set" in result.stdout
    out = tmp_path / "t.tex"
    assert invoke("report", "tables", "--format", "latex", "--output", str(out),
                  "--results-dir", str(tmp_path)).exit_code == 0
    assert "pawsx" in out.read_text() and "xnli" in out.read_text()
    with pytest.raises(XltError, match="unknown format"):
        render(tables, "xlsx")


def test_baseline_names_match_published_rows():
    assert normalize_model_name("xlm-roberta-base") == normalize_model_name("XLM-R base")
    assert normalize_model_name("FacebookAI/xlm-roberta-base") == normalize_model_name("XLM-R base")
    assert normalize_model_name("xlm-roberta-large") != normalize_model_name("XLM-R base")


# --------------------------------------------------------------------------------------------------
# Aggregation


def test_aggregation_over_seeds_and_transfer_gap(tmp_path):
    seeds = {1: {"en": 0.90, "fr": 0.80, "de": 0.70},
             2: {"en": 0.86, "fr": 0.78, "de": 0.74},
             3: {"en": 0.88, "fr": 0.76, "de": 0.72}}
    for seed, values in seeds.items():
        write_toy_run(tmp_path, "m1", seed, values)
    write_toy_run(tmp_path, "m1", 4, {"en": 0.1, "fr": 0.1, "de": 0.1}, status="failed")   # excluded
    write_toy_run(tmp_path, "m1", 5, {"en": 0.5, "fr": 0.5, "de": 0.5}, split="validation")  # other split

    table = build_table("toy", load_records(tmp_path), reference=False)
    assert table.languages == TOY_LANGS and table.source_lang == "en"
    (row,) = table.rows
    assert row.kind == "measured" and row.seeds == 3
    for lang in TOY_LANGS:
        vals = [100 * seeds[s][lang] for s in seeds]
        assert row.cells[lang].mean == pytest.approx(statistics.mean(vals))
        assert row.cells[lang].std == pytest.approx(statistics.stdev(vals))
        assert row.cells[lang].n == 3
    avgs = [100 * statistics.mean(v.values()) for v in seeds.values()]
    gaps = [100 * (v["en"] - (v["fr"] + v["de"]) / 2) for v in seeds.values()]
    assert row.cells[AVG].mean == pytest.approx(statistics.mean(avgs))
    assert row.cells[AVG].std == pytest.approx(statistics.stdev(avgs))
    assert row.cells[GAP].mean == pytest.approx(statistics.mean(gaps))   # (0.9-0.75, 0.86-0.76, 0.88-0.74)
    assert row.cells[GAP].mean == pytest.approx(13.0)
    assert transfer_gap({"en": 90.0, "fr": 80.0, "de": 70.0}, "en") == pytest.approx(15.0)

    val = build_table("toy", load_records(tmp_path), reference=False, split="validation")
    assert val.rows[0].seeds == 1 and val.rows[0].cells["en"].std is None and val.rows[0].cells[GAP].mean == 0

    md = render([table], "md")
    assert "| m1 | xlt, test | 3 | 88.0 ± 2.0 |" in md
    csv_rows = list(csv.DictReader(io.StringIO(render([table], "csv"))))
    assert csv_rows[0]["seeds"] == "3" and csv_rows[0]["en"] == "88.00"


def test_runs_with_different_hyperparameters_are_separate_rows(tmp_path):
    for seed in (1, 2):
        spec = factories.spec("m1", "toy", seed=seed, overrides={"lr": 1e-5 * seed})
        write_run(tmp_path, new_record(spec, status="completed", task=TOY_TASK, model={"name": "m1"},
                                       metrics={"test": {l: {"accuracy": 0.5, "n": 4} for l in TOY_LANGS}}))
    rows = build_table("toy", load_records(tmp_path), reference=False).rows
    assert sorted(r.model for r in rows) == ["m1 (lr=1e-05)", "m1 (lr=2e-05)"]


# --------------------------------------------------------------------------------------------------
# Significance


def _frame(by_lang, **columns):
    """Per-example statistics indexed by (lang, idx) from {lang: {column: array}}."""
    parts = []
    for lang, cols in by_lang.items():
        n = len(next(iter(cols.values())))
        parts.append(pd.DataFrame({c: np.asarray(v, dtype=float) for c, v in cols.items()},
                                  index=pd.MultiIndex.from_arrays([[lang] * n, np.arange(n)], names=["lang", "idx"])))
    return pd.concat(parts)


def f1_from_totals(metric, totals, n):
    return 2 * totals["tp"] / np.maximum(2 * totals["tp"] + totals["fp"] + totals["fn"], 1e-12)


def test_paired_bootstrap_separates_a_clear_difference_from_none():
    rng = np.random.default_rng(0)
    a = _frame({lang: {"correct": rng.random(500) < 0.85} for lang in TOY_LANGS})
    b = _frame({lang: {"correct": rng.random(500) < 0.60} for lang in TOY_LANGS})
    clear = paired_bootstrap(a, b, TOY_ACCURACY.metric_from_totals, "accuracy", n_resamples=1000)
    assert all(clear[k].significant and clear[k].low > 0 for k in [*TOY_LANGS, AVG])
    assert clear[AVG].n == 1500 and clear[AVG].n_resamples == 1000
    same = paired_bootstrap(a, a, TOY_ACCURACY.metric_from_totals, "accuracy", n_resamples=1000)
    assert not any(same[k].significant for k in same)
    assert (same[AVG].low, same[AVG].diff, same[AVG].high) == (0, 0, 0)


def _brute_force(a, b, metric_fn, metric, n_resamples, rng):
    """The textbook paired bootstrap: resample example indices, recompute the metric of both systems."""
    n = len(a)
    idx = rng.integers(0, n, size=(n_resamples, n))
    ta = {c: a[c].to_numpy()[idx].sum(axis=1) for c in a.columns}
    tb = {c: b[c].to_numpy()[idx].sum(axis=1) for c in b.columns}
    diffs = (metric_fn(metric, ta, n) - metric_fn(metric, tb, n)) * 100
    return np.percentile(diffs, [2.5, 97.5])


def qa_from_totals(metric, totals, n):
    return totals["f1" if metric == "f1" else "em"] / n


@pytest.mark.parametrize("kind", ["accuracy", "span-f1", "qa"])
def test_bootstrap_matches_resampling_by_index(kind):
    """The counting shortcuts must give the same interval as resampling by index: for a mean of few distinct
    values (accuracy), a ratio of sums (F1 from tp/fp/fn) and per-example values that are nearly all
    distinct (QA F1, the other code path)."""
    rng = np.random.default_rng(1)
    if kind == "accuracy":
        a = _frame({"x": {"correct": rng.random(800) < 0.7}})
        b = _frame({"x": {"correct": rng.random(800) < 0.65}})
        fn, metric = TOY_ACCURACY.metric_from_totals, "accuracy"
    elif kind == "qa":      # token-overlap F1 in [0, 1], exact match where it is 1
        f1_a, f1_b = rng.beta(3, 1, 800), rng.beta(2.5, 1, 800)
        a = _frame({"x": {"em": f1_a > 0.9, "f1": f1_a}})
        b = _frame({"x": {"em": f1_b > 0.9, "f1": f1_b}})
        fn, metric = qa_from_totals, "f1"
    else:   # sentences with 0-4 gold entities; system a finds more of them than b
        gold = rng.integers(0, 5, 800)
        tp_a, tp_b = rng.binomial(gold, 0.8), rng.binomial(gold, 0.65)
        a = _frame({"x": {"tp": tp_a, "fp": rng.integers(0, 2, 800), "fn": gold - tp_a}})
        b = _frame({"x": {"tp": tp_b, "fp": rng.integers(0, 2, 800), "fn": gold - tp_b}})
        fn, metric = f1_from_totals, "f1"
    ours = paired_bootstrap(a, b, fn, metric, n_resamples=4000, seed=3)["x"]
    low, high = _brute_force(a, b, fn, metric, 4000, rng)
    point = (fn(metric, a.sum(), 800) - fn(metric, b.sum(), 800)) * 100
    assert ours.diff == pytest.approx(point)
    assert ours.low == pytest.approx(low, abs=0.6) and ours.high == pytest.approx(high, abs=0.6)
    assert (high - low) > 2   # a real interval, so the tolerance above is a test


def test_bootstrap_resamples_both_systems_jointly():
    """Pairing matters: b = a with a few extra errors is a small but certain difference. Resampling the two
    systems independently would give an interval around 0; resampling examples jointly does not."""
    rng = np.random.default_rng(2)
    correct = rng.random(2000) < 0.7
    worse = correct.copy()
    worse[np.flatnonzero(correct)[:40]] = False          # 40 of 2000 examples flipped to wrong: -2.0 points
    result = paired_bootstrap(_frame({"x": {"correct": correct}}), _frame({"x": {"correct": worse}}),
                              TOY_ACCURACY.metric_from_totals, "accuracy", n_resamples=2000)["x"]
    assert result.diff == pytest.approx(2.0) and result.significant and result.low > 1.0


def test_report_marks_significant_deltas_from_predictions(tmp_path):
    rng = np.random.default_rng(0)
    base_correct = {lang: rng.random(400) < 0.55 for lang in TOY_LANGS}
    good_correct = {lang: rng.random(400) < 0.85 for lang in TOY_LANGS}
    for seed in (1, 2):
        write_toy_run(tmp_path, "xlm-roberta-base", seed, {l: base_correct[l].mean() for l in TOY_LANGS},
                      predictions=predictions(base_correct))
        write_toy_run(tmp_path, "good-model", seed, {l: good_correct[l].mean() for l in TOY_LANGS},
                      predictions=predictions(good_correct))
        write_toy_run(tmp_path, "same-model", seed, {l: base_correct[l].mean() for l in TOY_LANGS},
                      predictions=predictions(base_correct))
    table = build_table("toy", load_records(tmp_path), reference=False, n_resamples=1000)
    deltas = {d.model: d for d in table.deltas}
    assert set(deltas) == {"good-model", "same-model"}
    assert all(deltas["good-model"].significance[k].significant for k in [*TOY_LANGS, AVG])
    assert not any(s.significant for s in deltas["same-model"].significance.values())
    md = render([table], "md")
    assert "1000 resamples" in md and "significant at 95%" in md
    good_line = next(l for l in md.splitlines() if l.startswith("| Δ good-model"))
    same_line = next(l for l in md.splitlines() if l.startswith("| Δ same-model"))
    assert good_line.count("*") == 4 and "*" not in same_line   # 3 languages + avg
    result = invoke("report", "tables", "--task", "toy", "--format", "md", "--no-reference",
                    "--results-dir", str(tmp_path), "--resamples", "200")
    assert result.exit_code == 0 and "200 resamples" in result.stdout


# --------------------------------------------------------------------------------------------------
# Bad records, runs, show


def test_corrupt_and_unknown_schema_records_are_warned_about_not_misread(tmp_path):
    good = write_toy_run(tmp_path, "m1", 1, {"en": 0.9, "fr": 0.8, "de": 0.7})
    truncated = good.with_name("truncated.json")
    truncated.write_text(good.read_text()[:50])
    future = good.with_name("future.json")
    future.write_text(json.dumps({**json.loads(good.read_text()), "schema_version": SCHEMA_VERSION + 1,
                                  "run_id": "f" * 12}))
    for args in (["report", "tables", "--task", "toy", "--format", "csv"], ["report", "runs"],
                 ["report", "show", json.loads(good.read_text())["run_id"][:6]]):
        result = invoke(*args, "--results-dir", str(tmp_path))
        assert result.exit_code == 0, result.output
        assert "truncated.json" in result.stderr and "future.json" in result.stderr
        assert "schema version" in result.stderr
    rows = list(csv.DictReader(io.StringIO(invoke("report", "tables", "--task", "toy", "--format", "csv",
                                                  "--results-dir", str(tmp_path)).stdout)))
    assert len(rows) == 1 and rows[0]["seeds"] == "1"          # only the good record counts
    assert "ffffffffffff" not in invoke("report", "runs", "--results-dir", str(tmp_path)).stdout
    assert truncated.exists() and future.exists()              # never deleted


def test_runs_and_show(tmp_path):
    path = write_toy_run(tmp_path, "m1", 7, {"en": 0.9, "fr": 0.8, "de": 0.7})
    write_toy_run(tmp_path, "m2", 1, {"en": 0.5}, status="failed")
    run_id = json.loads(path.read_text())["run_id"]
    listing = invoke("report", "runs", "--results-dir", str(tmp_path))
    assert listing.exit_code == 0
    assert run_id in listing.stdout and "failed" in listing.stdout and "80.0" in listing.stdout
    shown = invoke("report", "show", run_id[:5], "--results-dir", str(tmp_path))
    assert shown.exit_code == 0, shown.output
    assert run_id in shown.stdout and "90.0" in shown.stdout and "400" in shown.stdout
    missing = invoke("report", "show", "zzzz", "--results-dir", str(tmp_path))
    assert missing.exit_code != 0 and isinstance(missing.exception, XltError)
    assert "no run record matches 'zzzz'" in str(missing.exception)
    ambiguous = invoke("report", "show", "", "--results-dir", str(tmp_path))
    assert isinstance(ambiguous.exception, XltError)


def test_unknown_task_and_empty_results_are_clear_errors(tmp_path):
    result = invoke("report", "tables", "--task", "nope", "--results-dir", str(tmp_path))
    assert isinstance(result.exception, XltError) and "nope" in str(result.exception)
    result = invoke("report", "tables", "--no-reference", "--results-dir", str(tmp_path))
    assert isinstance(result.exception, XltError) and "no completed runs" in str(result.exception)


def test_text_from_records_is_escaped_in_every_format(tmp_path):
    evil = '<script>alert("x")</script> | [bold]'
    write_toy_run(tmp_path, evil, 1, {"en": 0.9, "fr": 0.8, "de": 0.7})
    tables = build_report(tmp_path, "toy", reference=False).tables
    assert "<script>" not in render(tables, "md") and "&lt;script&gt;" in render(tables, "md")
    assert "\\|" in render(tables, "md")
    page = render(tables, "html")
    assert page.count("<script>") == 1 and "&lt;script&gt;alert(&quot;x&quot;)" in page   # only our sorter
    assert r"\textless{}script\textgreater{}" in render(tables, "latex")
    result = invoke("report", "tables", "--task", "toy", "--no-reference", "--results-dir", str(tmp_path))
    assert result.exit_code == 0 and "[bold]" in result.stdout   # printed literally, not read as markup


def test_malformed_records_and_unreadable_predictions_never_crash(tmp_path):
    rng = np.random.default_rng(0)
    correct = {lang: rng.random(50) < 0.6 for lang in TOY_LANGS}
    base = write_toy_run(tmp_path, "xlm-roberta-base", 1, {l: correct[l].mean() for l in TOY_LANGS},
                         predictions=predictions(correct))
    other = write_toy_run(tmp_path, "other", 1, {l: 0.7 for l in TOY_LANGS}, predictions=predictions(correct))
    other.with_name(other.name.replace(".json", ".predictions.parquet")).write_bytes(b"not parquet")
    odd = base.with_name("odd.json")
    odd.write_text(json.dumps({**json.loads(base.read_text()), "run_id": "0" * 12,
                               "metrics": {"test": {"en": "high"}}}))
    for args in (["report", "tables", "--task", "toy", "--format", "md"], ["report", "runs"]):
        result = invoke(*args, "--results-dir", str(tmp_path))
        assert result.exit_code == 0, result.output
        assert "odd.json" in result.stderr and "invalid record: field metrics.test.en" in result.stderr
    md = invoke("report", "tables", "--task", "toy", "--format", "md", "--results-dir", str(tmp_path)).stdout
    assert "do not match its record" in md and "| Δ other | vs xlm-roberta-base |" in md
    assert odd.exists()


def test_captions_point_at_the_other_split_and_at_reduced_runs(tmp_path):
    spec = factories.spec("m1", "toy", seed=1, max_eval_samples=40)
    write_run(tmp_path, new_record(spec, status="completed", task=TOY_TASK, model={"name": "m1"},
                                   metrics={"validation": {l: {"accuracy": 0.5, "n": 40} for l in TOY_LANGS}}))
    records = load_records(tmp_path)
    with pytest.raises(XltError, match="no completed runs.*see --split validation"):
        build_report(tmp_path, "toy", reference=False)
    assert "see --split validation" in build_table("toy", records, reference=False).caption()
    caption = build_table("toy", records, reference=False, split="validation").caption()
    assert "on the dev set" in caption and "m1: a reduced run (max_eval_samples=40)" in caption
