"""Reports: comparison tables from run records and published numbers, with significance; the suite summary.

    statistics.py   Stat, aggregate, macro_average, transfer_gap, the paired bootstrap over examples
    records.py      what reports read: records (shape-checked), reference CSVs, the task layout from records
    tables.py       the table model (Row, Delta, Table, Report) and build_table / build_report
    runs.py         `report runs` and `report show`
    suites.py       suites.yaml: a benchmark's tasks, groups, score metrics and languages (XTREME's scorer)
    summary.py      `report summary`: one row per model, one column per task, suite group averages
    render.py       console, md, csv, latex, html and json renderers (CSS/JS in static/)
"""

from xlt.report.records import (AVG, REFERENCE_COLUMNS, TaskView, default_reference_dir, is_count,
                                load_reference, load_usable_records, normalize_model_name, runs_frame,
                                split_label, usable_records)
from xlt.report.render import (FORMATS, console_tables, html_document, html_table, html_table_block, md_escape,
                               render, render_md)
from xlt.report.runs import find_run, run_average, run_detail, runs_table
from xlt.report.statistics import N_RESAMPLES, Bootstrap, Stat, aggregate, macro_average, paired_bootstrap, \
    transfer_gap
from xlt.report.tables import (DEFAULT_BASELINE, DEFAULT_SPLIT, GAP, SPLITS, Delta, Report, Row, Table,
                               build_report, build_table, known_tasks)

__all__ = ["AVG", "GAP", "DEFAULT_BASELINE", "DEFAULT_SPLIT", "SPLITS", "N_RESAMPLES", "FORMATS",
           "REFERENCE_COLUMNS", "Bootstrap", "Delta", "Report", "Row", "Stat", "Table", "TaskView", "aggregate",
           "build_report", "build_table", "console_tables", "default_reference_dir", "find_run", "html_document",
           "html_table", "html_table_block", "is_count", "known_tasks", "load_reference", "load_usable_records",
           "macro_average", "md_escape", "normalize_model_name", "paired_bootstrap", "render", "render_md",
           "run_average", "run_detail", "runs_frame", "runs_table", "split_label", "transfer_gap",
           "usable_records"]
