"""QA metrics against hand-worked cases: SQuAD v1.1's evaluate-v1.1.py and MLQA's mlqa_evaluation_v1.py.

Every expected value below was worked out by hand from the scripts' steps (lower -> remove punctuation ->
remove articles -> whitespace/mixed segmentation; F1 over the multiset of common tokens, max over gold answers).
"""

import unicodedata

import numpy as np
import pandas as pd
import pytest

from xlt.errors import XltError
from xlt.tasktypes import get_task_type
from xlt.tasktypes.qa_metrics import (f1, mixed_segmentation, normalize_mlqa, normalize_squad, score_answer,
                                      score_answers, unicode_punctuation)


# ------------------------------------------------------------------------------------------------------------
# SQuAD v1.1 (XQuAD, TyDiQA-GoldP)

@pytest.mark.parametrize("text, expected", [
    ("The  Eiffel-Tower!", "eiffeltower"),          # lower, ASCII punctuation, article, whitespace
    ("An apple a day", "apple day"),                # every English article, as whole words only
    ("theatre", "theatre"),                         # `the` inside a word stays
    ("«París»", "«parís»"),                         # non-ASCII punctuation is NOT removed by SQuAD's script
    ("de Madrid a Barcelona", "de madrid barcelona"),   # ... and Spanish `a` goes as an English article
    ("  \t\n", ""),
])
def test_squad_normalisation(text, expected):
    assert normalize_squad(text) == expected


def test_squad_f1_counts_common_tokens_as_a_multiset():
    assert f1("the cat sat", "a cat sat down", normalize_squad) == pytest.approx(0.8)   # P 2/2, R 2/3
    assert f1("cat cat cat", "cat", normalize_squad) == pytest.approx(0.5)              # P 1/3, R 1
    assert f1("dog", "cat", normalize_squad) == 0.0


def test_squad_score_is_the_max_over_gold_answers():
    assert score_answer("Denver Broncos", ["Broncos", "Denver Broncos"]) == (1.0, 1.0)
    em, f = score_answer("the Broncos", ["Denver Broncos", "Carolina Panthers"])
    assert em == 0.0 and f == pytest.approx(2 / 3)                                      # P 1, R 1/2


def test_script_quirks_are_kept():
    # both sides normalise to "": EM says equal, F1 finds no common token and gives 0 (the scripts do this)
    assert score_answer("", ["the"]) == (1.0, 0.0)
    # an unanswered question scores 0 on both (the scripts print "Unanswered question ... will receive score 0")
    assert score_answer(None, ["Paris"]) == (0.0, 0.0)


# ------------------------------------------------------------------------------------------------------------
# MLQA, per language

def test_german_articles_and_quotes():
    assert normalize_mlqa("Der Hauptbahnhof", "de") == "hauptbahnhof"
    assert normalize_mlqa("die Mauer dieser Stadt", "de") == "mauer dieser stadt"   # `dieser` is not `die`
    assert normalize_mlqa("„Berlin“", "de") == "berlin"                             # Ps and Pi quotes
    assert normalize_squad("„Berlin“") == "„berlin“"
    assert score_answer("Der Hauptbahnhof", ["Hauptbahnhof"], "mlqa", "de") == (1.0, 1.0)
    em, f = score_answer("Der Hauptbahnhof", ["Hauptbahnhof"], "squad", "de")
    assert em == 0.0 and f == pytest.approx(2 / 3)                                      # P 1/2, R 1


def test_spanish_articles_and_inverted_punctuation():
    assert normalize_mlqa("¡La Ciudad de México!", "es") == "ciudad de méxico"
    assert normalize_squad("¡La Ciudad de México!") == "¡la ciudad de méxico"
    assert score_answer("los Andes", ["Andes"], "mlqa", "es") == (1.0, 1.0)
    assert normalize_mlqa("unas casas", "es") == "casas"


def test_chinese_mixed_segmentation():
    assert mixed_segmentation("iPhone手机，很好") == ["iPhone", "手", "机", "，", "很", "好"]
    assert normalize_mlqa("北京大学。", "zh") == "北 京 大 学"
    # the CJK range of the script ends at U+9FA5: U+9FA6 stays inside its run
    assert normalize_mlqa("ab北cd", "zh") == "ab 北 cd"
    assert normalize_mlqa("ab\u9fa6cd", "zh") == "ab\u9fa6cd"
    em, f = score_answer("北京", ["北京大学"], "mlqa", "zh")
    assert em == 0.0 and f == pytest.approx(2 / 3)                                      # P 2/2, R 2/4
    assert score_answer("北京", ["北京大学"], "squad", "zh") == (0.0, 0.0)             # one token each


def test_arabic_al_is_removed_everywhere_as_the_script_does():
    assert normalize_mlqa("الكتاب", "ar") == "كتاب"
    assert normalize_mlqa("مالك", "ar") == "م ك"               # inside a word too: `\sال^|ال`
    assert normalize_mlqa("القاهرة،", "ar") == "قاهرة"         # Arabic comma is punctuation (Po)
    assert normalize_squad("القاهرة،") == "القاهرة،"
    assert score_answer("الكتاب", ["كتاب"], "mlqa", "ar") == (1.0, 1.0)
    assert score_answer("الكتاب", ["كتاب"], "squad", "ar") == (0.0, 0.0)
    em, f = score_answer("مالك", ["م"], "mlqa", "ar")
    assert em == 0.0 and f == pytest.approx(2 / 3)                                      # P 1/2, R 1


def test_hindi_vietnamese_and_english_under_mlqa():
    assert normalize_mlqa("भारत।", "hi") == "भारत"            # danda (Po); Hindi has no articles
    assert normalize_mlqa("cái bàn của tôi", "vi") == "bàn tôi"
    assert normalize_mlqa("“The Beatles”", "en") == "beatles"
    assert normalize_squad("“The Beatles”") == "“ beatles”"


def test_unicode_punctuation_is_every_p_category_plus_ascii():
    punct = unicode_punctuation()
    assert {"„", "“", "¡", "¿", "،", "؟", "।", "。", "，", "!", "$", "+"} <= punct   # $ + are ASCII, not P*
    assert unicodedata.category("$") == "Sc" and "é" not in punct and "北" not in punct


def test_mlqa_refuses_languages_it_has_no_rules_for():
    with pytest.raises(XltError, match="MLQA normalisation has rules for en, es, hi, vi, de, ar, zh only.*'th'"):
        score_answer("x", ["x"], "mlqa", "th")
    with pytest.raises(XltError, match="unknown QA normalisation 'bleu'"):
        score_answer("x", ["x"], "bleu", "en")


# ------------------------------------------------------------------------------------------------------------
# From per-question statistics to the record's numbers and the bootstrap

def test_score_averages_per_question_statistics_and_bootstrap_recomputes_them():
    tt = get_task_type("extractive-qa")
    preds, golds = ["Denver Broncos", "the cat", None, "北京"], [["Denver Broncos"], ["a cat sat"], ["x"], ["北京"]]
    ems, f1s = score_answers(preds, golds)
    assert ems == [1.0, 0.0, 0.0, 1.0] and f1s == pytest.approx([1.0, 2 / 3, 0.0, 1.0])   # cat: P 1, R 1/2
    frame = pd.DataFrame({"idx": range(4), "id": list("abcd"), "label": golds, "pred": preds, "em": ems, "f1": f1s})
    out = tt.score(frame, ["f1", "exact_match"])
    assert out == {"f1": pytest.approx((1 + 2 / 3 + 0 + 1) / 4), "exact_match": 0.5, "n": 4}
    stats = tt.statistics(frame)
    resampled = {"f1": np.array([stats["f1"].sum(), 0.0]), "em": np.array([stats["em"].sum(), 4.0])}
    assert tt.metric_from_totals("exact_match", resampled, 4).tolist() == [0.5, 1.0]


@pytest.mark.parametrize("normalization", ["zz", "tydi", "MLQA", ""])
def test_an_unknown_normalisation_is_refused_not_mistaken_for_a_known_one(normalization):
    """Would catch: the normalisation picked by string order (`>=` for `==`), so a misspelt name from a task
    file silently scores with SQuAD's or MLQA's rules."""
    with pytest.raises(XltError, match="unknown QA normalisation.*squad, mlqa"):
        score_answer("the cat", ["the cat"], normalization, "en")


def test_an_mlqa_language_it_cannot_normalise_fails_even_before_any_answer_is_scored():
    """Would catch: the language check moved into the first normalised text, so a language whose questions
    all went unanswered (None) scores 0 instead of naming the problem."""
    with pytest.raises(XltError, match="MLQA"):
        score_answer(None, ["x"], "mlqa", "sw")
    assert score_answer(None, ["x"], "mlqa", "de") == (0.0, 0.0)
