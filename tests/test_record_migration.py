"""Records of schema version 1 (written before records carried metric formulas and predictions carried per-example
statistics) stay readable: upgraded on read, shown and significance-tested exactly as that version showed them."""

import shutil
from pathlib import Path

from xlt.report import build_table
from xlt.report.render import render
from xlt.results import SCHEMA_VERSION, load_records, prediction_statistics, load_predictions

V1 = Path(__file__).resolve().parent / "data" / "v1-records"


def table_rows(markdown: str) -> list[str]:
    """The table's lines, without bold marks: these runs evaluated a subset of languages, whose gap is no longer
    bolded against full runs (issue 26); every number and significance mark stays."""
    return [line.replace("\\*", "*").replace("**", "") for line in markdown.splitlines() if line.startswith("|")]


def test_version_1_records_are_upgraded_on_read(tmp_path):
    """Would catch: version 1 records refused (or shown without their significance) after the schema moved on."""
    shutil.copytree(V1 / "runs", tmp_path / "runs")
    loaded = load_records(tmp_path)
    assert loaded.problems == [] and len(loaded.records) == 6
    for path, record in zip(loaded.paths, loaded.records):
        assert record["schema_version"] == SCHEMA_VERSION and record["migrated_from"] == 1
        info = record["task"]["metric_info"][record["task"]["primary_metric"]]
        assert info["formula"] and info["caption"]
        stats = prediction_statistics(record, load_predictions(path, record))
        assert stats is not None and len(stats) == record["predictions"]["rows"]
    assert '"schema_version": 1' in next((tmp_path / "runs").rglob("*.json")).read_text()   # never rewritten


def test_version_1_records_give_the_tables_that_version_printed(tmp_path):
    """The same cells, deltas and significance marks as xlt printed for them at the commit that wrote them (the
    bootstrap recomputes tagging statistics with today's installed type)."""
    shutil.copytree(V1 / "runs", tmp_path / "runs")
    records = load_records(tmp_path)
    for task in ("xnli", "panx"):
        table = build_table(task, records, reference=False, split="validation", baseline="model-1")
        assert table_rows(render([table], "md")) == table_rows((V1 / f"old_{task}.md").read_text())
    panx = build_table("panx", records, reference=False, split="validation", baseline="model-1")
    (delta,) = panx.deltas
    assert delta.significance["sw"].significant and round(delta.cells["sw"], 1) == -11.4
