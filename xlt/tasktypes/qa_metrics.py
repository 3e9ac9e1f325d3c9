"""Exact match and token F1 of extractive QA, exactly as the two official scripts compute them.

- `squad`: SQuAD v1.1 `evaluate-v1.1.py` (Rajpurkar et al., 2016), which XQuAD and TyDiQA-GoldP are scored
  with (the XQuAD README says so, and XTREME's `third_party/evaluate_squad.py` is that script): lower-case,
  drop ASCII punctuation (`string.punctuation`), drop the English articles a/an/the, collapse whitespace;
  tokens are whitespace-separated.
- `mlqa`: MLQA's `mlqa_evaluation_v1.py` (Lewis et al., 2020; facebookresearch/MLQA): lower-case, drop every
  Unicode punctuation character (category P*) and ASCII punctuation, drop the answer language's articles, then
  tokenise by whitespace, except Chinese, which is "mixed segmentation": every CJK ideograph
  (U+4E00..U+9FA5) is a token of its own and the runs between them are split on whitespace.

Both then take, per question, the maximum over its gold answers of EM (normalised strings equal) and F1
(harmonic mean of token precision and recall over the multiset of common tokens; 0 when nothing is shared,
even if both sides are empty), and average over questions. The functions below follow the scripts line by line
(order of the steps, the regular expressions, the language lists); tests/test_qa_metrics.py checks them on
hand-worked cases. An unanswered question scores 0 on both, as the scripts print and do.
"""

from __future__ import annotations

import re
import string
import sys
import unicodedata
from collections import Counter
from functools import lru_cache
from typing import Sequence

from xlt.errors import XltError

NORMALIZATIONS = ("squad", "mlqa")

_ASCII_PUNCT = frozenset(string.punctuation)
_WHITESPACE_LANGS = ("en", "es", "hi", "vi", "de", "ar")
_MIXED_SEGMENTATION_LANGS = ("zh",)
MLQA_LANGUAGES = _WHITESPACE_LANGS + _MIXED_SEGMENTATION_LANGS

# The script's per-language article patterns, verbatim. Arabic's `\sال^|ال` removes every "ال" anywhere in a
# word (the first alternative can never match); hi and zh have none.
_MLQA_ARTICLES = {
    "en": re.compile(r"\b(a|an|the)\b"),
    "es": re.compile(r"\b(un|una|unos|unas|el|la|los|las)\b"),
    "vi": re.compile(r"\b(của|là|cái|chiếc|những)\b"),
    "de": re.compile(r"\b(ein|eine|einen|einem|eines|einer|der|die|das|den|dem|des)\b"),
    "ar": re.compile(r"\sال^|ال"),
}
_SQUAD_ARTICLES = re.compile(r"\b(a|an|the)\b")
_CJK = re.compile(r"[\u4e00-\u9fa5]")


@lru_cache(maxsize=1)
def unicode_punctuation() -> frozenset[str]:
    """mlqa_evaluation_v1.py's PUNCT: every code point below sys.maxunicode whose Unicode category starts with
    P, plus string.punctuation (built on first use: it takes most of a second)."""
    return frozenset(chr(i) for i in range(sys.maxunicode) if unicodedata.category(chr(i)).startswith("P")) \
        | _ASCII_PUNCT


def normalize_squad(text: str) -> str:
    """evaluate-v1.1.py `normalize_answer`: white_space_fix(remove_articles(remove_punc(lower(s))))."""
    text = text.lower()
    text = "".join(ch for ch in text if ch not in _ASCII_PUNCT)
    text = _SQUAD_ARTICLES.sub(" ", text)
    return " ".join(text.split())


def mixed_segmentation(text: str) -> list[str]:
    """mlqa_evaluation_v1.py `mixed_segmentation`: CJK ideographs and punctuation one token each, the runs
    between them whitespace-split."""
    punct = unicode_punctuation()
    out: list[str] = []
    run = ""
    for ch in text:
        if _CJK.search(ch) or ch in punct:
            if run:
                out.extend(run.split())
                run = ""
            out.append(ch)
        else:
            run += ch
    if run:
        out.extend(run.split())
    return out


def normalize_mlqa(text: str, lang: str) -> str:
    """mlqa_evaluation_v1.py `normalize_answer(s, lang)`."""
    if lang not in MLQA_LANGUAGES:
        raise XltError(f"MLQA normalisation has rules for {', '.join(MLQA_LANGUAGES)} only, not {lang!r}; use "
                       "`normalization: squad` in the task's options for other languages")
    text = text.lower()
    punct = unicode_punctuation()
    text = "".join(ch for ch in text if ch not in punct)
    if lang in _MLQA_ARTICLES:
        text = _MLQA_ARTICLES[lang].sub(" ", text)
    tokens = mixed_segmentation(text) if lang in _MIXED_SEGMENTATION_LANGS else text.split()
    return " ".join(t for t in tokens if t.strip() != "")


@lru_cache(maxsize=None)
def _normalizer(normalization: str, lang: str):
    if normalization == "squad":
        return normalize_squad
    if normalization == "mlqa":
        if lang not in MLQA_LANGUAGES:
            normalize_mlqa("", lang)   # raises the message naming the languages
        return lambda text: normalize_mlqa(text, lang)
    raise XltError(f"unknown QA normalisation {normalization!r}; use one of {', '.join(NORMALIZATIONS)}")


def exact_match(prediction: str, gold: str, normalize) -> float:
    return float(normalize(prediction) == normalize(gold))


def f1(prediction: str, gold: str, normalize) -> float:
    pred_tokens, gold_tokens = normalize(prediction).split(), normalize(gold).split()
    same = sum((Counter(pred_tokens) & Counter(gold_tokens)).values())
    if same == 0:
        return 0.0
    precision, recall = same / len(pred_tokens), same / len(gold_tokens)
    return 2 * precision * recall / (precision + recall)


def score_answer(prediction: str | None, golds: Sequence[str], normalization: str = "squad",
                 lang: str = "en") -> tuple[float, float]:
    """(EM, F1) of one question, each the maximum over its gold answers; (0, 0) when unanswered (None)."""
    normalize = _normalizer(normalization, lang)
    if prediction is None:
        return 0.0, 0.0
    golds = list(golds)
    if not golds:
        raise XltError("a question without gold answers cannot be scored")
    return (max(exact_match(prediction, g, normalize) for g in golds),
            max(f1(prediction, g, normalize) for g in golds))


def score_answers(predictions: Sequence[str | None], golds: Sequence[Sequence[str]], normalization: str = "squad",
                  lang: str = "en") -> tuple[list[float], list[float]]:
    """Per-question EM and F1 lists (fractions of 1 per question; the scripts' totals are their means x 100)."""
    ems, f1s = [], []
    for pred, gold in zip(predictions, golds, strict=True):
        em, f = score_answer(pred, gold, normalization, lang)
        ems.append(em)
        f1s.append(f)
    return ems, f1s


__all__ = ["NORMALIZATIONS", "MLQA_LANGUAGES", "normalize_squad", "normalize_mlqa", "mixed_segmentation",
           "unicode_punctuation", "exact_match", "f1", "score_answer", "score_answers"]
