"""The sentence-pair baseline of `xlt bench run`: transformers' examples/pytorch/text-classification/run_xnli.py.

Its set-up: `datasets.map` tokenisation of (premise, hypothesis) padded to `max_seq_length`
(`pad_to_max_length` defaults to True), `default_data_collator`, `Trainer.train`, then the Trainer's evaluation
loop once per language. Predictions are the argmax of the logits, scored by the task type's own metric code.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from xlt.bench.hf_trainer import TrainerPipeline, scores_by_language


class PairsTrainer(TrainerPipeline):
    auto_class = "AutoModelForSequenceClassification"

    def _dataset(self, split):
        import datasets

        frame = split.frame.rename(columns={"text_a": "premise", "text_b": "hypothesis"})
        return datasets.Dataset.from_pandas(frame[["premise", "hypothesis", "label"]], preserve_index=False)

    def tokenise(self) -> dict:
        max_len = self.hp["max_seq_len"]

        def preprocess(examples):   # run_xnli.py's preprocess_function with pad_to_max_length=True
            return self.tok(examples["premise"], examples["hypothesis"], padding="max_length", max_length=max_len,
                            truncation=True)

        self.train_ds = self.select_train_rows(self._dataset(self.rows["train"]).map(
            preprocess, batched=True, load_from_cache_file=False))
        self.eval_ds = {lang: self._dataset(s).map(preprocess, batched=True, load_from_cache_file=False)
                        for lang, s in self.rows["eval"].items()}
        mask = np.concatenate([np.asarray(ds["attention_mask"]) for ds in self.eval_ds.values()])
        return {"eval_rows": int(sum(len(ds) for ds in self.eval_ds.values())),
                "tokenise_padding_share": float(1 - mask.mean())}

    def evaluate(self) -> dict:
        self.collator.take_share()
        frames = {}
        for lang, ds in self.eval_ds.items():
            logits = self.predict(ds).predictions
            logits = logits[0] if isinstance(logits, tuple) else logits
            frames[lang] = pd.DataFrame({"idx": np.arange(len(ds)), "label": np.asarray(ds["label"]),
                                         "pred": np.argmax(logits, axis=1)})
        self.predictions = frames
        return {"scores": scores_by_language(self.tt, frames, self.rows["metrics"]),
                "evaluate_padding_share": self.collator.take_share()}


PIPELINE = PairsTrainer
