"""One run, wired: task + data + model + train + evaluate -> a RunRecord and its predictions.

    outcome = execute(spec, task=task, data_dir="../shared/data")   # RunOutcome(record, predictions)
    done = run(spec, task=task, results_dir="results")               # skip / execute / write the record

`execute` is the ONE place that wires the steps (docs/architecture.md), as named steps over one `RunState`:
set up (task, device, model with the task type's head), read data, featurize, train, select, evaluate; `run`
then writes. What differs between kinds of task comes from the task type (`xlt.tasktypes`): the head and its
width, features, loss, decoding, metrics, and its plan: a type that does not train (`TaskType.trains`) has its
train and select steps skipped, visibly (an event, `steps` in the record) and its record says `selection:
null`; so has a spec whose protocol evaluates a checkpoint as it is (`xlt eval`: `RunSpec.fine_tunes` is
False), whose set up loads the checkpoint's own trained head with its labels matched to the task's by name
(xlt.checkpoint_eval) instead of the type's fresh head. With `save_model` the selected model is kept under
`<results_dir>/models/` (xlt.saved_models; step "save model"). Nothing here asks which type it runs.
`execute` never raises for a failed run: any exception (a user error such as an unknown model, a NaN loss, an
out-of-memory, a bug) comes back as a record with status
"failed" and `error = {type, message, traceback_tail, stage}`, stage being "setup" (nothing trained), "train"
or "evaluate"; its predictions are None. Only KeyboardInterrupt and other BaseExceptions that are not
Exceptions (SystemExit, a simulated kill in the tests) propagate. `execute` writes no record; with a
`results_dir` it writes training checkpoints under `<results_dir>/checkpoints/<task>/<model>/<run_id>/`, and
with `resume=True` continues from the last one there. Progress goes to the `progress` callback (the CLI
renders it; xlt.cli.progress).

`run` checks that the results folder can be written (an XltError before any work), takes the run's lock (one
process per run id, `xlt.runlock`), then decides skip/force around `execute`: a completed record for the
spec's run_id is returned untouched (`skipped=True`) unless `force`; otherwise it executes and writes the
record (and predictions) atomically with `results.write_run`. Failed records are written too, except for a
"setup" failure (nothing ran) and except over an existing completed record (a forced re-run that fails never
destroys a good result). After a completed run its checkpoints are deleted.

The zero-shot protocol: train on the task's train split in its source language, select the step on the
source language's dev split (nothing else is passed to the training loop), then evaluate every language on
every `eval_splits` split that can be read. With local data (`--data-dir`) a split without files (XNLI's
test split in ../shared/data) is skipped, warned about once per split naming the files looked for, and
recorded under `data.skipped` and `data.looked_for`; `data.evaluated` lists what ran. What is read is planned
first (`xlt.tasks.sources.plan_data`): a missing source-language train/dev file or a missing file a `files:`
source names is an error. A spec carries the identity of its data, task file and checkpoint
(`xlt.recipes.build_spec`); when what is found differs, the run is refused before it trains.
"""

from __future__ import annotations

import shutil
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import pandas as pd

from xlt.errors import XltError
from xlt.names import inside
from xlt.recipes import effective_data_dir, evaluated_languages, evaluated_splits
from xlt.results import (DEFAULT_RESULTS_DIR, RecordWriteError, check_writable, completed_record, environment,
                         keep_unsaved, new_record, predictions_to_bytes, spec_record_path, write_run)
from xlt.spec import RunSpec

Event = dict[str, Any]
DEFAULT_CHECKPOINT_EVERY = 500


@dataclass
class RunOutcome:
    record: dict[str, Any]
    predictions: pd.DataFrame | None      # split, lang, idx + the type's prediction columns; None if failed


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
    return inside(results_dir, Path(results_dir) / "checkpoints" / spec.task / spec.model_slug / spec.run_id)


def error_info(exc: BaseException, stage: str | None = None) -> dict[str, Any]:
    """A failed record's `error`: type, message, the traceback's tail (and stage, step when known)."""
    tail = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)[-6:])
    err: dict[str, Any] = {"type": type(exc).__name__, "message": str(exc), "traceback_tail": tail[-4000:]}
    if stage is not None:
        err["stage"] = stage
    if getattr(exc, "step", None) is not None:
        err["step"] = exc.step
    return err


@dataclass
class RunState:
    """What the steps of one run build up, step by step."""

    spec: RunSpec
    emit: Callable[[Event], None]
    task: Any = None                        # the TaskSpec (resolved once per command; by name when not given)
    data_dir: Path | str | None = None
    results_dir: Path | str | None = None
    tasks_dir: Path | str | None = None
    cache_dir: Path | str | None = None
    device_name: str | None = None
    resume: bool = False
    checkpoint_every: int = DEFAULT_CHECKPOINT_EVERY
    on_step: Callable[[int], None] | None = None
    display_name: str | None = None         # the model's name in reports (`--name`); not part of the spec
    save_model: bool = False                # keep the selected model (`xlt run --save-model`; xlt.saved_models)
    stage: str = "setup"
    # built by the steps
    device: Any = None                      # xlt.device.Device: torch device and resolved precision
    ddir: Path | None = None
    ttype: Any = None
    loaded: Any = None                      # xlt.models.LoadedModel
    train: Any = None                       # SplitData of the source language's train split (types that train)
    dev: Any = None                         # SplitData of its dev split (selection)
    eval_data: dict = field(default_factory=dict)      # (split, lang) -> SplitData
    feats: dict = field(default_factory=dict)          # "train", "dev", (split, lang) -> Features
    fit: Any = None                         # xlt.train.TrainResult
    selection: dict | None = None           # the record's selection block (None: the type does not train)
    evaluation: Any = None                  # xlt.evaluate.Evaluation
    steps: dict = field(default_factory=dict)          # step name -> "ran" | "skipped: <why>"
    info: dict = field(default_factory=lambda: {"model": {}, "task": {}, "data": {}, "flags": [], "env": {}})


def task_info(task, ttype) -> dict[str, Any]:
    """The record's task block: everything a report shows about the task, so it reads no task file or type."""
    info = {"name": task.name, "version": task.version, "type": task.type, "description": task.description,
            "source_lang": task.source_lang, "languages": list(task.languages),
            "label_names": list(task.label_names), "primary_metric": task.primary_metric,
            "metrics": list(task.metrics), "eval_splits": list(task.eval_splits), "options": task.option_values,
            "report_metrics": [m for m in ttype.report_metrics if m in task.metrics] or [task.primary_metric],
            "example_unit": ttype.example_unit, "fingerprint": task.fingerprint,
            "reference": task.reference.name if task.reference else None}
    info["metric_info"] = ttype.metric_info(task, info)
    return info


def set_up(st: RunState) -> None:
    """Task and its type, device, and the model with the type's head (seeded: a fresh head is the same for
    the same seed). A spec made for other task-file contents or another checkpoint is refused."""
    import torch

    from xlt.device import Device, count_parameters, is_mdeberta, seed_everything
    from xlt.models import load_model
    from xlt.models.fingerprint import model_revision
    from xlt.spec import readable_model_name
    from xlt.tasks import get_task

    spec = st.spec
    st.task = task = st.task if st.task is not None else get_task(spec.task, st.tasks_dir)
    if task.name != spec.task:
        raise XltError(f"the spec is for task {spec.task!r} but task {task.name!r} was given")
    if spec.task_revision is not None and spec.task_revision != task.fingerprint:
        raise XltError(f"the task file of {task.name!r} ({task.path}) changed since this run's spec was made; build "
                       "the spec again (xlt run and xlt sweep do)")
    st.ddir = effective_data_dir(spec, st.data_dir)
    st.ttype = task.task_type
    st.info["task"] = task_info(task, st.ttype)
    seed_everything(spec.seed)
    st.emit({"event": "stage", "stage": "load model", "model": spec.model})
    labels = None
    if spec.fine_tunes:
        st.loaded = load_model(spec.model, st.ttype.head, st.ttype.num_outputs(task), impl=spec.impl,
                               gradient_checkpointing=spec.hparams.gradient_checkpointing,
                               **st.ttype.head_options(task, spec.hparams))
    else:   # the checkpoint's own trained head, its labels matched by name (protocol evaluate)
        from xlt.checkpoint_eval import load_own_head

        st.loaded, labels = load_own_head(spec, task, st.ttype, st.emit)
    if spec.model_revision is not None and spec.model_revision != model_revision(spec.model):
        raise XltError(f"the checkpoint {spec.model} changed since this run's spec was made (its files or hub "
                       "commit differ); build the spec again (xlt run and xlt sweep do)")
    minfo = st.loaded.info
    mdeberta = is_mdeberta(spec.model, minfo.family, (minfo.config or {}).get("vocab_size"))
    st.device = Device.resolve(st.device_name, spec.precision, mdeberta=mdeberta)
    shown = st.display_name or readable_model_name(minfo.hub_id if minfo.is_local else spec.model)
    st.info["model"] = {"name": minfo.name, "hub_id": minfo.hub_id, "display_name": shown, "family": minfo.family,
                        "impl": st.loaded.impl, "head": st.ttype.head, "revision": spec.model_revision,
                        "parameters": count_parameters(st.loaded.model), "load_report": st.loaded.load_report}
    if labels is not None:
        st.info["model"]["labels"] = labels
        st.info["flags"] += [f"{what}:{','.join(labels[key])}" for what, key in (
            ("labels_left_out", "unused_checkpoint_labels"), ("labels_never_predicted", "never_predicted"))
            if labels[key]]
    st.info["env"] = {"precision": st.device.precision, "precision_reason": st.device.reason,
                      "torch_threads": torch.get_num_threads()}
    st.emit({"event": "model_loaded", "report": st.loaded.load_report, "impl": st.loaded.impl})


def read_data(st: RunState) -> None:
    """What the run needs of the source language (train and dev to fine-tune a type that trains) and every readable
    (eval split, language). What is read is planned first (`xlt.tasks.sources.plan_data`); its identity must
    be the spec's `data_revision` when the spec has one, so a record never carries numbers from data other
    than its run id says."""
    from xlt.tasks.sources import load_split, plan_data

    spec, task = st.spec, st.task
    st.emit({"event": "stage", "stage": "load data", "task": task.name})
    src = task.source_lang
    languages = evaluated_languages(spec, task)
    splits = evaluated_splits(spec, task)
    plan = plan_data(task, st.ddir, languages, fine_tunes=spec.fine_tunes, splits=splits)
    if spec.data_revision is not None and plan.revision != spec.data_revision:
        raise XltError(f"the data of task {task.name!r} changed since this run's spec was made (it was "
                       f"{spec.data_revision}, it is {plan.revision}); build the spec again (xlt run does)")
    data: dict[str, Any] = {}
    if task.task_type.trains and spec.fine_tunes:
        st.train = load_split(task, task.train_split, src, st.ddir).head(spec.max_train_samples)
        st.dev = load_split(task, task.dev_split, src, st.ddir).head(spec.max_eval_samples)
        data["train"] = {"split": task.train_split, "lang": src, "n": len(st.train), "origin": st.train.origin}
        data["selection"] = {"split": task.dev_split, "lang": src, "n": len(st.dev), "origin": st.dev.origin}
    readable = set(plan.reads)
    for split in splits:
        for lang in (lang for lang in languages if (split, lang) in readable):
            same_as_dev = st.dev is not None and (split, lang) == (task.dev_split, src)
            st.eval_data[(split, lang)] = st.dev if same_as_dev else \
                load_split(task, split, lang, st.ddir).head(spec.max_eval_samples)
    for split, langs in plan.skipped.items():
        st.info["flags"].append(f"split_not_evaluated:{split}/" + ",".join(langs))
        st.emit({"event": "warning", "message": f"split {split} not evaluated for {len(langs)} language(s): "
                 f"no file {plan.looked_for[split]}"})
    if not st.eval_data:
        raise XltError(f"no evaluation split of task {task.name!r} can be read (looked for "
                       f"{'; '.join(plan.looked_for.values()) or ', '.join(splits)}); check --data-dir")
    st.info["data"] = {
        **data, "evaluated": list(dict.fromkeys(split for split, _ in st.eval_data)), "skipped": plan.skipped,
        "looked_for": plan.looked_for, "languages": languages, "max_train_samples": spec.max_train_samples,
        "max_eval_samples": spec.max_eval_samples}
    st.info["env"]["data_revision"] = plan.revision


def featurize(st: RunState) -> None:
    from xlt import data as xdata

    st.emit({"event": "stage", "stage": "featurize"})
    tok, hp = st.loaded.tokenizer, st.spec.hparams
    params = {key: getattr(hp, key) for key in st.ttype.feature_keys}

    def feats(split):
        return xdata.featurize(split, tok, params, task_type=st.ttype, cache_dir=st.cache_dir)

    if st.train is not None:
        st.feats["train"] = feats(st.train)
    for key, split in st.eval_data.items():
        st.feats[key] = feats(split)
    if st.dev is not None:
        dev_key = (st.task.dev_split, st.task.source_lang)
        st.feats["dev"] = st.feats[dev_key] if dev_key in st.feats else feats(st.dev)


def epoch_seed(seed: int, epoch: int) -> int:
    """The seed of one epoch's batch order: every epoch a different order, the same for the same run seed."""
    return seed * 100_003 + epoch


def train(st: RunState) -> None:
    """Fit on the source language; the selection criterion sees the source-language dev set only."""
    from xlt import data as xdata
    from xlt import evaluate as xeval
    from xlt import train as xtrain

    spec, hp, tt = st.spec, st.spec.hparams, st.ttype
    train_feats, dev_feats = st.feats["train"], st.feats["dev"]

    def dev_eval(model) -> float:
        return xeval.dev_score(model, dev_feats, st.task.primary_metric, split=st.dev, task_type=tt,
                               batch_size=hp.eval_batch_size, device=st.device)

    def train_batches(epoch: int):
        return xdata.batches(train_feats, hp.per_step_batch, shuffle=True, seed=epoch_seed(spec.seed, epoch),
                             collate_fn=tt.collate)

    ckpt_dir = checkpoint_dir(st.results_dir, spec) if st.results_dir is not None else None
    st.fit = xtrain.fit(st.loaded.model, train_batches, xdata.num_batches(train_feats, hp.per_step_batch), hp,
                        seed=spec.seed, device=st.device, dev_eval=dev_eval,
                        sift_layer=st.loaded.embedding_layernorm if hp.sift else None, checkpoint_dir=ckpt_dir,
                        checkpoint_every=st.checkpoint_every, resume=st.resume, on_event=st.emit,
                        on_step=st.on_step, loss_fn=tt.loss, sift_logits=tt.sift_logits, restore_best=False)
    st.info["flags"] += st.fit.warnings
    if st.fit.resumed_from_step is not None:
        st.info["flags"].append(f"resumed_from_step:{st.fit.resumed_from_step}")


def select(st: RunState) -> None:
    """The state at the best source-language dev score becomes the model evaluated (zero-shot selection)."""
    task, result = st.task, st.fit
    if result.best_state is not None:
        st.loaded.model.load_state_dict(result.best_state)
    st.selection = {"criterion": f"{task.dev_split}/{task.source_lang}/{task.primary_metric}",
                    "split": task.dev_split, "lang": task.source_lang, "metric": task.primary_metric,
                    "best_step": result.best_step, "best_value": result.best_value, "total_steps": result.steps,
                    "history": result.history}


def evaluate(st: RunState) -> None:
    """Every (split, language) with the selected state (or the pretrained one, for a type that does not train)."""
    from xlt import evaluate as xeval

    data = {key: (split, st.feats[key]) for key, split in st.eval_data.items()}
    st.loaded.model.to(st.device.torch_device)   # a model that was not trained has not been moved yet
    st.emit({"event": "eval_plan", "parts": len(data), "rows": sum(len(f) for _, f in data.values())})
    st.evaluation = xeval.evaluate_splits(st.loaded.model, data, st.ttype, list(st.task.metrics),
                                          batch_size=st.spec.hparams.eval_batch_size, device=st.device,
                                          on_event=st.emit)
    st.info["flags"] += [f"collapsed_predictions:{key}" for key in st.evaluation.collapsed]


def record(st: RunState) -> dict[str, Any]:
    result, ev = st.fit, st.evaluation
    timing = {"eval_s": round(ev.seconds, 3), "eval_examples": ev.examples, "eval_rows": ev.rows,
              "eval_examples_per_s": round(ev.examples_per_s, 1), **ev.throughput(st.ttype.example_unit)}
    if result is not None:
        timing |= {"train_s": round(result.train_s, 3), "train_tokens": result.train_tokens,
                   "train_tokens_per_s": round(result.tokens_per_s, 1),
                   "final_train_loss": result.losses[-1] if result.losses else None}
    env = environment(str(st.device), st.info["env"].get("data_revision")) | st.info["env"]
    rec = new_record(st.spec, status="completed", metrics=ev.metrics, selection=st.selection, timing=timing,
                     env=env, model=st.info["model"], task=st.info["task"], flags=st.info["flags"],
                     data=st.info["data"], steps=st.steps)
    if ev.calibration:
        rec["calibration"] = ev.calibration
    if st.info.get("saved_model"):
        rec["saved_model"] = st.info["saved_model"]
    return rec


def save_model(st: RunState) -> None:
    """Keep the selected model (`xlt.saved_models`); a model that cannot be written costs a warning, never the
    run's numbers."""
    from xlt.saved_models import save_model as write

    if st.results_dir is None:
        raise XltError("saving the model needs a results folder (results_dir)")
    try:
        st.info["saved_model"] = write(st.loaded, st.results_dir, st.spec, st.task.label_names or None,
                                       display_name=st.display_name)
    except OSError as exc:
        st.info["flags"].append("model_not_saved")
        st.emit({"event": "warning", "message": f"the model could not be saved ({exc.strerror or exc}); the "
                 "record is written without it"})


def _trains(st: RunState) -> str | None:
    """Why training and selection are skipped, or None when they run."""
    if not st.spec.fine_tunes:
        return f"protocol {st.spec.protocol}: the checkpoint's own head is evaluated as it is"
    return None if st.ttype.trains else f"type {st.ttype.name} does not train (it evaluates the model as loaded)"


def _saves(st: RunState) -> str | None:
    if not st.save_model:
        return "not asked (xlt run --save-model)"
    return None if st.selection is not None else "nothing was trained"


# (name, stage of a failure, the step, why it is skipped or None)
STEPS: tuple[tuple[str, str, Callable[[RunState], None], Callable[[RunState], str | None]], ...] = (
    ("set up", "setup", set_up, lambda st: None),
    ("read data", "setup", read_data, lambda st: None),
    ("featurize", "setup", featurize, lambda st: None),
    ("train", "train", train, _trains),
    ("select", "train", select, _trains),
    ("evaluate", "evaluate", evaluate, lambda st: None),
    ("save model", "evaluate", save_model, _saves),
)


def execute(spec: RunSpec, *, task: Any = None, data_dir: Path | str | None = None,
            results_dir: Path | str | None = None, device: str | None = None, resume: bool = False,
            progress: Callable[[Event], None] | None = None, tasks_dir: Path | str | None = None,
            cache_dir: Path | str | None = None, checkpoint_every: int = DEFAULT_CHECKPOINT_EVERY,
            on_step: Callable[[int], None] | None = None, display_name: str | None = None,
            quiet: bool = True, save_model: bool = False) -> RunOutcome:
    """Run `spec` end to end and return its record and predictions (see the module docstring).

    task: the spec's TaskSpec when the caller resolved it (else it is found by name in `tasks_dir`).
    progress: a callback receiving every event (dicts with an "event" key: stage, model_loaded, train_start,
    step, dev, warning, checkpoint, eval_plan, eval_start, eval_batch, eval_end, done). on_step(step) is called
    after every optimizer step (tests use it to simulate a kill). `display_name` is the model's name in
    reports (record model.display_name; default `spec.readable_model_name`); it is not part of the spec: it
    changes no number. `quiet` is accepted for the sweep's job signature; without `progress` nothing is shown.
    `save_model`: keep the selected model under `<results_dir>/models/` (xlt.saved_models; needs results_dir).
    """
    st = RunState(spec=spec, emit=progress or (lambda event: None), task=task, data_dir=data_dir,
                  results_dir=results_dir, tasks_dir=tasks_dir, cache_dir=cache_dir, device_name=device,
                  resume=resume, checkpoint_every=checkpoint_every, on_step=on_step, display_name=display_name,
                  save_model=save_model)
    try:
        for name, stage, step, skipped in STEPS:
            st.stage = stage
            why = skipped(st) if st.ttype is not None else None
            if why:
                st.steps[name] = f"skipped: {why}"
                st.emit({"event": "stage", "stage": name, "skipped": why})
                continue
            step(st)
            st.steps[name] = "ran"
        rec = record(st)
        st.emit({"event": "done", "status": "completed"})
        return RunOutcome(rec, st.evaluation.predictions)
    except Exception as exc:  # noqa: BLE001 - every failure becomes a failed record (module docstring)
        env = environment(str(st.device or device or "auto"), st.info["env"].get("data_revision",
                                                                                spec.data_revision))
        model = st.info["model"] or {"name": spec.model, "display_name": display_name}
        rec = new_record(spec, status="failed", env=env | st.info["env"], model=model,
                         task=st.info["task"] or {"name": spec.task}, flags=st.info["flags"],
                         error=error_info(exc, st.stage), data=st.info["data"], steps=st.steps)
        st.emit({"event": "done", "status": "failed", "error": str(exc)})
        return RunOutcome(rec, None)


def run(spec: RunSpec, *, task: Any = None, data_dir: Path | str | None = None,
        results_dir: Path | str | None = None, device: str | None = None, force: bool = False,
        resume: bool = False, progress: Callable[[Event], None] | None = None, tasks_dir: Path | str | None = None,
        cache_dir: Path | str | None = None, checkpoint_every: int = DEFAULT_CHECKPOINT_EVERY,
        on_step: Callable[[int], None] | None = None, display_name: str | None = None,
        quiet: bool = True, save_model: bool = False) -> RunResult:
    """Skip a completed run (unless `force`), else execute it and write its record (module docstring).

    A results folder that cannot be written is an XltError before any work; so is a second process running the
    same spec (`xlt.runlock`: one run at a time per run id). A record that cannot be written at the end (a full
    disk) is kept with its predictions in a temp folder, and RecordWriteError says where."""
    from xlt.runlock import run_lock

    results_dir = Path(results_dir) if results_dir is not None else DEFAULT_RESULTS_DIR
    check_writable(results_dir)
    with run_lock(checkpoint_dir(results_dir, spec), spec.run_id):
        existing = completed_record(results_dir, spec)
        if existing is not None and not force:
            return RunResult(spec_record_path(results_dir, spec), existing, skipped=True)
        outcome = execute(spec, task=task, data_dir=data_dir, results_dir=results_dir, device=device,
                          resume=resume, progress=progress, tasks_dir=tasks_dir, cache_dir=cache_dir,
                          checkpoint_every=checkpoint_every, on_step=on_step, display_name=display_name,
                          save_model=save_model)
        rec = outcome.record
        if rec["status"] == "failed" and (rec["error"].get("stage") == "setup" or existing is not None):
            return RunResult(None, rec, predictions=None)
        data = predictions_to_bytes(outcome.predictions) if outcome.predictions is not None else None
        try:
            path = write_run(results_dir, rec, data)
        except OSError as exc:
            raise _unsaved_error(results_dir, spec, rec, data, exc) from None
        if rec["status"] == "completed":
            shutil.rmtree(checkpoint_dir(results_dir, spec), ignore_errors=True)
        return RunResult(path, rec, predictions=outcome.predictions)


def _unsaved_error(results_dir: Path, spec: RunSpec, rec: dict[str, Any], data: bytes | None,
                   exc: OSError) -> RecordWriteError:
    """The error for a record that could not be written, after keeping it (and its predictions) elsewhere."""
    target = spec_record_path(results_dir, spec)
    why = exc.strerror or str(exc)
    try:
        kept = keep_unsaved(rec, data)
    except OSError as again:
        return RecordWriteError(f"could not write the record of run {spec.run_id} to {target} ({why}), nor keep it "
                                f"in a temp folder ({again.strerror or again}); free space and re-run (the training "
                                f"checkpoint is kept: add --resume)")
    what = "record and its predictions are" if data is not None else "record is"
    return RecordWriteError(f"could not write the record of run {spec.run_id} to {target} ({why}); the {what} "
                            f"kept in {kept}: move the files into {target.parent} once there is room")


def resumable_step(results_dir: Path | str, spec: RunSpec) -> int | None:
    """The step of the last training checkpoint of this spec, if one exists (for a --resume hint). A checkpoint
    that cannot be loaded safely (weights_only) is an XltError saying so; it is never unpickled."""
    from xlt.checkpoint_files import check_resumable

    return check_resumable(checkpoint_dir(results_dir, spec))   # every file a resume loads, loaded safely


__all__ = ["execute", "run", "RunOutcome", "RunResult", "RunState", "STEPS", "checkpoint_dir", "resumable_step",
           "error_info", "epoch_seed", "task_info", "DEFAULT_CHECKPOINT_EVERY"]
