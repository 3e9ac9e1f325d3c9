"""BUCC 2018 in sentence ids: from corpora to mined pairs, the predictions table and its per-sentence counts.

XTREME (google-research/xtreme `third_party/utils_retrieve.py`) mines on unique sentence texts
(`text_load_unify`), writes the pairs as texts, and maps them back to ids with `read_sent2id`, which drops
every text that occurs on more than one line (compared after stripping white space): such a sentence has no
single id, so no pair holding it can be extracted. The steps here:

    src_texts, src_of_line = unique_texts(corpus.sentences)       # embed src_texts only
    mined = mine(x, y)                                             # retrieval_search, on unique texts
    pairs = mined_ids(mined, source, src_texts, target, tgt_texts) # ids, repeated texts dropped
    threshold = choose_threshold(pairs.score, is_gold(pairs, dev_gold), len(dev_gold))   # on dev
    table = pairs_table(pairs, threshold, gold)                    # the predictions rows of a split

The table holds everything F1 recomputes from: every mined pair with its score, whether it is above the
threshold (`pred`) and whether it is gold, plus the gold pairs never mined (score NaN). `source_counts`
turns it into per-source-sentence tp/fp/fn, whose sums give precision, recall and F1 (the paired bootstrap
resamples source sentences).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import pandas as pd

from xlt.tasktypes.retrieval_files import BuccCorpus
from xlt.tasktypes.retrieval_search import Candidates, precision_recall_f1

TABLE_COLUMNS = ("src_id", "tgt_id", "score", "pred", "gold")


@dataclass(frozen=True)
class MinedPairs:
    """Mined pairs in sentence ids, in mining order (descending score)."""

    src_id: list[str]
    tgt_id: list[str]
    score: np.ndarray       # (P,) float64

    def __len__(self) -> int:
        return len(self.score)


def unique_texts(sentences: Sequence[str]) -> tuple[list[str], np.ndarray]:
    """Distinct sentence texts in first-seen order, and for every line the index of its text."""
    index: dict[str, int] = {}
    of_line = np.fromiter((index.setdefault(s, len(index)) for s in sentences), dtype=np.int64,
                          count=len(sentences))
    return list(index), of_line


def single_ids(corpus: BuccCorpus) -> dict[str, str]:
    """Stripped text -> id, for texts on exactly one line (XTREME's `read_sent2id`)."""
    ids: dict[str, str] = {}
    repeated: set[str] = set()
    for sid, text in zip(corpus.ids, corpus.sentences):
        key = text.strip()
        if key in ids:
            repeated.add(key)
        else:
            ids[key] = sid
    for key in repeated:
        del ids[key]
    return ids


def mined_ids(mined: Candidates, source: BuccCorpus, source_texts: Sequence[str], target: BuccCorpus,
              target_texts: Sequence[str]) -> MinedPairs:
    """Mined pairs (indices into the unique texts) as sentence-id pairs; a pair whose source or target text
    has no single id is dropped, as XTREME's `read_candidate2score` drops it."""
    src_ids, tgt_ids = single_ids(source), single_ids(target)
    keep_src, keep_tgt, keep_score = [], [], []
    for s, t, score in zip(mined.src, mined.tgt, mined.score):
        sid, tid = src_ids.get(source_texts[s].strip()), tgt_ids.get(target_texts[t].strip())
        if sid is not None and tid is not None:
            keep_src.append(sid)
            keep_tgt.append(tid)
            keep_score.append(score)
    return MinedPairs(keep_src, keep_tgt, np.asarray(keep_score, dtype=np.float64))


def is_gold(pairs: MinedPairs, gold: Sequence[tuple[str, str]]) -> np.ndarray:
    """(P,) bool: which mined pairs are gold pairs."""
    gold_set = set(gold)
    return np.fromiter(((s, t) in gold_set for s, t in zip(pairs.src_id, pairs.tgt_id)), dtype=bool,
                       count=len(pairs))


def pairs_table(pairs: MinedPairs, threshold: float, gold: Sequence[tuple[str, str]]) -> pd.DataFrame:
    """One row per mined pair (`pred`: score >= threshold, XTREME's `bucc_extract`) and per gold pair never
    mined (score NaN, pred False): columns src_id, tgt_id, score, pred, gold."""
    gold_flags = is_gold(pairs, gold)
    mined = set(zip(pairs.src_id, pairs.tgt_id))
    unmined = [p for p in dict.fromkeys(gold) if p not in mined]
    return pd.DataFrame({
        "src_id": list(pairs.src_id) + [s for s, _ in unmined],
        "tgt_id": list(pairs.tgt_id) + [t for _, t in unmined],
        "score": np.concatenate([pairs.score, np.full(len(unmined), np.nan)]),
        "pred": np.concatenate([pairs.score >= threshold, np.zeros(len(unmined), dtype=bool)]),
        "gold": np.concatenate([gold_flags, np.ones(len(unmined), dtype=bool)]),
    })


def source_counts(table: pd.DataFrame) -> pd.DataFrame:
    """Per source sentence of the table: tp (extracted and gold), fp (extracted, not gold), fn (gold, not
    extracted). Column sums: tp + fp = pairs extracted, tp + fn = gold pairs."""
    counts = pd.DataFrame({"src_id": table["src_id"],
                           "tp": (table["pred"] & table["gold"]).astype(np.int64),
                           "fp": (table["pred"] & ~table["gold"]).astype(np.int64),
                           "fn": (~table["pred"] & table["gold"]).astype(np.int64)})
    return counts.groupby("src_id", sort=False, as_index=False).sum()


def table_scores(table: pd.DataFrame) -> dict[str, float]:
    """Precision, recall and F1 of a predictions table (fractions), with the counts they come from."""
    tp = int((table["pred"] & table["gold"]).sum())
    n_pred, n_gold = int(table["pred"].sum()), int(table["gold"].sum())
    return {**precision_recall_f1(tp, n_pred, n_gold), "n_correct": tp, "n_predicted": n_pred, "n_gold": n_gold}


def f1_from_totals(tp: np.ndarray, fp: np.ndarray, fn: np.ndarray) -> dict[str, np.ndarray]:
    """Precision, recall, F1 from (possibly resampled) sums of `source_counts`; 0 where tp is 0."""
    tp, fp, fn = (np.asarray(v, dtype=np.float64) for v in (tp, fp, fn))
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.where(tp > 0, tp / (tp + fp), 0.0)
        recall = np.where(tp > 0, tp / (tp + fn), 0.0)
        f1 = np.where(tp > 0, 2 * tp / (2 * tp + fp + fn), 0.0)
    return {"precision": precision, "recall": recall, "f1": f1}
