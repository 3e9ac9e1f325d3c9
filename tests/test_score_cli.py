"""`xlt score`: another system's predictions scored with a run's metrics, in each task type's own format."""

import csv
import json
import re
import subprocess
import sys
import textwrap

import pandas as pd
import pytest
from typer.testing import CliRunner

from xlt.cli import app
from xlt.errors import XltError
from xlt.report import default_reference_dir, load_reference

runner = CliRunner()


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv("XLT_DATA_DIR", raising=False)


def squad_gold(path) -> dict[str, str]:
    data = json.loads(path.read_text(encoding="utf-8"))
    return {qa["id"]: qa["answers"][0]["text"] for a in data["data"] for p in a["paragraphs"] for qa in p["qas"]}


def score(*args):
    return runner.invoke(app, ["score", *map(str, args)])


def test_gold_answers_score_100_on_both_metrics(shared_data, tmp_path):
    preds = tmp_path / "gold-es.json"
    preds.write_text(json.dumps(squad_gold(shared_data / "xquad" / "validation-es.json"), ensure_ascii=False),
                     encoding="utf-8")
    res = score("--task", "xquad", "--lang", "es", "--predictions", preds, "--data-dir", shared_data)
    assert res.exit_code == 0, res.output
    line = next(l for l in res.stdout.splitlines() if l.startswith("│ es"))
    assert [c.strip() for c in line.split("│")[2:5]] == ["100.00", "100.00", "1190"]   # f1, exact_match, n
    res = score("--task", "xquad", "--lang", "es", "--predictions", preds, "--data-dir", shared_data, "--json")
    out = json.loads(res.stdout)
    assert out["metrics"] == {"f1": 1.0, "exact_match": 1.0, "n": 1190} and out["split"] == "validation"
    assert out["notes"] == [] and out["unit"] == "questions"


def test_missing_and_unknown_ids_are_scored_as_the_official_scripts_do(shared_data, tmp_path):
    gold = squad_gold(shared_data / "xquad" / "validation-en.json")
    ids = list(gold)
    half = {i: gold[i] for i in ids[:595]} | {"not-a-question": "x"}
    preds = tmp_path / "half.json"
    preds.write_text(json.dumps(half), encoding="utf-8")
    res = score("--task", "xquad", "--lang", "en", "--predictions", preds, "--data-dir", shared_data, "--json")
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["metrics"] == {"f1": 0.5, "exact_match": 0.5, "n": 1190}           # unanswered: 0, not dropped
    assert out["notes"] == ["595 of 1190 questions have no prediction and score 0 (as the official scripts "
                            "score them)", "1 ids in half.json are not questions of this split and were ignored"]


@pytest.mark.parametrize("content, message", [
    ('{"a": 1}', "must be one JSON object mapping each question id to its answer text"),
    ("[]", "must be one JSON object"),
    ("{oops", "cannot read .* as JSON predictions"),
    ('{"a": "x"}', "none of the 1 ids .* is a question of xquad validation-en"),
])
def test_bad_prediction_files_are_one_clear_error(shared_data, tmp_path, content, message):
    preds = tmp_path / "p.json"
    preds.write_text(content)
    res = score("--task", "xquad", "--lang", "en", "--predictions", preds, "--data-dir", shared_data)
    assert isinstance(res.exception, XltError) and re.search(message, str(res.exception)), res.output


def test_usage_errors_exit_2_without_a_traceback(shared_data, tmp_path):
    res = score("--task", "xquad", "--lang", "xx", "--predictions", tmp_path / "p.json", "--data-dir", shared_data)
    assert isinstance(res.exception, XltError) and "unknown language 'xx'" in str(res.exception)
    res = score("--task", "xquad", "--lang", "en", "--predictions", tmp_path / "none.json")
    assert isinstance(res.exception, XltError) and "does not exist" in str(res.exception)
    proc = subprocess.run([sys.executable, "-c", "from xlt.cli import main; main()", "score", "--task", "xquad",
                           "--lang", "en", "--split", "test", "--predictions", str(tmp_path / "p.json")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "unknown split 'test'" in proc.stderr and "Traceback" not in proc.stderr


def test_sentence_pairs_score_an_id_pred_table(shared_data, tmp_path):
    gold = pd.read_csv(shared_data / "xnli" / "validation-sw.tsv", sep="\t", quoting=csv.QUOTE_NONE, dtype=str)
    preds = tmp_path / "sw.csv"
    pd.DataFrame({"id": range(len(gold)), "pred": gold["label"]}).to_csv(preds, index=False)
    res = score("--task", "xnli", "--lang", "sw", "--split", "validation", "--predictions", preds,
                "--data-dir", shared_data, "--json")
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["metrics"] == {"accuracy": 1.0, "macro_f1": 1.0, "n": 2490}


def test_the_task_normalisation_option_decides_the_score(tmp_path):
    """Would catch: `normalization: mlqa` in a task file not reaching the metric (Chinese scored by whitespace)."""
    (tmp_path / "data").mkdir()
    squad = {"version": "1.1", "data": [{"title": "t", "paragraphs": [{"context": "北京大学在北京。", "qas": [
        {"id": "q1", "question": "哪里?", "answers": [{"text": "北京大学", "answer_start": 0}]}]}]}]}
    (tmp_path / "data" / "validation-zh.json").write_text(json.dumps(squad, ensure_ascii=False), encoding="utf-8")
    for name, norm in (("zhqa", "mlqa"), ("zhqa_squad", "squad")):
        (tmp_path / f"{name}.yaml").write_text(textwrap.dedent(f"""\
            name: {name}
            type: extractive-qa
            version: 1
            source_lang: zh
            languages: [zh]
            eval_splits: [validation]
            options: {{normalization: {norm}}}
            source:
              files: data/{{split}}-{{lang}}.json
              columns: {{id: id, context: context, question: question, answers: answers}}
            """), encoding="utf-8")
    preds = tmp_path / "p.json"
    preds.write_text(json.dumps({"q1": "北京"}, ensure_ascii=False), encoding="utf-8")
    got = {}
    for name in ("zhqa", "zhqa_squad"):
        res = score("--task", name, "--lang", "zh", "--predictions", preds, "--tasks-dir", tmp_path, "--json")
        assert res.exit_code == 0, res.output
        got[name] = json.loads(res.stdout)["metrics"]
    assert got["zhqa"]["f1"] == pytest.approx(2 / 3) and got["zhqa_squad"]["f1"] == 0.0   # 北 京 of 北 京 大 学


def test_qa_reference_rows_are_the_sources_digits():
    xquad = load_reference(default_reference_dir() / "xquad.csv")
    xlmr = xquad[(xquad.model == "XLM-R large (XTREME)") & (xquad.metric == "f1")]
    # no ro; the avg is the 11-language one the README printed at the cited commit (later ones add ro)
    assert dict(zip(xlmr.lang, xlmr.value)) == {"en": 86.5, "es": 82.0, "de": 80.4, "el": 79.8, "ru": 80.1,
                                                 "tr": 75.9, "ar": 68.6, "vi": 79.1, "th": 74.2, "zh": 59.3,
                                                 "hi": 76.7, "avg": 76.6}
    assert set(xquad.split) == {"validation"} and set(xquad.metric) == {"f1", "exact_match"}
    mlqa = load_reference(default_reference_dir() / "mlqa.csv")
    em = mlqa[(mlqa.model == "XLM-R large (XLM-R paper)") & (mlqa.metric == "exact_match")]
    assert em.value.tolist() == [67.8, 56.0, 53.6, 43.5, 51.6, 50.9, 45.4, 52.7] and set(mlqa.split) == {"test"}


def test_export_writes_each_type_in_its_own_format(tmp_path):
    from xlt.scoring import export_run

    pairs = pd.DataFrame({"split": "validation", "lang": ["fr", "fr", "sw"], "idx": [0, 1, 0], "label": [0, 2, 1],
                          "pred": [0, 1, 1]})
    files = export_run({"run_id": "r1", "task": {"type": "pair-classification"}}, pairs, tmp_path / "pairs")
    assert [f.name for f in files] == ["validation-fr.csv", "validation-sw.csv"]
    assert files[0].read_text().splitlines() == ["idx,label,pred", "0,0,0", "1,2,1"]
    assert export_run({"run_id": "old"}, pairs, tmp_path / "old")[0].read_text() == files[0].read_text()
    qa = pd.DataFrame({"split": "test", "lang": "zh", "idx": [0, 1], "id": ["a", "b"], "label": [["北京"], ["x"]],
                       "pred": ["北京", ""], "em": [1.0, 0.0], "f1": [1.0, 0.0]})
    files = export_run({"run_id": "r2", "task": {"type": "extractive-qa"}}, qa, tmp_path / "qa")
    assert json.loads(files[0].read_text(encoding="utf-8")) == {"a": "北京", "b": ""}
    with pytest.raises(XltError, match="run r3 has no predictions to export"):
        export_run({"run_id": "r3"}, None, tmp_path / "none")


def test_mlqa_normalisation_for_a_language_it_has_no_rules_for_is_refused_before_anything_runs(tmp_path):
    (tmp_path / "thqa.yaml").write_text(textwrap.dedent("""\
        name: thqa
        type: extractive-qa
        version: 1
        source_lang: th
        languages: [th]
        eval_splits: [validation]
        options: {normalization: mlqa}
        source:
          files: data/{split}-{lang}.json
          columns: {id: id, context: context, question: question, answers: answers}
        """), encoding="utf-8")
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "validation-th.json").write_text(json.dumps({"data": [{"paragraphs": [
        {"context": "กรุงเทพ", "qas": [{"id": "q", "question": "?", "answers": [{"text": "กรุงเทพ", "answer_start": 0}]}]}]}]}))
    (tmp_path / "p.json").write_text('{"q": "กรุงเทพ"}', encoding="utf-8")
    res = score("--task", "thqa", "--lang", "th", "--predictions", tmp_path / "p.json", "--tasks-dir", tmp_path)
    assert isinstance(res.exception, XltError) and "not th; use `normalization: squad`" in str(res.exception)
