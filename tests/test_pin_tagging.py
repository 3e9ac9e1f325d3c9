"""Pins on tagging's numbers: spans and per-sentence counts against seqeval, subword windows and word ownership
against a brute-force search, predictions and scores against plain Python.

No model and no trained tokenizer: the windows are cut from synthetic subword layouts (every case a window
can meet: words of 0-3 subwords, sentences shorter and far longer than a window, specials of 0-2 tokens on
either side), and `encode` runs on a small WordPiece tokenizer built in memory, compared with the same
tokenizer called word by word.
"""

from __future__ import annotations

import itertools
import random
import warnings

import numpy as np
import pandas as pd
import pytest
import torch

import tests.hypothesis_home  # noqa: F401  (before hypothesis is used)
from hypothesis import given, settings
from hypothesis import strategies as st

from xlt.errors import XltError
from xlt.tasks import SplitData
from xlt.tasktypes import get_task_type
from xlt.tasktypes.alignment import IGNORE, Encoded, encode, special_tokens, step_size, windows
from xlt.tasktypes.spans import _end_of_chunk, _start_of_chunk, chunks, sentence_counts, split_tag

PROPERTY = settings(max_examples=150, deadline=None, database=None, derandomize=True)
TT = get_task_type("token-classification")
NER = ("O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC")


def seqeval_entities(sentences):
    from seqeval.metrics.sequence_labeling import get_entities

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")      # "NOUN seems not to be NE tag"
        return get_entities([list(s) for s in sentences])


def seqeval_scores(gold, pred):
    from seqeval.metrics import accuracy_score, f1_score, precision_score, recall_score

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return {"f1": f1_score(gold, pred), "precision": precision_score(gold, pred),
                "recall": recall_score(gold, pred), "accuracy": accuracy_score(gold, pred)}


# ------------------------------------------------------------------------------------------------------------
# Spans


def test_chunk_rules_equal_seqevals_on_every_prefix_and_type_pair():
    """The two state-machine rules, on every pair of prefixes (seqeval's and others: a UPOS tag's first letter)
    and equal or different types. Would catch any clause of either rule changed."""
    from seqeval.metrics.sequence_labeling import end_of_chunk, start_of_chunk

    prefixes = ["O", "B", "I", "E", "S", ".", "N", "X"]
    for prev, tag in itertools.product(prefixes, repeat=2):
        for prev_type, type_ in [("PER", "PER"), ("PER", "LOC"), ("_", "_"), ("", "_"), ("OUN", "OUN")]:
            assert _end_of_chunk(prev, tag, prev_type, type_) == end_of_chunk(prev, tag, prev_type, type_)
            assert _start_of_chunk(prev, tag, prev_type, type_) == start_of_chunk(prev, tag, prev_type, type_)


@pytest.mark.parametrize("tag, expected", [("B-PER", ("B", "PER")), ("I-B-X", ("I", "B-X")), ("NOUN", ("N", "OUN")),
                                           ("O", ("O", "_")), ("B", ("B", "_")), ("X-", ("X", "_")),
                                           ("S_y", ("S", "_y"))])
def test_split_tag_reads_a_tag_as_seqeval_does(tag, expected):
    assert split_tag(tag) == expected


IOB = ["O", "O", "B-PER", "I-PER", "B-LOC", "I-LOC", "I-ORG", "E-LOC", "S-PER", "S-ORG"]
sentences_of = st.lists(st.lists(st.sampled_from(IOB), max_size=7), min_size=1, max_size=6)


@PROPERTY
@given(sentences_of, st.integers(0, 2**32 - 1))
def test_per_sentence_counts_are_seqevals_counts_of_each_sentence(gold, seed):
    """With entity tags a chunk never crosses the "O" seqeval puts between sentences, so each sentence's tp, fp,
    fn must be seqeval's on that sentence alone; correct and words are plain counts. Would catch a chunk
    counted in the neighbouring sentence, matched on type only or on offsets only, or a word miscounted."""
    rng = random.Random(seed)
    pred = [[rng.choice(IOB) if rng.random() < 0.4 else t for t in s] for s in gold]
    counts = sentence_counts(gold, pred)
    for k, (g, p) in enumerate(zip(gold, pred)):
        g_chunks, p_chunks = set(seqeval_entities([g])), set(seqeval_entities([p]))
        assert counts["tp"][k] == len(g_chunks & p_chunks)
        assert counts["fp"][k] == len(p_chunks - g_chunks)
        assert counts["fn"][k] == len(g_chunks - p_chunks)
        assert counts["correct"][k] == sum(a == b for a, b in zip(g, p))
        assert counts["words"][k] == len(g)
    assert all(v.dtype == np.float64 and len(v) == len(gold) for v in counts.values())


@PROPERTY
@given(st.lists(st.lists(st.sampled_from(IOB + ["NOUN", "X", "B", "."]), max_size=6), min_size=1, max_size=5))
def test_chunks_are_seqevals_entities_of_the_joined_sentences(sentences):
    assert chunks(sentences) == seqeval_entities(sentences)


def test_counts_where_gold_and_prediction_differ_in_each_way():
    """Worked by hand: sentence 0 has PER (tp) and a LOC predicted one word short (fp + fn); sentence 1 is
    empty; sentence 2 has an ORG the prediction misses (fn) and a spurious PER (fp)."""
    gold = [["B-PER", "I-PER", "O", "B-LOC", "I-LOC"], [], ["B-ORG", "O", "O"]]
    pred = [["B-PER", "I-PER", "O", "B-LOC", "O"], [], ["O", "O", "B-PER"]]
    counts = sentence_counts(gold, pred)
    assert counts["tp"].tolist() == [1, 0, 0] and counts["fp"].tolist() == [1, 0, 1]
    assert counts["fn"].tolist() == [1, 0, 1] and counts["correct"].tolist() == [4, 0, 1]
    assert counts["words"].tolist() == [5, 0, 3]
    with pytest.raises(ValueError, match="as many predicted tags"):
        sentence_counts([["O", "O"]], [["O"]])


# ------------------------------------------------------------------------------------------------------------
# Scores of the type


def frame_of(gold, pred):
    return pd.DataFrame({"idx": range(len(gold)), "label": gold, "pred": pred})


@PROPERTY
@given(sentences_of, st.integers(0, 2**32 - 1))
def test_score_equals_seqeval_and_counts_words(gold, seed):
    """Would catch precision and recall swapped, F1 from the wrong counts, accuracy over sentences instead of
    words, or n / n_words miscounted."""
    rng = random.Random(seed)
    pred = [[rng.choice(IOB) if rng.random() < 0.4 else t for t in s] for s in gold]
    got = TT.score(frame_of(gold, pred), ["f1", "precision", "recall", "accuracy"])
    if sum(map(len, gold)):
        assert got == pytest.approx({**seqeval_scores(gold, pred), "n": len(gold), "n_words": sum(map(len, gold))},
                                    abs=1e-12)
    assert got["n"] == len(gold) and got["n_words"] == sum(map(len, gold))


def test_metrics_from_totals_on_a_case_where_every_formula_differs():
    """tp 2, fp 1, fn 3: precision 2/3, recall 2/5, F1 1/2; accuracy 7/10. Zero denominators give 0 (seqeval's
    zero_division default), per resample."""
    totals = {"tp": np.array([2.0, 0.0]), "fp": np.array([1.0, 0.0]), "fn": np.array([3.0, 0.0]),
              "correct": np.array([7.0, 0.0]), "words": np.array([10.0, 0.0])}
    assert TT.metric_from_totals("precision", totals, 4).tolist() == pytest.approx([2 / 3, 0.0])
    assert TT.metric_from_totals("recall", totals, 4).tolist() == pytest.approx([2 / 5, 0.0])
    assert TT.metric_from_totals("f1", totals, 4).tolist() == pytest.approx([0.5, 0.0])
    assert TT.metric_from_totals("accuracy", totals, 4).tolist() == pytest.approx([0.7, 0.0])
    with pytest.raises(XltError, match="unknown metric 'bleu'"):
        TT.metric_from_totals("bleu", totals, 4)
    all_o = frame_of([["O", "O"]], [["O", "O"]])
    assert TT.score(all_o, ["f1", "precision", "recall", "accuracy"]) == {
        "f1": 0.0, "precision": 0.0, "recall": 0.0, "accuracy": 1.0, "n": 1, "n_words": 2}
    with pytest.raises(XltError, match="zero examples"):
        TT.score(frame_of([], []), ["f1"])
    with pytest.raises(XltError, match="has 2 gold tags but 1 predicted"):
        TT.statistics(frame_of([["O", "O"]], [["O"]]))
    with pytest.raises(XltError, match="has 1 gold tags but 2 predicted"):   # and more predictions than gold
        TT.statistics(frame_of([["O"]], [["O", "O"]]))


# ------------------------------------------------------------------------------------------------------------
# Rows: tags to ids


class FakeSource:
    def __init__(self, label_map=(), drop_labels=()):
        self.label_map, self.drop_labels = tuple(dict(label_map).items()), tuple(drop_labels)

    def column(self, role):
        return {"tokens": "words", "tags": "ner"}[role]


class FakeTask:
    label_names, option_values, path = NER, {}, "pin.yaml"


def prepare(tags, tokens=None, **source):
    tokens = tokens if tokens is not None else [[f"w{i}" for i in range(len(t))] for t in tags]
    return TT.prepare(pd.DataFrame({"tokens": tokens, "tags": tags}), FakeSource(**source), FakeTask(), "pin")


def test_tags_become_the_task_label_ids_whatever_their_form():
    """ClassLabel ints (python and numpy), names and label_map words, in the order of `labels:`; the highest id
    is accepted. Would catch an off-by-one range check or a label_map ignored."""
    out = prepare([[0, 6, 2], np.array([5, 1], dtype=np.int64), ["B-ORG", "O", "I-LOC"], [np.int32(4)]])
    assert out["tags"].tolist() == [[0, 6, 2], [5, 1], [3, 0, 6], [4]]
    assert out["tokens"].tolist()[0] == ["w0", "w1", "w2"] and out.attrs["dropped"] == 0
    mapped = prepare([["PER", "O", "LOC"], ["B-ORG"]], label_map={"PER": "B-PER", "LOC": "B-LOC"})
    assert mapped["tags"].tolist() == [[1, 0, 5], [3]]          # names not in label_map are read as names
    assert prepare([[1, 1, 2]])["tags"].tolist() == [[1, 1, 2]]  # one lookup per value, reused


@pytest.mark.parametrize("tags, message", [
    ([[7]], r"1 tag\(s\) of pin are not among the labels.*\['7'\]; first in row 0 \(7\)"),
    ([[0], [-1, 0]], r"1 tag\(s\).*\['-1'\]; first in row 1 \(-1\)"),
    ([["B-PER", "B-MISC", "B-MISC", "X"]], r"3 tag\(s\).*\['B-MISC', 'X'\]; first in row 0 \('B-MISC'\)"),
])
def test_unknown_tags_are_refused_with_counts_and_first_row(tags, message):
    with pytest.raises(XltError, match=message):
        prepare(tags)


def test_malformed_sentences_are_refused():
    with pytest.raises(XltError, match="row 1 of pin has 2 words but 1 tags"):
        prepare([["O"], ["O"]], tokens=[["a"], ["a", "b"]])
    with pytest.raises(XltError, match="row 0 of pin has 1 words but 2 tags"):   # more tags than words too
        prepare([["O", "O"]], tokens=[["a"]])
    with pytest.raises(XltError, match="row 0 of pin holds no list of tags"):
        prepare(["O"], tokens=[["a"]])
    with pytest.raises(XltError, match="row 0 of pin holds no list of tokens"):
        prepare([["O"]], tokens=["a"])
    with pytest.raises(XltError, match="drop_labels"):
        prepare([["O"]], drop_labels=("O",))


# ------------------------------------------------------------------------------------------------------------
# Decoding and predictions


def split_of(gold_ids, options=None):
    frame = pd.DataFrame({"tokens": [[f"w{i}" for i in range(len(t))] for t in gold_ids], "tags": gold_ids})
    return SplitData(task="pin", task_type=TT.name, split="test", lang="xx", frame=frame, origin="pin",
                     revision=None, label_names=NER, options=options or {})


def test_decode_keeps_the_argmax_of_every_owned_word_with_its_sentence():
    word = torch.tensor([[-1, 0, -1, 1, -1], [-1, 2, 0, -1, -1]])
    index = torch.tensor([4, 9])
    logits = torch.zeros(2, 5, 7)
    for b, t, tag in [(0, 1, 3), (0, 3, 6), (1, 1, 2), (1, 2, 5), (0, 2, 1), (1, 4, 4)]:
        logits[b, t, tag] = 1.0
    sentence, words, pred = TT.decode(logits, {"word": word, "index": index}, None)
    assert sentence.tolist() == [4, 4, 9, 9] and words.tolist() == [0, 1, 2, 0] and pred.tolist() == [3, 6, 2, 5]


@PROPERTY
@given(st.lists(st.lists(st.integers(0, 6), max_size=6), min_size=1, max_size=5), st.integers(0, 2**32 - 1))
def test_predictions_put_every_word_back_in_place_and_fill_the_unpredicted(gold, seed):
    """Decoded (sentence, word, tag) triples in any order and batching; words never predicted get the task's
    unaligned_tag. Would catch a word put at another sentence's offset, the fill tag ignored, or gold and
    prediction columns crossed."""
    rng = random.Random(seed)
    triples = [(k, j, rng.randrange(7)) for k, s in enumerate(gold) for j in range(len(s)) if rng.random() < 0.8]
    rng.shuffle(triples)
    cut = rng.randint(0, len(triples))
    decoded = [tuple(np.array(col, dtype=np.int64) for col in zip(*part)) if part else
               tuple(np.zeros(0, np.int64) for _ in range(3)) for part in (triples[:cut], triples[cut:])]
    preds = TT.predictions(split_of(gold, {"unaligned_tag": "I-ORG"}), None, decoded)
    expected = [["I-ORG"] * len(s) for s in gold]
    for k, j, tag in triples:
        expected[k][j] = NER[tag]
    assert preds["idx"].tolist() == list(range(len(gold)))
    assert preds["label"].tolist() == [[NER[t] for t in s] for s in gold]
    assert preds["pred"].tolist() == expected


def test_a_word_predicted_twice_is_a_bug_not_a_vote():
    twice = (np.array([0, 0]), np.array([1, 1]), np.array([2, 3]))
    with pytest.raises(RuntimeError, match="1 word"):
        TT.predictions(split_of([[0, 0, 0]]), None, [twice])
    with pytest.raises(XltError, match="need the split"):
        TT.predictions(None, None, [])


# ------------------------------------------------------------------------------------------------------------
# Windows and word ownership, against brute force


def brute_windows(n_tokens, body, step):
    """Window (start, end) spans: from 0, `step` apart, the last one aligned to the sentence's end."""
    if n_tokens == 0:
        return []
    starts = [0]
    while starts[-1] + body < n_tokens:
        starts.append(min(starts[-1] + step, n_tokens - body))
    return [(s, min(s + body, n_tokens)) for s in starts]


def brute_owner(p, spans, n_tokens):
    """The window where p has most context (an edge at the sentence's start or end cuts nothing); ties go to
    the earlier window."""
    def context(span):
        s, e = span
        return min(p - s if s > 0 else float("inf"), e - 1 - p if e < n_tokens else float("inf"))
    inside = [j for j, (s, e) in enumerate(spans) if s <= p < e]
    return max(inside, key=lambda j: (context(spans[j]), -j))


def brute_rows(sentences, tags, prefix, suffix, max_seq_len, window_step):
    """Every model row as (sentence, ids, labels, words), built one sentence and one window at a time."""
    body = max_seq_len - len(prefix) - len(suffix)
    step = max(1, min(window_step, body // 2))
    out = []
    for k, words in enumerate(sentences):               # words: the subword ids of each word of sentence k
        ids = [i for w in words for i in w]
        word_of = [j for j, w in enumerate(words) for _ in w]
        firsts = [p for p in range(len(ids)) if p == 0 or word_of[p] != word_of[p - 1]]
        spans = brute_windows(len(ids), body, step)
        owner = {p: brute_owner(p, spans, len(ids)) for p in firsts}
        for j, (s, e) in enumerate(spans):
            mine = [p for p in range(s, e) if p in owner and owner[p] == j]
            if not mine:
                continue
            labels = [tags[k][word_of[p]] if p in mine else IGNORE for p in range(s, e)]
            word = [word_of[p] if p in mine else -1 for p in range(s, e)]
            out.append((k, prefix + ids[s:e] + suffix, [IGNORE] * len(prefix) + labels + [IGNORE] * len(suffix),
                        [-1] * len(prefix) + word + [-1] * len(suffix)))
    return out


@st.composite
def subword_layouts(draw):
    """Sentences as lists of words, each word its subword ids (0-3 of them; 0: a word the tokenizer drops)."""
    n = draw(st.integers(1, 4))
    sentences = [draw(st.lists(st.lists(st.integers(10, 99), max_size=3), max_size=draw(st.sampled_from([3, 12, 40]))))
                 for _ in range(n)]
    tags = [[draw(st.integers(0, 6)) for _ in s] for s in sentences]
    prefix = draw(st.lists(st.integers(1, 5), max_size=2))
    suffix = draw(st.lists(st.integers(1, 5), max_size=2))
    max_seq_len = len(prefix) + len(suffix) + draw(st.integers(2, 14))
    return sentences, tags, prefix, suffix, max_seq_len, draw(st.integers(1, 9))


def encoded(sentences):
    ids = [i for s in sentences for w in s for i in w]
    words = [j for s in sentences for j, w in enumerate(s) for _ in w]
    lengths = [sum(map(len, s)) for s in sentences]
    return Encoded(np.array(ids, dtype=np.int32), np.array(words, dtype=np.int64),
                   np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64))


@PROPERTY
@given(subword_layouts())
def test_windows_and_owners_equal_brute_force(layout):
    """Would catch an off-by-one in a window's start, end or count, a step not capped at half a window, the last
    window not aligned to the sentence's end, a word owned by a window that cuts its context shorter (or by
    the later of two equal ones), a non-first subword tagged, specials tagged, or a window that owns nothing
    computed anyway."""
    sentences, tags, prefix, suffix, max_seq_len, window_step = layout
    rows = windows(encoded(sentences), tags, prefix, suffix, max_seq_len, window_step)
    expected = brute_rows(sentences, tags, prefix, suffix, max_seq_len, window_step)
    assert len(rows.offsets) == len(expected) + 1 and rows.offsets[0] == 0
    got = [(int(rows.index[r]), *(a[rows.offsets[r]:rows.offsets[r + 1]].tolist()
                                   for a in (rows.input_ids, rows.labels, rows.word)))
           for r in range(len(rows.offsets) - 1)]
    assert got == [(k, ids, labels, word) for k, ids, labels, word in expected]
    owned = sorted((k, w) for k, _, _, word in expected for w in word if w >= 0)
    assert owned == sorted({(k, j) for k, s in enumerate(sentences) for j, w in enumerate(s) if w})   # once each


def test_step_is_window_step_capped_at_half_the_body():
    assert [step_size(10, s) for s in (1, 4, 5, 6, 128)] == [1, 4, 5, 5, 5]
    assert step_size(11, 128) == 5 and step_size(3, 128) == 1 and step_size(2, 0) == 1


def test_a_window_too_small_for_any_word_is_refused():
    with pytest.raises(XltError, match="max_seq_len 4 leaves 1 token"):
        windows(encoded([[[11]]]), [[0]], [1, 2], [3], 4, 1)
    bad = Encoded(np.array([11, 12], dtype=np.int32), np.array([0, 2]), np.array([0, 2]))
    with pytest.raises(XltError, match="more words than a sentence has"):
        windows(bad, [[0, 0]], [], [], 16, 8)


def wordpiece_tokenizer(template: str | None):
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {"[PAD]": 0, "[UNK]": 1, "[CLS]": 2, "[SEP]": 3, "a": 4, "b": 5, "##b": 6, "##c": 7, "-": 8, "cd": 9}
    tok = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    if template is not None:
        tok.post_processor = processors.TemplateProcessing(single=template, special_tokens=[("[CLS]", 2),
                                                                                            ("[SEP]", 3)])
    return tok, PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="[PAD]", unk_token="[UNK]")


@pytest.mark.parametrize("template, expected", [("[CLS] $A [SEP]", ([2], [3])), ("$A [SEP] [SEP]", ([], [3, 3])),
                                                ("[CLS] [CLS] $A", ([2, 2], [])), (None, ([], []))])
def test_special_tokens_are_what_the_tokenizer_puts_around_one_sequence(template, expected):
    assert special_tokens(wordpiece_tokenizer(template)[1]) == expected


def test_encode_equals_the_tokenizer_called_word_by_word():
    """Subword ids and each subword's word, flat over sentences, with words the tokenizer drops ("" and " ")
    and empty sentences; chunk=2 so sentences cross chunk boundaries. Would catch ids or words of one sentence
    shifted into another, a word index counted from the chunk, or an empty sentence given subwords."""
    raw, fast = wordpiece_tokenizer("[CLS] $A [SEP]")
    sentences = [["abc", "", "a-b"], [], ["zz", " ", "b", "cd"], ["a"], [], ["abb", "abc"]]
    enc = encode(fast, sentences, chunk=2)
    ids, words, lengths = [], [], []
    for s in sentences:
        pieces = [raw.encode(w, add_special_tokens=False).ids for w in s]
        ids += [i for p in pieces for i in p]
        words += [j for j, p in enumerate(pieces) for _ in p]
        lengths.append(sum(map(len, pieces)))
    assert enc.ids.tolist() == ids and enc.words.tolist() == words
    assert enc.offsets.tolist() == np.concatenate([[0], np.cumsum(lengths)]).tolist()
    with pytest.raises(XltError, match="needs a fast tokenizer"):
        encode(object(), sentences)


@pytest.mark.parametrize("metric", ["support", "recall_", "Recall", "macro_f1", "f"])
def test_an_unknown_tagging_metric_is_refused_by_the_bootstrap_path(metric):
    """Would catch: the metric chosen by string order (`>=` for `==`), so "support" from a task file silently
    bootstraps recall instead of naming the metrics the type knows."""
    totals = {k: np.array([2.0]) for k in ("tp", "fp", "fn", "correct", "words")}
    with pytest.raises(XltError, match="unknown metric"):
        TT.metric_from_totals(metric, totals, 1)
