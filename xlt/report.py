"""Comparison tables: measured runs (mean +/- std over seeds) beside published numbers, with significance.

One `Table` per task: one row per model (measured runs grouped by model and configuration, and the published
rows of `results/reference/<task>.csv`, each labelled with its split), columns = the task's languages in its
order, then `avg` (unweighted macro average over the languages) and `gap` (the transfer gap: source language
minus the mean of the other languages). Below them, delta rows against a baseline (default XLM-R base), and
where both models have predictions for the same examples a paired bootstrap over examples marks which
differences are significant at 95%.

Units: everything in a Table is in percent points. Records store fractions (0..1) and `runs_frame` is the one
place that converts them; reference CSVs hold the numbers as printed (percent) and are never rescaled, so a
published row reproduces the paper's digits exactly.

Renderers (`render(tables, fmt)`): console (rich), md, csv, latex, html. Every text that comes from a record,
a task file or a reference file is escaped for the output format.
"""

from __future__ import annotations

import csv
import html
import io
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from xlt.errors import XltError
from xlt.results import PREDICTION_COLUMNS, Records, load_predictions, load_records, metrics_frame

DEFAULT_BASELINE = "xlm-roberta-base"
DEFAULT_SPLIT = "test"
SPLITS = ("test", "validation")
N_RESAMPLES = 1000
AVG, GAP = "avg", "gap"
FORMATS = ("console", "md", "csv", "latex", "html")
REFERENCE_COLUMNS = ["model", "source", "split", "lang", "metric", "value"]


# --------------------------------------------------------------------------------------------------
# Where things are


def default_reference_dir() -> Path:
    """`results/reference` of this installation (via xlt.paths when present), else of the checkout."""
    try:
        from xlt.paths import reference_dir
    except ImportError:
        found = None
    else:
        found = reference_dir()
    return found or Path(__file__).resolve().parents[1] / "results" / "reference"


def _task_spec(name: str, tasks_dir: Path | None) -> Any | None:
    """The TaskSpec for `name`, or None when xlt.tasks is absent or does not know the task."""
    try:
        from xlt.tasks import get_task
    except ImportError:
        return None
    try:
        return get_task(name, tasks_dir=tasks_dir)
    except XltError:
        return None


def split_label(split: str) -> str:
    return {"validation": "dev set", "dev": "dev set"}.get(split, split)


def normalize_model_name(name: str) -> str:
    """Compare model names loosely: 'xlm-roberta-base', 'FacebookAI/xlm-roberta-base' and 'XLM-R base' match."""
    name = str(name).rstrip("/").split("/")[-1].lower().replace("xlm-roberta", "xlm-r")
    return re.sub(r"[^a-z0-9]", "", name)


# --------------------------------------------------------------------------------------------------
# Inputs: reference numbers and records


def load_reference(path: Path | str) -> pd.DataFrame:
    """A reference CSV (model,source,split,lang,metric,value), values in percent as published."""
    path = Path(path)
    try:
        with path.open(newline="", encoding="utf-8") as f:
            rows = list(csv.reader(f))
    except (OSError, UnicodeDecodeError) as exc:
        raise XltError(f"{path}: cannot read reference numbers ({exc})") from None
    if not rows or [c.strip() for c in rows[0]] != REFERENCE_COLUMNS:
        raise XltError(f"{path}: the header must be {','.join(REFERENCE_COLUMNS)}")
    out = []
    for line, row in enumerate(rows[1:], start=2):
        if not any(c.strip() for c in row):
            continue
        if len(row) != len(REFERENCE_COLUMNS):
            raise XltError(f"{path}:{line}: expected {len(REFERENCE_COLUMNS)} fields, found {len(row)} "
                           "(quote a source that contains commas)")
        rec = dict(zip(REFERENCE_COLUMNS, (c.strip() for c in row)))
        try:
            rec["value"] = float(rec["value"])
        except ValueError:
            raise XltError(f"{path}:{line}: value {rec['value']!r} is not a number") from None
        if not rec["source"]:
            raise XltError(f"{path}:{line}: every reference row must cite its source")
        out.append(rec)
    return pd.DataFrame(out, columns=REFERENCE_COLUMNS)


def _shape_problem(record: Mapping[str, Any]) -> str | None:
    """What is wrong with the structure of a record that parsed and has the right schema version, if anything."""
    spec = record.get("spec")
    if not isinstance(spec, Mapping) or not all(k in spec for k in ("model", "task", "seed")):
        return "its spec lacks model, task or seed"
    if not isinstance(record.get("model") or {}, Mapping) or not isinstance(record.get("task") or {}, Mapping):
        return "its model or task entry is not a mapping"
    metrics = record.get("metrics")
    if not isinstance(metrics, Mapping):
        return "its metrics are not a mapping"
    for split, by_lang in metrics.items():
        if not isinstance(by_lang, Mapping):
            return f"metrics[{split!r}] is not a mapping"
        for lang, values in by_lang.items():
            if not isinstance(values, Mapping) or not all(
                    v is None or (isinstance(v, (int, float)) and not isinstance(v, bool)) for v in values.values()):
                return f"metrics[{split!r}][{lang!r}] is not a mapping of metric names to numbers"
    return None


def usable_records(records: Records) -> Records:
    """`records` without those whose structure is malformed (valid JSON, known schema version, but e.g.
    metrics that are not numbers); each one dropped is added to `problems`, naming its file."""
    out = Records(problems=list(records.problems))
    for path, record in zip(records.paths, records.records):
        problem = _shape_problem(record)
        if problem:
            out.problems.append(f"{path}: malformed record ({problem})")
        else:
            out.paths.append(path)
            out.records.append(record)
    return out


def load_usable_records(results_dir: Path | str) -> Records:
    """`results.load_records` plus the structural checks of `usable_records`: what reports read."""
    return usable_records(load_records(results_dir))


def runs_frame(records: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """`metrics_frame` of the completed records with values in percent points: the one place records'
    fractions (0..1) become percent. Adds `config`, the run's spec without its seed, to group runs."""
    records = [r for r in records if r.get("status") == "completed"]
    frame = metrics_frame(records)
    frame["value"] = pd.to_numeric(frame["value"], errors="coerce") * 100.0
    configs = {r["run_id"]: json.dumps({k: v for k, v in r["spec"].items() if k != "seed"}, sort_keys=True)
               for r in records}
    frame["config"] = frame["run_id"].map(configs)
    return frame


# --------------------------------------------------------------------------------------------------
# Statistics


@dataclass(frozen=True)
class Stat:
    """One cell: the mean over seeds, the sample standard deviation (None for one seed or a published
    number), and how many seeds it is over (0 for a published number)."""

    mean: float
    std: float | None = None
    n: int = 0


def transfer_gap(values: Mapping[str, float], source_lang: str) -> float | None:
    """Source-language score minus the mean of the other languages' scores."""
    others = [v for lang, v in values.items() if lang != source_lang and v is not None and not math.isnan(v)]
    src = values.get(source_lang)
    if src is None or math.isnan(src) or not others:
        return None
    return float(src - sum(others) / len(others))


def macro_average(values: Mapping[str, float], languages: Sequence[str]) -> float | None:
    """Unweighted mean over `languages`; None unless every one of them has a value."""
    got = [values.get(lang) for lang in languages]
    if not got or any(v is None or math.isnan(v) for v in got):
        return None
    return float(sum(got) / len(got))


def aggregate(per_run: pd.DataFrame) -> dict[str, Stat]:
    """Per column: mean, sample std (ddof=1) and count over the rows (one row per run/seed)."""
    out = {}
    for col in per_run.columns:
        vals = per_run[col].dropna().astype(float)
        if len(vals) == 0:
            continue
        out[col] = Stat(float(vals.mean()), float(vals.std(ddof=1)) if len(vals) > 1 else None, int(len(vals)))
    return out


def per_run_table(frame: pd.DataFrame, languages: Sequence[str], source_lang: str) -> pd.DataFrame:
    """One row per run: its value per language, its macro average and its transfer gap."""
    wide = frame.pivot_table(index="run_id", columns="lang", values="value", aggfunc="first")
    wide = wide.reindex(columns=list(languages))
    wide[AVG] = [macro_average(row.to_dict(), languages) for _, row in wide.iterrows()]
    wide[GAP] = [transfer_gap({l: row[l] for l in languages}, source_lang) for _, row in wide.iterrows()]
    return wide.astype(float)


@dataclass(frozen=True)
class Bootstrap:
    """The difference a - b (percent points) with its bootstrap confidence interval."""

    diff: float
    low: float
    high: float
    n: int                 # examples compared
    n_resamples: int

    @property
    def significant(self) -> bool:
        """True if the confidence interval of the difference excludes 0."""
        return self.low > 0 or self.high < 0


def _resampled_means(d: np.ndarray, n_resamples: int, rng: np.random.Generator) -> np.ndarray:
    """Means of `n_resamples` resamples (with replacement, same size) of `d`.

    Drawing how often each distinct value is picked (a multinomial over the distinct values) has exactly the
    distribution of resampling the examples by index, and costs O(resamples x distinct values) instead of
    O(resamples x examples): per-example differences of correctness take only a few values.
    """
    values, counts = np.unique(d, return_counts=True)
    draws = rng.multinomial(len(d), counts / counts.sum(), size=n_resamples)   # (R, distinct values)
    return draws @ values / len(d)


def paired_bootstrap(correct_a: Mapping[str, np.ndarray], correct_b: Mapping[str, np.ndarray],
                     n_resamples: int = N_RESAMPLES, seed: int = 0,
                     confidence: float = 0.95) -> dict[str, Bootstrap]:
    """Paired bootstrap over examples of the accuracy difference a - b, per language and for the average.

    `correct_a[lang]` and `correct_b[lang]` are per-example correctness (0/1, or the mean over seeds) on the
    same examples in the same order. Each language's examples are resampled independently; `avg` is the
    macro average over the languages of the per-language resampled differences, so its interval accounts
    for every language's sampling noise. Differences are in percent points.
    """
    rng = np.random.default_rng(seed)
    tail = (1 - confidence) / 2 * 100
    out: dict[str, Bootstrap] = {}
    samples = []
    total = 0
    for lang in correct_a:
        a = np.asarray(correct_a[lang], dtype=float)
        b = np.asarray(correct_b[lang], dtype=float)
        if a.shape != b.shape:
            raise ValueError(f"{lang}: {a.shape} vs {b.shape} examples; pair the same examples")
        if len(a) == 0:
            continue
        d = (a - b) * 100.0
        means = _resampled_means(d, n_resamples, rng)
        samples.append(means)
        total += len(d)
        low, high = np.percentile(means, [tail, 100 - tail])
        out[lang] = Bootstrap(float(d.mean()), float(low), float(high), len(d), n_resamples)
    if samples:
        avg = np.mean(samples, axis=0)
        point = float(np.mean([out[l].diff for l in out]))
        low, high = np.percentile(avg, [tail, 100 - tail])
        out[AVG] = Bootstrap(point, float(low), float(high), total, n_resamples)
    return out


# --------------------------------------------------------------------------------------------------
# Tables


@dataclass
class Row:
    model: str
    kind: str                      # "measured" | "published"
    split: str
    cells: dict[str, Stat]         # languages, avg, gap
    seeds: int = 0                 # runs averaged (0 for published rows)
    source: str = ""               # the citation of a published row
    run_ids: list[str] = field(default_factory=list)
    config: str | None = None      # spec without its seed (measured rows)

    @property
    def label(self) -> str:
        if self.kind == "published":
            return f"published, {split_label(self.split)}"
        return f"xlt, {split_label(self.split)}"

    @property
    def is_dev(self) -> bool:
        return self.split != "test"


@dataclass
class Delta:
    model: str
    baseline: str
    cells: dict[str, float]
    significance: dict[str, Bootstrap] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return f"Δ {self.model}"

    @property
    def versus(self) -> str:
        return f"vs {self.baseline}"


@dataclass
class Table:
    task: str
    metric: str
    split: str                     # the split of the measured rows
    languages: list[str]
    source_lang: str
    rows: list[Row] = field(default_factory=list)
    deltas: list[Delta] = field(default_factory=list)
    baseline: str | None = None    # the label of the baseline row, if one was found
    n_resamples: int = N_RESAMPLES
    notes: list[str] = field(default_factory=list)

    @property
    def columns(self) -> list[str]:
        return [*self.languages, AVG, GAP]

    def best(self) -> dict[str, float]:
        """Best displayed value per column (highest; lowest for the gap), compared at display precision."""
        out = {}
        for col in self.columns:
            vals = [round(r.cells[col].mean, 1) for r in self.rows if col in r.cells]
            if vals:
                out[col] = min(vals) if col == GAP else max(vals)
        return out

    def is_best(self, row: Row, col: str) -> bool:
        best = self.best().get(col)
        return len(self.rows) > 1 and col in row.cells and round(row.cells[col].mean, 1) == best

    def caption(self) -> str:
        n = len(self.languages)
        parts = [f"{self.task}: {self.metric} (%), zero-shot transfer from {self.source_lang}."]
        if any(r.kind == "measured" for r in self.rows):
            where = "the dev set" if self.split == "validation" else f"the {self.split} split"
            parts.append(f"Measured rows (xlt): mean ± sample std over the seeds (Seeds column) on {where}.")
        if any(r.kind == "published" for r in self.rows):
            parts.append("Published rows are labelled with their split")
            if any(r.kind == "published" and r.is_dev for r in self.rows):
                parts[-1] += "; a dev-set number is not a test number"
            parts[-1] += "."
        parts.append(f"avg = unweighted macro average over the {n} languages"
                     + (" (published rows: the average as published)." if any(r.kind == "published"
                                                                            for r in self.rows) else "."))
        others = "the other language" if n == 2 else f"the mean of the other {n - 1} languages"
        parts.append(f"gap = transfer gap, {self.source_lang} minus {others} "
                     "(lower is better). Bold: best per column.")
        if self.deltas:
            parts.append(f"Δ rows: row minus the baseline {self.baseline} (percent points).")
            if any(d.significance for d in self.deltas):
                parts.append(f"* = significant at 95%: the 95% CI of the difference excludes 0 under a paired "
                             f"bootstrap over examples ({self.n_resamples} resamples; for avg each language "
                             "resampled independently).")
            else:
                parts.append("No significance test: it needs predictions of both models on the same examples.")
        return " ".join(parts + self.notes)


@dataclass
class Report:
    tables: list[Table]
    problems: list[str] = field(default_factory=list)   # record files skipped, one line each, naming them
    n_records: int = 0                                   # readable records found (any task, any status)


def _task_view(task: str, spec: Any | None, reference: pd.DataFrame, frame: pd.DataFrame,
               records: Sequence[Mapping[str, Any]]) -> tuple[list[str], str, str]:
    """(languages in order, source language, metric): from the TaskSpec when xlt knows the task, else from
    the records' embedded task description, the reference file's order and the measured languages."""
    if spec is not None:
        return list(spec.languages), spec.source_lang, spec.primary_metric
    task_info = next((r.get("task") or {} for r in records if r["spec"]["task"] == task
                      and (r.get("task") or {}).get("languages")), {})
    languages = list(task_info.get("languages") or [])
    for lang in [*reference["lang"], *frame["lang"]]:
        if lang != AVG and lang not in languages:
            languages.append(lang)
    source = task_info.get("source_lang") or ("en" if "en" in languages else (languages[0] if languages else ""))
    metric = task_info.get("primary_metric") or ("accuracy" if (reference.empty or "accuracy" in
                                                                set(reference["metric"])) else reference["metric"].iloc[0])
    return languages, source, metric


def _config_labels(configs: Sequence[str]) -> dict[str, str]:
    """Short labels for the configurations of one model: the spec fields in which they differ."""
    if len(configs) < 2:
        return {c: "" for c in configs}
    flat = []
    for c in configs:
        spec = json.loads(c)
        hp = spec.pop("hparams", {}) or {}
        flat.append({**{k: v for k, v in spec.items() if k != "model"}, **hp})
    keys = sorted({k for f in flat for k in f if len({json.dumps(g.get(k)) for g in flat}) > 1})
    return {c: ", ".join(f"{k}={f.get(k)}" for k in keys) for c, f in zip(configs, flat)}


def _measured_rows(frame: pd.DataFrame, languages: list[str], source_lang: str, split: str) -> list[Row]:
    rows = []
    for model, by_model in frame.groupby("model", sort=False):
        configs = list(dict.fromkeys(by_model["config"]))
        labels = _config_labels(configs)
        for config in configs:
            sub = by_model[by_model["config"] == config]
            per_run = per_run_table(sub, languages, source_lang)
            name = f"{model} ({labels[config]})" if labels[config] else str(model)
            rows.append(Row(model=name, kind="measured", split=split, cells=aggregate(per_run),
                            seeds=len(per_run), run_ids=list(per_run.index), config=config))
    return rows


def _published_rows(reference: pd.DataFrame, languages: list[str], source_lang: str, metric: str) -> list[Row]:
    rows = []
    ref = reference[reference["metric"] == metric]
    for (model, split), sub in ref.groupby(["model", "split"], sort=False):
        values = dict(zip(sub["lang"], sub["value"]))
        cells = {lang: Stat(float(values[lang])) for lang in languages if lang in values}
        if AVG in values:
            cells[AVG] = Stat(float(values[AVG]))
        elif (avg := macro_average(values, languages)) is not None:
            cells[AVG] = Stat(avg)
        gap = transfer_gap({l: values[l] for l in languages if l in values}, source_lang)
        if gap is not None:
            cells[GAP] = Stat(gap)
        sources = "; ".join(dict.fromkeys(sub["source"]))
        rows.append(Row(model=str(model), kind="published", split=str(split), cells=cells, source=sources))
    return rows


def _find_baseline(rows: list[Row], baseline: str, split: str) -> Row | None:
    want = normalize_model_name(baseline)
    matches = [r for r in rows if normalize_model_name(r.model) == want or
               (r.kind == "measured" and normalize_model_name(r.model.split(" (")[0]) == want)]
    rank = lambda r: (r.kind != "measured", r.split != split)   # noqa: E731 - measured first, then same split
    return min(matches, key=rank) if matches else None


def _correctness(run_ids: Sequence[str], paths: Mapping[str, Path], split: str,
                 notes: list[str]) -> pd.DataFrame | None:
    """Per example (lang, idx) of `split`: the label and the correctness averaged over the runs (seeds)."""
    frames = []
    for run_id in run_ids:
        try:
            preds = load_predictions(paths[run_id]) if run_id in paths else None
        except (OSError, ValueError) as exc:   # pyarrow's errors derive from these
            notes.append(f"predictions of run {run_id} are unreadable ({exc.__class__.__name__}); "
                         "no significance test for it.")
            return None
        if preds is None:
            return None
        if any(c not in preds.columns for c in PREDICTION_COLUMNS):
            notes.append(f"predictions of run {run_id} lack columns {PREDICTION_COLUMNS}; no significance test.")
            return None
        preds = preds[preds["split"] == split]
        frames.append(preds.assign(correct=(preds["label"] == preds["pred"]).astype(float)))
    if not frames:
        return None
    both = pd.concat(frames)
    return both.groupby(["lang", "idx"]).agg(label=("label", "first"), correct=("correct", "mean"))


def _significance(row: Row, base: Row, paths: Mapping[str, Path], languages: list[str], split: str,
                  n_resamples: int, seed: int, notes: list[str]) -> dict[str, Bootstrap]:
    a = _correctness(row.run_ids, paths, split, notes)
    b = _correctness(base.run_ids, paths, split, notes)
    if a is None or b is None:
        return {}
    joined = a.add_suffix("_a").join(b.add_suffix("_b"), how="inner")
    if (joined["label_a"] != joined["label_b"]).any():
        notes.append(f"{row.model} and {base.model} disagree on gold labels of shared examples; "
                     "no significance test for them.")
        return {}
    ca, cb = {}, {}
    for lang in languages:
        if lang in joined.index.get_level_values("lang"):
            sub = joined.xs(lang, level="lang").sort_index()
            ca[lang], cb[lang] = sub["correct_a"].to_numpy(), sub["correct_b"].to_numpy()
    if not ca:
        return {}
    result = paired_bootstrap(ca, cb, n_resamples=n_resamples, seed=seed)
    if len(ca) < len(languages):
        result.pop(AVG, None)   # an average over a subset of languages is not the table's average
    return result


def build_table(task: str, records: Records | None = None, *, baseline: str | None = DEFAULT_BASELINE,
                split: str = DEFAULT_SPLIT, reference: bool = True, reference_dir: Path | None = None,
                tasks_dir: Path | None = None, n_resamples: int = N_RESAMPLES, seed: int = 0) -> Table:
    """The comparison table of one task from loaded records and the task's reference file."""
    if split not in SPLITS:
        raise XltError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")
    records = records or Records()
    spec = _task_spec(task, tasks_dir)
    ref = pd.DataFrame(columns=REFERENCE_COLUMNS)
    if reference:
        if reference_dir is not None:
            path = Path(reference_dir) / f"{task}.csv"
        elif spec is not None and getattr(spec, "reference", None):
            path = Path(spec.reference)
        else:
            path = default_reference_dir() / f"{task}.csv"
        if path.is_file():
            ref = load_reference(path)
    task_records = [r for r in records.records if r["spec"]["task"] == task]
    frame = runs_frame(task_records)
    languages, source_lang, metric = _task_view(task, spec, ref, frame, task_records)
    other_splits = sorted(set(frame["split"]) - {split})
    frame = frame[(frame["split"] == split) & (frame["metric"] == metric)]
    table = Table(task=task, metric=metric, split=split, languages=languages, source_lang=source_lang,
                  n_resamples=n_resamples)
    table.rows = _published_rows(ref, languages, source_lang, metric) + \
        _measured_rows(frame, languages, source_lang, split)
    if frame.empty and other_splits:
        table.notes.append(f"Runs of {task} have no {split} results (they have {', '.join(other_splits)}); "
                           f"see --split {other_splits[0]}.")
    for row in table.rows:
        if row.kind == "measured" and row.config:
            spec = json.loads(row.config)
            limits = [f"{k}={spec[k]}" for k in ("max_train_samples", "max_eval_samples") if spec.get(k)]
            if limits:
                table.notes.append(f"{row.model}: a reduced run ({', '.join(limits)}), not comparable with "
                                   "full-data numbers.")
        if row.kind == "published" and AVG in row.cells:
            mean = macro_average({l: row.cells[l].mean for l in languages if l in row.cells}, languages)
            if mean is not None and abs(mean - row.cells[AVG].mean) >= 0.05 + 1e-9:
                table.notes.append(f"{row.model}: published avg {row.cells[AVG].mean:.1f}; the mean of its "
                                   f"printed per-language values is {mean:.2f}.")
    if baseline:
        base = _find_baseline(table.rows, baseline, split)
        if base is None:
            if table.rows:
                table.notes.append(f"No Δ rows: baseline {baseline!r} is not in this table.")
        else:
            table.baseline = f"{base.model} ({base.label})"
            measured = [r for r in table.rows if r.kind == "measured"]
            paths = dict(zip((r["run_id"] for r in records.records), records.paths))
            for row in (measured or table.rows):
                if row is base:
                    continue
                cells = {c: row.cells[c].mean - base.cells[c].mean for c in table.columns
                         if c in row.cells and c in base.cells}
                sig = {}
                if row.kind == "measured" and base.kind == "measured":
                    sig = _significance(row, base, paths, languages, split, n_resamples, seed, table.notes)
                table.deltas.append(Delta(row.model, base.model, cells, sig))
    return table


def known_tasks(records: Records, reference_dir: Path | None = None) -> list[str]:
    """Tasks that have completed runs or a reference file, sorted."""
    ref_dir = Path(reference_dir) if reference_dir is not None else default_reference_dir()
    names = {p.stem for p in ref_dir.glob("*.csv")} if ref_dir.is_dir() else set()
    names |= {r["spec"]["task"] for r in records.records if r.get("status") == "completed"}
    return sorted(names)


def build_report(results_dir: Path | str, task: str | None = None, *, baseline: str | None = DEFAULT_BASELINE,
                 split: str = DEFAULT_SPLIT, reference: bool = True, reference_dir: Path | None = None,
                 tasks_dir: Path | None = None, n_resamples: int = N_RESAMPLES, seed: int = 0,
                 records: Records | None = None) -> Report:
    """Tables for one task (or every task with runs or reference numbers) from the records under
    `results_dir` (or `records`, already loaded from it). Unreadable record files are skipped and listed in
    `Report.problems`."""
    records = usable_records(records if records is not None else load_records(results_dir))
    tasks = [task] if task else known_tasks(records, reference_dir if reference else None)
    tables = [build_table(t, records, baseline=baseline, split=split, reference=reference,
                          reference_dir=reference_dir, tasks_dir=tasks_dir, n_resamples=n_resamples, seed=seed)
              for t in tasks]
    if task and not tables[0].rows:
        what = "no completed runs" + ("" if not reference else " and no reference numbers")
        raise XltError(f"{what} for task {task!r} on the {split} split under {Path(results_dir) / 'runs'}; "
                       f"tasks with results: {', '.join(known_tasks(records, reference_dir)) or '(none)'}"
                       + "".join(f". {note.rstrip('.')}" for note in tables[0].notes))
    return Report([t for t in tables if t.rows], records.problems, len(records.records))


# --------------------------------------------------------------------------------------------------
# Runs


def run_average(record: Mapping[str, Any], split: str | None = None) -> tuple[float | None, str | None]:
    """(macro average of the primary metric in percent, split used): the test split, else validation."""
    task = record.get("task") or {}
    metric = task.get("primary_metric") or "accuracy"
    metrics = record.get("metrics") or {}
    for s in ([split] if split else ["test", "validation"]):
        by_lang = metrics.get(s) or {}
        vals = [v.get(metric) for v in by_lang.values() if isinstance(v, Mapping)]
        vals = [float(v) for v in vals if isinstance(v, (int, float))]
        if vals:
            return 100.0 * sum(vals) / len(vals), s
    return None, None


def runs_table(records: Records) -> pd.DataFrame:
    """Every record, one row: run_id, task, model, seed, status, avg (percent), split, created."""
    rows = []
    for r in records.records:
        avg, split = run_average(r)
        rows.append(dict(run_id=r["run_id"], task=r["spec"]["task"],
                         model=(r.get("model") or {}).get("name") or r["spec"]["model"], seed=r["spec"]["seed"],
                         status=r["status"], avg=avg, split=split, created=r.get("created_at")))
    return pd.DataFrame(rows, columns=["run_id", "task", "model", "seed", "status", "avg", "split", "created"])


def find_run(records: Records, run_id: str) -> tuple[Path, dict[str, Any]]:
    """The record whose run_id is `run_id` or starts with it; a clear error if none or several match."""
    run_id = run_id.strip()
    if not run_id:
        raise XltError("give a run id (or a prefix of one); `xlt report runs` lists them")
    hits = [(p, r) for p, r in zip(records.paths, records.records) if r["run_id"] == run_id]
    hits = hits or [(p, r) for p, r in zip(records.paths, records.records) if r["run_id"].startswith(run_id)]
    if not hits:
        raise XltError(f"no run record matches {run_id!r}; `xlt report runs` lists the run ids")
    if len({r["run_id"] for _, r in hits}) > 1:
        ids = ", ".join(sorted({r["run_id"] for _, r in hits}))
        raise XltError(f"run id prefix {run_id!r} is ambiguous ({ids}); give more characters")
    return hits[0]


def run_detail(record: Mapping[str, Any]) -> pd.DataFrame:
    """One run's metrics: one row per (split, metric) plus an `n` row per split, columns = languages (the
    record's task order where it has one) then avg; metric values in percent."""
    task = record.get("task") or {}
    order = list(task.get("languages") or [])
    rows = []
    for split, by_lang in (record.get("metrics") or {}).items():
        langs = order + [l for l in by_lang if l not in order]
        langs = [l for l in langs if l in by_lang]
        metrics = list(dict.fromkeys(m for l in langs for m in by_lang[l] if m != "n"))
        for m in metrics:
            vals = {l: 100.0 * by_lang[l][m] for l in langs if isinstance(by_lang[l].get(m), (int, float))}
            vals[AVG] = sum(vals.values()) / len(vals) if vals else None
            rows.append({"split": split, "metric": m, **vals})
        rows.append({"split": split, "metric": "n", **{l: by_lang[l].get("n") for l in langs}})
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------------------------------
# Rendering


def _fmt(stat: Stat | None, with_std: bool = True) -> str:
    if stat is None or stat.mean is None or math.isnan(stat.mean):
        return "–"
    text = f"{stat.mean:.1f}"
    if with_std and stat.std is not None:
        text += f" ± {stat.std:.1f}"
    return text


def _fmt_delta(delta: Delta, col: str) -> str:
    if col not in delta.cells:
        return "–"
    text = f"{delta.cells[col]:+.1f}"
    sig = delta.significance.get(col)
    return text + ("*" if sig is not None and sig.significant else "")


def _seeds(row: Row) -> str:
    return str(row.seeds) if row.kind == "measured" else "–"


def md_escape(text: str) -> str:
    """Text for a markdown table cell: HTML-escaped (markdown renders inline HTML) and pipes escaped."""
    return html.escape(str(text), quote=False).replace("|", "\\|").replace("\n", " ")


def latex_escape(text: str) -> str:
    specials = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
                "<": r"\textless{}", ">": r"\textgreater{}", "Δ": r"$\Delta$", "−": r"$-$", "±": r"$\pm$",
                "–": "--"}
    return "".join(specials.get(c, c) for c in str(text))


def render_md(tables: Sequence[Table]) -> str:
    out = []
    for t in tables:
        head = ["Model", "Result", "Seeds", *t.columns]
        lines = [f"### {md_escape(t.task)}: {md_escape(t.metric)}", "", md_escape(t.caption()), "",
                 "| " + " | ".join(md_escape(h) for h in head) + " |",
                 "|---|---|---:|" + "---:|" * len(t.columns)]
        for r in t.rows:
            cells = []
            for c in t.columns:
                text = _fmt(r.cells.get(c))
                bold = t.is_best(r, c)
                cells.append(f"**{text}**" if bold else text)
            label = r.label if not (r.kind == "published" and r.is_dev) else f"**{r.label}**"
            lines.append("| " + " | ".join([md_escape(r.model), label, _seeds(r), *cells]) + " |")
        for d in t.deltas:
            lines.append("| " + " | ".join([md_escape(d.label), md_escape(d.versus), "",
                                            *(_fmt_delta(d, c) for c in t.columns)]) + " |")
        out.append("\n".join(lines))
    return "\n\n".join(out) + "\n"


def _csv_value(row: Row, col: str) -> str:
    stat = row.cells.get(col)
    if stat is None or math.isnan(stat.mean):
        return ""
    return f"{stat.mean:.1f}" if row.kind == "published" else f"{stat.mean:.2f}"


def render_csv(tables: Sequence[Table]) -> str:
    """One row per model row (no Δ rows): means in percent, published digits as printed."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    columns: list[str] = []
    for t in tables:
        columns += [c for c in t.columns if c not in columns]
    writer.writerow(["task", "model", "result", "split", "seeds", *columns, "source"])
    for t in tables:
        for r in t.rows:
            writer.writerow([t.task, r.model, r.kind, r.split, r.seeds if r.kind == "measured" else "",
                             *(_csv_value(r, c) if c in t.columns else "" for c in columns),
                             r.source or " ".join(r.run_ids)])
    return buf.getvalue()


def render_latex(tables: Sequence[Table]) -> str:
    out = []
    for t in tables:
        spec = "ll" + "r" * (1 + len(t.columns))
        lines = [r"\begin{table*}[t]", r"\centering", r"\small", rf"\begin{{tabular}}{{{spec}}}", r"\toprule",
                 " & ".join(["Model", "Result", "Seeds", *(latex_escape(c) for c in t.columns)]) + r" \\",
                 r"\midrule"]
        for r in t.rows:
            cells = []
            for c in t.columns:
                text = latex_escape(_fmt(r.cells.get(c), with_std=False))
                bold = t.is_best(r, c)
                std = r.cells[c].std if c in r.cells else None
                if std is not None:
                    text += rf"\textsubscript{{$\pm${std:.1f}}}"
                cells.append(rf"\textbf{{{text}}}" if bold else text)
            lines.append(" & ".join([latex_escape(r.model), latex_escape(r.label), latex_escape(_seeds(r)),
                                     *cells]) + r" \\")
        if t.deltas:
            lines.append(r"\midrule")
            for d in t.deltas:
                lines.append(" & ".join([latex_escape(d.label), latex_escape(d.versus), "",
                                         *(latex_escape(_fmt_delta(d, c)) for c in t.columns)]) + r" \\")
        lines += [r"\bottomrule", r"\end{tabular}", rf"\caption{{{latex_escape(t.caption())}}}",
                  rf"\label{{tab:{re.sub(r'[^A-Za-z0-9]+', '-', t.task)}}}", r"\end{table*}"]
        out.append("\n".join(lines))
    return "\n\n".join(out) + "\n"


def _esc(text: Any) -> str:
    return html.escape(str(text), quote=True)


def html_table(t: Table, table_id: str = "", sortable: bool = True) -> str:
    """One task's table as an HTML <table> (model rows in <tbody>, Δ rows in <tfoot>); all text escaped.
    Each cell carries `data-sort` with its raw value so a script can sort numerically."""
    klass = "xlt-table sortable" if sortable else "xlt-table"
    ident = f' id="{_esc(table_id)}"' if table_id else ""
    out = [f'<table class="{klass}"{ident} data-task="{_esc(t.task)}">',
           f"<caption>{_esc(t.caption())}</caption>", "<thead><tr>"]
    heads = [("Model", "text"), ("Result", "text"), ("Seeds", "num")] + [(c, "num") for c in t.columns]
    for name, kind in heads:
        title = ' title="transfer gap: lower is better"' if name == GAP else ""
        out.append(f'<th scope="col" data-type="{kind}"{title}>{_esc(name)}</th>')
    out.append("</tr></thead><tbody>")
    for r in t.rows:
        classes = ["published" if r.kind == "published" else "measured"] + (["dev"] if r.is_dev else [])
        badge = f'<span class="badge{" badge-dev" if r.is_dev else ""}">{_esc(r.label)}</span>'
        title = f' title="{_esc(r.source)}"' if r.source else ""
        out.append(f'<tr class="{" ".join(classes)}">'
                   f'<th scope="row" data-sort="{_esc(r.model)}"{title}>{_esc(r.model)}</th>'
                   f'<td data-sort="{_esc(r.label)}">{badge}</td>'
                   f'<td data-sort="{r.seeds}">{_esc(_seeds(r))}</td>')
        for c in t.columns:
            stat = r.cells.get(c)
            value = "" if stat is None else f"{stat.mean:.4f}"
            text = _esc(_fmt(stat, with_std=False))
            if stat is not None and stat.std is not None:
                text += f'<span class="std">± {stat.std:.1f}</span>'
            bold = t.is_best(r, c)
            out.append(f'<td data-sort="{value}"{" class=best" if bold else ""}>'
                       f'{"<strong>" + text + "</strong>" if bold else text}</td>')
        out.append("</tr>")
    out.append("</tbody>")
    if t.deltas:
        out.append("<tfoot>")
        for d in t.deltas:
            out.append(f'<tr class="delta"><th scope="row">{_esc(d.label)}</th><td>{_esc(d.versus)}</td><td></td>')
            for c in t.columns:
                sig = d.significance.get(c)
                title = (f' title="95% CI [{sig.low:+.2f}, {sig.high:+.2f}] over {sig.n} examples, '
                         f'{sig.n_resamples} resamples"') if sig is not None else ""
                cls = ' class="sig"' if sig is not None and sig.significant else ""
                out.append(f"<td{cls}{title}>{_esc(_fmt_delta(d, c))}</td>")
            out.append("</tr>")
        out.append("</tfoot>")
    out.append("</table>")
    return "\n".join(out)


HTML_STYLE = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif;
       color: #1f2328; background: #fff; margin: 0; }
main { max-width: 1240px; margin: 0 auto; padding: 28px 24px 48px; }
h1 { font-size: 24px; margin: 0 0 4px; }
h2 { font-size: 19px; margin: 36px 0 8px; padding-bottom: 6px; border-bottom: 1px solid #d0d7de; }
p.lead, p.meta { color: #57606a; margin: 4px 0 12px; }
.table-wrap { overflow-x: auto; border: 1px solid #d0d7de; border-radius: 6px; }
table.xlt-table { border-collapse: collapse; width: 100%; font-size: 13px; font-variant-numeric: tabular-nums; }
table.xlt-table caption { caption-side: bottom; text-align: left; color: #57606a; font-size: 12px;
                          padding: 8px 10px; line-height: 1.4; }
table.xlt-table th, table.xlt-table td { padding: 5px 7px; text-align: right; white-space: nowrap;
                                          border-bottom: 1px solid #eaeef2; }
table.xlt-table thead th { background: #f6f8fa; font-weight: 600; position: sticky; top: 0; }
table.xlt-table.sortable thead th { cursor: pointer; user-select: none; }
table.xlt-table.sortable thead th:hover { background: #eaeef2; }
table.xlt-table thead th[aria-sort="ascending"]::after { content: " \\25B2"; font-size: 10px; }
table.xlt-table thead th[aria-sort="descending"]::after { content: " \\25BC"; font-size: 10px; }
table.xlt-table th:nth-child(-n+2), table.xlt-table td:nth-child(-n+2) { text-align: left; }
table.xlt-table tbody th { font-weight: 600; }
table.xlt-table tbody tr:hover { background: #f6f8fa; }
table.xlt-table td.best strong { color: #0a3069; }
table.xlt-table .std { display: block; color: #6e7781; font-size: 11px; font-weight: 400; }
table.xlt-table tfoot tr { background: #fbfbfc; color: #424a53; }
table.xlt-table tfoot th { font-weight: 500; }
table.xlt-table tfoot td.sig { font-weight: 600; color: #1a7f37; }
.badge { display: inline-block; padding: 1px 7px; border-radius: 10px; font-size: 11px; background: #ddf4ff;
         color: #0969da; border: 1px solid #b6e3ff; }
tr.measured .badge { background: #dafbe1; color: #1a7f37; border-color: #aceebb; }
.badge-dev { background: #fff8c5 !important; color: #9a6700 !important; border-color: #eed888 !important; }
figure { margin: 16px 0 0; }
figure img { width: 100%; height: auto; border: 1px solid #eaeef2; border-radius: 6px; }
figcaption { color: #57606a; font-size: 12px; margin-top: 4px; }
footer { margin-top: 40px; color: #6e7781; font-size: 12px; }
code { font: 12px ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; background: #f6f8fa; padding: 1px 4px;
       border-radius: 4px; }
"""

SORT_SCRIPT = """
(function () {
  function key(cell, type) {
    var raw = cell ? cell.getAttribute("data-sort") : "";
    if (type === "num") { var v = parseFloat(raw); return isNaN(v) ? null : v; }
    return (raw || "").toLowerCase();
  }
  function sortTable(table, index, th) {
    var body = table.tBodies[0];
    var type = th.getAttribute("data-type");
    var dir = th.getAttribute("aria-sort") === "descending" ? "ascending" : "descending";
    if (type === "text" && !th.hasAttribute("aria-sort")) { dir = "ascending"; }
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (a, b) {
      var x = key(a.cells[index], type), y = key(b.cells[index], type);
      if (x === y) { return 0; }
      if (x === null) { return 1; }
      if (y === null) { return -1; }
      return (x < y ? -1 : 1) * (dir === "ascending" ? 1 : -1);
    });
    rows.forEach(function (r) { body.appendChild(r); });
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (h) { h.removeAttribute("aria-sort"); });
    th.setAttribute("aria-sort", dir);
  }
  Array.prototype.forEach.call(document.querySelectorAll("table.sortable"), function (table) {
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th, index) {
      th.tabIndex = 0;
      th.addEventListener("click", function () { sortTable(table, index, th); });
      th.addEventListener("keydown", function (e) { if (e.key === "Enter") { sortTable(table, index, th); } });
    });
  });
  document.documentElement.setAttribute("data-sortable", "ready");
})();
"""


def html_document(title: str, body: str, script: bool = True) -> str:
    js = f"<script>{SORT_SCRIPT}</script>" if script else ""
    return (f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            f"<title>{_esc(title)}</title>\n<style>{HTML_STYLE}</style>\n</head>\n<body>\n<main>\n{body}\n</main>\n"
            f"{js}\n</body>\n</html>\n")


def render_html(tables: Sequence[Table]) -> str:
    parts = ["<h1>xlt comparison tables</h1>"]
    for i, t in enumerate(tables):
        parts.append(f"<h2>{_esc(t.task)}: {_esc(t.metric)}</h2>")
        parts.append(f'<div class="table-wrap">{html_table(t, table_id=f"table-{i}")}</div>')
    return html_document("xlt report", "\n".join(parts))


def console_tables(tables: Sequence[Table]) -> list[Any]:
    """rich renderables, one Table per task; text from records escaped so it is never read as markup."""
    from rich import box
    from rich.markup import escape
    from rich.table import Table as RichTable

    out = []
    for t in tables:
        rt = RichTable(title=f"{escape(t.task)}: {escape(t.metric)}", caption=escape(t.caption()),
                       box=box.SIMPLE_HEAD, caption_justify="left", title_justify="left")
        rt.add_column("Model", no_wrap=True)
        rt.add_column("Result", no_wrap=True)
        rt.add_column("Seeds", justify="right")
        for c in t.columns:
            rt.add_column(escape(c), justify="right")
        for r in t.rows:
            cells = []
            for c in t.columns:
                text = escape(_fmt(r.cells.get(c)))
                bold = t.is_best(r, c)
                cells.append(f"[bold]{text}[/bold]" if bold else text)
            label = escape(r.label)
            rt.add_row(escape(r.model), f"[yellow]{label}[/yellow]" if r.is_dev else label, _seeds(r), *cells)
        for i, d in enumerate(t.deltas):
            rt.add_row(escape(d.label), escape(d.versus), "", *(escape(_fmt_delta(d, c)) for c in t.columns),
                       style="dim" if not d.significance else None, end_section=False)
        out.append(rt)
    return out


def render(tables: Sequence[Table], fmt: str) -> str:
    """Text in one of md, csv, latex, html (console output is rendered by the CLI with rich)."""
    renderers = {"md": render_md, "csv": render_csv, "latex": render_latex, "html": render_html}
    if fmt not in renderers:
        raise XltError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    return renderers[fmt](tables)
