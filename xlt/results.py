"""RunRecords: the interface between running and reporting.

One JSON file per run at `<results_dir>/runs/<task>/<model_slug>/<run_id>.json`, its predictions beside it
as `<run_id>.predictions.parquet` (columns split, lang, idx and the task type's prediction columns: label,
pred for pairs and tagging; id, label, pred for QA). Files are written atomically
(temp file in the same folder, fsync, rename): a reader never sees half a file and a crash never loses an
earlier record. Readers skip a corrupt file with a warning naming it; they never delete it.

Record schema (version 1):
    schema_version  1
    run_id          spec.run_id
    status          "completed" | "failed"
    spec            RunSpec.to_dict()
    model           {name, hub_id, family, impl}
    task            {name, version, type, source_lang, languages, primary_metric, metrics}
    metrics         {split: {lang: {<metric>: value, "n": example count, "n_<unit>": other counts}}}
    selection       {criterion, best_step, best_value, history: [{step, value}]}
    timing          {train_s, eval_s, train_tokens_per_s, eval_examples_per_s}
    env             {xlt, torch, transformers, datasets, python, platform, device, git_sha, data_revision}
    data            {train: {split, lang, n, origin}, selection: {split, lang, n, origin},
                     evaluated: [splits evaluated], skipped: {split: [langs not readable, e.g. no local file]}}
                    (optional, added by the runner; {} when absent)
    flags           list of warnings about the run, e.g. "collapsed_predictions:validation/en",
                    "split_not_evaluated:test/en,fr,...", "resumed_from_step:40"
    predictions     {sha256, rows} of the parquet file written beside the record (optional, added by
                    runner.run; a mismatch means the predictions belong to a later, interrupted write)
    error           null | {type, message, traceback_tail} (the runner adds stage: setup|train|evaluate,
                    and step for a diverged loss)
    created_at      ISO 8601 UTC
"""

from __future__ import annotations

import datetime as _dt
import io
import json
import platform
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import pandas as pd

from xlt.atomic import atomic_path
from xlt.spec import RunSpec

SCHEMA_VERSION = 1
PREDICTION_KEYS = ["split", "lang", "idx"]          # every type's predictions start with these
PREDICTION_COLUMNS = PREDICTION_KEYS + ["label", "pred"]   # sentence-pair classification's full set
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


def write_run(results_dir: Path | str, record: dict[str, Any],
              predictions: pd.DataFrame | bytes | None = None) -> Path:
    """Write predictions, then the record, each atomically. Returns the record's path.

    Predictions go first so that a record on disk always has its predictions beside it. `predictions` may be
    parquet bytes (as a Ray worker sends them back) or a frame.
    """
    spec = RunSpec.from_dict(record["spec"])
    path = spec_record_path(results_dir, spec)
    if predictions is not None:
        data = predictions if isinstance(predictions, bytes) else predictions_to_bytes(predictions)
        _atomic_write(predictions_path(path), data)
    _atomic_write(path, (json.dumps(record, indent=2, sort_keys=False) + "\n").encode())
    return path


class RecordError(Exception):
    """A record file that cannot be used: corrupt JSON, truncated, or an unknown schema version."""


def read_record(path: Path) -> dict[str, Any]:
    try:
        record = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RecordError(f"{path}: not a readable record ({exc.__class__.__name__}: {exc})") from None
    if not isinstance(record, dict) or "schema_version" not in record:
        raise RecordError(f"{path}: not a run record (no schema_version)")
    if record["schema_version"] != SCHEMA_VERSION:
        raise RecordError(f"{path}: schema version {record['schema_version']!r} is not one this xlt reads "
                          f"({SCHEMA_VERSION}); upgrade xlt or re-run")
    for key in ("run_id", "status", "spec", "metrics"):
        if key not in record:
            raise RecordError(f"{path}: record lacks {key!r}")
    return record


@dataclass
class Records:
    records: list[dict[str, Any]] = field(default_factory=list)
    paths: list[Path] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)   # one line per skipped file, naming it


def load_records(results_dir: Path | str) -> Records:
    """Every readable record under `results_dir/runs`, sorted by creation time; unreadable ones reported."""
    out = Records()
    runs = Path(results_dir) / "runs"
    if not runs.is_dir():
        return out
    found = []
    for path in sorted(runs.rglob("*.json")):
        try:
            found.append((path, read_record(path)))
        except RecordError as exc:
            out.problems.append(str(exc))
    found.sort(key=lambda pr: pr[1].get("created_at", ""))
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


def load_predictions(record_file: Path) -> pd.DataFrame | None:
    path = predictions_path(Path(record_file))
    return pd.read_parquet(path) if path.exists() else None


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
                    rows.append(dict(run_id=r["run_id"], task=spec["task"], model=r.get("model", {}).get("name")
                                     or spec["model"], seed=spec["seed"], status=r["status"], split=split,
                                     lang=lang, metric=metric, value=value, n=values.get("n"),
                                     created_at=r.get("created_at")))
    columns = ["run_id", "task", "model", "seed", "status", "split", "lang", "metric", "value", "n", "created_at"]
    return pd.DataFrame(rows, columns=columns)


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
               data: dict | None = None) -> dict[str, Any]:
    if status not in ("completed", "failed"):
        raise ValueError(f"status must be completed or failed, not {status!r}")
    return {"schema_version": SCHEMA_VERSION, "run_id": spec.run_id, "status": status, "spec": spec.to_dict(),
            "model": model or {"name": spec.model}, "task": task or {"name": spec.task},
            "metrics": metrics or {}, "selection": selection or {}, "timing": timing or {}, "env": env or {},
            "data": data or {}, "flags": flags or [], "error": error, "created_at": now_iso()}
