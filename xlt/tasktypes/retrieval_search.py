"""Exact cosine search, ratio-margin bitext mining and the retrieval scores, as XTREME computes them.

XTREME's retrieval code (google-research/xtreme `third_party/utils_retrieve.py`, from LASER) searches with
faiss `IndexFlatIP` / `IndexFlatL2` over L2-normalised sentence embeddings. Here the same exact search is a
blocked torch matmul + top-k: a block of queries against a block of targets at a time, so memory is bounded by
`block_size**2` similarities and never holds the N x M matrix (BUCC's test corpora hold ~400k sentences a side).

- `knn` / `knn_both`: the k most similar targets of every query (both directions in one pass for mining).
  Candidates are picked from the float32 matmul; the k kept are re-scored pair by pair in float64 and
  rounded to float32, so a score never depends on the block it was computed in, and ties are ordered by
  index. Blocked and unblocked search therefore agree exactly (tests/test_retrieval_search.py).
- `top1`: Tatoeba, the nearest target of each query (`similarity_search`: nearest L2 neighbour of unit
  vectors = highest cosine).
- `mine`: BUCC, `mine_bitext(mode="mine", retrieval="max", margin="ratio", neighborhood=4)`: ratio margin
  cos(x, y) / ((mean of x's k best + mean of y's k best) / 2) (Artetxe and Schwenk, 2019), the best candidate
  of every source and of every target, then a greedy one-to-one pass in descending score.
- `choose_threshold`: `bucc_optimize`, the threshold maximising F1 against gold pairs: the midpoint between
  the last score kept and the next one.
- `precision_recall_f1`: XTREME's `bucc_f1` from counts (fractions here; XTREME prints percent).

Embeddings are plain tensors (N, D); nothing here loads a model.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

NEIGHBOURHOOD = 4          # k of the ratio margin: XTREME's and LASER's `neighborhood`
DEFAULT_BLOCK = 4096       # 4096 x 4096 float32 similarities = 64 MiB per block
RESCORE_ROWS = 1024        # rows re-scored at once: (1024, k, D) float64


@dataclass(frozen=True)
class Neighbours:
    """The k nearest targets of each query, best first (ties: lower index first)."""

    scores: torch.Tensor    # (N, k) float32 cosine similarities
    indices: torch.Tensor   # (N, k) int64 target indices


@dataclass(frozen=True)
class Candidates:
    """Mined sentence pairs in the order XTREME writes them (descending score), one-to-one."""

    src: np.ndarray         # (P,) int64 row of the source embeddings
    tgt: np.ndarray         # (P,) int64 row of the target embeddings
    score: np.ndarray       # (P,) float64 ratio margin

    def __len__(self) -> int:
        return len(self.score)


def normalize(x: torch.Tensor | np.ndarray) -> torch.Tensor:
    """Rows scaled to unit L2 norm, float32 (faiss.normalize_L2). A zero row stays zero."""
    x = torch.as_tensor(x).float()
    return torch.nn.functional.normalize(x, dim=1).contiguous()


def _empty(n: int, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.full((n, k), -torch.inf), torch.zeros((n, k), dtype=torch.int64)


def _merge(best: tuple[torch.Tensor, torch.Tensor], scores: torch.Tensor, indices: torch.Tensor, k: int
           ) -> tuple[torch.Tensor, torch.Tensor]:
    """Keep the k best of the running best and a block's best."""
    s = torch.cat([best[0], scores], dim=1)               # (n, k + k')
    i = torch.cat([best[1], indices], dim=1)
    top, pos = s.topk(k, dim=1)
    return top, i.gather(1, pos)


def _rescore(queries: torch.Tensor, targets: torch.Tensor, indices: torch.Tensor) -> Neighbours:
    """Cosines of the chosen pairs recomputed in float64, then ordered by (score desc, index asc)."""
    out = torch.empty(indices.shape, dtype=torch.float32)
    for r0 in range(0, len(indices), RESCORE_ROWS):
        q = queries[r0:r0 + RESCORE_ROWS].double()                    # (r, D)
        t = targets[indices[r0:r0 + RESCORE_ROWS]].double()           # (r, k, D)
        out[r0:r0 + RESCORE_ROWS] = (q[:, None, :] * t).sum(-1).float()
    by_index, perm = indices.sort(dim=1)
    scores, order = out.gather(1, perm).sort(dim=1, descending=True, stable=True)
    return Neighbours(scores, by_index.gather(1, order))


def _check(x: torch.Tensor, y: torch.Tensor, block_size: int) -> None:
    if x.ndim != 2 or y.ndim != 2 or x.shape[1] != y.shape[1]:
        raise ValueError(f"embeddings must be (N, D) and (M, D) with the same D, got {tuple(x.shape)} and "
                         f"{tuple(y.shape)}")
    if len(x) == 0 or len(y) == 0:
        raise ValueError("cannot search with an empty set of embeddings")
    if block_size < 1:
        raise ValueError(f"block_size must be positive, got {block_size}")


def knn_both(x: torch.Tensor | np.ndarray, y: torch.Tensor | np.ndarray, k_fwd: int, k_bwd: int,
             block_size: int = DEFAULT_BLOCK, dtype: torch.dtype = torch.float32
             ) -> tuple[Neighbours, Neighbours]:
    """The k_fwd nearest rows of y for every row of x, and the k_bwd nearest rows of x for every row of y,
    by cosine similarity, in one pass over (block_size x block_size) similarity blocks.

    Inputs are L2-normalised here; `dtype` is the dtype of the matmul that picks candidates (float32, or
    bfloat16 where it is fast); the kept pairs are re-scored from the float32 unit vectors either way.
    """
    x, y = normalize(x), normalize(y)
    _check(x, y, block_size)
    k_fwd, k_bwd = min(k_fwd, len(y)), min(k_bwd, len(x))
    xm, ym = x.to(dtype), y.to(dtype)
    fwd_idx = torch.empty((len(x), k_fwd), dtype=torch.int64)
    bwd = _empty(len(y), k_bwd)
    for i0 in range(0, len(x), block_size):
        rows = _empty(min(block_size, len(x) - i0), k_fwd)
        for j0 in range(0, len(y), block_size):
            sims = (xm[i0:i0 + block_size] @ ym[j0:j0 + block_size].T).float()   # (bx, by)
            if k_fwd:
                s, i = sims.topk(min(k_fwd, sims.shape[1]), dim=1)
                rows = _merge(rows, s, i + j0, k_fwd)
            if k_bwd:
                s, i = sims.T.topk(min(k_bwd, sims.shape[0]), dim=1)              # (by, k')
                cols = slice(j0, j0 + sims.shape[1])
                bwd_block = _merge((bwd[0][cols], bwd[1][cols]), s, i + i0, k_bwd)
                bwd[0][cols], bwd[1][cols] = bwd_block
        fwd_idx[i0:i0 + len(rows[1])] = rows[1]
    return _rescore(x, y, fwd_idx), _rescore(y, x, bwd[1])


def knn(queries: torch.Tensor | np.ndarray, targets: torch.Tensor | np.ndarray, k: int,
        block_size: int = DEFAULT_BLOCK, dtype: torch.dtype = torch.float32) -> Neighbours:
    """The k targets most cosine-similar to each query (k capped at the number of targets)."""
    return knn_both(queries, targets, k, 0, block_size, dtype)[0]


def top1(queries: torch.Tensor | np.ndarray, targets: torch.Tensor | np.ndarray,
         block_size: int = DEFAULT_BLOCK) -> tuple[np.ndarray, np.ndarray]:
    """For each query, the index of its most similar target and that cosine: (N,) int64, (N,) float32."""
    nn = knn(queries, targets, 1, block_size)
    return nn.indices[:, 0].numpy(), nn.scores[:, 0].numpy()


def top1_accuracy(predicted: np.ndarray, gold: np.ndarray) -> float:
    """Tatoeba's metric: the share of queries whose retrieved index is the gold one."""
    predicted, gold = np.asarray(predicted), np.asarray(gold)
    if predicted.shape != gold.shape or predicted.ndim != 1 or len(gold) == 0:
        raise ValueError(f"need two equal non-empty 1-D arrays, got {predicted.shape} and {gold.shape}")
    return float(np.mean(predicted == gold))


def margin_scores(fwd: Neighbours, bwd: Neighbours) -> tuple[torch.Tensor, torch.Tensor]:
    """Ratio margin of every candidate: cos(x, y) / ((mean_k cos(x, .) + mean_k cos(y, .)) / 2).

    fwd: the neighbours in y of each row of x; bwd: the neighbours in x of each row of y. Returns the
    (N, k_fwd) and (M, k_bwd) margins, float32 as XTREME's `score_candidates` computes them.
    """
    fwd_mean, bwd_mean = fwd.scores.mean(dim=1), bwd.scores.mean(dim=1)    # (N,), (M,)
    fwd_margin = fwd.scores / ((fwd_mean[:, None] + bwd_mean[fwd.indices]) / 2)
    bwd_margin = bwd.scores / ((bwd_mean[:, None] + fwd_mean[bwd.indices]) / 2)
    return fwd_margin, bwd_margin


def mine(x: torch.Tensor | np.ndarray, y: torch.Tensor | np.ndarray, k: int = NEIGHBOURHOOD,
         block_size: int = DEFAULT_BLOCK, dtype: torch.dtype = torch.float32) -> Candidates:
    """Candidate pairs between sources x (N, D) and targets y (M, D), as XTREME's `mine_bitext` with
    retrieval "max": every source's best target and every target's best source by ratio margin, taken in
    descending score (stable: sources' candidates before targets', each in index order), a pair kept only
    if neither side was taken by a better one. Pairs with a margin <= 0 are left out (mine_bitext's
    `threshold=0`), but still take their sentences. Sentences should be unique texts (`text_load_unify`).
    """
    fwd, bwd = knn_both(x, y, k, k, block_size, dtype)
    fwd_margin, bwd_margin = margin_scores(fwd, bwd)
    fwd_best = fwd.indices.gather(1, fwd_margin.argmax(dim=1, keepdim=True))[:, 0]   # (N,) first max
    bwd_best = bwd.indices.gather(1, bwd_margin.argmax(dim=1, keepdim=True))[:, 0]   # (M,)
    src = np.concatenate([np.arange(len(fwd_best)), bwd_best.numpy()])
    tgt = np.concatenate([fwd_best.numpy(), np.arange(len(bwd_best))])
    score = np.concatenate([fwd_margin.max(dim=1).values.numpy(), bwd_margin.max(dim=1).values.numpy()])
    score = score.astype(np.float64)
    keep = []
    seen_src: set[int] = set()
    seen_tgt: set[int] = set()
    for p in np.argsort(-score, kind="stable"):
        s, t = int(src[p]), int(tgt[p])
        if s not in seen_src and t not in seen_tgt:
            seen_src.add(s)
            seen_tgt.add(t)
            if score[p] > 0:
                keep.append(p)
    keep_arr = np.asarray(keep, dtype=np.int64)
    return Candidates(src[keep_arr].astype(np.int64), tgt[keep_arr].astype(np.int64), score[keep_arr])


def choose_threshold(scores: np.ndarray, correct: np.ndarray, n_gold: int) -> float:
    """XTREME's `bucc_optimize`: walk the candidates by descending score (stable), compute F1 after each,
    and return the midpoint between the score where F1 peaks (first peak) and the next score, so that
    `score >= threshold` keeps exactly the candidates up to the peak.

    Where XTREME differs or fails: no correct candidate -> 0.0 (its initial value); a peak at the last
    candidate -> that candidate's score (XTREME raises IndexError there).
    """
    scores, correct = np.asarray(scores, dtype=np.float64), np.asarray(correct, dtype=bool)
    if scores.shape != correct.shape or scores.ndim != 1:
        raise ValueError(f"scores and correct must be equal 1-D arrays, got {scores.shape} and {correct.shape}")
    if n_gold < 1:
        raise ValueError("choosing a threshold needs at least one gold pair")
    order = np.argsort(-scores, kind="stable")
    ranked = scores[order]
    n_correct = np.cumsum(correct[order])
    if len(ranked) == 0 or n_correct[-1] == 0:
        return 0.0
    n_extracted = np.arange(1, len(ranked) + 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = n_correct / n_extracted
        recall = n_correct / n_gold
        f1 = np.where(n_correct > 0, 2 * precision * recall / (precision + recall), -1.0)
    best = int(np.argmax(f1))
    if best + 1 == len(ranked):
        return float(ranked[best])
    return float((ranked[best] + ranked[best + 1]) / 2)


def precision_recall_f1(n_correct: int, n_predicted: int, n_gold: int) -> dict[str, float]:
    """XTREME's `bucc_f1` / `bucc_eval` from counts, as fractions; all 0 when nothing is correct."""
    if n_correct == 0:
        return {"precision": 0.0, "recall": 0.0, "f1": 0.0}
    precision, recall = n_correct / n_predicted, n_correct / n_gold
    return {"precision": precision, "recall": recall, "f1": 2 * precision * recall / (precision + recall)}
