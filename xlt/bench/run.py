"""`xlt bench run`: a whole run, xlt's pipeline against the transformers example-script path, phase by phase.

What a researcher feels is the time from `xlt run` to a table of every language. The alternative they would
otherwise use is transformers' `Trainer` set up the way its example script for the task's type does:
run_xnli.py for sentence pairs (xlt/bench/hf_pairs.py), run_ner.py for tagging (hf_tagging.py), run_qa.py for
extractive QA (hf_qa.py). Both paths get the same checkpoint (a folder written once: random weights at the
model's real size for a registry name or hub id, or a local checkpoint as it is), the same rows of the same
files, the same optimiser settings (AdamW, lr, weight decay, eps, linear warmup/decay, clipping), the same
number of optimizer steps over the same number of model rows (the first steps x batch of each path's own
rows, as run_qa.py's `max_train_samples` selects features), batch sizes and precision. Per phase:

* tokenise: the train examples and every language's evaluation examples (reading the files is untimed and
  shared: both paths start from the same rows);
* train: the optimizer steps (xlt: `xlt.train.fit` with no dev evaluation; transformers: `Trainer.train`);
* evaluate: every language, scored by the task type's own metric code for both paths, on the same examples
  and the same gold (a tagging word the Trainer path truncated away gets the task's `unaligned_tag` and is
  counted in `words_lost`);

with wall seconds, examples/s, the share of the model's input that is padding, both paths' scores and the
xlt/transformers speed ratio per phase and end to end.

Each path runs in its own `spawn` subprocess (so `peak_mem_bytes`, VmHWM, is that path's own, and xlt's
training allocator setting, a process-wide glibc `mallopt` that also switches off glibc's dynamic mmap
threshold for good, never touches the Trainer path). By default the two processes take turns phase by phase
(xlt tokenises, then transformers; xlt trains, then transformers; ...), so a change in the load of a shared
machine falls on both paths alike; `interleave=False` runs one path to the end, then the other.

Without the task's train split (no SQuAD under --data-dir for XQuAD), the benchmark trains on the source
language's evaluation file instead, on its last rows (the evaluated ones are its first), and `notes` says so.
"""

from __future__ import annotations

import dataclasses
import importlib
import multiprocessing as mp
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

from xlt.errors import XltError

PIPELINES = ("xlt", "transformers")
PHASES = ("tokenise", "train", "evaluate")
INSTALL_HINT = "pip install 'xlt[bench]' (or: pip install accelerate)"
# The transformers example script each model head is compared against (module with a PIPELINE class).
BASELINES = {"classification": "xlt.bench.hf_pairs", "token": "xlt.bench.hf_tagging", "qa": "xlt.bench.hf_qa"}
PATHS = {"xlt": "xlt.bench.xlt_path"}


def check_baseline_dependencies() -> None:
    """The Trainer path needs `accelerate`; say how to get it instead of failing inside transformers."""
    try:
        import accelerate  # noqa: F401
    except ImportError:
        raise XltError(f"the transformers Trainer baseline needs the `accelerate` package; {INSTALL_HINT}") from None


def prepare_checkpoint(model: str, tokenizer: str | None, out: Path, num_outputs: int, head: str = "classification",
                       seed: int = 0) -> Path:
    """The checkpoint folder both paths load, written once with the task's head (saved with transformers'
    save_pretrained, plus the tokenizer): a local checkpoint's weights, its head initialised here if it has none
    of that shape (so both paths start from the same head), else random weights at the model's real size
    (registry or hub config.json)."""
    import torch

    from transformers.utils import logging as hf_logging

    from xlt.bench.data import load_bench_tokenizer
    from xlt.models.hf import build_from_config, load_hf
    from xlt.models.registry import resolve_model

    hf_logging.disable_progress_bar()
    torch.manual_seed(seed)
    path = Path(model).expanduser()
    if path.is_dir() and any((path / f).is_file() for f in ("model.safetensors", "pytorch_model.bin")):
        loaded, _ = load_hf(str(path), head, num_outputs)
        loaded.hf.save_pretrained(out)
        load_bench_tokenizer(tokenizer or str(path)).save_pretrained(out)
        return out
    info = resolve_model(model)
    tok = load_bench_tokenizer(tokenizer or model)
    config = {k: v for k, v in info.config.items() if k not in ("id2label", "label2id", "num_labels")}
    if len(tok) > config.get("vocab_size", 0):
        raise XltError(f"the tokenizer has {len(tok)} ids but {model}'s vocab_size is {config.get('vocab_size')}")
    build_from_config(config, num_outputs, head).hf.save_pretrained(out)
    tok.save_pretrained(out)
    return out


def _readable(task, split: str, lang: str, data_dir) -> bool:
    """Whether (split, lang) can be read: its local file exists, or it comes from the hub."""
    from xlt.tasks.sources import local_candidates

    cands = local_candidates(task, split, lang, data_dir)
    return not cands or any(c.is_file() for c in cands)


def read_rows(task, data_dir: str | Path | None, train_rows: int, eval_rows: int,
              languages=None, split: str | None = None, tasks_dir=None) -> dict[str, Any]:
    """The rows both paths use: the first `train_rows` examples of the source language's train split and the
    first `eval_rows` of `split` in each of `languages` (None: every language that has it; default split: the
    dev split if it is reported, else the first reported split, e.g. XQuAD's validation, UD-POS's test).
    `task`: a TaskSpec or a task name."""
    from xlt.tasks import get_task, load_split

    task = get_task(task, tasks_dir)
    split = split or (task.dev_split if task.dev_split in task.eval_splits else task.eval_splits[0])
    unknown = sorted(set(languages or ()) - set(task.languages))
    if unknown:
        raise XltError(f"{', '.join(unknown)} is not a language of {task.name} ({', '.join(task.languages)})")
    wanted = [lang for lang in task.languages if languages is None or lang in languages]
    langs = [lang for lang in wanted if languages is not None or _readable(task, split, lang, data_dir)]
    notes = []
    if len(langs) < len(wanted):
        notes.append(f"{len(wanted) - len(langs)} of {len(wanted)} languages have no {split} file under "
                     f"{data_dir} and are left out")
    if not langs:
        raise XltError(f"no language of {task.name} has a {split} file under {data_dir}; check --data-dir")
    evals = {lang: load_split(task, split, lang, data_dir).head(eval_rows) for lang in langs}
    src = task.source_lang
    if _readable(task, task.train_split, src, data_dir):
        train = load_split(task, task.train_split, src, data_dir).head(train_rows)
    else:   # e.g. XQuAD without SQuAD: train on the tail of the source language's evaluated file
        full = load_split(task, split, src, data_dir)
        start = max(0, len(full) - train_rows)
        train = dataclasses.replace(full, frame=full.frame.iloc[start:].reset_index(drop=True),
                                    source_key=f"{full.source_key}|tail={len(full) - start}")
        overlap = max(0, min(eval_rows, len(full)) - start)
        notes.append(f"training data: the last {len(full) - start} rows of {task.name} {split}-{src} "
                     f"({full.origin}), because the train split ({task.train_split}-{src}) is not under {data_dir}"
                     + (f"; {overlap} of them are also evaluated" if overlap else "; none of them is evaluated"))
    return {"task": task.name, "type": task.type, "head": task.task_type.head, "split": split,
            "num_outputs": task.task_type.num_outputs(task), "metrics": list(task.metrics),
            "primary_metric": task.primary_metric, "train": train, "eval": evals, "notes": notes,
            "train_origin": train.origin}


def _peak_bytes() -> int | None:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _say(message: str) -> None:
    """A progress line on stderr (the paths run in subprocesses; the table goes to stdout at the end)."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def _worker(conn, module: str, args: tuple) -> None:
    """One path in its own process: build it (untimed), then run each phase the driver sends and send back its
    result and wall time; "details" is untimed; None ends the process with its memory high-water mark."""
    try:
        pipeline = importlib.import_module(module).PIPELINE(*args)
        conn.send({"ready": True})
        while (phase := conn.recv()) is not None:
            t0 = time.perf_counter()
            out = getattr(pipeline, phase)()
            if phase in PHASES:
                out[f"{phase}_s"] = time.perf_counter() - t0
            conn.send(out)
        pipeline.close()
        conn.send({"peak_mem_bytes": _peak_bytes()})
    except BaseException as exc:   # the driver re-raises it with the path's name
        conn.send({"error": f"{type(exc).__name__}: {exc}", "xlt_error": isinstance(exc, XltError),
                   "traceback": traceback.format_exc()})


class _Path:
    """The driver's handle on one path's worker process."""

    def __init__(self, name: str, module: str, args: tuple):
        self.name = name
        self.conn, child = mp.get_context("spawn").Pipe()
        self.process = mp.get_context("spawn").Process(target=_worker, args=(child, module, args), daemon=True)
        self.process.start()
        self.result: dict[str, Any] = {"pipeline": name}
        self._receive()

    def _receive(self) -> dict:
        if not self.conn.poll(None) and not self.process.is_alive():
            raise RuntimeError(f"the {self.name} path's process died")
        try:
            out = self.conn.recv()
        except EOFError:
            raise RuntimeError(f"the {self.name} path's process died (exit code {self.process.exitcode}; out of "
                               "memory?)") from None
        if "error" in out:
            self.process.join()
            if out["xlt_error"]:
                raise XltError(f"{self.name} path: {out['error'].split(': ', 1)[1]}")
            raise RuntimeError(f"the {self.name} path failed: {out['error']}\n{out['traceback']}")
        return out

    def run(self, phase: str | None) -> None:
        self.conn.send(phase)
        self.result.update(self._receive())

    def close(self) -> None:
        if self.process.is_alive():
            self.process.kill()
        self.process.join()


def run_paths(makers: dict[str, tuple[str, tuple]], interleave: bool = True) -> list[dict]:
    """Run every path's phases in its own process (module docstring) and return one result per path."""
    steps = [*PHASES, "details", None]
    handles: list[_Path] = []
    try:
        if interleave:
            for name, (module, args) in makers.items():
                _say(f"{name}: loading in a fresh process")
                handles.append(_Path(name, module, args))
            for phase in steps:
                for h in handles:
                    if phase in PHASES:
                        _say(f"{h.name}: {phase}")
                    h.run(phase)
        else:
            for name, (module, args) in makers.items():
                _say(f"{name}: loading in a fresh process")
                handles.append(_Path(name, module, args))
                for phase in steps:
                    if phase in PHASES:
                        _say(f"{name}: {phase}")
                    handles[-1].run(phase)
    finally:
        for h in handles:
            h.close()
    return [h.result for h in handles]


def bench_recipe(model: str, task, seed: int, *, overrides: dict | None = None, data_dir=None,
                 languages=None, precision: str = "fp32") -> dict[str, Any]:
    """The run a benchmark times: its spec from `xlt.recipes.build_spec` (so `xlt run` and `xlt sweep` give the
    same run id for the same model, task, seed, overrides, languages and precision) and the hyperparameters
    both paths use. When `xlt run` cannot run on this data (a required split, e.g. XQuAD's SQuAD train file,
    is not under --data-dir) there is no run id: the hyperparameters come from the same recipe layers
    (`effective_hparams`, which build_spec applies) and a note says why."""
    from xlt.recipes import build_spec, effective_hparams, normalise_languages

    languages = normalise_languages(task, languages)   # a bad language is an error, whatever else is missing
    try:
        spec = build_spec(model, task, seed, overrides=overrides, data_dir=data_dir, languages=languages,
                          precision=precision)
    except XltError as exc:
        required = task.task_type.required_splits(task)
        if all(_readable(task, split, task.source_lang, data_dir) for split in required):
            raise
        hparams = effective_hparams(model, task, overrides)[0]
        return {"spec": None, "run_id": None, "hparams": hparams, "languages": languages,
                "notes": [f"no run id: xlt run stops on this data ({exc}); the benchmark uses the same recipe "
                          "(xlt.recipes.effective_hparams, the layers build_spec applies)"]}
    return {"spec": spec, "run_id": spec.run_id, "hparams": spec.hparams, "languages": spec.languages, "notes": []}


def run_bench(model: str, task: str = "xnli", *, data_dir: str | Path | None = None, tokenizer: str | None = None,
              seed: int = 1, overrides: dict | None = None, train_steps: int = 20, eval_samples: int = 200,
              precision: str = "fp32", languages: list[str] | None = None, split: str | None = None,
              threads: int | None = None, pipelines: tuple[str, ...] = PIPELINES, interleave: bool = True,
              keep_transformers_model: str | None = None, tasks_dir=None, dry_run: bool = False) -> dict[str, Any]:
    """Both paths on the same checkpoint and rows (module docstring) with the hyperparameters of the run
    `bench_recipe` names; one row per path plus ratios. `dry_run`: the recipe and run id only."""
    import torch

    from xlt.tasks.registry import resolve_task_arg

    unknown = [p for p in pipelines if p not in PIPELINES]
    if unknown:
        raise XltError(f"unknown pipeline(s) {unknown}; choose from {', '.join(PIPELINES)}")
    if precision not in ("fp32", "bf16"):
        raise XltError(f"--precision {precision!r}: the benchmark runs fp32 or bf16 (the same on both sides)")
    if train_steps < 1 or eval_samples < 1:
        raise XltError("--train-steps and --eval-samples must be positive")
    task_spec, _ = resolve_task_arg(task, tasks_dir)
    if task_spec.task_type.head not in BASELINES:
        raise XltError(f"xlt bench run has no transformers baseline for {task_spec.name} (type {task_spec.type})")
    recipe = bench_recipe(model, task_spec, seed, overrides=overrides, data_dir=data_dir, languages=languages,
                          precision=precision)
    hparams = recipe["hparams"]
    if hparams.sift:
        raise XltError("the transformers Trainer path has no SiFT; benchmark without sift (--set sift=false)")
    # the run's optimizer steps are cut to `train_steps`: its warmup is cut the same way on both paths
    hp = {**dataclasses.asdict(hparams), "epochs": 1.0, "warmup_steps": min(hparams.warmup_steps, train_steps),
          "_steps": train_steps}
    about = {"model": model, "task": task_spec.name, "type": task_spec.type, "run_id": recipe["run_id"],
             "spec": recipe["spec"].to_dict() if recipe["spec"] else None, "seed": seed,
             "hparams": dataclasses.asdict(hparams), "train_steps": train_steps, "batch_size": hparams.batch_size,
             "grad_accum": hparams.grad_accum, "eval_batch_size": hparams.eval_batch_size,
             "max_seq_len": hparams.max_seq_len, "window_step": hparams.window_step,
             "warmup_steps_used": hp["warmup_steps"], "precision": precision}
    if dry_run:
        return {**about, "notes": recipe["notes"]}
    if "transformers" in pipelines:
        check_baseline_dependencies()
    threads = threads or torch.get_num_threads()
    n_train = train_steps * hparams.batch_size
    rows = read_rows(task_spec, data_dir, n_train, eval_samples, recipe["languages"], split)
    if len(rows["train"]) < n_train:   # each example gives at least one model row
        raise XltError(f"{len(rows['train'])} training rows give fewer than {train_steps} steps of "
                       f"{hparams.batch_size}")
    rows["head_options"] = task_spec.task_type.head_options(task_spec, hparams)
    modules = {**PATHS, "transformers": BASELINES[rows["head"]]}
    with tempfile.TemporaryDirectory(prefix="xlt-bench-run-") as tmp:
        ckpt = str(prepare_checkpoint(model, tokenizer, Path(tmp) / "checkpoint", rows["num_outputs"], rows["head"],
                                      seed))
        makers = {name: (modules[name], (ckpt, rows, hp, precision, threads, seed,
                                         keep_transformers_model if name == "transformers" else None))
                  for name in pipelines}
        results = run_paths(makers, interleave=interleave)
    n_eval = sum(len(s) for s in rows["eval"].values())
    for r in results:
        r["total_s"] = sum(r[f"{phase}_s"] for phase in PHASES)
        r["tokenise_examples_per_s"] = (len(rows["train"]) + n_eval) / r["tokenise_s"]
        r["train_examples_per_s"] = n_train / r["train_s"]
        r["evaluate_examples_per_s"] = n_eval / r["evaluate_s"]
    by = {r["pipeline"]: r for r in results}
    ratios = {}
    if len(by) == 2:
        x, t = by["xlt"], by["transformers"]
        ratios = {phase: t[f"{phase}_s"] / x[f"{phase}_s"] for phase in (*PHASES, "total")}
    return {**about, "split": rows["split"], "languages": list(rows["eval"]), "baseline": modules.get("transformers"),
            "notes": recipe["notes"] + rows["notes"], "train_origin": rows["train_origin"], "train_rows": n_train,
            "train_examples": len(rows["train"]), "eval_examples": n_eval, "threads": threads,
            "interleaved": interleave, "metrics": rows["metrics"], "primary_metric": rows["primary_metric"],
            "rows": results, "speedup": ratios,
            "targets": {"total>=2.0": ratios.get("total", 0) >= 2.0} if ratios else {}}
