"""Token classification (PAN-X / WikiANN NER, UD-POS): one tag per word of a pre-split sentence.

Rows: `tokens`, `tags`, lists per sentence; tags become ids 0..n-1 in the order of the task's `labels:` (the
hub's ClassLabel ints already are those ids; strings are mapped by name, or by the source's `label_map`).
Local files: two-column CoNLL (`.tsv`, `.conll`; xlt.tasktypes.conll), or jsonl/parquet with list columns.
Features: overlapping subword windows, each word tagged on its first subword in the one window that owns it
(xlt.tasktypes.alignment). Head: a token classifier; loss: cross-entropy over tagged subwords.
Predictions: `label`, `pred`, lists of tag strings in word order, one row per sentence.
Metrics: `f1`, `precision`, `recall` exactly as seqeval's default mode computes them (entity-level for BIO
tags; for UPOS tags it is XTREME's published UD-POS number) and `accuracy` over words
(xlt.tasktypes.spans); per-sentence statistics tp, fp, fn, correct, words make every metric a sum.
Option `unaligned_tag` (a task file's `options:`): the tag predicted for a word the tokenizer turns into no
subwords (default: the first label, "O" for NER); such words are scored like any other.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from xlt.errors import XltError
from xlt.tasktypes.alignment import IGNORE, encode, special_tokens, windows
from xlt.tasktypes.base import TaskType
from xlt.tasktypes.fields import not_a_value, warn_empty
from xlt.tasktypes.spans import sentence_counts


def _as_list(value: Any) -> list | None:
    """A sentence's tokens or tags as a list (hub rows hold numpy arrays), None if it is not a sequence."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (list, tuple)):
        return list(value)
    return None


def _tag_ids(tags: list, lookup: dict, index: Mapping[str, int], label_map: Mapping[str, str], n: int) -> list:
    """Tag values (ClassLabel ints, label names, label_map words) as ids; -1 for an unknown value."""
    out = []
    for value in tags:
        key = int(value) if isinstance(value, (int, np.integer)) and not isinstance(value, bool) else value
        tag = lookup.get((type(key), key))
        if tag is None:
            if isinstance(key, int):
                tag = key if 0 <= key < n else -1
            else:
                text = str(key).strip()
                name = label_map.get(text, text) if label_map else text
                tag = index.get(name, -1)
            lookup[(type(key), key)] = tag
        out.append(tag)
    return out


class TokenClassification(TaskType):
    name = "token-classification"
    columns = ("tokens", "tags")
    extensions = {"tsv": "conll", "conll": "conll", "jsonl": "jsonl", "parquet": "parquet"}
    head = "token"
    metrics = ("f1", "precision", "recall", "accuracy")
    default_metrics = ("f1", "precision", "recall", "accuracy")
    report_metrics = ("f1",)
    option_keys = ("unaligned_tag",)
    feature_keys = ("max_seq_len", "window_step")
    example_unit = "sentences"
    count_columns = ("words",)

    # -- rows ---------------------------------------------------------------------------------------------
    def read_file(self, path, fmt: str) -> pd.DataFrame:
        if fmt == "conll":
            from xlt.tasktypes.conll import read_conll

            return read_conll(path)
        return super().read_file(path, fmt)

    def check_options(self, options: Mapping[str, Any]) -> list[str]:
        problems = super().check_options(options)
        if "unaligned_tag" in options and not isinstance(options["unaligned_tag"], str):
            problems.append(f"unaligned_tag must be one of the task's labels, got {options['unaligned_tag']!r}")
        return problems

    def unaligned_tag(self, options: Mapping[str, Any], label_names: Sequence[str], where: str) -> int:
        """The id of the tag predicted for a word with no subwords (option `unaligned_tag`, else label 0)."""
        tag = options.get("unaligned_tag", label_names[0])
        if tag not in label_names:
            raise XltError(f"{where}: options.unaligned_tag {tag!r} is not one of the labels {list(label_names)}; "
                           "set it to a label (e.g. O for NER, X for UPOS)")
        return list(label_names).index(tag)

    def prepare(self, frame: pd.DataFrame, source: Any, task: Any, where: str) -> pd.DataFrame:
        if source.drop_labels:
            raise XltError(f"{where}: `drop_labels` does not apply to {self.name} sources (a sentence has many "
                           f"tags); remove it from the source in {task.path}")
        self.unaligned_tag(task.option_values, task.label_names, f"task file {task.path}")
        names = list(task.label_names)
        index = {name: i for i, name in enumerate(names)}
        label_map, lookup = dict(source.label_map), {}
        tokens_out, tags_out = [], []
        unknown: dict[str, int] = {}
        first_unknown = None
        empty_words: list[tuple[int, int]] = []
        words = 0
        for row, (tokens, tags) in enumerate(zip(frame["tokens"], frame["tags"])):
            tokens, tags = _as_list(tokens), _as_list(tags)
            if tokens is None or tags is None:
                raise XltError(f"row {row} of {where} holds no list of {'tokens' if tokens is None else 'tags'} "
                               f"(columns {source.column('tokens')!r}, {source.column('tags')!r}); each row is "
                               "one sentence with a list of words and a list of tags")
            if len(tokens) != len(tags):
                raise XltError(f"row {row} of {where} has {len(tokens)} words but {len(tags)} tags; every word "
                               "needs exactly one tag")
            if not tokens:
                raise XltError(f"row {row} of {where} has no words: a sentence needs at least one; remove the row")
            for j, (word, tag) in enumerate(zip(tokens, tags)):   # never True == 1 or the word "None"
                for what, value, column in (("word", word, "tokens"), ("tag of word", tag, "tags")):
                    kind = not_a_value(value)
                    if kind is not None:
                        raise XltError(f"row {row} of {where}: {what} {j} ({source.column(column)!r}) is {kind} "
                                       f"({value!r}); fix the data (words are strings, tags label names or ids)")
                if word == "":
                    empty_words.append((row, j))
            words += len(tokens)
            ids = _tag_ids(tags, lookup, index, label_map, len(names))
            for value, tag in zip(tags, ids):
                if tag < 0:
                    unknown[str(value)] = unknown.get(str(value), 0) + 1
                    first_unknown = first_unknown if first_unknown is not None else (row, value)
            tokens_out.append([str(t) for t in tokens])
            tags_out.append(ids)
        if unknown:
            values = sorted(unknown, key=lambda v: -unknown[v])[:10]
            raise XltError(f"{sum(unknown.values())} tag(s) of {where} are not among the labels {names}: "
                           f"{values}; first in row {first_unknown[0]} ({first_unknown[1]!r}). Add a `label_map:` "
                           f"to the source in {task.path} or fix the data")
        if empty_words:
            warn_empty(where, "no characters", len(empty_words), words,
                       f"row {empty_words[0][0]} word {empty_words[0][1]}", unit="words")
        out = pd.DataFrame({"tokens": tokens_out, "tags": tags_out})
        out.attrs["dropped"] = 0
        return out

    # -- features and training ------------------------------------------------------------------------------
    def featurize(self, split, tokenizer: Any, params: Mapping[str, Any]):
        from xlt.data import Features, pad_id
        from xlt.spec import Hyperparams

        prefix, suffix = special_tokens(tokenizer)
        enc = encode(tokenizer, split.frame["tokens"].tolist())
        rows = windows(enc, split.frame["tags"].tolist(), prefix, suffix, int(params["max_seq_len"]),
                       int(params.get("window_step", Hyperparams.window_step)))
        return Features(rows.offsets, {"input_ids": rows.input_ids, "labels": rows.labels, "word": rows.word},
                        {"index": rows.index}, {"input_ids": pad_id(tokenizer), "labels": IGNORE, "word": -1})

    def loss(self, logits, batch: dict):
        import torch.nn.functional as F

        return F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), batch["labels"].reshape(-1),
                               ignore_index=IGNORE)

    def sift_logits(self, logits, batch: dict):
        return logits[batch["labels"] != IGNORE]          # (tagged subwords, C)

    # -- evaluation -----------------------------------------------------------------------------------------
    def decode(self, logits, batch: dict, feats) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(sentence, word, predicted tag id) for every word a row of the batch owns."""
        word = batch["word"]
        owned = word >= 0
        sentence = batch["index"][:, None].expand_as(word)
        pred = logits.argmax(-1).cpu()
        return sentence[owned].numpy(), word[owned].numpy(), pred[owned].numpy()

    def predictions(self, split, feats, decoded: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]]
                    ) -> pd.DataFrame:
        if split is None:
            raise XltError("tagging predictions need the split they were made for (its words and gold tags)")
        gold = split.frame["tags"].tolist()
        lengths = np.fromiter((len(t) for t in gold), dtype=np.int64, count=len(gold))
        base = np.concatenate([[0], np.cumsum(lengths)])
        fill = self.unaligned_tag(split.options, split.label_names, f"task {split.task}")
        pred = np.full(int(base[-1]), fill, dtype=np.int64)
        hits = np.zeros(int(base[-1]), dtype=np.int64)
        for sentence, word, tag in decoded:
            at = base[sentence] + word
            pred[at] = tag
            np.add.at(hits, at, 1)
        if (hits > 1).any():   # the alignment gives every word one owner window; anything else is a bug
            raise RuntimeError(f"{int((hits > 1).sum())} word(s) of {split.task} {split.split}-{split.lang} were "
                               "predicted more than once")
        names = np.asarray(split.label_names, dtype=object)
        flat_gold = np.fromiter((t for s in gold for t in s), dtype=np.int64, count=int(base[-1]))
        cut = base[1:-1]
        return pd.DataFrame({"idx": np.arange(len(gold)),
                             "label": [list(x) for x in np.split(names[flat_gold], cut)],
                             "pred": [list(x) for x in np.split(names[pred], cut)]})

    def statistics(self, predictions: pd.DataFrame) -> pd.DataFrame:
        labels = [list(x) for x in predictions["label"]]
        preds = [list(x) for x in predictions["pred"]]
        for i, (a, b) in enumerate(zip(labels, preds)):
            if len(a) != len(b):
                raise XltError(f"sentence {predictions['idx'].iloc[i]} has {len(a)} gold tags but {len(b)} "
                               "predicted ones; predict every word exactly once")
        return pd.DataFrame(sentence_counts(labels, preds), index=predictions.index)

    def metric_formulas(self, task: Any = None) -> dict[str, dict]:
        # seqeval (and sklearn) give 0 where a denominator is 0, as xlt.formulas does
        return {"f1": {"f1": ["tp", "fp", "fn"]}, "precision": {"precision": ["tp", "fp"]},
                "recall": {"recall": ["tp", "fn"]}, "accuracy": {"ratio": ["correct", "words"]}}

    def collapsed(self, predictions: pd.DataFrame) -> bool:
        tags = {t for row in predictions["pred"] for t in row}
        return sum(len(row) for row in predictions["pred"]) > 1 and len(tags) == 1

    def external_predictions(self, split, path) -> pd.DataFrame:
        """Tags predicted by another system, in XTREME's submission layout: one `tag` (or `token<TAB>tag`)
        line per word, a blank line after each sentence, sentences in the split's order."""
        from xlt.tasktypes.conll import read_sentences

        path = Path(path)
        sentences = read_sentences(path, (1, 2))
        words = split.frame["tokens"].tolist()
        if len(sentences) != len(words):
            raise XltError(f"{path} holds {len(sentences)} sentences but {split.task} {split.split}-{split.lang} "
                           f"has {len(words)}; write one block per sentence, in the split's order")
        names = list(split.label_names)
        preds = []
        for i, (lines, gold_words) in enumerate(zip(sentences, words)):
            if len(lines) != len(gold_words):
                raise XltError(f"{path}: sentence {i} has {len(lines)} predicted tags for {len(gold_words)} words")
            for j, fields in enumerate(lines):
                if len(fields) == 2 and fields[0] != gold_words[j]:
                    raise XltError(f"{path}: sentence {i} word {j} is {fields[0]!r} but the split has "
                                   f"{gold_words[j]!r}; the predictions are not aligned with the split")
            tags = [f[-1].strip() for f in lines]
            bad = [t for t in tags if t not in names]
            if bad:
                raise XltError(f"{path}: sentence {i} predicts {bad[:5]}, not labels of this task ({names})")
            preds.append(tags)
        gold = [[names[t] for t in s] for s in split.frame["tags"]]
        return pd.DataFrame({"idx": np.arange(len(gold)), "label": gold, "pred": preds})

    def metric_caption(self, task_info: Mapping[str, Any]) -> str:
        metric = str(task_info.get("primary_metric", "f1"))
        if metric == "accuracy":
            return "word accuracy (words whose predicted tag is the gold tag)"
        if metric not in ("f1", "precision", "recall"):
            return metric
        what = {"f1": "F1", "precision": "precision", "recall": "recall"}[metric]
        labels = list(task_info.get("label_names") or [])
        if labels and all(t == "O" or t[:2] in ("B-", "I-", "E-", "S-") for t in labels):
            return f"entity-level micro {what} (seqeval default mode)"
        return (f"seqeval micro {what} over the tags read as chunks (XTREME's published metric for such tags, "
                "e.g. UD-POS; not token accuracy, which is `accuracy`)")


TASK_TYPE = TokenClassification()
