"""Metrics against scikit-learn, the field's reference implementation, on random labels and predictions."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import accuracy_score, f1_score

from tests import hypothesis_home  # noqa: F401  (hypothesis' files in a temp dir, not ./.hypothesis)

# Imports from xlt in one place.
from xlt.errors import XltError
from xlt.metrics import accuracy, macro_f1, score

PROPERTY = settings(max_examples=200, deadline=None, derandomize=True, database=None)


@st.composite
def labelled(draw, max_classes=6):
    """(labels, predictions, number of classes): often with classes that never occur, or occur only in one."""
    k = draw(st.integers(2, max_classes))
    n = draw(st.integers(1, 60))
    labels = draw(st.lists(st.integers(0, k - 1), min_size=n, max_size=n))
    preds = draw(st.lists(st.integers(0, k - 1), min_size=n, max_size=n))
    return np.array(labels), np.array(preds), k


@PROPERTY
@given(labelled())
def test_accuracy_and_macro_f1_equal_sklearn(case):
    """Catches a swapped precision/recall term, a class average that skips (or adds) classes, and an accuracy
    that is not the fraction of exact matches. sklearn's default macro F1 averages over the classes present in
    labels or predictions, with F1 = 0 for a class that has no true positives."""
    labels, preds, k = case
    got = score(["accuracy", "macro_f1"], labels.tolist(), preds.tolist())
    assert got["n"] == len(labels)
    assert got["accuracy"] == pytest.approx(accuracy_score(labels, preds), abs=1e-12)
    assert got["macro_f1"] == pytest.approx(f1_score(labels, preds, average="macro", zero_division=0), abs=1e-12)
    # over a fixed label set (classes absent from both count as F1 0), as sklearn's labels= does
    assert macro_f1(labels, preds, num_labels=k) == pytest.approx(
        f1_score(labels, preds, labels=list(range(k)), average="macro", zero_division=0), abs=1e-12)


def test_macro_f1_differs_from_micro_and_weighted_on_skewed_classes():
    """An input where macro, micro and weighted F1 all differ, so a metric computing another average fails."""
    labels = np.array([0] * 8 + [1, 1, 2, 2])
    preds = np.array([0] * 7 + [1] + [1, 0, 2, 1])
    macro = f1_score(labels, preds, average="macro")
    assert len({round(macro, 6), round(f1_score(labels, preds, average="micro"), 6),
                round(f1_score(labels, preds, average="weighted"), 6)}) == 3
    assert macro_f1(labels, preds) == pytest.approx(macro)
    assert accuracy(labels, preds) == pytest.approx(9 / 12)


def test_score_shapes_and_errors():
    got = score(["macro_f1"], np.array([[0, 1], [1, 1]]), [0, 1, 0, 1])     # flattened, paired in order
    assert got == {"macro_f1": pytest.approx(f1_score([0, 1, 1, 1], [0, 1, 0, 1], average="macro")), "n": 4}
    with pytest.raises(XltError, match="3 labels but 2 predictions"):
        score(["accuracy"], [0, 1, 2], [0, 1])
    with pytest.raises(XltError, match="2 labels but 3 predictions"):
        score(["accuracy"], [0, 1], [0, 1, 2])
    with pytest.raises(XltError, match="cannot score zero examples"):
        score(["accuracy"], [], [])
    with pytest.raises(XltError, match="unknown metric 'f1'; known: accuracy, macro_f1"):
        score(["f1"], [0], [0])
