"""The training checkpoint's files: written without ever stopping a run, checked before a resume starts.

A run's folder holds `last.pt` (model, optimizer, scheduler, RNG states, data position) and `best.pt` (the
selected weights). Both are optional to the run itself, which keeps the selected weights in memory: a file
that cannot be written (a full disk, a folder gone read-only) is a warning naming the folder, the bytes the
file needs and the bytes free, and training goes on. `write_checkpoint` raises `CheckpointNotWritten` for the
loop to turn into that warning. `check_resumable(folder)` loads every file a `--resume` would load, with
`weights_only=True` (never unpickling code), before any work starts: a poisoned or truncated `best.pt` is
found then, not after the model is loaded and the data featurised.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import torch

from xlt.atomic import atomic_path
from xlt.errors import XltError

CHECKPOINT_FILE = "last.pt"
BEST_FILE = "best.pt"
_RESULT_KEYS = ("steps", "best_step", "best_value", "history", "losses", "sift_losses", "train_s", "train_tokens")


class CheckpointNotWritten(XltError):
    """A checkpoint file could not be written; the message names the folder, the bytes needed and free."""


def state_bytes(obj: Any) -> int:
    """The bytes of the tensors in a (nested) checkpoint: about what torch.save writes."""
    if torch.is_tensor(obj):
        return obj.numel() * obj.element_size()
    if isinstance(obj, dict):
        return sum(state_bytes(v) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return sum(state_bytes(v) for v in obj)
    return 0


def _mb(n: int) -> str:
    return f"{n / 2**20:,.1f} MB"


def write_checkpoint(obj: Any, path: Path) -> None:
    """torch.save `obj` to `path` atomically (the previous file stays whole if this write fails)."""
    try:
        with atomic_path(path) as tmp:
            torch.save(obj, tmp)
    except (OSError, RuntimeError) as exc:   # a full disk reaches torch's zip writer as a RuntimeError
        why = exc.strerror if isinstance(exc, OSError) and exc.strerror else \
            f"torch's writer failed: {str(exc).splitlines()[0][:160]}"
        try:
            free = f"{_mb(shutil.disk_usage(path.parent).free)} free"
        except OSError:
            free = "free space unknown"
        raise CheckpointNotWritten(f"could not write the training checkpoint {path.name} into {path.parent} "
                                   f"({why}): it needs about {_mb(state_bytes(obj))}, {free} there") from None


def load_checkpoint(path: Path) -> dict[str, Any]:
    """A training checkpoint, loaded with weights_only=True; one that needs more is refused, not run."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - pickle errors come in many types
        raise XltError(f"cannot load the training checkpoint {path} safely ({type(exc).__name__}: "
                       f"{str(exc).splitlines()[0][:200] if str(exc) else ''}); it was not written by this xlt or "
                       "was tampered with. Delete its folder and run without --resume") from None


def check_resumable(folder: Path) -> int | None:
    """The step a `--resume` would continue from (None: no checkpoint), after loading every file it would load
    (last.pt, and best.pt when a step was selected) the safe way and checking what they hold."""
    path = Path(folder) / CHECKPOINT_FILE
    if not path.exists():
        return None
    ckpt = load_checkpoint(path)
    try:
        result = ckpt["result"]
        steps, best_step = int(result["steps"]), result["best_step"]
        missing = [k for k in ("model", "optimizer", "scheduler", "scaler", "rng", "epoch", "position") if k not in ckpt]
        missing += [f"result.{k}" for k in _RESULT_KEYS if k not in result]
    except (KeyError, TypeError, ValueError):
        raise XltError(f"the training checkpoint {path} is not one this xlt wrote (no step count); delete its "
                       "folder to start over") from None
    if missing:
        raise XltError(f"the training checkpoint {path} lacks {', '.join(missing)}; it is not one this xlt wrote. "
                       "Delete its folder to start over")
    if best_step is not None:
        best = Path(folder) / BEST_FILE
        if not best.exists():
            raise XltError(f"the training checkpoint {path} selected step {best_step} but {best} is missing; "
                           "delete the folder to start over")
        weights = load_checkpoint(best)
        if not isinstance(weights, dict) or not all(torch.is_tensor(v) for v in weights.values()):
            raise XltError(f"{best} holds no model weights; delete the folder to start over")
    return steps


__all__ = ["CHECKPOINT_FILE", "BEST_FILE", "CheckpointNotWritten", "state_bytes", "write_checkpoint",
           "load_checkpoint", "check_resumable"]
