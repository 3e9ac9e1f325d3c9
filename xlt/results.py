"""RunRecords: the interface between running and reporting.

One JSON file per run at `<results_dir>/runs/<task>/<model_slug>/<run_id>.json`, its predictions beside it
as `<run_id>.predictions.parquet` (columns split, lang, idx and the task type's prediction columns: label,
pred for pairs and tagging; id, label, pred for QA). Files are written atomically
(temp file in the same folder, fsync, rename): a reader never sees half a file and a crash never loses an
earlier record. `write_run` orders the two writes so that a record and its predictions always belong
together, and `load_predictions` checks the file's sha256 against the record on every read.

Every read validates the record against the schema below (`record_problem`, the one check reports rely on):
readers skip an invalid file with a warning naming it and the field; they never delete it.

Record schema (version 2):
    schema_version  2
    run_id          spec.run_id
    status          "completed" | "failed"
    spec            RunSpec.to_dict() (model, task: strings; seed: an integer)
    model           {name, hub_id, display_name, family, impl, revision} (display_name: the row label in reports)
    task            {name, version, type, description, source_lang, languages, eval_splits, label_names,
                     primary_metric, metrics, report_metrics, example_unit, options, fingerprint, reference,
                     metric_info: {<metric>: {formula, caption, higher_is_better}}}: everything a report shows
                    about the task; `formula` (xlt.formulas) recomputes the metric from the predictions'
                    statistics, so reports need neither the task file nor the task type
    metrics         {split: {lang: {<metric>: fraction in [0, 1], "n": example count, "n_<unit>": other counts}}}
    selection       {criterion, best_step, best_value, history: [{step, value}]}, or null for a run that did
                    not train (`steps` says why; protocol "evaluate", `xlt eval`, never trains: its `model.labels`
                    keeps how the checkpoint's labels were matched to the task's, xlt.labelmatch)
    saved_model     {path (relative to the results folder), bytes}: the model `xlt run --save-model` kept
                    (optional)
    steps           {step name: "ran" | "skipped: <why>"} (set up, read data, featurize, train, select, evaluate)
    timing          {train_s, eval_s, train_tokens_per_s, eval_examples_per_s}
    env             {xlt, torch, transformers, datasets, python, platform, device, git_sha, data_revision}
    data            {train: {split, lang, n, origin}, selection: {split, lang, n, origin},
                     evaluated: [splits evaluated], skipped: {split: [langs not readable, e.g. no local file]},
                     looked_for: {split: the files looked for}}
                    (optional, added by the runner; {} when absent)
    flags           list of warnings about the run, e.g. "collapsed_predictions:validation/en",
                    "split_not_evaluated:test/en,fr,...", "resumed_from_step:40"
    predictions     {sha256, rows} of the parquet file written with the record (set by `write_run`)
    error           null | {type, message, traceback_tail} (the runner adds stage: setup|train|evaluate,
                    and step for a diverged loss)
    created_at      ISO 8601 UTC
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import io
import json
import os
import platform
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

import pandas as pd
from xlt import formulas
from xlt.atomic import atomic_path
from xlt.errors import XltError
from xlt.names import inside
from xlt.paths import cache_home
from xlt.record_schema import SCHEMA_VERSION, installed_type, is_count, record_problem, upgrade
from xlt.spec import EVALUATE_ONLY, RunSpec, model_slug

PREDICTION_KEYS = ["split", "lang", "idx"]          # every type's predictions start with these
STAT_PREFIX = "stat_"   # predictions columns holding each example's statistics (what the bootstrap resamples)
DEFAULT_RESULTS_DIR = Path("results")


def record_path(results_dir: Path | str, task: str, model_slug: str, run_id: str) -> Path:
    return Path(results_dir) / "runs" / task / model_slug / f"{run_id}.json"


def spec_record_path(results_dir: Path | str, spec: RunSpec) -> Path:
    return record_path(results_dir, spec.task, spec.model_slug, spec.run_id)


def predictions_path(record_file: Path) -> Path:
    return record_file.with_name(record_file.name.removesuffix(".json") + ".predictions.parquet")


def _atomic_write(path: Path, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def predictions_to_bytes(predictions: pd.DataFrame) -> bytes:
    missing = [c for c in PREDICTION_KEYS if c not in predictions.columns]
    if missing:
        raise ValueError(f"predictions lack columns {missing}")
    buf = io.BytesIO()
    predictions.to_parquet(buf, index=False)
    return buf.getvalue()


def _staged_predictions_path(record_file: Path, sha256: str) -> Path:
    """Where a record's predictions wait, named by their hash, until the record naming them is on disk."""
    return record_file.with_name(record_file.name.removesuffix(".json") + f".predictions.{sha256[:16]}.parquet")


def predictions_info(data: bytes) -> dict[str, Any]:
    """{sha256, rows} of a predictions parquet: what a record says about the file written with it."""
    import pyarrow.parquet as pq

    return {"sha256": hashlib.sha256(data).hexdigest(), "rows": pq.ParquetFile(io.BytesIO(data)).metadata.num_rows}


def write_run(results_dir: Path | str, record: dict[str, Any],
              predictions: pd.DataFrame | bytes | None = None) -> Path:
    """Write a record and its predictions so that the pair on disk always belongs together. Returns the
    record's path. `predictions` may be parquet bytes (as a Ray worker sends them back) or a frame.

    The record gets `predictions: {sha256, rows}` of the file. Order: (1) the predictions go to a file named
    by their hash, (2) the record, (3) that file is renamed to `<run_id>.predictions.parquet`. A kill after
    (1) leaves the earlier record with its own predictions; a kill after (2) leaves the new record whose
    predictions a reader finds by their hash (`load_predictions`). Each write is atomic; leftovers of a
    killed write are removed by the next write of the same run.
    """
    spec = RunSpec.from_dict(record["spec"])   # refuses a task or model that is not a plain name
    path = inside(results_dir, spec_record_path(results_dir, spec))
    staged = None
    if predictions is not None:
        data = predictions if isinstance(predictions, bytes) else predictions_to_bytes(predictions)
        record["predictions"] = predictions_info(data)
        staged = _staged_predictions_path(path, record["predictions"]["sha256"])
        _atomic_write(staged, data)
    else:
        record.pop("predictions", None)
    _atomic_write(path, (json.dumps(record, indent=2, sort_keys=False) + "\n").encode())
    final = predictions_path(path)
    if staged is not None:
        os.replace(staged, final)
    else:
        final.unlink(missing_ok=True)   # the predictions of an earlier record of this run are not this one's
    for leftover in path.parent.glob(f"{path.stem}.predictions.*.parquet"):
        leftover.unlink(missing_ok=True)
    return path


class RecordError(Exception):
    """A record file that cannot be used: corrupt JSON, truncated, an unknown schema version or a field that
    breaks the schema (the message names the file and the field)."""


class RecordWriteError(XltError):
    """A record could not be written (a full disk, a folder that became read-only); nothing was lost."""


def read_record(path: Path) -> dict[str, Any]:
    """A record that follows the schema, else RecordError naming the file and the field."""
    try:
        record = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        what = "nested too deeply" if isinstance(exc, RecursionError) else f"{exc.__class__.__name__}: {exc}"
        raise RecordError(f"{path}: not a readable record ({what})") from None
    problem = record_problem(record)
    if problem is not None:
        raise RecordError(f"{path}: invalid record: {problem}")
    return upgrade(record)


def prediction_statistics(record: Mapping[str, Any], predictions: pd.DataFrame) -> pd.DataFrame | None:
    """Each example's statistics (the `stat_*` columns, named without the prefix) of a record's predictions;
    for a version 1 record, whose predictions have none, those of its installed task type (None without it).
    A column one (split, language) lacks is empty (NaN) in its rows."""
    stat_columns = [c for c in predictions.columns if c.startswith(STAT_PREFIX)]
    if stat_columns:   # empty (NaN) where a (split, language) has no such statistic (a class it never saw)
        return predictions[stat_columns].rename(columns=lambda c: c[len(STAT_PREFIX):]).astype(float)
    if record.get("migrated_from") != 1:
        return None
    ttype = installed_type((record.get("task") or {}).get("type"))
    if ttype is None:
        return None
    parts = [ttype.statistics(group.reset_index(drop=True)).set_axis(group.index)
             for _, group in predictions.groupby(["split", "lang"], sort=False)]
    return pd.concat(parts).reindex(predictions.index).astype(float) if parts else None


@dataclass
class Records:
    records: list[dict[str, Any]] = field(default_factory=list)
    paths: list[Path] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)   # one line per skipped file, naming it and the field


def load_records(results_dir: Path | str, *, verify: bool = True) -> Records:
    """Every valid record under `results_dir/runs`, sorted by creation time; invalid ones skipped and named
    in `problems`. Temp files of a write in progress (or of a killed one) are never read. With `verify` (what
    reports read), a record must also sit where its spec files it and its metrics must be what its
    predictions give (`verify_record`)."""
    out = Records()
    runs = Path(results_dir) / "runs"
    if not runs.is_dir():
        return out
    found = []
    for path in sorted(runs.rglob("*.json")):
        if path.name.startswith("."):
            continue
        try:
            record = read_record(path)
        except RecordError as exc:
            out.problems.append(str(exc))
            continue
        problem = verify_record(results_dir, path, record) if verify else None
        if problem is not None:
            out.problems.append(f"{path}: left out: {problem}")
            continue
        found.append((path, record))
    found.sort(key=lambda pr: pr[1]["created_at"])
    out.paths = [p for p, _ in found]
    out.records = [r for _, r in found]
    return out


METRIC_TOLERANCE = 1e-6   # records store the floats the runner computed; a rewritten number differs far more


def verify_record(results_dir: Path | str, path: Path, record: Mapping[str, Any]) -> str | None:
    """Why a report must not show `record`, or None: it is filed under another task, model or run id than its
    spec says, or a metric differs from what its predictions give (recomputed through the record's formulas,
    once per predictions file and metrics: the answer is cached by their hashes). A record without predictions,
    or without formulas, is shown as it is (its significance tests say why they are missing)."""
    spec = record["spec"]
    expected = record_path(results_dir, spec["task"], model_slug(spec["model"]), record["run_id"])
    if expected.parent.resolve() != path.parent.resolve() or path.stem != record["run_id"]:
        return (f"it is filed at {path}, but its spec (task {spec['task']!r}, model {spec['model']!r}) and run id "
                f"file it at {expected.parent / (record['run_id'] + '.json')}")
    block, infos = record.get("predictions"), (record.get("task") or {}).get("metric_info") or {}
    if record["status"] != "completed" or not block or not infos:
        return None
    key = hashlib.sha256(f"{block['sha256']}|{json.dumps(record['metrics'], sort_keys=True)}".encode()).hexdigest()
    marker = cache_home() / "verified" / key[:32]
    if marker.exists():
        return None
    try:
        predictions = load_predictions(path, record)
    except (PredictionsMismatch, OSError, ValueError):
        return None   # reports name the file and leave it out of significance tests
    stats = prediction_statistics(record, predictions) if predictions is not None else None
    if stats is None:
        return None
    for (split, lang), rows in stats.groupby([predictions["split"], predictions["lang"]], sort=False):
        values = (record["metrics"].get(split) or {}).get(lang)
        if values is None:
            return f"its predictions hold {split}/{lang}, which its metrics do not"
        rows = rows.dropna(axis=1, how="all")
        totals = {c: rows[c].sum() for c in rows.columns}
        if values.get("n") is not None and int(values["n"]) != len(rows):
            return f"field metrics.{split}.{lang}.n: {values['n']} but its predictions hold {len(rows)} examples"
        for metric, value in values.items():
            if is_count(metric) or metric not in infos or value is None:
                continue
            got = float(formulas.evaluate(infos[metric]["formula"], totals, len(rows)))
            if abs(got - value) > METRIC_TOLERANCE:
                return f"field metrics.{split}.{lang}.{metric}: {value} but its predictions give {got:.6g}"
    try:
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.touch()
    except OSError:
        pass   # a read-only cache costs only the check next time
    return None


def completed_record(results_dir: Path | str, spec: RunSpec) -> dict[str, Any] | None:
    path = spec_record_path(results_dir, spec)
    if not path.exists():
        return None
    try:
        record = read_record(path)
    except RecordError:
        return None
    return record if record["status"] == "completed" else None


class PredictionsMismatch(ValueError):
    """The predictions beside a record are not the ones written with it (their sha256 differs)."""


def load_predictions(record_file: Path, record: Mapping[str, Any] | None = None) -> pd.DataFrame | None:
    """The predictions written with the record at `record_file` (None if it has none).

    The file's sha256 is checked against the record's `predictions.sha256` (the record is read from
    `record_file` when not given); a record whose write was interrupted finds its predictions under their
    hash. A file that matches neither raises PredictionsMismatch naming it: such a run must be left out of
    anything that compares predictions. Records without a hash (hand-made, or from before the hash existed)
    get the file beside them unchecked.
    """
    record_file = Path(record_file)
    if record is None:
        try:
            record = read_record(record_file)
        except RecordError:
            record = {}
    path = predictions_path(record_file)
    expected = ((record or {}).get("predictions") or {}).get("sha256")
    if expected is None:
        return pd.read_parquet(path) if path.exists() else None
    for candidate in (path, _staged_predictions_path(record_file, expected)):
        if candidate.exists():
            data = candidate.read_bytes()
            if hashlib.sha256(data).hexdigest() == expected:
                return pd.read_parquet(io.BytesIO(data))
    if not path.exists():
        return None
    raise PredictionsMismatch(f"{path} is not the predictions file written with its record (sha256 differs from "
                              f"the record's {expected[:12]}...): a later write was interrupted")


def check_writable(results_dir: Path | str) -> None:
    """Refuse a results folder that cannot be written before any work starts (XltError naming it). Nothing is
    created: a temp file is made and removed in the deepest folder that exists."""
    target = Path(results_dir)
    probe = target
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    why = None
    if not probe.is_dir():
        why = f"{probe} is a file, not a folder"
    else:
        try:
            with tempfile.NamedTemporaryFile(dir=probe, prefix=".xlt-write-check-"):
                pass
        except OSError as exc:
            why = f"{probe}: {exc.strerror or exc}"
    if why is not None:
        raise XltError(f"cannot write run records to the results folder {target} ({why}); pass --results-dir DIR "
                       "(or set XLT_RESULTS_DIR) with a folder you can write")


def keep_unsaved(record: Mapping[str, Any], predictions: bytes | None) -> Path:
    """Write a record (and its predictions) that could not be stored into a fresh temp folder; return it."""
    folder = Path(tempfile.mkdtemp(prefix=f"xlt-unsaved-{record.get('run_id', 'run')}-"))
    (folder / f"{record.get('run_id', 'run')}.json").write_text(json.dumps(record, indent=2) + "\n",
                                                                 encoding="utf-8")
    if predictions is not None:
        (folder / f"{record.get('run_id', 'run')}.predictions.parquet").write_bytes(predictions)
    return folder


def metrics_frame(records: Iterable[dict[str, Any]]) -> pd.DataFrame:
    """Long format: one row per (run, split, lang, metric) with the value and its example count."""
    rows = []
    for r in records:
        spec = r["spec"]
        for split, by_lang in (r.get("metrics") or {}).items():
            for lang, values in by_lang.items():
                for metric, value in values.items():
                    if is_count(metric):
                        continue
                    rows.append(dict(run_id=r["run_id"], task=spec["task"], model=display_name(r), seed=spec["seed"],
                                     status=r["status"], split=split, lang=lang, metric=metric, value=value,
                                     n=values.get("n"),
                                     created_at=r.get("created_at")))
    columns = ["run_id", "task", "model", "seed", "status", "split", "lang", "metric", "value", "n", "created_at"]
    return pd.DataFrame(rows, columns=columns)


def display_name(record: Mapping[str, Any]) -> str:
    """The name reports show for a record's model: `--name`, else the registry name, else the spec's model; a
    record of a protocol that only evaluates gets its word ("mdeberta-xnli (evaluated)"), so its row is never
    averaged with fine-tuned seeds of a model of the same name."""
    model = record.get("model") or {}
    name = str(model.get("display_name") or model.get("name") or record["spec"]["model"])
    word = EVALUATE_ONLY.get(str(record["spec"].get("protocol")))
    return f"{name} ({word})" if word else name


def _version(package: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version
    try:
        return version(package)
    except PackageNotFoundError:
        return None


def git_sha() -> str | None:
    """The commit of the xlt checkout this code runs from, with '+dirty' if it has local changes."""
    root = Path(__file__).resolve().parents[1]
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True,
                             timeout=5).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return (sha + ("+dirty" if dirty else "")) if sha else None


def environment(device: str, data_revision: str | None = None) -> dict[str, Any]:
    return {"xlt": _version("xlt"), "torch": _version("torch"), "transformers": _version("transformers"),
            "datasets": _version("datasets"), "python": platform.python_version(), "platform": platform.platform(),
            "device": device, "git_sha": git_sha(), "data_revision": data_revision}


def now_iso() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def new_record(spec: RunSpec, *, status: str, metrics: dict | None = None, selection: dict | None = None,
               timing: dict | None = None, env: dict | None = None, model: dict | None = None,
               task: dict | None = None, flags: list[str] | None = None, error: dict | None = None,
               data: dict | None = None, steps: dict | None = None) -> dict[str, Any]:
    if status not in ("completed", "failed"):
        raise ValueError(f"status must be completed or failed, not {status!r}")
    return {"schema_version": SCHEMA_VERSION, "run_id": spec.run_id, "status": status, "spec": spec.to_dict(),
            "model": model or {"name": spec.model}, "task": task or {"name": spec.task},
            "metrics": metrics or {}, "selection": selection, "steps": steps or {}, "timing": timing or {},
            "env": env or {}, "data": data or {}, "flags": flags or [], "error": error, "created_at": now_iso()}
