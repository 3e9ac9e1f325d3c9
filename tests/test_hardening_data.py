"""Issue 26.6, strict data: what a file holds is taken as it is or refused, never quietly turned into something
else. ASCII digits only for numeric labels; booleans, lists, objects and nulls are no labels, tags, words or
texts; empty fields are counted and warned per file, and refused where the row means nothing without them;
duplicate columns are refused; every reader error names the file and the line or record. Rows are real XNLI,
PAN-X and XQuAD rows from ../shared/data. Each test is named after the case it guards."""

import json
from pathlib import Path

import pytest

from xlt.errors import XltError
from xlt.tasks import get_task, load_split
from xlt.tasktypes.fields import EmptyFieldWarning

PAIRS = """name: pairs
type: pair-classification
version: 1
labels: [entailment, neutral, contradiction]
source_lang: en
languages: [en]
eval_splits: [test]
source:
  files: data/{split}-{lang}.FORMAT
  columns: {text_a: premise, text_b: hypothesis, label: label}
"""
TAGS = """name: tags
type: token-classification
version: 1
labels: [O, B-PER, I-PER, B-ORG, I-ORG, B-LOC, I-LOC]
source_lang: en
languages: [en]
eval_splits: [test]
source:
  files: data/{split}-{lang}.jsonl
  columns: {tokens: tokens, tags: ner_tags}
"""
QA = """name: qa
type: extractive-qa
version: 1
source_lang: en
languages: [en]
eval_splits: [test]
source:
  files: data/{split}-{lang}.json
  columns: {id: id, context: context, question: question, answers: answers}
"""


def xnli_rows(shared_data: Path, n: int = 6) -> list[dict]:
    lines = (shared_data / "xnli" / "validation-en.tsv").read_text(encoding="utf-8").splitlines()
    header = lines[0].split("\t")
    return [dict(zip(header, line.split("\t"))) for line in lines[1:n + 1]]


def panx_rows(shared_data: Path, n: int = 4) -> list[dict]:
    text = (shared_data / "panx" / "validation-en.tsv").read_text(encoding="utf-8")
    rows = []
    for block in text.strip().split("\n\n")[:n]:
        pairs = [line.split("\t") for line in block.splitlines()]
        rows.append({"tokens": [p[0] for p in pairs], "ner_tags": [p[1] for p in pairs]})
    return rows


def squad(shared_data: Path, n: int = 3) -> dict:
    data = json.loads((shared_data / "xquad" / "validation-en.json").read_text(encoding="utf-8"))
    para = data["data"][0]["paragraphs"][0]
    return {"version": "1.1", "data": [{"title": "t", "paragraphs": [{"context": para["context"],
                                                                     "qas": para["qas"][:n]}]}]}


def task(tmp_path: Path, text: str, fmt: str = "tsv"):
    name = text.split("\n", 1)[0].split(": ")[1]
    (tmp_path / f"{name}.yaml").write_text(text.replace("FORMAT", fmt))
    (tmp_path / "data").mkdir(exist_ok=True)
    return get_task(name, tmp_path), tmp_path / "data" / f"test-en.{fmt}"


def write_tsv(path: Path, rows: list[dict], header: str = "id\tpremise\thypothesis\tlabel") -> None:
    keys = header.split("\t")
    path.write_text(header + "\n" + "".join("\t".join(str(r.get(k, "")) for k in keys) + "\n" for r in rows),
                    encoding="utf-8")


def write_jsonl(path: Path, rows: list) -> None:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows), encoding="utf-8")


def refused(spec, path: Path, *words: str) -> str:
    with pytest.raises(XltError) as err:
        load_split(spec, "test", "en")
    message = str(err.value)
    assert str(path) in message and all(w in message for w in words), message
    return message


# --- ASCII digits only -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("digit", ["\u0661", "\u00b9", "\uff11", "\u09e7"])   # Arabic-Indic, superscript, ...
def test_a_label_in_non_ascii_digits_is_refused(shared_data, tmp_path, digit):
    """Would catch: `١` (Arabic-Indic one) read as label 1 by str.isdigit/int, or `¹` crashing int()."""
    spec, path = task(tmp_path, PAIRS)
    rows = xnli_rows(shared_data)
    rows[2]["label"] = digit
    write_tsv(path, rows)
    refused(spec, path, "row 2", repr(digit))
    rows[2]["label"] = "1"
    write_tsv(path, rows)
    assert load_split(spec, "test", "en").frame["label"].tolist()[2] == 1


# --- booleans, lists, objects, nulls ---------------------------------------------------------------------------

@pytest.mark.parametrize("field, value, what", [
    ("label", True, "a boolean"), ("label", [1], "a list"), ("label", {"id": 1}, "an object"),
    ("label", None, "null"), ("premise", ["A", "man"], "a list"), ("hypothesis", True, "a boolean"),
    ("premise", {"text": "A man"}, "an object"),
])
def test_booleans_lists_and_objects_are_refused_as_labels_or_text(shared_data, tmp_path, field, value, what):
    """Would catch: `true` as label 1 (True == 1 in the label lookup), a list label crashing the lookup, a
    list or object as text turned into its Python repr and trained on."""
    spec, path = task(tmp_path, PAIRS, "jsonl")
    rows = [{**r, "label": int(r["label"])} for r in xnli_rows(shared_data)]
    rows[3][field] = value
    write_jsonl(path, rows)
    refused(spec, path, "row 3", field, what)


@pytest.mark.parametrize("where, value, what", [
    ("ner_tags", True, "a boolean"), ("ner_tags", None, "null"), ("ner_tags", ["O"], "a list"),
    ("tokens", None, "null"), ("tokens", True, "a boolean"), ("tokens", {"w": "x"}, "an object"),
])
def test_booleans_nulls_lists_and_objects_are_refused_as_tags_or_words(shared_data, tmp_path, where, value, what):
    """Would catch: a tag `true` becoming B-PER (True == 1 once an int tag 1 was seen), a word `null` becoming
    the word "None", a list or object as a word turned into its repr."""
    spec, path = task(tmp_path, TAGS, "jsonl")
    rows = [{"tokens": r["tokens"], "ner_tags": [spec.label_names.index(t) for t in r["ner_tags"]]}
            for r in panx_rows(shared_data)]
    assert 1 in rows[0]["ner_tags"] or 1 in rows[1]["ner_tags"]   # an int tag 1 is seen before the bad value
    rows[2][where][1] = value
    write_jsonl(path, rows)
    refused(spec, path, "row 2", "word 1", what)


# --- empty fields ---------------------------------------------------------------------------------------------

def test_empty_fields_are_counted_and_warned_per_file(shared_data, tmp_path):
    """Would catch: empty hypotheses (or a missing value read as "") trained on without a word said."""
    spec, path = task(tmp_path, PAIRS)
    rows = xnli_rows(shared_data)
    rows[1]["hypothesis"] = rows[4]["hypothesis"] = ""
    write_tsv(path, rows)
    with pytest.warns(EmptyFieldWarning, match=r"2 of 6 rows have an empty text_b \('hypothesis'\); first: row 1"):
        split = load_split(spec, "test", "en")
    assert str(path) in str(split.origin) and len(split) == 6


def test_a_pair_with_no_text_at_all_is_refused(shared_data, tmp_path):
    """Would catch: a row with both texts empty (an empty line's fields) trained on as a labelled example."""
    spec, path = task(tmp_path, PAIRS)
    rows = xnli_rows(shared_data)
    rows[5]["premise"] = rows[5]["hypothesis"] = " "
    write_tsv(path, rows)
    refused(spec, path, "row 5", "no text")


@pytest.mark.parametrize("case, words", [
    ("empty_answer", ["empty gold answer", "question"]),
    ("null_id", ["row 1", "id", "null"]),
    ("empty_id", ["row 1", "empty id"]),
    ("empty_question", ["row 2", "empty question"]),
    ("null_context", ["row 0", "context", "null"]),
    ("boolean_start", ["malformed `answers`"]),
    ("arabic_start", ["malformed `answers`"]),
])
def test_questions_that_mean_nothing_are_refused(shared_data, tmp_path, case, words):
    """Would catch: an empty gold answer (EM 1 for an empty prediction), a null question id read as "" or
    "None", an empty question, answer_start `true` or `١` read as 1."""
    spec, path = task(tmp_path, QA, "json")
    data = squad(shared_data)
    para = data["data"][0]["paragraphs"][0]
    qas = para["qas"]
    if case == "empty_answer":
        qas[1]["answers"][0]["text"] = ""
    elif case == "null_id":
        qas[1]["id"] = None
    elif case == "empty_id":
        qas[1]["id"] = ""
    elif case == "empty_question":
        qas[2]["question"] = "  "
    elif case == "null_context":
        para["context"] = None
    elif case == "boolean_start":
        qas[0]["answers"][0]["answer_start"] = True
    else:
        qas[0]["answers"][0]["answer_start"] = "\u0661"
    path.write_text(json.dumps(data), encoding="utf-8")
    refused(spec, path, *words)


def test_a_sentence_without_words_is_refused_and_empty_words_warned(shared_data, tmp_path):
    """Would catch: an empty sentence (`[]`) kept as an example, and empty-string words kept silently."""
    spec, path = task(tmp_path, TAGS, "jsonl")
    rows = panx_rows(shared_data)
    rows[1]["tokens"][0] = ""
    write_jsonl(path, rows)
    with pytest.warns(EmptyFieldWarning, match=r"1 of \d+ words have no characters; first: row 1 word 0"):
        load_split(spec, "test", "en")
    rows[2] = {"tokens": [], "ner_tags": []}
    write_jsonl(path, rows)
    refused(spec, path, "row 2", "no words")


# --- duplicate columns and reader errors ------------------------------------------------------------------------

@pytest.mark.parametrize("fmt", ["tsv", "csv", "jsonl"])
def test_a_duplicated_column_is_refused(shared_data, tmp_path, fmt):
    """Would catch: pandas renaming a second `label` column to `label.1` (or json keeping the last `label`),
    so one of two conflicting label columns is used without a word."""
    spec, path = task(tmp_path, PAIRS, fmt)
    rows = xnli_rows(shared_data)
    if fmt == "jsonl":
        write_jsonl(path, [json.dumps({k: r[k] for k in ("premise", "hypothesis", "label")})[:-1]
                           + ', "label": "2"}' for r in rows])
        refused(spec, path, f"{path}:1", "'label' twice")
    else:
        sep = "\t" if fmt == "tsv" else ","
        path.write_text(sep.join(["premise", "hypothesis", "label", "label"]) + "\n" + "".join(
            sep.join(['"x"', '"y"', r["label"], "2"]) + "\n" for r in rows), encoding="utf-8")
        refused(spec, path, "column 'label' appears twice")


@pytest.mark.parametrize("line, words", [
    ("[]", "line 3 is a list, not one JSON object"),
    ("\"text\"", "line 3 is a string, not one JSON object"),
    ("{\"premise\": ", "line 3 is not JSON"),
    ("[" * 100_000 + "]" * 100_000, "line 3 is nested too deeply"),
])
def test_every_jsonl_reader_error_names_the_file_and_the_line(shared_data, tmp_path, line, words):
    """Would catch: an empty list line becoming an all-NaN row (then a confusing column error), a deeply
    nested line raising RecursionError, or a decode error without its line."""
    spec, path = task(tmp_path, PAIRS, "jsonl")
    rows = [json.dumps(r) for r in xnli_rows(shared_data)]
    write_jsonl(path, rows[:2] + [line] + rows[2:])
    refused(spec, path, f"{path}:", words)


@pytest.mark.parametrize("data, words", [
    ({"data": [["not an article"]]}, "data[0] is a list, not an article"),
    ({"data": [{"paragraphs": [{"qas": []}]}]}, "data[0].paragraphs[0] has no `context`"),
    ({"data": [{"paragraphs": [{"context": "c", "qas": [{"id": "q", "answers": []}]}]}]},
     "data[0].paragraphs[0].qas[0] has no `question`"),
    ({"data": [{"paragraphs": {"context": "c"}}]}, "data[0].paragraphs is a dict, not a list"),
    ("deep", "nested too deeply"),
])
def test_a_malformed_squad_file_names_the_record(tmp_path, data, words):
    """Would catch: the SQuAD reader's own error handler raising UnboundLocalError (an article that is not a
    mapping), or RecursionError on deeply nested JSON, instead of naming where the structure breaks."""
    spec, path = task(tmp_path, QA, "json")
    path.write_text("[" * 100_000 + "]" * 100_000 if data == "deep" else json.dumps(data), encoding="utf-8")
    refused(spec, path, words)
