"""Extractive QA: SQuAD rows, windows over long contexts, decoding from character offsets, and a run end to end."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

from tests import factories
from xlt import data as xdata
from xlt import evaluate as xeval
from xlt import runner
from xlt.cli import app
from xlt.errors import XltError
from xlt.results import load_predictions
from xlt.scoring import export_run
from xlt.tasks import SplitData, load_split
from xlt.tasktypes import get_task_type
from xlt.tasktypes.extractive_qa import AnswerSpanWarning
from xlt.tasktypes.qa_metrics import score_answers
from xlt.tasktypes.qa_windows import featurize_windows

TT = get_task_type("extractive-qa")
cli = CliRunner()


pytestmark = pytest.mark.usefixtures("one_torch_thread")   # tests/conftest.py


@pytest.fixture(scope="module")
def tokenizers(tmp_path_factory, spm_model):
    from transformers import AutoTokenizer

    root = tmp_path_factory.mktemp("qa-tokenizers")
    return {"deberta": AutoTokenizer.from_pretrained(factories.deberta_tokenizer_dir(root / "deberta", spm_model)),
            "xlmr": AutoTokenizer.from_pretrained(factories.xlmr_tokenizer_dir(root / "xlmr", spm_model))}


def qa_split(rows, lang="en", **options) -> SplitData:
    """A split built from (id, context, question, answers) rows, through the type's own `prepare`."""
    frame = TT.prepare(pd.DataFrame(rows, columns=list(TT.columns)), None, None, "test rows")
    return SplitData(task="t", task_type=TT.name, split="validation", lang=lang, frame=frame, origin="test",
                     revision=None, label_names=(), options=options)


def row(qid, context, answer, question="what?"):
    return (qid, context, question, [{"text": answer, "answer_start": context.index(answer)}])


def answer_tokens(feats, w, start, end):
    """First and last context token of window w overlapping chars [start, end), if the window holds them all
    (computed here from the offsets, independently of the featurizer's labels); else None."""
    s, e = feats.offsets[w], feats.offsets[w + 1]
    cs, ce = feats.tokens["char_start"][s:e], feats.tokens["char_end"][s:e]
    ctx = cs >= 0
    if not ctx.any() or cs[ctx].min() > start or ce[ctx].max() < end:
        return None
    hit = np.flatnonzero(ctx & (ce > cs) & (cs < end) & (ce > start))
    return int(hit[0]), int(hit[-1])


def decode_with(split, feats, logits_of, batch_size=16):
    """Run the type's decode/predictions over `feats` with logits from `logits_of(window) -> (T, 2)`."""
    decoded = []
    for batch in xdata.batches(feats, batch_size, collate_fn=TT.collate):
        width = batch["input_ids"].shape[1]
        logits = torch.full((len(batch["row"]), width, 2), -5.0)
        for i, w in enumerate(batch["row"].tolist()):
            own = logits_of(w)
            logits[i, :len(own)] = own
        decoded.append(TT.decode(logits, batch, feats))
    return TT.predictions(split, feats, decoded)


# ------------------------------------------------------------------------------------------------------------
# Rows

def test_squad_json_rows_and_hub_rows_become_one_schema(shared_data):
    frame = TT.read_file(shared_data / "xquad" / "validation-en.json", "squad")
    assert len(frame) == 1190 and list(frame.columns) == ["id", "context", "question", "answers"]
    assert frame.iloc[0]["id"] == "56beb4343aeaaa14008c925b"
    assert frame.iloc[0]["answers"] == [{"answer_start": 34, "text": "308"}]
    # the hub's answers come as {text: [...], answer_start: [...]} (numpy arrays after to_pandas)
    hub = pd.DataFrame([("q1", "Paris is big.", "Where?",
                         {"text": np.array(["Paris", "Paris"]), "answer_start": np.array([0, 0], dtype=np.int32)})],
                       columns=list(TT.columns))
    assert TT.prepare(hub, None, None, "hub rows")["answers"][0] == [{"text": "Paris", "answer_start": 0}] * 2


@pytest.mark.parametrize("content, message", [
    ("[1, 2]", "needs a top-level `data` list"),
    ('{"data": [{"paragraphs": [{"qas": []}]}]}', r"data\[0\].paragraphs\[0\] has no `context`"),
    ("{not json", "cannot read .* as SQuAD JSON"),
])
def test_a_malformed_squad_file_is_one_clear_error(tmp_path, content, message):
    path = tmp_path / "validation-en.json"
    path.write_text(content)
    with pytest.raises(XltError, match=message):
        TT.read_file(path, "squad")


def test_answers_that_do_not_match_their_context_are_counted_and_reported():
    """Would catch: a mismatched gold span silently dropped, or silently trained on at the wrong place."""
    rows = [row("a", "Paris is the capital of France.", "Paris"),
            ("b", "Rome is old.", "q", [{"text": "Rome", "answer_start": 3}]),      # text not at 3
            ("c", "Oslo is cold.", "q", [{"text": "Bergen", "answer_start": 0}])]   # text nowhere
    with pytest.warns(AnswerSpanWarning, match=r"test rows: 2 of 3 gold answers .* question 'b': 'Rome'"):
        split = qa_split(rows)
    assert split.frame.attrs["answer_spans"] == {"answers": 3, "mismatched": 2} and len(split) == 3


def test_unmatched_answers_are_left_out_of_the_loss_not_trained_as_no_answer(tokenizers):
    """Would catch: a question whose span is wrong labelled [CLS] (teaching "no answer") instead of ignored."""
    with pytest.warns(AnswerSpanWarning):
        split = qa_split([row("a", "Paris is the capital of France.", "Paris"),
                          ("b", "Rome is old.", "q", [{"text": "Rome", "answer_start": 3}])])
    feats = TT.featurize(split, tokenizers["deberta"], {"max_seq_len": 64, "window_step": 16})
    assert feats.rows["start_positions"][feats.index == 1].tolist() == [-100]
    batch = TT.collate(feats, np.arange(len(feats)))
    logits = torch.randn(len(feats), batch["input_ids"].shape[1], 2, requires_grad=True)
    loss = TT.loss(logits, batch)
    loss.backward()
    assert torch.isfinite(loss) and logits.grad[1].abs().sum() == 0 and logits.grad[0].abs().sum() > 0
    only_bad = TT.collate(feats, np.array([1]))
    assert TT.loss(torch.randn(1, only_bad["input_ids"].shape[1], 2), only_bad).item() == 0.0   # not NaN


@pytest.mark.parametrize("rows, message", [
    ([("a", "c", "q", [])], "have no gold answer"),
    ([("a", "c", "q", "c")], "malformed `answers`"),
    ([row("a", "x y", "x"), row("a", "x y", "y")], "ids repeat"),
])
def test_bad_rows_are_refused_with_the_fix(rows, message):
    with pytest.raises(XltError, match=message):
        qa_split(rows)


def test_options_are_checked():
    problems = TT.check_options({"normalization": "bleu", "n_best": 0, "max_answer_len": True, "beam": 4})
    assert len(problems) == 4 and any("unknown option 'beam'" in p for p in problems)
    assert TT.check_options({"normalization": "mlqa", "n_best": 5, "max_answer_len": 10}) == []


# ------------------------------------------------------------------------------------------------------------
# Windows

@pytest.mark.parametrize("name", ["deberta", "xlmr"])
def test_window_step_is_the_distance_between_window_starts(tokenizers, name):
    """Would catch: window_step passed as the tokenizer's `stride` (an overlap, transformers #22391), or
    windows that skip or repeat context tokens."""
    tok = tokenizers[name]
    context = " ".join(f"w{i}" for i in range(150))
    full = tok(context, add_special_tokens=False)["input_ids"]
    max_len, step = 64, 16
    room = max_len - tok.num_special_tokens_to_add(pair=True) - len(tok("what?", add_special_tokens=False)["input_ids"])
    feats = featurize_windows(["what?"], [context], np.array([-1]), np.array([-1]), tok, max_len, step)
    ctx = [feats.input_ids[feats.offsets[w]:feats.offsets[w + 1]][
        feats.tokens["char_start"][feats.offsets[w]:feats.offsets[w + 1]] >= 0].tolist() for w in range(len(feats))]
    assert all(len(c) == room for c in ctx[:-1]) and len(ctx) == -(-(len(full) - room) // step) + 1
    rebuilt = ctx[0] + [t for c in ctx[1:] for t in c[room - step:]]
    assert all(a[step:] == b[:room - step] for a, b in zip(ctx[:-2], ctx[1:-1]))   # overlap = room - step
    assert rebuilt[:len(full)] == full and len(ctx[-1]) <= room and ctx[-1] == full[-len(ctx[-1]):]


@pytest.mark.parametrize("name, lang", [("deberta", "en"), ("xlmr", "es")])
def test_labels_point_at_the_gold_answer_on_real_data(tokenizers, shared_data, name, lang):
    """Would catch: off-by-one labels, a mask that mistakes question tokens for context, and windows without
    the answer labelled anything but [CLS]."""
    split = load_split("xquad", "validation", lang, shared_data).head(150)
    feats = TT.featurize(split, tokenizers[name], {"max_seq_len": 256, "window_step": 64})
    frame, found = split.frame, set()
    for w in range(len(feats)):
        q, s, e = int(feats.index[w]), feats.rows["start_positions"][w], feats.rows["end_positions"][w]
        gold = frame["answers"][q][0]
        expected = answer_tokens(feats, w, gold["answer_start"], gold["answer_start"] + len(gold["text"]))
        assert (s, e) == (expected or (0, 0))
        if expected:
            o = feats.offsets[w]
            assert frame["context"][q][feats.tokens["char_start"][o + s]:feats.tokens["char_end"][o + e]].strip() \
                == gold["text"]
            found.add(q)
    assert found == set(range(150))
    # the context mask is the tokenizer's own sequence ids
    enc = tokenizers[name](frame["question"][0], frame["context"][0], truncation="only_second", max_length=256,
                           stride=0, return_offsets_mapping=True)
    first = feats.tokens["char_start"][feats.offsets[0]:feats.offsets[1]]
    assert [s == 1 for s in enc.sequence_ids()] == (first >= 0).tolist()


# ------------------------------------------------------------------------------------------------------------
# Decoding

@pytest.mark.parametrize("name", ["deberta", "xlmr"])
def test_a_context_five_windows_long_is_decoded_to_the_right_span_at_every_position(tokenizers, name):
    """Would catch: window offsets mixed up between windows, answers taken from the wrong window, a partial
    answer at a window edge beating the whole one, or spans rebuilt from tokens."""
    words = [f"w{i}" for i in range(130)]
    context = " ".join(words)
    rows = [row(f"q{p}", context, f"{words[p]} {words[p + 1]}") for p in range(len(words) - 1)]
    for p, r in enumerate(rows):   # index() finds w1 inside w10...: place each answer at its own word
        start = len(" ".join(words[:p])) + (1 if p else 0)
        rows[p] = (r[0], context, r[2], [{"text": f"{words[p]} {words[p + 1]}", "answer_start": start}])
    split = qa_split(rows)
    max_len = 64
    feats = TT.featurize(split, tokenizers[name], {"max_seq_len": max_len, "window_step": 16})
    assert len(tokenizers[name](context, add_special_tokens=False)["input_ids"]) >= 5 * max_len
    rng = np.random.default_rng(0)
    where, edges = {}, []
    for w in range(len(feats)):
        gold = split.frame["answers"][int(feats.index[w])][0]
        where[w] = answer_tokens(feats, w, gold["answer_start"], gold["answer_start"] + len(gold["text"]))
        if where[w]:
            ctx = np.flatnonzero(feats.tokens["char_start"][feats.offsets[w]:feats.offsets[w + 1]] >= 0)
            edges.append((where[w][0] - ctx[0], ctx[-1] - where[w][1]))
    assert min(e[0] for e in edges) == 0 and min(e[1] for e in edges) == 0    # at both edges of windows

    def logits_of(w):
        n = feats.offsets[w + 1] - feats.offsets[w]
        out = torch.from_numpy(rng.normal(0, 1, (n, 2))).float()
        if where[w]:
            out[where[w][0], 0] += 20
            out[where[w][1], 1] += 20
        return out

    preds = decode_with(split, feats, logits_of)
    assert preds["pred"].tolist() == [a[0]["text"] for a in split.frame["answers"]]
    assert preds["em"].sum() == len(rows) and list(preds.columns) == ["idx", *TT.prediction_columns]


def test_xlmr_lone_piece_does_not_drag_the_next_character_into_an_answer(tokenizers):
    """Would catch: the lone `▁` piece's offset (that of the character after it) used as an answer's end."""
    tok = tokenizers["xlmr"]
    context = "Er kaufte Brot 中文 und Milch."
    enc = tok(context, add_special_tokens=False, return_offsets_mapping=True)
    pieces = tok.convert_ids_to_tokens(enc["input_ids"])
    lone = [i for i, p in enumerate(pieces[:-1]) if p == "▁" and enc["offset_mapping"][i] == enc["offset_mapping"][i + 1]]
    assert lone, "precondition: this tokenizer maps a lone ▁ onto the next character"
    split = qa_split([row("q", context, "Brot")])
    feats = TT.featurize(split, tok, {"max_seq_len": 64, "window_step": 32})
    cs, ce = feats.tokens["char_start"], feats.tokens["char_end"]
    zh = int(np.flatnonzero(cs == context.index("中"))[-1])       # the lone ▁ before 中 and 中 share it
    assert ce[zh - 1] == cs[zh - 1] == cs[zh]                    # the ▁ now has an empty span
    brot = int(np.flatnonzero(cs == context.index("Brot"))[0])
    t_end = int(np.flatnonzero(ce == context.index("Brot") + 4)[0])

    def logits_of(w):
        out = torch.zeros(feats.offsets[w + 1] - feats.offsets[w], 2)
        out[brot, 0] = 20
        out[zh - 1, 1] = 30      # the end points at the lone ▁ first ...
        out[t_end, 1] = 20       # ... and at Brot's last piece second
        return out

    assert decode_with(split, feats, logits_of)["pred"].tolist() == ["Brot"]


@pytest.mark.parametrize("context, answer", [
    ("北京大学是中国的一所大学。", "中国"),                       # 国 is an unknown piece here
    ("กรุงเทพมหานครเป็นเมืองหลวงของประเทศไทย", "เมืองหลวง"),
    ("Er kaufte Brot 中文 und Milch.", "中文"),
])
def test_answers_without_spaces_are_cut_from_the_context_not_rebuilt(tokenizers, context, answer):
    """Would catch: answers rebuilt from tokens or mapped back through whitespace words (transformers #3510's
    get_final_text returned a Chinese answer's whole space-free chunk; rebuilt text would show [UNK])."""
    split = qa_split([row("q", context, answer)], lang="zh")
    feats = TT.featurize(split, tokenizers["deberta"], {"max_seq_len": 64, "window_step": 32})
    start = context.index(answer)
    s, e = answer_tokens(feats, 0, start, start + len(answer))

    def logits_of(w):
        out = torch.zeros(feats.offsets[w + 1] - feats.offsets[w], 2)
        out[s, 0], out[e, 1] = 20, 20
        return out

    assert decode_with(split, feats, logits_of)["pred"].tolist() == [answer]


def test_decoding_limits_come_from_the_task_options(tokenizers):
    """Would catch: max_answer_len or n_best ignored, or options not reaching decode."""
    context = " ".join(f"w{i}" for i in range(20))
    rows = [row("q", context, "w3")]

    def run(**options):
        split = qa_split(rows, **options)
        feats = TT.featurize(split, tokenizers["deberta"], {"max_seq_len": 128, "window_step": 64})
        assert len(feats) == 1 and feats.meta["max_answer_len"] == options["max_answer_len"]
        cs, ce = feats.tokens["char_start"], feats.tokens["char_end"]
        usable = np.flatnonzero((cs >= 0) & (ce > cs))
        a, far = int(usable[0]), int(usable[-1])

        def logits_of(w):
            out = torch.zeros(feats.offsets[1], 2)
            out[a, 0], out[far, 1] = 30, 30              # the best pair is longer than the limit
            out[usable[2], 1] = 20                       # the best pair within it ends here
            return out

        return decode_with(split, feats, logits_of)["pred"].tolist(), context[cs[a]:ce[usable[2]]].strip()

    pred, short = run(max_answer_len=4)
    assert pred == [short]
    # n_best 1: only the top start and the top end are paired, and that pair is too long: nothing is left
    assert run(max_answer_len=4, n_best=1)[0] == [""]


# ------------------------------------------------------------------------------------------------------------
# A run end to end

def qa_data_dir(tmp_path, shared_data) -> Path:
    """--data-dir layout: the shared English XQuAD file stands in for SQuAD train and dev."""
    root = tmp_path / "data"
    for rel, target in [("squad/train-en.json", "validation-en"), ("squad/dev-en.json", "validation-en"),
                        ("xquad/validation-en.json", "validation-en"), ("xquad/validation-es.json", "validation-es")]:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).symlink_to(shared_data / "xquad" / f"{target}.json")
    return root


def test_a_run_on_xquad_answers_every_question_from_its_context(tiny_deberta_v3, shared_data, tmp_path):
    """Would catch: a question left unanswered or answered with text that is not in its context, predictions
    out of source order, a record whose numbers its predictions do not give, and exported predictions that
    `xlt score` does not score to the run's own numbers."""
    ddir = qa_data_dir(tmp_path, shared_data)
    spec = factories.spec(str(tiny_deberta_v3), "xquad", seed=1, data_source="local", languages=("es",),
                          overrides=dict(epochs=1, batch_size=16, max_seq_len=96, window_step=32, lr=5e-3,
                                         warmup_steps=0), max_train_samples=48, max_eval_samples=24)
    done = runner.run(spec, data_dir=ddir, results_dir=tmp_path / "results")
    rec, preds = done.record, load_predictions(done.path)
    assert rec["status"] == "completed", rec["error"]
    assert rec["model"]["head"] == "qa" and rec["selection"]["criterion"] == "dev/en/f1"
    assert list(rec["metrics"]["validation"]) == ["en", "es"]
    assert list(preds.columns) == ["split", "lang", "idx", "id", "label", "pred", "em", "f1", "stat_em", "stat_f1"]
    for lang in ("en", "es"):
        part = preds[preds.lang == lang]
        gold = load_split("xquad", "validation", lang, ddir).frame.head(24)
        assert part["idx"].tolist() == list(range(24)) and part["id"].tolist() == gold["id"].tolist()
        assert [list(x) for x in part["label"]] == [[a["text"] for a in al] for al in gold["answers"]]
        assert all(p and p in c for p, c in zip(part["pred"], gold["context"]))   # answered, from the context
        ems, f1s = score_answers(part["pred"].tolist(), [list(x) for x in part["label"]], "squad", lang)
        assert part["em"].tolist() == ems and part["f1"].tolist() == f1s
    assert xeval.metrics_from_predictions(preds, ["f1", "exact_match"], TT) == rec["metrics"]
    assert rec["timing"]["eval_examples"] == 48 and rec["timing"]["eval_rows"] >= 48
    # export as the official scripts read it, then score the export: the run's own numbers come back
    files = export_run(rec, preds, tmp_path / "export")
    assert [f.name for f in files] == ["validation-en.json", "validation-es.json"]
    exported = json.loads(files[1].read_text(encoding="utf-8"))
    assert list(exported) == preds[preds.lang == "es"]["id"].tolist()
    res = cli.invoke(app, ["score", "--task", "xquad", "--lang", "es", "--predictions", str(files[1]),
                           "--data-dir", str(ddir), "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["notes"] == ["1166 of 1190 questions have no prediction and score 0 (as the official scripts "
                            "score them)"]
    part = preds[preds.lang == "es"]
    assert out["metrics"]["f1"] == pytest.approx(part["f1"].sum() / 1190)
