"""Reports across task types: tables, significance and the XTREME summary through the task-type interface.

The types here are defined in this file, not in xlt (an entity-F1 type and a QA type with F1 / EM), so the
report is shown to work through `TaskType.statistics` / `metric_from_totals` / `report_metrics` alone. The
records are hand-made, with metrics computed by the type's own `score` from the predictions written
beside them, as the runner does.
"""

import json
import os
import stat

import numpy as np
import pandas as pd
import pytest

from tests.test_report import TOY_ACCURACY, invoke
from tests import factories
from xlt.report import AVG, GAP, build_report, build_table, render
from xlt.report.render_summary import render_summary
from xlt.report.summary import build_summary
from xlt.results import load_records, new_record, write_run
from xlt.tasktypes import TaskType, register


class ToySpans(TaskType):
    """Entity-level F1 from spans written as "start-end:TYPE" separated by spaces."""

    name = "toy-spans"
    metrics = default_metrics = report_metrics = ("f1",)
    prediction_columns = ("gold", "pred")

    def statistics(self, predictions):
        rows = []
        for gold, pred in zip(predictions["gold"], predictions["pred"]):
            g, p = set(gold.split()), set(pred.split())
            rows.append((len(g & p), len(p - g), len(g - p)))
        return pd.DataFrame(rows, columns=["tp", "fp", "fn"], dtype=float)

    def metric_formulas(self, task=None):
        return {"f1": {"f1": ["tp", "fp", "fn"]}}

    def metric_caption(self, task_info):
        return "toy entity-level micro F1"


class ToyQA(TaskType):
    """Extractive QA scored like SQuAD: exact match and token-overlap F1 per question, averaged."""

    name = "toy-qa"
    metrics = default_metrics = report_metrics = ("f1", "exact_match")
    prediction_columns = ("answer", "pred")

    def statistics(self, predictions):
        em, f1 = [], []
        for answer, pred in zip(predictions["answer"], predictions["pred"]):
            a, p = answer.split(), pred.split()
            common = sum(min(a.count(w), p.count(w)) for w in set(a))
            em.append(float(a == p))
            f1.append(0.0 if common == 0 else 2 * common / (len(a) + len(p)))
        return pd.DataFrame({"em": em, "f1": f1})

    def metric_formulas(self, task=None):
        return {"f1": {"mean": "f1"}, "exact_match": {"mean": "em"}}

    def metric_caption(self, task_info):
        return "toy SQuAD-style F1 / EM"


SPANS, QA = register(ToySpans()), register(ToyQA())
LANGS = ["en", "de", "sw"]


def task_block(name, tt, primary):
    return {"name": name, "type": tt.name, "languages": LANGS, "source_lang": "en", "primary_metric": primary,
            "metrics": list(tt.metrics)}


def write(results, model, task, tt, seed, preds, split="test", flags=()):
    """A record whose metrics are the type's scores of `preds` (one frame with lang, idx + the type's columns)."""
    preds = preds.assign(split=split)
    metrics = {lang: tt.score(sub.reset_index(drop=True), tt.metrics) for lang, sub in preds.groupby("lang")}
    spec = factories.spec(model, task["name"], seed=seed)
    record = new_record(spec, status="completed", model={"name": model}, task=task, metrics={split: metrics},
                        flags=list(flags))
    record, preds = factories.as_written(record, preds[["split", "lang", "idx", *tt.prediction_columns]])
    write_run(results, record, preds)
    return record


def pair_preds(rng, acc, n=300):
    rows = []
    for lang in LANGS:
        label = rng.integers(0, 3, n)
        pred = np.where(rng.random(n) < acc, label, (label + 1) % 3)
        rows.append(pd.DataFrame({"lang": lang, "idx": np.arange(n), "label": label, "pred": pred}))
    return pd.concat(rows, ignore_index=True)


def span_preds(rng, recall, n=300, gold=None):
    """Sentences with 0-3 entities; the system finds each with probability `recall` and adds a few false ones."""
    rows = []
    for lang in LANGS:
        for i in range(n):
            g = gold[(lang, i)] if gold else [f"{2 * k}-{2 * k + 1}:PER" for k in range(rng.integers(0, 4))]
            p = [s for s in g if rng.random() < recall] + (["9-9:LOC"] if rng.random() < 0.1 else [])
            rows.append({"lang": lang, "idx": i, "gold": " ".join(g), "pred": " ".join(p)})
    return pd.DataFrame(rows)


def qa_preds(rng, skill, n=200):
    rows = []
    for lang in LANGS:
        for i in range(n):
            answer = " ".join(f"w{k}" for k in range(rng.integers(1, 5)))
            words = answer.split()
            if rng.random() < skill:
                pred = answer
            elif rng.random() < 0.5:
                pred = " ".join(words[:1] + ["x"])
            else:
                pred = "nothing here"
            rows.append({"lang": lang, "idx": i, "answer": answer, "pred": pred})
    return pd.DataFrame(rows)


XNLI = task_block("xnli", TOY_ACCURACY, "accuracy")
PANX = task_block("panx", SPANS, "f1")
XQUAD = task_block("xquad", QA, "f1")


@pytest.fixture(scope="module")
def suite_results(tmp_path_factory):
    """Two models over XNLI, PAN-X and XQuAD, two seeds each; model-b has no PAN-X run."""
    results = tmp_path_factory.mktemp("suite")
    rng = np.random.default_rng(0)
    for seed in (1, 2):
        write(results, "model-a", XNLI, TOY_ACCURACY, seed, pair_preds(rng, 0.80))
        write(results, "model-b", XNLI, TOY_ACCURACY, seed, pair_preds(rng, 0.70))
        write(results, "model-a", PANX, SPANS, seed, span_preds(rng, 0.85))
        write(results, "model-a", XQUAD, QA, seed, qa_preds(rng, 0.7))
        write(results, "model-b", XQUAD, QA, seed, qa_preds(rng, 0.5))
    return results


# --------------------------------------------------------------------------------------------------
# Task-aware tables


def test_qa_table_shows_f1_and_em_with_delta_and_caption_on_f1(suite_results, tmp_path):
    (tmp_path / "xquad.csv").write_text(
        "model,source,split,lang,metric,value\n"
        + "".join(f"Paper model,Hand-made table 1,test,{lang},{m},{v}\n"
                  for lang, (f1, em) in zip([*LANGS, "avg"], [(80.1, 70.2), (70.3, 55.4), (60.5, 45.6), (70.3, 57.1)])
                  for m, v in (("f1", f1), ("exact_match", em))))
    table = build_table("xquad", load_records(suite_results), baseline="model-b", reference_dir=tmp_path)
    assert table.metrics == ["f1", "exact_match"] and table.type_name == "toy-qa"
    md = render([table], "md")
    assert "| Paper model | published, test | – | 80.1 / 70.2 | 70.3 / 55.4 | 60.5 / 45.6 | 70.3 / 57.1 |" in \
        md.replace("**", "")
    a = next(r for r in table.rows if r.model == "model-a")
    assert f"{a.cells['en'].mean:.1f} ± {a.cells['en'].std:.1f} / {a.more['exact_match']['en'].mean:.1f}" in md
    delta = next(d for d in table.deltas if d.model == "model-a")
    b = next(r for r in table.rows if r.model == "model-b")
    assert delta.cells[AVG] == pytest.approx(a.cells[AVG].mean - b.cells[AVG].mean)   # on F1, not EM
    assert "toy SQuAD-style F1 / EM" in table.caption() and "Δ and significance use f1" in table.caption()
    assert delta.significance[AVG].significant            # 0.7 vs 0.5 skill over 600 questions


def test_bootstrap_marks_a_clear_f1_difference_significant_and_identical_predictions_not(tmp_path):
    rng = np.random.default_rng(1)
    base = span_preds(rng, 0.6)
    gold = {(r.lang, r.idx): r.gold.split() for r in base.itertuples()}
    for seed in (1, 2):
        write(tmp_path, "xlm-roberta-base", PANX, SPANS, seed, base)
        write(tmp_path, "same-model", PANX, SPANS, seed, base)
        write(tmp_path, "good-model", PANX, SPANS, seed, span_preds(rng, 0.9, gold=gold))
    table = build_table("panx", load_records(tmp_path), reference=False)
    deltas = {d.model: d for d in table.deltas}
    assert all(deltas["good-model"].significance[k].significant for k in [*LANGS, AVG])
    assert not any(s.significant for s in deltas["same-model"].significance.values())
    assert deltas["same-model"].significance[AVG].diff == 0


def test_reference_rows_reproduce_hand_made_tagging_and_qa_csvs_with_no_runs(tmp_path):
    """Any reference CSV whose metric column names a record metric (f1, exact_match) prints its digits exactly."""
    (tmp_path / "tagging.csv").write_text("model,source,split,lang,metric,value\n"
                                          "M,Src,test,en,f1,95.5\nM,Src,test,de,f1,88.3\nM,Src,test,avg,f1,91.9\n")
    table = build_table("tagging", reference_dir=tmp_path)
    assert table.metrics == ["f1"] and [r.kind for r in table.rows] == ["published"]
    # with no runs and no suite that lists the task, the table is the reference file's: its languages, in its
    # order (reports read no task file)
    header, row = render([table], "csv").splitlines()[:2]
    cells = dict(zip(header.split(","), row.split(",")))
    assert (cells["en"], cells["de"], cells["avg"], cells["gap"]) == ("95.5", "88.3", "91.9", "7.2")
    assert table.languages == ["en", "de"] and row.startswith("tagging,M,published,test,f1,")
    assert row.endswith(",published avg,,Src")
    assert not build_table("tagging", reference_dir=tmp_path / "elsewhere").rows


# --------------------------------------------------------------------------------------------------
# Small things a user noticed


def test_a_collapsed_run_gap_is_not_bolded_as_best(tmp_path):
    rng = np.random.default_rng(2)
    write(tmp_path, "good", XNLI, TOY_ACCURACY, 1, pair_preds(rng, 0.8))
    collapsed = pair_preds(rng, 0.8).assign(pred=0)     # one class for everything: accuracy ~1/3 everywhere
    write(tmp_path, "collapsed", XNLI, TOY_ACCURACY, 1, collapsed,
          flags=[f"collapsed_predictions:test/{lang}" for lang in LANGS])
    table = build_table("xnli", load_records(tmp_path), reference=False, baseline=None)
    rows = {r.model: r for r in table.rows}
    assert abs(rows["collapsed"].cells[GAP].mean) < abs(rows["good"].cells[GAP].mean) + 5   # small gap ...
    assert not table.is_best(rows["collapsed"], GAP)                                        # ... never best
    assert table.is_best(rows["good"], GAP)
    assert "collapsed to one class" in table.caption()


def test_a_validation_delta_against_a_published_test_row_says_so(tmp_path):
    ref = tmp_path / "ref"
    ref.mkdir()
    (ref / "xnli.csv").write_text("model,source,split,lang,metric,value\n"
                                  + "".join(f"XLM-R base,Paper,test,{l},accuracy,70\n" for l in LANGS))
    write(tmp_path, "mine", XNLI, TOY_ACCURACY, 1, pair_preds(np.random.default_rng(3), 0.8), split="validation")
    table = build_table("xnli", load_records(tmp_path), split="validation", reference_dir=ref)
    (delta,) = table.deltas
    assert delta.versus == "vs XLM-R base (dev set − test)"
    assert "| Δ mine | vs XLM-R base (dev set − test) |" in render([table], "md")


def test_tasks_with_records_but_no_rows_for_the_split_are_named(tmp_path):
    write(tmp_path, "m", XNLI, TOY_ACCURACY, 1, pair_preds(np.random.default_rng(4), 0.8), split="validation")
    write(tmp_path, "m", PANX, SPANS, 1, span_preds(np.random.default_rng(5), 0.8))
    report = build_report(tmp_path, reference=False)
    assert [t.task for t in report.tables] == ["panx"] and "xnli" in report.missing
    assert "see --split validation" in report.missing["xnli"]
    md = invoke("report", "tables", "--format", "md", "--no-reference", "--results-dir", str(tmp_path)).stdout
    assert "Tasks with run records but no measured rows here: xnli" in md
    console = invoke("report", "tables", "--no-reference", "--results-dir", str(tmp_path))
    assert console.exit_code == 0 and "xnli" in console.stderr
    from xlt.leaderboard import build_leaderboard

    build_leaderboard(tmp_path, tmp_path / "site")
    page = (tmp_path / "site" / "index.html").read_text()
    assert "Tasks with run records but no measured rows here: xnli" in page   # its published rows stay


def test_record_and_prediction_files_get_the_umask_permissions(tmp_path):
    """Records were left 0600 by the temp-file rename; other users of a shared results folder could not read them."""
    old = os.umask(0o027)
    try:
        write(tmp_path, "m", XNLI, TOY_ACCURACY, 1, pair_preds(np.random.default_rng(6), 0.8))
    finally:
        os.umask(old)
    files = list((tmp_path / "runs").rglob("*.json")) + list((tmp_path / "runs").rglob("*.parquet"))
    assert len(files) == 2
    assert all(stat.S_IMODE(f.stat().st_mode) == 0o640 for f in files)
    assert not list((tmp_path / "runs").rglob("*.tmp"))


# --------------------------------------------------------------------------------------------------
# The summary


def test_summary_numbers_equal_the_tables_and_a_missing_task_costs_the_overall(suite_results):
    records = load_records(suite_results)
    summary = build_summary(suite_results, ["xnli", "panx", "xquad"], records=records, reference=False)
    rows = {r.model: r for r in summary.rows}
    tables = {t: build_table(t, records, reference=False, also=("exact_match",)) for t in ("xnli", "panx", "xquad")}

    def avg(task, model, i=0):
        row = next(r for r in tables[task].rows if r.model == model)
        return row.stat(i, tables[task].metrics, AVG).mean

    a = rows["model-a"]
    assert a.cells["xnli"].stats[0].mean == avg("xnli", "model-a") and a.cells["xnli"].seeds == 2
    assert a.cells["panx"].score == pytest.approx(avg("panx", "model-a"))
    qa = (avg("xquad", "model-a", 0) + avg("xquad", "model-a", 1)) / 2     # XTREME: (F1 + EM) / 2
    assert a.cells["xquad"].score == pytest.approx(qa)
    assert a.overall is None              # XTREME's overall needs all 9 tasks, not 3 of them
    assert summary.groups == []           # no group has all its tasks among these three
    b = rows["model-b"]
    assert b.overall is None and b.missing == ["panx"]
    md = render_summary(summary, "md")
    assert "– needs all 9 tasks" in md and "(n=2)" in md and "f1 and exact_match (xquad)" in md
    data = json.loads(render_summary(summary, "json"))
    assert {r["model"]: r["overall"] for r in data["rows"]}["model-b"] is None and data["complete"] is False


def test_summary_of_published_rows_with_no_runs_follows_xtreme(tmp_path):
    """With only reference files: group averages and overall as XTREME's scorer computes them."""
    avgs = {"xnli": {"accuracy": 79.2}, "pawsx": {"accuracy": 86.4}, "panx": {"f1": 65.4}, "udpos": {"f1": 72.6},
            "xquad": {"f1": 76.6, "exact_match": 60.8}, "mlqa": {"f1": 71.6, "exact_match": 53.2},
            "tydiqa": {"f1": 65.1, "exact_match": 45.0}, "bucc2018": {"f1": 66.0}, "tatoeba": {"accuracy": 57.7}}
    for task, by_metric in avgs.items():
        lines = ["model,source,split,lang,metric,value"]
        for metric, value in by_metric.items():
            lines += [f"Big model,Hand-made,test,{lang},{metric},{value}" for lang in ("en", "avg")]
            if task != "tydiqa":   # the small model lacks TyDiQA
                lines += [f"Small model,Hand-made,test,{lang},{metric},{value - 10}" for lang in ("en", "avg")]
        (tmp_path / f"{task}.csv").write_text("\n".join(lines) + "\n")
    summary = build_summary(tmp_path / "none", reference_dir=tmp_path)
    rows = {r.model: r for r in summary.rows}
    big = rows["Big model"]
    score = {t: sum(m.values()) / len(m) for t, m in avgs.items()}
    assert big.groups == pytest.approx({"sentence-pair classification": (79.2 + 86.4) / 2,
                                        "structured prediction": (65.4 + 72.6) / 2,
                                        "question answering": (score["xquad"] + score["mlqa"] + score["tydiqa"]) / 3,
                                        "sentence retrieval": (66.0 + 57.7) / 2})
    assert big.overall == pytest.approx(sum(score.values()) / 9)
    assert rows["Small model"].overall is None and rows["Small model"].groups["question answering"] is None
    assert all(r.kind == "published" for r in summary.rows)
    result = invoke("report", "summary", "--format", "csv", "--results-dir", str(tmp_path / "none"))
    assert result.exit_code == 0   # the CLI reads the built-in reference folder; it must not fail


# --------------------------------------------------------------------------------------------------
# Machine-readable output and the command line


def test_json_everywhere(suite_results):
    runs = json.loads(invoke("report", "runs", "--json", "--results-dir", str(suite_results)).stdout)
    assert len(runs) == 10 and {"run_id", "task", "model", "avg"} <= set(runs[0])
    shown = json.loads(invoke("report", "show", runs[0]["run_id"], "--json", "--results-dir",
                              str(suite_results)).stdout)
    assert shown["record"]["run_id"] == runs[0]["run_id"]
    tables = json.loads(invoke("report", "tables", "--task", "xquad", "--json", "--no-reference",
                               "--baseline", "model-b", "--results-dir", str(suite_results)).stdout)
    (t,) = tables["tables"]
    assert t["metrics"] == ["f1", "exact_match"] and t["deltas"][0]["significance"]["avg"]["significant"]
    summary = json.loads(invoke("report", "summary", "--tasks", "xnli,xquad", "--json", "--no-reference",
                                "--results-dir", str(suite_results)).stdout)
    assert summary["tasks"] == ["xnli", "xquad"] and len(summary["rows"]) == 2
    models = json.loads(invoke("models", "list", "--json").stdout)
    assert any(m["name"] == "mdeberta-v3-base" for m in models)
    both = invoke("report", "tables", "--json", "--format", "md", "--results-dir", str(suite_results))
    assert both.exit_code != 0 and "two formats" in str(both.exception)


def test_tables_in_a_pipe_keep_names_whole():
    """CliRunner's output is not a terminal, as with `xlt models list | grep mdeberta-v3-base` at 80 columns."""
    from typer.testing import CliRunner

    from xlt.cli import app
    from xlt.models.registry import REGISTRY

    out = CliRunner().invoke(app, ["models", "list"], env={"COLUMNS": "80"}).stdout
    assert all(info.name in out and info.hub_id in out for info in REGISTRY.values())
    assert "…" not in out


def test_version_and_help_at_80_columns_show_every_option_name_whole():
    import xlt
    from typer.main import get_command
    from typer.testing import CliRunner

    from xlt.cli import app

    runner = CliRunner()
    assert runner.invoke(app, ["--version"]).stdout.strip() == f"xlt {xlt.__version__}"

    def commands(group, path):
        for name, cmd in getattr(group, "commands", {}).items():
            yield from commands(cmd, [*path, name])
        if not getattr(group, "commands", None):
            yield path, group

    checked = 0
    for path, cmd in commands(get_command(app), []):
        out = runner.invoke(app, [*path, "--help"], env={"COLUMNS": "80"}, terminal_width=80).stdout
        for param in (p for p in cmd.params if not getattr(p, "hidden", False)):
            for opt in param.opts:
                if opt.startswith("--"):
                    assert opt in out, f"xlt {' '.join(path)} --help cuts {opt}"
        assert "…" not in out and max(map(len, out.splitlines())) <= 80
        checked += 1
    assert checked >= 10


def test_significance_uses_only_the_examples_every_seed_predicted(tmp_path):
    """Would catch: seed-averaged statistics taken over examples that only some seeds predicted (a run with
    --max-eval-samples beside a full one), which mixes one seed's statistics with two seeds' means."""
    rng = np.random.default_rng(7)
    base = pair_preds(rng, 0.6)
    better = base.assign(pred=np.where(rng.random(len(base)) < 0.8, base["label"], (base["label"] + 1) % 3))
    write(tmp_path, "xlm-roberta-base", XNLI, TOY_ACCURACY, 1, base)
    write(tmp_path, "b", XNLI, TOY_ACCURACY, 1, better)
    write(tmp_path, "b", XNLI, TOY_ACCURACY, 2, better[better["idx"] < 200])
    table = build_table("xnli", load_records(tmp_path), reference=False)
    sig = {d.model: d for d in table.deltas}["b"].significance
    assert all(sig[lang].n == 200 for lang in LANGS) and sig[AVG].n == 600


def test_missing_or_unreadable_predictions_cost_only_the_significance_test(tmp_path):
    """Would catch: a baseline without predictions, or predictions that are not parquet, crashing the table
    instead of leaving that delta without a significance test and saying why."""
    rng = np.random.default_rng(8)
    base = pair_preds(rng, 0.6)
    write(tmp_path, "xlm-roberta-base", XNLI, TOY_ACCURACY, 1, base)
    write(tmp_path, "b", XNLI, TOY_ACCURACY, 1, base.assign(pred=base["label"]))
    parquet = sorted(tmp_path.rglob("*.parquet"))
    assert len(parquet) == 2
    base_file = next(p for p in parquet if "xlm-roberta-base" in str(p))
    other_file = next(p for p in parquet if p != base_file)
    base_file.unlink()                                   # the baseline has no predictions
    table = build_table("xnli", load_records(tmp_path), reference=False)
    (delta,) = table.deltas
    assert delta.significance == {} and delta.cells
    other_file.write_bytes(b"not a parquet file")       # and now the model's are not the ones it wrote
    write(tmp_path, "xlm-roberta-base", XNLI, TOY_ACCURACY, 1, base)
    table = build_table("xnli", load_records(tmp_path), reference=False)
    (delta,) = table.deltas
    assert delta.significance == {} and "do not match its record" in table.caption()
