"""Pins on extractive QA's numbers: EM and F1 against the two official scripts' own functions (copied below as
the oracle), and n-best span decoding against a brute-force search over every (start, end) pair.

The oracle functions are `evaluate-v1.1.py` of SQuAD v1.1 (Rajpurkar et al., 2016) and `mlqa_evaluation_v1.py`
of MLQA (facebookresearch/MLQA), transcribed function by function with their own names; xlt's qa_metrics
shares no code with them. Random answers are drawn from an alphabet that holds what each step acts on
(articles of every language, ASCII and Unicode punctuation, CJK ideographs, U+9FA6 just past the script's
range, mixed whitespace), so a skipped or reordered normalisation step changes the result.
"""

from __future__ import annotations

import re
import string
import sys
import unicodedata
from collections import Counter

import numpy as np
import pytest
import torch

import tests.hypothesis_home  # noqa: F401  (before hypothesis is used)
from hypothesis import given, settings
from hypothesis import strategies as st

from xlt.errors import XltError
from xlt.tasktypes.qa_decode import answers, best_spans
from xlt.tasktypes.qa_metrics import (exact_match, f1, mixed_segmentation, normalize_mlqa, normalize_squad,
                                      score_answer, score_answers)

PROPERTY = settings(max_examples=150, deadline=None, database=None, derandomize=True)

# ------------------------------------------------------------------------------------------------------------
# The oracle: SQuAD v1.1 evaluate-v1.1.py


def squad_normalize_answer(s):
    def remove_articles(text):
        return re.sub(r'\b(a|an|the)\b', ' ', text)

    def white_space_fix(text):
        return ' '.join(text.split())

    def remove_punc(text):
        exclude = set(string.punctuation)
        return ''.join(ch for ch in text if ch not in exclude)

    def lower(text):
        return text.lower()

    return white_space_fix(remove_articles(remove_punc(lower(s))))


def squad_f1_score(prediction, ground_truth):
    prediction_tokens = squad_normalize_answer(prediction).split()
    ground_truth_tokens = squad_normalize_answer(ground_truth).split()
    common = Counter(prediction_tokens) & Counter(ground_truth_tokens)
    num_same = sum(common.values())
    if num_same == 0:
        return 0
    precision = 1.0 * num_same / len(prediction_tokens)
    recall = 1.0 * num_same / len(ground_truth_tokens)
    f1 = (2 * precision * recall) / (precision + recall)
    return f1


def squad_exact_match_score(prediction, ground_truth):
    return squad_normalize_answer(prediction) == squad_normalize_answer(ground_truth)


def metric_max_over_ground_truths(metric_fn, prediction, ground_truths, *args):
    scores_for_ground_truths = []
    for ground_truth in ground_truths:
        score = metric_fn(prediction, ground_truth, *args)
        scores_for_ground_truths.append(score)
    return max(scores_for_ground_truths)


# ------------------------------------------------------------------------------------------------------------
# The oracle: MLQA mlqa_evaluation_v1.py

PUNCT = {chr(i) for i in range(sys.maxunicode) if unicodedata.category(chr(i)).startswith('P')}.union(
    string.punctuation)
WHITESPACE_LANGS = ['en', 'es', 'hi', 'vi', 'de', 'ar']
MIXED_SEGMENTATION_LANGS = ['zh']


def whitespace_tokenize(text):
    return text.split()


def mlqa_mixed_segmentation(text):
    segs_out = []
    temp_str = ""
    for char in text:
        if re.search(r'[\u4e00-\u9fa5]', char) or char in PUNCT:
            if temp_str != "":
                ss = whitespace_tokenize(temp_str)
                segs_out.extend(ss)
                temp_str = ""
            segs_out.append(char)
        else:
            temp_str += char
    if temp_str != "":
        ss = whitespace_tokenize(temp_str)
        segs_out.extend(ss)
    return segs_out


def mlqa_normalize_answer(s, lang):
    def remove_articles(text, lang):
        if lang == 'en':
            return re.sub(r'\b(a|an|the)\b', ' ', text)
        elif lang == 'es':
            return re.sub(r'\b(un|una|unos|unas|el|la|los|las)\b', ' ', text)
        elif lang == 'hi':
            return text  # Hindi does not have formal articles
        elif lang == 'vi':
            return re.sub(r'\b(của|là|cái|chiếc|những)\b', ' ', text)
        elif lang == 'de':
            return re.sub(r'\b(ein|eine|einen|einem|eines|einer|der|die|das|den|dem|des)\b', ' ', text)
        elif lang == 'ar':
            return re.sub('\\sال^|ال', ' ', text)
        elif lang == 'zh':
            return text  # Chinese does not have formal articles
        else:
            raise Exception('Unknown Language {}'.format(lang))

    def white_space_fix(text, lang):
        if lang in WHITESPACE_LANGS:
            tokens = whitespace_tokenize(text)
        elif lang in MIXED_SEGMENTATION_LANGS:
            tokens = mlqa_mixed_segmentation(text)
        else:
            raise Exception('Unknown Language {}'.format(lang))
        return ' '.join([t for t in tokens if t.strip() != ''])

    def remove_punc(text):
        return ''.join(ch for ch in text if ch not in PUNCT)

    def lower(text):
        return text.lower()

    return white_space_fix(remove_articles(remove_punc(lower(s)), lang), lang)


def mlqa_f1_score(prediction, ground_truth, lang):
    prediction_tokens = mlqa_normalize_answer(prediction, lang).split()
    ground_truth_tokens = mlqa_normalize_answer(ground_truth, lang).split()
    common = Counter(prediction_tokens) & Counter(ground_truth_tokens)
    num_same = sum(common.values())
    if num_same == 0:
        return 0
    precision = 1.0 * num_same / len(prediction_tokens)
    recall = 1.0 * num_same / len(ground_truth_tokens)
    f1 = (2 * precision * recall) / (precision + recall)
    return f1


def mlqa_exact_match_score(prediction, ground_truth, lang):
    return mlqa_normalize_answer(prediction, lang) == mlqa_normalize_answer(ground_truth, lang)


# ------------------------------------------------------------------------------------------------------------
# EM and F1 against the oracle

WORDS = ["a", "an", "the", "The", "un", "una", "los", "las", "el", "la", "der", "die", "das", "des", "ein", "eines",
         "của", "là", "cái", "những", "ال", "الكتاب", "مالك", "Paris", "paris", "cat", "cats", "theatre", "北", "京",
         "大学", "ab北cd", "ab\u9fa6cd", "iPhone", "x", "भारत", "Ä", "É"]
GLUE = [" ", "  ", "\t", "\n", "", ",", ".", "-", "!", "'", "«", "»", "„", "“", "，", "。", "،", "।", "¿", "$", "+"]
answer_text = st.lists(st.tuples(st.sampled_from(WORDS), st.sampled_from(GLUE)), max_size=6).map(
    lambda parts: "".join(w + g for w, g in parts))


@PROPERTY
@given(answer_text, st.lists(answer_text, min_size=1, max_size=3))
def test_squad_em_and_f1_equal_the_official_script(prediction, golds):
    """Would catch a normalisation step skipped, reordered or widened (Unicode punctuation in SQuAD), F1 over
    sets instead of multisets, precision and recall swapped in a way that matters, or the mean over golds."""
    assert normalize_squad(prediction) == squad_normalize_answer(prediction)
    em, f = score_answer(prediction, golds, "squad", "en")
    assert em == float(metric_max_over_ground_truths(squad_exact_match_score, prediction, golds))
    assert f == pytest.approx(metric_max_over_ground_truths(squad_f1_score, prediction, golds), abs=1e-12)


@PROPERTY
@given(answer_text, st.lists(answer_text, min_size=1, max_size=3), st.sampled_from(WHITESPACE_LANGS +
                                                                                    MIXED_SEGMENTATION_LANGS))
def test_mlqa_em_and_f1_equal_the_official_script(prediction, golds, lang):
    """Would catch a language's article list applied to another language, ASCII-only punctuation, Chinese not
    segmented (or every language segmented), the CJK range widened, or empty tokens kept."""
    assert normalize_mlqa(prediction, lang) == mlqa_normalize_answer(prediction, lang)
    em, f = score_answer(prediction, golds, "mlqa", lang)
    assert em == float(metric_max_over_ground_truths(mlqa_exact_match_score, prediction, golds, lang))
    assert f == pytest.approx(metric_max_over_ground_truths(mlqa_f1_score, prediction, golds, lang), abs=1e-12)


@PROPERTY
@given(answer_text)
def test_mixed_segmentation_equals_the_official_script(text):
    assert mixed_segmentation(text) == mlqa_mixed_segmentation(text)


def test_f1_where_precision_and_recall_differ():
    """P = 1/4, R = 1/2: F1 = 1/3. A swapped or unharmonic mean gives another number."""
    norm = normalize_squad
    assert f1("cat dog fox owl", "cat eel", norm) == pytest.approx(1 / 3)
    assert f1("cat eel", "cat dog fox owl", norm) == pytest.approx(1 / 3)
    assert f1("cat cat dog", "cat cat", norm) == pytest.approx(2 * (2 / 3) * 1 / (2 / 3 + 1))
    assert exact_match("The Cat!", "cat", norm) == 1.0 and exact_match("cats", "cat", norm) == 0.0


def test_per_question_lists_keep_question_order_and_refuse_a_length_mismatch():
    ems, f1s = score_answers(["cat", None, "dog fox"], [["cat"], ["cat"], ["fox", "dog fox"]], "mlqa", "de")
    assert ems == [1.0, 0.0, 1.0] and f1s == [1.0, 0.0, 1.0]
    ems, f1s = score_answers(["fox"], [["dog fox"]], "squad", "en")
    assert ems == [0.0] and f1s == [pytest.approx(2 / 3)]
    with pytest.raises(ValueError):
        score_answers(["a", "b"], [["a"]])
    with pytest.raises(XltError, match="without gold answers"):
        score_answer("a", [])
    assert score_answer(None, []) == (0.0, 0.0)    # unanswered: 0 before the golds are even looked at


# ------------------------------------------------------------------------------------------------------------
# n-best decoding against brute force


def brute_best_spans(start_logits, end_logits, char_start, char_end, n_best, max_answer_len):
    """The n_best highest start and end logits among usable tokens, every pair of them kept if it is a span
    of at most max_answer_len tokens, the n_best best pairs: (score, start char, end char), best first."""
    usable = [t for t in range(len(char_start)) if char_start[t] >= 0 and char_end[t] > char_start[t]]
    k = min(n_best, len(char_start))
    starts = sorted(usable, key=lambda t: -start_logits[t])[:k]
    ends = sorted(usable, key=lambda t: -end_logits[t])[:k]
    pairs = [(float(start_logits[s]) + float(end_logits[e]), int(char_start[s]), int(char_end[e]))
             for s in starts for e in ends if 0 <= e - s < max_answer_len]
    return sorted(pairs, key=lambda p: -p[0])[:n_best]


@st.composite
def windows_batch(draw):
    batch = draw(st.integers(1, 3))
    length = draw(st.integers(1, 12))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    logits = rng.normal(size=(batch, length, 2)).astype(np.float32)
    char_start = np.full((batch, length), -1, dtype=np.int64)
    char_end = np.full((batch, length), -1, dtype=np.int64)
    for b in range(batch):
        pos = 0
        for t in range(length):
            kind = rng.integers(0, 5)
            if kind == 0:           # outside the context (question, special token, padding)
                continue
            width = 0 if kind == 1 else int(rng.integers(1, 4))    # kind 1: a piece with an empty span
            char_start[b, t], char_end[b, t] = pos, pos + width
            pos += width + int(rng.integers(0, 2))
    return logits, char_start, char_end, draw(st.integers(1, 6)), draw(st.integers(1, 6))


@PROPERTY
@given(windows_batch())
def test_best_spans_equal_brute_force_over_every_pair(case):
    """Would catch a span of more than max_answer_len tokens kept (or one of exactly max_answer_len dropped),
    an end before its start, a piece with an empty span used, the start and end logits swapped, start and end
    indices crossed, or fewer/more than n_best candidates."""
    logits, char_start, char_end, n_best, max_len = case
    scores, starts, ends = best_spans(torch.from_numpy(logits), torch.from_numpy(char_start),
                                      torch.from_numpy(char_end), n_best, max_len)
    assert scores.shape == starts.shape == ends.shape == (len(logits), min(n_best, min(n_best, logits.shape[1])**2))
    for b in range(len(logits)):
        expected = brute_best_spans(logits[b, :, 0], logits[b, :, 1], char_start[b], char_end[b], n_best, max_len)
        got = [(float(s), int(a), int(e)) for s, a, e in zip(scores[b], starts[b], ends[b]) if np.isfinite(s)]
        assert [(a, e) for _, a, e in got] == [(a, e) for _, a, e in expected]
        assert [s for s, _, _ in got] == pytest.approx([s for s, _, _ in expected], abs=1e-5)


def test_best_spans_on_a_hand_case():
    """Worked out by hand. Usable tokens are 1..4 (token 0 is outside the context, token 5 an empty piece,
    both with the highest logits); top-3 starts are tokens 3, 1, 4 and top-3 ends 1, 2, 4."""
    start = torch.tensor([9.0, 2.0, 0.0, 5.0, 1.0, 9.0])
    end = torch.tensor([9.0, 4.0, 3.0, 0.0, 2.0, 9.0])
    logits = torch.stack([start, end], -1)[None]
    cs = torch.tensor([[-1, 0, 4, 8, 12, 15]])
    ce = torch.tensor([[-1, 3, 7, 11, 14, 15]])
    scores, s, e = best_spans(logits, cs, ce, n_best=3, max_answer_len=2)
    # pairs of the top-3 starts (3, 1, 4) and top-3 ends (1, 2, 4) within 2 tokens: (3,4)=7, (1,1)=6, (1,2)=5
    assert scores[0].tolist() == [7.0, 6.0, 5.0]
    assert s[0].tolist() == [8, 0, 0] and e[0].tolist() == [14, 3, 7]
    scores, s, e = best_spans(logits, cs, ce, n_best=3, max_answer_len=1)
    assert scores[0][:2].tolist() == [6.0, 3.0] and not np.isfinite(scores[0][2])   # (1,1), (4,4)


def brute_answers(question_of_row, decoded, contexts):
    best = {}
    for rows, scores, starts, ends in decoded:
        for r, row in enumerate(rows):
            q = int(question_of_row[row])
            for s, a, e in zip(scores[r], starts[r], ends[r]):
                if np.isfinite(s) and (q not in best or s > best[q][0]):
                    best[q] = (s, a, e)
    return [contexts[q][best[q][1]:best[q][2]].strip() if q in best else "" for q in range(len(contexts))]


@PROPERTY
@given(st.integers(1, 5), st.integers(0, 2**32 - 1))
def test_answers_take_the_best_span_over_every_window_of_a_question(n_questions, seed):
    """Would catch the first window's span kept instead of the best over all windows, the worst span taken,
    a span of another question's context, a -inf candidate used, or an answer not stripped."""
    rng = np.random.default_rng(seed)
    contexts = ["".join(rng.choice(list("ab c"), size=int(rng.integers(0, 20)))) for _ in range(n_questions)]
    question_of_row = rng.integers(0, n_questions, size=int(rng.integers(1, 8)))
    decoded, rows = [], rng.permutation(len(question_of_row))
    for part in np.array_split(rows, int(rng.integers(1, 3))):
        width = 3
        scores = rng.normal(size=(len(part), width))
        scores[rng.random(scores.shape) < 0.3] = -np.inf
        starts = np.empty((len(part), width), dtype=np.int64)
        ends = np.empty((len(part), width), dtype=np.int64)
        for i, row in enumerate(part):
            n = len(contexts[question_of_row[row]])
            starts[i] = rng.integers(0, n + 1, size=width)
            ends[i] = [int(rng.integers(s, n + 1)) for s in starts[i]]
        decoded.append((part, scores, starts, ends))
    assert answers(question_of_row, decoded, contexts) == brute_answers(question_of_row, decoded, contexts)


def test_answers_without_any_decoded_batch_are_empty():
    assert answers(np.array([0, 1]), [], ["ctx", "other"]) == ["", ""]


# ------------------------------------------------------------------------------------------------------------
# The training loss: the mean of the start and end cross-entropies, each against its own logits


def test_qa_loss_is_the_mean_of_start_and_end_cross_entropy_and_trains_both_heads():
    """The span loss against the formula written out per window in float64: over the windows that hold their
    answer (start label >= 0), the mean of -log p_start(start) and -log p_end(end), each a softmax over the
    window's real tokens only, of its OWN logits (channel 0 start, 1 end). Catches start labels scored against
    the end logits (the start head then never trains: its gradient is exactly zero, and the value changes),
    padding left in the softmax, unlabelled windows (-100) counted in the mean, or a sum instead of a mean."""
    from xlt.tasktypes.extractive_qa import TASK_TYPE

    gen = torch.Generator().manual_seed(0)
    lengths = [9, 6, 9, 4]                       # windows of 9 positions, three of them padded
    mask = torch.tensor([[1] * n + [0] * (9 - n) for n in lengths])
    starts = torch.tensor([2, 1, -100, 0])       # window 2 does not hold its answer
    ends = torch.tensor([5, 4, -100, 3])
    logits = (3 * torch.randn(4, 9, 2, generator=gen)).requires_grad_(True)
    loss = TASK_TYPE.loss(logits, {"attention_mask": mask, "start_positions": starts, "end_positions": ends})
    loss.backward()

    leaf = logits.detach().double().requires_grad_(True)
    terms = []
    for b, n in enumerate(lengths):
        if starts[b] < 0:
            continue
        log_start = torch.log_softmax(leaf[b, :n, 0], 0)[starts[b]]
        log_end = torch.log_softmax(leaf[b, :n, 1], 0)[ends[b]]
        terms.append(-(log_start + log_end) / 2)
    expected = torch.stack(terms).mean()
    expected.backward()

    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)
    assert torch.allclose(logits.grad.double(), leaf.grad, atol=1e-7)
    labelled = starts >= 0
    for channel in (0, 1):                       # both heads learn, from the labelled windows only
        assert logits.grad[labelled, :, channel].abs().sum() > 0.1
    assert torch.all(logits.grad[~labelled] == 0)
    assert torch.all(logits.grad[mask == 0] == 0)
