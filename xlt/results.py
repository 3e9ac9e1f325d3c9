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
                    not train (`steps` says why)
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
import math
import os
import platform
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Literal, Mapping, Optional

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from xlt import formulas
from xlt.atomic import atomic_path
from xlt.errors import XltError
from xlt.names import inside
from xlt.spec import RunSpec

SCHEMA_VERSION = 2
READABLE_VERSIONS = (1, 2)                          # version 1 records are upgraded on read (`upgrade`)
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


# --- the record schema, checked on every read ----------------------------------------------------------

MAX_RECORD_DEPTH = 32   # a record is about 5 levels deep; far deeper is not a record (and would exhaust the stack)
_STATUSES = ("completed", "failed")


class _Block(BaseModel):
    # strict: "1" is not a seed and 12345 is not a date; extra keys are allowed (newer xlt may add some)
    model_config = ConfigDict(strict=True, extra="allow")


class _SpecBlock(_Block):
    model: str
    task: str
    seed: int
    hparams: dict[str, Any] = {}
    languages: Optional[list[str]] = None


class _ModelBlock(_Block):
    name: Optional[str] = None
    hub_id: Optional[str] = None
    display_name: Optional[str] = None
    family: Optional[str] = None
    impl: Optional[str] = None


class _MetricInfo(_Block):
    formula: dict[str, Any]
    caption: str = ""
    higher_is_better: bool = True

    @field_validator("formula")
    @classmethod
    def _formula(cls, value: dict) -> dict:
        problem = formulas.problem(value)
        if problem:
            raise ValueError(problem)
        return value


class _TaskBlock(_Block):
    name: Optional[str] = None
    type: Optional[str] = None
    version: Optional[int] = None
    description: Optional[str] = None
    source_lang: Optional[str] = None
    languages: Optional[list[str]] = None
    eval_splits: Optional[list[str]] = None
    primary_metric: Optional[str] = None
    metrics: Optional[list[str]] = None
    report_metrics: Optional[list[str]] = None
    example_unit: Optional[str] = None
    metric_info: Optional[dict[str, _MetricInfo]] = None


class _PredictionsBlock(_Block):
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    rows: int = Field(ge=0)


class _Record(_Block):
    schema_version: Literal[1, 2]
    run_id: str
    status: Literal["completed", "failed"]
    spec: _SpecBlock
    model: _ModelBlock
    task: _TaskBlock
    metrics: dict[str, dict[str, dict[str, Optional[float]]]]
    selection: Optional[dict[str, Any]] = None
    steps: dict[str, str] = {}
    timing: dict[str, Any] = {}
    env: dict[str, Any] = {}
    data: dict[str, Any] = {}
    flags: list[str] = []
    predictions: Optional[_PredictionsBlock] = None
    error: Optional[dict[str, Any]] = None
    created_at: str

    @field_validator("created_at")
    @classmethod
    def _iso_date(cls, value: str) -> str:
        try:
            _dt.datetime.fromisoformat(value)
        except ValueError:
            raise ValueError(f"{value!r} is not an ISO 8601 date-time") from None
        return value


def _too_deep(value: Any, limit: int) -> str | None:
    """The path of the first value nested deeper than `limit` levels, else None (iterative: no recursion)."""
    stack = [(value, "", 0)]
    while stack:
        item, where, depth = stack.pop()
        if isinstance(item, (dict, list)):
            if depth >= limit:
                return where or "<top level>"
            pairs = item.items() if isinstance(item, dict) else enumerate(item)
            stack.extend((v, f"{where}.{k}" if where else str(k), depth + 1) for k, v in pairs)
    return None


def _metric_problem(metrics: Mapping[str, Any]) -> str | None:
    """Scores are finite fractions in [0, 1] (or null); counts ("n", "n_<unit>") non-negative integers."""
    for split, by_lang in metrics.items():
        for lang, values in by_lang.items():
            for key, value in values.items():
                where = f"field metrics.{split}.{lang}.{key}"
                if is_count(key):
                    if value is not None and (not float(value).is_integer() or value < 0):
                        return f"{where}: {value!r} is not a count (a non-negative integer)"
                elif value is not None and not (math.isfinite(value) and 0.0 <= value <= 1.0):
                    return f"{where}: {value!r} is not a fraction in [0, 1] (records store 0.573, not 57.3)"
    return None


def record_problem(record: Any) -> str | None:
    """What makes `record` unusable, naming the field, or None when it follows the schema (module docstring).
    The one check every reader relies on: `read_record`, `load_records` and the reports."""
    if not isinstance(record, dict):
        return f"not a JSON object but {type(record).__name__}"
    if "schema_version" not in record:
        return "not a run record (no schema_version)"
    if record["schema_version"] not in READABLE_VERSIONS or isinstance(record["schema_version"], bool):
        return (f"schema version {record['schema_version']!r} is not one this xlt reads "
                f"({', '.join(map(str, READABLE_VERSIONS))}); upgrade xlt or re-run")
    deep = _too_deep(record, MAX_RECORD_DEPTH)
    if deep is not None:
        return f"field {deep}: nested deeper than {MAX_RECORD_DEPTH} levels"
    try:
        _Record.model_validate(record)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(part) for part in err["loc"]) or "<top level>"
        value = repr(err.get("input"))
        value = value if len(value) <= 60 else value[:57] + "..."
        more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        return f"field {field}: {err['msg']} (got {value}){more}"
    return _metric_problem(record["metrics"])


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


def upgrade(record: dict[str, Any]) -> dict[str, Any]:
    """A valid record in the current schema (version 2). A version 1 record (written before this version) gets
    what version 2 added: `steps` (unknown: {}), and in its task block the report metrics, example unit and
    `metric_info` of the task type it names, when that type is installed here (else its numbers still show,
    without significance tests). It keeps `migrated_from: 1`; its file is never rewritten."""
    if record.get("schema_version") != 1:
        return record
    record = {**record, "schema_version": SCHEMA_VERSION, "migrated_from": 1, "steps": record.get("steps") or {}}
    task = dict(record.get("task") or {})
    ttype = _installed_type(task.get("type"))
    if ttype is not None and task.get("metrics"):
        every = ttype.metric_formulas(None)
        info = {**task, "label_names": task.get("label_names") or []}
        task.setdefault("report_metrics", [m for m in ttype.report_metrics if m in task["metrics"]]
                        or task["metrics"][:1])
        task.setdefault("example_unit", ttype.example_unit)
        task.setdefault("metric_info", {
            m: {"formula": every[m], "caption": ttype.metric_caption({**info, "primary_metric": m}),
                "higher_is_better": True} for m in task["metrics"] if m in every})
    record["task"] = task
    return record


def _installed_type(name: str | None):
    """The task type `name` when this installation has it (for version 1 records only), else None."""
    try:
        from xlt.tasktypes import FIRST_TYPE, get_task_type

        return get_task_type(name or FIRST_TYPE)
    except (XltError, ImportError):
        return None


def prediction_statistics(record: Mapping[str, Any], predictions: pd.DataFrame) -> pd.DataFrame | None:
    """Each example's statistics (the `stat_*` columns, named without the prefix) of a record's predictions;
    for a version 1 record, whose predictions have none, those of its installed task type (None without it).
    A column one (split, language) lacks is empty (NaN) in its rows."""
    stat_columns = [c for c in predictions.columns if c.startswith(STAT_PREFIX)]
    if stat_columns:   # empty (NaN) where a (split, language) has no such statistic (a class it never saw)
        return predictions[stat_columns].rename(columns=lambda c: c[len(STAT_PREFIX):]).astype(float)
    if record.get("migrated_from") != 1:
        return None
    ttype = _installed_type((record.get("task") or {}).get("type"))
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


def load_records(results_dir: Path | str) -> Records:
    """Every valid record under `results_dir/runs`, sorted by creation time; invalid ones skipped and named
    in `problems`. Temp files of a write in progress (or of a killed one) are never read."""
    out = Records()
    runs = Path(results_dir) / "runs"
    if not runs.is_dir():
        return out
    found = []
    for path in sorted(runs.rglob("*.json")):
        if path.name.startswith("."):
            continue
        try:
            found.append((path, read_record(path)))
        except RecordError as exc:
            out.problems.append(str(exc))
    found.sort(key=lambda pr: pr[1]["created_at"])
    out.paths = [p for p, _ in found]
    out.records = [r for _, r in found]
    return out


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
    """The name reports show for a record's model: `--name`, else the registry name, else the spec's model."""
    model = record.get("model") or {}
    return str(model.get("display_name") or model.get("name") or record["spec"]["model"])


def is_count(key: str) -> bool:
    """Keys of a per-language metrics dict that are counts, not metrics: "n" and "n_<unit>"."""
    return key == "n" or key.startswith("n_")


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
