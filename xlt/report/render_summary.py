"""Renderers of the suite summary (`xlt report summary`): console, md, csv, latex, html and json.

All formats share one grid of cell texts (`summary_grid`), so they never disagree; text from records and
reference files is escaped for each format.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from typing import Any

from xlt.errors import XltError
from xlt.report.records import split_label
from xlt.report.render import esc, latex_escape, md_escape
from xlt.report.summary import OVERALL, Summary, SummaryRow

SUMMARY_FORMATS = ("console", "md", "csv", "latex", "html", "json")


@dataclass
class GridCell:
    text: str
    value: float | None = None      # what the column ranks by (bold = best)
    missing: bool = False
    main: str = ""                  # html: the text on the cell's first line (the rest goes below, small)

    def html(self) -> str:
        main = self.main or self.text
        rest = self.text[len(main):].strip()
        return esc(main) + (f'<span class="std">{esc(rest)}</span>' if rest else "")


def _task_cell(summary: Summary, row: SummaryRow, task: str) -> GridCell:
    cell = row.cells.get(task)
    if cell is None:   # the caption says: – = no run (measured) or not published
        return GridCell("–", missing=True)
    main = " / ".join("–" if s is None else f"{s.mean:.1f}" for s in cell.stats)
    # what the number is: seeds (measured), or where a published number comes from; then its split, what lacks
    notes = [f"n={cell.seeds}" if row.kind == "measured" else cell.avg_kind]
    if cell.split and cell.split != summary.split:
        notes.append(split_label(cell.split))
    notes.append(cell.missing)
    notes = [n for n in notes if n]
    first = cell.stats[0]
    return GridCell(main + (f" ({'; '.join(notes)})" if notes else ""), None if first is None else first.mean,
                    missing=bool(cell.missing), main=main)


def summary_grid(summary: Summary) -> tuple[list[str], list[list[GridCell]]]:
    """(header, rows of cells): Model, Result, one column per task, per group, overall."""
    header = ["Model", "Result", *summary.tasks, *(g.name for g in summary.groups), OVERALL]
    n = len(summary.suite.tasks)
    rows = []
    for r in summary.rows:
        cells = [GridCell(r.model), GridCell(r.label)]
        cells += [_task_cell(summary, r, t) for t in summary.tasks]
        for g in summary.groups:
            value = r.groups.get(g.name)
            lacking = [t for t in g.tasks if t in r.missing]
            cells.append(GridCell(f"{value:.1f}", value) if value is not None else
                         GridCell(f"– needs {', '.join(lacking)}", missing=True, main="–"))
        if r.overall is not None:
            cells.append(GridCell(f"{r.overall:.1f}", r.overall))
        elif not summary.complete:
            cells.append(GridCell(f"– needs all {n} tasks", missing=True, main="–"))
        elif len(r.missing) <= 3:
            cells.append(GridCell(f"– missing {', '.join(r.missing)}", missing=True, main="–"))
        else:   # the task columns show which
            cells.append(GridCell(f"– missing {len(r.missing)} of {n} tasks", missing=True, main="–"))
        rows.append(cells)
    return header, rows


def _best(rows: list[list[GridCell]]) -> set[tuple[int, int]]:
    """(row, column) of the best value per column, compared at display precision, when two rows compete."""
    out = set()
    for j in range(2, len(rows[0]) if rows else 0):
        vals = [(i, round(r[j].value, 1)) for i, r in enumerate(rows) if r[j].value is not None]
        if len(vals) > 1:
            top = max(v for _, v in vals)
            out |= {(i, j) for i, v in vals if v == top}
    return out


def _sources(summary: Summary) -> list[str]:
    """One line per published row: each source once, after the tasks it gives numbers for."""
    out = []
    for r in summary.rows:
        by_source: dict[str, list[str]] = {}
        for task, source in r.sources.items():
            by_source.setdefault(source, []).append(task)
        if by_source:
            out.append(f"{r.model}: " + "; ".join(f"{', '.join(ts)}: {s}" for s, ts in by_source.items()))
    return out


def _missing_tasks(summary: Summary) -> str:
    if not summary.missing:
        return ""
    return "Tasks with run records but no measured rows here: " + "; ".join(f"{t} ({why})" for t, why in
                                                                   summary.missing.items()) + "."


def render_summary_md(summary: Summary) -> str:
    header, rows = summary_grid(summary)
    best = _best(rows)
    lines = [f"### {md_escape(summary.suite.title)} summary", "", md_escape(summary.caption()), "",
             "| " + " | ".join(md_escape(h) for h in header) + " |", "|---|---|" + "---:|" * (len(header) - 2)]
    for i, cells in enumerate(rows):
        texts = [md_escape(c.text) for c in cells]
        texts = [f"**{t}**" if (i, j) in best else t for j, t in enumerate(texts)]
        lines.append("| " + " | ".join(texts) + " |")
    extra = [f"- {md_escape(s)}" for s in _sources(summary)]
    if summary.missing:
        extra.append(md_escape(_missing_tasks(summary)))
    return "\n".join(lines + ([""] + ["Sources:"] + extra if extra else [])) + "\n"


def render_summary_csv(summary: Summary) -> str:
    """One line per row; task columns hold the first metric's language average (the score columns follow)."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    metric_cols = [f"{t} {m}" for t in summary.tasks for m in summary.metrics[t]]
    writer.writerow(["model", "result", *metric_cols, *(f"{t} seeds" for t in summary.tasks),
                     *(f"{t} avg_kind" for t in summary.tasks), *(g.name for g in summary.groups), OVERALL,
                     "missing", "source"])
    for r in summary.rows:
        values = []
        for t in summary.tasks:
            cell = r.cells.get(t)
            stats = cell.stats if cell else [None] * len(summary.metrics[t])
            values += ["" if s is None else f"{s.mean:.2f}" for s in stats]
        seeds = [str(r.cells[t].seeds) if t in r.cells and r.kind == "measured" else "" for t in summary.tasks]
        kinds = [r.cells[t].avg_kind if t in r.cells else "" for t in summary.tasks]
        groups = ["" if r.groups.get(g.name) is None else f"{r.groups[g.name]:.2f}" for g in summary.groups]
        writer.writerow([r.model, r.kind, *values, *seeds, *kinds, *groups,
                         "" if r.overall is None else f"{r.overall:.2f}", " ".join(r.missing),
                         "; ".join(f"{t}: {s}" for t, s in r.sources.items())])
    return buf.getvalue()


def render_summary_latex(summary: Summary) -> str:
    header, rows = summary_grid(summary)
    best = _best(rows)
    lines = [r"\begin{table*}[t]", r"\centering", r"\small", rf"\begin{{tabular}}{{ll{'r' * (len(header) - 2)}}}",
             r"\toprule", " & ".join(latex_escape(h) for h in header) + r" \\", r"\midrule"]
    for i, cells in enumerate(rows):
        texts = [latex_escape(c.text) for c in cells]
        lines.append(" & ".join(rf"\textbf{{{t}}}" if (i, j) in best else t for j, t in enumerate(texts)) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}", rf"\caption{{{latex_escape(summary.caption())}}}",
              r"\label{tab:summary}", r"\end{table*}"]
    return "\n".join(lines) + "\n"


def html_summary_table(summary: Summary, table_id: str = "summary") -> str:
    """The summary as a sortable HTML table (same classes as the task tables)."""
    header, rows = summary_grid(summary)
    best = _best(rows)
    n_tasks = len(summary.tasks)
    out = [f'<table class="xlt-table sortable" id="{esc(table_id)}" data-task="summary">', "<thead><tr>"]
    for j, h in enumerate(header):
        kind = "text" if j < 2 else "num"
        out.append(f'<th scope="col" data-type="{kind}">{esc(h)}</th>')
    out.append("</tr></thead><tbody>")
    for i, (r, cells) in enumerate(zip(summary.rows, rows)):
        title = "; ".join(f"{t}: {s}" for t, s in r.sources.items()) or r.model
        out.append(f'<tr class="{r.kind}"><th scope="row" data-sort="{esc(r.model)}" title="{esc(title)}">'
                   f'{esc(r.model)}</th><td data-sort="{esc(r.label)}"><span class="badge">{esc(r.label)}</span></td>')
        for j, c in enumerate(cells[2:], start=2):
            classes = (["best"] if (i, j) in best else []) + (["summary-col"] if j == 2 + n_tasks else [])
            klass = f' class="{" ".join(classes)}"' if classes else ""
            text = c.html()   # the value, then its seeds or what is missing below it, small
            if c.missing:
                text = f'<span class="absent">{text}</span>'
            elif (i, j) in best:
                text = f"<strong>{text}</strong>"
            value = "" if c.value is None else f"{c.value:.4f}"
            out.append(f'<td data-sort="{value}"{klass}>{text}</td>')
        out.append("</tr>")
    out.append("</tbody></table>")
    return "\n".join(out)


def summary_caption_html(summary: Summary) -> str:
    """The caption with each published row's sources (for the figcaption under the table)."""
    parts = [summary.caption(), *(f"Sources — {s}" for s in _sources(summary))]
    if summary.missing:
        parts.append(_missing_tasks(summary))
    return " ".join(parts)


def render_summary_html(summary: Summary) -> str:
    from xlt.report.render import html_document, html_table_block

    body = (f"<h1>{esc(summary.suite.title)} summary</h1>"
            + html_table_block(html_summary_table(summary), summary_caption_html(summary)))
    return html_document(f"xlt {summary.suite.title} summary", body)


def render_summary_json(summary: Summary) -> str:
    return json.dumps(summary.to_dict(), indent=2) + "\n"


def console_summary(summary: Summary) -> Any:
    from rich import box
    from rich.markup import escape
    from rich.table import Table as RichTable

    header, rows = summary_grid(summary)
    best = _best(rows)
    rt = RichTable(title=f"{escape(summary.suite.title)} summary", caption=escape(summary_caption_html(summary)),
                   box=box.SIMPLE_HEAD, caption_justify="left", title_justify="left")
    for j, h in enumerate(header):
        rt.add_column(escape(h), justify="left" if j < 2 else "right", no_wrap=j < 2)
    for i, cells in enumerate(rows):
        texts = [escape(c.text) for c in cells]
        rt.add_row(*(f"[bold]{t}[/bold]" if (i, j) in best else (f"[yellow]{t}[/yellow]" if cells[j].missing else t)
                     for j, t in enumerate(texts)))
    return rt


def render_summary(summary: Summary, fmt: str) -> str:
    renderers = {"md": render_summary_md, "csv": render_summary_csv, "latex": render_summary_latex,
                 "html": render_summary_html, "json": render_summary_json}
    if fmt not in renderers:
        raise XltError(f"unknown format {fmt!r}; choose one of {', '.join(SUMMARY_FORMATS)}")
    return renderers[fmt](summary)
