"""What every transformers-example baseline of `xlt bench run` shares: a checkpoint loaded with an Auto class,
`Trainer` set up from the benchmark's hyperparameters, and a collator wrapper that counts padding.

A baseline subclass (hf_pairs.py, hf_tagging.py, hf_qa.py) sets `auto_class`, tokenises its rows the way its
example script does (`tokenise`), names its collator and scores the Trainer's predictions with the task type's
own metric code (`evaluate`); `train` is `Trainer.train` with `max_steps`, here once for all of them.
"""

from __future__ import annotations

import shutil
import tempfile
from typing import Any

import numpy as np


class CountingCollator:
    """A data collator that passes batches through unchanged and counts real and padded tokens."""

    def __init__(self, collate):
        self.collate = collate
        self.real = self.padded = 0

    def __call__(self, features):
        batch = self.collate(features)
        mask = batch["attention_mask"]
        self.real += int(mask.sum())
        self.padded += int(mask.numel())
        return batch

    def take_share(self) -> float:
        """The share of the tokens collated since the last call that were padding."""
        share = 1.0 - self.real / self.padded if self.padded else 0.0
        self.real = self.padded = 0
        return share


class TrainerPipeline:
    """The transformers Trainer path of one task type (see the module docstring)."""

    name = "transformers"
    auto_class = "AutoModel"          # a transformers Auto class name

    def __init__(self, ckpt: str, rows: dict, hp: dict, precision: str, threads: int, seed: int,
                 keep_dir: str | None = None):
        import datasets
        import torch
        import transformers
        from transformers.utils import logging as hf_logging

        torch.set_num_threads(threads)
        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
        datasets.disable_progress_bars()
        self.rows, self.hp, self.precision, self.seed, self.keep_dir = rows, hp, precision, seed, keep_dir
        from xlt.tasktypes import get_task_type

        self.tt = get_task_type(rows["type"])
        self.tok = transformers.AutoTokenizer.from_pretrained(ckpt, trust_remote_code=False)
        auto = getattr(transformers, self.auto_class)
        self.model = auto.from_pretrained(ckpt, dtype=torch.float32, trust_remote_code=False, **self.model_kwargs())
        self.collator = CountingCollator(self.make_collator())
        self.tmp = tempfile.mkdtemp(prefix="xlt-bench-trainer-")
        self.trainer = None
        self.train_ds: Any = None

    def model_kwargs(self) -> dict:
        return {"num_labels": self.rows["num_outputs"]}

    def make_collator(self):
        from transformers import default_data_collator

        return default_data_collator

    def n_train_rows(self) -> int:
        return self.hp["_steps"] * self.hp["batch_size"]

    def select_train_rows(self, ds):
        """The first steps x batch rows (run_qa.py selects `max_train_samples` features the same way)."""
        need = self.n_train_rows()
        if len(ds) < need:
            from xlt.errors import XltError

            raise XltError(f"the training examples give {len(ds)} model rows, fewer than --train-steps x "
                           f"--batch-size = {need}; lower --train-steps")
        return ds.select(range(need))

    def train(self) -> dict:
        from transformers import PrinterCallback, Trainer, TrainingArguments

        hp = self.hp
        args = TrainingArguments(
            output_dir=self.tmp, per_device_train_batch_size=hp["batch_size"] // hp["grad_accum"],
            gradient_accumulation_steps=hp["grad_accum"], per_device_eval_batch_size=hp["eval_batch_size"],
            max_steps=hp["_steps"], learning_rate=hp["lr"], weight_decay=hp["weight_decay"],
            adam_epsilon=hp["adam_eps"], max_grad_norm=hp["max_grad_norm"], warmup_steps=hp["warmup_steps"],
            lr_scheduler_type="linear", seed=self.seed, bf16=self.precision == "bf16", use_cpu=True, report_to=[],
            logging_strategy="no", save_strategy="no", eval_strategy="no", dataloader_num_workers=0, disable_tqdm=True,
            # named only when asked: transformers 5 renamed it (activation_checkpointing), 4.x knows only this name
            **({"gradient_checkpointing": True} if hp["gradient_checkpointing"] else {}))
        self.trainer = Trainer(model=self.model, args=args, train_dataset=self.train_ds,
                               data_collator=self.collator)
        self.trainer.remove_callback(PrinterCallback)   # its metric dicts on stdout; the bench prints its own table
        self.collator.take_share()
        result = self.trainer.train()
        return {"train_steps": int(result.global_step), "train_rows": len(self.train_ds),
                "train_padding_share": self.collator.take_share()}

    def predict(self, ds) -> Any:
        """The Trainer's prediction loop over `ds` (batches in order): predictions, label_ids, metrics."""
        return self.trainer.predict(ds)

    def details(self) -> dict:
        """What the report shows beside the timings (untimed)."""
        return {}

    def close(self) -> None:
        if self.keep_dir is not None and self.trainer is not None:
            self.trainer.save_model(self.keep_dir)
            self.tok.save_pretrained(self.keep_dir)
        shutil.rmtree(self.tmp, ignore_errors=True)


def scores_by_language(tt, frames: dict, metrics) -> dict:
    """The task type's own scores of each language's predictions frame."""
    return {lang: {k: (float(v) if isinstance(v, (float, np.floating)) else int(v))
                   for k, v in tt.score(frame, metrics).items()} for lang, frame in frames.items()}
