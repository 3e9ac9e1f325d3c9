"""XTREME's summary (issue 23.4): the nine tasks in four groups and the overall score as XTREME's scorer computes
it, shown only with all nine; published cells marked in every format."""

import io
import json
from pathlib import Path

import numpy as np
import pytest

from tests import factories
from xlt.report import build_table, render
from xlt.report.render_summary import console_summary, render_summary
from xlt.report.suites import get_suite
from xlt.report.summary import build_summary
from xlt.results import load_records, new_record, write_run

# google-research/xtreme evaluate.py (commit 091824888a60162ad9ea10d7fe67aa561615e4ca), copied as data
GROUP2TASK = {"classification": ["pawsx", "xnli"], "tagging": ["udpos", "panx"], "qa": ["xquad", "mlqa", "tydiqa"],
              "retrieval": ["bucc2018", "tatoeba"]}
TASK2LANGS = {
    "pawsx": "de,en,es,fr,ja,ko,zh".split(","),
    "xnli": "ar,bg,de,el,en,es,fr,hi,ru,sw,th,tr,ur,vi,zh".split(","),
    "panx": ("ar,he,vi,id,jv,ms,tl,eu,ml,ta,te,af,nl,en,de,el,bn,hi,mr,ur,fa,fr,it,pt,es,bg,ru,ja,ka,ko,th,sw,yo,my,"
             "zh,kk,tr,et,fi,hu").split(","),
    "udpos": ("af,ar,bg,de,el,en,es,et,eu,fa,fi,fr,he,hi,hu,id,it,ja,kk,ko,mr,nl,pt,ru,ta,te,th,tl,tr,ur,vi,yo,"
              "zh").split(","),
    "bucc2018": "de,fr,ru,zh".split(","),
    "tatoeba": ("ar,he,vi,id,jv,tl,eu,ml,ta,te,af,nl,de,el,bn,hi,mr,ur,fa,fr,it,pt,es,bg,ru,ja,ka,ko,th,sw,zh,kk,tr,et,"
                "fi,hu").split(","),
    "xquad": "en,es,de,el,ru,tr,ar,vi,th,zh,hi".split(","),
    "mlqa": "en,es,de,ar,hi,vi,zh".split(","),
    "tydiqa": "en,ar,bn,fi,id,ko,ru,sw,te".split(","),
}
# the metrics each task's scoring function returns there (METRIC_FUNCTION), as xlt's records name them
RETURNS = {"pawsx": ["accuracy"], "xnli": ["accuracy"], "tatoeba": ["accuracy"], "udpos": ["f1", "precision", "recall"],
           "panx": ["f1", "precision", "recall"], "bucc2018": ["f1", "precision", "recall"],
           "xquad": ["exact_match", "f1"], "mlqa": ["exact_match", "f1"], "tydiqa": ["exact_match", "f1"]}


def xtreme_evaluate(scores):
    """evaluate() of XTREME's evaluate.py from per-language scores (task -> metric -> lang -> percent) instead of
    prediction files: (overall_scores, each task's avg_metric)."""
    detailed = {}
    for task, langs in TASK2LANGS.items():
        if task not in scores:
            continue
        avg = {f"avg_{m}": sum(scores[task][m][lg] for lg in langs) / len(langs) for m in scores[task]}
        if task in GROUP2TASK["qa"]:
            detailed[task] = (avg["avg_exact_match"] + avg["avg_f1"]) / 2
        elif "avg_f1" in avg:
            detailed[task] = avg["avg_f1"]
        elif "avg_accuracy" in avg:
            detailed[task] = avg["avg_accuracy"]
    overall = {}
    if set(TASK2LANGS) == set(detailed):
        overall["all_task"] = sum(detailed[t] for t in TASK2LANGS) / len(TASK2LANGS)
    for group, tasks in GROUP2TASK.items():
        if not set(tasks) - set(detailed):
            overall[group] = sum(detailed[t] for t in tasks) / len(tasks)
    return overall, detailed


XLT_GROUP = {"classification": "sentence-pair classification", "tagging": "structured prediction",
             "qa": "question answering", "retrieval": "sentence retrieval"}


def test_the_suite_is_xtremes_scorer():
    suite = get_suite("xtreme")
    assert [set(g.tasks) for g in suite.groups] == [set(t) for t in GROUP2TASK.values()]
    assert [g.name for g in suite.groups] == list(XLT_GROUP.values())
    assert {t: set(suite.languages(t)) for t in suite.tasks} == {t: set(l) for t, l in TASK2LANGS.items()}
    assert {t: len(suite.languages(t)) for t in suite.tasks} == {t: len(l) for t, l in TASK2LANGS.items()}
    for task in suite.tasks:   # avg_metric: (EM + F1) / 2 for QA, else F1 if the task has it, else accuracy
        want = ["f1", "exact_match"] if task in GROUP2TASK["qa"] else \
            (["f1"] if "f1" in RETURNS[task] else ["accuracy"])
        assert sorted(suite.score_metrics(task)) == sorted(want), task


def test_the_suite_lists_the_languages_of_xlts_task_files():
    from xlt.errors import XltError
    from xlt.tasks import get_task

    suite = get_suite("xtreme")
    for task in suite.tasks:
        try:
            spec = get_task(task)
        except XltError:   # bucc2018 and tatoeba arrive with the retrieval type (issue 23.1)
            continue
        assert set(spec.languages) == set(suite.languages(task)), task


def _scores(rng, tasks):
    return {t: {m: {lg: float(rng.uniform(20, 95)) for lg in TASK2LANGS[t]} for m in RETURNS[t]} for t in tasks}


def _write(results: Path, model: str, scores: dict) -> None:
    """One hand-made record per task, its metrics the given per-language scores (fractions, as runs store them)."""
    for task, by_metric in scores.items():
        langs = TASK2LANGS[task]
        info = {"name": task, "type": "hand-made", "languages": langs, "source_lang": "en",
                "primary_metric": "accuracy" if "accuracy" in by_metric else "f1",
                "metrics": list(by_metric), "report_metrics": [m for m in ("f1", "exact_match", "accuracy")
                                                               if m in by_metric]}
        metrics = {"test": {lg: {**{m: v[lg] / 100 for m, v in by_metric.items()}, "n": 50} for lg in langs}}
        spec = factories.spec(model, task)
        write_run(results, new_record(spec, status="completed", model={"name": model}, task=info, metrics=metrics))


def test_overall_is_xtremes_all_task_and_only_with_all_nine(tmp_path):
    rng = np.random.default_rng(23)
    full, partial = _scores(rng, TASK2LANGS), _scores(rng, [t for t in TASK2LANGS if t != "tatoeba"])
    _write(tmp_path, "full", full)
    _write(tmp_path, "partial", partial)
    summary = build_summary(tmp_path, reference=False)
    rows = {r.model: r for r in summary.rows}

    overall, detailed = xtreme_evaluate(full)
    assert rows["full"].overall == pytest.approx(overall["all_task"], abs=1e-9)
    assert rows["full"].groups == pytest.approx({XLT_GROUP[g]: overall[g] for g in GROUP2TASK}, abs=1e-9)
    assert {t: c.score for t, c in rows["full"].cells.items()} == pytest.approx(detailed, abs=1e-9)
    # the overall is the mean of the task scores, not of the group scores (which weigh QA's three tasks as two)
    assert abs(overall["all_task"] - np.mean([overall[g] for g in GROUP2TASK])) > 0.01

    overall, detailed = xtreme_evaluate(partial)
    assert "all_task" not in overall and rows["partial"].overall is None
    assert rows["partial"].groups["sentence retrieval"] is None and rows["partial"].missing == ["tatoeba"]
    assert rows["partial"].groups["question answering"] == pytest.approx(overall["qa"], abs=1e-9)
    md = render_summary(summary, "md")
    assert "| – missing tatoeba |" in md and "| – needs tatoeba |" in md

    # a summary of fewer tasks never shows XTREME's overall, even for a model that has all nine
    fewer = build_summary(tmp_path, [t for t in TASK2LANGS if t != "bucc2018"], reference=False)
    assert {r.model: r.overall for r in fewer.rows} == {"full": None, "partial": None}
    assert "– needs all 9 tasks" in render_summary(fewer, "md") and not fewer.complete


def test_a_run_missing_a_language_has_no_task_score(tmp_path):
    rng = np.random.default_rng(5)
    scores = _scores(rng, TASK2LANGS)
    _write(tmp_path, "m", scores)
    record_dir = tmp_path / "runs" / "tatoeba"
    (path,) = [p for p in record_dir.rglob("*.json")]
    record = json.loads(path.read_text())
    del record["metrics"]["test"]["sw"]   # XTREME averages over all 36 Tatoeba languages, never fewer
    path.write_text(json.dumps(record))
    summary = build_summary(tmp_path, reference=False)
    (row,) = summary.rows
    assert row.cells["tatoeba"].score is None and row.overall is None and row.missing == ["tatoeba"]


def _subset_reference(folder: Path) -> Path:
    folder.mkdir()
    (folder / "panx.csv").write_text("model,source,split,lang,metric,value\n"
                                     "Sub,Src A,test,en,f1,80.0\nSub,Src A,test,de,f1,70.0\n"
                                     "Whole,Src B,test,avg,f1,65.4\n")
    (folder / "pawsx.csv").write_text("model,source,split,lang,metric,value\n" + "".join(
        f"Whole,Src C,test,{lang},accuracy,{80 + i}.0\n" for i, lang in enumerate(TASK2LANGS["pawsx"])))
    return folder


def test_every_format_marks_where_a_published_number_comes_from(tmp_path):
    ref = _subset_reference(tmp_path / "ref")
    summary = build_summary(tmp_path / "none", ["panx", "pawsx"], reference_dir=ref)
    rows = {r.model: r for r in summary.rows}
    assert rows["Sub"].cells["panx"].avg_kind == "subset" and rows["Sub"].cells["panx"].score is None
    assert rows["Whole"].cells["panx"].avg_kind == "published avg"
    assert rows["Whole"].cells["pawsx"].avg_kind == "mean of printed"
    assert rows["Whole"].cells["pawsx"].score == pytest.approx(83.0)

    md = render_summary(summary, "md")
    assert "| – (subset; 2 of 40 languages, no average published) |" in md
    assert "65.4 (published avg)" in md and "83.0 (mean of printed)" in md
    data = json.loads(render_summary(summary, "json"))
    kinds = {r["model"]: {t: c["avg_kind"] for t, c in r["tasks"].items()} for r in data["rows"]}
    assert kinds == {"Sub": {"panx": "subset"}, "Whole": {"panx": "published avg", "pawsx": "mean of printed"}}
    assert {r["model"]: r["tasks"]["panx"]["coverage"] for r in data["rows"]} == {"Sub": "2 of 40 languages",
                                                                                    "Whole": None}
    csv_text = render_summary(summary, "csv")
    assert "panx avg_kind" in csv_text.splitlines()[0] and ",subset," in csv_text and ",mean of printed," in csv_text
    page = render_summary(summary, "html")
    assert "subset; 2 of 40 languages, no average published" in page and "published avg" in page
    assert "mean of printed" in render_summary(summary, "latex")
    from rich.console import Console

    console = Console(file=io.StringIO(), width=400, color_system=None)
    console.print(console_summary(summary))
    text = console.file.getvalue()
    assert "subset; 2 of 40 languages" in text and "mean of printed" in text and "published avg" in text

    # the task tables say it too: the subset in the Result column, the computed mean on its avg
    tables = [build_table(t, reference_dir=ref, baseline=None) for t in ("panx", "pawsx")]
    assert "| Sub | published, test, 2 of 40 languages |" in render(tables, "md")
    assert "83.0 (mean of printed)" in render(tables, "md")
    table_csv = render(tables, "csv")
    assert ",2 of 40 languages,Src A" in table_csv and ",mean of printed,,Src C" in table_csv
    rows_json = {r["model"]: r for t in json.loads(render(tables, "json"))["tables"] for r in t["rows"]}
    assert rows_json["Sub"]["subset"] and rows_json["Sub"]["languages_printed"] == [2, 40]
    html = render(tables, "html")
    assert '<span class="std">2 of 40 languages</span>' in html and '<span class="std">mean of printed</span>' in html
    assert "2 of 40 languages" in render(tables, "latex")
