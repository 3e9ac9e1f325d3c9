"""Issue 26.7, every loader hardened alike: control characters in any YAML are one problem with file and
line; one broken user task file is reported and skipped when listing and is an error only when it is the task
asked for; the sweep file goes through the task files' limits; a seed range of 10^8 is refused. Each test is
named after the case it guards."""

from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.test_hardening_yaml import BOMBS, XNLI
from xlt.cli import app
from xlt.errors import XltError
from xlt.schedule import load_sweep_file, parse_seeds
from xlt.tasks import check_task_file, get_task, list_tasks

cli = CliRunner()
CONTROL = {"nul": "\x00", "esc": "\x1b", "bell": "\x07", "c1": "\x9b"}


def xlt(*args):
    return cli.invoke(app, [str(a) for a in args])


def task_folder(tmp_path: Path, broken: str) -> Path:
    """A user folder with one good task (`mytask`, a copy of xnli) and `bad.yaml` holding `broken`."""
    folder = tmp_path / "tasks"
    folder.mkdir()
    (folder / "mytask.yaml").write_text(XNLI.replace("name: xnli", "name: mytask"))
    (folder / "bad.yaml").write_text(broken, encoding="utf-8")
    return folder


@pytest.mark.parametrize("kind", sorted(CONTROL))
def test_a_control_character_in_a_task_file_is_one_problem_with_file_and_line(tmp_path, kind):
    """Would catch: PyYAML's ReaderError escaping as a traceback (it names a position in the text, no line)."""
    path = tmp_path / "bad.yaml"
    path.write_text(f"name: bad\ntype: pair-classification\ndescription: \"red {CONTROL[kind]}[31m text\"\n",
                    encoding="utf-8")
    spec, problems = check_task_file(path)
    assert spec is None and len(problems) == 1
    assert problems[0].line == 3 and f"control character U+{ord(CONTROL[kind]):04X} at column 19" in \
        problems[0].message and problems[0].file == str(path)


@pytest.mark.parametrize("kind", ["nul", "esc"])
def test_one_broken_user_task_file_is_skipped_when_listing_and_an_error_only_when_asked_for(tmp_path, kind):
    """Would catch: a control character in one user task file crashing `xlt tasks list` and every `xlt run`,
    built-in tasks included, with a traceback."""
    folder = task_folder(tmp_path, f"name: bad\ndescription: a{CONTROL[kind]}b\n")
    listed = xlt("tasks", "list", "--tasks-dir", folder)
    assert listed.exit_code == 0 and "Traceback" not in listed.output, listed.output
    assert "xnli" in listed.stdout and "mytask" in listed.stdout and "bad" not in listed.stdout.replace("badge", "")
    assert f"warning: skipped {folder / 'bad.yaml'}:2: control character" in listed.stderr.replace("\n", "")
    problems: list = []
    assert {"xnli", "mytask"} <= {t.name for t in list_tasks(folder, problems)} and len(problems) == 1
    for task in ("xnli", "mytask"):
        res = xlt("run", "--model", "mdeberta-v3-base", "--task", task, "--tasks-dir", folder, "--dry-run")
        assert res.exit_code == 0, res.output
    asked = xlt("run", "--model", "mdeberta-v3-base", "--task", "bad", "--tasks-dir", folder, "--dry-run")
    assert asked.exit_code == 2 and f"{folder / 'bad.yaml'}:2: control character" in asked.stderr
    unknown = xlt("run", "--model", "mdeberta-v3-base", "--task", "nope", "--tasks-dir", folder, "--dry-run")
    assert unknown.exit_code == 2 and "unknown task 'nope'" in unknown.stderr
    assert f"task files that do not build, skipped: {folder / 'bad.yaml'}" in unknown.stderr.replace("\n", "")


def test_a_duplicate_task_name_is_an_error_only_for_that_task(tmp_path):
    """Would catch: a second `xnli.yaml` in a user folder silently replacing (or hiding) the built-in one."""
    folder = tmp_path / "tasks"
    folder.mkdir()
    (folder / "xnli.yaml").write_text(XNLI)
    with pytest.raises(XltError, match="duplicate task name 'xnli'"):
        get_task("xnli", folder)
    assert get_task("pawsx", folder).name == "pawsx"


def sweep_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "grid.yaml"
    path.write_text(text, encoding="utf-8")
    return path


SWEEP = "models: [mdeberta-v3-base]\ntasks: [xnli]\n"
SWEEP_CASES = {
    "billion_laughs": (BOMBS["billion_laughs"][0], ":2: YAML aliases (*name) are not allowed in a sweep file"),
    "deep_nesting": (SWEEP + "set: " + "[" * 5000 + "]" * 5000 + "\n", ":3: nesting deeper than 32"),
    "oversized": (SWEEP + "# " + "x" * 300_000 + "\n", "a sweep file is at most 262,144"),
    "latin1": (SWEEP + "names: {mdeberta-v3-base: caf\xe9}\n", ":3: not UTF-8"),
    "nul": (SWEEP + "seeds: [1\x00]\n", ":3: control character U+0000 at column 10"),
    "esc": (SWEEP + "names: {mdeberta-v3-base: \"\x1b[2J\"}\n", ":3: control character U+001B"),
    "duplicate_key": (SWEEP + "seeds: [1]\nseeds: [2]\n", ":4: duplicate key 'seeds'"),
    "seed_range": (SWEEP + "seeds: 1-100000000\n", "at most 1000 seeds"),
}


@pytest.mark.parametrize("kind", sorted(SWEEP_CASES))
def test_a_hostile_sweep_file_is_refused_like_a_task_file(tmp_path, kind):
    """Would catch: the sweep loader (plain yaml.safe_load) expanding an alias bomb, recursing 5,000 levels,
    reading a huge file, a traceback for Latin-1 bytes or a control character, the last of two `seeds:` keys
    silently winning, or 10^8 seeds expanded into memory."""
    text, words = SWEEP_CASES[kind]
    path = tmp_path / "grid.yaml"
    path.write_bytes(text.encode("latin-1" if kind == "latin1" else "utf-8"))
    with pytest.raises(XltError) as err:
        load_sweep_file(path)
    message = str(err.value)
    assert str(path) in message and words in message, message
    res = xlt("sweep", path, "--dry-run")   # main() prints an XltError as one line and exits 2
    assert isinstance(res.exception, XltError) and words in str(res.exception), res.output


@pytest.mark.parametrize("seeds", ["1-100000000", "0-4294967296", "-1", "1,2,x", "4294967296", "1.5"])
def test_seed_lists_the_runs_cannot_hold_are_refused(seeds):
    """Would catch: `--seeds 1-100000000` building 10^8 seeds in memory, or a seed RunSpec refuses later."""
    with pytest.raises(XltError, match="seed"):
        parse_seeds(seeds)
    assert parse_seeds("0-999") == tuple(range(1000)) and parse_seeds("4294967295") == (4294967295,)
