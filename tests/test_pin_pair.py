"""Pins on the sentence-pair type's numbers: per-example statistics and metrics from their totals against
scikit-learn (also on bootstrap resamples), predictions back in source order, argmax decoding, and label
values of every form mapped to the task's ids."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

import tests.hypothesis_home  # noqa: F401  (before hypothesis is used)
from hypothesis import given, settings
from hypothesis import strategies as st

from xlt.errors import XltError
from xlt.tasktypes import get_task_type
from xlt.tasktypes.pair_classification import _label_ids

PROPERTY = settings(max_examples=150, deadline=None, database=None, derandomize=True)
TT = get_task_type("pair-classification")
LABELS = ("entailment", "neutral", "contradiction")

label_pairs = st.integers(1, 40).flatmap(lambda n: st.tuples(st.lists(st.integers(0, 3), min_size=n, max_size=n),
                                                              st.lists(st.integers(0, 3), min_size=n, max_size=n)))


def frame_of(labels, preds):
    return pd.DataFrame({"idx": range(len(labels)), "label": labels, "pred": preds})


@PROPERTY
@given(label_pairs, st.integers(0, 2**32 - 1))
def test_metrics_from_summed_statistics_equal_sklearn_on_the_examples_and_on_resamples(pair, seed):
    """The bootstrap's path (statistics -> column sums of a resample -> metric_from_totals) must give what
    sklearn gives on the resampled examples. Would catch a class counted as fp instead of fn, a class left out
    of (or added to) the macro average, 0/0 not read as 0, or accuracy divided by the wrong n."""
    from sklearn.metrics import accuracy_score, f1_score

    labels, preds = map(np.array, pair)
    frame = frame_of(labels, preds)
    stats = TT.statistics(frame)
    assert list(stats.index) == list(frame.index)
    draws = np.random.default_rng(seed).integers(0, len(frame), size=(3, len(frame)))
    totals = {c: stats[c].to_numpy()[draws].sum(axis=1) for c in stats.columns}
    acc = TT.metric_from_totals("accuracy", totals, len(frame))
    f1 = TT.metric_from_totals("macro_f1", totals, len(frame))
    for i, rows in enumerate(draws):
        assert acc[i] == pytest.approx(accuracy_score(labels[rows], preds[rows]), abs=1e-12)
        # classes absent from the resample but present in the full set have 0/0 = 0 terms in xlt's totals:
        # sklearn's labels= argument averages over the same classes
        classes = np.union1d(labels, preds)
        assert f1[i] == pytest.approx(f1_score(labels[rows], preds[rows], labels=classes, average="macro",
                                               zero_division=0), abs=1e-12)
    got = TT.score(frame, ["accuracy", "macro_f1"])
    assert got == pytest.approx({"accuracy": accuracy_score(labels, preds),
                                 "macro_f1": f1_score(labels, preds, average="macro"), "n": len(frame)}, abs=1e-12)


def test_statistics_on_a_hand_case():
    """labels 0 0 1 2, preds 0 1 1 1: class 0 tp 1 fn 1, class 1 tp 1 fp 2, class 2 fn 1."""
    stats = TT.statistics(frame_of([0, 0, 1, 2], [0, 1, 1, 1]))
    assert stats["correct"].tolist() == [1, 0, 1, 0]
    assert stats[["tp_0", "fp_0", "fn_0"]].sum().tolist() == [1, 0, 1]
    assert stats[["tp_1", "fp_1", "fn_1"]].sum().tolist() == [1, 2, 0]
    assert stats[["tp_2", "fp_2", "fn_2"]].sum().tolist() == [0, 0, 1]
    totals = {c: np.asarray(stats[c].sum()) for c in stats.columns}
    # F1: class 0 2/3, class 1 2/4, class 2 0 -> mean 7/18
    assert float(TT.metric_from_totals("macro_f1", totals, 4)) == pytest.approx(7 / 18)
    assert float(TT.metric_from_totals("accuracy", totals, 4)) == 0.5
    with pytest.raises(XltError, match="unknown metric 'f1'"):
        TT.metric_from_totals("f1", totals, 4)


def test_decode_is_the_argmax_per_row_with_the_batch_rows():
    logits = torch.tensor([[0.1, 2.0, -1.0], [3.0, 2.9, 0.0], [-5.0, -4.0, -3.0]])
    rows, preds = TT.decode(logits, {"row": torch.tensor([7, 2, 5])}, None)
    assert rows.tolist() == [7, 2, 5] and preds.tolist() == [1, 0, 2]


class Feats:
    def __init__(self, index, labels):
        self.index, self.rows = np.asarray(index), {"labels": np.asarray(labels)}

    def __len__(self):
        return len(self.index)


def test_predictions_come_back_in_source_order_whatever_the_batching():
    """Model rows hold examples 3 1 0 2 (a length-sorted order); batches decode rows in yet another order.
    Would catch a prediction written to the batch position instead of its row, or rows not sorted back."""
    feats = Feats(index=[3, 1, 0, 2], labels=[2, 1, 0, 1])
    decoded = [(np.array([2, 0]), np.array([0, 2])), (np.array([3]), np.array([1])), (np.array([1]), np.array([0]))]
    out = TT.predictions(None, feats, decoded)
    # row 2 is example 0 -> 0; row 1 example 1 -> 0; row 3 example 2 -> 1; row 0 example 3 -> 2
    assert out["idx"].tolist() == [0, 1, 2, 3] and out["label"].tolist() == [0, 1, 1, 2]
    assert out["pred"].tolist() == [0, 0, 1, 2]
    assert TT.predictions(None, feats, [])["pred"].tolist() == [-1] * 4    # never predicted: -1, not a class


@pytest.mark.parametrize("values, label_map, expected", [
    ([0, 2, 1, 2.0, "1", " 2 ", "neutral", "contradiction"], {}, [0, 2, 1, 2, 1, 2, 1, 2]),
    ([3, -1, "3", "-1", "1.5", "", None, "Neutral", 2.5, -0.0], {}, [-1, -1, -1, -1, -1, -1, -1, -1, -1, 0]),
    (["c", "e", 0, "n", "neutral", 1.0], {"c": "contradiction", "e": "entailment", "0": "entailment", "1": "neutral"},
     [2, 0, 0, -1, -1, 1]),
])
def test_label_values_map_to_the_task_ids_and_anything_else_to_minus_one(values, label_map, expected):
    """Ids follow `labels:`; with a label_map only its keys count; the highest id (2) is in, 3 and -1 are out.
    Would catch an off-by-one range check, a label_map read the wrong way round, or floats not read as ints."""
    assert _label_ids(values, label_map, LABELS).tolist() == expected


class Source:
    def __init__(self, drop_labels=(), label_map=()):
        self.drop_labels, self.label_map = tuple(drop_labels), tuple(label_map)

    def column(self, role):
        return {"text_a": "premise", "text_b": "hypothesis", "label": "gold"}[role]


class Task:
    label_names, path = LABELS, "pin.yaml"


def test_prepare_drops_the_listed_labels_counts_them_and_reindexes():
    """PAWS-X style: -1 rows (as ints, floats or text) are dropped and counted; the rest keep their order."""
    frame = pd.DataFrame({"text_a": ["a", "b", "c", "d", "e"], "text_b": ["1", "2", "3", "4", "5"],
                          "label": [1.0, -1.0, 2.0, float("nan"), 0.0]})
    with pytest.raises(XltError, match=r"row 2 of pin: label \('gold'\) is null"):
        TT.prepare(frame.copy(), Source(drop_labels=("-1",)), Task(), "pin")
    out = TT.prepare(frame.copy(), Source(drop_labels=("-1", "nan")), Task(), "pin")
    assert out["text_a"].tolist() == ["a", "c", "e"] and out["label"].tolist() == [1, 2, 0]
    assert list(out.index) == [0, 1, 2] and out.attrs["dropped"] == 2
    kept = TT.prepare(frame.iloc[[0, 2, 4]].reset_index(drop=True), Source(), Task(), "pin")
    assert kept.attrs["dropped"] == 0 and kept["label"].tolist() == [1, 2, 0]


def test_refused_labels_are_counted_listed_and_located():
    frame = pd.DataFrame({"text_a": list("abcdef"), "text_b": list("uvwxyz"),
                          "label": ["0", "9", "x", "9", "2", "w"]})
    with pytest.raises(XltError, match=r"4 row\(s\) of pin have a label outside \['entailment', 'neutral', "
                                       r"'contradiction'\]: values \['9', 'w', 'x'\]; first at row 1: \{'premise': "
                                       r"'b', 'hypothesis': 'v', 'gold': '9'\}"):
        TT.prepare(frame, Source(), Task(), "pin")


@pytest.mark.parametrize("metric", ["acc", "accuracy_", "f1", "Accuracy", "precision", "micro_f1"])
def test_an_unknown_metric_is_refused_by_the_bootstrap_path(metric):
    """Would catch: the metric chosen by string order (`<=` for `==`), so "acc" or "Accuracy" from a task file
    silently bootstraps accuracy instead of naming the metrics the type knows."""
    totals = {"correct": np.array([3.0]), "tp_0": np.array([1.0]), "fp_0": np.array([0.0]), "fn_0": np.array([1.0])}
    with pytest.raises(XltError, match="unknown metric"):
        TT.metric_from_totals(metric, totals, 4)


def test_macro_f1_from_fractional_totals_averaged_over_seeds():
    """Statistics averaged over seeds make fractional totals: a class predicted right by one seed in three has
    tp 1/3 and F1 1 (nothing wrong), not 0. Would catch: a zero-denominator guard written as `denom > 1`."""
    third = np.array([1 / 3])
    totals = {"tp_0": third, "fp_0": np.zeros(1), "fn_0": np.zeros(1),
              "tp_1": np.zeros(1), "fp_1": np.zeros(1), "fn_1": third}
    np.testing.assert_allclose(TT.metric_from_totals("macro_f1", totals, 1), [0.5])

