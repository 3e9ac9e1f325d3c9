"""The extractive-QA baseline of `xlt bench run`: transformers' examples/pytorch/question-answering/run_qa.py.

Its set-up (run_qa.py and utils_qa.py in transformers' examples): `prepare_train_features` and
`prepare_validation_features` through `datasets.map` (questions left-stripped, `truncation="only_second"`,
`max_seq_length` 384, `doc_stride` 128, `return_overflowing_tokens`, padding to `max_seq_length` as
`pad_to_max_length` defaults to True; a window without the whole answer is labelled with the CLS index),
`default_data_collator`, `Trainer.train`, the Trainer's prediction loop per language, then
`postprocess_qa_predictions` (ported below: the n-best start and end logits of every window, spans over the
context only, no longer than `max_answer_length`, the best score over all windows of a question). Its answers
are scored by the task type's own metric code (SQuAD's or MLQA's official normalisation).

run_qa.py's `doc_stride` is transformers' tokenizer `stride`, the tokens two windows *overlap*; xlt's
`window_step` (XTREME's doc_stride) is the distance between window starts. At 384/128 a long context's windows
start ~240 tokens apart here and 128 apart in xlt, so xlt predicts more windows per long context.
"""

from __future__ import annotations

import collections
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from xlt.bench.hf_trainer import TrainerPipeline, scores_by_language

DOC_STRIDE = 128   # run_qa.py's default


def doc_stride(max_len: int) -> int:
    """run_qa.py's 128, or a quarter of a shorter window (the tokenizer refuses a stride as long as the window)."""
    return min(DOC_STRIDE, max_len // 4)


def postprocess_qa_predictions(examples, features, predictions, n_best_size: int = 20,
                               max_answer_length: int = 30) -> dict[str, str]:
    """{example id: answer text}: utils_qa.py's `postprocess_qa_predictions` with version_2_with_negative=False
    (SQuAD v1.1, XQuAD, MLQA), ported line for line without its n-best file output, progress bar and softmax
    (which only feed the n-best file). `features` rows carry `example_id` and `offset_mapping` (None outside
    the context); `predictions` = (start logits, end logits), one row per feature."""
    all_start_logits, all_end_logits = predictions
    if len(all_start_logits) != len(features):
        raise ValueError(f"Got {len(all_start_logits)} predictions and {len(features)} features.")
    example_id_to_index = {k: i for i, k in enumerate(examples["id"])}
    features_per_example = collections.defaultdict(list)
    for i, feature in enumerate(features):
        features_per_example[example_id_to_index[feature["example_id"]]].append(i)

    all_predictions = {}
    for example_index, example in enumerate(examples):
        prelim_predictions = []
        for feature_index in features_per_example[example_index]:
            start_logits = all_start_logits[feature_index]
            end_logits = all_end_logits[feature_index]
            offset_mapping = features[feature_index]["offset_mapping"]
            start_indexes = np.argsort(start_logits)[-1: -n_best_size - 1: -1].tolist()
            end_indexes = np.argsort(end_logits)[-1: -n_best_size - 1: -1].tolist()
            for start_index in start_indexes:
                for end_index in end_indexes:
                    # out of bounds, or not part of the context
                    if (start_index >= len(offset_mapping) or end_index >= len(offset_mapping)
                            or offset_mapping[start_index] is None or len(offset_mapping[start_index]) < 2
                            or offset_mapping[end_index] is None or len(offset_mapping[end_index]) < 2):
                        continue
                    if end_index < start_index or end_index - start_index + 1 > max_answer_length:
                        continue
                    prelim_predictions.append({
                        "offsets": (offset_mapping[start_index][0], offset_mapping[end_index][1]),
                        "score": start_logits[start_index] + end_logits[end_index]})
        best = sorted(prelim_predictions, key=lambda x: x["score"], reverse=True)[:n_best_size]
        context = example["context"]
        for pred in best:
            offsets = pred.pop("offsets")
            pred["text"] = context[offsets[0]: offsets[1]]
        # "In the very rare edge case we have not a single non-null prediction, we create a fake prediction"
        if len(best) == 0 or (len(best) == 1 and best[0]["text"] == ""):
            best.insert(0, {"text": "empty", "score": 0.0})
        all_predictions[example["id"]] = best[0]["text"]
    return all_predictions


def _squad_answers(answers: Sequence[Mapping]) -> dict:
    """xlt's [{text, answer_start}, ...] as the hub's SQuAD {text: [...], answer_start: [...]}."""
    return {"text": [a["text"] for a in answers], "answer_start": [int(a["answer_start"]) for a in answers]}


class QATrainer(TrainerPipeline):
    auto_class = "AutoModelForQuestionAnswering"

    def model_kwargs(self) -> dict:
        return {}

    def _dataset(self, split):
        import datasets

        frame = split.frame
        return datasets.Dataset.from_dict({"id": frame["id"].tolist(), "question": frame["question"].tolist(),
                                           "context": frame["context"].tolist(),
                                           "answers": [_squad_answers(a) for a in frame["answers"]]})

    def _encode(self, examples):
        examples["question"] = [q.lstrip() for q in examples["question"]]
        max_len = self.hp["max_seq_len"]
        return self.tok(examples["question"], examples["context"], truncation="only_second", max_length=max_len,
                        stride=doc_stride(max_len), return_overflowing_tokens=True, return_offsets_mapping=True,
                        padding="max_length")

    def prepare_train_features(self, examples):
        """run_qa.py's: windows labelled with the answer's first and last token, or the CLS index."""
        tok = self.tok
        enc = self._encode(examples)
        sample_mapping = enc.pop("overflow_to_sample_mapping")
        offset_mapping = enc.pop("offset_mapping")
        enc["start_positions"], enc["end_positions"] = [], []
        for i, offsets in enumerate(offset_mapping):
            input_ids = enc["input_ids"][i]
            if tok.cls_token_id in input_ids:
                cls_index = input_ids.index(tok.cls_token_id)
            elif tok.bos_token_id in input_ids:
                cls_index = input_ids.index(tok.bos_token_id)
            else:
                cls_index = 0
            sequence_ids = enc.sequence_ids(i)
            answers = examples["answers"][sample_mapping[i]]
            if len(answers["answer_start"]) == 0:
                enc["start_positions"].append(cls_index)
                enc["end_positions"].append(cls_index)
                continue
            start_char = answers["answer_start"][0]
            end_char = start_char + len(answers["text"][0])
            token_start_index = 0
            while sequence_ids[token_start_index] != 1:
                token_start_index += 1
            token_end_index = len(input_ids) - 1
            while sequence_ids[token_end_index] != 1:
                token_end_index -= 1
            if not (offsets[token_start_index][0] <= start_char and offsets[token_end_index][1] >= end_char):
                enc["start_positions"].append(cls_index)
                enc["end_positions"].append(cls_index)
            else:
                while token_start_index < len(offsets) and offsets[token_start_index][0] <= start_char:
                    token_start_index += 1
                enc["start_positions"].append(token_start_index - 1)
                while offsets[token_end_index][1] >= end_char:
                    token_end_index -= 1
                enc["end_positions"].append(token_end_index + 1)
        return enc

    def prepare_validation_features(self, examples):
        """run_qa.py's: each window keeps its example id and the offsets of its context tokens only."""
        enc = self._encode(examples)
        sample_mapping = enc.pop("overflow_to_sample_mapping")
        enc["example_id"] = []
        for i in range(len(enc["input_ids"])):
            sequence_ids = enc.sequence_ids(i)
            enc["example_id"].append(examples["id"][sample_mapping[i]])
            enc["offset_mapping"][i] = [(o if sequence_ids[k] == 1 else None)
                                        for k, o in enumerate(enc["offset_mapping"][i])]
        return enc

    def tokenise(self) -> dict:
        if self.tok.padding_side != "right":
            raise NotImplementedError("the bench ports run_qa.py's question-first layout only")
        train = self._dataset(self.rows["train"])
        self.train_ds = self.select_train_rows(train.map(self.prepare_train_features, batched=True,
                                                         remove_columns=train.column_names,
                                                         load_from_cache_file=False))
        self.examples, self.eval_ds = {}, {}
        for lang, split in self.rows["eval"].items():
            self.examples[lang] = self._dataset(split)
            self.eval_ds[lang] = self.examples[lang].map(self.prepare_validation_features, batched=True,
                                                         remove_columns=self.examples[lang].column_names,
                                                         load_from_cache_file=False)
        mask = np.concatenate([np.asarray(ds["attention_mask"]) for ds in self.eval_ds.values()])
        return {"eval_rows": int(sum(len(ds) for ds in self.eval_ds.values())),
                "tokenise_padding_share": float(1 - mask.mean())}

    def evaluate(self) -> dict:
        from xlt.tasktypes import qa_metrics

        opts = {"n_best": 20, "max_answer_len": 30}
        self.collator.take_share()
        frames = {}
        for lang, ds in self.eval_ds.items():
            split = self.rows["eval"][lang]
            opts.update({k: v for k, v in split.options.items() if k in opts})
            start, end = self.predict(ds).predictions
            answers = postprocess_qa_predictions(self.examples[lang], ds, (start, end), opts["n_best"],
                                                 opts["max_answer_len"])
            preds = [answers[i] for i in split.frame["id"]]
            golds = [[a["text"] for a in al] for al in split.frame["answers"]]
            em, f1 = qa_metrics.score_answers(preds, golds, split.options.get("normalization", "squad"), lang)
            frames[lang] = pd.DataFrame({"idx": np.arange(len(preds)), "id": split.frame["id"].to_numpy(),
                                         "label": golds, "pred": preds, "em": em, "f1": f1})
        self.predictions = frames
        return {"scores": scores_by_language(self.tt, frames, self.rows["metrics"]),
                "evaluate_padding_share": self.collator.take_share()}

    def details(self) -> dict:
        return {"windows_per_example": {lang: len(ds) / max(1, len(self.rows["eval"][lang]))
                                        for lang, ds in self.eval_ds.items()}}


PIPELINE = QATrainer
