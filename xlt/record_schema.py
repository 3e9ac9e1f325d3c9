"""The run record's schema (version 2), checked on every read, and the upgrade of version 1 records.

`record_problem(record)` is the one check every reader relies on (xlt.results.read_record, the reports): it
names the first field that breaks the schema, or returns None. `upgrade(record)` gives a version 1 record
(written before records carried metric formulas) what version 2 added. The schema itself is documented in
xlt/results.py's docstring.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import math
from typing import Any, Literal, Mapping, Optional

from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model, field_validator

from xlt import formulas
from xlt.errors import XltError
from xlt.spec import Hyperparams

SCHEMA_VERSION = 2
READABLE_VERSIONS = (1, 2)                          # version 1 records are upgraded on read (`upgrade`)


# --- the record schema, checked on every read ----------------------------------------------------------

MAX_RECORD_DEPTH = 32   # a record is about 5 levels deep; far deeper is not a record (and would exhaust the stack)
_STATUSES = ("completed", "failed")


class _Block(BaseModel):
    # strict: "1" is not a seed and 12345 is not a date; extra keys are allowed (newer xlt may add some)
    model_config = ConfigDict(strict=True, extra="allow")


# Hyperparameters are typed as xlt.spec.Hyperparams declares them: "2e-5" is not a learning rate (a string would
# make the same model two rows of a table). Keys a newer xlt adds are allowed.
_HparamsBlock = create_model("_HparamsBlock", __base__=_Block, **{
    f.name: (Optional[{"float": float, "int": int, "bool": bool, "str": str}[str(f.type)]], None)
    for f in dataclasses.fields(Hyperparams)})


class _SpecBlock(_Block):
    model: str
    task: str
    seed: int
    hparams: _HparamsBlock = _HparamsBlock()
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


def upgrade(record: dict[str, Any]) -> dict[str, Any]:
    """A valid record in the current schema (version 2). A version 1 record (written before this version) gets
    what version 2 added: `steps` (unknown: {}), and in its task block the report metrics, example unit and
    `metric_info` of the task type it names, when that type is installed here (else its numbers still show,
    without significance tests). It keeps `migrated_from: 1`; its file is never rewritten."""
    if record.get("schema_version") != 1:
        return record
    record = {**record, "schema_version": SCHEMA_VERSION, "migrated_from": 1, "steps": record.get("steps") or {}}
    task = dict(record.get("task") or {})
    ttype = installed_type(task.get("type"))
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


def installed_type(name: str | None):
    """The task type `name` when this installation has it (for version 1 records only), else None."""
    try:
        from xlt.tasktypes import FIRST_TYPE, get_task_type

        return get_task_type(name or FIRST_TYPE)
    except (XltError, ImportError):
        return None


def is_count(key: str) -> bool:
    """Keys of a per-language metrics dict that are counts, not metrics: "n" and "n_<unit>"."""
    return key == "n" or key.startswith("n_")
