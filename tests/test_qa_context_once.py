"""QA featurisation tokenises each context once: its windows equal the per-question path's, window by window.

The reference below is the per-question path xlt used before (and transformers' run_qa.py uses): the tokenizer's
own encoding of each (question, context) pair, truncated with overflow. Both feed the same labelling
(`features_from_windows`), so any difference in ids, token types, character offsets, labels or the
window-to-question map comes from how the windows were cut.
"""

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests import factories
from xlt.errors import XltError
from xlt.tasks import SplitData, load_split
from xlt.tasktypes import get_task_type, qa_windows
from xlt.tasktypes.extractive_qa import answer_span

TT = get_task_type("extractive-qa")
REAL_ENCODER = Path(os.environ.get("XLT_REAL_ENCODER_DIR", "~/.cache/xlt-real-encoder/manual")).expanduser()
GET_SH = factories.SHARED_DATA.parent / "tools" / "real-encoder" / "get.sh"

pytestmark = pytest.mark.usefixtures("one_torch_thread")   # tests/conftest.py


@pytest.fixture(scope="module")
def tokenizers(tmp_path_factory, spm_model):
    """The tests' DeBERTa and XLM-R SentencePiece tokenizers, and XLM-R's real 250k vocabulary (me5-small)."""
    from transformers import AutoTokenizer

    root = tmp_path_factory.mktemp("qa-once-tokenizers")
    real = REAL_ENCODER / "me5-small"
    if not (real / "tokenizer.json").is_file():
        pytest.fail(f"the real encoder's tokenizer is not at {real}: run `{GET_SH} {REAL_ENCODER}` once (or set "
                    "XLT_REAL_ENCODER_DIR to the folder holding me5-small)")
    return {"deberta": AutoTokenizer.from_pretrained(factories.deberta_tokenizer_dir(root / "deberta", spm_model)),
            "xlmr": AutoTokenizer.from_pretrained(factories.xlmr_tokenizer_dir(root / "xlmr", spm_model)),
            "xlmr-250k": AutoTokenizer.from_pretrained(real)}


def per_question_features(frame: pd.DataFrame, tok, max_len: int, window_step: int):
    """The per-question path: each pair encoded by the tokenizer itself, truncated with overflow."""
    limit = min(qa_windows.MAX_QUESTION_TOKENS, (max_len - tok.num_special_tokens_to_add(pair=True)) // 2)
    ids, types, starts, ends, question, lengths = [], [], [], [], [], []
    for q, (text, context) in enumerate(zip(frame["question"], frame["context"])):
        while True:   # cut the question where its first token past the limit starts
            enc = tok(text, add_special_tokens=False, return_offsets_mapping=True)
            if len(enc["input_ids"]) <= limit:
                break
            text = text[:enc["offset_mapping"][limit][0]]
        room = max_len - tok.num_special_tokens_to_add(pair=True) - len(enc["input_ids"])
        enc = tok(text, context, truncation="only_second", max_length=max_len, stride=max(0, room - window_step),
                  return_overflowing_tokens=True, return_offsets_mapping=True)
        for w in range(len(enc["input_ids"])):
            seq = enc.sequence_ids(w)
            ids += enc["input_ids"][w]
            types += enc["token_type_ids"][w] if "token_type_ids" in enc else []
            starts += [o[0] if s == 1 else -1 for o, s in zip(enc["offset_mapping"][w], seq)]
            ends += [o[1] if s == 1 else -1 for o, s in zip(enc["offset_mapping"][w], seq)]
            question.append(q)
            lengths.append(len(seq))
    spans = np.array([answer_span(c, a) for c, a in zip(frame["context"], frame["answers"])]).reshape(-1, 2)
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    return qa_windows.features_from_windows(offsets, np.array(ids), np.array(types) if types else None,
                                            np.array(starts), np.array(ends), np.array(question), spans[:, 0],
                                            spans[:, 1], tok)


def assert_same_features(got, want):
    assert np.array_equal(got.offsets, want.offsets), "windows of different lengths"
    assert set(got.tokens) == set(want.tokens) and set(got.rows) == set(want.rows)
    for name in want.tokens:
        assert np.array_equal(got.tokens[name], want.tokens[name]), name
        assert got.tokens[name].dtype == want.tokens[name].dtype, name
    for name in want.rows:
        assert np.array_equal(got.rows[name], want.rows[name]), name
    assert got.pad == want.pad


def unspaced_contexts(shared_data, lang: str, glue: str) -> pd.DataFrame:
    """SQuAD-style rows from real XNLI text: 30 premises make a context, hypotheses are the questions, and each
    answer is the start of one premise, at the character offset where that premise was put."""
    table = pd.read_csv(shared_data / "xnli" / f"validation-{lang}.tsv", sep="\t", quoting=3, dtype=str)
    premises = [p.strip() for p in table["premise"].drop_duplicates().head(180)]
    hypotheses = table["hypothesis"].drop_duplicates().tolist()
    rows = []
    for c in range(6):
        parts = premises[30 * c:30 * c + 30]
        starts = np.cumsum([0] + [len(p) + len(glue) for p in parts[:-1]])
        context = glue.join(parts)
        for k, j in enumerate((0, 7, 14, 22, 29)):
            answer = parts[j][:6 + 3 * k].rstrip()
            assert context[starts[j]:starts[j] + len(answer)] == answer
            rows.append((f"{lang}-{c}-{j}", context, hypotheses[5 * c + k],
                         [{"text": answer, "answer_start": int(starts[j])}]))
    # a question longer than the 64-token limit, cut before tokenising its pair
    rows.append((f"{lang}-long", rows[0][1], glue.join(hypotheses[100:130]), rows[0][3]))
    frame = TT.prepare(pd.DataFrame(rows, columns=list(TT.columns)), None, None, f"{lang} rows")
    return frame


def split_of(frame: pd.DataFrame, lang: str) -> SplitData:
    return SplitData(task="t", task_type=TT.name, split="validation", lang=lang, frame=frame, origin="test",
                     revision=None, label_names=(), options={})


@pytest.mark.parametrize("name", ["deberta", "xlmr", "xlmr-250k"])
@pytest.mark.parametrize("lang, glue", [("th", " "), ("zh", ""), ("ar", " ")])
@pytest.mark.parametrize("max_len, window_step", [(384, 128), (64, 16), (48, 200)])
def test_windows_from_each_context_once_equal_the_per_question_path(tokenizers, shared_data, name, lang, glue,
                                                                    max_len, window_step):
    """Would catch: windows that start or stop one token off, a question's pieces or token types from the
    wrong template part, character offsets shifted between windows, a cut question, labels that moved, or windows
    given to the wrong question. (48, 200): a step wider than the window (no overlap); 64: many windows."""
    frame = unspaced_contexts(shared_data, lang, glue)
    tok = tokenizers[name]
    got = TT.featurize(split_of(frame, lang), tok, {"max_seq_len": max_len, "window_step": window_step})
    want = per_question_features(frame, tok, max_len, window_step)
    assert_same_features(got, want)
    assert len(got) > len(frame) and (got.rows["start_positions"] > 0).any()   # several windows, answers inside


@pytest.mark.parametrize("name", ["deberta", "xlmr", "xlmr-250k"])
def test_the_english_xquad_file_gives_the_same_windows_once_per_context(tokenizers, shared_data, name):
    """All 1,190 questions of XQuAD's English file (240 paragraphs) at run_qa.py's and XTREME's 384/128."""
    split = load_split("xquad", "validation", "en", shared_data)
    assert split.frame["context"].nunique() == 240
    got = TT.featurize(split, tokenizers[name], {"max_seq_len": 384, "window_step": 128})
    assert_same_features(got, per_question_features(split.frame, tokenizers[name], 384, 128))


def test_a_tokenizer_whose_context_pieces_differ_inside_a_pair_is_refused(tokenizers, shared_data, monkeypatch):
    """Would catch: windows cut from pieces that are not the pair's (here: every context's first piece lost)
    accepted silently instead of refused."""
    cut = qa_windows._context_pieces

    def first_piece_lost(contexts, tokenizer, chunk):
        ctx_of, ids, offsets, spans = cut(contexts, tokenizer, chunk)
        keep = np.ones(len(ids), dtype=bool)
        keep[offsets[:-1][np.diff(offsets) > 0]] = False
        lengths = np.diff(offsets) - (np.diff(offsets) > 0)
        return ctx_of, ids[keep], np.concatenate([[0], np.cumsum(lengths)]), spans[keep]

    monkeypatch.setattr(qa_windows, "_context_pieces", first_piece_lost)
    split = load_split("xquad", "validation", "en", shared_data).head(10)
    with pytest.raises(XltError, match="encodes a context differently inside a"):
        TT.featurize(split, tokenizers["deberta"], {"max_seq_len": 384, "window_step": 128})
