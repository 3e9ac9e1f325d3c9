"""The static leaderboard: `index.html` (the suite summary, then one section per task with its sortable table,
a per-language chart and a transfer-gap chart), the charts as SVG files (matplotlib Agg) and `README.md` with
the same tables in markdown.

The site opens from disk with no network: the style and the small sorting script (xlt/report/static/) are
inlined, charts are files beside `index.html`, nothing is loaded from a CDN. Every text that comes from a
record, a task file or a reference file is HTML-escaped (in README.md too, since markdown renders inline
HTML). The tables are the ones `xlt report tables` and `xlt report summary` print, so they never disagree.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass, field
from pathlib import Path

from xlt.errors import XltError
from xlt.names import inside
from xlt.report import (AVG, DEFAULT_BASELINE, DEFAULT_SPLIT, GAP, N_RESAMPLES, Table, build_report,
                        html_document, html_table, html_table_block, load_usable_records, md_escape, render_md)
from xlt.report.render import missing_note
from xlt.report.render_summary import html_summary_table, render_summary_md, summary_caption_html
from xlt.report.summary import Summary, build_summary

# Colour-blind-safe palette (Okabe-Ito), one colour per row in table order.
PALETTE = ["#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000"]
WIDTH_IN = 12.0           # every chart is drawn this wide and shown at the page's width
LEGEND_ROW_IN = 0.24      # height of one legend row, added below the plot so the legend never squeezes it
TICKS_IN = 0.35           # room for the x tick labels between the plot and its legend


@dataclass
class Leaderboard:
    output: Path
    files: list[Path] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)   # record files skipped, naming them
    warnings: list[str] = field(default_factory=list)   # predictions files left out of significance tests
    missing: dict[str, str] = field(default_factory=dict)   # tasks with records but no rows -> why


def slug(name: str, taken: set[str]) -> str:
    """A file-name-safe, unique stem for a task name (task names are free text)."""
    base = re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-.") or "task"
    stem, i = base, 2
    while stem in taken:
        stem, i = f"{base}-{i}", i + 1
    taken.add(stem)
    return stem


def _row_name(row, limit: int = 48) -> str:
    """A legend or axis label: the row's model (a long local path shortened from the left) and its label."""
    model = row.model if len(row.model) <= limit else "…" + row.model[-(limit - 1):]
    return f"{model} ({row.label})"


def _legend_columns(labels: list[str]) -> int:
    """As many legend columns as fit under the plot (about 150 characters at 8.5 pt across the figure)."""
    widest = max(map(len, labels), default=1) + 6
    return max(1, min(len(labels), 4, 150 // widest))


def _figure(plot_height_in: float, legend_entries: int, legend_cols: int):
    """A figure whose plot area has a fixed height and whose legend gets its own rows below it."""
    from matplotlib.figure import Figure

    legend_rows = -(-legend_entries // legend_cols) if legend_entries else 0
    legend_in = LEGEND_ROW_IN * legend_rows + (0.1 if legend_rows else 0)
    ticks_in = TICKS_IN if legend_rows else 0.0
    fig = Figure(figsize=(WIDTH_IN, plot_height_in + ticks_in + legend_in), dpi=100)
    grid = fig.add_gridspec(3, 1, height_ratios=[plot_height_in, max(ticks_in, 1e-3), max(legend_in, 1e-3)],
                            hspace=0.0)
    ax, legend_ax = fig.add_subplot(grid[0]), fig.add_subplot(grid[2])
    legend_ax.axis("off")
    return fig, ax, legend_ax


def _style(ax) -> None:
    ax.set_axisbelow(True)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)


def _save(fig, path: Path) -> Path:
    import matplotlib

    # No date and a fixed id salt: rebuilding from the same numbers gives the same files (clean diffs).
    with matplotlib.rc_context({"svg.hashsalt": "xlt"}):
        fig.savefig(path, format=path.suffix.lstrip("."), bbox_inches="tight",
                    metadata={"Date": None} if path.suffix == ".svg" else None)
    return path


def _literal_text(draw):
    """Draw with every text taken literally: a `$` in a model or task name is a dollar sign, not the start of
    matplotlib math (`$\\frac{1}$` would fail to parse and stop the build)."""
    import functools

    @functools.wraps(draw)
    def wrapper(*args, **kwargs):
        import matplotlib

        with matplotlib.rc_context({"text.parse_math": False, "text.usetex": False}):
            return draw(*args, **kwargs)
    return wrapper


@_literal_text
def bar_chart(table: Table, path: Path) -> Path | None:
    """Grouped bars of the first metric: one group per language (then avg), one bar per row; std over seeds
    as error bars; hatched bars are dev-set numbers. None when no row has a per-language value (a published
    average alone is one bar, which the table already says)."""
    cols = [*table.languages, AVG]
    rows = table.rows[:len(PALETTE)]
    if not any(c in r.cells for r in rows for c in table.languages):
        return None
    cells = [v for r in rows for c, v in r.cells.items() if c in cols]
    if not cells:
        raise XltError(f"task {table.task!r} has no values to plot")
    bottom = min(v.mean - (v.std or 0) for v in cells)
    top = max(v.mean + (v.std or 0) for v in cells)
    low = max(0.0, (bottom - 8) // 10 * 10)
    high = min(100.0, top + 4) if top <= 100 else top * 1.05
    ncol = _legend_columns([_row_name(r) for r in rows])
    fig, ax, legend_ax = _figure(3.4, len(rows), ncol)
    bar = min(0.8 / max(1, len(rows)), 0.3)
    group = bar * len(rows)
    for i, r in enumerate(rows):
        xs, ys, errs = [], [], []
        for j, c in enumerate(cols):
            if c in r.cells:
                xs.append(j - group / 2 + bar * (i + 0.5))
                ys.append(r.cells[c].mean)
                errs.append(r.cells[c].std or 0.0)
        ax.bar(xs, ys, width=bar * 0.92, color=PALETTE[i], label=_row_name(r),
               hatch="///" if r.is_dev else None, edgecolor="white" if r.is_dev else PALETTE[i], linewidth=0,
               yerr=errs if any(errs) else None, capsize=2 if any(errs) else 0,
               error_kw={"elinewidth": 0.8, "ecolor": "#333333"})
    ax.set_xticks(range(len(cols)), cols, fontsize=9 if len(cols) < 25 else 7.5)
    ax.axvspan(len(cols) - 1.5, len(cols) - 0.5, color="#f2f2f2", zorder=0)   # set the average apart
    ax.set_ylim(low, high)
    ax.set_xlim(-0.6, len(cols) - 0.4)
    ax.set_ylabel(f"{table.metric} (%)")
    ax.set_title(f"{table.task}: {table.metric} by language (y axis from {low:.0f})", loc="left", fontsize=11)
    ax.grid(axis="y", color="#e5e5e5", linewidth=0.8)
    _style(ax)
    handles, labels = ax.get_legend_handles_labels()
    legend_ax.legend(handles, labels, loc="upper left", ncol=ncol, fontsize=8.5, frameon=False,
                     bbox_to_anchor=(0.0, 1.0), borderaxespad=0.0)
    return _save(fig, path)


@_literal_text
def gap_chart(table: Table, path: Path) -> Path | None:
    """Horizontal bars of the transfer gap (source language minus the mean of the others), one per row,
    lower is better; std over seeds as error bars. None when no row has a gap."""
    rows = [r for r in table.rows if GAP in r.cells]
    if not rows:
        return None
    fig, ax, _ = _figure(0.42 * len(rows) + 0.7, 0, 1)
    ys = list(range(len(rows)))[::-1]
    colours = [PALETTE[table.rows.index(r) % len(PALETTE)] for r in rows]
    values = [r.cells[GAP].mean for r in rows]
    errs = [r.cells[GAP].std or 0.0 for r in rows]
    ax.barh(ys, values, color=colours, height=0.62, hatch=[("///" if r.is_dev else None) for r in rows],
            edgecolor=["white" if r.is_dev else c for r, c in zip(rows, colours)], linewidth=0,
            xerr=errs if any(errs) else None, capsize=2 if any(errs) else 0,
            error_kw={"elinewidth": 0.8, "ecolor": "#333333"})
    labels = [_row_name(r) + ("  [collapsed predictions]" if r.collapsed else "") for r in rows]
    ax.set_yticks(ys, labels, fontsize=8.5)
    low = min(0.0, *(v - e for v, e in zip(values, errs)))
    high = max(0.0, *(v + e for v, e in zip(values, errs)))
    pad = max(high - low, 1.0) * 0.02
    for y, v, e in zip(ys, values, errs):   # the value just past the end of its error bar
        ax.text(v + (e + pad) * (1 if v >= 0 else -1), y, f"{v:.1f}", va="center",
                ha="left" if v >= 0 else "right", fontsize=8)
    ax.set_xlim(low - pad * 5, high + pad * 5)
    ax.axvline(0, color="#999999", linewidth=0.8)
    ax.set_xlabel(f"transfer gap: {table.source_lang} minus the other languages' mean ({table.metric}, points; "
                  "lower is better)", fontsize=9)
    ax.set_title(f"{table.task}: transfer gap", loc="left", fontsize=11)
    ax.grid(axis="x", color="#e5e5e5", linewidth=0.8)
    _style(ax)
    return _save(fig, path)


def render_index(tables: list[Table], charts: dict[str, dict[str, str]], n_records: int, summary: Summary,
                 missing: dict[str, str]) -> str:
    esc = html.escape
    shown = ", ".join(t.task for t in tables)
    parts = ['<h1>xlt leaderboard</h1>',
             '<p class="lead">Zero-shot cross-lingual transfer: each model is fine-tuned on the source language '
             'only and evaluated on every language. Measured rows are xlt runs (mean ± std over seeds); '
             'published rows are labelled with the split they were measured on.</p>',
             f'<p class="meta">{len(tables)} task table{"s" if len(tables) != 1 else ""} ({esc(shown) or "none"}), '
             f'{n_records} run record{"s" if n_records != 1 else ""}. Click a column header to sort.</p>']
    if missing:
        parts.append(f'<p class="notice">{esc(missing_note(missing))}</p>')
    links = ['<a href="#summary">summary</a>'] + [f'<a href="#task-{i}">{esc(t.task)}</a>' for i, t in enumerate(tables)]
    parts.append(f'<nav class="toc">{" ".join(links)}</nav>')
    parts.append('<section id="summary" data-task="summary">')
    parts.append(f"<h2>{esc(summary.suite.title)} summary</h2>")
    parts.append(html_table_block(html_summary_table(summary), summary_caption_html(summary)))
    parts.append("</section>")
    if not tables:
        parts.append("<p>No results yet: run <code>xlt run</code> or add reference numbers.</p>")
    for i, t in enumerate(tables):
        parts.append(f'<section id="task-{i}" data-task="{esc(t.task)}">')
        parts.append(f"<h2>{esc(t.task)}: {esc(' / '.join(t.metrics))}</h2>")
        description = t.description
        if description:
            parts.append(f'<p class="meta">{esc(description)}</p>')
        parts.append(html_table_block(html_table(t, table_id=f"table-{i}"), t.caption()))
        files = charts.get(t.task, {})
        if "languages" in files:
            alt = f"{t.task}: {t.metric} per language for each model"
            parts.append(f'<figure class="chart"><img src="{esc(files["languages"])}" alt="{esc(alt)}">'
                         f"<figcaption>{esc(t.task)}: per-language {esc(t.metric)}; hatched bars are dev-set "
                         "numbers; error bars are the std over seeds.</figcaption></figure>")
        if "gap" in files:
            alt = f"{t.task}: transfer gap of each model"
            parts.append(f'<figure class="chart gap"><img src="{esc(files["gap"])}" alt="{esc(alt)}">'
                         f"<figcaption>{esc(t.task)}: transfer gap, {esc(t.source_lang)} minus the mean of the other "
                         "languages (lower is better).</figcaption></figure>")
        parts.append("</section>")
    parts.append(f'<footer>Built by <code>xlt leaderboard build</code> (xlt {esc(_xlt_version())}). '
                 "Self-contained: opens from disk, loads nothing from the network.</footer>")
    return html_document("xlt leaderboard", "\n".join(parts))


def _xlt_version() -> str:
    import xlt

    return xlt.__version__


def render_readme(tables: list[Table], charts: dict[str, dict[str, str]], summary: Summary,
                  missing: dict[str, str]) -> str:
    lines = ["# xlt leaderboard", "",
             "Zero-shot cross-lingual transfer, built by `xlt leaderboard build`; open `index.html` for sortable "
             "tables. Published rows are labelled with their split.", ""]
    if missing:
        lines += [md_escape(missing_note(missing)), ""]
    lines += [render_summary_md(summary).rstrip("\n"), ""]
    for t in tables:
        lines.append(render_md([t]).rstrip("\n"))
        files = charts.get(t.task, {})
        if "languages" in files:
            lines += ["", f"![{md_escape(t.task)}: per-language {md_escape(t.metric)}]({files['languages']})"]
        if "gap" in files:
            lines += ["", f"![{md_escape(t.task)}: transfer gap]({files['gap']})"]
        lines.append("")
    return "\n".join(lines)


def build_leaderboard(results_dir: Path | str, output: Path | str = "leaderboard", *,
                      reference_dir: Path | None = None, split: str = DEFAULT_SPLIT, baseline: str | None = DEFAULT_BASELINE,
                      n_resamples: int = N_RESAMPLES) -> Leaderboard:
    """Write index.html, README.md and per task `<task>.svg` and `<task>-gap.svg` into `output`."""
    records = load_usable_records(results_dir)   # read once: the summary and the tables see the same runs
    report = build_report(results_dir, baseline=baseline, split=split, reference_dir=reference_dir,
                          n_resamples=n_resamples, records=records)
    summary = build_summary(results_dir, split=split, reference_dir=reference_dir, records=records)
    out = Path(output)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise XltError(f"cannot create the leaderboard folder {out}: {exc}") from None
    board = Leaderboard(output=out, tables=report.tables, problems=report.problems, missing=report.missing,
                        warnings=report.warnings)
    taken: set[str] = {"index", "README"}
    charts: dict[str, dict[str, str]] = {}
    for t in report.tables:
        stem = slug(t.task, taken)
        taken.add(f"{stem}-gap")
        charts[t.task] = {}
        bars = bar_chart(t, inside(out, out / f"{stem}.svg"))
        if bars is not None:
            board.files.append(bars)
            charts[t.task]["languages"] = bars.name
        gap = gap_chart(t, inside(out, out / f"{stem}-gap.svg"))
        if gap is not None:
            board.files.append(gap)
            charts[t.task]["gap"] = gap.name
    for name, text in (("index.html", render_index(report.tables, charts, report.n_records, summary,
                                                   report.missing)),
                       ("README.md", render_readme(report.tables, charts, summary, report.missing))):
        (out / name).write_text(text, encoding="utf-8")
        board.files.append(out / name)
    return board
