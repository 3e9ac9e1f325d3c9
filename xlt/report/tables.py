"""Comparison tables: measured runs (mean +/- std over seeds) beside published numbers, with significance.

One `Table` per task: one row per model (measured runs grouped by model and configuration, and the published
rows of `results/reference/<task>.csv`, each labelled with its split), columns = the task's languages in its
order, then `avg` (the macro average over the languages) and `gap` (the transfer gap: source language minus
the mean of the other languages). A cell shows the task type's `report_metrics` ("74.2" for accuracy,
"74.2 / 62.8" for QA F1 / EM); the first metric ranks rows, is bolded when best and carries the Δ rows
against a baseline (default XLM-R base). Where both models have predictions for the same examples, a paired
bootstrap over the type's per-example statistics marks which differences are significant at 95%.

Everything in a Table is in percent points (see xlt.report.records for where records become percent).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import pandas as pd

from xlt.errors import XltError
from xlt.report.records import (AVG, TaskView, default_reference_dir, empty_reference,
                                normalize_model_name, reference_for, runs_frame, split_label, task_view, usable_records)
from xlt.report.statistics import N_RESAMPLES, Bootstrap, Stat, aggregate, macro_average, paired_bootstrap, \
    transfer_gap
from xlt import formulas
from xlt.results import PredictionsMismatch, Records, load_predictions, load_records, prediction_statistics
from xlt.spec import EVALUATE_ONLY

DEFAULT_BASELINE = "xlm-roberta-base"   # the one default baseline of xlt (report, leaderboard, CLI)
DEFAULT_SPLIT = "test"
SPLITS = ("test", "validation")
GAP = "gap"
COLLAPSED_FLAG = "collapsed_predictions:"
# Where a published row's avg comes from: the source prints it, or it is the mean of the printed per-language
# values (only when they cover every language of the task).
PUBLISHED_AVG = "published avg"
PRINTED_MEAN = "mean of printed"


@dataclass
class Row:
    model: str
    kind: str                      # "measured" | "published"
    split: str
    cells: dict[str, Stat]         # the first metric: languages, avg, gap
    seeds: int = 0                 # runs averaged (0 for published rows)
    source: str = ""               # the citation of a published row
    run_ids: list[str] = field(default_factory=list)
    config: str | None = None      # spec without its seed (measured rows)
    more: dict[str, dict[str, Stat]] = field(default_factory=dict)   # the other shown metrics' cells
    collapsed: list[str] = field(default_factory=list)   # languages whose predictions collapsed to one class
    dev: bool | None = None        # a dev-set row beside a test set (TaskView.is_dev); None: not test = dev
    only_languages: tuple[str, ...] = ()   # runs evaluated on some languages only (`--languages`); () = all
    avg_kind: str = ""             # published rows: PUBLISHED_AVG, PRINTED_MEAN, or "" (no average)
    printed: int = 0               # published rows: how many of the task's languages the source prints ...
    of: int = 0                    # ... out of how many (0: the task's languages are unknown)

    @property
    def label(self) -> str:
        """"published, test", "xlt, dev set", "published, test, 8 of 40 languages" (a subset)."""
        return self.result + (f", {self.coverage}" if self.subset else "")

    @property
    def result(self) -> str:
        return f"{'published' if self.kind == 'published' else 'xlt'}, " + \
            (split_label(self.split) if self.is_dev else self.split)

    @property
    def subset(self) -> bool:
        """A published row that prints some, not all, of the task's languages: its own mean would be an
        average over those languages only, so it never stands as the task's average (nor its gap)."""
        return self.kind == "published" and 0 < self.printed < self.of

    @property
    def coverage(self) -> str:
        return f"{self.printed} of {self.of} languages"

    @property
    def is_dev(self) -> bool:
        return self.dev if self.dev is not None else self.split != "test"

    def stat(self, metric_index: int, metrics: Sequence[str], col: str) -> Stat | None:
        cells = self.cells if metric_index == 0 else self.more.get(metrics[metric_index], {})
        return cells.get(col)


@dataclass
class Delta:
    model: str
    baseline: str
    cells: dict[str, float]
    significance: dict[str, Bootstrap] = field(default_factory=dict)
    splits: tuple[str, str] | None = None   # (row split, baseline split) when they differ

    @property
    def label(self) -> str:
        return f"Δ {self.model}"

    @property
    def versus(self) -> str:
        if self.splits:
            return f"vs {self.baseline} ({split_label(self.splits[0])} − {split_label(self.splits[1])})"
        return f"vs {self.baseline}"


@dataclass
class Table:
    task: str
    metrics: list[str]             # shown in each cell; the first ranks rows and carries Δ and significance
    split: str                     # the split of the measured rows
    languages: list[str]
    source_lang: str
    rows: list[Row] = field(default_factory=list)
    deltas: list[Delta] = field(default_factory=list)
    baseline: str | None = None    # the label of the baseline row, if one was found
    n_resamples: int = N_RESAMPLES
    notes: list[str] = field(default_factory=list)
    metric_caption: str = ""       # how the first metric is computed (the task type's words)
    type_name: str | None = None
    warnings: list[str] = field(default_factory=list)   # predictions files left out, one line each, naming them
    description: str = ""          # the task's description, as its records carry it

    @property
    def metric(self) -> str:
        return self.metrics[0]

    @property
    def columns(self) -> list[str]:
        return [*self.languages, AVG, GAP]

    def best(self) -> dict[str, float]:
        """Best displayed value per column (highest; lowest for the gap), compared at display precision. A
        row whose predictions collapsed to one class does not compete for the gap: its small gap is no
        transfer."""
        out = {}
        for col in self.columns:
            vals = [round(r.cells[col].mean, 1) for r in self.rows
                    if col in r.cells and not (col == GAP and (r.collapsed or r.only_languages))]
            if vals:
                out[col] = min(vals) if col == GAP else max(vals)
        return out

    def is_best(self, row: Row, col: str) -> bool:
        if len(self.rows) < 2 or col not in row.cells or (col == GAP and (row.collapsed or row.only_languages)):
            return False
        return round(row.cells[col].mean, 1) == self.best().get(col)

    def caption(self) -> str:
        n = len(self.languages)
        what = " / ".join(self.metrics)
        how = f" ({self.metric_caption})" if self.metric_caption and self.metric_caption != self.metric else ""
        parts = [f"{self.task}: {what} (%){how}, zero-shot transfer from {self.source_lang}."]
        if len(self.metrics) > 1:
            parts.append(f"Cells show {what}; bold, Δ and significance use {self.metric}.")
        if any(r.kind == "measured" for r in self.rows):
            where = "the dev set" if self.split == "validation" else f"the {self.split} split"
            parts.append(f"Measured rows (xlt): mean ± sample std over the seeds (Seeds column) on {where}.")
        if any(r.kind == "published" for r in self.rows):
            parts.append("Published rows are labelled with their split")
            if any(r.kind == "published" and r.is_dev for r in self.rows):
                parts[-1] += "; a dev-set number is not a test number"
            parts[-1] += "."
        published = [r for r in self.rows if r.kind == "published"]
        parts.append(f"avg = unweighted macro average over the {n} languages"
                     + (" (published rows: the average as published" if published else "")
                     + (f"; '{PRINTED_MEAN}' marks the mean of a row's printed values where its source prints "
                        "no average" if any(r.avg_kind == PRINTED_MEAN for r in published) else "")
                     + (")." if published else "."))
        if any(r.subset for r in published):
            parts.append("A published row marked 'k of N languages' prints only those languages: its avg is the "
                         "source's average over the whole task, or – where none is published, never the mean of "
                         "the k printed values, and it has no gap.")
        others = "the other language" if n == 2 else f"the mean of the other {n - 1} languages"
        parts.append(f"gap = transfer gap, {self.source_lang} minus {others} "
                     "(lower is better). Bold: best per column.")
        if self.deltas:
            parts.append(f"Δ rows: row minus the baseline {self.baseline} (percent points).")
            if any(d.splits for d in self.deltas):
                parts.append("A Δ marked (dev set − test) compares numbers from different splits: not like "
                             "for like.")
            if any(d.significance for d in self.deltas):
                parts.append(f"* = significant at 95%: the 95% CI of the difference excludes 0 under a paired "
                             f"bootstrap over examples ({self.n_resamples} resamples; for avg each language "
                             "resampled independently).")
            else:
                parts.append("No significance test: it needs predictions of both models on the same examples.")
        return " ".join(parts + self.notes)

    def to_dict(self) -> dict[str, Any]:
        """Plain data (for --json): every row's cells per metric, Δ rows with their intervals, the caption."""
        def cells(row: Row) -> dict[str, Any]:
            return {m: {c: asdict(s) for c, s in (row.cells if i == 0 else row.more.get(m, {})).items()}
                    for i, m in enumerate(self.metrics)}

        return {"task": self.task, "type": self.type_name, "metrics": self.metrics, "split": self.split,
                "languages": self.languages, "source_lang": self.source_lang, "columns": self.columns,
                "baseline": self.baseline, "caption": self.caption(),
                "rows": [{"model": r.model, "kind": r.kind, "split": r.split, "label": r.label, "seeds": r.seeds,
                          "source": r.source, "run_ids": r.run_ids, "collapsed": r.collapsed,
                          "avg_kind": r.avg_kind or None, "subset": r.subset,
                          "languages_printed": [r.printed, r.of] if r.kind == "published" else None,
                          "best": [c for c in self.columns if self.is_best(r, c)], "cells": cells(r)}
                         for r in self.rows],
                "deltas": [{"model": d.model, "baseline": d.baseline, "versus": d.versus, "cells": d.cells,
                            "significance": {c: {**asdict(b), "significant": b.significant}
                                             for c, b in d.significance.items()}} for d in self.deltas]}


@dataclass
class Report:
    tables: list[Table]
    problems: list[str] = field(default_factory=list)   # record files skipped, one line each, naming them
    n_records: int = 0                                   # readable records found (any task, any status)
    missing: dict[str, str] = field(default_factory=dict)   # task with records but no measured rows -> why

    @property
    def warnings(self) -> list[str]:
        """Predictions files left out of significance tests (they do not match their records), naming them."""
        return list(dict.fromkeys(w for t in self.tables for w in t.warnings))


# --------------------------------------------------------------------------------------------------
# Rows


def per_run_table(frame: pd.DataFrame, languages: Sequence[str], source_lang: str) -> pd.DataFrame:
    """One row per run: its value per language, its macro average and its transfer gap."""
    wide = frame.pivot_table(index="run_id", columns="lang", values="value", aggfunc="first")
    wide = wide.reindex(columns=list(languages))
    wide[AVG] = [macro_average(row.to_dict(), languages) for _, row in wide.iterrows()]
    wide[GAP] = [transfer_gap({l: row[l] for l in languages}, source_lang) for _, row in wide.iterrows()]
    return wide.astype(float)


def _config_labels(configs: Sequence[str]) -> dict[str, str]:
    """Short labels for the configurations of one model: the spec fields in which they differ."""
    if len(configs) < 2:
        return {c: "" for c in configs}
    flat = []
    for c in configs:
        spec = json.loads(c)
        hp = spec.pop("hparams", {}) or {}
        flat.append({**spec, **hp})   # "model" too: two checkpoints can share a display name
    keys = sorted({k for f in flat for k in f if len({json.dumps(g.get(k)) for g in flat}) > 1})
    return {c: ", ".join(f"{k}={f.get(k)}" for k in keys) for c, f in zip(configs, flat)}


def _collapsed(records: Sequence[Mapping[str, Any]], run_ids: Sequence[str], split: str) -> list[str]:
    """Languages of `split` whose predictions collapsed to one class in any of the runs (runner flags)."""
    prefix = f"{COLLAPSED_FLAG}{split}/"
    ids = set(run_ids)
    langs = [f[len(prefix):] for r in records if r["run_id"] in ids for f in (r.get("flags") or [])
             if isinstance(f, str) and f.startswith(prefix)]
    return sorted(set(langs))


def _measured_rows(frame: pd.DataFrame, view: TaskView, split: str,
                   records: Sequence[Mapping[str, Any]]) -> list[Row]:
    rows = []
    for model, by_model in frame.groupby("model", sort=False):
        configs = list(dict.fromkeys(by_model["config"]))
        labels = _config_labels(configs)
        for config in configs:
            sub = by_model[by_model["config"] == config]
            stats = {m: aggregate(per_run_table(sub[sub["metric"] == m], view.languages, view.source_lang))
                     for m in view.metrics}
            run_ids = list(dict.fromkeys(sub.loc[sub["metric"] == view.metric, "run_id"]))
            if not run_ids:
                continue
            name = f"{model} ({labels[config]})" if labels[config] else str(model)
            only = tuple(json.loads(config).get("languages") or ())
            rows.append(Row(model=name, kind="measured", split=split, cells=stats[view.metric],
                            seeds=len(run_ids), run_ids=run_ids, config=config,
                            more={m: stats[m] for m in view.metrics[1:]},
                            collapsed=_collapsed(records, run_ids, split), dev=view.is_dev(split),
                            only_languages=only))
    return rows


def _published_cells(values: Mapping[str, float], view: TaskView) -> tuple[dict[str, Stat], str]:
    """A published row's cells of one metric and where its avg comes from. The avg is the one the source
    prints, else the mean of the printed values when they cover every language of the task (known from
    records or a suite). A row printing fewer languages (a subset) gets neither an average nor a gap from its
    values: a mean over some of the languages is not the task's average."""
    cells = {lang: Stat(float(values[lang])) for lang in view.languages if lang in values}
    kind = ""
    if AVG in values:
        cells[AVG], kind = Stat(float(values[AVG])), PUBLISHED_AVG
    elif view.task_languages and (avg := macro_average(values, view.task_languages)) is not None:
        cells[AVG], kind = Stat(avg), PRINTED_MEAN
    if all(lang in values for lang in _task_languages(view)):
        gap = transfer_gap({l: values[l] for l in view.languages if l in values}, view.source_lang)
        if gap is not None:
            cells[GAP] = Stat(gap)
    return cells, kind


def _task_languages(view: TaskView) -> list[str]:
    """The languages a published row must print to be whole: the task's, else every language in the table."""
    return view.task_languages or view.languages


def _published_rows(reference: pd.DataFrame, view: TaskView) -> list[Row]:
    rows = []
    ref = reference[reference["metric"].isin(view.metrics)]
    for (model, split), sub in ref.groupby(["model", "split"], sort=False):
        by_metric = {m: dict(zip(g["lang"], g["value"])) for m, g in sub.groupby("metric")}
        if view.metric not in by_metric:
            continue
        sources = "; ".join(dict.fromkeys(sub["source"]))
        cells, kind = _published_cells(by_metric[view.metric], view)
        more = {m: _published_cells(by_metric[m], view)[0] for m in view.metrics[1:] if m in by_metric}
        whole = _task_languages(view)
        rows.append(Row(model=str(model), kind="published", split=str(split), cells=cells, source=sources,
                        more=more, dev=view.is_dev(str(split)), avg_kind=kind,
                        printed=sum(lang in by_metric[view.metric] for lang in whole), of=len(whole)))
    return rows


def _find_baseline(rows: list[Row], baseline: str, split: str) -> Row | None:
    """The row of `baseline`: its name, or its name before " (" (a measured row's configuration, a published
    row's source: "XLM-R base (XLM-R paper)"). Measured rows first, then rows on the same split, then rows
    that print every language."""
    want = normalize_model_name(baseline)
    matches = [r for r in rows if want in (normalize_model_name(r.model), normalize_model_name(r.model.split(" (")[0]))]
    evaluated = tuple(f" ({word})" for word in EVALUATE_ONLY.values())
    # measured first, fine-tuned before evaluated-only (`xlt eval`) rows of the same name, then the same split
    rank = lambda r: (r.kind != "measured", r.model.endswith(evaluated), r.split != split, r.subset)   # noqa: E731
    return min(matches, key=rank) if matches else None


# --------------------------------------------------------------------------------------------------
# Significance: per-example statistics from the predictions files


def _note_once(notes: list[str], note: str) -> None:
    if note not in notes:
        notes.append(note)


def example_statistics(run_ids: Sequence[str], runs: Mapping[str, tuple[Path, Mapping[str, Any]]], split: str,
                       notes: list[str], warnings: list[str] | None = None
                       ) -> tuple[pd.DataFrame, pd.Series | None] | None:
    """Per example (lang, idx) of `split`: the statistics its predictions file holds (`stat_*`,
    xlt.results.prediction_statistics) averaged over the runs (seeds), on the examples every run has, and each
    example's gold answer as text (None if the predictions have no `label`). `runs` maps a run id to (record
    file, record); each predictions file is checked against its record's sha256. None (with a note, and a
    warning naming the file when it does not match its record) if a run has no usable predictions."""
    need = ["split", "lang", "idx"]
    frames, golds = [], []
    for run_id in run_ids:
        try:
            preds = load_predictions(*runs[run_id]) if run_id in runs else None
        except PredictionsMismatch as exc:
            _note_once(notes, f"predictions of run {run_id} do not match its record; it is left out of "
                              "significance tests.")
            if warnings is not None:
                _note_once(warnings, f"{exc}; run {run_id} is left out of significance tests")
            return None
        except (OSError, ValueError) as exc:   # pyarrow's errors derive from these
            _note_once(notes, f"predictions of run {run_id} are unreadable ({exc.__class__.__name__}); "
                              "no significance test for it.")
            return None
        if preds is None:
            return None
        stats_all = prediction_statistics(runs[run_id][1], preds) if all(c in preds.columns for c in need) \
            else None
        if stats_all is None:
            _note_once(notes, f"predictions of run {run_id} hold no per-example statistics; no significance test "
                              "for it.")
            return None
        for lang, sub in preds[preds["split"] == split].groupby("lang", sort=False):
            # this language's statistics: a column it lacks is all empty (a class it never saw)
            stats = stats_all.loc[sub.index].dropna(axis=1, how="all").reset_index(drop=True)
            sub = sub.reset_index(drop=True)
            index = pd.MultiIndex.from_arrays([[lang] * len(sub), sub["idx"].to_numpy()], names=["lang", "idx"])
            stats.index = index
            frames.append(stats)
            if "label" in sub.columns:   # the gold answer, as text, to check that two systems saw the same data
                golds.append(pd.Series(sub["label"].map(_gold_text).to_numpy(), index=index))
    if not frames:
        return None
    # within a language, a statistic one seed lacks is 0 for that seed; a language without it keeps it empty
    stats = pd.concat([g.dropna(axis=1, how="all").fillna(0.0)
                       for _, g in pd.concat(frames).astype(float).groupby(level="lang", sort=False)])
    grouped = stats.groupby(level=["lang", "idx"])
    means, counts = grouped.mean(), grouped.size()
    out = means[counts == len(run_ids)].sort_index()
    gold = None
    if golds:
        gold = pd.concat(golds)
        gold = gold[~gold.index.duplicated()].reindex(out.index)
    return out, gold


def _gold_text(value: Any) -> str:
    return str(value.tolist() if hasattr(value, "tolist") else value)


def _significance(row: Row, base: Row, runs: Mapping[str, tuple[Path, Mapping[str, Any]]], view: TaskView,
                  split: str, n_resamples: int, seed: int, notes: list[str],
                  warnings: list[str]) -> dict[str, Bootstrap]:
    formula = view.formula()
    if formula is None:
        return {}
    got_a = example_statistics(row.run_ids, runs, split, notes, warnings)
    got_b = example_statistics(base.run_ids, runs, split, notes, warnings)
    if got_a is None or got_b is None or got_a[0].empty or got_b[0].empty:
        return {}
    (a, gold_a), (b, gold_b) = got_a, got_b
    if gold_a is not None and gold_b is not None:
        shared = gold_a.index.intersection(gold_b.index)
        if (gold_a.loc[shared] != gold_b.loc[shared]).any():
            _note_once(notes, f"{row.model} and {base.model} disagree on gold labels of shared examples (different "
                              "data?); no significance test for them.")
            return {}
    result = paired_bootstrap(a, b, lambda metric, totals, n: formulas.evaluate(formula, totals, n), view.metric,
                              n_resamples=n_resamples, seed=seed, languages=view.languages)
    if sum(lang in result for lang in view.languages) < len(view.languages):
        result.pop(AVG, None)   # an average over a subset of languages is not the table's average
    return result


# --------------------------------------------------------------------------------------------------
# Building


def build_table(task: str, records: Records | None = None, *, baseline: str | None = DEFAULT_BASELINE,
                split: str = DEFAULT_SPLIT, reference: bool = True, reference_dir: Path | None = None,
                n_resamples: int = N_RESAMPLES, seed: int = 0, also: Sequence[str] = ()) -> Table:
    """The comparison table of one task from loaded records and the task's reference file. `also` names
    metrics to show besides the type's (when records or the reference have them)."""
    if split not in SPLITS:
        raise XltError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")
    records = records or Records()
    task_records = [r for r in records.records if r["spec"]["task"] == task]
    named = next((r["task"].get("reference") for r in reversed(task_records) if r["task"].get("reference")), None)
    ref = reference_for(task, reference_dir, named) if reference else empty_reference()
    frame = runs_frame(task_records)
    view = task_view(task, task_records, ref, frame, also)
    frame, ref = _only_the_tasks_languages(table_notes := [], view, frame, ref)
    split = view.evaluation_split(split)
    other_splits = sorted(set(frame["split"]) - {split})
    frame = frame[frame["split"] == split]
    table = Table(task=task, metrics=view.metrics, split=split, languages=view.languages,
                  source_lang=view.source_lang, n_resamples=n_resamples, metric_caption=view.metric_caption(),
                  type_name=view.type_name, description=str(view.info.get("description") or "").strip())
    table.notes += table_notes
    table.rows = _published_rows(ref, view) + _measured_rows(frame, view, split, task_records)
    if not any(r.kind == "measured" for r in table.rows) and other_splits:
        table.notes.append(f"Runs of {task} have no {split} results (they have {', '.join(other_splits)}); "
                           f"see --split {other_splits[0]}.")
    _add_row_notes(table)
    if baseline:
        _add_deltas(table, baseline, records, view, n_resamples, seed)
    return table


def _only_the_tasks_languages(notes: list[str], view: TaskView, frame: pd.DataFrame, ref: pd.DataFrame
                              ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Runs' and reference rows of the task's languages only (the records' task block says which): a language
    that is not the task's never enters a cell, an average or a gap."""
    if not view.info.get("languages"):
        return frame, ref
    keep = set(view.languages)
    stray = sorted({*frame["lang"], *ref["lang"]} - keep - {AVG})
    if stray:
        notes.append(f"Left out: {', '.join(stray)}, not a language of {view.name} (records or reference file "
                     "name it).")
    return frame[frame["lang"].isin(keep)], ref[ref["lang"].isin(keep | {AVG})]


def _add_row_notes(table: Table) -> None:
    for row in table.rows:
        if row.kind == "measured" and row.config:
            spec = json.loads(row.config)
            limits = [f"{k}={spec[k]}" for k in ("max_train_samples", "max_eval_samples") if spec.get(k)]
            if limits:
                table.notes.append(f"{row.model}: a reduced run ({', '.join(limits)}), not comparable with "
                                   "full-data numbers.")
        if row.collapsed:
            table.notes.append(f"{row.model}: predictions collapsed to one class on {', '.join(row.collapsed)}; "
                               "its gap is not a transfer measure and is never bolded.")
        if row.only_languages:
            table.notes.append(f"{row.model}: evaluated on {', '.join(row.only_languages)} only (--languages); its "
                               "gap is over those languages, never bolded or compared with runs of every language.")
        if row.kind == "published" and AVG in row.cells:
            mean = macro_average({l: row.cells[l].mean for l in table.languages if l in row.cells},
                                 table.languages)
            if mean is not None and abs(mean - row.cells[AVG].mean) >= 0.05 + 1e-9:
                table.notes.append(f"{row.model}: published avg {row.cells[AVG].mean:.1f}; the mean of its "
                                   f"printed per-language values is {mean:.2f}.")


def _add_deltas(table: Table, baseline: str, records: Records, view: TaskView, n_resamples: int,
                seed: int) -> None:
    base = _find_baseline(table.rows, baseline, table.split)
    if base is None:
        if table.rows:
            table.notes.append(f"No Δ rows: baseline {baseline!r} is not in this table.")
        return
    table.baseline = f"{base.model} ({base.label})"
    measured = [r for r in table.rows if r.kind == "measured"]
    runs = {r["run_id"]: (p, r) for p, r in zip(records.paths, records.records)}
    for row in (measured or table.rows):
        if row is base:
            continue
        # a gap over a subset of languages is not comparable with a gap over other languages
        comparable = lambda c: c != GAP or row.only_languages == base.only_languages   # noqa: E731
        cells = {c: row.cells[c].mean - base.cells[c].mean for c in table.columns
                 if c in row.cells and c in base.cells and comparable(c)}
        sig = {}
        if row.kind == "measured" and base.kind == "measured":
            sig = _significance(row, base, runs, view, table.split, n_resamples, seed, table.notes,
                                table.warnings)
        splits = (row.split, base.split) if row.split != base.split else None
        table.deltas.append(Delta(row.model, base.model, cells, sig, splits))


def known_tasks(records: Records, reference_dir: Path | None = None, reference: bool = True) -> list[str]:
    """Tasks that have run records or (with `reference`) a reference file, sorted."""
    ref_dir = Path(reference_dir) if reference_dir is not None else default_reference_dir()
    names = {p.stem for p in ref_dir.glob("*.csv")} if reference and ref_dir.is_dir() else set()
    names |= {r["spec"]["task"] for r in records.records}
    return sorted(names)


def why_no_rows(task: str, table: Table, records: Records) -> str:
    mine = [r for r in records.records if r["spec"]["task"] == task]
    if mine and not any(r.get("status") == "completed" for r in mine):
        return f"{len(mine)} run record{'s' if len(mine) != 1 else ''}, none completed"
    return " ".join(table.notes) or f"no {table.split} results"


def build_report(results_dir: Path | str, task: str | None = None, *, baseline: str | None = DEFAULT_BASELINE,
                 split: str = DEFAULT_SPLIT, reference: bool = True, reference_dir: Path | None = None,
                 n_resamples: int = N_RESAMPLES, seed: int = 0, records: Records | None = None) -> Report:
    """Tables for one task (or every task with runs or reference numbers) from the records under
    `results_dir` (or `records`, already loaded from it). Unreadable record files are skipped and listed in
    `Report.problems`; tasks with records but no measured rows for `split` are named in `Report.missing`."""
    records = usable_records(records if records is not None else load_records(results_dir))
    tasks = [task] if task else known_tasks(records, reference_dir, reference)
    tables = [build_table(t, records, baseline=baseline, split=split, reference=reference,
                          reference_dir=reference_dir, n_resamples=n_resamples, seed=seed)
              for t in tasks]
    if task and not tables[0].rows:
        what = "no completed runs" + ("" if not reference else " and no reference numbers")
        raise XltError(f"{what} for task {task!r} on the {split} split under {Path(results_dir) / 'runs'}; "
                       f"tasks with results: {', '.join(known_tasks(records, reference_dir)) or '(none)'}"
                       + "".join(f". {note.rstrip('.')}" for note in tables[0].notes))
    with_records = {r["spec"]["task"] for r in records.records}
    missing = {t.task: why_no_rows(t.task, t, records) for t in tables
               if t.task in with_records and not any(r.kind == "measured" for r in t.rows)}
    return Report([t for t in tables if t.rows], records.problems, len(records.records), missing)
