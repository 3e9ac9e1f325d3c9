"""Entity spans and their per-sentence counts, exactly as seqeval's default mode finds them.

XTREME scores PAN-X *and* UD-POS with `seqeval.metrics.f1_score` on lists of sentences (run_tag.py,
evaluate.py). seqeval joins the sentences with an "O" between them and chunks the joined sequence: a tag is
split into a prefix (its first character) and a type (the rest after the first "-", or "_"), and a chunk
starts or ends by the prefix/type rules of `seqeval.metrics.sequence_labeling` (`start_of_chunk`,
`end_of_chunk`). So "I-PER" after "O" opens an entity, and for UPOS tags ("NOUN": prefix "N", type "OUN") a
run of equal tags is one chunk: XTREME's UD-POS number is an F1 over such chunks, not token accuracy (see
google-research/xtreme issue #56).

`chunks` ports that state machine without seqeval's per-token warnings; `sentence_counts` gives each sentence
its true positives, false positives and false negatives (a chunk belongs to the sentence holding its last
word), so corpus precision, recall and F1 are sums over sentences and a paired bootstrap resamples sentences
and re-sums. tests/test_token_classification.py checks the totals against seqeval on every shared file.
"""

from __future__ import annotations

import itertools
from typing import Sequence

import numpy as np

MAX_TYPES = 1024   # entity types a chunk key can tell apart


def split_tag(tag: str) -> tuple[str, str]:
    """(prefix, type) as seqeval's get_entities reads a tag (suffix=False)."""
    return tag[0], (tag[1:].split("-", maxsplit=1)[-1] or "_")


def _end_of_chunk(prev_tag: str, tag: str, prev_type: str, type_: str) -> bool:
    if prev_tag in ("E", "S"):
        return True
    if prev_tag in ("B", "I") and tag in ("B", "S", "O"):
        return True
    return prev_tag not in ("O", ".") and prev_type != type_


def _start_of_chunk(prev_tag: str, tag: str, prev_type: str, type_: str) -> bool:
    if tag in ("B", "S"):
        return True
    if prev_tag in ("E", "S", "O") and tag in ("E", "I"):
        return True
    return tag not in ("O", ".") and prev_type != type_


class _Joined:
    """Sentences joined by "O" as seqeval joins them (plus the final "O" it appends), as integer tag codes."""

    def __init__(self, sentences: Sequence[Sequence[str]], vocab: dict[str, int]):
        self.lengths = np.fromiter((len(s) for s in sentences), dtype=np.int64, count=len(sentences))
        self.starts = np.zeros(len(sentences), dtype=np.int64)   # offset of each sentence in the join
        if len(sentences):
            np.cumsum(self.lengths[:-1] + 1, out=self.starts[1:])
        flat = itertools.chain(itertools.chain.from_iterable(itertools.chain(s, ("O",)) for s in sentences),
                               ("O",))
        self.codes = np.fromiter((vocab.setdefault(t, len(vocab)) for t in flat), dtype=np.int64,
                                 count=int(self.lengths.sum()) + len(sentences) + 1)

    def word_positions(self) -> np.ndarray:
        """Offsets of the words (not the separators) in the join."""
        within = np.arange(int(self.lengths.sum())) - np.repeat(np.cumsum(self.lengths) - self.lengths,
                                                                 self.lengths)
        return np.repeat(self.starts, self.lengths) + within


def _chunk_keys(codes: np.ndarray, tags: list[str], types: dict[str, int], size: int) -> np.ndarray:
    """Chunks of a joined sequence as int keys (last * size + first) * MAX_TYPES + type, increasing (one
    chunk ends at each position at most).

    Whether a chunk ends or starts at position i depends only on the tags at i-1 and i, so both are looked
    up in tables over pairs of distinct tags. A chunk ending at i began at the last start before i (or at 0,
    seqeval's initial offset, if none did). Before position 0 is seqeval's initial state: prefix "O", type "".
    """
    parts = [split_tag(t) for t in tags] + [("O", "")]      # the initial state takes the last code
    k = len(parts)
    end = np.zeros((k, k), dtype=bool)
    start = np.zeros((k, k), dtype=bool)
    for a, (prefix_a, type_a) in enumerate(parts):
        for b, (prefix_b, type_b) in enumerate(parts):
            end[a, b] = _end_of_chunk(prefix_a, prefix_b, type_a, type_b)
            start[a, b] = _start_of_chunk(prefix_a, prefix_b, type_a, type_b)
    type_code = np.array([types.setdefault(t, len(types)) for _, t in parts], dtype=np.int64)
    if len(types) > MAX_TYPES:
        raise ValueError(f"more than {MAX_TYPES} entity types")
    prev = np.concatenate([[k - 1], codes[:-1]])
    end_at = np.flatnonzero(end[prev, codes])
    start_at = np.flatnonzero(start[prev, codes])
    before = np.searchsorted(start_at, end_at, side="left") - 1
    first = np.where(before >= 0, start_at[np.maximum(before, 0)], 0)
    return ((end_at - 1) * size + first) * MAX_TYPES + type_code[prev[end_at]]


def _keys(*sequences: Sequence[Sequence[str]]) -> tuple[list[_Joined], list[np.ndarray], dict[str, int], int]:
    vocab: dict[str, int] = {}
    joined = [_Joined(s, vocab) for s in sequences]
    tags = sorted(vocab, key=vocab.get)
    types: dict[str, int] = {}
    size = max(len(j.codes) for j in joined) + 1
    return joined, [_chunk_keys(j.codes, tags, types, size) for j in joined], types, size


def chunks(sentences: Sequence[Sequence[str]]) -> list[tuple[str, int, int]]:
    """seqeval's `get_entities` of the sentences joined by "O": (type, first, last) offsets into the join
    (sentence k starts at the sum of the earlier lengths + k)."""
    _, (keys,), types, size = _keys(sentences)
    names = sorted(types, key=types.get)
    return [(names[key % MAX_TYPES], key // MAX_TYPES % size, key // MAX_TYPES // size) for key in keys.tolist()]


def sentence_counts(labels: Sequence[Sequence[str]], preds: Sequence[Sequence[str]]) -> dict[str, np.ndarray]:
    """Per sentence: tp, fp, fn (seqeval's chunks, matched by type and exact offsets), correct (words whose
    predicted tag equals the gold one) and words. The column sums give seqeval's corpus counts."""
    (gold_join, pred_join), (gold, pred), _, size = _keys(labels, preds)
    if not np.array_equal(gold_join.lengths, pred_join.lengths):
        raise ValueError("every sentence needs as many predicted tags as gold tags")
    n, starts = len(labels), gold_join.starts

    def per_sentence(keys: np.ndarray) -> np.ndarray:
        last = keys // MAX_TYPES // size
        return np.bincount(np.searchsorted(starts, last, side="right") - 1, minlength=n).astype(float)

    at = np.minimum(np.searchsorted(pred, gold), max(len(pred) - 1, 0))
    found = (pred[at] == gold) if len(pred) else np.zeros(len(gold), dtype=bool)   # both sorted, unique
    tp = gold[found]
    words = gold_join.word_positions()
    same = gold_join.codes[words] == pred_join.codes[words]
    sentence = np.repeat(np.arange(n), gold_join.lengths)
    tp_count = per_sentence(tp)
    return {"tp": tp_count, "fp": per_sentence(pred) - tp_count, "fn": per_sentence(gold) - tp_count,
            "correct": np.bincount(sentence[same], minlength=n).astype(float),
            "words": gold_join.lengths.astype(float)}
