"""Issue 15.2: task files that would cost memory or recursion (alias bombs, self-reference, deep nesting, huge
files) are refused as task-file problems with their file (and line), and one such file in a tasks folder is
one clear error from `xlt run`, not a traceback."""

from pathlib import Path

import pytest
from typer.testing import CliRunner

from xlt.cli import app
from xlt.tasks import check_task_file
from xlt.tasks.yamlfile import MAX_BYTES, MAX_DEPTH

ROOT = Path(__file__).resolve().parents[1]
XNLI = (ROOT / "tasks" / "xnli.yaml").read_text()


def billion_laughs(levels: int = 9) -> str:
    lines = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for i in range(1, levels + 1):
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]")
    return "\n".join(lines) + "\n"


BOMBS = {
    "billion_laughs": (billion_laughs(), 2, "aliases"),
    "self_reference": ("name: bomb\nr: &r [*r]\n", 2, "aliases"),
    "deep_nesting": ("name: bomb\nx: " + "[" * 5000 + "]" * 5000 + "\n", 2, f"deeper than {MAX_DEPTH}"),
    "oversized": ("name: bomb\ndescription: >\n" + ("  " + "x" * 78 + "\n") * (MAX_BYTES // 80 + 10), None,
                  "at most"),
}


@pytest.mark.parametrize("kind", sorted(BOMBS))
def test_a_hostile_task_file_is_one_problem_with_file_and_line(tmp_path, kind):
    """Would catch: alias expansion eating gigabytes (billion laughs), RecursionError on `&r [*r]` or 5,000-deep
    nesting, or a huge file read whole, instead of one task-file problem."""
    text, line, words = BOMBS[kind]
    path = tmp_path / "bomb.yaml"
    path.write_text(text)
    spec, problems = check_task_file(path)
    assert spec is None and len(problems) == 1
    assert problems[0].file == str(path) and problems[0].line == line and words in problems[0].message


@pytest.mark.parametrize("kind", ["billion_laughs", "deep_nesting"])
def test_one_hostile_file_in_a_tasks_folder_is_one_clear_error_only_for_its_own_task(tmp_path, kind):
    """Would catch: a bad file among the task files breaking every run with a traceback, rather than one
    TaskFileError naming it (exit 2) when that task is asked for. Other tasks still run (issue 26.7: a broken
    user file is reported and skipped when listing, an error only when it is the task asked for)."""
    folder = tmp_path / "tasks"
    folder.mkdir()
    (folder / "mytask.yaml").write_text(XNLI.replace("name: xnli", "name: mytask"))
    (folder / "bomb.yaml").write_text(BOMBS[kind][0])
    other = CliRunner().invoke(app, ["run", "--model", "mdeberta-v3-base", "--task", "mytask", "--tasks-dir",
                                     str(folder), "--results-dir", str(tmp_path / "results"), "--dry-run"])
    assert other.exit_code == 0, other.output
    res = CliRunner().invoke(app, ["run", "--model", "mdeberta-v3-base", "--task", "bomb", "--tasks-dir",
                                   str(folder), "--results-dir", str(tmp_path / "results")])
    assert res.exit_code == 2, res.output
    assert "1 problem(s) in task files" in res.output and f"{folder / 'bomb.yaml'}:2" in res.output
    assert "Traceback" not in res.output and not (tmp_path / "results").exists()
