"""The retrieval type's rows: reading a split's files, checking them, and turning embeddings into predictions.

One (split, language) is a frame with the language's sentences and the English ones side by side (row i holds
sentence i of each side; the shorter side ends in nulls): `sentence_id`, `sentence`, `pivot_id`, `pivot`, and
`gold`, the pivot id of each sentence's gold translation ("" for none). A source may give only `sentence`
and `pivot` (the hub's Tatoeba configs: aligned pairs); the ids are then the line numbers and sentence i's
gold is pivot i. Two local layouts (a source's `data_dir_files:` parts and `format:`):

    lines   parts sentence, pivot: one sentence a line, line i translating line i (LASER's Tatoeba files)
    bucc    parts sentence, pivot, gold: `id<TAB>sentence` lines and `xx_id<TAB>en_id` gold lines (BUCC 2018)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from xlt.errors import XltError
from xlt.tasktypes.fields import not_a_value, warn_empty

COLUMNS = ("sentence", "pivot")
OPTIONAL_COLUMNS = ("sentence_id", "pivot_id", "gold")
PARTS = ("sentence", "pivot", "gold")
PART_FORMATS = ("lines", "bucc")
NEEDS = {"lines": ("sentence", "pivot"), "bucc": ("sentence", "pivot", "gold")}


@dataclass(frozen=True)
class Sides:
    """The two sides of one split, nulls dropped: ids, texts, and each sentence's gold pivot id ("" none)."""

    sentence_ids: list[str]
    sentences: list[str]
    pivot_ids: list[str]
    pivots: list[str]
    gold: list[str]


# --- reading and checking ------------------------------------------------------------------------------------

def read_parts(paths: Mapping[str, Any], fmt: str) -> pd.DataFrame:
    """The frame of one split from its files (`paths`: part -> path), columns named by role."""
    from xlt.tasktypes.retrieval_files import read_aligned, read_bucc_files

    if fmt not in NEEDS:
        raise XltError(f"format {fmt!r} is not one the retrieval type reads from several files; use one of "
                       f"{', '.join(NEEDS)}")
    if set(paths) != set(NEEDS[fmt]):
        raise XltError(f"format {fmt} reads the parts {', '.join(NEEDS[fmt])}, but `data_dir_files:` names "
                       f"{', '.join(paths)}; name exactly those parts")
    if fmt == "lines":
        pair = read_aligned(paths["sentence"], paths["pivot"])
        frame = pd.DataFrame({"sentence": pair.sentences, "pivot": pair.english})
    else:
        data = read_bucc_files(paths["sentence"], paths["pivot"], paths["gold"])
        gold = dict(data.gold)
        n = max(len(data.source), len(data.target))
        pad = lambda values: list(values) + [None] * (n - len(values))   # noqa: E731
        frame = pd.DataFrame({"sentence_id": pad(data.source.ids), "sentence": pad(data.source.sentences),
                              "pivot_id": pad(data.target.ids), "pivot": pad(data.target.sentences),
                              "gold": pad([gold.get(i, "") for i in data.source.ids])})
    frame.attrs["columns_by_role"] = True
    return frame


def _side(frame: pd.DataFrame, column: str, where: str) -> list[str]:
    """The texts (or ids) of one side: strings up to its last row, nulls only after it (the shorter side)."""
    values = frame[column].tolist()
    kinds = [not_a_value(v) for v in values]
    n = len(values)
    while n and kinds[n - 1] == "null":
        n -= 1
    for row, (value, kind) in enumerate(zip(values[:n], kinds[:n])):
        if kind is not None:
            raise XltError(f"row {row} of {where}: {column} is {kind} ({value!r}), not text; fix the data")
    return [v if isinstance(v, str) else str(v) for v in values[:n]]


def prepare(frame: pd.DataFrame, where: str) -> pd.DataFrame:
    """The split's frame in the full schema (ids and gold filled in for aligned pairs), checked: no side empty,
    ids unique, each gold id a pivot id; empty sentences are warned about (they are embedded as they are)."""
    sentences, pivots = _side(frame, "sentence", where), _side(frame, "pivot", where)
    if not sentences or not pivots:
        raise XltError(f"{where} has {len(sentences)} sentences and {len(pivots)} English ones; both sides need "
                       "some")
    sentence_ids = _side(frame, "sentence_id", where) if "sentence_id" in frame else \
        [str(i) for i in range(len(sentences))]
    pivot_ids = _side(frame, "pivot_id", where) if "pivot_id" in frame else [str(i) for i in range(len(pivots))]
    if "gold" in frame:
        gold = ["" if not_a_value(g) == "null" else str(g) for g in frame["gold"].tolist()[:len(sentences)]]
    elif len(sentences) != len(pivots):
        raise XltError(f"{where} has {len(sentences)} sentences but {len(pivots)} English ones; without a `gold` "
                       "column sentence i translates English sentence i, so both sides need the same number")
    else:
        gold = list(pivot_ids)
    for what, ids, texts in (("sentence", sentence_ids, sentences), ("English", pivot_ids, pivots)):
        if len(ids) != len(texts):
            raise XltError(f"{where}: {len(ids)} {what} ids for {len(texts)} {what} sentences")
        if len(set(ids)) != len(ids):
            dup = pd.Series(ids)[pd.Series(ids).duplicated()].iloc[0]
            raise XltError(f"{where}: {what} id {dup!r} is on more than one row; ids must be unique")
        empty = [i for i, t in enumerate(texts) if not t.strip()]
        if empty:
            warn_empty(where, f"an empty {what} sentence", len(empty), len(texts), f"row {empty[0]}")
    unknown = sorted({g for g in gold if g and g not in set(pivot_ids)})
    if unknown:
        raise XltError(f"{where}: gold translation(s) {unknown[:5]} are not ids of the English side; the gold "
                       "pairs and the corpora must come from the same release and split")
    n = max(len(sentences), len(pivots))
    pad = lambda values: list(values) + [None] * (n - len(values))   # noqa: E731
    return pd.DataFrame({"sentence_id": pad(sentence_ids), "sentence": pad(sentences), "pivot_id": pad(pivot_ids),
                         "pivot": pad(pivots), "gold": pad(gold)})


def sides(frame: pd.DataFrame) -> Sides:
    """The two sides of a prepared frame. A gold id cut off with its sentence (--max-eval-samples keeps the
    first N rows of each side) is no gold pair."""
    n_s, n_p = int(frame["sentence"].notna().sum()), int(frame["pivot"].notna().sum())
    pivot_ids = frame["pivot_id"].tolist()[:n_p]
    present = set(pivot_ids)
    gold = [g if g in present else "" for g in frame["gold"].tolist()[:n_s]]
    return Sides(frame["sentence_id"].tolist()[:n_s], frame["sentence"].tolist()[:n_s], pivot_ids,
                 frame["pivot"].tolist()[:n_p], gold)


# --- from embeddings to predictions --------------------------------------------------------------------------

def side_embeddings(feats, decoded: Sequence[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """The (sentences, D) and (pivots, D) embeddings in file order, from the decoded batches (rows, vectors)."""
    dim = decoded[0][1].shape[1]
    emb = np.zeros((len(feats), dim), dtype=np.float32)
    done = np.zeros(len(feats), dtype=bool)
    for rows, vectors in decoded:
        emb[rows], done[rows] = vectors, True
    if not done.all():
        raise XltError(f"{int((~done).sum())} sentences were not embedded; this is a bug in the evaluation loop")
    side, index = feats.rows["side"], feats.index
    out = []
    for s in (0, 1):
        rows = np.flatnonzero(side == s)
        out.append(emb[rows[np.argsort(index[rows], kind="stable")]])
    return out[0], out[1]


def top1_rows(sides: Sides, sentence_emb: np.ndarray, pivot_emb: np.ndarray, queries: str) -> pd.DataFrame:
    """Each query's nearest neighbour on the other side (every query answered): idx, id, label, pred, score."""
    from xlt.tasktypes.retrieval_search import top1

    if queries == "sentence":
        query_ids, labels, target_ids = sides.sentence_ids, sides.gold, sides.pivot_ids
        found, score = top1(sentence_emb, pivot_emb)
    else:   # each English sentence queries the language's side; its gold is the sentence whose gold it is
        answer = {g: sid for sid, g in zip(sides.sentence_ids, sides.gold) if g}
        query_ids, labels, target_ids = sides.pivot_ids, [answer.get(p, "") for p in sides.pivot_ids], \
            sides.sentence_ids
        found, score = top1(pivot_emb, sentence_emb)
    return pd.DataFrame({"idx": np.arange(len(query_ids)), "id": query_ids, "label": labels,
                         "pred": np.asarray(target_ids, dtype=object)[found], "score": score.astype(np.float64),
                         "extracted": np.ones(len(query_ids), dtype=bool)})


def mine_rows(sides: Sides, sentence_emb: np.ndarray, pivot_emb: np.ndarray, k: int) -> pd.DataFrame:
    """XTREME's mining on the unique texts of each side, mapped back to ids (retrieval_bucc), one row per
    sentence (`retrieval_bucc.sentence_rows`); nothing is extracted before the threshold is chosen."""
    from xlt.tasktypes.retrieval_bucc import mined_ids, sentence_rows, unique_texts
    from xlt.tasktypes.retrieval_files import BuccCorpus
    from xlt.tasktypes.retrieval_search import mine

    src_texts, src_of_line = unique_texts(sides.sentences)
    tgt_texts, tgt_of_line = unique_texts(sides.pivots)
    first_src = np.unique(src_of_line, return_index=True)[1]   # the first line holding each unique text
    first_tgt = np.unique(tgt_of_line, return_index=True)[1]
    mined = mine(sentence_emb[first_src], pivot_emb[first_tgt], k=k)
    pairs = mined_ids(mined, BuccCorpus(sides.sentence_ids, sides.sentences, None), src_texts,
                      BuccCorpus(sides.pivot_ids, sides.pivots, None), tgt_texts)
    return sentence_rows(sides.sentence_ids, sides.gold, pairs)


# --- other systems' predictions ------------------------------------------------------------------------------

def external_indices(sides: Sides, path, queries: str) -> pd.DataFrame:
    """Rows from a file of retrieved indices, one line per query in order (0-based lines of the other side)."""
    from xlt.tasktypes.fields import ascii_int
    from xlt.tasktypes.retrieval_files import read_lines

    lines = [line.strip() for line in read_lines(path)]
    query_ids, target_ids = (sides.sentence_ids, sides.pivot_ids) if queries == "sentence" else \
        (sides.pivot_ids, sides.sentence_ids)
    if len(lines) != len(query_ids):
        raise XltError(f"{path} has {len(lines)} lines for {len(query_ids)} queries; write one retrieved index "
                       "per query, in the order of the queries' file")
    found = []
    for number, line in enumerate(lines, 1):
        value = ascii_int(line)
        if value is None or not 0 <= value < len(target_ids):
            raise XltError(f"{path}:{number}: {line[:40]!r} is not an index of the searched side (0.."
                           f"{len(target_ids) - 1})")
        found.append(value)
    labels = sides.gold if queries == "sentence" else \
        [{g: s for s, g in zip(sides.sentence_ids, sides.gold) if g}.get(p, "") for p in sides.pivot_ids]
    return pd.DataFrame({"idx": np.arange(len(query_ids)), "id": query_ids, "label": labels,
                         "pred": np.asarray(target_ids, dtype=object)[found], "score": np.nan,
                         "extracted": True})


def external_pairs(sides: Sides, path) -> pd.DataFrame:
    """Rows from a file of extracted pairs, `xx_id<TAB>en_id` per line (a repeated pair counts once, as in
    XTREME's bucc_f1); a sentence in two different pairs is refused (a row holds one pair)."""
    from xlt.tasktypes.retrieval_files import read_lines

    known_src, known_tgt = {s: i for i, s in enumerate(sides.sentence_ids)}, set(sides.pivot_ids)
    pred = np.full(len(sides.sentence_ids), "", dtype=object)
    line_of: dict[str, int] = {}
    for number, line in enumerate(read_lines(path), 1):
        if not line.strip():
            continue
        fields = [f.strip() for f in line.strip().split("\t")]
        if len(fields) != 2 or fields[0] not in known_src or fields[1] not in known_tgt:
            raise XltError(f"{path}:{number}: expected `xx_id<TAB>en_id` with ids of this split's corpora, found "
                           f"{line[:80]!r}")
        row = known_src[fields[0]]
        if pred[row] and pred[row] != fields[1]:
            raise XltError(f"{path}:{number}: {fields[0]!r} is already paired with {pred[row]!r} (line "
                           f"{line_of[fields[0]]}); a sentence is extracted with one translation")
        pred[row] = fields[1]
        line_of.setdefault(fields[0], number)
    return pd.DataFrame({"idx": np.arange(len(pred)), "id": sides.sentence_ids, "label": sides.gold, "pred": pred,
                         "score": np.nan, "extracted": pred != ""})
