import numpy as np
import pytest

from xlt.errors import XltError
from xlt.metrics import accuracy, macro_f1, score


def test_score_values_and_count():
    labels = [0, 0, 1, 1, 2, 2]
    preds = [0, 1, 1, 1, 2, 0]
    out = score(["accuracy", "macro_f1"], labels, preds)
    assert out["n"] == 6 and out["accuracy"] == pytest.approx(4 / 6)
    # per class F1: 0 -> 0.5, 1 -> 0.8, 2 -> 2/3
    assert out["macro_f1"] == pytest.approx((0.5 + 0.8 + 2 / 3) / 3)


def test_macro_f1_matches_definition_on_random_data():
    rng = np.random.default_rng(0)
    labels, preds = rng.integers(0, 3, 500), rng.integers(0, 3, 500)
    f1s = []
    for c in range(3):
        p = ((preds == c) & (labels == c)).sum() / max((preds == c).sum(), 1)
        r = ((preds == c) & (labels == c)).sum() / max((labels == c).sum(), 1)
        f1s.append(2 * p * r / (p + r) if p + r else 0.0)
    assert macro_f1(labels, preds) == pytest.approx(np.mean(f1s))
    assert accuracy(labels, labels) == 1.0


def test_bad_input():
    with pytest.raises(XltError, match="unknown metric"):
        score(["bleu"], [0], [0])
    with pytest.raises(XltError, match="2 labels but 1 predictions"):
        score(["accuracy"], [0, 1], [0])
    with pytest.raises(XltError, match="zero examples"):
        score(["accuracy"], [], [])
