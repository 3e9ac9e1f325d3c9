"""The static leaderboard: `index.html` (one sortable table per task), a per-language bar chart per task
(SVG, matplotlib Agg) and `README.md` with the same tables in markdown.

The site opens from disk with no network: styles and the small sorting script are inline, charts are files
beside `index.html`, nothing is loaded from a CDN. Every text that comes from a record, a task file or a
reference file is HTML-escaped (in README.md too, since markdown renders inline HTML). The tables are the
ones `xlt report tables` prints (`xlt.report.build_report`), so the two never disagree.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from xlt.errors import XltError
from xlt.report import (AVG, DEFAULT_BASELINE, DEFAULT_SPLIT, N_RESAMPLES, Table, _task_spec, build_report,
                        html_document, html_table, md_escape, render_md)

# Colour-blind-safe palette (Okabe-Ito), one colour per row in table order.
PALETTE = ["#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000"]


@dataclass
class Leaderboard:
    output: Path
    files: list[Path] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)   # record files skipped, naming them


def slug(name: str, taken: set[str]) -> str:
    """A file-name-safe, unique stem for a task name (task names are free text)."""
    base = re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-.") or "task"
    stem, i = base, 2
    while stem in taken:
        stem, i = f"{base}-{i}", i + 1
    taken.add(stem)
    return stem


def bar_chart(table: Table, path: Path) -> Path:
    """Grouped bars: one group per language (then avg), one bar per row; std over seeds as error bars."""
    from matplotlib.figure import Figure

    cols = [*table.languages, AVG]
    rows = table.rows[:len(PALETTE)]
    cells = [v for r in rows for c, v in r.cells.items() if c in cols]
    if not cells:
        raise XltError(f"task {table.task!r} has no values to plot")
    bottom = min(v.mean - (v.std or 0) for v in cells)
    top = max(v.mean + (v.std or 0) for v in cells)
    low = max(0.0, (bottom - 8) // 10 * 10)
    high = min(100.0, top + 4) if top <= 100 else top * 1.05

    fig = Figure(figsize=(11.0, 3.8), dpi=100)   # one size for every task, shown at the page's width
    ax = fig.add_subplot()
    group = 0.8
    bar = min(group / max(1, len(rows)), 0.3)
    group = bar * len(rows)
    for i, r in enumerate(rows):
        xs, ys, errs = [], [], []
        for j, c in enumerate(cols):
            if c in r.cells:
                xs.append(j - group / 2 + bar * (i + 0.5))
                ys.append(r.cells[c].mean)
                errs.append(r.cells[c].std or 0.0)
        ax.bar(xs, ys, width=bar * 0.92, color=PALETTE[i], label=f"{r.model} ({r.label})",
               hatch="///" if r.is_dev else None, edgecolor="white" if r.is_dev else PALETTE[i], linewidth=0,
               yerr=errs if any(errs) else None, capsize=2 if any(errs) else 0,
               error_kw={"elinewidth": 0.8, "ecolor": "#333333"})
    ax.set_xticks(range(len(cols)), cols)
    ax.axvspan(len(cols) - 1.5, len(cols) - 0.5, color="#f2f2f2", zorder=0)   # set the average apart
    ax.set_ylim(low, high)
    ax.set_xlim(-0.6, len(cols) - 0.4)
    ax.set_ylabel(f"{table.metric} (%)")
    ax.set_title(f"{table.task}: {table.metric} by language (y axis from {low:.0f})", loc="left", fontsize=11)
    ax.grid(axis="y", color="#e5e5e5", linewidth=0.8)
    ax.set_axisbelow(True)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.09), fontsize=8.5, frameon=False,
              ncol=min(len(rows), 4))
    fig.tight_layout()
    import matplotlib

    # No date and a fixed id salt: rebuilding from the same numbers gives the same files (clean diffs).
    with matplotlib.rc_context({"svg.hashsalt": "xlt"}):
        fig.savefig(path, format=path.suffix.lstrip("."), bbox_inches="tight",
                    metadata={"Date": None} if path.suffix == ".svg" else None)
    return path


def _xlt_version() -> str:
    try:
        return version("xlt")
    except PackageNotFoundError:
        return "dev"


def render_index(tables: list[Table], charts: dict[str, str], n_records: int) -> str:
    esc = html.escape
    parts = ['<h1>xlt leaderboard</h1>',
             '<p class="lead">Zero-shot cross-lingual transfer: each model is fine-tuned on the source language '
             'only and evaluated on every language. Measured rows are xlt runs (mean ± std over seeds); '
             'published rows are labelled with the split they were measured on.</p>',
             f'<p class="meta">{len(tables)} task{"s" if len(tables) != 1 else ""}, {n_records} run record'
             f'{"s" if n_records != 1 else ""}. Click a column header to sort.</p>']
    if not tables:
        parts.append("<p>No results yet: run <code>xlt run</code> or add reference numbers.</p>")
    for i, t in enumerate(tables):
        spec = _task_spec(t.task, None)
        parts.append(f'<section id="task-{i}" data-task="{esc(t.task)}">')
        parts.append(f"<h2>{esc(t.task)}</h2>")
        description = getattr(spec, "description", "") if spec is not None else ""
        if description:
            parts.append(f'<p class="meta">{esc(description.strip())}</p>')
        parts.append(f'<div class="table-wrap">{html_table(t, table_id=f"table-{i}")}</div>')
        if t.task in charts:
            alt = f"{t.task}: {t.metric} per language for each model"
            parts.append(f'<figure><img src="{esc(charts[t.task])}" alt="{esc(alt)}">'
                         f"<figcaption>{esc(t.task)}: per-language {esc(t.metric)}; hatched bars are dev-set "
                         "numbers; error bars are the std over seeds.</figcaption></figure>")
        parts.append("</section>")
    parts.append(f'<footer>Built by <code>xlt leaderboard build</code> (xlt {esc(_xlt_version())}). '
                 "Self-contained: opens from disk, loads nothing from the network.</footer>")
    return html_document("xlt leaderboard", "\n".join(parts))


def render_readme(tables: list[Table], charts: dict[str, str]) -> str:
    lines = ["# xlt leaderboard", "",
             "Zero-shot cross-lingual transfer, built by `xlt leaderboard build`; open `index.html` for sortable "
             "tables. Published rows are labelled with their split.", ""]
    for t in tables:
        lines.append(render_md([t]).rstrip("\n"))
        if t.task in charts:
            lines += ["", f"![{md_escape(t.task)}: per-language {md_escape(t.metric)}]({charts[t.task]})"]
        lines.append("")
    return "\n".join(lines)


def build_leaderboard(results_dir: Path | str, output: Path | str = "leaderboard", *,
                      reference_dir: Path | None = None, tasks_dir: Path | None = None,
                      split: str = DEFAULT_SPLIT, baseline: str | None = DEFAULT_BASELINE,
                      n_resamples: int = N_RESAMPLES) -> Leaderboard:
    """Write index.html, README.md and one `<task>.svg` per task into `output`; returns what it wrote."""
    report = build_report(results_dir, baseline=baseline, split=split, reference_dir=reference_dir,
                          tasks_dir=tasks_dir, n_resamples=n_resamples)
    out = Path(output)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise XltError(f"cannot create the leaderboard folder {out}: {exc}") from None
    board = Leaderboard(output=out, tables=report.tables, problems=report.problems)
    taken: set[str] = {"index", "README"}
    charts = {}
    for t in report.tables:
        name = f"{slug(t.task, taken)}.svg"
        board.files.append(bar_chart(t, out / name))
        charts[t.task] = name
    for name, text in (("index.html", render_index(report.tables, charts, report.n_records)),
                       ("README.md", render_readme(report.tables, charts))):
        (out / name).write_text(text, encoding="utf-8")
        board.files.append(out / name)
    return board
