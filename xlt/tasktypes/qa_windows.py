"""Question + context windows for extractive QA: the model rows of one split, with character offsets and labels.

Each question becomes one or more windows `[CLS] question [SEP] context-part [SEP]` (the tokenizer's own
special-token template) of at most `max_seq_len` tokens. `window_step` is the number of context tokens between
the starts of consecutive windows: XTREME's (and the original BERT script's) `doc_stride`, 128 by default. It is
NOT the `stride` argument of a transformers tokenizer, which is the number of tokens two windows *overlap*
(transformers issue #22391); we pass the tokenizer `stride = context tokens per window - window_step`, so
windows start at context tokens 0, step, 2*step, ... and the last one ends at the context's end, as in XTREME.

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
from typing import Any, Sequence

import numpy as np

from xlt.errors import XltError

MAX_QUESTION_TOKENS = 64     # XTREME's run_squad.py --max_query_length default
IGNORE = -100                # a label cross-entropy ignores


def _flat(nested, dtype, count: int) -> np.ndarray:
    return np.fromiter(itertools.chain.from_iterable(nested), dtype=dtype, count=count)


def _cut_questions(questions: list[str], tokenizer: Any, limit: int) -> tuple[list[str], np.ndarray]:
    """Questions cut where their first token past `limit` starts, and their token counts (without special
    tokens). Cutting at a piece's start, not at the previous piece's end, keeps a lone `▁` (whose span is the next
    character's) from dragging that character back in."""
    questions = list(questions)
    for _ in range(4):   # a cut text can tokenise differently at its new end; then it is cut again
        ids = tokenizer(questions, add_special_tokens=False, return_attention_mask=False)["input_ids"]
        lengths = np.fromiter(map(len, ids), dtype=np.int64, count=len(questions))
        long = np.flatnonzero(lengths > limit)
        if len(long) == 0:
            return questions, lengths
        spans = tokenizer([questions[i] for i in long], add_special_tokens=False,
                          return_offsets_mapping=True)["offset_mapping"]
        for i, span in zip(long, spans):
            questions[i] = questions[i][:span[limit][0]]
    raise XltError("could not cut the questions to the token limit; the tokenizer's offsets look broken")


def _layout(tokenizer: Any) -> tuple[int, int, int]:
    """Special tokens before the question, between question and context, and after the context."""
    seq = tokenizer("q", "c").sequence_ids(0)
    q = [i for i, s in enumerate(seq) if s == 0]
    c = [i for i, s in enumerate(seq) if s == 1]
    return q[0], c[0] - q[-1] - 1, len(seq) - 1 - c[-1]


def _window_group(questions: list[str], contexts: list[str], tokenizer: Any, max_len: int, overlap: int
                  ) -> dict[str, np.ndarray]:
    """Tokenise a group of questions that share a question length into windows (flat arrays)."""
    enc = tokenizer(questions, contexts, truncation="only_second", max_length=max_len, stride=overlap,
                    return_overflowing_tokens=True, return_offsets_mapping=True, padding=False,
                    return_attention_mask=False)
    ids = enc["input_ids"]
    lengths = np.fromiter(map(len, ids), dtype=np.int64, count=len(ids))
    total = int(lengths.sum())
    out = {"ids": _flat(ids, np.int32, total), "lengths": lengths,
           "sample": np.asarray(enc["overflow_to_sample_mapping"], dtype=np.int64),
           "spans": _flat(itertools.chain.from_iterable(enc["offset_mapping"]), np.int64, 2 * total).reshape(-1, 2)}
    if enc.get("token_type_ids") is not None:
        out["types"] = _flat(enc["token_type_ids"], np.int8, total)
    return out


def featurize_windows(questions: Sequence[str], contexts: Sequence[str], answer_start: np.ndarray,
                      answer_end: np.ndarray, tokenizer: Any, max_len: int, window_step: int, chunk: int = 1024):
    """Features of every question's windows (see the module docstring), in question order.

    answer_start/answer_end: the first gold answer's character span per question, -1 where it does not match
    its context. Returns `xlt.data.Features` with tokens input_ids, token_type_ids (if the tokenizer makes
    them), char_start, char_end and rows index, start_positions, end_positions.
    """
    from xlt.data import Features, pad_id

    if not getattr(tokenizer, "is_fast", False):
        raise XltError(f"extractive QA needs a fast tokenizer (character offsets); "
                       f"{type(tokenizer).__name__} is not one. Install `tokenizers` or use a checkpoint with "
                       "tokenizer.json")
    n = len(questions)
    specials = tokenizer.num_special_tokens_to_add(pair=True)
    limit = min(MAX_QUESTION_TOKENS, (max_len - specials) // 2)
    if limit < 1:
        raise XltError(f"max_seq_len {max_len} leaves no room for a question and its context; use e.g. 384")
    questions, q_len = _cut_questions(list(questions), tokenizer, limit)
    before, between, after = _layout(tokenizer)
    room = max_len - specials - q_len            # context tokens per window
    parts: list[dict[str, Any]] = []
    for r in np.unique(room):
        members = np.flatnonzero(room == r)
        overlap = max(0, int(r) - window_step)
        for s in range(0, len(members), chunk):
            idx = members[s:s + chunk]
            part = _window_group([questions[i] for i in idx], [contexts[i] for i in idx], tokenizer, max_len,
                                 overlap)
            part["question"] = idx[part["sample"]]
            part["ctx_first"] = np.full(len(part["lengths"]), before + q_len[idx[0]] + between)
            parts.append(part)
    question = np.concatenate([p["question"] for p in parts])
    lengths = np.concatenate([p["lengths"] for p in parts])
    offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    ids = np.concatenate([p["ids"] for p in parts])
    spans = np.concatenate([p["spans"] for p in parts])
    window = np.repeat(np.arange(len(lengths)), lengths)
    pos = np.arange(len(ids)) - offsets[window]               # position of each token in its window
    ctx_first = np.concatenate([p["ctx_first"] for p in parts])
    ctx_end = lengths - after
    in_ctx = (pos >= ctx_first[window]) & (pos < ctx_end[window])

    start = np.where(in_ctx, spans[:, 0], -1)
    end = np.where(in_ctx, spans[:, 1], -1)
    # a piece overlapping the next piece of the same window ends where that piece starts (the lone-▁ trap)
    nxt = np.append(start[1:], -1)
    same = np.append(window[1:] == window[:-1], False) & in_ctx & np.append(in_ctx[1:], False)
    cut = same & (nxt >= start) & (nxt < end)
    end = np.where(cut, nxt, end)

    start_pos, end_pos = _labels(window, pos, offsets, start, end, question, answer_start, answer_end)
    tokens = {"input_ids": ids, "char_start": start.astype(np.int32), "char_end": end.astype(np.int32)}
    if all("types" in p for p in parts):
        tokens["token_type_ids"] = np.concatenate([p["types"] for p in parts])
    rows = {"index": question, "start_positions": start_pos, "end_positions": end_pos}
    feats = Features(offsets, tokens, rows, {"input_ids": pad_id(tokenizer), "token_type_ids": 0,
                                              "char_start": -1, "char_end": -1})
    # windows back in question order (groups came by question length), each question's windows in order
    order = np.lexsort((np.arange(len(question)), question))
    feats = feats.select(order)
    if len(np.unique(feats.index)) != n:
        raise XltError("some questions produced no window; check the tokenizer")
    return feats


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


__all__ = ["featurize_windows", "MAX_QUESTION_TOKENS", "IGNORE"]
