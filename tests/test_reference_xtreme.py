"""The published baselines in results/reference/ (issue 23.5): every value of ../shared/references/xtreme as printed,
each row citing its source, XTREME's numbers never in one row with the XLM-R paper's, and a subset of languages
never averaged as the task's average."""

import csv
import io
from pathlib import Path

import pytest

from tests import factories
from tests.test_report import invoke
from xlt.report import AVG, GAP, build_table, default_reference_dir, render
from xlt.report.summary import build_summary
from xlt.report.tables import PRINTED_MEAN, PUBLISHED_AVG

SHARED = factories.SHARED_DATA.parent / "references" / "xtreme"
REFERENCE = default_reference_dir()

# The shared CSVs name models as their sources print them; results/reference labels each by where its numbers
# come from, so that XTREME's fine-tuning runs and the XLM-R paper's never share a row.
MODEL = {"XLM-R Large": "XLM-R large", "XLM-R Base": "XLM-R base", "mBERT": "mBERT", "XLM": "XLM", "MMTE": "MMTE",
         "XLM-15": "XLM-15", "mBERT (Devlin et al. 2018 row)": "mBERT"}
# shared file -> (task, family)
FILES = {"xquad.csv": ("xquad", "XTREME"), "pawsx.csv": ("pawsx", "XTREME"), "panx.csv": ("panx", "XTREME"),
         "udpos.csv": ("udpos", "XTREME"), "xnli.csv": ("xnli", "XTREME"), "mlqa.csv": ("mlqa", "XTREME"),
         "tydiqa.csv": ("tydiqa", "XTREME"), "mlqa_xlmr_paper.csv": ("mlqa", "XLM-R paper"),
         "xnli_xlmr_paper.csv": ("xnli", "XLM-R paper")}
SUMMARY_TASKS = {"XNLI": "xnli", "PAWS-X": "pawsx", "PAN-X (WikiAnn-NER)": "panx", "XQuAD": "xquad", "MLQA": "mlqa",
                 "TyDiQA-GoldP": "tydiqa"}
METRIC = {"accuracy": "accuracy", "f1": "f1", "em": "exact_match"}
# what a row citing each source of SOURCES.md must name: the repository and path, or the paper and table
CITES = {"S1": "google-deepmind/xquad README.md @ 4889992f5334348f4c43b5767127c80c66c3fd0e",
         "S2": "PaddlePaddle/ERNIE branch repro ernie-m/README.md",
         "S3": "tensorflow/tfhub.dev assets/docs/google/models/MuRIL-Large/1.md @ 06fc0dc73c9797f9aeb361379e23b5fee5cfb0ac",
         "S4": "facebookresearch/fairseq examples/xlmr/README.md @ 6034aea96bc3ae8e805aa47ae289b53457aa7372",
         "S5": "XLM-R paper (Conneau et al. ACL 2020 arXiv 1911.02116) Table",
         "S6": "google-research/multilingual-t5 README.md @ 1cf881700d57c258a403ea6ab31809b2889b8d5b"}
# values in results/reference that the shared CSVs do not hold, each sourced when it was added (README.md)
SOURCED_ELSEWHERE = {
    ("udpos", "XLM-R large (XTREME)", "avg", "f1"): ("73.8", "google-research/xtreme issue #56"),
    ("xnli", "XLM-R base (XLM-R paper)", "avg", "accuracy"): ("76.2", "Table 1"),
    ("xnli", "XLM-R large (XLM-R paper)", "avg", "accuracy"): ("80.9", "Table 1"),
    ("mlqa", "XLM-R large (XLM-R paper)", "avg", "f1"): ("70.7", CITES["S4"]),
    ("mlqa", "XLM-R large (XLM-R paper)", "avg", "exact_match"): ("52.7", CITES["S4"]),
    ("mlqa", "mBERT (XLM-R paper)", "avg", "f1"): ("57.7", CITES["S4"]),
    ("mlqa", "mBERT (XLM-R paper)", "avg", "exact_match"): ("41.6", CITES["S4"]),
}


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def _reference() -> dict[tuple[str, str, str, str], dict[str, str]]:
    """(task, model, lang, metric) -> the row as written (values as strings: the digits as printed)."""
    out = {}
    for path in sorted(REFERENCE.glob("*.csv")):
        for r in _rows(path):
            key = (path.stem, r["model"], r["lang"], r["metric"])
            assert key not in out, f"{path.name}: two rows for {key}"
            out[key] = r
    return out


def _shared() -> dict[tuple[str, str, str, str], tuple[str, str]]:
    """(task, label, lang, metric) -> (value as printed, source id) for every value of the shared CSVs."""
    want = {}
    for name, (task, family) in FILES.items():
        for r in _rows(SHARED / name):
            for column in ("accuracy", "f1", "em"):
                if column in r:
                    want[(task, f"{MODEL[r['model']]} ({family})", r["lang"], METRIC[column])] = \
                        (r[column], r["source_id"])
    for r in _rows(SHARED / "summary.csv"):
        key = (SUMMARY_TASKS[r["task"]], f"{MODEL[r['model']]} (XTREME)", AVG, METRIC[r["metric"]])
        assert want.get(key, (r["value"],))[0] == r["value"], f"two sources disagree on {key}"
        want.setdefault(key, (r["value"], r["source_id"]))
        want[key + (r["source_id"],)] = (r["value"], r["source_id"])   # each source of an average, cited
    return want


def test_every_shared_value_is_in_results_reference_as_printed_and_cited():
    assert SHARED.is_dir(), f"{SHARED} not found: ../shared must sit beside the project"
    reference = _reference()
    for key, (value, source_id) in _shared().items():
        row = reference.get(key[:4])
        assert row is not None, f"missing reference row {key[:4]} ({source_id})"
        assert row["value"] == value, f"{key[:4]}: {row['value']} in results/reference, {value} in the source"
        assert CITES[source_id] in row["source"], f"{key[:4]} does not cite {source_id}: {row['source']}"
        expected_split = "validation" if key[0] in ("xquad", "tydiqa") else "test"   # xlt's names of their split
        assert row["split"] == expected_split


def test_every_xtreme_or_xlmr_paper_row_is_a_shared_value_or_sourced_elsewhere():
    """A number nobody can source stays out: nothing in results/reference is recalled from memory."""
    shared = {k[:4] for k in _shared()}
    for key, row in _reference().items():
        if key[1].endswith(("(XTREME)", "(XLM-R paper)")) and key not in shared:
            assert key in SOURCED_ELSEWHERE, f"{key} = {row['value']} is in no shared CSV and not listed here"
            value, cite = SOURCED_ELSEWHERE[key]
            assert row["value"] == value and cite in row["source"]


def test_a_row_holds_one_family_of_numbers():
    """XLM-R large is 80.6 on MLQA en in the XLM-R paper and 83.5 in XTREME: two fine-tuning runs, two rows."""
    by_model: dict[str, set[str]] = {}
    for (task, model, _, _), row in _reference().items():
        by_model.setdefault(model, set()).add(row["source"])
    for model, sources in by_model.items():
        if model.endswith("(XTREME)"):
            assert all(s.startswith("XTREME") for s in sources), (model, sources)
        elif model.endswith("(XLM-R paper)"):
            assert all(s.startswith("XLM-R paper") for s in sources), (model, sources)
        else:   # a model of the XTREME or XLM-R paper tables must say which
            assert not model.startswith(("XLM", "mBERT", "MMTE")), model
    summary = build_summary(Path("/nonexistent"))
    rows = {r.model: r for r in summary.rows}
    assert rows["XLM-R large (XLM-R paper)"].cells["mlqa"].stats[0].mean == 70.7
    assert rows["XLM-R large (XTREME)"].cells["mlqa"].stats[0].mean == 71.6


@pytest.mark.parametrize("task, model, printed", [
    ("panx", "XLM-R large (XTREME)", {"bn": 78.8, "en": 84.7, "ur": 56.4}),
    ("udpos", "XLM-R large (XTREME)", {"en": 96.1, "te": 86.6}),
    ("tydiqa", "XLM-R large (XTREME)", {"en": 71.5, "te": 70.1}),
    ("mlqa", "XLM-R large (XTREME)", {"en": 83.5, "hi": 70.6}),
    ("xquad", "mBERT (XTREME)", {"en": 83.5, "th": 42.7}),
    ("pawsx", "MMTE (XTREME)", {"en": 93.1, "zh": 75.9}),
    ("xnli", "mBERT (XLM-R paper)", {"en": 82.1, "ur": 58.0}),
])
def test_a_task_with_no_runs_shows_its_sourced_rows(tmp_path, task, model, printed):
    result = invoke("report", "tables", "--task", task, "--format", "csv", "--results-dir", str(tmp_path))
    assert result.exit_code == 0, result.output
    row = next(r for r in csv.DictReader(io.StringIO(result.stdout)) if r["model"] == model)   # the primary metric
    assert {lang: float(row[lang]) for lang in printed} == printed
    assert row["result"] == "published" and row["source"]
    console = invoke("report", "tables", "--task", task, "--results-dir", str(tmp_path))
    assert console.exit_code == 0 and model in console.stdout


def test_xtremes_panx_subset_shows_xtremes_average_not_its_own():
    """The 8 PAN-X languages S3 prints average 68.0; XTREME's average over its 40 languages is 65.4."""
    table = build_table("panx")
    row = next(r for r in table.rows if r.model == "XLM-R large (XTREME)")
    assert len(table.languages) == 40 and row.subset and row.label == "published, test, 8 of 40 languages"
    assert row.cells[AVG].mean == 65.4 and row.avg_kind == PUBLISHED_AVG and GAP not in row.cells
    # XQuAD's only split, "validation", is its test set even with no run saying so
    xquad = next(r for r in build_table("xquad").rows if r.model == "XLM-R large (XTREME)")
    assert not xquad.is_dev and xquad.label == "published, validation"


def _write_reference(folder: Path, task: str, lines: list[str]) -> Path:
    folder.mkdir(exist_ok=True)
    (folder / f"{task}.csv").write_text("model,source,split,lang,metric,value\n" + "\n".join(lines) + "\n")
    return folder


def test_a_subset_without_a_published_average_gets_no_average_anywhere(tmp_path):
    ref = _write_reference(tmp_path / "ref", "panx", ["Part,Src,test,en,f1,90.0", "Part,Src,test,de,f1,80.0",
                                                      "Part,Src,test,sw,f1,50.0"])
    table = build_table("panx", reference_dir=ref)
    (row,) = table.rows
    assert row.subset and row.coverage == "3 of 40 languages" and AVG not in row.cells and GAP not in row.cells
    summary = build_summary(tmp_path / "none", ["panx"], reference_dir=ref)
    cell = summary.rows[0].cells["panx"]
    assert cell.score is None and cell.avg_kind == "subset" and cell.coverage == "3 of 40 languages"
    # with a run of the task (its record lists the languages) the row is the same subset
    task = {"name": "panx", "type": "token-classification", "languages": ["en", "de", "sw", "fr"], "source_lang": "en",
            "primary_metric": "f1", "metrics": ["f1"]}
    _write_run(tmp_path / "runs-dir", "m", task, {lang: {"f1": 0.5} for lang in task["languages"]})
    from xlt.results import load_records

    with_run = build_table("panx", load_records(tmp_path / "runs-dir"), reference_dir=ref)
    part = next(r for r in with_run.rows if r.kind == "published")
    assert part.coverage == "3 of 4 languages" and AVG not in part.cells
    assert next(r for r in with_run.rows if r.kind == "measured").cells[AVG].mean == pytest.approx(50.0)


def test_a_task_of_no_suite_with_no_runs_averages_nothing_it_cannot_know_is_whole(tmp_path):
    """Its languages are only those its reference rows print: a row printing all of them may still be a
    subset of the task, so only a published average is shown."""
    ref = _write_reference(tmp_path / "ref", "mytask", ["A,Src,test,en,accuracy,90.0", "A,Src,test,yo,accuracy,60.0",
                                                        "B,Src,test,en,accuracy,80.0",
                                                        "C,Src,test,en,accuracy,85.0", "C,Src,test,yo,accuracy,55.0",
                                                        "C,Src,test,avg,accuracy,71.0"])
    rows = {r.model: r for r in build_table("mytask", reference_dir=ref).rows}
    assert AVG not in rows["A"].cells and not rows["A"].subset and rows["A"].cells[GAP].mean == 30.0
    assert rows["B"].subset and rows["B"].label == "published, test, 1 of 2 languages" and GAP not in rows["B"].cells
    assert rows["C"].cells[AVG].mean == 71.0 and rows["C"].avg_kind == PUBLISHED_AVG


def test_a_whole_row_without_an_average_shows_the_mean_of_its_printed_values_marked():
    table = build_table("xnli")
    row = next(r for r in table.rows if r.model == "mBERT (XLM-R paper)")
    printed = [row.cells[lang].mean for lang in table.languages]
    assert len(printed) == 15 and row.avg_kind == PRINTED_MEAN
    assert row.cells[AVG].mean == pytest.approx(sum(printed) / 15)
    assert "66.3 (mean of printed)" in render([table], "md")


def _write_run(results: Path, model: str, task: dict, by_lang: dict, seed: int = 1) -> None:
    from xlt.results import new_record, write_run

    spec = factories.spec(model, task["name"], seed=seed)
    metrics = {"test": {lang: {**values, "n": 100} for lang, values in by_lang.items()}}
    record = new_record(spec, status="completed", model={"name": model}, task=task, metrics=metrics)
    write_run(results, record)
