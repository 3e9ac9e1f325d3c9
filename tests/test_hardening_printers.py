"""Issue 26.7, every printer hardened alike: `xlt score` answers each bad input with one clear message; every
renderer shows a user's string as written (LaTeX tables survive a name starting with `[` or holding a blank
line, markdown tables never turn a name into a link); numeric options are refused outside what the code can
hold. Each test is named after the case it guards."""

import json
from pathlib import Path

import pytest
from markdown_it import MarkdownIt
from typer.testing import CliRunner

from tests.test_report import write_toy_run
from xlt.cli import app
from xlt.errors import XltError
from xlt.report import build_report, render

cli = CliRunner()


def xlt(*args):
    return cli.invoke(app, [str(a) for a in args])


def xnli_predictions(path: Path, preds: list[str], fmt: str = "csv") -> Path:
    """`id,pred` for all 2,490 pairs of XNLI's English validation split, the first ones given."""
    values = preds + ["0"] * (2490 - len(preds))
    if fmt == "csv":
        path.write_text("id,pred\n" + "".join(f"{i},{p}\n" for i, p in enumerate(values)), encoding="utf-8")
    else:
        path.write_text("".join(json.dumps({"id": i, "pred": int(p)}) + "\n" for i, p in enumerate(values)),
                        encoding="utf-8")
    return path


def score_case(case: str, tmp_path: Path, shared_data: Path) -> list:
    if case == "deeply_nested_json":
        preds = tmp_path / "preds.json"
        preds.write_text("[" * 100_000 + "]" * 100_000)
        return ["--task", "xquad", "--lang", "en", "--split", "validation", "--data-dir", shared_data, "-p", preds]
    if case == "malformed_squad_structure":
        (tmp_path / "data" / "xquad").mkdir(parents=True)
        (tmp_path / "data" / "xquad" / "validation-en.json").write_text(json.dumps({"data": [["an article?"]]}))
        preds = tmp_path / "preds.json"
        preds.write_text(json.dumps({"q1": "answer"}))
        return ["--task", "xquad", "--lang", "en", "--split", "validation", "--data-dir", tmp_path / "data",
                "-p", preds]
    if case == "superscript_digit":
        preds = xnli_predictions(tmp_path / "preds.csv", ["1", "\u00b2"])
        return ["--task", "xnli", "--lang", "en", "--split", "validation", "--data-dir", shared_data, "-p", preds]
    if case == "empty_jsonl_list_line":
        preds = xnli_predictions(tmp_path / "preds.jsonl", ["1", "2"], fmt="jsonl")
        preds.write_text(preds.read_text().replace("\n", "\n[]\n", 1))
        return ["--task", "xnli", "--lang", "en", "--split", "validation", "--data-dir", shared_data, "-p", preds]
    if case == "markup_language_in_a_task_file":
        text = (Path(__file__).resolve().parents[1] / "tasks" / "xnli.yaml").read_text()
        (tmp_path / "mine.yaml").write_text(text.replace("name: xnli", "name: mine").replace(
            "languages: [en, fr,", "languages: [en, '[/x]', fr,"))
        gold = tmp_path / "data" / "mine" / "validation-[" / "x].tsv"   # the file such a language names
        gold.parent.mkdir(parents=True)
        gold.write_bytes((shared_data / "xnli" / "validation-en.tsv").read_bytes())
        preds = xnli_predictions(tmp_path / "preds.csv", [])
        return ["--task", tmp_path / "mine.yaml", "--lang", "[/x]", "--split", "validation", "--data-dir",
                tmp_path / "data", "-p", preds]


SCORE_CASES = {
    "deeply_nested_json": "nested too deeply",
    "malformed_squad_structure": "is not SQuAD v1.1 JSON: data[0] is a list, not an article",
    "superscript_digit": "predictions ['\u00b2'] are not labels of this task",
    "empty_jsonl_list_line": "preds.jsonl:2: line 2 is a list, not one JSON object",
    "markup_language_in_a_task_file": "language '[/x]' is not a valid name",
}


@pytest.mark.parametrize("case", sorted(SCORE_CASES))
def test_xlt_score_gives_one_clear_message_for_each_bad_input(shared_data, tmp_path, case):
    """Would catch: RecursionError on deeply nested JSON, the SQuAD reader's error handler raising
    UnboundLocalError, int('²') raising ValueError, an empty list line read as a row, a task file language
    `[/x]` crashing rich's table (MarkupError) after the scores were computed."""
    res = xlt("score", *score_case(case, tmp_path, shared_data))
    assert isinstance(res.exception, XltError), (res.exception, res.output)   # main() prints it, exits 2
    assert SCORE_CASES[case] in str(res.exception), str(res.exception)


def hostile_rows(tmp_path: Path, names: list[str]):
    for seed, name in enumerate(names, 1):
        write_toy_run(tmp_path, name, seed, {"en": 0.9, "fr": 0.8, "de": 0.7})
    return build_report(tmp_path, "toy", reference=False).tables


def test_latex_tables_survive_a_name_that_starts_with_a_bracket_or_holds_a_blank_line(tmp_path):
    """Would catch: `\\\\` followed by a row starting `[0pt]` read as the row-spacing argument, and a blank line
    in a name ending the tabular's paragraph (LaTeX stops with an error on both)."""
    latex = render(hostile_rows(tmp_path, ["[0pt] bracketed", "two\n\nparagraphs"]), "latex")
    body = latex.split(r"\midrule", 1)[1].split(r"\bottomrule", 1)[0]
    assert "\n\n" not in body and r"{[}0pt{]} bracketed" in body and "two  paragraphs" in body
    assert not [line for line in body.splitlines() if line.lstrip().startswith("[")]


@pytest.mark.parametrize("name", ["[click me](http://evil.example)", "![pixel](http://evil.example/p.png)",
                                  "see www.evil.example or http://evil.example", "*loud* `code` <b>bold</b>"])
def test_markdown_tables_never_turn_a_name_into_a_live_link(tmp_path, name):
    """Would catch: a model named `[click me](http://...)` rendered as a link (or an image, emphasis, code) in
    the markdown table and the leaderboard README, or a bare URL left for GitHub to autolink."""
    md = render(hostile_rows(tmp_path, [name]), "md")
    page = MarkdownIt("commonmark").enable("table").render(md)
    row = next(line for line in page.splitlines() if "evil" in line or "loud" in line)
    assert "<a " not in page and "<img" not in page and "<em>" not in page and "<code>" not in row
    assert "<b>" not in page and "http://" not in md and "www." not in md   # GitHub's autolinks need these


@pytest.mark.parametrize("args, words", [
    (["run", "--model", "mdeberta-v3-base", "--task", "xnli", "--lr", "1e300"], "lr=1e+300 is out of range"),
    (["run", "--model", "mdeberta-v3-base", "--task", "xnli", "--lr", "1e38"], "lr=1e+38 is out of range"),
    (["run", "--model", "mdeberta-v3-base", "--task", "xnli", "--checkpoint-every", "-1"], "--checkpoint-every"),
    (["report", "tables", "--resamples", str(10**12)], "--resamples"),
    (["models", "verify", "mdeberta-v3-base", "--seq-len", "0"], "--seq-len"),
    (["models", "verify", "mdeberta-v3-base", "--seed", "-1"], "--seed"),
    (["sweep", "--models", "m", "--tasks", "xnli", "--retries", "-1"], "--retries"),
    (["sweep", "--models", "m", "--tasks", "xnli", "--max-concurrent", "0"], "--max-concurrent"),
    (["sweep", "--models", "m", "--tasks", "xnli", "--gpus-per-job", "-1"], "--gpus-per-job"),
])
def test_numeric_options_the_code_cannot_hold_are_refused_before_any_work(tmp_path, args, words):
    """Would catch: `--lr 1e300` overflowing torch's float32 inside the optimizer (a failed record with
    RuntimeError), a bootstrap of 10^12 resamples, a negative retry count or a zero-length verify batch."""
    res = xlt(*args, "--results-dir", tmp_path / "results") if args[0] != "models" else xlt(*args)
    assert res.exit_code == 2 and "Traceback" not in res.output, (res.exit_code, res.output)
    assert words in res.output.replace("\n", " ") or words.replace("--", "'--") in res.output, res.output
    assert not (tmp_path / "results").exists()
