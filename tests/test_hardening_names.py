"""Issue 26.4, names are names: a task, model, split or language name that is really a path (`..`, `.`,
`ckpt/..`, `../../x`) is refused with one clear message before anything is written, and every writer checks
that the file it writes stays inside its folder. Each test is named after the case it guards."""

from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from tests.test_hardening_run import toy_task
from xlt.cli import app
from xlt.errors import XltError
from xlt.names import check_name, inside, is_name
from xlt.results import new_record, write_run
from xlt.spec import RunSpec

cli = CliRunner()


def xlt(*args):
    return cli.invoke(app, [str(a) for a in args])


def retitled(task_file: Path, name: str, file_name: str) -> Path:
    """The toy task saved under another file name with `name:` to match (the file name is the task name)."""
    path = task_file.parent / file_name
    path.write_text(task_file.read_text().replace("name: toytask", f"name: '{name}'"))
    return path


@pytest.mark.parametrize("name, file_name", [("..", "...yaml"), (".", "..yaml")])
def test_a_task_named_dot_or_dotdot_is_refused(tmp_path, name, file_name):
    """Would catch: a task called `..` filing its record at runs/../<model>/ (outside runs/), or `.` at
    runs/./<model>/, where no report looks."""
    task = retitled(toy_task(tmp_path / "t"), name, file_name)
    validated = xlt("tasks", "validate", task)
    assert validated.exit_code == 1 and f"{task}:1: name {name!r} is not a valid name" in validated.stderr
    res = xlt("run", "--model", "mdeberta-v3-base", "--task", task, "--results-dir", tmp_path / "results",
              "--dry-run")
    assert res.exit_code == 2 and "is not a valid name" in res.stderr and "Traceback" not in res.output
    with pytest.raises(XltError, match="task name '..' is not a valid name"):
        RunSpec("mdeberta-v3-base", "..")


@pytest.mark.parametrize("tail", ["..", "."])
def test_a_model_path_ending_in_dotdot_is_refused(tiny_deberta_v3, tmp_path, tail):
    """Would catch: `--model ckpt/..` giving the model slug `..`, so its records land in runs/<task>/, beside
    the model folders instead of in one (and `report runs` files them under no model)."""
    model = f"{tiny_deberta_v3}/{tail}"
    res = xlt("run", "--model", model, "--task", "xnli", "--results-dir", tmp_path / "results", "--dry-run")
    assert res.exit_code == 2 and "Traceback" not in res.output, res.output
    assert f"model {model!r} has no name of its own" in res.stderr.replace("\n", "")
    assert RunSpec(str(tiny_deberta_v3), "xnli").model_slug == Path(tiny_deberta_v3).name   # a plain path is fine


@pytest.mark.parametrize("key, line", [
    ("eval_splits: [test, validation]", "eval_splits: [test, '../../x']"),
    ("languages: [en, fr]", "languages: [en, '../fr']"),
])
def test_a_split_or_language_that_is_a_path_in_a_task_file_is_refused(tmp_path, key, line):
    """Would catch: a split `../../x` (or a language `../fr`) in a task file making xlt read
    `<data>/<task>/../../x-en.tsv` and write `<export>/../../x-en.json`."""
    task = toy_task(tmp_path / "t")
    task.write_text(task.read_text().replace(key, line))
    validated = xlt("tasks", "validate", task)
    text = validated.stderr.replace("\n", "")
    assert validated.exit_code == 1 and "is not a valid name" in text and f"{task}:" in text, validated.output
    res = xlt("run", "--model", "mdeberta-v3-base", "--task", task, "--dry-run")
    assert res.exit_code == 2 and "is not a valid name" in res.stderr and "Traceback" not in res.output


def test_run_languages_that_are_not_names_are_refused():
    """Would catch: `--languages ../x` reaching a spec (and a file name) unchecked."""
    with pytest.raises(XltError, match=r"language '\.\./x' is not a valid name"):
        RunSpec("mdeberta-v3-base", "xnli", languages=("../x",))


def test_exported_predictions_never_leave_the_export_folder(tmp_path):
    """Would catch: `report show RUN --export DIR` writing `DIR/../../evil-en.csv` because the predictions
    file (which anyone can rewrite) names the split `../../evil`."""
    spec = RunSpec("mdeberta-v3-base", "xnli", seed=1)
    record = new_record(spec, status="completed", task={"name": "xnli", "type": "pair-classification"},
                        metrics={"validation": {"en": {"accuracy": 0.5, "n": 2}}})
    frame = pd.DataFrame({"split": "../../evil", "lang": "en", "idx": [0, 1], "label": [0, 1], "pred": [0, 0]})
    write_run(tmp_path / "results", record, frame)
    export = tmp_path / "a" / "b" / "export"
    res = xlt("report", "show", spec.run_id, "--results-dir", tmp_path / "results", "--export", export)
    assert isinstance(res.exception, XltError) and "split '../../evil' is not a valid name" in str(res.exception)
    assert not list(tmp_path.rglob("evil*"))


def test_every_writer_checks_its_path_stays_inside_its_root(tmp_path):
    """Would catch: a record, checkpoint or exported file whose path, once `..` is followed, leaves its root
    (the last line of defence behind the name checks)."""
    root = tmp_path / "results"
    assert inside(root, root / "runs" / "xnli" / "m" / "a.json") == root / "runs" / "xnli" / "m" / "a.json"
    for escape in (root / "runs" / ".." / ".." / "x.json", root / ".." / "results-2" / "a.json", root, "/etc/x"):
        with pytest.raises(XltError, match="refusing to write"):
            inside(root, escape)
    record = new_record(RunSpec("m", "xnli"), status="completed")
    record["spec"]["task"] = ".."
    with pytest.raises(XltError, match="task name '..' is not a valid name"):
        write_run(root, record)
    assert not root.exists()


def test_the_name_rule_is_conservative():
    """Would catch: the pattern letting through what a path could misread, or refusing real codes."""
    good = ["xnli", "en", "zh-Hans", "sr_Latn", "validation_matched", "xquad.en", "udpos", "2023", "_x"]
    bad = ["", ".", "..", "../x", "a/b", "a\\b", "-rf", ".hidden", "x y", "é", "a\x00", "a" * 101, None, 1, ["en"]]
    assert all(is_name(n) for n in good) and not any(is_name(n) for n in bad)
    with pytest.raises(XltError, match="split 'a/b' is not a valid name.*fix it"):
        check_name("split", "a/b", "fix it")
