"""Sentence-pair classification (XNLI, PAWS-X, AmericasNLI, IndicXNLI): two texts in, one label out.

Rows: `text_a`, `text_b`, `label` (an id 0..n-1 after `prepare`). Features: one model row per pair,
truncated longest-first to `max_seq_len`. Head: a sequence classifier over [CLS]; loss: cross-entropy.
Predictions: `label`, `pred` as ids. Metrics: accuracy and macro F1 (xlt.metrics); per-example statistics
are correctness and per-class true/false positive/negative counts, so both metrics can be bootstrapped.
"""

from __future__ import annotations

import itertools
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from xlt.errors import XltError
from xlt.tasktypes.base import TaskType
from xlt.tasktypes.fields import ascii_int, not_a_value, text_column, warn_empty


def _label_ids(values, label_map: Mapping[str, str], label_names: Sequence[str]) -> np.ndarray:
    """Map source label values (ints, ASCII digit strings, names or label_map words) to 0..n-1; -1 if unknown.
    A null, boolean, list or object is never a label (-1), whatever it compares equal to (True == 1)."""
    index = {name: i for i, name in enumerate(label_names)}
    lookup: dict = {}
    out = np.empty(len(values), dtype=np.int64)
    for i, v in enumerate(values):
        if not_a_value(v) is not None:
            out[i] = -1
            continue
        key = (type(v), v)
        if key in lookup:
            out[i] = lookup[key]
            continue
        text = str(v).strip()
        if isinstance(v, float) and v.is_integer():
            text = str(int(v))
        number = ascii_int(text)
        if label_map:
            name = label_map.get(text)
            label = index[name] if name is not None else -1
        elif text in index:
            label = index[text]
        elif number is not None and 0 <= number < len(label_names):
            label = number
        else:
            label = -1
        lookup[key] = label
        out[i] = label
    return out


class PairClassification(TaskType):
    name = "pair-classification"
    columns = ("text_a", "text_b", "label")
    extensions = {"tsv": "tsv", "csv": "csv", "jsonl": "jsonl", "parquet": "parquet"}
    head = "classification"
    metrics = ("accuracy", "macro_f1")
    default_metrics = ("accuracy",)
    report_metrics = ("accuracy",)
    example_unit = "pairs"

    def prepare(self, frame: pd.DataFrame, source: Any, task: Any, where: str) -> pd.DataFrame:
        for role in ("text_a", "text_b"):   # a missing text is empty (counted below), never "nan" or "None"
            frame[role] = text_column(frame[role].tolist(), where, role, source.column(role), allow_null=True)
        empty = {role: (frame[role].str.strip() == "").to_numpy() for role in ("text_a", "text_b")}
        if (empty["text_a"] & empty["text_b"]).any():
            row = int((empty["text_a"] & empty["text_b"]).argmax())
            raise XltError(f"row {row} of {where} has no text ({source.column('text_a')!r} and "
                           f"{source.column('text_b')!r} are both empty); remove the row or fix the file")
        for role, rows in empty.items():
            found = np.flatnonzero(rows)
            if len(found):
                warn_empty(where, f"an empty {role} ({source.column(role)!r})", len(found), len(frame),
                           f"row {found[0]}")
        dropped = 0
        if source.drop_labels:
            raw = frame["label"].map(lambda v: str(int(v)) if isinstance(v, float) and v.is_integer()
                                     else str(v).strip())
            keep = ~raw.isin(source.drop_labels).to_numpy()
            dropped = int((~keep).sum())
            frame = frame.loc[keep].reset_index(drop=True)
            if len(frame) == 0:
                raise XltError(f"empty split: every row of {where} has a label in drop_labels "
                               f"{list(source.drop_labels)}")
        for row, value in enumerate(frame["label"].tolist()):   # after drop_labels, which may list "nan"
            kind = not_a_value(value)
            if kind is not None:
                raise XltError(f"row {row} of {where}: label ({source.column('label')!r}) is {kind} ({value!r}), "
                               "not a label name or id; fix the data")
        labels = _label_ids(frame["label"].tolist(), dict(source.label_map), task.label_names)
        bad = labels < 0
        if bad.any():
            i = int(bad.argmax())
            sample = {source.column(r): frame.iloc[i][r] for r in self.columns}
            values = sorted({str(v) for v in frame["label"][bad]})[:10]
            raise XltError(f"{int(bad.sum())} row(s) of {where} have a label outside {list(task.label_names)}: "
                           f"values {values}; first at row {i}: {sample}. Add a `label_map:` to the source in "
                           f"{task.path} or fix the data")
        frame["label"] = labels
        frame.attrs["dropped"] = dropped
        return frame

    def featurize(self, split, tokenizer: Any, params: Mapping[str, Any], chunk: int = 2048):
        from xlt.data import Features, pad_id

        frame, max_len = split.frame, int(params["max_seq_len"])
        a, b = frame["text_a"].tolist(), frame["text_b"].tolist()
        ids, types = [], []
        for start in range(0, len(a), chunk):
            enc = tokenizer(a[start:start + chunk], b[start:start + chunk], truncation="longest_first",
                            max_length=max_len, padding=False, return_attention_mask=False)
            ids += enc["input_ids"]
            if enc.get("token_type_ids") is not None:
                types += enc["token_type_ids"]
        lengths = np.fromiter(map(len, ids), dtype=np.int64, count=len(ids))
        offsets = np.zeros(len(ids) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        total = int(offsets[-1])
        tokens = {"input_ids": np.fromiter(itertools.chain.from_iterable(ids), dtype=np.int32, count=total)}
        if types:
            tokens["token_type_ids"] = np.fromiter(itertools.chain.from_iterable(types), dtype=np.int8, count=total)
        rows = {"index": np.arange(len(frame), dtype=np.int64), "labels": frame["label"].to_numpy(dtype=np.int64)}
        return Features(offsets, tokens, rows, {"input_ids": pad_id(tokenizer), "token_type_ids": 0})

    def loss(self, logits, batch: dict):
        import torch.nn.functional as F

        return F.cross_entropy(logits.float(), batch["labels"])

    def decode(self, logits, batch: dict, feats) -> tuple[np.ndarray, np.ndarray]:
        return batch["row"].numpy(), logits.argmax(-1).cpu().numpy()

    def predictions(self, split, feats, decoded: Sequence[tuple[np.ndarray, np.ndarray]]) -> pd.DataFrame:
        pred = np.full(len(feats), -1, dtype=np.int64)
        for rows, values in decoded:
            pred[rows] = values
        order = np.argsort(feats.index, kind="stable")
        return pd.DataFrame({"idx": feats.index[order], "label": feats.rows["labels"][order],
                             "pred": pred[order]})

    def statistics(self, predictions: pd.DataFrame) -> pd.DataFrame:
        labels, preds = predictions["label"].to_numpy(), predictions["pred"].to_numpy()
        stats = {"correct": (labels == preds).astype(float)}
        for c in np.union1d(labels, preds):   # the classes present, as macro_f1 averages them
            stats[f"tp_{c}"] = ((preds == c) & (labels == c)).astype(float)
            stats[f"fp_{c}"] = ((preds == c) & (labels != c)).astype(float)
            stats[f"fn_{c}"] = ((preds != c) & (labels == c)).astype(float)
        return pd.DataFrame(stats, index=predictions.index)

    def metric_formulas(self, task: Any = None) -> dict[str, dict]:
        # macro F1 over the classes in the labels or the predictions (the columns statistics gives them)
        return {"accuracy": {"mean": "correct"}, "macro_f1": {"macro_f1": []}}

    def external_predictions(self, split, path) -> pd.DataFrame:
        """A table (csv/tsv/jsonl/parquet) with columns `id` (the pair's 0-based position in the split's
        file) and `pred` (a label name or id); every pair must be predicted exactly once."""
        from pathlib import Path

        from xlt.formats import read_table

        path = Path(path)
        table = read_table(path, path.suffix.lstrip(".") if path.suffix.lstrip(".") in self.extensions else "csv")
        if not {"id", "pred"} <= set(table.columns):
            raise XltError(f"{path} needs columns id and pred (it has {', '.join(map(str, table.columns))})")
        ids = pd.to_numeric(table["id"], errors="coerce")
        n = len(split.frame)
        if ids.isna().any() or not ids.between(0, n - 1).all() or ids.duplicated().any() or len(ids) != n:
            raise XltError(f"{path}: `id` must be each pair's position 0..{n - 1} in the split, once each "
                           f"({len(ids)} rows given for {n} pairs)")
        preds = _label_ids(table["pred"].tolist(), {}, split.label_names)
        if (preds < 0).any():
            bad = sorted({str(v) for v in table["pred"][preds < 0]})[:5]
            raise XltError(f"{path}: predictions {bad} are not labels of this task ({list(split.label_names)})")
        pred = np.empty(n, dtype=np.int64)
        pred[ids.to_numpy(dtype=np.int64)] = preds
        return pd.DataFrame({"idx": np.arange(n), "label": split.frame["label"].to_numpy(dtype=np.int64),
                             "pred": pred})

    def collapsed(self, predictions: pd.DataFrame) -> bool:
        return len(predictions) > 1 and predictions["pred"].nunique() == 1

    def metric_caption(self, task_info: Mapping[str, Any]) -> str:
        return {"accuracy": "accuracy", "macro_f1": "macro-averaged F1 over the classes"}.get(
            str(task_info.get("primary_metric", "accuracy")), str(task_info.get("primary_metric")))


TASK_TYPE = PairClassification()
