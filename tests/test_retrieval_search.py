"""Retrieval search and scores equal XTREME's (tests/xtreme_retrieval.py, a plain port of its functions).

The synthetic corpora are built so that each of the usual mistakes changes the answer, and a test checks that
they do (on XTREME's own functions, by switching their parameters): a distance or absolute margin instead of
the ratio, one direction (or their intersection) instead of both, k != 4, no L2 normalisation; Tatoeba's two
directions and an unnormalised search give different accuracies. An off-by-one threshold changes the
threshold compared below.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from tests import xtreme_retrieval as X
from xlt.tasktypes import retrieval_bucc as B
from xlt.tasktypes import retrieval_files as F
from xlt.tasktypes import retrieval_pooling as P
from xlt.tasktypes import retrieval_search as S

BUCC_SEED = 3      # a corpus on which every variant below changes dev or test F1 (checked by a test)
TATOEBA_SEED = 4   # a corpus on which en->xx, xx->en and unnormalised search give three accuracies


# --- synthetic corpora -------------------------------------------------------------------------------------

def bucc_split(rng, folder: Path, split: str, lang: str = "de", n_src: int = 40, n_tgt: int = 50,
               n_gold: int = 24, dim: int = 8) -> dict[str, np.ndarray]:
    """Write `<lang>-en.<split>.{lang,en,gold}` in XTREME's format; return the embedding of every text.

    Gold targets are noisy copies of their sources (noise 0.2-1.2, so some are hard), three targets are
    hubs near the sources' mean (close to many sources: what the margin corrects), every vector gets a random
    norm (what normalisation removes), and two texts occur twice (XTREME unifies them and drops their ids)."""
    src, tgt = rng.normal(size=(n_src, dim)), rng.normal(size=(n_tgt, dim))
    si, ti = rng.choice(n_src, n_gold, replace=False), rng.choice(n_tgt, n_gold, replace=False)
    tgt[ti] = src[si] + rng.uniform(0.2, 1.2, size=n_gold)[:, None] * rng.normal(size=(n_gold, dim))
    hubs = rng.choice(np.setdiff1d(np.arange(n_tgt), ti), 3, replace=False)
    tgt[hubs] = src.mean(0) * 3 + 0.3 * rng.normal(size=(3, dim))
    src *= np.exp(0.7 * rng.normal(size=(n_src, 1)))
    tgt *= np.exp(0.7 * rng.normal(size=(n_tgt, 1)))
    src_texts = [f"{lang} {split} Satz {i}" for i in range(n_src)]
    tgt_texts = [f"en {split} sentence {j}" for j in range(n_tgt)]
    src_texts[1], src[1] = src_texts[0], src[0]        # one text on two source lines
    tgt_texts[2], tgt[2] = tgt_texts[3], tgt[3]        # and on two target lines
    src_ids = [f"{lang}-{split}-{i:09d}" for i in range(n_src)]
    tgt_ids = [f"en-{split}-{j:09d}" for j in range(n_tgt)]
    folder.mkdir(parents=True, exist_ok=True)
    src_path, tgt_path, gold_path = F.bucc_paths(folder, lang, split)
    src_path.write_text("".join(f"{i}\t{t}\n" for i, t in zip(src_ids, src_texts)), encoding="utf-8")
    tgt_path.write_text("".join(f"{i}\t{t}\n" for i, t in zip(tgt_ids, tgt_texts)), encoding="utf-8")
    gold_path.write_text("".join(f"{src_ids[i]}\t{tgt_ids[j]}\n" for i, j in zip(si, ti)), encoding="utf-8")
    emb = dict(zip(src_texts, src.astype(np.float32)))
    emb.update(zip(tgt_texts, tgt.astype(np.float32)))
    return emb


@pytest.fixture(scope="module")
def bucc(tmp_path_factory) -> tuple[Path, dict[str, np.ndarray]]:
    folder = tmp_path_factory.mktemp("bucc2018")
    rng = np.random.default_rng(BUCC_SEED)
    emb = bucc_split(rng, folder, "dev")
    emb.update(bucc_split(rng, folder, "test"))
    return folder, emb


def xtreme_bucc(folder: Path, split: str, emb, threshold=None, lang: str = "de", **mine_kw):
    """XTREME's pipeline on one split: run_bucc2018.sh's `cut` into .txt/.id files, mine_bitext, then
    bucc_eval (threshold optimised on gold when None, else applied) and evaluate.py's bucc_f1 of the
    extracted pairs. Returns (candidates in file order, bucc_eval's result, bucc_f1 of the extraction)."""
    work = folder / "xtreme" / "-".join(f"{k}={v}" for k, v in sorted(mine_kw.items()))
    work.mkdir(parents=True, exist_ok=True)
    prefix = f"{lang}-en.{split}"
    for side in (lang, "en"):
        lines = (folder / f"{prefix}.{side}").read_text(encoding="utf-8").splitlines()
        (work / f"{prefix}.{side}.txt").write_text("".join(line.split("\t")[1] + "\n" for line in lines))
        (work / f"{prefix}.{side}.id").write_text("".join(line.split("\t")[0] + "\n" for line in lines))
    txt = {side: str(work / f"{prefix}.{side}.txt") for side in (lang, "en")}
    ids = {side: str(work / f"{prefix}.{side}.id") for side in (lang, "en")}
    x = np.stack([emb[t] for t in Path(txt[lang]).read_text().splitlines()])
    y = np.stack([emb[t] for t in Path(txt["en"]).read_text().splitlines()])
    candidates, predict = str(work / f"candidates.{split}.tsv"), str(work / f"predict.{split}.tsv")
    X.mine_bitext(x, y, txt[lang], txt["en"], candidates, **mine_kw)
    cand2score = X.read_candidate2score(candidates, txt[lang], txt["en"], ids[lang], ids["en"])
    gold_file = str(folder / f"{prefix}.gold")
    result = X.bucc_eval(candidates, None if threshold is not None else gold_file, txt[lang], txt["en"],
                         ids[lang], ids["en"], predict, threshold)
    extracted = X.bucc_f1(Path(gold_file).read_text().splitlines(), Path(predict).read_text().splitlines())
    return list(cand2score.items()), result, extracted


def xlt_bucc(folder: Path, split: str, emb, threshold=None, block_size=S.DEFAULT_BLOCK, lang: str = "de"):
    """xlt's pipeline on one split: read the files, embed the unique texts, mine, map to ids, one predictions
    row per sentence, threshold (chosen on these rows when None), extract."""
    data = F.read_bucc(folder, lang, split)
    src_texts, _ = B.unique_texts(data.source.sentences)
    tgt_texts, _ = B.unique_texts(data.target.sentences)
    x, y = np.stack([emb[t] for t in src_texts]), np.stack([emb[t] for t in tgt_texts])
    pairs = B.mined_ids(S.mine(x, y, block_size=block_size), data.source, src_texts, data.target, tgt_texts)
    gold = dict(data.gold)
    rows = B.sentence_rows(data.source.ids, [gold.get(i, "") for i in data.source.ids], pairs)
    if threshold is None:
        threshold = S.choose_threshold(*B.mined_correct(rows))
    return pairs, threshold, B.extract(rows, threshold)


def scores(rows) -> dict[str, float]:
    """Precision, recall and F1 as a run records them: the retrieval type's statistics and formulas."""
    from xlt.tasktypes.retrieval import TASK_TYPE

    return TASK_TYPE.score(rows, ["f1", "precision", "recall"])


def tatoeba_embeddings(seed: int = TATOEBA_SEED, n: int = 60, dim: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """(xx, en) embeddings, pair i = row i: noisy translations, a cluster of near-duplicate English
    sentences (as Tatoeba's "Tom needs water" variants), random norms."""
    rng = np.random.default_rng(seed)
    en = rng.normal(size=(n, dim))
    en[:5] = en[:5] * 0.2 + rng.normal(size=dim) * 2
    xx = en + rng.uniform(0.3, 1.3, size=(n, 1)) * rng.normal(size=(n, dim))
    xx *= np.exp(0.7 * rng.normal(size=(n, 1)))
    en *= np.exp(0.7 * rng.normal(size=(n, 1)))
    return xx.astype(np.float32), en.astype(np.float32)


# --- exact blocked search ----------------------------------------------------------------------------------

@pytest.mark.parametrize("block_size", [1, 5, 16, 37, 96, 128, 1000])
def test_blocked_search_equals_the_unblocked_one_exactly(block_size):
    """Would catch: a merge across target blocks that loses a neighbour, an index offset missing on a block
    (j0 / i0), the last partial block skipped, scores that depend on the block they were computed in. 96 and
    128 rows: 16 divides both, 5 and 37 neither, 1000 is one block."""
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(96, 24)).astype(np.float32), rng.normal(size=(128, 24)).astype(np.float32)
    whole = S.knn_both(x, y, 4, 6, block_size=10_000)
    blocked = S.knn_both(x, y, 4, 6, block_size=block_size)
    for a, b in zip(whole, blocked):
        assert torch.equal(a.indices, b.indices) and torch.equal(a.scores, b.scores)
    alone = S.knn(x, y, 4, block_size=block_size)
    assert torch.equal(alone.indices, whole[0].indices) and torch.equal(alone.scores, whole[0].scores)


def test_knn_is_the_exact_cosine_top_k():
    """Would catch: inner products of unnormalised vectors, ascending order, k not capped at the targets."""
    rng = np.random.default_rng(1)
    x = rng.normal(size=(50, 16)).astype(np.float32) * rng.uniform(0.1, 10, size=(50, 1)).astype(np.float32)
    y = rng.normal(size=(70, 16)).astype(np.float32) * rng.uniform(0.1, 10, size=(70, 1)).astype(np.float32)
    xn, yn = x / np.linalg.norm(x, axis=1, keepdims=True), y / np.linalg.norm(y, axis=1, keepdims=True)
    sims, ind = X.knnCPU(xn, yn, 5)
    nn = S.knn(x, y, 5, block_size=16)
    assert np.array_equal(nn.indices.numpy(), ind)
    np.testing.assert_allclose(nn.scores.numpy(), sims, rtol=0, atol=1e-6)
    assert S.knn(x[:3], y[:2], 4).indices.shape == (3, 2)       # k capped at the 2 targets


def test_search_refuses_what_it_cannot_search():
    x = np.zeros((3, 4), dtype=np.float32)
    with pytest.raises(ValueError, match="same D"):
        S.knn(x, np.zeros((3, 5), dtype=np.float32), 1)
    with pytest.raises(ValueError, match="empty"):
        S.knn(x, np.zeros((0, 4), dtype=np.float32), 1)
    with pytest.raises(ValueError, match="block_size"):
        S.knn(x, x, 1, block_size=0)


# --- Tatoeba ------------------------------------------------------------------------------------------------

def test_tatoeba_top1_equals_xtremes_similarity_search_in_both_directions():
    """Would catch: a missing L2 normalisation, a swapped query side, an argmax that is not the nearest
    neighbour. XTREME's call similarity_search(x=xx, y=en) searches the xx side with English queries."""
    xx, en = tatoeba_embeddings()
    gold = np.arange(len(xx))
    for queries, targets in ((en, xx), (xx, en)):
        reference = X.similarity_search(targets.copy(), queries.copy(), targets.shape[1], normalize=True)[:, 0]
        for block_size in (7, 60):
            predicted, scores = S.top1(queries, targets, block_size=block_size)
            assert np.array_equal(predicted, reference)
            assert S.top1_accuracy(predicted, gold) == np.mean(reference == gold)
            assert scores.dtype == np.float32 and np.all(scores <= 1.0 + 1e-6)


def test_tatoeba_corpus_tells_directions_and_normalisation_apart():
    """The fixture's power: en->xx, xx->en and an unnormalised search give three different accuracies, so
    the test above fails if the direction is swapped or the normalisation dropped."""
    xx, en = tatoeba_embeddings()
    gold = np.arange(len(xx))
    en_queries = np.mean(X.similarity_search(xx.copy(), en.copy(), 8, normalize=True)[:, 0] == gold)
    xx_queries = np.mean(X.similarity_search(en.copy(), xx.copy(), 8, normalize=True)[:, 0] == gold)
    unnormalised = np.mean(X.similarity_search(en.copy(), xx.copy(), 8, normalize=False)[:, 0] == gold)
    assert len({en_queries, xx_queries, unnormalised}) == 3, (en_queries, xx_queries, unnormalised)


def test_top1_accuracy_checks_its_inputs():
    assert S.top1_accuracy(np.array([0, 1, 5]), np.array([0, 1, 2])) == pytest.approx(2 / 3)
    with pytest.raises(ValueError):
        S.top1_accuracy(np.array([0, 1]), np.array([0, 1, 2]))


# --- BUCC ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("block_size", [3, 16, S.DEFAULT_BLOCK])
def test_bucc_mining_threshold_and_f1_equal_xtremes(bucc, block_size):
    """Mined pairs (in XTREME's candidate-file order), their margins, the dev threshold (bucc_optimize), dev
    F1 (bucc_eval) and test F1 with the dev threshold (bucc_extract + evaluate.py's bucc_f1) equal XTREME's.
    Would catch: a distance margin, one direction only, k != 4, a missing normalisation, an off-by-one
    threshold (the next score, or the peak's own), `>` for `>=`, a repeated text not dropped."""
    folder, emb = bucc
    ref_candidates, ref_dev, _ = xtreme_bucc(folder, "dev", emb)
    pairs, threshold, dev_rows = xlt_bucc(folder, "dev", emb, block_size=block_size)
    assert list(zip(pairs.src_id, pairs.tgt_id)) == [pair for pair, _ in ref_candidates]
    np.testing.assert_allclose(pairs.score, [score for _, score in ref_candidates], rtol=1e-6, atol=0)
    assert threshold == pytest.approx(ref_dev["best-threshold"], rel=1e-6, abs=0)
    dev = scores(dev_rows)
    assert 100 * dev["f1"] == pytest.approx(ref_dev["F1"], rel=1e-12)
    assert (100 * dev["precision"], 100 * dev["recall"]) == pytest.approx((ref_dev["precision"], ref_dev["recall"]))

    _, _, ref_test = xtreme_bucc(folder, "test", emb, threshold=ref_dev["best-threshold"])
    _, _, test_rows = xlt_bucc(folder, "test", emb, threshold=threshold, block_size=block_size)
    test = scores(test_rows)
    assert (100 * test["f1"], 100 * test["precision"], 100 * test["recall"]) == \
        pytest.approx((ref_test["f1"], ref_test["precision"], ref_test["recall"]), rel=1e-12)


@pytest.mark.parametrize("variant", [dict(margin="distance"), dict(margin="absolute"), dict(retrieval="fwd"),
                                     dict(retrieval="bwd"), dict(retrieval="intersect"), dict(neighborhood=3),
                                     dict(neighborhood=5), dict(normalize=False)], ids=repr)
def test_bucc_corpus_tells_the_variants_apart(bucc, variant):
    """The fixture's power: each variant of XTREME's own mine_bitext changes the dev F1 or the test F1 with
    the dev threshold, so the equality test above fails on any of them."""
    folder, emb = bucc
    _, dev, _ = xtreme_bucc(folder, "dev", emb)
    _, _, test = xtreme_bucc(folder, "test", emb, threshold=dev["best-threshold"])
    _, dev_v, _ = xtreme_bucc(folder, "dev", emb, **variant)
    _, _, test_v = xtreme_bucc(folder, "test", emb, threshold=dev_v["best-threshold"], **variant)
    assert (dev_v["F1"], test_v["f1"]) != (dev["F1"], test["f1"])


def test_repeated_texts_are_mined_once_and_never_extracted(bucc):
    """XTREME mines unique texts and drops a text found on two lines from the id mapping: no extracted
    pair names the lines holding the repeated texts (source lines 0-1, target lines 2-3)."""
    folder, emb = bucc
    pairs, _, _ = xlt_bucc(folder, "dev", emb)
    banned_src, banned_tgt = {"de-dev-000000000", "de-dev-000000001"}, {"en-dev-000000002", "en-dev-000000003"}
    assert not banned_src & set(pairs.src_id) and not banned_tgt & set(pairs.tgt_id)
    data = F.read_bucc(folder, "de", "dev")
    texts, of_line = B.unique_texts(data.source.sentences)
    assert len(texts) == len(data.source) - 1 and of_line[0] == of_line[1] == 0


def test_mining_is_one_to_one_and_in_descending_score(bucc):
    folder, emb = bucc
    pairs, _, _ = xlt_bucc(folder, "dev", emb)
    assert len(set(pairs.src_id)) == len(pairs) == len(set(pairs.tgt_id))
    assert np.all(np.diff(pairs.score) <= 0) and np.all(pairs.score > 0)


def test_mining_tiny_corpora_caps_k_as_xtreme_does(tmp_path):
    """Fewer sentences than k on one side: XTREME searches min(size, 4) neighbours; so does xlt."""
    rng = np.random.default_rng(7)
    emb = bucc_split(rng, tmp_path, "dev", n_src=3, n_tgt=9, n_gold=2, dim=4)
    ref_candidates, ref_dev, _ = xtreme_bucc(tmp_path, "dev", emb)
    pairs, threshold, _ = xlt_bucc(tmp_path, "dev", emb)
    assert list(zip(pairs.src_id, pairs.tgt_id)) == [pair for pair, _ in ref_candidates]


def test_choose_threshold_is_bucc_optimize():
    """The midpoint after the F1 peak, on hand-made scores; the first peak wins a tie in F1."""
    scores = np.array([0.9, 0.8, 0.7, 0.6, 0.5])
    correct = np.array([True, False, True, True, False])
    # F1 after each: 2/5=.4 (1 of 4 gold), 1/3, 4/7, 6/8=.75, 2/3 -> peak after 0.6: midpoint 0.55
    assert S.choose_threshold(scores, correct, 4) == pytest.approx(0.55)
    cand2score = {(f"s{i}", f"t{i}"): s for i, s in enumerate(scores)}
    gold = {f"s{i}\tt{i}" for i in np.flatnonzero(correct)} | {"s9\tt9"}
    assert X.bucc_optimize(cand2score, gold) == pytest.approx(0.55)
    shuffled = np.array([3, 0, 4, 1, 2])               # order of the input does not matter
    assert S.choose_threshold(scores[shuffled], correct[shuffled], 4) == pytest.approx(0.55)


def test_choose_threshold_where_xtreme_fails():
    """No correct candidate: XTREME keeps its initial 0. Peak at the last candidate: XTREME raises
    IndexError; xlt takes that candidate's score (everything is extracted, as the peak says)."""
    assert S.choose_threshold(np.array([0.9, 0.8]), np.array([False, False]), 3) == 0.0
    scores, correct = np.array([0.9, 0.8]), np.array([True, True])
    assert S.choose_threshold(scores, correct, 2) == 0.8
    with pytest.raises(IndexError):
        X.bucc_optimize({("a", "b"): 0.9, ("c", "d"): 0.8}, {"a\tb", "c\td"})
    with pytest.raises(ValueError):
        S.choose_threshold(scores, correct, 0)


def test_choose_threshold_when_the_best_candidate_is_wrong():
    """Catches F1 before the first correct candidate read as 0/0 (NaN, which argmax picks) or as a high value
    (the `n_correct > 0` guard or its -1 mutated), and a peak before the last candidate taken as the last."""
    scores, correct = np.array([0.9, 0.8, 0.7, 0.6]), np.array([False, True, True, False])
    # F1 after each: -, 2/5, 4/6, 4/7 with 3 gold -> peak after 0.7: midpoint 0.65
    assert S.choose_threshold(scores, correct, 3) == pytest.approx(0.65)
    assert S.choose_threshold(scores[:3], correct[:3], 3) == pytest.approx(0.7)   # the peak is the last
    assert S.choose_threshold(np.array([]), np.array([], dtype=bool), 1) == 0.0
    assert S.choose_threshold(np.array([0.5]), np.array([True]), 1) == 0.5


def test_search_metrics_refuse_malformed_inputs():
    """Catches the shape checks' `or` turned into `and` and their numbers moved: arrays of unequal length,
    2-D arrays, an empty gold list, and n_gold 0 are refused; n_gold 1 is not."""
    for predicted, gold in ((np.array([0, 1]), np.array([0, 1, 2])), (np.zeros((2, 2)), np.zeros((2, 2))),
                            (np.zeros((1, 3)), np.zeros((1, 3))), (np.array([]), np.array([]))):
        with pytest.raises(ValueError):
            S.top1_accuracy(predicted, gold)
    assert S.top1_accuracy(np.array([4]), np.array([4])) == 1.0
    for scores, correct in ((np.array([0.9, 0.8]), np.array([True])), (np.zeros((2, 2)), np.zeros((2, 2))),
                            (np.zeros((1, 2)), np.zeros((1, 2)))):
        with pytest.raises(ValueError):
            S.choose_threshold(scores, correct, 1)
    with pytest.raises(ValueError):
        S.choose_threshold(np.array([0.9]), np.array([True]), 0)
    assert S.precision_recall_f1(1, 1, 1) == {"precision": 1.0, "recall": 1.0, "f1": 1.0}


def test_precision_recall_f1_is_bucc_f1():
    gold = ["a\t1", "b\t2", "c\t3", "d\t4"]
    predicted = ["a\t1", "b\t9", "c\t3"]
    ref = X.bucc_f1(gold, predicted)
    ours = S.precision_recall_f1(2, 3, 4)
    assert {k: 100 * v for k, v in ours.items()} == pytest.approx(ref)
    assert S.precision_recall_f1(0, 3, 4) == {"precision": 0.0, "recall": 0.0, "f1": 0.0}


def test_sentence_rows_recompute_every_figure(bucc):
    """One row per source sentence (every run of a split has the same rows: the bootstrap's units): the mined
    pairs first in mining order, then the rest in file order; per-row tp/fp/fn sum to (correct, extracted -
    correct, gold - correct), so F1, precision and recall recompute from the rows alone."""
    folder, emb = bucc
    pairs, threshold, rows = xlt_bucc(folder, "test", emb, threshold=None)
    data = F.read_bucc(folder, "de", "test")
    assert sorted(rows["idx"]) == list(range(len(data.source))) and list(rows["id"]) == \
        [data.source.ids[i] for i in rows["idx"]]
    assert list(rows["pred"][:len(pairs)]) == pairs.tgt_id and (rows["pred"][len(pairs):] == "").all()
    assert rows["score"][len(pairs):].isna().all() and not rows["extracted"][len(pairs):].any()
    assert int((rows["label"] != "").sum()) == len(data.gold)
    gold = set(data.gold)
    extracted = {(s, t) for s, t, score in zip(pairs.src_id, pairs.tgt_id, pairs.score) if score >= threshold}
    correct = len(extracted & gold)
    from xlt.tasktypes.retrieval import TASK_TYPE

    stats = TASK_TYPE.statistics(rows)
    assert (stats["tp"].sum(), stats["fp"].sum(), stats["fn"].sum()) == \
        (correct, len(extracted) - correct, len(gold) - correct)
    assert scores(rows)["f1"] == pytest.approx(2 * correct / (len(extracted) + len(gold)), rel=1e-12)


# --- pooling and layers -------------------------------------------------------------------------------------

def test_mean_and_cls_pooling_are_xtremes():
    """Mean over every non-padding position ([CLS] and [SEP] included, as XTREME's default pool mask), cls =
    position 0; padding never changes an embedding; bf16 hidden states give float32 embeddings."""
    torch.manual_seed(0)
    hidden = torch.randn(3, 6, 5)
    mask = torch.tensor([[1, 1, 1, 1, 1, 1], [1, 1, 1, 0, 0, 0], [1, 1, 0, 0, 0, 0]])
    assert torch.allclose(P.pool(hidden, mask, "mean"), X.mean_pool_embedding([hidden], mask)[0])
    assert torch.equal(P.pool(hidden, mask, "cls"), X.cls_pool_embedding([hidden])[0])
    padded = torch.cat([hidden, torch.randn(3, 4, 5)], dim=1)
    padded_mask = torch.cat([mask, torch.zeros(3, 4, dtype=mask.dtype)], dim=1)
    assert torch.allclose(P.pool(padded, padded_mask, "mean"), P.pool(hidden, mask, "mean"), atol=1e-6)
    assert P.pool(hidden.bfloat16(), mask, "mean").dtype == torch.float32
    with pytest.raises(ValueError, match="pooling"):
        P.pool(hidden, mask, "max")
    with pytest.raises(ValueError):
        P.pool(hidden, mask[:, :3], "mean")


def test_candidates_with_a_non_positive_margin_are_not_mined(tmp_path):
    """mine_bitext writes a pair only if its margin is > 0 (threshold=0). Here the outlier source has a
    negative cosine with every target, and the target it picks is taken by nobody else: only the > 0 rule
    keeps the pair out."""
    e = np.eye(4, dtype=np.float32)
    rng = np.random.default_rng(5)
    good = [e[0] + 0.02 * rng.normal(size=4).astype(np.float32) for _ in range(3)]
    src = good + [e[1] - 0.3 * e[0]]                                     # the outlier
    tgt = [g + 0.02 * rng.normal(size=4).astype(np.float32) for g in good] + [e[0] + e[2]]
    src_texts, tgt_texts = [f"s{i}" for i in range(4)], [f"t{j}" for j in range(4)]
    paths = F.bucc_paths(tmp_path, "de", "dev")
    paths[0].write_text("".join(f"de-{i}\ts{i}\n" for i in range(4)))
    paths[1].write_text("".join(f"en-{j}\tt{j}\n" for j in range(4)))
    paths[2].write_text("".join(f"de-{i}\ten-{i}\n" for i in range(3)))
    emb = dict(zip(src_texts + tgt_texts, src + tgt))
    fwd, bwd = S.knn_both(np.stack(src), np.stack(tgt), 4, 4)
    fwd_margin, _ = S.margin_scores(fwd, bwd)
    assert fwd_margin[3].max() < 0                                       # the outlier's best candidate
    ref_candidates, _, _ = xtreme_bucc(tmp_path, "dev", emb)
    pairs, _, _ = xlt_bucc(tmp_path, "dev", emb)
    assert list(zip(pairs.src_id, pairs.tgt_id)) == [pair for pair, _ in ref_candidates]
    assert "de-3" not in pairs.src_id
    best_target = f"en-{int(fwd.indices[3, fwd_margin[3].argmax()])}"
    assert best_target not in pairs.tgt_id                               # free: only the > 0 rule stops it


def test_a_pair_scoring_exactly_the_threshold_is_extracted(bucc):
    """bucc_extract keeps `score >= threshold`: a threshold equal to a mined score keeps that pair."""
    folder, emb = bucc
    pairs, _, rows = xlt_bucc(folder, "dev", emb)
    for rank in (0, 5, len(pairs) - 1):
        threshold = float(pairs.score[rank])
        cand2score = dict(zip(zip(pairs.src_id, pairs.tgt_id), pairs.score))
        extracted = X.bucc_extract(cand2score, threshold, None)
        assert int(B.extract(rows, threshold)["extracted"].sum()) == len(extracted) == rank + 1
