"""`xlt tasks list|show|validate` and `xlt bench data` through Typer's CliRunner (no network)."""

import json
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from xlt.cli import app
from xlt.errors import XltError

runner = CliRunner()

USER_TASK = """\
# A user's own language task: two target languages from local files, nothing else.
name: toynli
type: pair-classification
version: 1
description: Toy NLI in English and Xhosa-like test data.
labels: [entailment, neutral, contradiction]
source_lang: en
languages: [en, xx]
eval_splits: [test]
metrics: [accuracy, macro_f1]
source:
  files: data/{split}-{lang}.tsv
  columns: {text_a: premise, text_b: hypothesis, label: label}
  label_map: {entailment: entailment, neutral: neutral, contradictory: contradiction}
"""


@pytest.fixture()
def user_tasks(tmp_path):
    d = tmp_path / "mytasks"
    (d / "data").mkdir(parents=True)
    (d / "toynli.yaml").write_text(USER_TASK, encoding="utf-8")
    rows = "premise\thypothesis\tlabel\nA cat sleeps.\tAn animal rests.\tentailment\nIt rains.\tIt is dry.\tcontradictory\n"
    for name in ("train-en", "validation-en", "test-en", "test-xx"):
        (d / "data" / f"{name}.tsv").write_text(rows, encoding="utf-8")
    return d


def test_list_builtin_and_json(tmp_path):
    out = tmp_path / "tasks.json"
    res = runner.invoke(app, ["tasks", "list", "--json", str(out)])
    assert res.exit_code == 0, res.output
    for name in ("xnli", "pawsx", "americasnli", "indicxnli"):
        assert name in res.output
    names = [t["name"] for t in json.loads(out.read_text())]
    assert set(names) >= {"xnli", "pawsx", "americasnli", "indicxnli"}


def test_show_xnli_with_data_dir(shared_data):
    res = runner.invoke(app, ["tasks", "show", "xnli", "--data-dir", str(shared_data)])
    assert res.exit_code == 0, res.output
    assert "entailment neutral contradiction" in res.output
    assert "train-en.tsv" in res.output and "(missing)" in res.output      # no test split locally
    res = runner.invoke(app, ["tasks", "show", "xnli"])
    assert "facebook/xnli" in res.output and "revision=" in res.output


def test_user_task_end_to_end(user_tasks, tmp_path):
    res = runner.invoke(app, ["tasks", "list", "--tasks-dir", str(user_tasks)])
    assert res.exit_code == 0 and "toynli" in res.output and "xnli" in res.output
    out = tmp_path / "show.json"
    res = runner.invoke(app, ["tasks", "show", "toynli", "--tasks-dir", str(user_tasks), "--json", str(out)])
    assert res.exit_code == 0, res.output
    shown = json.loads(out.read_text())
    assert shown["languages"] == ["en", "xx"]
    assert {(r["split"], r["lang"]) for r in shown["splits"]} == {("train", "en"), ("validation", "en"),
                                                                   ("test", "en"), ("test", "xx")}
    assert all("(missing)" not in r["from"] for r in shown["splits"])
    res = runner.invoke(app, ["tasks", "validate", str(user_tasks / "toynli.yaml")])
    assert res.exit_code == 0 and "ok" in res.output
    res = runner.invoke(app, ["tasks", "validate", str(user_tasks)])          # a folder: every file in it
    assert res.exit_code == 0 and "toynli" in res.output
    res = runner.invoke(app, ["tasks", "validate"])                            # default: every built-in task
    assert res.exit_code == 0 and all(t in res.output for t in ("xnli", "pawsx", "americasnli", "indicxnli"))
    # ... and the library reads it, label words mapped through label_map
    from xlt.tasks import get_task, load_split
    split = load_split(get_task("toynli", user_tasks), "test", "xx")
    assert split.frame["label"].tolist() == [0, 2]


def test_validate_reports_every_problem_with_line(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(USER_TASK.replace("name: toynli", "name: bad").replace("version: 1", "version: 0")
                   .replace("metrics: [accuracy, macro_f1]", "metrics: [f1]"), encoding="utf-8")
    broken = tmp_path / "broken.yaml"
    broken.write_text("name: broken\ntype: pair-classification\nlabels: [a, b\n", encoding="utf-8")
    res = runner.invoke(app, ["tasks", "validate", str(bad), str(broken)])
    assert res.exit_code == 1
    text = res.output
    assert f"{bad}:4" in text and "version must be a positive integer" in text
    assert f"{bad}:10" in text and "unknown metric 'f1'" in text
    assert f"{broken}:" in text and "malformed YAML" in text and "fix:" in text


def test_validate_duplicate_names(tmp_path, user_tasks):
    other = tmp_path / "other"
    other.mkdir()
    (other / "toynli.yaml").write_text(USER_TASK, encoding="utf-8")
    res = runner.invoke(app, ["tasks", "validate", str(user_tasks / "toynli.yaml"), str(other / "toynli.yaml")])
    assert res.exit_code == 1 and "duplicate task name 'toynli'" in res.output


def test_unknown_task_is_one_clear_error():
    res = runner.invoke(app, ["tasks", "show", "xnlii"])
    assert isinstance(res.exception, XltError) and "valid: " in str(res.exception)
    # the installed entry point prints it without a traceback and exits 2
    proc = subprocess.run([sys.executable, "-c", "from xlt.cli import main; main()", "tasks", "show", "xnlii"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "unknown task 'xnlii'" in proc.stderr and "Traceback" not in proc.stderr


def test_bench_data_with_tiny_tokenizer(tiny_deberta_v3, shared_data, tmp_path):
    out = tmp_path / "bench.json"
    res = runner.invoke(app, ["bench", "data", "--task", "xnli", "--data-dir", str(shared_data), "--tokenizer",
                              str(tiny_deberta_v3), "--langs", "en,sw", "--repeats", "1", "--json", str(out)])
    assert res.exit_code == 0, res.output
    data = json.loads(out.read_text())
    for key in ("pairs", "cold_pairs_per_s", "cached_pairs_per_s", "padding_efficiency_bucketed",
                "padding_efficiency_fixed128", "tokenise_us_per_example"):
        assert key in data
    assert data["tokenise_s"] > 0 and "tokenise only" in res.output
    assert data["pairs"] == 2 * 2490
    assert 0 < data["padding_efficiency_fixed128"] <= data["padding_efficiency_bucketed"] <= 1
