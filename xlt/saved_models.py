"""Models a run fine-tuned, kept for later: `xlt run --save-model` writes them, `xlt eval --model RUN_ID` reads them.

    info = save_model(loaded, results_dir, spec, label_names)   # {"path": "models/xnli/<model>/<run_id>", "bytes"}
    folder = find_saved_model(results_dir, "3f2a9c")            # a run id or a unique prefix of one
    record = saved_model_record(folder)                          # the run that saved it (None: not found)

The selected model and its tokenizer go to `<results>/models/<task>/<model>/<run_id>/`, a folder transformers'
`from_pretrained` loads (config.json with the task's labels as id2label, model.safetensors, tokenizer files) and
any `--model DIR` accepts, with a README.md saying where it came from (README files are not part of a
checkpoint's fingerprint). It is written into a temp folder beside it and renamed into place, so a folder under
that name is always complete. The run's record keeps `saved_model: {path, bytes}`, the path relative to the
results folder (the folder can move).
"""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path
from typing import Any, Sequence

from xlt.errors import XltError
from xlt.names import inside
from xlt.results import RecordError, read_record, record_path

MODELS = "models"


def model_dir(results_dir: Path | str, spec) -> Path:
    return inside(results_dir, Path(results_dir) / MODELS / spec.task / spec.model_slug / spec.run_id)


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in Path(folder).rglob("*") if p.is_file())


def save_model(loaded, results_dir: Path | str, spec, label_names: Sequence[str] | None,
               display_name: str | None = None) -> dict[str, Any]:
    """Write `loaded` (model + tokenizer) for run `spec` (module docstring); an earlier copy is replaced."""
    target = model_dir(results_dir, spec)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.parent / f".{spec.run_id}.{uuid.uuid4().hex[:8]}.tmp"
    try:
        tmp.mkdir()   # (not mkdtemp: its 0700 would make the saved model private)
        loaded.save(tmp, label_names=label_names)
        (tmp / "README.md").write_text(
            f"# {display_name or spec.model_slug} fine-tuned on {spec.task} by xlt\n\n"
            f"Run `{spec.run_id}` (`xlt report show {spec.run_id}`): model `{spec.model}`, task `{spec.task}`, seed "
            f"{spec.seed}, protocol {spec.protocol}; the state selected on the source language's dev set.\n"
            f"Evaluate it on another task with `xlt eval --model {spec.run_id} --task TASK`.\n", encoding="utf-8")
        if target.exists():
            shutil.rmtree(target)
        tmp.rename(target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return {"path": str(target.relative_to(results_dir)), "bytes": folder_bytes(target)}


def looks_like_run_id(text: str) -> bool:
    return 4 <= len(text) <= 12 and all(c in "0123456789abcdef" for c in text)


def find_saved_model(results_dir: Path | str, run_id: str) -> Path:
    """The folder of run `run_id`'s saved model (a unique prefix is enough); XltError when no run saved one."""
    root = Path(results_dir) / MODELS
    hits = sorted(p for p in root.glob(f"*/*/{run_id}*") if p.is_dir()) if root.is_dir() else []
    if not hits:
        raise XltError(f"no saved model of a run {run_id!r} under {root} (nor a checkpoint folder or model of that "
                       "name); a run keeps its model only with `xlt run ... --save-model` (re-run it with "
                       "--save-model --force), or pass --results-dir where it was saved")
    if len({p.name for p in hits}) > 1:
        raise XltError(f"run id prefix {run_id!r} matches saved models of several runs "
                       f"({', '.join(sorted({p.name for p in hits}))}); give more characters")
    return hits[0]


def saved_model_record(folder: Path | str) -> dict[str, Any] | None:
    """The record of the run that saved the model in `folder` (`<results>/models/<task>/<model>/<run_id>`), or
    None when the folder is not laid out so or the record cannot be read."""
    folder = Path(folder).resolve()
    if len(folder.parts) < 5 or folder.parent.parent.parent.name != MODELS or not looks_like_run_id(folder.name):
        return None
    results_dir = folder.parent.parent.parent.parent
    try:
        return read_record(record_path(results_dir, folder.parent.parent.name, folder.parent.name, folder.name))
    except (RecordError, OSError):
        return None


def saved_model_name(record: dict[str, Any]) -> str:
    """A name for a saved model in reports: `<the run's model name>-<its task>` (e.g. mdeberta-v3-base-xnli)."""
    model = record.get("model") or {}
    return f"{model.get('display_name') or model.get('name') or record['spec']['model']}-{record['spec']['task']}"


__all__ = ["save_model", "model_dir", "find_saved_model", "saved_model_record", "saved_model_name",
           "looks_like_run_id", "folder_bytes"]
