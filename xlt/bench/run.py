"""`xlt bench run`: a whole run, xlt's pipeline against the transformers Trainer path, phase by phase.

What a researcher feels is the time from `xlt run` to a table of every language. The alternative they would
otherwise use is transformers' `Trainer` set up the way `examples/pytorch/text-classification/run_xnli.py`
sets it up: `datasets.map` tokenisation padded to `max_seq_length` (its `pad_to_max_length` default),
`default_data_collator`, `Trainer.train`, then `trainer.evaluate(eval_dataset=...)` once per language. This
benchmark runs both on the same weights (a checkpoint folder written once: random weights at the model's real
size for a registry name or hub id, or a local checkpoint as it is), the same rows of the same files, the same
optimiser settings (AdamW, lr, weight decay, eps, linear warmup/decay, clipping), steps, batch size and
precision, and reports per phase:

* tokenise: the train rows and every language's evaluation rows (reading the files is done once, untimed,
  and shared: both pipelines start from the same DataFrames);
* train: `--train-steps` optimizer steps (xlt: `xlt.train.fit` with no dev evaluation; transformers:
  `Trainer.train` with `max_steps`);
* evaluate: every language (xlt: `evaluate_splits`, length-bucketed dynamic padding; transformers:
  `trainer.evaluate` per language);

with wall seconds, examples/s, the share of the model's input that is padding, and the xlt/transformers
speed ratio per phase and end to end. Each pipeline runs in a fresh `spawn` subprocess, so `peak_mem_bytes`
(VmHWM) is that pipeline's own high-water mark, runtime included.
"""

from __future__ import annotations

import multiprocessing as mp
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from xlt.errors import XltError

PIPELINES = ("xlt", "transformers")
INSTALL_HINT = "pip install 'xlt[bench]' (or: pip install accelerate)"


def check_baseline_dependencies() -> None:
    """The Trainer path needs `accelerate`; say how to get it instead of failing inside transformers."""
    try:
        import accelerate  # noqa: F401
    except ImportError:
        raise XltError(f"the transformers Trainer baseline needs the `accelerate` package; {INSTALL_HINT}") from None


def prepare_checkpoint(model: str, tokenizer: str | None, out: Path, num_labels: int, seed: int = 0) -> Path:
    """A checkpoint folder both pipelines load: a local checkpoint as it is, else random weights at the model's
    real size (registry or hub config.json) saved with transformers' save_pretrained, plus the tokenizer."""
    import torch

    from xlt.bench.data import load_bench_tokenizer
    from xlt.models.hf import build_from_config
    from xlt.models.registry import resolve_model

    path = Path(model).expanduser()
    if path.is_dir() and any((path / f).is_file() for f in ("model.safetensors", "pytorch_model.bin")):
        return path
    info = resolve_model(model)
    tok = load_bench_tokenizer(tokenizer or model)
    config = {k: v for k, v in info.config.items() if k not in ("id2label", "label2id", "num_labels")}
    if len(tok) > config.get("vocab_size", 0):
        raise XltError(f"the tokenizer has {len(tok)} ids but {model}'s vocab_size is {config.get('vocab_size')}")
    torch.manual_seed(seed)
    build_from_config(config, num_labels, "classification").hf.save_pretrained(out)
    tok.save_pretrained(out)
    return out


def read_rows(task_name: str, data_dir: str | Path | None, train_rows: int, eval_rows: int,
              languages: list[str] | None, split: str | None, tasks_dir=None) -> dict[str, Any]:
    """The rows both pipelines use: the first `train_rows` of the source language's train split and the first
    `eval_rows` of `split` (default: the dev split) in every language, as DataFrames (text_a, text_b, label)."""
    from xlt.tasks import get_task, load_split

    task = get_task(task_name, tasks_dir)
    if task.task_type.head != "classification":
        raise XltError(f"xlt bench run compares sentence-level classification runs (XNLI, PAWS-X); {task.name} "
                       "is not one")
    split = split or task.dev_split
    langs = [lang for lang in task.languages if languages is None or lang in languages]
    if not langs:
        raise XltError(f"none of {languages} is a language of {task.name} ({', '.join(task.languages)})")
    train = load_split(task, task.train_split, task.source_lang, data_dir).head(train_rows)
    evals = {lang: load_split(task, split, lang, data_dir).head(eval_rows) for lang in langs}
    return {"task": task.name, "split": split, "num_labels": task.num_labels, "train": train, "eval": evals}


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
    """A progress line on stderr (the pipelines run in subprocesses; the table goes to stdout at the end)."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def _padding(real: int, padded: int) -> float:
    return 1.0 - real / padded if padded else 0.0


def xlt_pipeline(ckpt: str, rows: dict, hp_values: dict, steps: int, precision: str, threads: int,
                 seed: int) -> dict:
    """xlt's own path: featurize (no cache, as a first run), fit, evaluate every language."""
    import numpy as np
    import torch

    from xlt import data as xdata
    from xlt.device import Device
    from xlt.evaluate import evaluate_splits
    from xlt.models import load_model
    from xlt.spec import Hyperparams
    from xlt.tasktypes import get_task_type
    from xlt.train import fit

    torch.set_num_threads(threads)
    hp = Hyperparams(**hp_values)
    loaded = load_model(ckpt, "classification", rows["num_labels"])
    tt = get_task_type(rows["train"].task_type)
    tok = loaded.tokenizer
    out: dict[str, Any] = {"pipeline": "xlt", "impl": loaded.impl}

    _say(f"xlt: tokenising {len(rows['train'])} train rows and {len(rows['eval'])} languages")
    t0 = time.perf_counter()
    train_feats = xdata.featurize(rows["train"], tok, hp.max_seq_len, task_type=tt, use_cache=False)
    eval_feats = {lang: xdata.featurize(s, tok, hp.max_seq_len, task_type=tt, use_cache=False)
                  for lang, s in rows["eval"].items()}
    out["tokenise_s"] = time.perf_counter() - t0

    per_step = hp.per_step_batch
    order = lambda epoch: xdata.batch_order(train_feats.lengths, per_step, True, seed * 100_003 + epoch)  # noqa
    n_batches = xdata.num_batches(train_feats, per_step)
    groups = [g for e in range(int(np.ceil(hp.epochs))) for g in order(e)][:steps * hp.grad_accum]
    real = sum(int(train_feats.lengths[g].sum()) for g in groups)
    out["train_padding_share"] = _padding(real, sum(len(g) * int(train_feats.lengths[g].max()) for g in groups))

    _say(f"xlt: training {steps} steps ({precision})")
    t0 = time.perf_counter()
    result = fit(loaded.model, lambda epoch: xdata.batches(train_feats, per_step, shuffle=True,
                                                           seed=seed * 100_003 + epoch, collate_fn=tt.collate),
                 n_batches, hp, seed=seed, device=Device.of("cpu", precision), loss_fn=tt.loss)
    out["train_s"] = time.perf_counter() - t0
    out["train_steps"] = result.steps
    out["final_loss"] = result.losses[-1]

    data = {("eval", lang): (rows["eval"][lang], f) for lang, f in eval_feats.items()}
    _say(f"xlt: evaluating {len(data)} languages")
    t0 = time.perf_counter()
    ev = evaluate_splits(loaded.model, data, tt, ["accuracy"], batch_size=hp.eval_batch_size,
                         device=Device.of("cpu", precision))
    out["evaluate_s"] = time.perf_counter() - t0
    real = padded = 0
    for f in eval_feats.values():
        for g in xdata.batch_order(f.lengths, hp.eval_batch_size, shuffle=False):
            real, padded = real + int(f.lengths[g].sum()), padded + len(g) * int(f.lengths[g].max())
    out["evaluate_padding_share"] = _padding(real, padded)
    out["tokenise_padding_share"] = 0.0   # features are stored unpadded
    out["accuracy"] = {lang: ev.metrics["eval"][lang]["accuracy"] for lang in rows["eval"]}
    out["peak_mem_bytes"] = _peak_bytes()
    return out


def transformers_pipeline(ckpt: str, rows: dict, hp_values: dict, precision: str, threads: int, seed: int,
                          keep_dir: str | None = None) -> dict:
    """The run_xnli.py path: datasets.map padded to max length, Trainer.train, trainer.evaluate per language."""
    import datasets
    import numpy as np
    import torch
    from transformers import (AutoModelForSequenceClassification, AutoTokenizer, PrinterCallback, Trainer,
                              TrainingArguments, default_data_collator)
    from transformers.utils import logging as hf_logging

    torch.set_num_threads(threads)
    hf_logging.set_verbosity_error()
    datasets.disable_progress_bars()
    hp = hp_values
    tok = AutoTokenizer.from_pretrained(ckpt, trust_remote_code=False)
    model = AutoModelForSequenceClassification.from_pretrained(ckpt, num_labels=rows["num_labels"],
                                                               dtype=torch.float32, trust_remote_code=False)
    out: dict[str, Any] = {"pipeline": "transformers", "impl": "hf"}

    def preprocess(examples):   # run_xnli.py's preprocess_function, pad_to_max_length=True
        return tok(examples["premise"], examples["hypothesis"], padding="max_length",
                   max_length=hp["max_seq_len"], truncation=True)

    def as_dataset(split) -> datasets.Dataset:
        frame = split.frame.rename(columns={"text_a": "premise", "text_b": "hypothesis"})
        return datasets.Dataset.from_pandas(frame[["premise", "hypothesis", "label"]], preserve_index=False)

    raw_train = as_dataset(rows["train"])
    raw_eval = {lang: as_dataset(s) for lang, s in rows["eval"].items()}
    _say(f"transformers: tokenising (padded to {hp['max_seq_len']})")
    t0 = time.perf_counter()
    train_ds = raw_train.map(preprocess, batched=True, load_from_cache_file=False)
    eval_ds = {lang: ds.map(preprocess, batched=True, load_from_cache_file=False) for lang, ds in raw_eval.items()}
    out["tokenise_s"] = time.perf_counter() - t0
    mask = np.asarray(train_ds["attention_mask"])
    out["tokenise_padding_share"] = out["train_padding_share"] = float(1 - mask.mean())
    masks = np.concatenate([np.asarray(ds["attention_mask"]) for ds in eval_ds.values()])
    out["evaluate_padding_share"] = float(1 - masks.mean())

    def compute_metrics(p):
        preds = p.predictions[0] if isinstance(p.predictions, tuple) else p.predictions
        return {"accuracy": float((np.argmax(preds, axis=1) == p.label_ids).mean())}

    with tempfile.TemporaryDirectory(prefix="xlt-bench-trainer-") as tmp:
        args = TrainingArguments(
            output_dir=tmp, per_device_train_batch_size=hp["batch_size"] // hp["grad_accum"],
            gradient_accumulation_steps=hp["grad_accum"], per_device_eval_batch_size=hp["eval_batch_size"],
            max_steps=hp["_steps"], learning_rate=hp["lr"], weight_decay=hp["weight_decay"],
            adam_epsilon=hp["adam_eps"], max_grad_norm=hp["max_grad_norm"], warmup_steps=hp["warmup_steps"],
            lr_scheduler_type="linear", seed=seed, bf16=precision == "bf16", use_cpu=True, report_to=[],
            logging_strategy="no", save_strategy="no", eval_strategy="no", dataloader_num_workers=0,
            disable_tqdm=True)
        trainer = Trainer(model=model, args=args, train_dataset=train_ds, data_collator=default_data_collator,
                          compute_metrics=compute_metrics)
        trainer.remove_callback(PrinterCallback)   # its metric dicts on stdout; the bench prints its own table
        _say(f"transformers: training {hp['_steps']} steps ({precision})")
        t0 = time.perf_counter()
        train_result = trainer.train()
        out["train_s"] = time.perf_counter() - t0
        out["train_steps"] = int(train_result.global_step)
        _say(f"transformers: evaluating {len(eval_ds)} languages, one trainer.evaluate each")
        t0 = time.perf_counter()
        out["accuracy"] = {lang: float(trainer.evaluate(eval_dataset=ds)["eval_accuracy"])
                           for lang, ds in eval_ds.items()}
        out["evaluate_s"] = time.perf_counter() - t0
        if keep_dir is not None:
            trainer.save_model(keep_dir)
            tok.save_pretrained(keep_dir)
    out["peak_mem_bytes"] = _peak_bytes()
    return out


def _in_subprocess(fn, *args) -> dict:
    with mp.get_context("spawn").Pool(1) as pool:
        return pool.apply(fn, args)


def run_bench(model: str, task: str = "xnli", *, data_dir: str | Path | None = None, tokenizer: str | None = None,
              train_steps: int = 20, eval_samples: int = 200, batch_size: int = 32, eval_batch_size: int = 64,
              max_seq_len: int = 128, lr: float = 2e-5, precision: str = "fp32", languages: list[str] | None = None,
              split: str | None = None, threads: int | None = None, seed: int = 0,
              pipelines: tuple[str, ...] = PIPELINES, keep_transformers_model: str | None = None,
              tasks_dir=None) -> dict[str, Any]:
    """Both pipelines on the same checkpoint and rows (module docstring); one row per pipeline plus ratios."""
    import torch

    unknown = [p for p in pipelines if p not in PIPELINES]
    if unknown:
        raise XltError(f"unknown pipeline(s) {unknown}; choose from {', '.join(PIPELINES)}")
    if precision not in ("fp32", "bf16"):
        raise XltError(f"--precision {precision!r}: the benchmark runs fp32 or bf16 (the same on both sides)")
    if train_steps < 1 or eval_samples < 1 or batch_size < 1:
        raise XltError("--train-steps, --eval-samples and --batch-size must be positive")
    if "transformers" in pipelines:
        check_baseline_dependencies()
    threads = threads or torch.get_num_threads()
    rows = read_rows(task, data_dir, train_steps * batch_size, eval_samples, languages, split, tasks_dir)
    if len(rows["train"]) < train_steps * batch_size:
        raise XltError(f"{len(rows['train'])} training rows give fewer than {train_steps} steps of {batch_size}")
    hp = {"lr": lr, "epochs": 1.0, "batch_size": batch_size, "grad_accum": 1, "max_seq_len": max_seq_len,
          "warmup_steps": max(1, train_steps // 10), "weight_decay": 0.01, "max_grad_norm": 1.0, "adam_eps": 1e-6,
          "eval_batch_size": eval_batch_size, "_steps": train_steps}
    results = []
    with tempfile.TemporaryDirectory(prefix="xlt-bench-run-") as tmp:
        ckpt = str(prepare_checkpoint(model, tokenizer, Path(tmp) / "checkpoint", rows["num_labels"], seed))
        xlt_hp = {k: v for k, v in hp.items() if not k.startswith("_")}
        for name in pipelines:
            _say(f"{name} pipeline in a fresh process")
            if name == "xlt":
                results.append(_in_subprocess(xlt_pipeline, ckpt, rows, xlt_hp, train_steps, precision, threads,
                                              seed))
            else:
                results.append(_in_subprocess(transformers_pipeline, ckpt, rows, hp, precision, threads, seed,
                                              keep_transformers_model))
    n_train, n_eval = train_steps * batch_size, sum(len(s) for s in rows["eval"].values())
    for r in results:
        r["total_s"] = r["tokenise_s"] + r["train_s"] + r["evaluate_s"]
        r["tokenise_examples_per_s"] = (n_train + n_eval) / r["tokenise_s"]
        r["train_examples_per_s"] = n_train / r["train_s"]
        r["evaluate_examples_per_s"] = n_eval / r["evaluate_s"]
    by = {r["pipeline"]: r for r in results}
    ratios = {}
    if len(by) == 2:
        x, t = by["xlt"], by["transformers"]
        ratios = {phase: t[f"{phase}_s"] / x[f"{phase}_s"] for phase in ("tokenise", "train", "evaluate", "total")}
    return {"model": model, "task": rows["task"], "split": rows["split"], "languages": list(rows["eval"]),
            "train_steps": train_steps, "train_examples": n_train, "eval_examples": n_eval,
            "batch_size": batch_size, "eval_batch_size": eval_batch_size, "max_seq_len": max_seq_len,
            "precision": precision, "threads": threads, "rows": results, "speedup": ratios,
            "targets": {"total>=2.0": ratios.get("total", 0) >= 2.0, "evaluate>=2.5": ratios.get("evaluate", 0) >= 2.5}
            if ratios else {}}

