"""Reading a task file (or a sweep file): YAML parsed safely, with the line of every key kept for error messages.

Task and sweep files are small, hand-written mappings, so anything else is refused before it can cost memory or
time: files over `MAX_BYTES`, bytes that are not UTF-8, control characters (NUL, ESC, ...), nesting deeper than
`MAX_DEPTH`, and YAML aliases (`*name`), which is what makes "billion laughs" files and self-referencing
structures possible. Each refusal is a `Problem` with its file and line, like any other.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import yaml

from xlt.errors import XltError
from xlt.names import RULE, is_name

MAX_BYTES = 256 * 1024
MAX_DEPTH = 32


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a task file: where, what, and how to fix it."""

    file: str
    line: int | None
    message: str
    fix: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.message} (fix: {self.fix})"


class TaskFileError(XltError):
    """A task file (or several) could not be built; `problems` holds every one found."""

    def __init__(self, problems: Sequence[Problem]):
        self.problems = list(problems)
        lines = "\n  ".join(str(p) for p in self.problems)
        super().__init__(f"{len(self.problems)} problem(s) in task files:\n  {lines}")


class _Refused(yaml.YAMLError):
    def __init__(self, message: str, mark):
        super().__init__(message)
        self.problem, self.problem_mark, self.context = message, mark, None


class _TaskLoader(yaml.SafeLoader):
    """SafeLoader that refuses aliases and deep nesting while composing (before anything is built)."""

    depth = 0

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            raise _Refused("YAML aliases (*name) are not allowed", self.peek_event().start_mark)
        self.depth += 1
        try:
            if self.depth > MAX_DEPTH:
                raise _Refused(f"nesting deeper than {MAX_DEPTH} levels", self.peek_event().start_mark)
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1


def _control_character(file: str, text: str) -> Problem | None:
    """The first character YAML forbids (NUL, ESC and the other C0/C1 controls but tab and newlines), with its
    line and column: PyYAML would raise about it with a position in the text only, or not at all."""
    bad = yaml.reader.Reader.NON_PRINTABLE.search(text)
    if bad is None:
        return None
    line = text.count("\n", 0, bad.start()) + 1
    column = bad.start() - (text.rfind("\n", 0, bad.start()) + 1) + 1
    return Problem(file, line, f"control character U+{ord(bad.group()):04X} at column {column}",
                   "remove it (a YAML file holds printable text; write a tab or newline as \\t or \\n in quotes)")


def read_yaml(path: Path, what: str = "task file") -> tuple[Any, dict[tuple, int], list[Problem]]:
    """Parse a YAML file (a task file, or another `what` under the same limits: xlt's sweep files); return its
    data, the line of every key/item (by path) and parse problems."""
    file = str(path)
    try:
        size = path.stat().st_size
        if size > MAX_BYTES:
            return None, {}, [Problem(file, None, f"the file is {size:,} bytes; a {what} is at most "
                                      f"{MAX_BYTES:,}", f"a {what} describes data; it does not hold it")]
        text = path.read_bytes().decode("utf-8")
    except OSError as exc:
        return None, {}, [Problem(file, None, f"cannot read the file: {exc.strerror or exc}", "check the path")]
    except UnicodeDecodeError as exc:
        line = path.read_bytes()[:exc.start].count(b"\n") + 1
        return None, {}, [Problem(file, line, f"not UTF-8 ({exc.reason} at byte {exc.start})", "save it as UTF-8")]
    control = _control_character(file, text)
    if control is not None:
        return None, {}, [control]
    loader = _TaskLoader(text)
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    except _Refused as exc:
        return None, {}, [Problem(file, exc.problem_mark.line + 1, f"{exc.problem} in a {what}",
                                  "write the values out instead of referencing them, and keep the file flat")]
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        said = " ".join(str(x) for x in (getattr(exc, "context", None), getattr(exc, "problem", None)) if x)
        return None, {}, [Problem(file, mark.line + 1 if mark else None, f"malformed YAML: {said or exc}",
                                  "fix the YAML syntax at that line (indentation, quoting, a missing ':')")]
    finally:
        loader.dispose()
    if node is None:
        return None, {}, [Problem(file, 1, "the file is empty", f"write a {what} mapping (see docs/)")]
    marks: dict[tuple, int] = {(): node.start_mark.line + 1}
    problems: list[Problem] = []

    def walk(n: yaml.Node, path: tuple) -> None:
        if isinstance(n, yaml.MappingNode):
            seen: set = set()
            for key_node, value_node in n.value:
                key = key_node.value
                if key in seen:
                    problems.append(Problem(file, key_node.start_mark.line + 1, f"duplicate key {key!r}",
                                            "keep one of them"))
                seen.add(key)
                marks[path + (key,)] = key_node.start_mark.line + 1
                walk(value_node, path + (key,))
        elif isinstance(n, yaml.SequenceNode):
            for i, item in enumerate(n.value):
                marks[path + (i,)] = item.start_mark.line + 1
                walk(item, path + (i,))

    walk(node, ())
    return data, marks, problems


class Checker:
    """Collects problems for one file, each located at the line of the key it concerns."""

    def __init__(self, path: Path, marks: dict[tuple, int]):
        self.file = str(path)
        self.marks = marks
        self.problems: list[Problem] = []

    def line(self, path: tuple) -> int | None:
        while path not in self.marks and path:
            path = path[:-1]
        return self.marks.get(path)

    def add(self, path: tuple, message: str, fix: str) -> None:
        self.problems.append(Problem(self.file, self.line(path), message, fix))

    def where(self, path: tuple) -> str:
        return ".".join(str(p) for p in path) or "<top level>"

    # typed getters: each returns the value (or the default) and records a problem when it is wrong
    def str_(self, data: Mapping, path: tuple, key: str, required: bool = True, default: str | None = None):
        if key not in data or data[key] is None:
            if required:
                self.add(path, f"missing required key {self.where(path + (key,))!r}", f"add `{key}: ...`")
            return default
        value = data[key]
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            self.add(path + (key,), f"{self.where(path + (key,))} must be a string, got {type(value).__name__}",
                     f"write `{key}: some text`")
            return default
        return str(value)

    def str_list(self, data: Mapping, path: tuple, key: str, required: bool = True) -> list[str] | None:
        if key not in data or data[key] is None:
            if required:
                self.add(path, f"missing required key {self.where(path + (key,))!r}", f"add `{key}: [a, b]`")
            return None
        value = data[key]
        if not isinstance(value, list) or not value:
            self.add(path + (key,), f"{self.where(path + (key,))} must be a non-empty list",
                     f"write `{key}: [a, b]`")
            return None
        out = []
        for i, item in enumerate(value):
            if isinstance(item, bool) or not isinstance(item, (str, int)) or str(item).strip() == "":
                self.add(path + (key, i), f"{self.where(path + (key, i))} must be a non-empty string, got {item!r}",
                         "quote the value")
                continue
            out.append(str(item))
        seen: set[str] = set()
        for i, item in enumerate(out):
            if item in seen:
                self.add(path + (key, i), f"{item!r} appears twice in {self.where(path + (key,))}",
                         "list each value once")
            seen.add(item)
        return out

    def mapping(self, data: Mapping, path: tuple, key: str, required: bool = True) -> dict | None:
        if key not in data or data[key] is None:
            if required:
                self.add(path, f"missing required key {self.where(path + (key,))!r}", f"add a `{key}:` mapping")
            return None
        value = data[key]
        if not isinstance(value, dict):
            self.add(path + (key,), f"{self.where(path + (key,))} must be a mapping (key: value lines)",
                     f"indent `{key}:` entries as `name: value`")
            return None
        return value

    def names(self, path: tuple, values: Any, what: str) -> None:
        """A problem for each value that cannot be one part of a file path (xlt.names): a task name, a split,
        a language code. `values` is one value or a list (each item located at its own line)."""
        items = enumerate(values) if isinstance(values, (list, tuple)) else [(None, values)]
        for i, value in items:
            if value is not None and not is_name(value):
                self.add(path if i is None else path + (i,), f"{what} {value!r} is not a valid name",
                         f"use {RULE}")

    def unknown_keys(self, data: Mapping, path: tuple, allowed: Iterable[str]) -> None:
        allowed = tuple(allowed)
        for key in data:
            if key not in allowed:
                self.add(path + (key,), f"unknown key {self.where(path + (key,))!r}",
                         f"remove it or use one of: {', '.join(allowed)}")
