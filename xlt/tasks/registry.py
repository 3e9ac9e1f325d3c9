"""The task registry: task files found in the built-in folder, XLT_TASKS_PATH and --tasks-dir.

A broken or duplicate task file is reported (`xlt tasks list`, `xlt tasks validate`) and is an error when it
is the task asked for; it never hides the other tasks (a control character in one user file must not stop
every run, built-in tasks included).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable, Sequence

from xlt.errors import XltError
from xlt.paths import builtin_tasks_dir
from xlt.tasks.taskspec import TaskSpec, check_task_file
from xlt.tasks.yamlfile import Problem, TaskFileError

def task_dirs(tasks_dir: str | Path | Sequence[str | Path] | None = None) -> list[Path]:
    """Directories searched for task files: built-in, then XLT_TASKS_PATH, then `tasks_dir`."""
    dirs: list[Path] = []
    builtin = builtin_tasks_dir()
    if builtin is not None:
        dirs.append(builtin)
    for entry in os.environ.get("XLT_TASKS_PATH", "").split(os.pathsep):
        if entry.strip():
            dirs.append(Path(entry.strip()))
    if tasks_dir is not None:
        dirs.extend(Path(d) for d in ([tasks_dir] if isinstance(tasks_dir, (str, Path)) else tasks_dir))
    out: list[Path] = []
    for d in dirs:
        if not d.is_dir():
            raise XltError(f"task directory {d} does not exist; fix --tasks-dir / XLT_TASKS_PATH")
        if d.resolve() not in [o.resolve() for o in out]:
            out.append(d)
    return out


def task_files(tasks_dir: str | Path | Sequence[str | Path] | None = None) -> list[Path]:
    return [f for d in task_dirs(tasks_dir) for f in sorted(d.glob("*.y*ml")) if f.suffix in (".yaml", ".yml")]


def validate_files(paths: Iterable[str | Path]) -> tuple[list[TaskSpec], list[Problem]]:
    """Build every file; return the specs that built and every problem (duplicate names included)."""
    specs: list[TaskSpec] = []
    problems: list[Problem] = []
    by_name: dict[str, Path] = {}
    for p in paths:
        p = Path(p)
        if not p.is_file():
            problems.append(Problem(str(p), None, "no such file", "check the path"))
            continue
        spec, probs = check_task_file(p)
        problems.extend(probs)
        if spec is None:
            continue
        if spec.name in by_name:
            problems.append(Problem(str(p), 1, f"duplicate task name {spec.name!r}, also defined in "
                                    f"{by_name[spec.name]}", "rename one task or remove one directory "
                                    "from --tasks-dir / XLT_TASKS_PATH"))
            continue
        by_name[spec.name] = p
        specs.append(spec)
    return specs, problems


def list_tasks(tasks_dir: str | Path | Sequence[str | Path] | None = None,
               problems: list[Problem] | None = None) -> list[TaskSpec]:
    """Every task whose file builds. A broken or duplicate file is left out and its problems are appended to
    `problems` (`xlt tasks list` prints them): one bad user file must not hide every other task."""
    specs, found = validate_files(task_files(tasks_dir))
    if problems is not None:
        problems.extend(found)
    return specs


def get_task(name: str | Path | TaskSpec, tasks_dir: str | Path | Sequence[str | Path] | None = None) -> TaskSpec:
    """A task by name (or a path to a task file). Unknown names list the valid ones. A broken or duplicate
    file is an error when it is the task asked for (its file name is the task's name); others are ignored."""
    if isinstance(name, TaskSpec):
        return name
    if str(name).endswith((".yaml", ".yml")) and Path(name).is_file():
        return TaskSpec.from_yaml(name)
    problems: list[Problem] = []
    specs = list_tasks(tasks_dir, problems)
    own = [p for p in problems if Path(p.file).stem == str(name)]
    if own:
        raise TaskFileError(own)
    for spec in specs:
        if spec.name == str(name):
            return spec
    broken = sorted({p.file for p in problems})
    raise XltError(f"unknown task {str(name)!r}; valid: {', '.join(s.name for s in specs) or '(none)'}; "
                   "add your own with --tasks-dir DIR or XLT_TASKS_PATH"
                   + (f" (task files that do not build, skipped: {', '.join(broken)}; see xlt tasks validate)"
                      if broken else ""))



def resolve_task_arg(task: str | Path, tasks_dir: str | Path | Sequence[str | Path] | None = None
                     ) -> tuple[TaskSpec, list[Path]]:
    """A `--task` value -> (its TaskSpec, the task folders a run must search to find it again by name).

    A name is looked up as it is. A task file's path (`/abs/mytask.yaml`, `../t/mytask.yaml`) is run under its
    name with its folder added to the task folders, so the record lands in `runs/<name>/...` like any other
    and the runner finds the same file by name. Another file of that name in the task folders is an error.
    """
    extra = [] if tasks_dir is None else ([Path(tasks_dir)] if isinstance(tasks_dir, (str, Path))
                                          else [Path(d) for d in tasks_dir])
    text = str(task)
    if not text.endswith((".yaml", ".yml")):
        return get_task(text, extra or None), extra
    path = Path(text).expanduser()
    if not path.is_file():
        raise XltError(f"task file {path} does not exist; give a task name (xlt tasks list) or the path of a "
                       "task YAML file")
    spec = TaskSpec.from_yaml(path)
    dirs = extra + [path.resolve().parent]
    found = get_task(spec.name, dirs)
    if found.path is not None and Path(found.path).resolve() != path.resolve():
        raise XltError(f"task file {path} is named {spec.name!r}, which {found.path} already defines; rename one "
                       "(the file name is the task name)")
    return found, dirs
