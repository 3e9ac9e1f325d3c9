"""From start/end logits to one answer per question: n-best spans per window, the best over all its windows.

Per window (vectorised over a batch of windows, on the logits' device): the `n_best` highest start and the
`n_best` highest end logits among the window's context tokens with a non-empty character span, all
n_best x n_best pairs scored start + end, pairs with end before start or longer than `max_answer_len` tokens
dropped, and the `n_best` best pairs kept with their character spans (the start piece's first character, the
end piece's last). Per question, the best-scoring pair over all its windows wins (transformers' `run_qa.py`
post-processing; the original BERT/XTREME script also required the start token's window to be the one where
that token has most context, which xlt does not).

The answer is the context sliced between those characters, stripped of surrounding whitespace: never rebuilt
from tokens, which for Chinese or Thai (no spaces) cannot give back the original text (transformers #3510:
`get_final_text` mapped a Chinese answer to its whole whitespace-delimited chunk). A question gets the empty
answer only when none of its windows has a context token with a non-empty span (an empty context).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

MASKED = -1e4     # logit for positions a distribution must not use (padding): exp() is 0 in fp32


def best_spans(logits, char_start, char_end, n_best: int, max_answer_len: int):
    """(scores, start chars, end chars), each (B, n) with n <= n_best, for a batch of windows.

    logits (B, T, 2); char_start/char_end (B, T) with -1 outside the context. Invalid candidates score -inf.
    """
    import torch

    char_start = char_start.to(logits.device)
    char_end = char_end.to(logits.device)
    usable = (char_start >= 0) & (char_end > char_start)
    start = logits[..., 0].float().masked_fill(~usable, float("-inf"))
    end = logits[..., 1].float().masked_fill(~usable, float("-inf"))
    k = min(n_best, start.shape[1])
    s_val, s_idx = start.topk(k, dim=1)                                        # (B, k)
    e_val, e_idx = end.topk(k, dim=1)
    score = s_val[:, :, None] + e_val[:, None, :]                              # (B, k, k): start x end
    length = e_idx[:, None, :] - s_idx[:, :, None]
    ok = (length >= 0) & (length < max_answer_len) & torch.isfinite(score)
    score = score.masked_fill(~ok, float("-inf")).flatten(1)                   # (B, k*k)
    best, flat = score.topk(min(n_best, k * k), dim=1)
    starts = s_idx.gather(1, flat // k)
    ends = e_idx.gather(1, flat % k)
    return (best.cpu().numpy(), char_start.gather(1, starts).cpu().numpy(),
            char_end.gather(1, ends).cpu().numpy())


def answers(question_of_row: np.ndarray, decoded: Sequence[tuple], contexts: Sequence[str]) -> list[str]:
    """The best span of every question over all its windows, as text (see the module docstring).

    decoded: per batch (rows, scores, start chars, end chars) as `best_spans` returns them with the batch's
    rows; question_of_row maps a model row to its question.
    """
    n = len(contexts)
    if not decoded:
        return [""] * n
    rows = np.concatenate([d[0] for d in decoded])
    scores = np.concatenate([d[1] for d in decoded])
    starts = np.concatenate([d[2] for d in decoded])
    ends = np.concatenate([d[3] for d in decoded])
    width = scores.shape[1]
    question = np.repeat(question_of_row[rows], width)
    scores, starts, ends = scores.ravel(), starts.ravel(), ends.ravel()
    keep = np.isfinite(scores)
    question, scores, starts, ends = question[keep], scores[keep], starts[keep], ends[keep]
    order = np.lexsort((-scores, question))            # by question, best first (stable on ties)
    first = order[np.r_[True, question[order][1:] != question[order][:-1]]] if len(order) else order
    out = [""] * n
    for i in first:
        q = int(question[i])
        out[q] = contexts[q][int(starts[i]):int(ends[i])].strip()
    return out


__all__ = ["best_spans", "answers", "MASKED"]
