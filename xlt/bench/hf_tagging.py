"""The tagging baseline of `xlt bench run`: transformers' run_ner.py (examples/pytorch, token classification).

Its set-up (run_ner.py at transformers 5.8): `tokenize_and_align_labels` through `datasets.map` with
`is_split_into_words=True`, `truncation=True`, `max_length=max_seq_length` and no padding (`pad_to_max_length`
defaults to False), the label on each word's first subword and -100 on the rest (`label_all_tokens` False),
`DataCollatorForTokenClassification` (dynamic padding), `Trainer.train`, then the Trainer's prediction loop
once per language and the argmax where the label is not -100.

Truncation cuts every sentence at `max_seq_length` subwords, so the words past the cut get no prediction:
run_ner.py scores what is left. Here both paths are scored on every gold word with the task type's own metric
code: a word the Trainer path cut off gets the task's `unaligned_tag` (O for PAN-X, X for UD-POS), the tag xlt
gives a word without subwords, and `words_lost` counts them (xlt's windows lose none).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from xlt.bench.hf_trainer import TrainerPipeline, scores_by_language

IGNORE = -100


def words_lost(tokenizer, sentences: Sequence[Sequence[str]], max_len: int) -> np.ndarray:
    """Per sentence, the words that have subwords but none left after truncating at `max_len` (special tokens
    included), i.e. the words run_ner.py's set-up cannot predict."""
    full = tokenizer([list(s) for s in sentences], is_split_into_words=True, add_special_tokens=False)
    cut = tokenizer([list(s) for s in sentences], is_split_into_words=True, truncation=True, max_length=max_len)
    words = lambda enc, i: {w for w in enc.word_ids(i) if w is not None}   # noqa: E731
    return np.array([len(words(full, i) - words(cut, i)) for i in range(len(sentences))], dtype=np.int64)


class TaggingTrainer(TrainerPipeline):
    auto_class = "AutoModelForTokenClassification"

    def make_collator(self):
        from transformers import DataCollatorForTokenClassification

        return DataCollatorForTokenClassification(self.tok)

    def _dataset(self, split):
        import datasets

        return datasets.Dataset.from_dict({"tokens": split.frame["tokens"].tolist(),
                                           "tags": split.frame["tags"].tolist()})

    def tokenise(self) -> dict:
        tok, max_len = self.tok, self.hp["max_seq_len"]

        def tokenize_and_align_labels(examples):   # run_ner.py's, with its defaults
            enc = tok(examples["tokens"], padding=False, truncation=True, max_length=max_len,
                      is_split_into_words=True)
            labels, word_ids = [], []
            for i, tags in enumerate(examples["tags"]):
                previous, label_ids = None, []
                words = enc.word_ids(batch_index=i)
                for word in words:
                    label_ids.append(IGNORE if word is None or word == previous else tags[word])
                    previous = word
                labels.append(label_ids)
                word_ids.append([-1 if w is None else w for w in words])   # to put predictions back on words
            enc["labels"] = labels
            enc["word_ids"] = word_ids
            return enc

        self.train_ds = self.select_train_rows(self._dataset(self.rows["train"]).map(
            tokenize_and_align_labels, batched=True, load_from_cache_file=False))
        self.eval_ds = {lang: self._dataset(s).map(tokenize_and_align_labels, batched=True,
                                                   load_from_cache_file=False)
                        for lang, s in self.rows["eval"].items()}
        return {"eval_rows": int(sum(len(ds) for ds in self.eval_ds.values())), "tokenise_padding_share": 0.0}

    def evaluate(self) -> dict:
        split_of = self.rows["eval"]
        self.collator.take_share()
        frames = {}
        for lang, ds in self.eval_ds.items():
            out = self.predict(ds)        # logits (sentences, longest, tags) and labels, padded with -100
            frames[lang] = self.frame(split_of[lang], np.argmax(out.predictions, axis=-1), out.label_ids,
                                      ds["word_ids"])
        self.predictions = frames
        return {"scores": scores_by_language(self.tt, frames, self.rows["metrics"]),
                "evaluate_padding_share": self.collator.take_share()}

    def frame(self, split, pred: np.ndarray, labels, word_ids) -> pd.DataFrame:
        """idx, label, pred (tag names per word) of a split from the Trainer's per-subword argmax."""
        names = list(split.label_names)
        fill = self.tt.unaligned_tag(split.options, names, f"task {split.task}")
        gold, preds = [], []
        for i, tags in enumerate(split.frame["tags"]):
            out = [fill] * len(tags)
            for pos, (label, word) in enumerate(zip(labels[i], word_ids[i])):
                if label != IGNORE:
                    out[word] = int(pred[i, pos])
            gold.append([names[t] for t in tags])
            preds.append([names[t] for t in out])
        return pd.DataFrame({"idx": np.arange(len(gold)), "label": gold, "pred": preds})

    def details(self) -> dict:
        lost = {lang: words_lost(self.tok, s.frame["tokens"].tolist(), self.hp["max_seq_len"])
                for lang, s in self.rows["eval"].items()}
        return {"words_lost": {lang: int(v.sum()) for lang, v in lost.items()},
                "sentences_cut": {lang: int((v > 0).sum()) for lang, v in lost.items()},
                "words": {lang: int(sum(map(len, s.frame["tokens"]))) for lang, s in self.rows["eval"].items()}}


PIPELINE = TaggingTrainer
