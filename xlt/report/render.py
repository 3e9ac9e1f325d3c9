"""Renderers of comparison tables: console (rich), md, csv, latex, html and json.

Every text that comes from a record, a task file or a reference file is escaped for the output format. The
page style and the column-sorting script are package files (xlt/report/static/), inlined into each page so
that it opens from disk with nothing loaded from the network.
"""

from __future__ import annotations

import csv
import html
import io
import json
import math
import re
from functools import cache
from importlib.resources import files
from typing import Any, Sequence

from xlt.errors import XltError
from xlt.report.statistics import Stat
from xlt.report.tables import AVG, GAP, PRINTED_MEAN, Delta, Row, Table

FORMATS = ("console", "md", "csv", "latex", "html", "json")


@cache
def static_text(name: str) -> str:
    """A file of xlt/report/static (report.css, sort.js)."""
    return files("xlt.report").joinpath("static", name).read_text(encoding="utf-8")


# --------------------------------------------------------------------------------------------------
# Cell text


def fmt_stat(stat: Stat | None, with_std: bool = True) -> str:
    if stat is None or stat.mean is None or math.isnan(stat.mean):
        return "–"
    text = f"{stat.mean:.1f}"
    if with_std and stat.std is not None:
        text += f" ± {stat.std:.1f}"
    return text


def cell_text(t: Table, row: Row, col: str, with_std: bool = True, marker: bool = True) -> str:
    """A cell's text: each shown metric, "74.2" or "74.2 / 62.8" (with "± std" after each mean if asked), then
    the avg's marker where it is not the source's own average."""
    return " / ".join(fmt_stat(row.stat(i, t.metrics, col), with_std) for i in range(len(t.metrics))) + \
        (avg_marker(row, col) if marker else "")


def avg_marker(row: Row, col: str) -> str:
    """" (mean of printed)" on the avg of a published row whose source prints no average."""
    return f" ({PRINTED_MEAN})" if col == AVG and row.avg_kind == PRINTED_MEAN else ""


def fmt_delta(delta: Delta, col: str) -> str:
    if col not in delta.cells:
        return "–"
    sig = delta.significance.get(col)
    return f"{delta.cells[col]:+.1f}" + ("*" if sig is not None and sig.significant else "")


def seeds_text(row: Row) -> str:
    return str(row.seeds) if row.kind == "measured" else "–"


# Links and images ([...]), emphasis (*, and _ where it can open or close one: not inside a word such as
# exact_match), code, strike-through and table cells; ( ) # ! only act after these or at a line's start.
_MD_SYNTAX = re.compile(r"[\\`*\[\]~|]|(?<![A-Za-z0-9])_|_(?![A-Za-z0-9])")
_AUTOLINK = re.compile(r"(?i)\b(https?|ftp|file|mailto|www)([:.@])|(@)")   # what GitHub links without brackets


def md_escape(text: Any) -> str:
    """Text for a markdown table cell, shown as written and never as markup: HTML-escaped (markdown renders
    inline HTML), markdown's link, image, emphasis and code characters backslash-escaped, the characters that
    make GitHub autolink a bare URL or address escaped too, and line breaks (which end a table row) spaces."""
    text = " ".join(str(text).splitlines())
    text = _MD_SYNTAX.sub(lambda m: "\\" + m[0], html.escape(text, quote=False))
    return _AUTOLINK.sub(lambda m: f"{m[1]}\\{m[2]}" if m[1] else "\\@", text)


def latex_escape(text: Any) -> str:
    """Text for a LaTeX table cell or caption, typeset as written: special characters escaped, brackets braced
    (`\\\\` followed by `[` would read it as a row-spacing argument) and line breaks spaces (a blank line ends
    the tabular's paragraph)."""
    specials = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
                "<": r"\textless{}", ">": r"\textgreater{}", "[": "{[}", "]": "{]}", "Δ": r"$\Delta$", "−": r"$-$",
                "±": r"$\pm$", "–": "--"}
    return "".join(specials.get(c, " " if c.isspace() else c) for c in str(text))


def esc(text: Any) -> str:
    return html.escape(str(text), quote=True)


def missing_note(missing: dict[str, str]) -> str:
    """One sentence naming the tasks that have run records but no measured rows here, and why."""
    if not missing:
        return ""
    return "Tasks with run records but no measured rows here: " + "; ".join(f"{t} ({why.rstrip('.')})"
                                                                   for t, why in missing.items()) + "."


# --------------------------------------------------------------------------------------------------
# Text formats


def render_md(tables: Sequence[Table], missing: dict[str, str] | None = None) -> str:
    out = []
    for t in tables:
        head = ["Model", "Result", "Seeds", *t.columns]
        lines = [f"### {md_escape(t.task)}: {md_escape(' / '.join(t.metrics))}", "", md_escape(t.caption()), "",
                 "| " + " | ".join(md_escape(h) for h in head) + " |",
                 "|---|---|---:|" + "---:|" * len(t.columns)]
        for r in t.rows:
            cells = []
            for c in t.columns:
                text = md_escape(cell_text(t, r, c))
                cells.append(f"**{text}**" if t.is_best(r, c) else text)
            label = r.label if not (r.kind == "published" and r.is_dev) else f"**{r.label}**"
            lines.append("| " + " | ".join([md_escape(r.model), label, seeds_text(r), *cells]) + " |")
        for d in t.deltas:
            lines.append("| " + " | ".join([md_escape(d.label), md_escape(d.versus), "",
                                            *(fmt_delta(d, c) for c in t.columns)]) + " |")
        out.append("\n".join(lines))
    if missing:
        out.append(md_escape(missing_note(missing)))
    return "\n\n".join(out) + "\n"


def _csv_value(row: Row, stat: Stat | None) -> str:
    if stat is None or math.isnan(stat.mean):
        return ""
    return f"{stat.mean:.1f}" if row.kind == "published" else f"{stat.mean:.2f}"


def render_csv(tables: Sequence[Table], missing: dict[str, str] | None = None) -> str:
    """One line per model row and shown metric (no Δ rows): means in percent, published digits as printed."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    columns: list[str] = []
    for t in tables:
        columns += [c for c in t.columns if c not in columns]
    writer.writerow(["task", "model", "result", "split", "metric", "seeds", *columns, "avg_kind", "languages",
                     "source"])
    for t in tables:
        for r in t.rows:
            for i, metric in enumerate(t.metrics):
                writer.writerow([t.task, r.model, r.kind, r.split, metric, r.seeds if r.kind == "measured" else "",
                                 *(_csv_value(r, r.stat(i, t.metrics, c)) if c in t.columns else "" for c in columns),
                                 r.avg_kind, r.coverage if r.subset else "", r.source or " ".join(r.run_ids)])
    return buf.getvalue()


def render_latex(tables: Sequence[Table], missing: dict[str, str] | None = None) -> str:
    out = []
    for t in tables:
        spec = "ll" + "r" * (1 + len(t.columns))
        lines = [r"\begin{table*}[t]", r"\centering", r"\small", rf"\begin{{tabular}}{{{spec}}}", r"\toprule",
                 " & ".join(["Model", "Result", "Seeds", *(latex_escape(c) for c in t.columns)]) + r" \\",
                 r"\midrule"]
        for r in t.rows:
            cells = []
            for c in t.columns:
                parts = []
                for i in range(len(t.metrics)):
                    stat = r.stat(i, t.metrics, c)
                    text = latex_escape(fmt_stat(stat, with_std=False))
                    if stat is not None and stat.std is not None:
                        text += rf"\textsubscript{{$\pm${stat.std:.1f}}}"
                    parts.append(text)
                text = " / ".join(parts) + latex_escape(avg_marker(r, c))
                cells.append(rf"\textbf{{{text}}}" if t.is_best(r, c) else text)
            lines.append(" & ".join([latex_escape(r.model), latex_escape(r.label), latex_escape(seeds_text(r)),
                                     *cells]) + r" \\")
        if t.deltas:
            lines.append(r"\midrule")
            for d in t.deltas:
                lines.append(" & ".join([latex_escape(d.label), latex_escape(d.versus), "",
                                         *(latex_escape(fmt_delta(d, c)) for c in t.columns)]) + r" \\")
        lines += [r"\bottomrule", r"\end{tabular}", rf"\caption{{{latex_escape(t.caption())}}}",
                  rf"\label{{tab:{re.sub(r'[^A-Za-z0-9]+', '-', t.task)}}}", r"\end{table*}"]
        out.append("\n".join(lines))
    if missing:
        out.append("% " + latex_escape(missing_note(missing)))
    return "\n\n".join(out) + "\n"


def render_json(tables: Sequence[Table], missing: dict[str, str] | None = None) -> str:
    return json.dumps({"tables": [t.to_dict() for t in tables], "missing": missing or {}}, indent=2) + "\n"


# --------------------------------------------------------------------------------------------------
# HTML


def _pin(j: int, t: Table, klass: str = "") -> str:
    """The class attribute of value column j: avg and gap are pinned to the right edge of a table that
    scrolls sideways, so a 40-language task still shows them beside the model names."""
    pinned = {len(t.columns) - 2: "pin-avg", len(t.columns) - 1: "pin-gap"}.get(j, "")
    classes = " ".join(c for c in (klass, pinned) if c)
    return f' class="{classes}"' if classes else ""


def html_table(t: Table, table_id: str = "", sortable: bool = True) -> str:
    """One task's table as an HTML <table> (model rows in <tbody>, Δ rows in <tfoot>); all text escaped.
    Each cell carries `data-sort` with the raw value of its first metric so a script can sort numerically."""
    klass = "xlt-table sortable" if sortable else "xlt-table"
    if len(t.metrics) > 1:   # "86.5 / 75.7" cells may wrap at the slash, so 11 QA languages fit 1400 px
        klass += " multi-metric"
    ident = f' id="{esc(table_id)}"' if table_id else ""
    out = [f'<table class="{klass}"{ident} data-task="{esc(t.task)}">', "<thead><tr>"]
    heads = [("Model", "text"), ("Result", "text"), ("Seeds", "num")] + [(c, "num") for c in t.columns]
    for i, (name, kind) in enumerate(heads):
        title = ' title="transfer gap: lower is better"' if name == GAP else ""
        out.append(f'<th scope="col" data-type="{kind}"{title}{_pin(i - 3, t)}>{esc(name)}</th>')
    out.append("</tr></thead><tbody>")
    for r in t.rows:
        classes = ["published" if r.kind == "published" else "measured"] + (["dev"] if r.is_dev else [])
        badge = f'<span class="badge{" badge-dev" if r.is_dev else ""}">{esc(r.result)}</span>' + \
            (f'<span class="std">{esc(r.coverage)}</span>' if r.subset else "")   # below: the column stays narrow
        title = f' title="{esc(r.source)}"' if r.source else f' title="{esc(r.model)}"'
        out.append(f'<tr class="{" ".join(classes)}">'
                   f'<th scope="row" data-sort="{esc(r.model)}"{title}>{esc(r.model)}</th>'
                   f'<td data-sort="{esc(r.label)}">{badge}</td>'
                   f'<td data-sort="{r.seeds}">{esc(seeds_text(r))}</td>')
        for j, c in enumerate(t.columns):
            stat = r.cells.get(c)
            value = "" if stat is None else f"{stat.mean:.4f}"
            text = esc(cell_text(t, r, c, with_std=False, marker=False))
            stds = [r.stat(i, t.metrics, c) for i in range(len(t.metrics))]
            if any(s is not None and s.std is not None for s in stds):
                text += '<span class="std">' + " / ".join(
                    f"± {s.std:.1f}" if s is not None and s.std is not None else "" for s in stds) + "</span>"
            if avg_marker(r, c):   # below the value, small, so the pinned avg column stays narrow
                text += f'<span class="std">{esc(avg_marker(r, c).strip(" ()"))}</span>'
            bold = t.is_best(r, c)
            out.append(f'<td data-sort="{value}"{_pin(j, t, "best" if bold else "")}>'
                       f'{"<strong>" + text + "</strong>" if bold else text}</td>')
        out.append("</tr>")
    out.append("</tbody>")
    if t.deltas:
        out.append("<tfoot>")
        for d in t.deltas:
            out.append(f'<tr class="delta"><th scope="row">{esc(d.label)}</th><td>{esc(d.versus)}</td><td></td>')
            for j, c in enumerate(t.columns):
                sig = d.significance.get(c)
                title = (f' title="95% CI [{sig.low:+.2f}, {sig.high:+.2f}] over {sig.n} examples, '
                         f'{sig.n_resamples} resamples"') if sig is not None else ""
                cls = _pin(j, t, "sig" if sig is not None and sig.significant else "")
                out.append(f"<td{cls}{title}>{esc(fmt_delta(d, c))}</td>")
            out.append("</tr>")
        out.append("</tfoot>")
    out.append("</table>")
    return "\n".join(out)


def html_table_block(table_html: str, caption: str) -> str:
    """A table in its own horizontal scroll box, its caption below the box (never scrolled away or cut)."""
    return (f'<figure class="table-block"><div class="table-wrap">{table_html}</div>'
            f"<figcaption>{esc(caption)}</figcaption></figure>")


def html_document(title: str, body: str, script: bool = True) -> str:
    js = f"<script>{static_text('sort.js')}</script>" if script else ""
    return (f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            f"<title>{esc(title)}</title>\n<style>{static_text('report.css')}</style>\n</head>\n<body>\n<main>\n"
            f"{body}\n</main>\n{js}\n</body>\n</html>\n")


def render_html(tables: Sequence[Table], missing: dict[str, str] | None = None) -> str:
    parts = ["<h1>xlt comparison tables</h1>"]
    if missing:
        parts.append(f'<p class="notice">{esc(missing_note(missing))}</p>')
    for i, t in enumerate(tables):
        parts.append(f"<h2>{esc(t.task)}: {esc(' / '.join(t.metrics))}</h2>")
        parts.append(html_table_block(html_table(t, table_id=f"table-{i}"), t.caption()))
    return html_document("xlt report", "\n".join(parts))


# --------------------------------------------------------------------------------------------------
# Console


def console_tables(tables: Sequence[Table]) -> list[Any]:
    """rich renderables, one Table per task; text from records escaped so it is never read as markup."""
    from rich import box
    from rich.markup import escape
    from rich.table import Table as RichTable

    out = []
    for t in tables:
        rt = RichTable(title=f"{escape(t.task)}: {escape(' / '.join(t.metrics))}", caption=escape(t.caption()),
                       box=box.SIMPLE_HEAD, caption_justify="left", title_justify="left")
        rt.add_column("Model", no_wrap=True)
        rt.add_column("Result", no_wrap=True)
        rt.add_column("Seeds", justify="right")
        for c in t.columns:
            rt.add_column(escape(c), justify="right")
        for r in t.rows:
            cells = []
            for c in t.columns:
                text = escape(cell_text(t, r, c))
                cells.append(f"[bold]{text}[/bold]" if t.is_best(r, c) else text)
            label = escape(r.label)
            rt.add_row(escape(r.model), f"[yellow]{label}[/yellow]" if r.is_dev else label, seeds_text(r), *cells)
        for d in t.deltas:
            rt.add_row(escape(d.label), escape(d.versus), "", *(escape(fmt_delta(d, c)) for c in t.columns),
                       style="dim" if not d.significance else None, end_section=False)
        out.append(rt)
    return out


def render(tables: Sequence[Table], fmt: str, missing: dict[str, str] | None = None) -> str:
    """Text in one of md, csv, latex, html, json (console output is rendered by the CLI with rich)."""
    renderers = {"md": render_md, "csv": render_csv, "latex": render_latex, "html": render_html,
                 "json": render_json}
    if fmt not in renderers:
        raise XltError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    return renderers[fmt](tables, missing)
