"""One run, wired: task + data + model + train + evaluate -> a RunRecord and its predictions.

    outcome = execute(spec, data_dir="../shared/data", quiet=True)   # RunOutcome(record, predictions)
    done = run(spec, results_dir="results")                          # skip / execute / write the record

`execute` is the ONE place that wires the steps (DESIGN.md). It never raises for a failed run: any exception
(a user error such as an unknown model, a NaN loss, an out-of-memory, a bug) comes back as a record with
status "failed" and `error = {type, message, traceback_tail, stage}`, stage being "setup" (nothing trained),
"train" or "evaluate"; its predictions are None. Only KeyboardInterrupt and other BaseExceptions that are
not Exceptions (SystemExit, a simulated kill in the tests) propagate. `execute` writes no record; with a
`results_dir` it writes training checkpoints under `<results_dir>/checkpoints/<task>/<model>/<run_id>/`, and
with `resume=True` continues from the last one there.

`run` decides skip/force around `execute`: a completed record for the spec's run_id is returned untouched
(`skipped=True`) unless `force`; otherwise it executes and writes the record (and predictions) atomically
with `results.write_run`. Failed records are written too, except for a "setup" failure (nothing ran) and
except over an existing completed record (a forced re-run that fails never destroys a good result). After a
completed run its checkpoints are deleted.

The zero-shot protocol: train on the task's train split in its source language, select the step on the
source language's dev split (nothing else is passed to the training loop), then evaluate every language on
every `eval_splits` split that can be read. With local data (`--data-dir`) a split without files (XNLI's
test split in ../shared/data) is skipped and recorded under `data.skipped`; `data.evaluated` lists what ran.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import pandas as pd

from xlt.errors import XltError
from xlt.results import (DEFAULT_RESULTS_DIR, completed_record, environment, new_record, predictions_to_bytes,
                         spec_record_path, write_run)
from xlt.spec import RunSpec

Event = dict[str, Any]
DEFAULT_CHECKPOINT_EVERY = 500


@dataclass
class RunOutcome:
    record: dict[str, Any]
    predictions: pd.DataFrame | None      # columns split, lang, idx, label, pred; None for a failed run


@dataclass
class RunResult:
    path: Path | None                     # the record on disk (None: not written, see `run`)
    record: dict[str, Any]
    skipped: bool = False                 # a completed record existed and was returned as it is
    predictions: pd.DataFrame | None = None

    @property
    def ok(self) -> bool:
        return self.record["status"] == "completed"


def checkpoint_dir(results_dir: Path | str, spec: RunSpec) -> Path:
    return Path(results_dir) / "checkpoints" / spec.task / spec.model_slug / spec.run_id


def _effective_data_dir(spec: RunSpec, data_dir: Path | str | None) -> Path | None:
    ddir = data_dir if data_dir is not None else (os.environ.get("XLT_DATA_DIR") or None)
    if spec.data_source == "local" and ddir is None:
        raise XltError("this spec reads local data (data_source='local') but no data directory was given; "
                       "pass --data-dir DIR or set XLT_DATA_DIR")
    if spec.data_source == "hub" and ddir is not None:
        raise XltError(f"a data directory is set ({ddir}) but the spec says data_source='hub'; build the spec "
                       "with data_source='local' (xlt run does so for --data-dir) or unset XLT_DATA_DIR")
    return Path(ddir) if ddir is not None else None


def _local_revision(origins: list[str]) -> str:
    """A content hash of the local files read, standing in for a hub revision."""
    h = hashlib.sha256()
    for origin in sorted(set(origins)):
        path = Path(origin)
        h.update(path.name.encode())
        if path.is_file():
            with open(path, "rb") as fh:
                for chunk in iter(lambda: fh.read(1 << 20), b""):
                    h.update(chunk)
    return "local-sha256:" + h.hexdigest()[:16]


def _error(exc: BaseException, stage: str) -> dict[str, Any]:
    tail = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)[-6:])
    err = {"type": type(exc).__name__, "message": str(exc), "traceback_tail": tail[-4000:], "stage": stage}
    if getattr(exc, "step", None) is not None:
        err["step"] = exc.step
    return err


def execute(spec: RunSpec, *, data_dir: Path | str | None = None, results_dir: Path | str | None = None,
            device: str | None = None, quiet: bool = False, resume: bool = False,
            progress: Callable[[Event], None] | None = None, tasks_dir: Path | str | None = None,
            cache_dir: Path | str | None = None, checkpoint_every: int = DEFAULT_CHECKPOINT_EVERY,
            on_step: Callable[[int], None] | None = None) -> RunOutcome:
    """Run `spec` end to end and return its record and predictions (see the module docstring).

    progress: a callback receiving every event (dicts with an "event" key: train_start, step, dev, checkpoint,
    eval_start, eval_batch, eval_end, ...); without one and unless `quiet`, rich progress bars on stderr.
    on_step(step) is called after every optimizer step (tests use it to simulate a kill).
    """
    reporter = None
    if progress is None and not quiet:
        reporter = RichProgress()
        progress = reporter
    try:
        return _execute(spec, data_dir=data_dir, results_dir=results_dir, device=device, resume=resume,
                        emit=progress or (lambda event: None), tasks_dir=tasks_dir, cache_dir=cache_dir,
                        checkpoint_every=checkpoint_every, on_step=on_step)
    finally:
        if reporter is not None:
            reporter.close()


def _execute(spec: RunSpec, *, data_dir, results_dir, device, resume, emit, tasks_dir, cache_dir,
             checkpoint_every, on_step) -> RunOutcome:
    import torch

    from xlt import data as xdata
    from xlt import evaluate as xeval
    from xlt import train as xtrain
    from xlt.models import load_classifier
    from xlt.tasks import available_splits, get_task, load_split

    hp = spec.hparams
    stage = "setup"
    dev_name = str(device or "auto")
    info: dict[str, Any] = {"model": {"name": spec.model}, "task": {"name": spec.task}, "data": {}, "flags": [],
                            "env": {}}
    try:
        dev = xtrain.resolve_device(device)
        dev_name = str(dev)
        ddir = _effective_data_dir(spec, data_dir)
        task = get_task(spec.task, tasks_dir)
        info["task"] = {"name": task.name, "version": task.version, "type": task.type,
                        "source_lang": task.source_lang, "languages": list(task.languages),
                        "label_names": list(task.label_names), "primary_metric": task.primary_metric,
                        "metrics": list(task.metrics)}

        # The model first (seeded, so a freshly initialised head is the same for the same seed).
        xtrain.seed_everything(spec.seed)
        emit({"event": "stage", "stage": "load model", "model": spec.model})
        clf = load_classifier(spec.model, task.num_labels, impl=spec.impl,
                              gradient_checkpointing=hp.gradient_checkpointing)
        minfo = clf.info
        precision = xtrain.resolve_precision(spec.precision, dev, mdeberta=xtrain.is_mdeberta(
            spec.model, minfo.family, (minfo.config or {}).get("vocab_size")))
        info["model"] = {"name": minfo.name, "hub_id": minfo.hub_id, "family": minfo.family, "impl": clf.impl,
                         "parameters": xtrain.count_parameters(clf.model), "load_report": clf.load_report}

        # Data: source-language train and dev; every readable (eval split, language).
        emit({"event": "stage", "stage": "load data", "task": task.name})
        src = task.source_lang
        train_split = load_split(task, task.train_split, src, ddir).head(spec.max_train_samples)
        dev_split = load_split(task, task.dev_split, src, ddir).head(spec.max_eval_samples)
        available = available_splits(task, ddir, list(task.eval_splits))
        eval_data, skipped = {}, {}
        for split in task.eval_splits:
            langs = available.get(split, ())
            missing = [lang for lang in task.languages if lang not in langs]
            if missing:
                skipped[split] = missing
            for lang in task.languages:
                if lang not in langs:
                    continue
                eval_data[(split, lang)] = dev_split if (split, lang) == (task.dev_split, src) else \
                    load_split(task, split, lang, ddir).head(spec.max_eval_samples)
        if not eval_data:
            raise XltError(f"no evaluation split of task {task.name!r} can be read (looked for "
                           f"{', '.join(task.eval_splits)}); check --data-dir")
        all_splits = [train_split, dev_split, *eval_data.values()]
        revisions = sorted({s.revision for s in all_splits if s.revision})
        data_revision = (spec.data_revision or ", ".join(revisions)) if ddir is None else \
            _local_revision([s.origin for s in all_splits])
        evaluated = list(dict.fromkeys(split for split, _ in eval_data))
        info["data"] = {
            "train": {"split": task.train_split, "lang": src, "n": len(train_split), "origin": train_split.origin},
            "selection": {"split": task.dev_split, "lang": src, "n": len(dev_split), "origin": dev_split.origin},
            "evaluated": evaluated, "skipped": skipped,
            "max_train_samples": spec.max_train_samples, "max_eval_samples": spec.max_eval_samples}
        info["env"] = environment(dev_name, data_revision) | {"precision": precision,
                                                             "torch_threads": torch.get_num_threads()}
        for split, langs in skipped.items():
            info["flags"].append(f"split_not_evaluated:{split}/" + ",".join(langs))

        emit({"event": "stage", "stage": "featurize"})
        tok = clf.tokenizer
        train_feats = xdata.featurize(train_split, tok, hp.max_seq_len, cache_dir=cache_dir)
        eval_feats = {key: xdata.featurize(split, tok, hp.max_seq_len, cache_dir=cache_dir)
                      for key, split in eval_data.items()}
        dev_feats = eval_feats.get((task.dev_split, src))
        if dev_feats is None:
            dev_feats = xdata.featurize(dev_split, tok, hp.max_seq_len, cache_dir=cache_dir)

        # Training: selection sees the source-language dev set only.
        stage = "train"
        primary = task.primary_metric

        def dev_eval(model) -> float:
            return xeval.dev_score(model, dev_feats, primary, batch_size=hp.eval_batch_size, device=dev,
                                   precision=precision)

        per_step = hp.per_step_batch

        def train_batches(epoch: int):
            return xdata.batches(train_feats, per_step, shuffle=True, seed=spec.seed * 100_003 + epoch)

        ckpt_dir = checkpoint_dir(results_dir, spec) if results_dir is not None else None
        result = xtrain.fit(clf.model, train_batches, xdata.num_batches(train_feats, per_step), hp,
                            seed=spec.seed, device=dev, precision=precision, dev_eval=dev_eval,
                            sift_layer=clf.embedding_layernorm if hp.sift else None, checkpoint_dir=ckpt_dir,
                            checkpoint_every=checkpoint_every, resume=resume, on_event=emit, on_step=on_step)
        if result.resumed_from_step is not None:
            info["flags"].append(f"resumed_from_step:{result.resumed_from_step}")

        # Evaluation of every language with the selected state.
        stage = "evaluate"
        ev = xeval.evaluate_splits(clf.model, eval_feats, list(task.metrics), batch_size=hp.eval_batch_size,
                                   device=dev, precision=precision, on_event=emit)
        info["flags"] += [f"collapsed_predictions:{key}" for key in ev.collapsed]
        selection = {"criterion": f"{task.dev_split}/{src}/{primary}", "split": task.dev_split, "lang": src,
                     "metric": primary, "best_step": result.best_step, "best_value": result.best_value,
                     "total_steps": result.steps, "history": result.history}
        timing = {"train_s": round(result.train_s, 3), "eval_s": round(ev.seconds, 3),
                  "train_tokens": result.train_tokens, "train_tokens_per_s": round(result.tokens_per_s, 1),
                  "eval_examples": ev.examples, "eval_examples_per_s": round(ev.examples_per_s, 1),
                  "final_train_loss": result.losses[-1] if result.losses else None}
        record = new_record(spec, status="completed", metrics=ev.metrics, selection=selection, timing=timing,
                            env=info["env"], model=info["model"], task=info["task"], flags=info["flags"],
                            data=info["data"])
        emit({"event": "done", "status": "completed"})
        return RunOutcome(record, ev.predictions)
    except Exception as exc:  # noqa: BLE001 - every failure becomes a failed record (module docstring)
        if not info["env"]:
            info["env"] = environment(dev_name, spec.data_revision)
        record = new_record(spec, status="failed", env=info["env"], model=info["model"], task=info["task"],
                            flags=info["flags"], error=_error(exc, stage), data=info["data"])
        emit({"event": "done", "status": "failed", "error": str(exc)})
        return RunOutcome(record, None)


def run(spec: RunSpec, *, data_dir: Path | str | None = None, results_dir: Path | str | None = None,
        device: str | None = None, quiet: bool = False, force: bool = False, resume: bool = False,
        progress: Callable[[Event], None] | None = None, tasks_dir: Path | str | None = None,
        cache_dir: Path | str | None = None, checkpoint_every: int = DEFAULT_CHECKPOINT_EVERY,
        on_step: Callable[[int], None] | None = None) -> RunResult:
    """Skip a completed run (unless `force`), else execute it and write its record (module docstring)."""
    results_dir = Path(results_dir) if results_dir is not None else DEFAULT_RESULTS_DIR
    existing = completed_record(results_dir, spec)
    if existing is not None and not force:
        return RunResult(spec_record_path(results_dir, spec), existing, skipped=True)
    outcome = execute(spec, data_dir=data_dir, results_dir=results_dir, device=device, quiet=quiet,
                      resume=resume, progress=progress, tasks_dir=tasks_dir, cache_dir=cache_dir,
                      checkpoint_every=checkpoint_every, on_step=on_step)
    record = outcome.record
    if record["status"] == "failed" and (record["error"].get("stage") == "setup" or existing is not None):
        return RunResult(None, record, predictions=None)
    data = None
    if outcome.predictions is not None:
        data = predictions_to_bytes(outcome.predictions)
        # lets a reader check that the parquet beside a record is the one it was written with
        record["predictions"] = {"sha256": hashlib.sha256(data).hexdigest(), "rows": len(outcome.predictions)}
    path = write_run(results_dir, record, data)
    if record["status"] == "completed":
        shutil.rmtree(checkpoint_dir(results_dir, spec), ignore_errors=True)
    return RunResult(path, record, predictions=outcome.predictions)


def resumable_step(results_dir: Path | str, spec: RunSpec) -> int | None:
    """The step of the last training checkpoint of this spec, if one exists (for a --resume hint)."""
    from xlt.train import CHECKPOINT_FILE

    path = checkpoint_dir(results_dir, spec) / CHECKPOINT_FILE
    if not path.exists():
        return None
    try:
        import torch
        return int(torch.load(path, map_location="cpu", weights_only=False)["result"]["steps"])
    except Exception:  # noqa: BLE001 - a damaged checkpoint is simply not resumable
        return None


class RichProgress:
    """Rich progress bars on stderr: training (loss, lr, tokens/s) and evaluation per language."""

    def __init__(self, console=None):
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.console = console or Console(stderr=True)
        self.progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TimeElapsedColumn(), TextColumn("{task.fields[info]}"), console=self.console,
                                 transient=False)
        self.train_task = None
        self.eval_tasks: dict[tuple[str, str], Any] = {}
        self.started = False

    def _start(self) -> None:
        if not self.started:
            self.progress.start()
            self.started = True

    def __call__(self, event: Event) -> None:
        kind = event.get("event")
        if kind == "train_start":
            self._start()
            self.train_task = self.progress.add_task("train", total=event["total_steps"],
                                                     completed=event.get("step", 0),
                                                     info=f"{event['device']} {event['precision']}")
        elif kind == "step" and self.train_task is not None:
            self.progress.update(self.train_task, completed=event["step"],
                                 info=f"loss {event['loss']:.4f}  lr {event['lr']:.2e}  "
                                      f"{event['tokens_per_s']:.0f} tok/s")
        elif kind == "dev" and self.train_task is not None:
            self.progress.console.print(f"step {event['step']}: dev {event['value']:.4f} "
                                        f"(best {event['best_value']:.4f} at step {event['best_step']})",
                                        highlight=False)
        elif kind == "resumed":
            self.console.print(f"resumed from the checkpoint at step {event['step']}", highlight=False)
        elif kind == "eval_start":
            self._start()
            key = (event["split"], event["lang"])
            self.eval_tasks[key] = self.progress.add_task(f"eval {key[0]}/{key[1]}", total=event["total"], info="")
        elif kind == "eval_batch":
            task = self.eval_tasks.get((event["split"], event["lang"]))
            if task is not None:
                self.progress.advance(task, event["n"])
        elif kind == "eval_end":
            task = self.eval_tasks.get((event["split"], event["lang"]))
            if task is not None:
                values = event["metrics"]
                shown = "  ".join(f"{k} {v:.4f}" for k, v in values.items() if k != "n")
                self.progress.update(task, info=shown)

    def close(self) -> None:
        if self.started:
            self.progress.stop()
            self.started = False


__all__ = ["execute", "run", "RunOutcome", "RunResult", "checkpoint_dir", "resumable_step", "RichProgress",
           "DEFAULT_CHECKPOINT_EVERY"]
