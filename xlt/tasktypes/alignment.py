"""Words to subword windows and back: the alignment a tagger trains and predicts on.

Words are split into subwords by the fast tokenizer (`is_split_into_words=True`, its `word_ids()`). The first
subword of a word carries the word's tag, the others are ignored by the loss (-100): the convention of
XTREME's `utils_tag.py` and transformers' `run_ner.py`.

A sentence longer than the window is cut into overlapping windows, never truncated (transformers' `run_ner.py`
truncates and loses the tail; PAN-X has sentences of 400-700+ words, zh is split into characters). The body of
a window holds `max_seq_len` minus the tokenizer's special tokens; consecutive windows start `step` subwords
apart, `step = min(window_step, body // 2)`: the `window_step` hyperparameter, capped at half a window so that
windows overlap by at least half and every word has a quarter window of context on each side. The last window
ends at the sentence's end.

Every word is owned by exactly one window, the one where it has the most context: the largest distance from
its first subword to a window edge that cuts the sentence (a window edge at the sentence's start or end cuts
nothing); ties go to the earlier window. A word carries its tag (training) and gets its prediction
(evaluation) in its owner window only, so each word counts once in the loss and once in the metrics.

A word the tokenizer turns into no subwords at all (XLM-R drops a lone zero-width space) has no position in
any window. It is still a word of the sentence: `TokenClassification.predictions` gives it the task's
`unaligned_tag` and scores it like any other word.

    rows = windows(enc, tags, prefix, suffix, max_seq_len, window_step)  # Rows: tokens, labels, word, index
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from xlt.errors import XltError

IGNORE = -100   # cross-entropy's ignore_index: subwords that carry no tag


@dataclass
class Encoded:
    """Subwords of a batch of sentences, flat: sentence k's subwords are ids[offsets[k]:offsets[k+1]]."""

    ids: np.ndarray       # (subwords,) token ids
    words: np.ndarray     # (subwords,) index of the word each subword belongs to
    offsets: np.ndarray   # (sentences + 1,)


@dataclass
class Rows:
    """Model rows (windows) as flat token arrays cut by `offsets`, and each row's sentence."""

    offsets: np.ndarray   # (rows + 1,)
    input_ids: np.ndarray
    labels: np.ndarray    # tag id on a word's first subword in its owner window, IGNORE elsewhere
    word: np.ndarray      # the word's position in its sentence where `labels` has a tag, -1 elsewhere
    index: np.ndarray     # (rows,) the sentence each row comes from


def special_tokens(tokenizer: Any) -> tuple[list[int], list[int]]:
    """The ids a tokenizer puts before and after one sequence ([CLS] ... [SEP], <s> ... </s>, or none)."""
    inner = tokenizer("a", add_special_tokens=False)["input_ids"]
    outer = tokenizer("a", add_special_tokens=True)["input_ids"]
    for start in range(len(outer) - len(inner) + 1):
        if outer[start:start + len(inner)] == inner:
            return list(outer[:start]), list(outer[start + len(inner):])
    raise XltError(f"cannot tell the special tokens of tokenizer {type(tokenizer).__name__}: its output for 'a' "
                   f"with special tokens ({outer}) does not contain the one without ({inner})")


def encode(tokenizer: Any, sentences: Sequence[Sequence[str]], chunk: int = 1024) -> Encoded:
    """Subword ids and word indices of pre-split sentences (no special tokens); needs a fast tokenizer."""
    if not getattr(tokenizer, "is_fast", False):
        raise XltError(f"tagging needs a fast tokenizer (for word_ids); {type(tokenizer).__name__} is not one. "
                       "Load the checkpoint's tokenizer with use_fast=True or add a tokenizer.json")
    ids: list[np.ndarray] = []
    words: list[np.ndarray] = []
    lengths = np.zeros(len(sentences), dtype=np.int64)
    for start in range(0, len(sentences), chunk):
        batch = [list(map(str, s)) for s in sentences[start:start + chunk]]
        present = [i for i, s in enumerate(batch) if s]          # an empty sentence has no subwords
        if not present:
            continue
        enc = tokenizer([batch[i] for i in present], is_split_into_words=True, add_special_tokens=False,
                        return_attention_mask=False, verbose=False)
        for j, i in enumerate(present):
            row = enc["input_ids"][j]
            ids.append(np.asarray(row, dtype=np.int32))
            words.append(np.fromiter((-1 if w is None else w for w in enc.word_ids(j)), dtype=np.int64,
                                     count=len(row)))
            lengths[start + i] = len(row)
    offsets = np.zeros(len(sentences) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    flat_ids = np.concatenate(ids) if ids else np.zeros(0, dtype=np.int32)
    flat_words = np.concatenate(words) if words else np.zeros(0, dtype=np.int64)
    return Encoded(flat_ids, flat_words, offsets)


def step_size(body: int, window_step: int) -> int:
    """Subwords between consecutive window starts: `window_step`, at most half the window's body."""
    return max(1, min(int(window_step), body // 2))


def windows(enc: Encoded, tags: Sequence[Sequence[int]], prefix: Sequence[int], suffix: Sequence[int],
            max_seq_len: int, window_step: int) -> Rows:
    """Cut every sentence into windows of at most `max_seq_len` tokens (specials included) and tag each
    word's first subword in the window that owns it (module docstring)."""
    body = int(max_seq_len) - len(prefix) - len(suffix)
    if body < 2:
        raise XltError(f"max_seq_len {max_seq_len} leaves {body} token(s) for words after the tokenizer's "
                       f"{len(prefix) + len(suffix)} special tokens; use e.g. 128")
    step = step_size(body, window_step)
    n = len(enc.offsets) - 1
    lengths = np.diff(enc.offsets)
    sentence = np.repeat(np.arange(n), lengths)                      # per subword
    pos = np.arange(len(enc.ids)) - np.repeat(enc.offsets[:-1], lengths)
    first = (enc.words >= 0) & ((pos == 0) | (enc.words != np.roll(enc.words, 1)))

    # one tag per word: tag ids flat over sentences, looked up at each first subword
    n_words = np.fromiter((len(t) for t in tags), dtype=np.int64, count=n)
    word_base = np.concatenate([[0], np.cumsum(n_words)[:-1]]) if n else np.zeros(0, dtype=np.int64)
    tag_flat = np.fromiter((t for s in tags for t in s), dtype=np.int64, count=int(n_words.sum()))
    if len(enc.words) and (enc.words >= np.repeat(n_words, lengths)).any():
        raise XltError("the tokenizer returned more words than a sentence has; its word_ids() do not match "
                       "the words it was given")
    label = np.full(len(enc.ids), IGNORE, dtype=np.int64)
    label[first] = tag_flat[word_base[sentence[first]] + enc.words[first]]

    # windows: sentence k has m_k of them, starting at min(j * step, T_k - body) for j < m_k
    count = np.where(lengths == 0, 0, np.where(lengths <= body, 1, -(-(lengths - body) // step) + 1))
    win_sent = np.repeat(np.arange(n), count)
    win_j = np.arange(int(count.sum())) - np.repeat(np.cumsum(count) - count, count)
    win_start = np.minimum(win_j * step, np.maximum(lengths[win_sent] - body, 0))
    win_end = np.minimum(win_start + body, lengths[win_sent])

    owner = _owners(pos[first], lengths[sentence[first]], count[sentence[first]], body, step)
    owner_of = np.full(len(enc.ids), -1, dtype=np.int64)
    owner_of[first] = owner
    # a window that owns no word would be computed for nothing (in training and in evaluation): drop it
    owned_words = np.bincount((np.cumsum(count) - count)[sentence[first]] + owner, minlength=len(win_sent))
    keep = owned_words > 0
    win_sent, win_j, win_start, win_end = win_sent[keep], win_j[keep], win_start[keep], win_end[keep]

    # gather each window's subwords; tag only the words it owns
    size = win_end - win_start
    gather = np.repeat(enc.offsets[win_sent] + win_start - (np.cumsum(size) - size), size) + np.arange(size.sum())
    owned = owner_of[gather] == np.repeat(win_j, size)
    body_label = np.where(owned, label[gather], IGNORE)
    body_word = np.where(owned, enc.words[gather], -1)
    return _with_specials(size, enc.ids[gather], body_label, body_word, win_sent, prefix, suffix)


def _owners(p: np.ndarray, length: np.ndarray, count: np.ndarray, body: int, step: int) -> np.ndarray:
    """For first subwords at positions p (sentence lengths, window counts alongside), the window with the
    most context: max over windows holding p of min(distance to a cutting left edge, to a cutting right edge)."""
    big = np.iinfo(np.int64).max // 4
    lowest = np.maximum(0, -(-(p - body + 1) // step))               # first regular window that can hold p
    candidates = np.minimum(lowest[:, None] + np.arange(body // step + 2)[None, :], count[:, None] - 1)
    candidates = np.concatenate([candidates, (count - 1)[:, None]], axis=1)   # the last window, aligned right
    start = np.minimum(candidates * step, np.maximum(length - body, 0)[:, None])
    end = np.minimum(start + body, length[:, None])
    left = np.where(start > 0, p[:, None] - start, big)
    right = np.where(end < length[:, None], end - 1 - p[:, None], big)
    score = np.where((start <= p[:, None]) & (p[:, None] < end), np.minimum(left, right), -1)
    return candidates[np.arange(len(p)), score.argmax(axis=1)]


def _with_specials(size: np.ndarray, ids: np.ndarray, labels: np.ndarray, word: np.ndarray, index: np.ndarray,
                   prefix: Sequence[int], suffix: Sequence[int]) -> Rows:
    """Rows [prefix] + window + [suffix]; the special tokens carry no tag."""
    a, b = len(prefix), len(suffix)
    row_len = size + a + b
    offsets = np.zeros(len(size) + 1, dtype=np.int64)
    np.cumsum(row_len, out=offsets[1:])
    total = int(offsets[-1])
    out_ids = np.empty(total, dtype=np.int32)
    out_labels = np.full(total, IGNORE, dtype=np.int16)
    out_word = np.full(total, -1, dtype=np.int32)
    body_at = np.repeat(offsets[:-1] + a - (np.cumsum(size) - size), size) + np.arange(size.sum())
    out_ids[body_at] = ids
    out_labels[body_at] = labels
    out_word[body_at] = word
    if a:
        out_ids[(offsets[:-1, None] + np.arange(a)[None, :]).ravel()] = np.tile(prefix, len(size))
    if b:
        out_ids[(offsets[1:, None] - b + np.arange(b)[None, :]).ravel()] = np.tile(suffix, len(size))
    return Rows(offsets, out_ids, out_labels, out_word, index.astype(np.int64))
