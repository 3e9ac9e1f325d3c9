"""Question + context windows for extractive QA: the model rows of one split, with character offsets and labels.

Each question becomes one or more windows `[CLS] question [SEP] context-part [SEP]` (the tokenizer's own
special-token template) of at most `max_seq_len` tokens. `window_step` is the number of context tokens between
the starts of consecutive windows: XTREME's (and the original BERT script's) `doc_stride`, 128 by default. It is
NOT the `stride` argument of a transformers tokenizer, which is the number of tokens two windows *overlap*
(transformers issue #22391); we pass the tokenizer `stride = context tokens per window - window_step`, so
windows start at context tokens 0, step, 2*step, ... and the last one ends at the context's end, as in XTREME.

Each distinct context is tokenised once (on its own, without special tokens; XQuAD asks ~5 questions per
paragraph) and every question's windows are cut from its pieces and character offsets, laid out as the tokenizer
lays out a truncated (question, context) pair with overflow: context tokens [k * step, k * step + room) for
k = 0, 1, ... until a window reaches the context's end (tokenizers' `Encoding::truncate`). That a context's
pieces do not depend on the question before it holds for the SentencePiece tokenizers of DeBERTa and XLM-R
(tests/test_qa_context_once.py), which normalise and pre-tokenise each sequence of a pair on its own. Every call
checks it for the question with the longest context against the tokenizer's own pair encoding and refuses a
tokenizer where it fails.

Questions are cut to 64 tokens (XTREME's `max_query_length`), or to half the window when `max_seq_len` is
small. Per token the features keep the character span of context tokens in the context (`char_start`,
`char_end`; -1 for the question, special tokens and padding), taken from the fast tokenizer's offset mapping.
A piece whose span overlaps the next piece's is cut at the next piece's start: XLM-R's lone `▁` piece is
mapped onto the first character of the word that follows it, so without this its span would add that
character to an answer ending on it; it becomes an empty span, which decoding never starts or ends on.

Training labels per window (`start_positions`, `end_positions`): the first context token ending after the
answer's first character and the last context token starting before its end, when the window's context holds
the whole answer; 0 ([CLS]) when it does not, as both reference implementations do; -100 (left out of the
loss) for every window of a question whose first answer does not match its context at `answer_start`.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import pandas as pd

from xlt.errors import XltError

MAX_QUESTION_TOKENS = 64     # XTREME's run_squad.py --max_query_length default
IGNORE = -100                # a label cross-entropy ignores


def _flat(nested, dtype, count: int) -> np.ndarray:
    return np.fromiter(itertools.chain.from_iterable(nested), dtype=dtype, count=count)


def _ranges(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """starts[i], starts[i] + 1, ..., starts[i] + lengths[i] - 1 for every i, concatenated."""
    before = np.cumsum(lengths) - lengths
    return np.repeat(np.asarray(starts) - before, lengths) + np.arange(int(np.sum(lengths)), dtype=np.int64)


def _ragged(ids, spans=None) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Flat ids, offsets and (n, 2) character spans of a tokenizer's batch output."""
    lengths = np.fromiter(map(len, ids), dtype=np.int64, count=len(ids))
    offsets = np.zeros(len(ids) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    total = int(offsets[-1])
    flat_spans = None if spans is None else \
        _flat(itertools.chain.from_iterable(spans), np.int64, 2 * total).reshape(-1, 2)
    return _flat(ids, np.int32, total), offsets, flat_spans


def _cut_questions(questions: list[str], tokenizer: Any, limit: int) -> tuple[list[str], list[list[int]]]:
    """Questions cut where their first token past `limit` starts, and their token ids (without special
    tokens). Cutting at a piece's start, not at the previous piece's end, keeps a lone `▁` (whose span is the next
    character's) from dragging that character back in."""
    questions = list(questions)
    ids = tokenizer(questions, add_special_tokens=False, return_attention_mask=False)["input_ids"]
    long = [i for i, q in enumerate(ids) if len(q) > limit]
    for _ in range(4):   # a cut text can tokenise differently at its new end; then it is cut again
        if not long:
            return questions, ids
        spans = tokenizer([questions[i] for i in long], add_special_tokens=False,
                          return_offsets_mapping=True)["offset_mapping"]
        for i, span in zip(long, spans):
            questions[i] = questions[i][:span[limit][0]]
        again = tokenizer([questions[i] for i in long], add_special_tokens=False,
                          return_attention_mask=False)["input_ids"]
        for i, q in zip(long, again):
            ids[i] = q
        long = [i for i in long if len(ids[i]) > limit]
    raise XltError("could not cut the questions to the token limit; the tokenizer's offsets look broken")


@dataclass(frozen=True)
class _Template:
    """The tokenizer's own special tokens around a (question, context) pair, and the token type of each part."""

    before: list[int]          # ids before the question ([CLS])
    between: list[int]         # between question and context ([SEP], or </s></s>)
    after: list[int]           # after the context ([SEP])
    types: list[list[int]] | None   # types of before, question, between, context, after (None: no token types)


def _template(tokenizer: Any) -> _Template:
    enc = tokenizer("q", "c")
    seq, ids = enc.sequence_ids(0), enc["input_ids"]
    q = [i for i, s in enumerate(seq) if s == 0]
    c = [i for i, s in enumerate(seq) if s == 1]
    cuts = (0, q[0], q[-1] + 1, c[0], c[-1] + 1, len(ids))
    parts = [list(range(a, b)) for a, b in zip(cuts, cuts[1:])]
    types = None
    if enc.get("token_type_ids") is not None:
        tt = enc["token_type_ids"]
        types = [[tt[i] for i in part] for part in parts]
        types[1], types[3] = tt[q[0]], tt[c[0]]     # one type for every question / context token
    return _Template([ids[i] for i in parts[0]], [ids[i] for i in parts[2]], [ids[i] for i in parts[4]], types)


def _context_pieces(contexts: Sequence[str], tokenizer: Any, chunk: int):
    """Each distinct context tokenised once: (context of each question, flat ids, offsets, char spans)."""
    codes, distinct = pd.factorize(pd.Series(list(contexts), dtype=object), use_na_sentinel=False)
    ids, spans = [], []
    for s in range(0, len(distinct), chunk):
        enc = tokenizer(list(distinct[s:s + chunk]), add_special_tokens=False, return_offsets_mapping=True,
                        return_attention_mask=False, verbose=False)
        ids += enc["input_ids"]
        spans += enc["offset_mapping"]
    flat_ids, offsets, flat_spans = _ragged(ids, spans)
    return codes.astype(np.int64), flat_ids, offsets, flat_spans


def _windows(q_ids: np.ndarray, q_offsets: np.ndarray, ctx_of: np.ndarray, c_ids: np.ndarray,
             c_offsets: np.ndarray, c_spans: np.ndarray, template: _Template, max_len: int, window_step: int):
    """Every question's windows, in question order, laid out as the tokenizer lays out a truncated pair with
    overflow: context tokens [k * step, k * step + room) for k = 0, 1, ... until a window reaches the context's
    end (tokenizers' `Encoding::truncate`), `room` = the context tokens that fit beside the question and
    `step = room - stride` = min(window_step, room)."""
    n = len(q_offsets) - 1
    q_len = np.diff(q_offsets)
    n_ctx = np.diff(c_offsets)[ctx_of]
    b, m, a = len(template.before), len(template.between), len(template.after)
    room = max_len - b - m - a - q_len
    step = np.minimum(window_step, room)
    count = np.where(n_ctx <= room, 1, 1 + -(-(n_ctx - room) // step))
    question = np.repeat(np.arange(n), count)
    k = np.arange(len(question)) - np.repeat(np.cumsum(count) - count, count)
    c_start = k * step[question]
    c_len = np.minimum(c_start + room[question], n_ctx[question]) - c_start
    ql = q_len[question]
    lengths = b + ql + m + c_len + a
    offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    head = offsets[:-1]

    ids = np.empty(int(offsets[-1]), dtype=np.int32)
    char_start = np.full(len(ids), -1, dtype=np.int64)
    char_end = np.full(len(ids), -1, dtype=np.int64)
    types = np.empty(len(ids), dtype=np.int8) if template.types is not None else None
    q_at = _ranges(head + b, ql)
    c_at = _ranges(head + b + ql + m, c_len)
    c_from = _ranges(c_offsets[ctx_of[question]] + c_start, c_len)
    ids[q_at] = q_ids[_ranges(q_offsets[question], ql)]
    ids[c_at] = c_ids[c_from]
    char_start[c_at], char_end[c_at] = c_spans[c_from, 0], c_spans[c_from, 1]
    specials = ((template.before, head, 0), (template.between, head + b + ql, 2), (template.after, offsets[1:] - a, 4))
    for values, first, part in specials:
        for j, value in enumerate(values):
            ids[first + j] = value
            if types is not None:
                types[first + j] = template.types[part][j]
    if types is not None:
        types[q_at], types[c_at] = template.types[1], template.types[3]
    return offsets, ids, types, char_start, char_end, question


def _check_against_tokenizer(tokenizer, question: str, context: str, max_len: int, window_step: int,
                             ids: np.ndarray, types: np.ndarray | None, char_start: np.ndarray,
                             offsets: np.ndarray) -> None:
    """The windows of one question equal the tokenizer's own truncated pair encoding with overflow: a
    tokenizer that encodes a context differently inside a pair than alone is refused, not silently mis-cut."""
    room = max_len - tokenizer.num_special_tokens_to_add(pair=True) - \
        len(tokenizer(question, add_special_tokens=False)["input_ids"])
    enc = tokenizer(question, context, truncation="only_second", max_length=max_len,
                    stride=max(0, room - window_step), return_overflowing_tokens=True,
                    return_offsets_mapping=True, padding=False)
    theirs = [(list(w), [o[0] if s == 1 else -1 for o, s in zip(enc["offset_mapping"][i], enc.sequence_ids(i))],
               list(enc["token_type_ids"][i]) if types is not None else None) for i, w in enumerate(enc["input_ids"])]
    mine = [(ids[a:b].tolist(), char_start[a:b].tolist(), types[a:b].tolist() if types is not None else None)
            for a, b in zip(offsets[:-1], offsets[1:])]
    if theirs != mine:
        raise XltError(f"{type(tokenizer).__name__} encodes a context differently inside a (question, context) "
                       "pair than on its own, so xlt cannot tokenise each context once for all its questions; "
                       "please report this tokenizer")


def featurize_windows(questions: Sequence[str], contexts: Sequence[str], answer_start: np.ndarray,
                      answer_end: np.ndarray, tokenizer: Any, max_len: int, window_step: int, chunk: int = 1024):
    """Features of every question's windows (see the module docstring), in question order.

    answer_start/answer_end: the first gold answer's character span per question, -1 where it does not match
    its context. Returns `xlt.data.Features` with tokens input_ids, token_type_ids (if the tokenizer makes
    them), char_start, char_end and rows index, start_positions, end_positions.
    """
    if not getattr(tokenizer, "is_fast", False):
        raise XltError(f"extractive QA needs a fast tokenizer (character offsets); "
                       f"{type(tokenizer).__name__} is not one. Install `tokenizers` or use a checkpoint with "
                       "tokenizer.json")
    specials = tokenizer.num_special_tokens_to_add(pair=True)
    limit = min(MAX_QUESTION_TOKENS, (max_len - specials) // 2)
    if limit < 1:
        raise XltError(f"max_seq_len {max_len} leaves no room for a question and its context; use e.g. 384")
    questions, q_tokens = _cut_questions(list(questions), tokenizer, limit)
    q_ids, q_offsets, _ = _ragged(q_tokens)
    ctx_of, c_ids, c_offsets, c_spans = _context_pieces(contexts, tokenizer, chunk)
    offsets, ids, types, char_start, char_end, question = _windows(
        q_ids, q_offsets, ctx_of, c_ids, c_offsets, c_spans, _template(tokenizer), max_len, window_step)
    if len(questions):   # the question with the longest context: its windows as the tokenizer makes them
        q = int(np.argmax(np.diff(c_offsets)[ctx_of]))
        w = np.flatnonzero(question == q)
        _check_against_tokenizer(tokenizer, questions[q], contexts[q], max_len, window_step, ids, types,
                                 char_start, offsets[w[0]:w[-1] + 2])
    return features_from_windows(offsets, ids, types, char_start, char_end, question, answer_start, answer_end,
                                 tokenizer)


def features_from_windows(offsets: np.ndarray, ids: np.ndarray, types: np.ndarray | None, char_start: np.ndarray,
                          char_end: np.ndarray, question: np.ndarray, answer_start: np.ndarray,
                          answer_end: np.ndarray, tokenizer: Any):
    """Features from windows in question order (flat ids cut by `offsets`; character spans of context tokens,
    -1 elsewhere): the lone-▁ cut and the training labels (module docstring)."""
    from xlt.data import Features, pad_id

    lengths = np.diff(offsets)
    window = np.repeat(np.arange(len(lengths)), lengths)
    pos = np.arange(len(ids)) - offsets[window]               # position of each token in its window
    start, end = np.asarray(char_start, dtype=np.int64), np.asarray(char_end, dtype=np.int64)
    in_ctx = start >= 0
    # a piece overlapping the next piece of the same window ends where that piece starts (the lone-▁ trap)
    nxt = np.append(start[1:], -1)
    same = np.append(window[1:] == window[:-1], False) & in_ctx & np.append(in_ctx[1:], False)
    cut = same & (nxt >= start) & (nxt < end)
    end = np.where(cut, nxt, end)

    start_pos, end_pos = _labels(window, pos, offsets, start, end, question, answer_start, answer_end)
    tokens = {"input_ids": np.asarray(ids, dtype=np.int32), "char_start": start.astype(np.int32),
              "char_end": end.astype(np.int32)}
    if types is not None:
        tokens["token_type_ids"] = np.asarray(types, dtype=np.int8)
    rows = {"index": np.asarray(question, dtype=np.int64), "start_positions": start_pos, "end_positions": end_pos}
    return Features(offsets, tokens, rows, {"input_ids": pad_id(tokenizer), "token_type_ids": 0,
                                            "char_start": -1, "char_end": -1})


def _labels(window, pos, offsets, start, end, question, answer_start, answer_end):
    """start/end token positions per window (see the module docstring), vectorised over all windows."""
    a_s = np.asarray(answer_start, dtype=np.int64)[question]    # per window
    a_e = np.asarray(answer_end, dtype=np.int64)[question]
    heads = offsets[:-1]
    big = np.iinfo(np.int64).max
    usable = end > start                                        # context token with a non-empty span
    first_start = np.minimum.reduceat(np.where(start >= 0, start, big), heads)
    last_end = np.maximum.reduceat(end, heads)
    s_tok = np.minimum.reduceat(np.where(usable & (end > a_s[window]), pos, big), heads)
    e_tok = np.maximum.reduceat(np.where(usable & (start < a_e[window]), pos, -1), heads)
    inside = (a_s >= 0) & (first_start <= a_s) & (last_end >= a_e) & (s_tok != big) & (e_tok >= s_tok)
    start_pos = np.where(inside, s_tok, 0)
    end_pos = np.where(inside, e_tok, 0)
    start_pos[a_s < 0] = IGNORE
    end_pos[a_s < 0] = IGNORE
    return start_pos.astype(np.int64), end_pos.astype(np.int64)


__all__ = ["featurize_windows", "features_from_windows", "MAX_QUESTION_TOKENS", "IGNORE"]
