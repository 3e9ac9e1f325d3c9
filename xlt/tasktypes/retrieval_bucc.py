"""BUCC 2018 in sentence ids: from corpora to mined pairs, the predictions table and its per-sentence counts.

XTREME (google-research/xtreme `third_party/utils_retrieve.py`) mines on unique sentence texts
(`text_load_unify`), writes the pairs as texts, and maps them back to ids with `read_sent2id`, which drops
every text that occurs on more than one line (compared after stripping white space): such a sentence has no
single id, so no pair holding it can be extracted. The steps here:

    src_texts, src_of_line = unique_texts(corpus.sentences)       # embed src_texts only
    mined = mine(x, y)                                             # retrieval_search, on unique texts
    pairs = mined_ids(mined, source, src_texts, target, tgt_texts) # ids, repeated texts dropped
    rows = sentence_rows(source.ids, gold_of_each_line, pairs)     # the predictions rows of a split
    threshold = choose_threshold(*mined_correct(dev_rows))         # on dev
    rows = extract(rows, threshold)                                # XTREME's bucc_extract

The predictions hold one row per sentence of the language's side (`sentence_rows`): its gold translation,
the pair mined for it (mining is one-to-one, so a sentence is in at most one) with its margin, and whether that
pair is extracted. Per row tp/fp/fn (xlt.tasktypes.retrieval) sum to XTREME's counts, and every run of a split
has the same rows, so a paired bootstrap resamples the same sentences in both runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import pandas as pd

from xlt.tasktypes.retrieval_files import BuccCorpus
from xlt.tasktypes.retrieval_search import Candidates


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


def sentence_rows(ids: Sequence[str], gold: Sequence[str], pairs: MinedPairs) -> pd.DataFrame:
    """The predictions rows of one split: one per sentence of the language's side (`ids`, file order; `gold`
    the id of each one's gold translation, "" for none): the sentences of the mined pairs first, in mining
    order (descending score: the order `choose_threshold` walks, ties as XTREME's candidate file has them),
    then the others in file order. Columns idx (line in the file), id, label (gold), pred (the mined English
    id, "" for none), score (its margin, NaN for none), extracted (False until `extract`)."""
    position = {sid: i for i, sid in enumerate(ids)}
    mined = np.fromiter((position[s] for s in pairs.src_id), dtype=np.int64, count=len(pairs))
    rest = np.setdiff1d(np.arange(len(ids)), mined)          # sorted: file order
    order = np.concatenate([mined, rest])
    pred = np.full(len(ids), "", dtype=object)
    score = np.full(len(ids), np.nan)
    pred[mined], score[mined] = pairs.tgt_id, pairs.score
    return pd.DataFrame({"idx": order, "id": np.asarray(ids, dtype=object)[order],
                         "label": np.asarray(gold, dtype=object)[order], "pred": pred[order], "score": score[order],
                         "extracted": np.zeros(len(ids), dtype=bool)})


def mined_correct(rows: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, int]:
    """(scores, correct) of the mined rows in row order, and the number of gold pairs: what
    `retrieval_search.choose_threshold` takes."""
    mined = rows["pred"].to_numpy() != ""
    correct = (rows["pred"] == rows["label"]).to_numpy() & (rows["label"] != "").to_numpy()
    return rows["score"].to_numpy()[mined], correct[mined], int((rows["label"] != "").sum())


def extract(rows: pd.DataFrame, threshold: float) -> pd.DataFrame:
    """`rows` with `extracted` = a mined pair scoring >= threshold (XTREME's `bucc_extract`)."""
    return rows.assign(extracted=(rows["score"] >= threshold).to_numpy())   # NaN (nothing mined) compares False
